//! Model architectures, the `Network` that wraps them, and the layer tape used by `summary`.

pub(crate) mod bf16;
pub mod compact;
pub mod conv;
pub mod dropout;
pub mod ensemble;
pub mod pool;
pub mod reference;
pub(crate) mod replica;
pub(crate) mod winograd;

use crate::error::{Error, Result};
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

pub use compact::{CompactCnn, CompactConfig};

/// A matrix operand of [`gemm_f32`]: (data, row stride, column stride).
pub(crate) type Mat<'a> = (&'a [f32], usize, usize);

/// dst (m x n, row-major) = [dst +] lhs (m x k) . rhs (k x n) on the calling thread, in the
/// precision [`crate::device::set_matmul_precision`] chose: f32 through the `gemm` crate, or bf16
/// products with f32 sums ([`bf16`]). Panics if an operand's slice is shorter than its strides reach.
pub(crate) fn gemm_f32(dst: &mut [f32], mnk: [usize; 3], accumulate: bool, lhs: Mat, rhs: Mat) {
    if crate::device::matmul_precision() == crate::device::MatmulPrecision::Bf16 {
        check_operands(dst, mnk, lhs, rhs);
        bf16::gemm(dst, mnk, accumulate, lhs, rhs);
    } else {
        gemm_crate_f32(dst, mnk, accumulate, lhs, rhs);
    }
}

fn check_operands(dst: &[f32], [m, n, k]: [usize; 3], lhs: Mat, rhs: Mat) {
    let fits = |(d, rs, cs): Mat, rows: usize, cols: usize| rows == 0 || cols == 0 || (rows - 1) * rs + (cols - 1) * cs < d.len();
    assert!(dst.len() >= m * n && fits(lhs, m, k) && fits(rhs, k, n), "gemm_f32: operand shorter than its shape");
}

