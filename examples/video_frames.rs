//! Frames with tracking and smoothing through the front door: a synthetic clip of one photo
//! sliding sideways, each frame's tracked faces printed. Usage:
//! `cargo run --release --example video_frames -- PHOTO`.

use ferrite::{Analyzer, VideoOptions};

fn main() -> ferrite::Result<()> {
    let path = std::env::args().nth(1).unwrap_or_else(|| "tests/fixtures/photos/astronaut.jpg".into());
    let photo = ferrite::data::decode_image(std::path::Path::new(&path), &Default::default())?.to_rgb8();
    let analyzer = Analyzer::builder().build()?;
    let mut video = analyzer.video(10.0, VideoOptions { detect_every: 3, ..VideoOptions::default() })?;
    for shift in 0..10 {
        let frame = image::imageops::crop_imm(&photo, shift * 4, 0, photo.width() - 40, photo.height()).to_image();
        let r = video.process(&frame)?;
        for t in &r.faces {
            println!("frame {} t={:.1}s face #{} {}", r.index, r.time_s, t.id, t.face.caption());
        }
    }
    Ok(())
}
