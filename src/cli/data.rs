//! `ferrite data`: data set tools (per-class counts, sample grids).

use anyhow::{Context, Result};
use clap::Subcommand;
use ferrite::Emotion;
use ferrite::data::{Dataset, LoadOptions};
use ferrite::plot;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum DataCommand {
    /// Per-class counts and a PNG grid of sample faces.
    Stats {
        /// Image folder or FER2013 CSV.
        dir: PathBuf,
        #[arg(long)]
        usage: Option<String>,
        #[arg(long)]
        skip_bad: bool,
        /// Where to write the sample grid.
        #[arg(long, default_value = "samples.png")]
        grid: PathBuf,
        /// Faces per class in the grid.
        #[arg(long, default_value_t = 10)]
        per_class: usize,
    },
}

pub fn run(command: DataCommand) -> Result<()> {
    let DataCommand::Stats { dir, usage, skip_bad, grid, per_class } = command;
    let ds = Dataset::load(
        &dir,
        &LoadOptions {
            skip_bad,
            usage,
            ..Default::default()
        },
    )
    .with_context(|| format!("loading {}", dir.display()))?;
    let counts = ds.class_counts();
    println!("{:<10} {:>8} {:>7}", "class", "images", "share");
    for e in Emotion::ALL {
        println!(
            "{:<10} {:>8} {:>6.2}%",
            e.name(),
            counts[e.index()],
            100.0 * counts[e.index()] as f64 / ds.len() as f64
        );
    }
    println!("{:<10} {:>8}", "total", ds.len());
    if !ds.skipped.is_empty() {
        println!("skipped {} unreadable inputs:", ds.skipped.len());
        for (src, why) in ds.skipped.iter().take(10) {
            println!("  {src}: {why}");
        }
    }
    plot::sample_grid(&ds, per_class, &grid)
        .with_context(|| format!("writing {}", grid.display()))?;
    println!("sample grid written to {}", grid.display());
    Ok(())
}