/// [`gemm_f32`] in f32 whatever the matmul precision.
pub(crate) fn gemm_crate_f32(dst: &mut [f32], [m, n, k]: [usize; 3], accumulate: bool, lhs: Mat, rhs: Mat) {
    check_operands(dst, [m, n, k], lhs, rhs);
    // SAFETY: the assertion above keeps every element the strides address inside its slice.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.0.as_ptr(),
            lhs.2 as isize,
            lhs.1 as isize,
            rhs.0.as_ptr(),
            rhs.2 as isize,
            rhs.1 as isize,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Whether ferrite's own vector kernels (`winograd`, `conv`) run their AVX-512 instantiations:
/// the build targets baseline x86-64, where their 16-lane steps would be four-lane SSE
/// operations, so each kernel is also compiled with `#[target_feature]` and picked at run time.
pub(crate) fn avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static WIDE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *WIDE.get_or_init(|| std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512vl"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// A sum over the batch 0..n computed in parallel: one contiguous slice of the batch per rayon
/// thread, walked in chunks of `per_chunk` images; `chunk(scratch, images, acc, accumulate)`
/// writes (or, with `accumulate`, adds) its chunk's share into the thread's `len`-long
/// accumulator, and the accumulators are summed at the end.
pub(crate) fn batch_sum<S: Default>(n: usize, per_chunk: usize, len: usize, chunk: impl Fn(&mut S, std::ops::Range<usize>, &mut [f32], bool) + Sync) -> Vec<f32> {
    use rayon::prelude::*;
    let parts = rayon::current_num_threads().clamp(1, n.max(1));
    let partials: Vec<Vec<f32>> = (0..parts)
        .into_par_iter()
        .map(|t| (t * n / parts, (t + 1) * n / parts))
        .filter(|(a, b)| b > a)
        .map(|(start, end)| {
            let mut acc = vec![0f32; len];
            let mut scratch = S::default();
            let mut img = start;
            while img < end {
                let stop = (img + per_chunk.max(1)).min(end);
                chunk(&mut scratch, img..stop, &mut acc, img > start);
                img = stop;
            }
            acc
        })
        .collect();
    let mut parts = partials.into_iter();
    let mut sum = parts.next().unwrap_or_else(|| vec![0f32; len]);
    for p in parts {
        for (s, v) in sum.iter_mut().zip(&p) {
            *s += v;
        }
    }
    sum
}

/// A contiguous f32 flex tensor of shape `dims` holding `data` (the output of ferrite's own flex
/// kernels in `pool`, `conv` and `dropout`).
pub(crate) fn flex_f32(data: Vec<f32>, dims: &[usize]) -> burn::backend::flex::FlexTensor {
    burn::backend::flex::FlexTensor::new(
        burn::tensor::Bytes::from_elems(data),
        burn::backend::flex::Layout::contiguous(dims.to_vec().into()),
        burn::tensor::DType::F32,
    )
}
pub use reference::{ReferenceCnn, ReferenceConfig};

/// The architectures ferrite can build (`--arch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// The FER2013 tutorials' CNN: 4 conv blocks, 2 dense blocks, 4,478,727 parameters.
    Reference,
    /// ferrite's VGG-style compact CNN: 8 conv layers, global average pooling (~1.17M parameters
    /// at width 32).
    Compact,
    /// Several trained networks (`ModelSpec::members`) whose class probabilities are averaged.
    /// Built from trained models (`ferrite export --model A --model B`), never trained as one.
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
                "architecture '{}' has a fixed width; --width {w} does not apply",
                self.arch
            ))),
            (Some(_), Some(w)) if !(4..=256).contains(&w) => {
                Err(Error::Config(format!("width must be in 4..=256, got {w}")))
            }
            _ => Ok(()),
        }?;
        if self.arch != Arch::Compact && (self.crop.is_some() || self.stem_convs.is_some()) {
            return Err(Error::Config(format!(
                "--crop and --stem-convs apply to the compact architecture, not '{}'",
                self.arch
            )));
        }
        if let Some(c) = self.crop.filter(|c| !(16..=crate::preprocess::FACE_SIZE).contains(c)) {
            return Err(Error::Config(format!("crop must be in 16..={}, got {c}", crate::preprocess::FACE_SIZE)));
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

    /// Class logits for a batch of faces.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward_traced(x, &mut Tape::off())
    }

    /// The inference-time layers in execution order, for exporters (`crate::onnx`). An ensemble
    /// is no chain of layers: its members' concatenated, for inspection only (exporters take
    /// each of `members` in turn).
    pub fn layers(&self) -> Vec<Layer<'_>> {
        match self {
            Network::Reference(m) => m.layers(),
            Network::Compact(m) => m.layers(),
            Network::Ensemble(members) => members.iter().flat_map(Network::layers).collect(),
        }
    }

    /// `forward` that also records each layer's output shape and parameters on `tape`.
    pub fn forward_traced(&self, x: Tensor<4>, tape: &mut Tape) -> Tensor<2> {
        match self {
            Network::Reference(m) => m.forward(x, tape),
            Network::Compact(m) => m.forward(x, tape),
            Network::Ensemble(members) => ensemble::forward(members, x, tape),
        }
    }
}

