//! `ferrite detect`: every face in photos, labelled; annotated copies, JSON or CSV.

use super::face::FaceArgs;
use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use ferrite::Emotion;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct DetectArgs {
    /// Image files or folders (searched recursively).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Folder for annotated copies and results.json / results.csv. Without it the results
    /// go to standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "json")]
    pub format: FormatArg,
    #[command(flatten)]
    pub face: FaceArgs,
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
pub enum FormatArg {
    Json,
    Csv,
}

pub fn run(args: DetectArgs) -> Result<()> {
    let DetectArgs { paths, out, format, face } = args;
    detect(&paths, out.as_deref(), format, &face)
}

pub(super) const CSV_PROBS: &str = "angry,disgust,fear,happy,neutral,sad,surprise";

pub(super) fn face_csv_fields(f: &ferrite::vision::analyzer::Face) -> String {
    let probs: Vec<String> = f.probs.iter().map(|p| format!("{p:.4}")).collect();
    format!(
        "{:.0},{:.0},{:.0},{:.0},{:.4},{},{}",
        f.bbox.x,
        f.bbox.y,
        f.bbox.w,
        f.bbox.h,
        f.score,
        f.label_name(),
        probs.join(",")
    )
}

fn csv_quote(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn detect(paths: &[PathBuf], out: Option<&Path>, format: FormatArg, face: &FaceArgs) -> Result<()> {
    use rayon::prelude::*;
    debug_assert_eq!(CSV_PROBS.split(',').count(), Emotion::COUNT);
    let images = ferrite::data::collect_images(paths)?;
    let analyzer = face.analyzer()?;
    if let Some(dir) = out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let bar = if images.len() > 1 && std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(images.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    // Annotated copies keep the file name (folders flattened: a/x.jpg -> a_x.jpg when needed).
    let names: Vec<String> = images
        .iter()
        .map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default())
        .collect();
    let mut name_counts: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for n in &names {
        *name_counts.entry(n.as_str()).or_default() += 1;
    }
    let results: Vec<Result<Vec<ferrite::vision::analyzer::Face>, String>> = images
        .par_iter()
        .enumerate()
        .map(|(i, path)| {
            let r = (|| -> Result<Vec<ferrite::vision::analyzer::Face>> {
                let img = ferrite::data::decode_image(path, &analyzer.config().decode_limits)?;
                let faces = analyzer.analyze(&img).with_context(|| format!("{}: detection failed", path.display()))?;
                if let Some(dir) = out {
                    let mut rgb = img.to_rgb8();
                    analyzer.draw(&mut rgb, &faces);
                    let unique = name_counts[names[i].as_str()] == 1;
                    let stem = Path::new(&names[i]).file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                    let name = if unique { format!("{stem}.jpg") } else { format!("{stem}_{i}.jpg") };
                    let target = dir.join(name);
                    ferrite::fsutil::write_atomic_with(&target, |tmp| {
                        rgb.save_with_format(tmp, image::ImageFormat::Jpeg)
                            .map_err(|e| ferrite::Error::Plot(format!("{}: {e}", target.display())))
                    })?;
                }
                Ok(faces)
            })();
            bar.inc(1);
            r.map_err(|e| super::report(&e))
        })
        .collect();
    bar.finish_and_clear();
    let mut failed = 0;
    let mut json_rows = Vec::new();
    let mut csv = format!("image,face,x,y,w,h,score,label,{CSV_PROBS}\n");
    for (path, r) in images.iter().zip(&results) {
        match r {
            Ok(faces) => {
                let labels: Vec<String> = faces.iter().map(|f| f.caption()).collect();
                let line = format!("{}: {} face(s){}{}", path.display(), faces.len(), if faces.is_empty() { "" } else { ": " }, labels.join(", "));
                if out.is_some() { println!("{line}") } else { eprintln!("{line}") }
                json_rows.push(serde_json::json!({
                    "image": path.display().to_string(),
                    "faces": faces.iter().map(|f| f.to_json()).collect::<Vec<_>>(),
                }));
                for (k, f) in faces.iter().enumerate() {
                    csv.push_str(&format!("{},{k},{}\n", csv_quote(&path.display().to_string()), face_csv_fields(f)));
                }
            }
            Err(e) => {
                failed += 1;
                eprintln!("error: {e}");
            }
        }
    }
    let text = match format {
        FormatArg::Json => serde_json::to_string_pretty(&json_rows)? + "\n",
        FormatArg::Csv => csv,
    };
    match out {
        Some(dir) => {
            let name = if format == FormatArg::Json { "results.json" } else { "results.csv" };
            ferrite::fsutil::write_atomic(&dir.join(name), text.as_bytes())?;
            println!("wrote {} annotated image(s) and {name} to {}", images.len() - failed, dir.display());
        }
        None => print!("{text}"),
    }
    if failed > 0 {
        bail!("{failed} of {} image(s) could not be processed", images.len());
    }
    Ok(())
}
