//! Do rotated or zoomed test-time views add to `--tta ten`? Each view (mirror, 2-pixel corner
//! shift, rotation, zoom) is classified once; named sets of views are scored by averaging.
//!
//! `cargo run --release --example tta_warp_sweep -- VAL_DIR [MODEL_FILE]...` (no model: the
//! embedded one). One table per model, then each set's mean over the models.
//!
//! Session 15 added the sets that combine `--tta thirty`'s zooms with rotations (the two kinds
//! of view that helped in session 13's round). Rule fixed before the run: the set with the best
//! mean over the three runs that are not embedded (c28r2, c28s7, c28s3) is scored once on the
//! embedded model, and only if its mean beats `--tta thirty`'s.
use ferrite::data::{Dataset, LoadOptions};
use ferrite::emotion::Emotion;
use ferrite::emotion::argmax;
use ferrite::model::infer::{Tta, mirror_faces, predict_probs, shift_faces, warp_faces};
use std::collections::BTreeMap;
use std::path::Path;

/// Rotation in degrees and zoom in percent (integers, so they can key a map).
type Warp = (i32, i32);
/// (mirror, dx, dy, warp)
type View = (bool, i32, i32, Warp);

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let data = args.first().map(String::as_str).unwrap_or("../shared/data/fer2013/val");
    let device = ferrite::device::inference_device();
    let ds = Dataset::load(Path::new(data), &LoadOptions::default())?;
    let models: Vec<Option<&str>> =
        if args.len() > 1 { args[1..].iter().map(|s| Some(s.as_str())).collect() } else { vec![None] };
    let ten: Vec<(bool, i32, i32)> = Tta::Ten.views();
    let zooms = [100, 90, 110];
    let zoom_x = |rots: &[i32]| -> Vec<Warp> { rots.iter().flat_map(|&r| zooms.iter().map(move |&z| (r, z))).collect() };
    let sets: Vec<(&str, Vec<Warp>)> = vec![
        ("ten (--tta ten)", vec![(0, 100)]),
        ("ten x rotation 0, +-5", vec![(0, 100), (-5, 100), (5, 100)]),
        ("ten x rotation 0, +-10", vec![(0, 100), (-10, 100), (10, 100)]),
        ("ten x zoom 1, 0.95, 1.05", vec![(0, 100), (0, 95), (0, 105)]),
        ("ten x zoom 1, 0.9, 1.1", vec![(0, 100), (0, 90), (0, 110)]),
        ("ten x zoom 1, 1.05", vec![(0, 100), (0, 105)]),
        ("ten x zoom 1, 0.95", vec![(0, 100), (0, 95)]),
        ("ten x rot +-5, zoom .95/1.05", vec![(0, 100), (-5, 100), (5, 100), (0, 95), (0, 105)]),
        ("ten x rot +-10, zoom .9/1.1", vec![(0, 100), (-10, 100), (10, 100), (0, 90), (0, 110)]),
        ("thirty x rotation 0, +-5", zoom_x(&[0, -5, 5])),
        ("thirty x rotation 0, +-10", zoom_x(&[0, -10, 10])),
        ("thirty x rotation 0, +-5, +-10", zoom_x(&[0, -5, 5, -10, 10])),
    ];
    let mut warps: Vec<Warp> = sets.iter().flat_map(|(_, ws)| ws.iter().copied()).collect();
    warps.sort_unstable();
    warps.dedup();
    let mut means: Vec<f64> = vec![0.0; sets.len()];
    let n_models = models.len();
    for model in models {
        let net = match model {
            Some(path) => burn::module::Module::valid(&ferrite::model::file::load(Path::new(path), &device)?.0),
            None => ferrite::model::embedded::default_model(&device)?.0,
        };
        let mut per_view: BTreeMap<View, Vec<[f32; Emotion::COUNT]>> = BTreeMap::new();
        for &w in &warps {
            let warped = warp_faces(&ds.faces, w.0 as f32, w.1 as f32 / 100.0);
            let mirrored = mirror_faces(&warped);
            for &(m, dx, dy) in &ten {
                let base = if m { &mirrored } else { &warped };
                per_view.insert((m, dx, dy, w), predict_probs(&net, &shift_faces(base, dx, dy), &device));
            }
        }
        println!("model {}", model.unwrap_or("embedded"));
        println!("{:<32} {:>6} {:>9} {:>8}", "views", "count", "accuracy", "correct");
        for (k, (name, ws)) in sets.iter().enumerate() {
            let views: Vec<View> = ws.iter().flat_map(|&w| ten.iter().map(move |&(m, x, y)| (m, x, y, w))).collect();
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
            means[k] += acc / n_models as f64;
            println!("{name:<32} {:>6} {acc:>8.2}% {correct:>8}", views.len());
        }
    }
    println!("mean over {n_models} model(s)");
    for ((name, _), mean) in sets.iter().zip(&means) {
        println!("{name:<32} {mean:>8.2}%");
    }
    Ok(())
}
