//! Faces cut by the frame's edge: how many the detector still finds, for each `edge_pad`.
//!
//! Every face the reference detector finds whole (box inside the picture) in the photos given is
//! cut by the left, then the right edge: the picture is cropped so that 25% or 50% of the face's
//! width lies outside it (a crop narrower than the face is skipped). A cut face counts as found
//! when a detection in the crop overlaps its visible part (IoU >= 0.3, both boxes clamped to the
//! crop); a detection that overlaps no face of the reference is a false alarm. The uncut pictures
//! are searched too: faces the reference found, found again, and other detections.
//!
//! Usage: `cargo run --release --example edge_faces -- [--every N] [--pads 0,0.04] [--models
//! back,full,both,yunet,yunet-first] [--verbose] [--save DIR] PHOTO_OR_DIR...` (folders are searched as `detect`
//! does; `--every N` keeps every Nth picture, sorted by path; `--verbose` prints each uncut
//! picture whose faces differ from the reference's; `--save DIR` writes every cut crop and
//! `targets.csv`, each crop's size and the visible part of each face it cuts, for another
//! detector). The reference is the detector without the margin (`edge_pad` 0).

use ferrite::vision::blazeface::{BlazeFace, BlazeFaceConfig, DetectorModel};
use ferrite::vision::detect::{BBox, Detection, Detector};
use image::RgbImage;
use std::path::PathBuf;
use std::time::Instant;

const CUTS: [f32; 2] = [0.25, 0.5];

/// Faces found / faces, false alarms.
#[derive(Default, Clone, Copy)]
struct Tally {
    found: usize,
    faces: usize,
    false_alarms: usize,
}

/// The faces a crop cuts: partly, not wholly, inside it (the visible part under 90% of the box).
fn cut_faces(faces: &[BBox], crop: (u32, u32)) -> Vec<BBox> {
    faces
        .iter()
        .filter(|b| {
            let v = b.clamped(crop.0, crop.1);
            v.area() > 0.0 && v.area() < 0.9 * b.area()
        })
        .copied()
        .collect()
}

