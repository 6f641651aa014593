//! Evaluation: a network's scores on a labelled data set (accuracy, balanced accuracy,
//! per-class precision/recall/F1, confusion, loss; [`metrics`]) and the whole pipeline's on
//! labelled photos ([`photos`]).

pub mod metrics;
pub mod photos;

use crate::data::Dataset;
use crate::emotion::{Emotion, argmax};
use crate::model::Network;
use crate::model::infer::{Tta, predict_probs_tta};
use burn::tensor::Device;
use metrics::{Confusion, Report};

/// Evaluate `net` on `ds`: accuracy, per-class scores, confusion matrix, mean cross-entropy.
pub fn evaluate(net: &Network, ds: &Dataset, device: &Device) -> Report {
    evaluate_tta(net, ds, device, Tta::None)
}

/// [`evaluate`] with test-time augmentation.
pub fn evaluate_tta(net: &Network, ds: &Dataset, device: &Device, tta: Tta) -> Report {
    report(&predict_probs_tta(net, &ds.faces, device, tta), ds)
}

/// [`evaluate_tta`] through the compiled single-face path (`FastModel`, at its precision).
pub fn evaluate_compiled(model: &crate::model::onnx::FastModel, ds: &Dataset, tta: Tta) -> crate::error::Result<Report> {
    Ok(report(&model.probs_tta(&ds.faces, tta)?, ds))
}

/// Scores of `probs` (one row per face of `ds`) against its labels.
fn report(probs: &[[f32; Emotion::COUNT]], ds: &Dataset) -> Report {
    let mut confusion = Confusion::default();
    let mut loss = 0.0f64;
    for (p, &truth) in probs.iter().zip(&ds.labels) {
        let pred = Emotion::ALL[argmax(p)];
        confusion.add(truth, pred);
        let pt = p[truth.index()];
        // NaN (a diverged network) must show in the loss, not be clamped away by `max`.
        loss -= if pt.is_nan() { f64::NAN } else { (pt.max(1e-12) as f64).ln() };
    }
    let mean_loss = if ds.is_empty() { None } else { Some(loss / ds.len() as f64) };
    confusion.report(mean_loss)
}