/// One layer as inference sees it (dropout is the identity there and is left out). `forward`
/// and `layers` of an architecture describe the same network; `crate::onnx`'s tests check that
/// the exported graph computes what `forward` does.
#[derive(Debug, Clone, Copy)]
pub enum Layer<'a> {
    Conv(&'a burn::nn::conv::Conv2d),
    BatchNorm(&'a burn::nn::BatchNorm),
    Relu,
    MaxPool(&'a burn::nn::pool::MaxPool2d),
    /// The centred `size` x `size` window of the image: (N, C, H, W) -> (N, C, size, size).
    CenterCrop(usize),
    /// Mean over height and width: (N, C, H, W) -> (N, C).
    GlobalAvgPool,
    /// (N, C, H, W) -> (N, C*H*W).
    Flatten,
    Linear(&'a burn::nn::Linear),
}

/// Conv2d -> BatchNorm -> ReLU, each recorded on `tape` (the block both architectures use).
/// (N, C_in, H, W) -> (N, C_out, H', W')
pub(crate) fn conv_bn_relu(
    conv: &burn::nn::conv::Conv2d,
    bn: &burn::nn::BatchNorm,
    x: Tensor<4>,
    tape: &mut Tape,
) -> Tensor<4> {
    let x = conv::forward(conv, x);
    tape.record("Conv2D", &x, conv.num_params(), 0);
    let x = batch_norm(bn, x);
    let c = x.dims()[1];
    tape.record("BatchNormalization", &x, bn.num_params(), 2 * c);
    let x = burn::tensor::activation::relu(x);
    tape.record("Activation(relu)", &x, 0, 0);
    x
}

/// `bn` applied to `x` (N, C, ...): in training, the batch statistics come from two reductions
/// (sum and sum of squares per channel) and the output is one per-channel scale and shift, about
/// half the memory passes of burn's generic `batch_norm_train` (which flex does not specialise),
/// forward and backward; running statistics are updated as burn does. Inference (and a frozen
/// layer) uses burn's own path. Same parameters and record format as `BatchNorm::forward`.
pub(crate) fn batch_norm<const D: usize>(bn: &burn::nn::BatchNorm, x: Tensor<D>) -> Tensor<D> {
    if !(x.device().is_autodiff() && bn.training.is_enabled()) {
        return bn.forward(x);
    }
    let dims = x.dims();
    let (n, c) = (dims[0], dims[1]);
    let rest: usize = dims[2..].iter().product();
    let count = (n * rest) as f64;
    let flat: Tensor<3> = x.clone().reshape([n, c, rest]);
    let sum: Tensor<1> = flat.clone().sum_dim(2).sum_dim(0).reshape([c]);
    let sum_sq: Tensor<1> = flat.clone().mul(flat).sum_dim(2).sum_dim(0).reshape([c]);
    let mean = sum.div_scalar(count);
    // Biased variance, as burn's running statistics use; clamped against rounding below zero.
    let var = (sum_sq.div_scalar(count) - mean.clone().powi_scalar(2)).clamp_min(0.0);
    let scale = bn.gamma.val() / (var.clone() + bn.epsilon).sqrt();
    let shift = bn.beta.val() - mean.clone() * scale.clone();
    let mut per_channel = [1usize; D];
    per_channel[1] = c;

    // A data-parallel replica leaves the update to the thread that combines the replicas.
    let (batch_mean, batch_var) = (mean.clone().detach(), var.clone().detach());
    if !replica::defer_bn_update(bn, &batch_mean, &batch_var) {
        replica::update_running(&bn.running_mean, &bn.running_var, bn.momentum, batch_mean, batch_var);
    }

    x * scale.reshape(per_channel) + shift.reshape(per_channel)
}

/// One row of a layer table.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerRow {
    /// Keras-style layer type (Conv2D, BatchNormalization, ...).
    pub kind: &'static str,
    /// Output shape without the batch dimension.
    pub shape: Vec<usize>,
    /// All parameters, BatchNorm running statistics included.
    pub params: usize,
    /// Parameters not trained by gradient (BatchNorm running mean and variance).
    pub non_trainable: usize,
    /// Wall time since the previous record (or since the tape was switched on), in ms.
    /// On an eager CPU backend this is the layer's forward time.
    pub elapsed_ms: f64,
}

/// Records layers during a forward pass when switched on; free when off.
#[derive(Debug, Default)]
pub struct Tape {
    rows: Option<Vec<LayerRow>>,
    last: Option<std::time::Instant>,
}

impl Tape {
    pub fn off() -> Tape {
        Tape { rows: None, last: None }
    }

    pub fn on() -> Tape {
        Tape {
            rows: Some(Vec::new()),
            last: Some(std::time::Instant::now()),
        }
    }

    /// Record a layer whose output is `out`.
    pub fn record<const D: usize>(
        &mut self,
        kind: &'static str,
        out: &Tensor<D>,
        params: usize,
        non_trainable: usize,
    ) {
        if let Some(rows) = &mut self.rows {
            let now = std::time::Instant::now();
            let elapsed_ms = self.last.map_or(0.0, |t| (now - t).as_secs_f64() * 1000.0);
            self.last = Some(now);
            rows.push(LayerRow {
                elapsed_ms,
                kind,
                shape: out.dims()[1..].to_vec(),
                params,
                non_trainable,
            });
        }
    }

    pub fn into_rows(self) -> Vec<LayerRow> {
        self.rows.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lean training BatchNorm gives burn's output, gradients and running statistics.
    #[test]
    fn batch_norm_matches_burn_in_training() {
        use burn::nn::BatchNormConfig;
        use burn::tensor::Distribution;
        let dev = crate::device::training_device();
        fn close<const D: usize>(a: Tensor<D>, b: Tensor<D>, what: &str) {
            let d = (a - b).abs().max().into_scalar::<f32>();
            assert!(d < 1e-4, "{what}: max difference {d}");
        }
        fn check<const D: usize>(shape: [usize; D], dev: &Device) {
            let ours = BatchNormConfig::new(shape[1]).init(dev);
            let theirs = ours.clone();
            let x: Tensor<D> = Tensor::random(shape, Distribution::Normal(1.5, 3.0), dev).require_grad();
            let g: Tensor<D> = Tensor::random(shape, Distribution::Normal(0.0, 1.0), dev);
            let (y1, y2) = (theirs.forward(x.clone()), batch_norm(&ours, x.clone()));
            close(y1.clone(), y2.clone(), "output");
            let (g1, g2) = ((y1 * g.clone()).sum().backward(), (y2 * g).sum().backward());
            close(x.grad(&g1).unwrap(), x.grad(&g2).unwrap(), "input gradient");
            close(theirs.gamma.grad(&g1).unwrap(), ours.gamma.grad(&g2).unwrap(), "gamma gradient");
            close(theirs.beta.grad(&g1).unwrap(), ours.beta.grad(&g2).unwrap(), "beta gradient");
            close(theirs.running_mean.value(), ours.running_mean.value(), "running mean");
            close(theirs.running_var.value(), ours.running_var.value(), "running variance");
        }
        check([8, 5, 6, 7], &dev);
        check([16, 9], &dev);
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
        let mut tape = Tape::on();
        let y = net.valid().forward_traced(Tensor::<4>::zeros([2, 1, 48, 48], &device), &mut tape);
        assert_eq!(y.dims(), [2, crate::Emotion::COUNT]);
        let rows = tape.into_rows();
        assert_eq!(rows[0].kind, "Cropping2D");
        assert_eq!(rows[0].shape, vec![1, 40, 40]);
        let convs: Vec<_> = rows.iter().filter(|r| r.kind == "Conv2D").map(|r| r.shape.clone()).collect();
        assert_eq!(
            convs,
            vec![
                vec![8, 40, 40], vec![16, 20, 20], vec![16, 20, 20],
                vec![32, 10, 10], vec![32, 10, 10], vec![64, 5, 5], vec![64, 5, 5]
            ]
        );
        let pools: Vec<_> = rows.iter().filter(|r| r.kind == "MaxPooling2D").map(|r| r.shape.clone()).collect();
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
        let faces: Vec<u8> = (0..crate::preprocess::FACE_PIXELS).map(|i| (i * 7 % 256) as u8).collect();
        let mut bordered = faces.clone();
        for (i, p) in bordered.iter_mut().enumerate() {
            let (r, c) = (i / 48, i % 48);
            if !(4..44).contains(&r) || !(4..44).contains(&c) {
                *p = 255 - *p;
            }
        }
        let mut inner = faces.clone();
        inner[20 * 48 + 20] ^= 0x80;
        let out = |f: &[u8]| crate::evaluate::predict_probs(&net, f, &device)[0];
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
        let mut tape = Tape::on();
        let y = net.valid().forward_traced(Tensor::<4>::zeros([3, 1, 48, 48], &device), &mut tape);
        assert_eq!(y.dims(), [3, crate::Emotion::COUNT]);
        let rows = tape.into_rows();
        let convs: Vec<_> = rows.iter().filter(|r| r.kind == "Conv2D").map(|r| r.shape.clone()).collect();
        assert_eq!(
            convs,
            vec![
                vec![32, 48, 48], vec![32, 48, 48], vec![64, 24, 24], vec![64, 24, 24],
                vec![128, 12, 12], vec![128, 12, 12], vec![256, 6, 6], vec![256, 6, 6]
            ]
        );
        let pools: Vec<_> = rows.iter().filter(|r| r.kind == "MaxPooling2D").map(|r| r.shape.clone()).collect();
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
