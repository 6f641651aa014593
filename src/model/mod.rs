//! The networks: architectures (`compact`, `reference`, each described once as a list of
//! layers that `layers::run` executes), ensembles, and the `Network` that wraps them.

pub mod compact;
pub mod embedded;
pub mod ensemble;
pub mod file;
pub mod infer;
pub mod layers;
pub mod meta;
pub mod onnx;
pub mod quant;
pub mod reference;
pub mod source;
pub mod summary;

use crate::error::{Error, Result};
use crate::kernels::Matmul;
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

pub use compact::{CompactCnn, CompactConfig};
pub use layers::{Layer, LayerKind, LayerRow, Pass, Tape};
pub use reference::{ReferenceCnn, ReferenceConfig};

/// The architectures ferrite can build (`--arch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// The FER2013 tutorials' CNN: 4 conv blocks, 2 dense blocks, 4,478,727 parameters (the
    /// default network of a run from scratch).
    #[default]
    Reference,
    /// ferrite's VGG-style compact CNN: 8 conv layers, global average pooling (~1.17M parameters
    /// at width 32).
    Compact,
    /// Several trained networks (`ModelSpec::members`) whose class probabilities are averaged.
    /// Built from trained models (`ferrite export --model A --model B`), never trained as one.
    #[cfg_attr(feature = "cli", value(skip))]
    Ensemble,
}

impl Arch {
    /// The architectures that can be trained (`--arch`); an ensemble is assembled, not trained.
    pub const ALL: [Arch; 2] = [Arch::Reference, Arch::Compact];

    pub fn name(self) -> &'static str {
        match self {
            Arch::Reference => "reference",
            Arch::Compact => "compact",
            Arch::Ensemble => "ensemble",
        }
    }

    /// The channel width used when a spec gives none (`None` for fixed architectures).
    pub fn default_width(self) -> Option<usize> {
        match self {
            Arch::Reference | Arch::Ensemble => None,
            Arch::Compact => Some(32),
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Arch {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Arch::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| {
                Error::Config(format!(
                    "unknown architecture '{s}' (known: {})",
                    Arch::ALL.map(|a| a.name()).join(", ")
                ))
            })
    }
}

/// Everything needed to rebuild a network before loading its weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    pub arch: Arch,
    /// Dropout probability of every dropout layer.
    pub dropout: f64,
    /// Channel width for architectures that have one (compact: first-stage channels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<usize>,
    /// Compact: side of the centre crop of the 48x48 face the network sees (`None`: all of it).
    /// Training with a random shift then amounts to random-crop augmentation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crop: Option<usize>,
    /// Compact: convolutions in the first, full-resolution stage, 1 or 2 (`None`: 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stem_convs: Option<usize>,
    /// Ensemble: the member networks, two or more, none of them an ensemble.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<ModelSpec>,
}

impl ModelSpec {
    pub fn new(arch: Arch) -> Self {
        ModelSpec {
            arch,
            dropout: 0.25,
            width: arch.default_width(),
            crop: None,
            stem_convs: None,
            members: Vec::new(),
        }
    }

    /// The spec of an ensemble of `members` (checked by `validate`).
    pub fn ensemble(members: Vec<ModelSpec>) -> Self {
        ModelSpec {
            dropout: 0.0,
            members,
            ..ModelSpec::new(Arch::Ensemble)
        }
    }

    /// Check the spec describes a network that can be built.
    pub fn validate(&self) -> Result<()> {
        if self.arch == Arch::Ensemble {
            if self.members.len() < 2 {
                return Err(Error::Config(format!("an ensemble needs two or more members, got {}", self.members.len())));
            }
            if self.members.iter().any(|m| m.arch == Arch::Ensemble) {
                return Err(Error::Config("an ensemble's members cannot be ensembles".into()));
            }
            return self.members.iter().try_for_each(ModelSpec::validate);
        }
        if !self.members.is_empty() {
            return Err(Error::Config(format!("architecture '{}' has no ensemble members", self.arch)));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::Config(format!("dropout must be in [0, 1), got {}", self.dropout)));
        }
        match (self.arch.default_width(), self.width) {
            (None, Some(w)) => Err(Error::Config(format!(
                "architecture '{}' has a fixed width; a width ({w}) does not apply",
                self.arch
            ))),
            (Some(_), Some(w)) if !(4..=256).contains(&w) => {
                Err(Error::Config(format!("width must be in 4..=256, got {w}")))
            }
            _ => Ok(()),
        }?;
        if self.arch != Arch::Compact && (self.crop.is_some() || self.stem_convs.is_some()) {
            return Err(Error::Config(format!(
                "crop and stem convolutions apply to the compact architecture, not '{}'",
                self.arch
            )));
        }
        if let Some(c) = self.crop.filter(|c| !(16..=crate::data::preprocess::FACE_SIZE).contains(c)) {
            return Err(Error::Config(format!("crop must be in 16..={}, got {c}", crate::data::preprocess::FACE_SIZE)));
        }
        if let Some(s) = self.stem_convs.filter(|s| !(1..=2).contains(s)) {
            return Err(Error::Config(format!("stem convolutions must be 1 or 2, got {s}")));
        }
        Ok(())
    }
}

