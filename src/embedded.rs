//! The default model compiled into the binary: nothing to download at run time.
//!
//! The file is `models/default.ferrite` (f16 weights); `models/README.md` says which training
//! run made it, its accuracy and its sha256.

use crate::error::Result;
use crate::model::Network;
use crate::modelfile::{self, ModelHeader};
use burn::tensor::Device;
use std::path::Path;

/// The bytes of the embedded model file.
pub static DEFAULT_MODEL: &[u8] = include_bytes!("../models/default.ferrite");

/// How errors and reports name the embedded model.
pub const DEFAULT_MODEL_NAME: &str = "<embedded default model>";

/// Build the embedded default model (in inference mode).
pub fn default_model(device: &Device) -> Result<(Network, ModelHeader)> {
    let (net, header) = modelfile::decode(DEFAULT_MODEL, Path::new(DEFAULT_MODEL_NAME), device)?;
    Ok((burn::module::Module::valid(&net), header))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_model_loads_and_gives_probabilities() {
        let device = crate::device::inference_device();
        let started = std::time::Instant::now();
        let (net, header) = default_model(&device).unwrap();
        let load_ms = started.elapsed().as_secs_f64() * 1000.0;
        eprintln!("embedded model ({}) loaded in {load_ms:.1} ms", header.spec.arch);
        let faces: Vec<u8> = (0..2 * crate::preprocess::FACE_PIXELS).map(|i| (i % 256) as u8).collect();
        let p = crate::evaluate::predict_probs(&net, &faces, &device);
        assert_eq!(p.len(), 2);
        for row in p {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-4);
        }
    }
}
