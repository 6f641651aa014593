//! Batched inference over a data set: probabilities, predictions and the evaluation report.

use crate::data::Dataset;
use crate::emotion::Emotion;
use crate::metrics::{Confusion, Report};
use crate::model::Network;
use crate::preprocess::{FACE_PIXELS, faces_tensor};
use burn::tensor::activation::softmax;
use burn::tensor::Device;

/// Batch size used for inference over data sets.
pub const EVAL_BATCH: usize = 256;

/// Class probabilities for each face (`faces.len() / FACE_PIXELS` rows), in `Emotion` order.
/// `net` should be in inference mode (`Module::valid`).
pub fn predict_probs(net: &Network, faces: &[u8], device: &Device) -> Vec<[f32; Emotion::COUNT]> {
    let mut out = Vec::with_capacity(faces.len() / FACE_PIXELS);
    for chunk in faces.chunks(EVAL_BATCH * FACE_PIXELS) {
        let x = faces_tensor(chunk, device);
        let probs = softmax(net.forward(x), 1)
            .into_data()
            .try_into_vec::<f32>()
            .expect("model output is f32");
        for row in probs.chunks_exact(Emotion::COUNT) {
            let mut p = [0.0; Emotion::COUNT];
            p.copy_from_slice(row);
            out.push(p);
        }
    }
    out
}

/// Index of the largest value.
pub fn argmax(p: &[f32]) -> usize {
    p.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| if v > bv { (i, v) } else { (bi, bv) })
        .0
}

/// Evaluate `net` on `ds`: accuracy, per-class scores, confusion matrix, mean cross-entropy.
pub fn evaluate(net: &Network, ds: &Dataset, device: &Device) -> Report {
    let probs = predict_probs(net, &ds.faces, device);
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
