//! `ferrite export`: write a model file (f32 or f16) or ONNX, from one model, an ensemble or
//! averaged weights.

use super::load_model;
use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use ferrite::data::preprocess::Contrast;
use ferrite::data::{Dataset, LoadOptions};
use ferrite::kernels::Matmul;
use ferrite::model::file::{self as modelfile, Precision};
use ferrite::model::onnx;
use ferrite::model::quant::Int8Calibration;
use prost::Message;
use std::path::PathBuf;

#[derive(Args)]
pub struct ExportArgs {
    /// A model file, training run directory or checkpoint directory. Given two or more
    /// times (or with several values: `--model a b`), the file written is an ensemble of the
    /// models: their class probabilities are averaged.
    #[arg(long, required = true, num_args = 1..)]
    pub model: Vec<PathBuf>,
    /// The model file to write.
    #[arg(long)]
    pub out: PathBuf,
    /// ferrite's model file, or ONNX (opset 13, BatchNorm folded, softmax output) for other
    /// runtimes. Default: onnx when --out ends in .onnx, else ferrite.
    #[arg(long, value_enum)]
    pub format: Option<ExportFormat>,
    /// Weight precision of the ferrite format (ONNX is always f32).
    #[arg(long, value_enum, default_value = "f16")]
    pub precision: Precision,
    /// With several --model of one architecture (e.g. a run's last checkpoints, kept with
    /// `train --keep-checkpoints`): write one network whose weights are their mean, instead
    /// of an ensemble. Costs what one model costs.
    #[arg(long)]
    pub average_weights: bool,
    /// Fold a prior correction into the model written: each class probability divided by
    /// its training frequency (`meta.class_priors`) to this power, then renormalised
    /// (0 = none, 1 = decisions as if trained on balanced classes).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub prior_correction: f32,
    /// Record the contrast step the model expects (`meta.contrast`), e.g. `raw` for a model
    /// trained before ferrite equalised every face. Default: keep the model's.
    #[arg(long, value_enum)]
    pub contrast: Option<Contrast>,
    /// Record the class frequencies of this training data (image folder or CSV) as the
    /// model's priors (`meta.class_priors`, used by --prior-correction), for a model
    /// trained before ferrite recorded them.
    #[arg(long)]
    pub class_priors_from: Option<PathBuf>,
    /// Quantize for int8 inference: measure each convolution's output range on the faces of
    /// --calibrate. ONNX: a QLinearConv graph (int8 weights per output channel, 8-bit
    /// activations). ferrite format: the weights as --precision says, with the ranges in the
    /// header (`meta.int8`), for `--precision int8` at analysis time.
    #[arg(long, value_enum, requires = "calibrate")]
    pub quantize: Option<Quantize>,
    /// Faces to calibrate on: an image folder (class subfolders or not) or a FER2013 CSV
    /// (its Training rows).
    #[arg(long, requires = "quantize")]
    pub calibrate: Option<PathBuf>,
    /// At most this many calibration faces per class folder.
    #[arg(long, default_value_t = 300)]
    pub calibrate_per_class: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Quantize {
    Int8,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Ferrite,
    Onnx,
}

pub fn run(args: ExportArgs) -> Result<()> {
    let ExportArgs {
        model,
        out,
        format,
        precision,
        average_weights,
        prior_correction,
        contrast,
        class_priors_from,
        quantize,
        calibrate,
        calibrate_per_class,
    } = args;
    let device = ferrite::device::inference_device();
    let mut parts = Vec::with_capacity(model.len());
    for m in &model {
        parts.push(load_model(Some(m), &device, Matmul::F32)?);
    }
    let (net, header, name) = if average_weights {
        let count = parts.len();
        let (net, header) = modelfile::average(parts.into_iter().map(|(n, h, _)| (n, h)).collect())
            .context("averaging the models' weights")?;
        (burn::module::Module::valid(&net), header, format!("the mean weights of {count} models"))
    } else if parts.len() == 1 {
        parts.remove(0)
    } else {
        let names: Vec<String> = parts.iter().map(|p| p.2.clone()).collect();
        let (net, header) = modelfile::ensemble(parts.into_iter().map(|(n, h, _)| (n, h)).collect())
            .context("building the ensemble")?;
        (net, header, format!("an ensemble of {}", names.join(", ")))
    };
    let mut header = header;
    if let Some(data) = &class_priors_from {
        let opts = LoadOptions { usage: data.is_file().then(|| "Training".to_string()), ..Default::default() };
        let ds = Dataset::load(data, &opts).with_context(|| format!("loading {}", data.display()))?;
        header.meta.class_priors = Some(ds.class_priors());
    }
    let (net, mut header) = ferrite::model::infer::correct_priors(net, header, prior_correction)?;
    if let Some(c) = contrast {
        header.set_contrast(c);
    }
    if let (Some(Quantize::Int8), Some(data)) = (quantize, &calibrate) {
        let opts = LoadOptions {
            usage: data.is_file().then(|| "Training".to_string()),
            max_per_class: Some(calibrate_per_class),
            contrast: header.contrast(),
            ..Default::default()
        };
        let ds = Dataset::load(data, &opts).with_context(|| format!("loading calibration faces from {}", data.display()))?;
        let calibration = Int8Calibration::measure(&net, &ds.faces, &data.display().to_string())
            .with_context(|| format!("calibrating on {}", data.display()))?;
        println!("int8 calibration: {} faces of {}", calibration.faces, data.display());
        header.meta.int8 = Some(calibration);
    }
    let onnx_ext = out.extension().is_some_and(|e| e.eq_ignore_ascii_case("onnx"));
    if format.unwrap_or(if onnx_ext { ExportFormat::Onnx } else { ExportFormat::Ferrite }) == ExportFormat::Onnx {
        let (proto, kind) = match (&header.meta.int8, quantize) {
            (Some(calibration), Some(Quantize::Int8)) => (onnx::to_proto_int8(&net, calibration), "int8 QLinearConv"),
            _ => (onnx::to_proto(&net), "f32"),
        };
        let bytes = proto.context("converting the model to ONNX")?.encode_to_vec();
        ferrite::fsutil::write_atomic(&out, &bytes).with_context(|| format!("writing {}", out.display()))?;
        println!("wrote {} (ONNX opset {}, {kind}, {} bytes) from {name}", out.display(), onnx::OPSET, bytes.len());
        return Ok(());
    }
    modelfile::save_with(&out, &net, &header, precision)
        .with_context(|| format!("writing {}", out.display()))?;
    let size = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    println!("wrote {} ({precision:?}, {size} bytes) from {name}", out.display());
            
    Ok(())
}
