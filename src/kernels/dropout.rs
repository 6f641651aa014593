//! Training-time dropout registered through burn's backend-extension point, with a flex kernel
//! that draws its mask from a counter-based hash in parallel and an autodiff node that
//! recomputes the mask in the backward pass instead of storing it.
//!
//! burn's `Dropout` draws one Bernoulli sample per element with the backend's single-threaded
//! ChaCha generator, builds a mask tensor and multiplies twice (mask, then 1/keep), forward and
//! backward. Here each element's keep/drop decision is a hash of (call seed, element index), so
//! one parallel pass writes `x * 1/keep` or 0 and the backward pass, given only the seed,
//! writes `grad * 1/keep` or 0 for the same elements. The call seed comes from the device's
//! seeded generator, so a run stays repeatable under `Device::seed` (and `--resume` stays exact).
//! Statistically it is the same dropout (elements dropped independently with probability p,
//! kept ones scaled by 1/(1-p)); the individual masks differ from burn's.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Autodiff, Backend, Dispatch, Flex};
use burn::nn::Dropout;
use burn::tensor::{DType, Distribution, Tensor};
use rayon::prelude::*;

/// The backend operations behind [`dropout`].
#[backend_extension(Flex, Autodiff)]
pub trait DropoutBackend: Backend {
    /// Each element of `x` kept and scaled by 1/(1-prob) or set to 0, as decided by `seed` and
    /// its index in row-major order.
    fn dropout_hashed(x: FloatTensor<Self>, prob: f64, seed: u64) -> FloatTensor<Self>;
}

/// Dropout with probability `prob`, the mask decided by `seed` (see the module docs).
pub fn dropout<const D: usize>(x: Tensor<D>, prob: f64, seed: u64) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as DropoutBackend>::dropout_hashed(x.into_dispatch(), prob, seed))
}

/// `layer` applied to `x`: the hashed dropout above while training on flex in f32, burn's
/// `Dropout::forward` otherwise (where it is the identity outside training). A data-parallel
/// replica draws its seeds from its own stream.
pub fn forward<const D: usize>(layer: &Dropout, x: Tensor<D>, replica: Option<&mut super::replica::Replica>) -> Tensor<D> {
    let device = x.device();
    let ours = layer.training.is_enabled() && device.is_autodiff() && layer.prob > 0.0 && x.dtype() == DType::F32;
    if !(ours && crate::device::is_flex(&device)) {
        return layer.forward(x);
    }
    let seed = match replica {
        Some(r) => r.dropout_seed(),
        None => draw_seed(&device),
    };
    dropout(x, layer.prob, seed)
}

/// A 48-bit seed from the device's seeded generator (two 24-bit draws).
pub(crate) fn draw_seed(device: &burn::tensor::Device) -> u64 {
    let draw: Vec<f32> = Tensor::<1>::random([2], Distribution::Uniform(0.0, 16_777_216.0), device)
        .into_data()
        .try_into_vec::<f32>()
        .unwrap_or_default();
    draw.iter().fold(0u64, |s, &v| (s << 24) | (v as u64 & 0xFF_FFFF))
}

/// Whether element `i` survives under `seed` at keep threshold `keep24` (keep probability
/// times 2^24): SplitMix64's i-th output for `seed`.
#[inline(always)]
fn kept(seed: u64, i: u64, keep24: u32) -> bool {
    let z = super::mix64(seed.wrapping_add(i.wrapping_mul(super::GOLDEN_GAMMA)));
    ((z >> 40) as u32) < keep24
}

/// out[i] = src[i] / keep where element i is kept, else 0 (src contiguous).
fn apply(src: &[f32], prob: f64, seed: u64) -> Vec<f32> {
    let keep = 1.0 - prob;
    let keep24 = (keep * 16_777_216.0).round() as u32;
    let scale = (1.0 / keep) as f32;
    let mut out = vec![0f32; src.len()];
    const CHUNK: usize = 1 << 14;
    out.par_chunks_mut(CHUNK).zip(src.par_chunks(CHUNK)).enumerate().for_each(|(c, (o, s))| {
        let base = (c * CHUNK) as u64;
        for (j, (o, &v)) in o.iter_mut().zip(s).enumerate() {
            *o = if kept(seed, base + j as u64, keep24) { v * scale } else { 0.0 };
        }
    });
    out
}

