//! The one-file model format: magic, JSON header (architecture and metadata), burnpack weights.
//!
//! Layout: `FERRITE1` (8 bytes) | header length (u32, little endian) | header JSON | weights.
//! Weights are stored as f32 or, to halve the size (the embedded model), f16; they are always
//! loaded back into an f32 network.

use crate::emotion::Emotion;
use crate::error::{Error, Result};
use crate::fsutil::write_atomic;
use crate::model::meta::ModelMeta;
use crate::model::{ModelSpec, Network};
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Device, FloatDType, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"FERRITE1";

/// What a model file says about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelHeader {
    pub spec: ModelSpec,
    /// Class names in output order; must match `Emotion`.
    pub classes: Vec<String>,
    /// The model's contract (preprocessing, class priors, prior correction) and provenance.
    #[serde(default, deserialize_with = "crate::model::meta::lenient_meta")]
    pub meta: ModelMeta,
}

impl ModelHeader {
    pub fn new(spec: ModelSpec, meta: ModelMeta) -> Self {
        ModelHeader {
            spec,
            classes: Emotion::ALL.iter().map(|e| e.name().to_string()).collect(),
            meta,
        }
    }

    /// The contrast step the model was trained with (`meta.contrast`; models without it, and
    /// every model trained from 2026-12-01 on, equalise). Inference feeds it faces in that form.
    pub fn contrast(&self) -> crate::data::preprocess::Contrast {
        self.meta.contrast
    }

    /// Record the contrast step in `meta.contrast`.
    pub fn set_contrast(&mut self, contrast: crate::data::preprocess::Contrast) {
        self.meta.contrast = contrast;
    }
}

/// How weights are stored in a model file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    F32,
    /// Half precision: half the size, predictions within rounding of the f32 model.
    F16,
}

/// Casts every float parameter to one dtype.
struct CastAll(FloatDType);

impl ModuleMapper for CastAll {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let dtype = self.0;
        param.map(|t| t.cast(dtype))
    }
}

/// Serialise a network and its header into the one-file format (f32 weights).
pub fn encode(net: &Network, header: &ModelHeader) -> Result<Vec<u8>> {
    encode_with(net, header, Precision::F32)
}

/// Serialise a network and its header into the one-file format with the given precision.
pub fn encode_with(net: &Network, header: &ModelHeader, precision: Precision) -> Result<Vec<u8>> {
    let head = serde_json::to_vec(header).map_err(|e| Error::Serialize { what: "the model header", source: e.into() })?;
    let net = match precision {
        Precision::F32 => net.clone(),
        // A clone shares BatchNorm running statistics with `net` (mapping it would change
        // `net` too), so cast an independent copy rebuilt from the f32 record.
        Precision::F16 => {
            let bytes = net
                .clone()
                .into_record()
                .into_bytes()
                .map_err(|e| Error::Serialize { what: "the weights", source: e.to_string().into() })?;
            let record = ModuleRecord::from_bytes(bytes).map_err(|e| Error::Serialize { what: "the weights", source: e.to_string().into() })?;
            let device = net.devices().into_iter().next().unwrap_or_default();
            Network::zeroed(&header.spec, &device)
                .try_load_record(record)
                .map_err(|e| Error::Serialize { what: "the f16 weights", source: e.to_string().into() })?
                .map(&mut CastAll(FloatDType::F16))
        }
    };
    let weights = net
        .into_record()
        .into_bytes()
        .map_err(|e| Error::Serialize { what: "the weights", source: e.to_string().into() })?;
    let mut out = Vec::with_capacity(12 + head.len() + weights.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(head.len() as u32).to_le_bytes());
    out.extend_from_slice(&head);
    out.extend_from_slice(&weights);
    Ok(out)
}

