//! `ferrite evaluate`: a model's scores on a labelled data set, or the whole pipeline's on
//! labelled photos.

use ferrite::InferencePrecision;
use ferrite::model::onnx::FastModel;
use super::face::CropArgs;
use super::{Ctx, load_model};
use anyhow::{Context, Result, bail};
use clap::Args;
use ferrite::data::preprocess::Contrast;
use ferrite::data::LoadOptions;
use ferrite::model::infer::Tta;
use ferrite::plot;
use std::path::PathBuf;

#[derive(Args)]
pub struct EvaluateArgs {
    /// A model file, or a training run directory (uses its final or best model).
    /// Default: the model embedded in this binary.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Image folder (one subfolder per class) or FER2013 CSV.
    #[arg(long)]
    pub data: PathBuf,
    /// For CSV data: the Usage rows to use (Training, PublicTest, PrivateTest).
    #[arg(long)]
    pub usage: Option<String>,
    /// Skip unreadable images and bad CSV rows (they are counted).
    #[arg(long)]
    pub skip_bad: bool,
    /// Folder for evaluate.json and confusion.png.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Test-time augmentation: average over the face and its mirror image (flip), ten
    /// shifted and mirrored views (ten), those of the face zoomed to 0.9 and 1.1 too
    /// (thirty), or of those also turned 5 degrees either way (ninety).
    #[arg(long, value_enum, default_value = "none")]
    pub tta: Tta,
    /// Score against FER+'s ten-person majority instead of the data's own labels (faces
    /// with a tie, or a majority of contempt, unknown or not-a-face, are left out).
    #[arg(long)]
    pub ferplus: bool,
    /// FER+ vote file for --data (default: ferplus/NAME.csv beside the folder,
    /// fer2013new.csv beside the CSV, or a FER+ folder's label.csv).
    #[arg(long, requires = "ferplus")]
    pub votes: Option<PathBuf>,
    /// Prior correction on top of the model's own: divide each probability by the class's
    /// training frequency to this power (0 = none, 1 = as if trained balanced).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub prior_correction: f32,
    /// --data is a folder of labelled photos (one subfolder per class): run the whole
    /// pipeline (face detector, crop, model) and score each photo's largest face; photos
    /// where no face is found count as wrong and are listed.
    #[arg(long, conflicts_with_all = ["ferplus", "usage"])]
    pub detect: bool,
    /// The faces' contrast step: equalize (histogram equalisation) or raw (pixels as they are).
    /// Default: the step the model was trained with (its header's `contrast`).
    #[arg(long, value_enum)]
    pub contrast: Option<Contrast>,
    /// Score the faces as the pipeline sees a face whose crop is this many pixels wide in a
    /// photo or video frame (each face shrunk to it and enlarged back to 48): how the model
    /// reads small faces. Default: the faces as they are.
    #[arg(long, conflicts_with = "detect")]
    pub face_size: Option<u32>,
    /// With --detect: how faces are found and cropped (as for `detect`).
    #[command(flatten)]
    pub crop: CropArgs,
    /// f32: the network as trained (burn's kernels, or the compiled graph with --detect);
    /// int8: the quantized compiled graph (a model with int8 calibration).
    #[arg(long, value_enum, default_value = "f32")]
    pub precision: InferencePrecision,
}

pub fn run(args: EvaluateArgs, ctx: &Ctx) -> Result<()> {
    let matmul = ctx.matmul;
    let EvaluateArgs { model, data, usage, skip_bad, out, tta, ferplus, votes, prior_correction, detect, contrast, face_size, crop, precision } =
        args;
    if !detect && crop != CropArgs::DEFAULT {
        bail!("--margin, --pad-retry, --no-align and --detector apply with --detect");
    }
    let (model, data, out, tta) = (model.as_deref(), data.as_path(), out.as_deref(), tta);
    let device = ferrite::device::inference_device();
    let (net, header, model_name) = load_model(model, &device, matmul)?;
    let contrast = contrast.unwrap_or(header.contrast());
    let opts = LoadOptions { skip_bad, usage, max_per_class: None, contrast };
    let ferplus = ferplus.then_some(votes);
    let (net, header) = ferrite::model::infer::correct_priors(net, header, prior_correction)?;
    if detect {
        let builder =
            ferrite::Analyzer::builder().network(net, header.clone()).tta(tta).contrast(Some(opts.contrast)).precision(precision);
        let analyzer = crop.apply(builder).build().context("building the analyzer")?;
        let report = ferrite::eval::photos::evaluate_photos(&analyzer, data).with_context(|| format!("evaluating {}", data.display()))?;
        println!(
            "model {model_name} ({}), {precision}, full pipeline (detector, largest face), test-time augmentation: {tta:?}, prior correction {}",
            header.spec.arch,
            header.meta.prior_correction
        );
        print!("{}", report.to_text());
        if let Some(dir) = out {
            let json = serde_json::to_vec_pretty(&serde_json::json!({
                "model": model_name,
                "data": data.display().to_string(),
                "tta": tta,
                "model_meta": header.meta,
                "photos": report,
            }))?;
            ferrite::fsutil::write_atomic(&dir.join("evaluate.json"), &json)?;
            let title = format!("{} on {} photos (largest face; {:.2}% right)", header.spec.arch, data.display(), 100.0 * report.accuracy);
            plot::confusion(&report.found, &title, &dir.join("confusion.png"))?;
            println!("wrote {}/evaluate.json and confusion.png", dir.display());
        }
        return Ok(());
    }
    let mut ds = ferrite::train::load_labelled(data, &opts, ferplus.as_ref().map(|v| v.as_deref()))
        .with_context(|| format!("loading {}", data.display()))?;
    if let Some(side) = face_size {
        ds.seen_at(side, opts.contrast)?;
    }
    let report = match precision {
        InferencePrecision::F32 => ferrite::eval::evaluate_tta(&net, &ds, &device, tta),
        InferencePrecision::Int8 => {
            let fast = FastModel::with_precision(&net, header.meta.int8.as_ref(), precision).context("compiling the expression model")?;
            ferrite::eval::evaluate_compiled(&fast, &ds, tta)?
        }
    };
    println!(
        "model {model_name} ({}), {precision}, labels: {}, contrast {:?}, test-time augmentation: {tta:?}, prior correction {}{}",
        header.spec.arch,
        if ferplus.is_some() { "FER+ majority" } else { "the data's own" },
        opts.contrast,
        header.meta.prior_correction,
        face_size.map(|s| format!(", faces seen at {s} px")).unwrap_or_default()
    );
    print!("{}", report.to_text());
    if !ds.skipped.is_empty() {
        println!("skipped {} unreadable inputs", ds.skipped.len());
    }
    if let Some(dir) = out {
        let json = serde_json::to_vec_pretty(&serde_json::json!({
            "model": model_name,
            "arch": header.spec.arch,
            "data": data.display().to_string(),
            "skipped": ds.skipped.len(),
            "tta": tta,
            "face_size": face_size,
            "labels": if ferplus.is_some() { "ferplus-majority" } else { "own" },
            "model_meta": header.meta,
            "report": report,
        }))?;
        ferrite::fsutil::write_atomic(&dir.join("evaluate.json"), &json)?;
        let title = format!(
            "{} on {} (accuracy {:.2}%, TTA {tta:?})",
            header.spec.arch,
            data.display(),
            100.0 * report.accuracy
        );
        plot::confusion(&report, &title, &dir.join("confusion.png"))?;
        println!("wrote {}/evaluate.json and confusion.png", dir.display());
    }
    Ok(())
}