impl DropoutBackend for Flex {
    fn dropout_hashed(x: FloatTensor<Self>, prob: f64, seed: u64) -> FloatTensor<Self> {
        assert!(x.dtype() == DType::F32, "dropout_hashed: f32 only");
        let x = x.to_contiguous();
        let dims = x.layout().shape().to_vec();
        super::flex_f32(apply(x.storage(), prob, seed), &dims)
    }
}

#[derive(Debug)]
struct DropoutOp;

impl<B: DropoutBackend> Backward<B, 1> for DropoutOp {
    type State = (f64, u64);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [parent] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (prob, seed) = ops.state;
        if let Some(node) = parent {
            // The gradient passes where the element was kept, scaled the same: the same op.
            grads.register::<B>(node.id, B::dropout_hashed(grad, prob, seed));
        }
    }
}

impl<B: DropoutBackend, C: CheckpointStrategy> DropoutBackend for Autodiff<B, C> {
    fn dropout_hashed(x: FloatTensor<Self>, prob: f64, seed: u64) -> FloatTensor<Self> {
        match DropoutOp.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((prob, seed), B::dropout_hashed(x.into_primitive(), prob, seed)),
            OpsKind::UnTracked(prep) => prep.finish(B::dropout_hashed(x.into_primitive(), prob, seed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::DropoutConfig;

    #[test]
    fn drops_the_expected_share_and_scales_the_rest() {
        let src = vec![1.0f32; 200_000];
        let out = apply(&src, 0.25, 7);
        let kept: Vec<f32> = out.iter().copied().filter(|&v| v != 0.0).collect();
        let share = kept.len() as f64 / src.len() as f64;
        assert!((share - 0.75).abs() < 0.005, "kept share {share}");
        assert!(kept.iter().all(|&v| (v - 1.0 / 0.75).abs() < 1e-6));
        assert_eq!(apply(&src, 0.25, 7), out, "same seed, same mask");
        assert_ne!(apply(&src, 0.25, 8), out, "another seed, another mask");
    }

    #[test]
    fn gradient_passes_exactly_where_the_forward_kept() {
        let _rng = crate::rng_lock();
        let device = crate::device::inference_device().autodiff();
        // An NHWC-strided view, as convolution outputs are.
        let base = Tensor::<4>::random([3, 4, 6, 5], Distribution::Normal(0.0, 1.0), &device).require_grad();
        let x4 = base.clone().permute([0, 3, 1, 2]);
        let y = dropout(x4.clone(), 0.4, 99);
        let r = Tensor::<4>::random(y.dims(), Distribution::Normal(0.0, 1.0), &device);
        let g = (y.clone() * r.clone()).sum().backward();
        let dx = base.grad(&g).expect("gradient").permute([0, 3, 1, 2]);
        let dx: Vec<f32> = dx.into_data().try_into_vec::<f32>().expect("f32");
        let y: Vec<f32> = y.into_data().try_into_vec::<f32>().expect("f32");
        let x: Vec<f32> = x4.into_data().try_into_vec::<f32>().expect("f32");
        let r: Vec<f32> = r.into_data().try_into_vec::<f32>().expect("f32");
        let mut dropped = 0;
        for i in 0..x.len() {
            if y[i] == 0.0 {
                dropped += 1;
                assert_eq!(dx[i], 0.0);
            } else {
                assert!((y[i] - x[i] / 0.6).abs() < 1e-5);
                assert!((dx[i] - r[i] / 0.6).abs() < 1e-5);
            }
        }
        assert!(dropped > 0 && dropped < x.len());
    }

    #[test]
    fn layer_is_identity_outside_training_and_repeatable_under_a_seed() {
        let _rng = crate::rng_lock();
        let layer = DropoutConfig::new(0.5).init();
        let inference = crate::device::inference_device();
        let x = Tensor::<2>::ones([4, 64], &inference);
        forward(&layer, x.clone(), None).into_data().assert_eq(&x.into_data(), true);
        let device = inference.autodiff();
        let run = || {
            device.seed(5);
            forward(&layer, Tensor::<2>::ones([4, 64], &device), None).into_data()
        };
        let (a, b) = (run(), run());
        a.assert_eq(&b, true);
        let zeros = a.clone().try_into_vec::<f32>().expect("f32").iter().filter(|&&v| v == 0.0).count();
        assert!(zeros > 64 && zeros < 192, "{zeros} of 256 dropped at p = 0.5");
    }
}