/// Rebuild a network from the one-file format. `origin` names the source in errors.
pub fn decode(bytes: &[u8], origin: &Path, device: &Device) -> Result<(Network, ModelHeader)> {
    let (header, weights) = decode_header(bytes, origin)?;
    let bad = |message: String| Error::BadModelFile {
        path: origin.to_path_buf(),
        message,
    };
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(weights.to_vec()))
        .map_err(|e| bad(format!("bad weights: {e}")))?
        .cast_to_module_dtype();
    let net = Network::zeroed(&header.spec, device)
        .try_load_record(record)
        .map_err(|e| bad(format!("weights do not fit the architecture: {e}")))?
        // BatchNorm running statistics keep the stored dtype; make everything f32.
        .map(&mut CastAll(FloatDType::F32));
    Ok((net, header))
}

/// The header of a model file, checked (signature, JSON, architecture, class names), and the
/// weight bytes after it.
pub fn decode_header<'a>(bytes: &'a [u8], origin: &Path) -> Result<(ModelHeader, &'a [u8])> {
    let bad = |message: String| Error::BadModelFile {
        path: origin.to_path_buf(),
        message,
    };
    if bytes.len() < 12 || &bytes[..8] != MAGIC {
        return Err(bad("missing FERRITE1 signature".into()));
    }
    let len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
    let head = bytes
        .get(12..12 + len)
        .ok_or_else(|| bad("truncated header".into()))?;
    let header: ModelHeader =
        serde_json::from_slice(head).map_err(|e| bad(format!("bad header: {e}")))?;
    header.spec.validate().map_err(|e| bad(format!("bad architecture: {e}")))?;
    let expected: Vec<String> = Emotion::ALL.iter().map(|e| e.name().to_string()).collect();
    if header.classes != expected {
        return Err(bad(format!(
            "classes {:?} do not match ferrite's {:?}",
            header.classes, expected
        )));
    }
    Ok((header, &bytes[12 + len..]))
}

/// One network that averages the probabilities of `parts` (each a network and its header;
/// an ensemble among them contributes its members). The header's `meta.members` keeps each
/// part's metadata.
pub fn ensemble(parts: Vec<(Network, ModelHeader)>) -> Result<(Network, ModelHeader)> {
    let mut nets = Vec::new();
    let mut specs = Vec::new();
    let mut metas = Vec::new();
    for (net, header) in parts {
        match net {
            Network::Ensemble(members) => {
                nets.extend(members);
                specs.extend(header.spec.members);
                if header.meta.members.is_empty() {
                    metas.push(header.meta);
                } else {
                    metas.extend(header.meta.members);
                }
            }
            single => {
                nets.push(single);
                specs.push(header.spec);
                metas.push(header.meta);
            }
        }
    }
    let spec = ModelSpec::ensemble(specs);
    spec.validate()?;
    Ok((Network::Ensemble(nets), ModelHeader::new(spec, ModelMeta { members: metas, ..ModelMeta::default() })))
}

/// Gathers every float tensor of a module (parameters and BatchNorm running statistics), in
/// the order `ModuleMapper` visits them.
struct Gather(Vec<TensorData>);

impl ModuleVisitor for Gather {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0.push(param.val().into_data().convert::<f32>());
    }
}

/// Replaces every float tensor, in visiting order, with the next of the given values.
struct Scatter(std::vec::IntoIter<TensorData>);

impl ModuleMapper for Scatter {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        match self.0.next() {
            Some(data) => param.map(|t| Tensor::from_data(data, &t.device())),
            None => param,
        }
    }
}