/// Any ferrite network. Input (N, 1, 48, 48) in [0, 1]; output (N, 7) logits in `Emotion` order.
// The variants hold module handles (a few KB), built once per model: boxing buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Network {
    Reference(ReferenceCnn),
    Compact(CompactCnn),
    /// Members' probabilities averaged; `forward` returns the log of the average, so a softmax
    /// of the output gives the average back.
    Ensemble(Vec<Network>),
}

/// Replaces each parameter, still uninitialised, by zeros of its shape on its device, keeping
/// its id; trainable, as burn's initialisers make every parameter.
struct Zeroed;

impl burn::module::ModuleMapper for Zeroed {
    fn map_float<const D: usize>(&mut self, param: burn::module::Param<Tensor<D>>) -> burn::module::Param<Tensor<D>> {
        let zeros = Tensor::zeros(param.lazy_shape(), &param.lazy_device());
        burn::module::Param::initialized(param.id, zeros).set_require_grad(true)
    }
}

impl Network {
    /// A freshly initialised network.
    pub fn new(spec: &ModelSpec, device: &Device) -> Network {
        match spec.arch {
            Arch::Reference => Network::Reference(
                ReferenceConfig {
                    dropout: spec.dropout,
                }
                .init(device),
            ),
            Arch::Compact => Network::Compact(
                CompactConfig {
                    width: spec.width.or(Arch::Compact.default_width()).unwrap_or(32),
                    dropout: spec.dropout,
                    crop: spec.crop,
                    stem_convs: spec.stem_convs.unwrap_or(2),
                }
                .init(device),
            ),
            Arch::Ensemble => Network::Ensemble(spec.members.iter().map(|m| Network::new(m, device)).collect()),
        }
    }

    /// A network of `spec`'s shape with zero weights, to load weights into. Building it draws
    /// nothing from the backend's random generator (the initialisers of [`Network::new`] draw
    /// when first used, and loading a record can trigger them), so loading a model never moves
    /// the seeded generator under a training run elsewhere in the process.
    pub fn zeroed(spec: &ModelSpec, device: &Device) -> Network {
        Network::new(spec, device).map(&mut Zeroed)
    }

    /// The single networks this one is made of: itself, or an ensemble's members.
    pub fn members(&self) -> Vec<&Network> {
        match self {
            Network::Ensemble(members) => members.iter().collect(),
            single => vec![single],
        }
    }

    /// The network with `offset[k]` added to class k's logit (the classifier's bias), in every
    /// member of an ensemble: post-hoc logit adjustment. With `offset = -tau * ln(prior)` the
    /// softmax becomes `p_k / prior_k^tau` renormalised, i.e. decisions as if the classes had
    /// been equally frequent in training (`tau = 1`), or part way there.
    pub fn shift_logits(self, offset: &[f32; crate::Emotion::COUNT]) -> Network {
        fn shift(head: burn::nn::Linear, offset: &[f32; crate::Emotion::COUNT]) -> burn::nn::Linear {
            let device = head.weight.val().device();
            let add = Tensor::<1>::from_data(burn::tensor::TensorData::new(offset.to_vec(), [offset.len()]), &device);
            let bias = match head.bias {
                Some(b) => b.map(|t| t + add),
                None => burn::module::Param::from_tensor(add),
            };
            burn::nn::Linear {
                bias: Some(bias),
                ..head
            }
        }
        match self {
            Network::Reference(mut m) => {
                m.head = shift(m.head, offset);
                Network::Reference(m)
            }
            Network::Compact(mut m) => {
                m.head = shift(m.head, offset);
                Network::Compact(m)
            }
            Network::Ensemble(members) => Network::Ensemble(members.into_iter().map(|m| m.shift_logits(offset)).collect()),
        }
    }

    /// The same network with its convolutions' matrix products in precision `mm` (every
    /// member of an ensemble). Fresh and loaded networks compute in f32.
    pub fn with_matmul(self, mm: Matmul) -> Network {
        match self {
            Network::Reference(mut m) => {
                m.matmul = mm;
                Network::Reference(m)
            }
            Network::Compact(mut m) => {
                m.matmul = mm;
                Network::Compact(m)
            }
            Network::Ensemble(members) => Network::Ensemble(members.into_iter().map(|m| m.with_matmul(mm)).collect()),
        }
    }