/// Match the detections in a crop against the reference faces shifted into it.
fn score(dets: &[Detection], faces: &[BBox], crop: (u32, u32), t: &mut Tally) {
    let visible: Vec<BBox> = faces.iter().map(|b| b.clamped(crop.0, crop.1)).filter(|b| b.area() > 0.0).collect();
    let clamped: Vec<BBox> = dets.iter().map(|d| d.bbox.clamped(crop.0, crop.1)).collect();
    t.faces += visible.len();
    t.found += visible.iter().filter(|f| clamped.iter().any(|d| d.iou(f) >= 0.3)).count();
    t.false_alarms += clamped.iter().filter(|d| !visible.iter().any(|f| d.iou(f) >= 0.3)).count();
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut every = 1usize;
    let mut verbose = false;
    let mut save: Option<PathBuf> = None;
    let mut pads = vec![0.0f32, 0.02, 0.04, 0.06];
    let mut models = vec![DetectorModel::Both];

    while args.first().is_some_and(|a| a.starts_with("--")) {
        let flag = args.remove(0);
        let value = if args.is_empty() { String::new() } else { args.remove(0) };
        match flag.as_str() {
            "--verbose" => {
                verbose = true;
                args.insert(0, value);
            }
            "--save" => save = Some(PathBuf::from(value)),
            "--every" => every = value.parse().expect("--every N"),
            "--pads" => pads = value.split(',').map(|v| v.parse().expect("--pads 0,0.1")).collect(),
            "--models" => {
                models = value.split(',').map(|v| <DetectorModel as clap::ValueEnum>::from_str(v, true).expect("--models back,full,both,yunet,yunet-first")).collect()
            }
            _ => panic!("unknown flag {flag}"),
        }
    }
    let paths: Vec<PathBuf> = args.iter().map(PathBuf::from).collect();
    let photos: Vec<PathBuf> = ferrite::data::collect_images(&paths)?.into_iter().step_by(every.max(1)).collect();
    // The reference: the detector as it was before the mirrored margin.
    let reference = BlazeFace::new(BlazeFaceConfig { edge_pad: 0.0, ..BlazeFaceConfig::default() })?;
    // (picture, faces in it) and the cut crops: (picture index, x0, x1, face boxes shifted).
    let mut pictures: Vec<(RgbImage, Vec<BBox>)> = Vec::new();
    let mut photos_kept = Vec::new();
    for p in &photos {
        let img = match image::open(p) {
            Ok(img) => img,
            Err(e) => {
                eprintln!("{}: skipped, not readable: {e}", p.display());
                continue;
            }
        };
        photos_kept.push(p.clone());
        let img = img.to_rgb8();
        let faces: Vec<BBox> = reference.detect(&img)?.into_iter().map(|d| d.bbox).collect();
        pictures.push((img, faces));
    }
    let mut cuts: Vec<(usize, usize, u32, u32, Vec<BBox>)> = Vec::new();
    for (i, (img, faces)) in pictures.iter().enumerate() {
        let (w, h) = (img.width() as f32, img.height() as f32);
        for f in faces {
            if f.x < 0.0 || f.y < 0.0 || f.x + f.w > w || f.y + f.h > h {
                continue;
            }
            for (c, cut) in CUTS.into_iter().enumerate() {
                // Left edge: drop everything left of x0.
                let x0 = (f.x + cut * f.w).round() as u32;
                if (w as u32).saturating_sub(x0) as f32 >= f.w {
                    let shifted = faces.iter().map(|b| BBox::new(b.x - x0 as f32, b.y, b.w, b.h)).collect();
                    cuts.push((i, c, x0, w as u32, shifted));
                }
                // Right edge: drop everything right of x1.
                let x1 = (f.x + (1.0 - cut) * f.w).round() as u32;
                if x1 as f32 >= f.w {
                    cuts.push((i, c, 0, x1, faces.clone()));
                }
            }
        }
    }
    if let Some(dir) = &save {
        // Every cut crop as a JPEG and the visible part of each face cut by its edge, for
        // another detector to be scored alike (bench/edge_faces.sh).
        std::fs::create_dir_all(dir)?;
        let mut targets = String::from("file,crop_width,crop_height,x,y,w,h\n");
        for (k, (i, _, x0, x1, faces)) in cuts.iter().enumerate() {
            let img = &pictures[*i].0;
            let crop = image::imageops::crop_imm(img, *x0, 0, x1 - x0, img.height()).to_image();
            let name = format!("cut{k:04}.jpg");
            crop.save(dir.join(&name))?;
            let (cw, ch) = (crop.width(), crop.height());
            for v in cut_faces(faces, (cw, ch)).iter().map(|b| b.clamped(cw, ch)) {
                targets.push_str(&format!("{name},{cw},{ch},{},{},{},{}\n", v.x, v.y, v.w, v.h));
            }
        }
        std::fs::write(dir.join("targets.csv"), targets)?;
    }
    let reference_faces: usize = pictures.iter().map(|p| p.1.len()).sum();
    println!("{} pictures, {reference_faces} faces found whole by the detector without the margin, {} cut crops\n", pictures.len(), cuts.len());
    println!("| detector | edge_pad | cut faces found | a quarter cut off | half cut off | false alarms in cut crops | uncut: faces found | uncut: other detections | seconds |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for &model in &models {
        for &pad in &pads {
            let det = BlazeFace::new(BlazeFaceConfig { model, edge_pad: pad, ..BlazeFaceConfig::default() })?;
            let start = Instant::now();
            let (mut cut_t, mut whole_t) = (Tally::default(), Tally::default());
            let mut by_cut = [Tally::default(); CUTS.len()];
            for (k, (img, faces)) in pictures.iter().enumerate() {
                let dets = det.detect(img)?;
                let before = whole_t;
                score(&dets, faces, (img.width(), img.height()), &mut whole_t);
                if verbose && (whole_t.found - before.found != whole_t.faces - before.faces || whole_t.false_alarms != before.false_alarms) {
                    eprintln!("{model:?} edge_pad={pad}: {}: faces {:?} -> {:?}", photos_kept[k].display(), faces, dets.iter().map(|d| (d.bbox, d.score)).collect::<Vec<_>>());
                }
            }
            for (i, c, x0, x1, faces) in &cuts {
                let img = &pictures[*i].0;
                let crop = image::imageops::crop_imm(img, *x0, 0, x1 - x0, img.height()).to_image();
                let dets = det.detect(&crop)?;
                // Only the face that was cut is scored for recall; every detection for false alarms.
                let mut t = Tally::default();
                score(&dets, faces, (crop.width(), crop.height()), &mut t);
                cut_t.false_alarms += t.false_alarms;
                let target = cut_faces(faces, (crop.width(), crop.height()));
                let mut r = Tally::default();
                score(&dets, &target, (crop.width(), crop.height()), &mut r);
                cut_t.found += r.found;
                cut_t.faces += r.faces;
                by_cut[*c].found += r.found;
                by_cut[*c].faces += r.faces;
            }
            println!(
                "| {model:?} | {pad} | {}/{} ({:.1}%) | {}/{} | {}/{} | {} | {}/{} | {} | {:.0} |",
                cut_t.found,
                cut_t.faces,
                100.0 * cut_t.found as f32 / cut_t.faces.max(1) as f32,
                by_cut[0].found,
                by_cut[0].faces,
                by_cut[1].found,
                by_cut[1].faces,
                cut_t.false_alarms,
                whole_t.found,
                whole_t.faces,
                whole_t.false_alarms,
                start.elapsed().as_secs_f32()
            );
        }
    }
    Ok(())
}
