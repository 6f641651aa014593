//! `ferrite summary`: an architecture's Keras-style layer table and diagram.

use super::NetArgs;
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct SummaryArgs {
    #[command(flatten)]
    pub net: NetArgs,
    /// Write an architecture diagram (.svg or .png).
    #[arg(long)]
    pub diagram: Option<PathBuf>,
}

pub fn run(args: SummaryArgs) -> Result<()> {
    let SummaryArgs { net, diagram } = args;
    let spec = net.spec(None)?;
    let s = ferrite::model::summary::summarize(&spec, &ferrite::device::inference_device());
    print!("{}", s.to_text());
    if let Some(path) = diagram {
        s.write_diagram(&path).with_context(|| format!("writing diagram {}", path.display()))?;
        println!("diagram written to {}", path.display());
    }
    Ok(())
}