/// One network whose every weight (and BatchNorm running statistic) is the mean of the same
/// weight in `parts`: checkpoint averaging, as in stochastic weight averaging. The parts must
/// share one architecture (snapshots of one run, typically its last epochs); the result costs
/// what one of them costs. The header's `meta.averaged` keeps each part's metadata.
pub fn average(parts: Vec<(Network, ModelHeader)>) -> Result<(Network, ModelHeader)> {
    let Some(spec) = parts.first().map(|(_, h)| h.spec.clone()) else {
        return Err(Error::Incompatible("no models to average".into()));
    };
    if spec.arch == crate::model::Arch::Ensemble {
        return Err(Error::Incompatible("an ensemble's weights cannot be averaged: average its members' runs".into()));
    }
    if let Some((i, _)) = parts.iter().enumerate().find(|(_, (_, h))| h.spec != spec) {
        return Err(Error::Incompatible(format!(
            "model {} has another architecture than model 1: only snapshots of one architecture can be averaged",
            i + 1
        )));
    }
    let mut sums: Vec<Vec<f32>> = Vec::new();
    let mut shapes = Vec::new();
    let mut metas = Vec::with_capacity(parts.len());
    let count = parts.len();
    let mut device = None;
    for (net, header) in parts {
        let mut gather = Gather(Vec::new());
        net.visit(&mut gather);
        if !sums.is_empty() && sums.len() != gather.0.len() {
            return Err(Error::Incompatible("models of one architecture hold different tensors".into()));
        }
        if sums.is_empty() {
            shapes = gather.0.iter().map(|d| d.shape().clone()).collect();
            sums = gather.0.iter().map(|d| vec![0.0; d.num_elements()]).collect();
        }
        for (sum, data) in sums.iter_mut().zip(&gather.0) {
            let values = data.as_slice::<f32>().map_err(|e| Error::Incompatible(format!("weights are not f32: {e:?}")))?;
            for (s, v) in sum.iter_mut().zip(values) {
                *s += v;
            }
        }
        metas.push(header.meta);
        if device.is_none() {
            device = net.devices().into_iter().next();
        }
    }
    let scale = 1.0 / count as f32;
    let means: Vec<TensorData> = sums
        .into_iter()
        .zip(shapes)
        .map(|(sum, shape)| TensorData::new(sum.into_iter().map(|s| s * scale).collect::<Vec<f32>>(), shape))
        .collect();
    let device = device.unwrap_or_default();
    // A fresh network, so the result shares no running-statistics storage with a part.
    let net = Network::new(&spec, &device).map(&mut Scatter(means.into_iter()));
    Ok((net, ModelHeader::new(spec, averaged_meta(metas)?)))
}

/// The contract of an averaged model: the parts' contrast step (which must agree), their class
/// priors and label set where all agree, and the mean of their folded prior corrections (the
/// corrections are offsets of the classifier's bias, so the mean bias carries the mean
/// correction when the priors agree).
fn averaged_meta(metas: Vec<ModelMeta>) -> Result<ModelMeta> {
    let first = &metas[0];
    if metas.iter().any(|m| m.contrast != first.contrast) {
        return Err(Error::Incompatible("the models expect different contrast steps: their weights cannot be averaged".into()));
    }
    let class_priors = first.class_priors.filter(|p| metas.iter().all(|m| m.class_priors.as_ref() == Some(p)));
    let labels = first.labels.clone().filter(|l| metas.iter().all(|m| m.labels.as_ref() == Some(l)));
    // Without shared priors there is no correction to record (nor to undo).
    let prior_correction = match class_priors {
        Some(_) => metas.iter().map(|m| m.prior_correction).sum::<f64>() / metas.len() as f64,
        None => 0.0,
    };
    Ok(ModelMeta { contrast: first.contrast, class_priors, labels, prior_correction, averaged: metas, ..ModelMeta::default() })
}

/// Write a model file atomically.
pub fn save(path: &Path, net: &Network, header: &ModelHeader) -> Result<()> {
    write_atomic(path, &encode(net, header)?)
}

/// Write a model file atomically with the given weight precision.
pub fn save_with(path: &Path, net: &Network, header: &ModelHeader, precision: Precision) -> Result<()> {
    write_atomic(path, &encode_with(net, header, precision)?)
}

/// Read a model file.
pub fn load(path: &Path, device: &Device) -> Result<(Network, ModelHeader)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    decode(&bytes, path, device)
}

/// A finished training run's model inside its run directory.
pub const FINAL_MODEL_FILE: &str = "model.ferrite";
/// The best epoch's model inside a run directory (written as training goes).
pub const BEST_MODEL_FILE: &str = "best.ferrite";

/// The model to use from training run directory `dir`: the final model if training finished,
/// else the best so far.
pub fn run_dir_model(dir: &Path) -> PathBuf {
    let f = dir.join(FINAL_MODEL_FILE);
    if f.exists() { f } else { dir.join(BEST_MODEL_FILE) }
}