    /// The precision of the convolutions' matrix products (an ensemble's first member's).
    pub fn matmul(&self) -> Matmul {
        match self {
            Network::Reference(m) => m.matmul,
            Network::Compact(m) => m.matmul,
            Network::Ensemble(members) => members.first().map_or(Matmul::F32, Network::matmul),
        }
    }

    /// Class logits for a batch of faces.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward_with(x, &mut Pass::default())
    }

    /// The layers in execution order: the one description of a single network that the
    /// forward pass, layer tables, diagrams and the ONNX exporter read. An ensemble is no
    /// chain of layers: its members' concatenated, for inspection only (exporters take each of
    /// `members` in turn).
    pub fn layers(&self) -> Vec<Layer<'_>> {
        match self {
            Network::Reference(m) => m.layers(),
            Network::Compact(m) => m.layers(),
            Network::Ensemble(members) => members.iter().flat_map(Network::layers).collect(),
        }
    }

    /// `forward` in the context `pass` (a layer tape, a training replica's state).
    pub fn forward_with(&self, x: Tensor<4>, pass: &mut Pass) -> Tensor<2> {
        match self {
            Network::Reference(m) => layers::run(&m.layers(), x, m.matmul, pass),
            Network::Compact(m) => layers::run(&m.layers(), x, m.matmul, pass),
            Network::Ensemble(members) => ensemble::forward(members, x, pass),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The precision a network carries survives what training and inference do to it: the
    /// switch to inference, moving devices, loading a record and an optimiser step.
    #[test]
    fn matmul_precision_travels_with_the_network() {
        use burn::optim::{AdamConfig, GradientsParams};
        let _rng = crate::rng_lock();
        let device = crate::device::training_device();
        let mut spec = ModelSpec::new(Arch::Compact);
        spec.width = Some(4);
        let Ok(bf16) = Matmul::new(crate::kernels::MatmulPrecision::Bf16) else {
            eprintln!("skipped: this CPU has no AVX512_BF16");
            return;
        };
        let net = Network::new(&spec, &device).with_matmul(bf16);
        assert_eq!(net.valid().matmul(), bf16);
        assert_eq!(net.clone().to_device(&device).matmul(), bf16);
        let loaded = Network::new(&spec, &device).with_matmul(bf16).load_record(Network::new(&spec, &device).into_record());
        assert_eq!(loaded.matmul(), bf16);
        let x = Tensor::<4>::ones([2, 1, 48, 48], &device);
        let grads = GradientsParams::from_grads(net.forward(x).sum().backward(), &net);
        let mut optim = AdamConfig::new().init();
        assert_eq!(optim.step(1e-3, net, grads).matmul(), bf16);
        assert_eq!(Network::new(&spec, &device).matmul(), Matmul::F32, "fresh networks compute in f32");
    }

    #[test]
    fn arch_names_parse() {
        for a in Arch::ALL {
            assert_eq!(a.name().parse::<Arch>().unwrap(), a);
        }
        assert!("resnet9000".parse::<Arch>().is_err());
    }

    #[test]
    fn specs_validate_width_and_dropout() {
        assert!(ModelSpec::new(Arch::Reference).validate().is_ok());
        assert!(ModelSpec::new(Arch::Compact).validate().is_ok());
        let mut s = ModelSpec::new(Arch::Reference);
        s.width = Some(16);
        assert!(s.validate().unwrap_err().to_string().contains("fixed width"));
        let mut s = ModelSpec::new(Arch::Compact);
        s.width = Some(0);
        assert!(s.validate().is_err());
        s.width = Some(16);
        s.dropout = 1.0;
        assert!(s.validate().is_err());
        let mut s = ModelSpec::new(Arch::Compact);
        s.crop = Some(40);
        s.stem_convs = Some(1);
        assert!(s.validate().is_ok());
        s.crop = Some(49);
        assert!(s.validate().unwrap_err().to_string().contains("crop"));
        s.crop = Some(40);
        s.stem_convs = Some(3);
        assert!(s.validate().unwrap_err().to_string().contains("stem"));
        let mut s = ModelSpec::new(Arch::Reference);
        s.crop = Some(40);
        assert!(s.validate().unwrap_err().to_string().contains("compact"));
    }

    /// A spec without the newer shape fields (an older model file's header) reads back as the
    /// uncropped two-conv stem, and a cropped spec survives a JSON round trip.
    #[test]
    fn spec_shape_fields_default_and_round_trip() {
        let old: ModelSpec = serde_json::from_str(r#"{"arch":"compact","dropout":0.2,"width":32}"#).unwrap();
        assert_eq!((old.crop, old.stem_convs), (None, None));
        assert!(!serde_json::to_string(&old).unwrap().contains("crop"));
        let mut s = ModelSpec::new(Arch::Compact);
        s.crop = Some(40);
        s.stem_convs = Some(1);
        let back: ModelSpec = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }

    /// A 40-pixel centre crop and a one-conv stem: every stage sees the cropped size.
    #[test]
    fn compact_cropped_one_conv_stem_shapes() {
        let _rng = crate::rng_lock();
        let device = crate::device::inference_device();
        let mut spec = ModelSpec::new(Arch::Compact);
        spec.width = Some(8);
        spec.crop = Some(40);
        spec.stem_convs = Some(1);
        let net = Network::new(&spec, &device);
        let mut pass = Pass::traced();
        let y = net.valid().forward_with(Tensor::<4>::zeros([2, 1, 48, 48], &device), &mut pass);
        assert_eq!(y.dims(), [2, crate::Emotion::COUNT]);
        let rows = pass.tape.into_rows();
        assert_eq!(rows[0].kind, LayerKind::Cropping2D);
        assert_eq!(rows[0].shape, vec![1, 40, 40]);
        let convs: Vec<_> = rows.iter().filter(|r| r.kind == LayerKind::Conv2D).map(|r| r.shape.clone()).collect();
        assert_eq!(
            convs,
            vec![
                vec![8, 40, 40], vec![16, 20, 20], vec![16, 20, 20],
                vec![32, 10, 10], vec![32, 10, 10], vec![64, 5, 5], vec![64, 5, 5]
            ]
        );
        let pools: Vec<_> = rows.iter().filter(|r| r.kind == LayerKind::MaxPooling2D).map(|r| r.shape.clone()).collect();
        assert_eq!(pools, vec![vec![8, 20, 20], vec![16, 10, 10], vec![32, 5, 5], vec![64, 2, 2]]);
    }

    /// The crop is the centre window: pixels outside it do not change the output.
    #[test]
    fn compact_crop_ignores_the_border() {
        let _rng = crate::rng_lock();
        let device = crate::device::inference_device();
        let mut spec = ModelSpec::new(Arch::Compact);
        spec.width = Some(4);
        spec.crop = Some(40);
        let net = Network::new(&spec, &device).valid();
        let faces: Vec<u8> = (0..crate::data::preprocess::FACE_PIXELS).map(|i| (i * 7 % 256) as u8).collect();
        let mut bordered = faces.clone();
        for (i, p) in bordered.iter_mut().enumerate() {
            let (r, c) = (i / 48, i % 48);
            if !(4..44).contains(&r) || !(4..44).contains(&c) {
                *p = 255 - *p;
            }
        }
        let mut inner = faces.clone();
        inner[20 * 48 + 20] ^= 0x80;
        let out = |f: &[u8]| crate::model::infer::predict_probs(&net, f, &device)[0];
        assert_eq!(out(&faces), out(&bordered));
        assert_ne!(out(&faces), out(&inner));
    }

    /// Every architecture maps (N, 1, 48, 48) to (N, 7), and its layer shapes are as documented.
    #[test]
    fn compact_shapes_per_layer() {
        let _rng = crate::rng_lock();
        let device = crate::device::inference_device();
        let spec = ModelSpec::new(Arch::Compact);
        let net = Network::new(&spec, &device);
        let mut pass = Pass::traced();
        let y = net.valid().forward_with(Tensor::<4>::zeros([3, 1, 48, 48], &device), &mut pass);
        assert_eq!(y.dims(), [3, crate::Emotion::COUNT]);
        let rows = pass.tape.into_rows();
        let convs: Vec<_> = rows.iter().filter(|r| r.kind == LayerKind::Conv2D).map(|r| r.shape.clone()).collect();
        assert_eq!(
            convs,
            vec![
                vec![32, 48, 48], vec![32, 48, 48], vec![64, 24, 24], vec![64, 24, 24],
                vec![128, 12, 12], vec![128, 12, 12], vec![256, 6, 6], vec![256, 6, 6]
            ]
        );
        let pools: Vec<_> = rows.iter().filter(|r| r.kind == LayerKind::MaxPooling2D).map(|r| r.shape.clone()).collect();
        assert_eq!(pools, vec![vec![32, 24, 24], vec![64, 12, 12], vec![128, 6, 6], vec![256, 3, 3]]);
        assert_eq!(rows.last().unwrap().shape, vec![crate::Emotion::COUNT]);
        // 3x3 convolutions without bias, BN (4 numbers per channel), dense 256 -> 7.
        let conv: usize = [(1, 32), (32, 32), (32, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256)]
            .iter()
            .map(|(i, o)| 9 * i * o + 4 * o)
            .sum();
        assert_eq!(net.num_params(), conv + 256 * 7 + 7);
    }
}
