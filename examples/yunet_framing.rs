//! How YuNet frames a face against BlazeFace "back" (whose boxes the crop margin was tuned on),
//! and what each finds: on every photo given, faces both find (IoU >= 0.3) give YuNet's box size
//! over back's and the vertical offset of the centres (in back box heights); the medians are
//! YuNet's framing constants in `vision::blazeface`. Also: photos with a face, per detector,
//! and the time per photo.
//!
//! Usage: `cargo run --release --example yunet_framing -- [--raw] PHOTO_OR_DIR...` (`--raw`: YuNet
//! without the framing correction, which is how the constants are measured).

use ferrite::vision::blazeface::{BlazeFace, BlazeFaceConfig, DetectorModel};
use ferrite::vision::detect::Detector;
use std::path::PathBuf;
use std::time::Instant;

fn photos(args: &[String]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = args.iter().map(PathBuf::from).collect();
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                stack.extend(rd.flatten().map(|e| e.path()));
            }
        } else if p.extension().is_some_and(|e| ["jpg", "jpeg", "png"].contains(&e.to_string_lossy().to_lowercase().as_str())) {
            out.push(p);
        }
    }
    out.sort();
    out
}

fn median(mut v: Vec<f32>) -> f32 {
    v.sort_by(f32::total_cmp);
    if v.is_empty() { f32::NAN } else { v[v.len() / 2] }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let raw = args.iter().any(|a| a == "--raw");
    let files = photos(&args.iter().filter(|a| !a.starts_with("--")).cloned().collect::<Vec<_>>());
    let back = BlazeFace::new(BlazeFaceConfig { model: DetectorModel::Back, ..BlazeFaceConfig::default() })?;
    let mut config = BlazeFaceConfig { model: DetectorModel::Yunet, ..BlazeFaceConfig::default() };
    if raw {
        config.pad_retry = 0.0;
    }
    let yunet = BlazeFace::new(config)?;
    let (mut scale, mut shift, mut dx, mut aspect_b, mut aspect_y) = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut with_back, mut with_yunet, mut t_back, mut t_yunet) = (0, 0, 0.0, 0.0);
    for f in &files {
        let Ok(img) = image::open(f).map(|i| i.to_rgb8()) else {
            eprintln!("{}: not readable, skipped", f.display());
            continue;
        };
        let t = Instant::now();
        let b = back.detect(&img)?;
        t_back += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let y = yunet.detect(&img)?;
        t_yunet += t.elapsed().as_secs_f64();
        with_back += usize::from(!b.is_empty());
        with_yunet += usize::from(!y.is_empty());
        for d in &b {
            if let Some(m) = y.iter().find(|m| m.bbox.iou(&d.bbox) >= 0.3) {
                // The crop is a square on the box's longer side: compare those.
                let (side_b, side_y) = (d.bbox.w.max(d.bbox.h), m.bbox.w.max(m.bbox.h));
                scale.push(side_y / side_b);
                shift.push((d.bbox.center().1 - m.bbox.center().1) / side_b);
                dx.push((d.bbox.center().0 - m.bbox.center().0) / side_b);
                aspect_b.push(d.bbox.h / d.bbox.w);
                aspect_y.push(m.bbox.h / m.bbox.w);
            }
        }
    }
    let n = files.len();
    println!("{n} photos: back found a face in {with_back}, YuNet in {with_yunet}; {} faces both found", scale.len());
    println!("YuNet box's longer side / back's: median {:.3}; back centre below YuNet's by {:.3}, right by {:.3} of back's longer side", median(scale), median(shift), median(dx));
    println!("height / width: back {:.3}, YuNet {:.3} (medians)", median(aspect_b), median(aspect_y));
    println!("ms per photo: back {:.1}, YuNet {:.1}", t_back * 1000.0 / n as f64, t_yunet * 1000.0 / n as f64);
    Ok(())
}
