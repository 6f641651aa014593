//! `ferrite summary`: an architecture's Keras-style layer table and diagram.

use super::{ShapeArgs, spec_for};
use anyhow::{Context, Result};
use clap::Args;
use ferrite::model::Arch;
use std::path::PathBuf;

#[derive(Args)]
pub struct SummaryArgs {
    #[arg(long, value_enum, default_value = "reference")]
    pub arch: Arch,
    /// Channel width (architectures that have one, e.g. compact: first-stage channels).
    #[arg(long)]
    pub width: Option<usize>,
    #[command(flatten)]
    pub shape: ShapeArgs,
    /// Write an architecture diagram (.svg or .png).
    #[arg(long)]
    pub diagram: Option<PathBuf>,
}

pub fn run(args: SummaryArgs) -> Result<()> {
    let SummaryArgs { arch, width, shape, diagram } = args;
    let spec = spec_for(arch, width, shape, None)?;
    let s = ferrite::model::summary::summarize(&spec, &ferrite::device::inference_device());
    print!("{}", s.to_text());
    if let Some(path) = diagram {
        s.write_diagram(&path).with_context(|| format!("writing diagram {}", path.display()))?;
        println!("diagram written to {}", path.display());
    }
    Ok(())
}
