//! Compare test-time view sets on a labelled data set: each view (mirror, shift) is classified
//! once, then every named set of views is scored by averaging its members' probabilities.
//!
//! `cargo run --release --example tta_sweep -- VAL_DIR [MODEL_FILE]` (no model: the embedded one).
use ferrite::data::{Dataset, LoadOptions};
use ferrite::emotion::Emotion;
use ferrite::emotion::argmax;
use ferrite::model::infer::{Tta, mirror_faces, predict_probs, shift_faces};
use std::collections::BTreeMap;
use std::path::Path;

type View = (bool, i32, i32);
/// A named view set: its shifts, and whether each is also taken mirrored.
type ViewSet = (&'static str, Vec<(i32, i32)>, bool);

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let data = args.first().map(String::as_str).unwrap_or("../shared/data/fer2013/val");
    let device = ferrite::device::inference_device();
    let net = match args.get(1) {
        Some(path) => burn::module::Module::valid(&ferrite::model::file::load(Path::new(path), &device)?.0),
        None => ferrite::model::embedded::default_model(&device)?.0,
    };
    let ds = Dataset::load(Path::new(data), &LoadOptions::default())?;
    let mirrored = mirror_faces(&ds.faces);
    let steps = [-4, -2, 0, 2, 4];
    let mut per_view: BTreeMap<View, Vec<[f32; Emotion::COUNT]>> = BTreeMap::new();
    for mirror in [false, true] {
        let base = if mirror { &mirrored } else { &ds.faces };
        for dy in steps {
            for dx in steps {
                per_view.insert((mirror, dx, dy), predict_probs(&net, &shift_faces(base, dx, dy), &device));
            }
        }
    }
    let corners = |r: i32| vec![(0, 0), (-r, -r), (r, -r), (-r, r), (r, r)];
    let grid = |s: &[i32]| s.iter().flat_map(|&y| s.iter().map(move |&x| (x, y))).collect::<Vec<_>>();
    let sets: Vec<ViewSet> = vec![
        ("none", vec![(0, 0)], false),
        ("flip", vec![(0, 0)], true),
        // `--tta ten`'s own view list (unmirrored half), so this row follows the library.
        ("ten, corners 2 (--tta ten)", Tta::Ten.views().into_iter().filter(|v| !v.0).map(|v| (v.1, v.2)).collect(), true),
        ("ten, corners 4", corners(4), true),
        ("cross 2", vec![(0, 0), (-2, 0), (2, 0), (0, -2), (0, 2)], true),
        ("grid 3x3 step 2", grid(&[-2, 0, 2]), true),
        ("grid 3x3 step 4", grid(&[-4, 0, 4]), true),
        ("grid 5x5 step 2", grid(&steps), true),
    ];
    println!("{:<28} {:>6} {:>9} {:>8}", "views", "count", "accuracy", "correct");
    for (name, shifts, flip) in sets {
        let mirrors: &[bool] = if flip { &[false, true] } else { &[false] };
        let views: Vec<View> = mirrors.iter().flat_map(|&m| shifts.iter().map(move |&(x, y)| (m, x, y))).collect();
        let mut correct = 0usize;
        for (i, truth) in ds.labels.iter().enumerate() {
            let mut sum = [0.0f32; Emotion::COUNT];
            for v in &views {
                for (s, p) in sum.iter_mut().zip(&per_view[v][i]) {
                    *s += p;
                }
            }
            correct += usize::from(argmax(&sum) == truth.index());
        }
        let acc = 100.0 * correct as f64 / ds.len() as f64;
        println!("{name:<28} {:>6} {acc:>8.2}% {correct:>8}", views.len());
    }
    Ok(())
}