/// The file to read for a model path: the path itself, or a run directory's model.
pub fn model_file(p: &Path) -> PathBuf {
    if p.is_dir() { run_dir_model(p) } else { p.to_path_buf() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Arch;
    use crate::data::preprocess::FACE_PIXELS;

    #[test]
    fn save_load_round_trip_gives_identical_predictions() {
        let _rng = crate::rng_lock();
        let device = crate::device::inference_device();
        let spec = ModelSpec::new(Arch::Reference);
        let net = Network::new(&spec, &device).valid();
        let dir = crate::fsutil::TempDir::new().unwrap();
        let path = dir.path().join("m.ferrite");
        save(&path, &net, &ModelHeader::new(spec.clone(), ModelMeta::from_json(serde_json::json!({"k": 1})))).unwrap();
        let (back, header) = load(&path, &device).unwrap();
        assert_eq!(header.spec, spec);
        assert_eq!(header.meta.extra["k"], 1);
        let faces: Vec<u8> = (0..3 * FACE_PIXELS).map(|i| (i * 31 % 256) as u8).collect();
        let x = crate::data::preprocess::faces_tensor(&faces, &device);
        let a = net.forward(x.clone()).into_data().try_into_vec::<f32>().unwrap();
        let b = back.valid().forward(x).into_data().try_into_vec::<f32>().unwrap();
        assert_eq!(a, b, "predictions must match bit for bit");
    }

    #[test]
    fn f16_files_are_half_the_size_and_load_as_f32() {
        let _rng = crate::rng_lock();
        let device = crate::device::inference_device();
        let spec = ModelSpec::new(Arch::Compact);
        let net = Network::new(&spec, &device).valid();
        let header = ModelHeader::new(spec, ModelMeta::from_json(serde_json::Value::Null));
        let full = encode(&net, &header).unwrap();
        let half = encode_with(&net, &header, Precision::F16).unwrap();
        assert!(half.len() * 10 < full.len() * 6, "{} vs {}", half.len(), full.len());
        let (back, _) = decode(&half, Path::new("half.ferrite"), &device).unwrap();
        let faces: Vec<u8> = (0..4 * FACE_PIXELS).map(|i| (i * 13 % 256) as u8).collect();
        let x = crate::data::preprocess::faces_tensor(&faces, &device);
        let a = net.forward(x.clone()).into_data().try_into_vec::<f32>().unwrap();
        let b = back.valid().forward(x).into_data().try_into_vec::<f32>().unwrap();
        for (p, q) in a.iter().zip(&b) {
            assert!((p - q).abs() < 2e-2 * (1.0 + p.abs()), "{p} vs {q}");
        }
    }

    /// Loading a model (both architectures, f32 and f16, on the training and the inference
    /// device) leaves the seeded generator where it was: a model loaded on another thread
    /// cannot change a training run (CI once saw `resume_repeats_an_uninterrupted_run` differ
    /// from its own uninterrupted run while other tests loaded the embedded models).
    #[test]
    fn loading_a_model_draws_nothing_from_the_seeded_generator() {
        let _rng = crate::rng_lock();
        let train = crate::device::training_device();
        let draw = || Tensor::<1>::random([4], burn::tensor::Distribution::Default, &train).into_data().try_into_vec::<f32>().unwrap();
        train.seed(3);
        let want = draw();
        let mut files = vec![crate::model::embedded::DEFAULT_MODEL.to_vec()];
        for arch in [Arch::Reference, Arch::Compact] {
            let spec = ModelSpec::new(arch);
            let net = Network::new(&spec, &train).valid();
            let header = ModelHeader::new(spec, ModelMeta::from_json(serde_json::Value::Null));
            files.push(encode_with(&net, &header, Precision::F16).unwrap());
            files.push(encode(&net, &header).unwrap());
        }
        for device in [crate::device::inference_device(), train.clone()] {
            for bytes in &files {
                train.seed(3);
                let (_, header) = decode(bytes, Path::new("m.ferrite"), &device).unwrap();
                assert_eq!(draw(), want, "loading a {} model drew from the generator", header.spec.arch);
            }
        }
        // Every weight comes from the file: loaded into randomly initialised weights instead of
        // zeros, each model predicts the same, bit for bit.
        let device = crate::device::inference_device();
        let x = crate::data::preprocess::faces_tensor(&(0..2 * FACE_PIXELS).map(|i| (i * 7 % 256) as u8).collect::<Vec<_>>(), &device);
        for bytes in &files {
            let (header, weights) = decode_header(bytes, Path::new("m.ferrite")).unwrap();
            let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(weights.to_vec())).unwrap().cast_to_module_dtype();
            let random = Network::new(&header.spec, &device).load_record(record).map(&mut CastAll(FloatDType::F32));
            let (zeroed, _) = decode(bytes, Path::new("m.ferrite"), &device).unwrap();
            assert_eq!(random.valid().forward(x.clone()).into_data(), zeroed.valid().forward(x.clone()).into_data());
        }
    }

    /// An ensemble file keeps every member's weights: it reads back with the same predictions
    /// (f32 bit for bit, f16 within rounding), and its header names the members.
    #[test]
    fn ensemble_files_round_trip() {
        let _rng = crate::rng_lock();
        let device = crate::device::inference_device();
        let part = |width: usize, seed: u32| {
            let mut spec = ModelSpec::new(Arch::Compact);
            spec.width = Some(width);
            (Network::new(&spec, &device).valid(), ModelHeader::new(spec, ModelMeta::from_json(serde_json::json!({ "seed": seed }))))
        };
        let (net, header) = ensemble(vec![part(4, 1), part(6, 2)]).unwrap();
        assert_eq!(header.spec.arch, Arch::Ensemble);
        assert_eq!(header.meta.members[1].extra["seed"], 2);
        // An ensemble given as a part contributes its members.
        let (bigger, bigger_header) = ensemble(vec![(net.clone(), header.clone()), part(4, 3)]).unwrap();
        assert_eq!(bigger.members().len(), 3);
        assert_eq!(bigger_header.meta.members.len(), 3);
        let faces: Vec<u8> = (0..3 * FACE_PIXELS).map(|i| (i * 17 % 256) as u8).collect();
        let x = crate::data::preprocess::faces_tensor(&faces, &device);
        let want = net.forward(x.clone()).into_data().try_into_vec::<f32>().unwrap();
        let (back, back_header) = decode(&encode(&net, &header).unwrap(), Path::new("e.ferrite"), &device).unwrap();
        assert_eq!(back_header, header);
        assert_eq!(back.valid().forward(x.clone()).into_data().try_into_vec::<f32>().unwrap(), want);
        let (half, _) = decode(&encode_with(&net, &header, Precision::F16).unwrap(), Path::new("h.ferrite"), &device).unwrap();
        let got = half.valid().forward(x).into_data().try_into_vec::<f32>().unwrap();
        for (p, q) in want.iter().zip(&got) {
            assert!((p - q).abs() < 2e-2 * (1.0 + p.abs()), "{p} vs {q}");
        }
    }

    /// Averaging gives every weight and running statistic the parts' mean; one architecture only.
    #[test]
    fn average_is_the_mean_of_every_tensor() {
        let _rng = crate::rng_lock();
        let device = crate::device::inference_device();
        let mut spec = ModelSpec::new(Arch::Compact);
        spec.width = Some(4);
        let part = |seed: u32| {
            // Shift every tensor, so running statistics differ between parts too (they start
            // at 0 and 1 in every fresh network).
            let net = Network::new(&spec, &device);
            let mut g = Gather(Vec::new());
            net.visit(&mut g);
            let shifted: Vec<TensorData> = g
                .0
                .into_iter()
                .map(|d| {
                    let v: Vec<f32> = d.as_slice::<f32>().unwrap().iter().map(|x| x + seed as f32).collect();
                    TensorData::new(v, d.shape().clone())
                })
                .collect();
            let net = net.map(&mut Scatter(shifted.into_iter()));
            let meta = serde_json::json!({ "epoch": seed, "class_priors": [0.1, 0.01, 0.03, 0.28, 0.35, 0.13, 0.1],
                "prior_correction": 0.1 * seed as f64, "labels": "ferplus-crossentropy" });
            (net, ModelHeader::new(spec.clone(), ModelMeta::from_json(meta)))
        };
        let parts = vec![part(1), part(2), part(6)];
        let gathered: Vec<Vec<TensorData>> = parts
            .iter()
            .map(|(n, _)| {
                let mut g = Gather(Vec::new());
                n.visit(&mut g);
                g.0
            })
            .collect();
        let (avg, header) = average(parts).unwrap();
        assert_eq!(header.meta.averaged[2].epoch, Some(6));
        // The contract the parts share is kept; their folded corrections average.
        assert_eq!(header.meta.class_priors.map(|p| p[4]), Some(0.35));
        assert_eq!(header.meta.labels.as_deref(), Some("ferplus-crossentropy"));
        assert!((header.meta.prior_correction - 0.3).abs() < 1e-9, "{}", header.meta.prior_correction);
        let mut g = Gather(Vec::new());
        avg.visit(&mut g);
        assert_eq!(g.0.len(), gathered[0].len());
        assert!(g.0.len() > 10, "parameters and running statistics are all visited");
        for (i, got) in g.0.iter().enumerate() {
            let got = got.as_slice::<f32>().unwrap();
            let parts: Vec<&[f32]> = gathered.iter().map(|p| p[i].as_slice::<f32>().unwrap()).collect();
            for (j, v) in got.iter().enumerate() {
                let want = parts.iter().map(|p| p[j]).sum::<f32>() / 3.0;
                assert!((v - want).abs() < 1e-5, "tensor {i} element {j}: {v} vs {want}");
            }
        }
        // The mean of one model is that model; its predictions are unchanged.
        let one = part(3);
        let faces: Vec<u8> = (0..2 * FACE_PIXELS).map(|i| (i * 7 % 256) as u8).collect();
        let x = crate::data::preprocess::faces_tensor(&faces, &device);
        let want = one.0.clone().valid().forward(x.clone()).into_data().try_into_vec::<f32>().unwrap();
        let (same, _) = average(vec![one]).unwrap();
        assert_eq!(same.valid().forward(x).into_data().try_into_vec::<f32>().unwrap(), want);
        // Another width is another architecture.
        let mut wider = spec.clone();
        wider.width = Some(6);
        let other = (Network::new(&wider, &device), ModelHeader::new(wider, ModelMeta::from_json(serde_json::Value::Null)));
        let err = average(vec![part(1), other]).unwrap_err().to_string();
        assert!(err.contains("model 2") && err.contains("architecture"), "{err}");
        // Parts that disagree on their priors keep none (and no correction); on contrast, refused.
        let (mut a, mut b) = (part(1), part(2));
        b.1.meta.class_priors = None;
        let (_, h) = average(vec![a.clone(), b.clone()]).unwrap();
        assert_eq!((h.meta.class_priors, h.meta.prior_correction), (None, 0.0));
        a.1.meta.contrast = crate::data::preprocess::Contrast::Raw;
        assert!(average(vec![a, b]).unwrap_err().to_string().contains("contrast"));
        assert!(average(Vec::new()).is_err());
    }

    #[test]
    fn corrupt_files_are_rejected_with_the_path() {
        let _rng = crate::rng_lock();
        let device = crate::device::inference_device();
        let p = Path::new("bad.ferrite");
        let err = decode(b"hello world, not a model", p, &device).unwrap_err().to_string();
        assert!(err.contains("bad.ferrite") && err.contains("signature"), "{err}");
        let spec = ModelSpec::new(Arch::Reference);
        let net = Network::new(&spec, &device);
        let bytes = encode(&net, &ModelHeader::new(spec, ModelMeta::from_json(serde_json::Value::Null))).unwrap();
        let err = decode(&bytes[..bytes.len() / 2], p, &device).unwrap_err().to_string();
        assert!(err.contains("bad.ferrite"), "{err}");
        let err = decode(&bytes[..20], p, &device).unwrap_err().to_string();
        assert!(err.contains("truncated header"), "{err}");
    }
}
