//! The front door in a few lines: every face in the photos given, as JSON lines, through
//! `ferrite::Analyzer` only. Usage: `cargo run --release --example analyze_photos -- PHOTO...`
//! (works with `default-features = false`: no server, command line or plotting).

use ferrite::{Analyzer, Tta};
use std::path::PathBuf;

fn main() -> ferrite::Result<()> {
    let photos: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let analyzer = Analyzer::builder().tta(Tta::Flip).abstain(0.4).build()?;
    // Decoded and analysed in parallel; one result per photo, in order.
    for (photo, result) in photos.iter().zip(analyzer.analyze_many(&photos)) {
        match result {
            Ok(faces) => {
                let line = serde_json::json!({ "image": photo.display().to_string(), "faces": faces });
                println!("{line}");
            }
            Err(e) => eprintln!("{e}"),
        }
    }
    Ok(())
}
