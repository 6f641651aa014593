//! `ferrite predict`: the seven probabilities for each face crop.

use super::load_model;
use anyhow::{Context, Result};
use clap::Args;
use ferrite::Emotion;
use ferrite::kernels::Matmul;
use ferrite::model::infer::Tta;
use ferrite::model::onnx::FastModel;
use ferrite::model::quant::InferencePrecision;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct PredictArgs {
    /// Face images (any format, size or colour; converted to 48x48 grayscale).
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// A model file or training run directory. Default: the model embedded in this binary.
    #[arg(long)]
    pub model: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "none")]
    pub tta: Tta,
    /// The numbers the model computes with (int8: a model with int8 calibration).
    #[arg(long, value_enum, default_value = "f32")]
    pub precision: InferencePrecision,
    /// Print one JSON object per image instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: PredictArgs) -> Result<()> {
    let PredictArgs { images, model, tta, precision, json } = args;
    predict(&images, model.as_deref(), tta, precision, json)
}

fn predict(images: &[PathBuf], model: Option<&Path>, tta: Tta, precision: InferencePrecision, json: bool) -> Result<()> {
    let device = ferrite::device::inference_device();
    // (Classified by the tract-compiled network: the kernels' precision does not apply.)
    let (net, header, _name) = load_model(model, &device, Matmul::F32)?;
    let mut faces = Vec::with_capacity(images.len() * ferrite::data::preprocess::FACE_PIXELS);
    for path in images {
        faces.extend(ferrite::data::read_face(path, header.contrast()).with_context(|| format!("reading {}", path.display()))?);
    }
    let fast = FastModel::with_precision(&net, header.meta.int8.as_ref(), precision).context("compiling the expression model")?;
    let probs = fast.probs_tta(&faces, tta).context("classifying the faces")?;
    if !json {
        print!("{:<28} {:<9}", "image", "label");
        for e in Emotion::ALL {
            print!(" {:>8}", e.name());
        }
        println!();
    }
    for (path, p) in images.iter().zip(&probs) {
        let top = Emotion::ALL[ferrite::emotion::argmax(p)];
        if json {
            let map: serde_json::Map<String, serde_json::Value> =
                Emotion::ALL.iter().map(|e| (e.name().to_string(), serde_json::json!(p[e.index()]))).collect();
            println!(
                "{}",
                serde_json::json!({"image": path.display().to_string(), "label": top.name(), "probabilities": map})
            );
        } else {
            print!("{:<28} {:<9}", path.display().to_string(), top.name());
            for v in p {
                print!(" {v:>8.4}");
            }
            println!();
        }
    }
    Ok(())
}
