//! The models compiled into the binary: nothing to download at run time.
//!
//! `models/default.ferrite` is the default; `models/fer2013.ferrite` the model trained on
//! FER2013's own labels, for the tutorials' benchmark (`--model embedded:fer2013`);
//! `models/distilled.ferrite` the default fine-tuned toward face-api.js's expression network
//! (`--model embedded:distilled`, issue 32's experiment, for measuring on posed faces);
//! `models/both-labels.ferrite` the default fine-tuned on FER+ votes and FER2013's own labels at
//! once (`--model embedded:both-labels`, issue 43's lever, for measuring on posed faces).
//! `models/README.md` says which training run made each, its accuracy and its sha256.

use crate::error::Result;
use crate::model::Network;
use crate::model::file::{self as modelfile, ModelHeader};
use burn::tensor::Device;
use std::path::Path;

/// The bytes of the embedded model file.
pub static DEFAULT_MODEL: &[u8] = include_bytes!("../../models/default.ferrite");

/// How errors and reports name the embedded model.
pub const DEFAULT_MODEL_NAME: &str = "<embedded default model>";

/// The bytes of the embedded FER2013-label model file.
pub static FER2013_MODEL: &[u8] = include_bytes!("../../models/fer2013.ferrite");

/// The bytes of the embedded distilled model file (docs/runs/distill40).
pub static DISTILLED_MODEL: &[u8] = include_bytes!("../../models/distilled.ferrite");

/// The bytes of the embedded both-label-sets model file (docs/runs/own40).
pub static BOTH_LABELS_MODEL: &[u8] = include_bytes!("../../models/both-labels.ferrite");

/// The embedded models' names (`--model embedded:NAME`).
pub const NAMES: [&str; 4] = ["default", "fer2013", "distilled", "both-labels"];

/// Build an embedded model by name (in inference mode).
pub fn named(name: &str, device: &Device) -> Result<(Network, ModelHeader)> {
    let bytes = match name {
        "default" => DEFAULT_MODEL,
        "fer2013" => FER2013_MODEL,
        "distilled" => DISTILLED_MODEL,
        "both-labels" => BOTH_LABELS_MODEL,
        other => {
            return Err(crate::Error::Model(format!(
                "no embedded model '{other}' (embedded: {})",
                NAMES.join(", ")
            )));
        }
    };
    let (net, header) = modelfile::decode(bytes, Path::new(&format!("<embedded {name} model>")), device)?;
    Ok((burn::module::Module::valid(&net), header))
}

/// Build the embedded default model (in inference mode).
pub fn default_model(device: &Device) -> Result<(Network, ModelHeader)> {
    named("default", device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_model_loads_by_name() {
        let device = crate::device::inference_device();
        for name in NAMES {
            let (_, header) = named(name, &device).unwrap();
            assert_eq!(header.classes.len(), crate::Emotion::COUNT);
        }
        assert!(named("nope", &device).unwrap_err().to_string().contains("default, fer2013, distilled, both-labels"));
    }

    #[test]
    fn embedded_model_loads_and_gives_probabilities() {
        let _rng = crate::rng_lock();
        let device = crate::device::inference_device();
        let started = std::time::Instant::now();
        let (net, header) = default_model(&device).unwrap();
        let load_ms = started.elapsed().as_secs_f64() * 1000.0;
        eprintln!("embedded model ({}) loaded in {load_ms:.1} ms", header.spec.arch);
        let faces: Vec<u8> = (0..2 * crate::data::preprocess::FACE_PIXELS).map(|i| (i % 256) as u8).collect();
        let p = crate::model::infer::predict_probs(&net, &faces, &device);
        assert_eq!(p.len(), 2);
        for row in p {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-4);
        }
    }
}
