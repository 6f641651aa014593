//! A 2x2, stride-2 max-pool registered through burn's backend-extension point, with its own
//! flex kernels (forward and backward) and autodiff node.
//!
//! burn flex's generic pooling copies a non-contiguous input (the NHWC-strided output of its
//! convolutions) to NCHW first, evaluates every window through a general kernel-range loop with
//! a data-dependent branch per comparison, and keeps an i64 index per output for the backward
//! pass. Here both passes read the input through its strides with a branch-free window maximum;
//! the backward recomputes each window's winner from the saved input (no index tensor) and
//! writes its gradient into a zeroed buffer. The
//! results are bit for bit those of `MaxPool2d` with kernel 2, stride 2, no padding: ties go to
//! the first maximum in row-major window order, and a trailing odd row or column is dropped
//! (its gradient is zero).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::NodeId;
use burn::backend::flex::Layout;
use burn::backend::tensor::FloatTensor;
use burn::backend::ops::ModuleOps;
use burn::backend::{backend_extension, Autodiff, Backend, Dispatch, Flex};
use burn::tensor::{DType, Tensor};
use rayon::prelude::*;

/// The backend operations behind [`max_pool2x2`].
#[backend_extension(Flex, Autodiff)]
pub trait MaxPool2x2Backend: Backend {
    /// (N, C, H, W) -> (N, C, H/2, W/2), the maximum of each 2x2 window.
    fn max_pool2x2(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// The gradient with respect to `x` of [`max_pool2x2`] given the output's gradient `grad`.
    fn max_pool2x2_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// 2x2, stride-2 max-pooling: (N, C, H, W) -> (N, C, H/2, W/2). The same values and gradients
/// as `MaxPool2dConfig::new([2, 2]).with_strides([2, 2])`, faster on flex.
pub fn max_pool2x2(x: Tensor<4>) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as MaxPool2x2Backend>::max_pool2x2(x.into_dispatch()))
}

/// `pool` applied to `x`: [`max_pool2x2`] on flex when `pool` is a plain 2x2, stride-2 max-pool
/// (what both architectures use), burn's own `MaxPool2d::forward` otherwise.
pub fn forward(pool: &burn::nn::pool::MaxPool2d, x: Tensor<4>) -> Tensor<4> {
    let plain = pool.kernel_size == [2, 2]
        && pool.stride == [2, 2]
        && pool.dilation == [1, 1]
        && !pool.ceil_mode
        && pool.padding == burn::nn::PaddingConfig2d::Valid;
    if plain && crate::device::is_flex(&x.device()) {
        max_pool2x2(x)
    } else {
        pool.forward(x)
    }
}

/// Element offsets of an (N, C, H, W) layout.
struct Strided {
    dims: [usize; 4],
    strides: [isize; 4],
    offset: usize,
}

impl Strided {
    fn of(layout: &Layout) -> Strided {
        let s = layout.shape();
        let st = layout.strides();
        assert!(s.num_dims() == 4 && st.len() == 4, "max_pool2x2 needs a 4-D tensor");
        Strided { dims: [s[0], s[1], s[2], s[3]], strides: [st[0], st[1], st[2], st[3]], offset: layout.start_offset() }
    }

    #[inline(always)]
    fn at(&self, n: usize, c: usize, h: usize, w: usize) -> usize {
        (self.offset as isize
            + n as isize * self.strides[0]
            + c as isize * self.strides[1]
            + h as isize * self.strides[2]
            + w as isize * self.strides[3]) as usize
    }

    /// The 2x2 window of plane (n, c) whose top-left element is (h, w), row-major.
    #[inline(always)]
    fn window(&self, data: &[f32], n: usize, c: usize, h: usize, w: usize) -> [f32; 4] {
        [data[self.at(n, c, h, w)], data[self.at(n, c, h, w + 1)], data[self.at(n, c, h + 1, w)], data[self.at(n, c, h + 1, w + 1)]]
    }
}

/// Index (0..4, row-major in the window) of the first maximum of a 2x2 window, as burn's
/// pooling picks it; a NaN wins (the last one, as in burn). Branch-free for finite values: on
/// real data a compare-and-branch loop mispredicts about every other window, which made flex's
/// generic kernel (and the first version of this one) ~6x slower than this.
#[inline(always)]
fn winner(v: [f32; 4]) -> usize {
    if v[0].is_nan() | v[1].is_nan() | v[2].is_nan() | v[3].is_nan() {
        return v.iter().rposition(|x| x.is_nan()).unwrap_or(0);
    }
    let m = v[0].max(v[1]).max(v[2].max(v[3]));
    let hits = (v[0] == m) as u32 | ((v[1] == m) as u32) << 1 | ((v[2] == m) as u32) << 2 | ((v[3] == m) as u32) << 3;
    hits.trailing_zeros() as usize
}

/// Calls `f(plane, b, ch, y, x, window)` for every 2x2 window (top-left at (2y, 2x)) of every
/// plane of `src`, with `plane` the matching `plane_len`-sized slice of `out` (laid out N, C,
/// plane); images run in parallel.
fn for_each_window(
    src: &Strided,
    data: &[f32],
    out: &mut [f32],
    plane_len: usize,
    f: impl Fn(&mut [f32], usize, usize, usize, usize, [f32; 4]) + Sync,
) {
    let [_, c, h, w] = src.dims;
    out.par_chunks_mut((c * plane_len).max(1)).enumerate().for_each(|(b, img)| {
        for (ch, plane) in img.chunks_mut(plane_len.max(1)).enumerate() {
            for y in 0..h / 2 {
                for x in 0..w / 2 {
                    f(plane, b, ch, y, x, src.window(data, b, ch, 2 * y, 2 * x));
                }
            }
        }
    });
}

impl MaxPool2x2Backend for Flex {
    fn max_pool2x2(x: FloatTensor<Self>) -> FloatTensor<Self> {
        if x.dtype() != DType::F32 {
            return <Flex as ModuleOps<Flex>>::max_pool2d(x, [2, 2], [2, 2], [0, 0], [1, 1], false);
        }
        let src = Strided::of(x.layout());
        let [n, c, h, w] = src.dims;
        let (oh, ow) = (h / 2, w / 2);
        let data: &[f32] = x.storage();
        let mut out = vec![0f32; n * c * oh * ow];
        for_each_window(&src, data, &mut out, oh * ow, |plane, _, _, y, x, v| plane[y * ow + x] = v[winner(v)]);
        super::flex_f32(out, &[n, c, oh, ow])
    }

    fn max_pool2x2_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        if x.dtype() != DType::F32 || grad.dtype() != DType::F32 {
            let pooled = <Flex as ModuleOps<Flex>>::max_pool2d_with_indices(
                x.clone(), [2, 2], [2, 2], [0, 0], [1, 1], false, burn::tensor::IntDType::I64,
            );
            return <Flex as ModuleOps<Flex>>::max_pool2d_with_indices_backward(
                x, [2, 2], [2, 2], [0, 0], [1, 1], false, grad, pooled.indices,
            )
            .x_grad;
        }
        let src = Strided::of(x.layout());
        let g = Strided::of(grad.layout());
        let [n, c, h, w] = src.dims;
        let (oh, ow) = (h / 2, w / 2);
        assert_eq!(g.dims, [n, c, oh, ow], "max_pool2x2_backward: gradient shape");
        let data: &[f32] = x.storage();
        let gdata: &[f32] = grad.storage();
        let mut out = vec![0f32; n * c * h * w];
        for_each_window(&src, data, &mut out, h * w, |plane, b, ch, y, x, v| {
            let k = winner(v);
            plane[(2 * y + k / 2) * w + 2 * x + k % 2] = gdata[g.at(b, ch, y, x)];
        });
        super::flex_f32(out, &[n, c, h, w])
    }
}

#[derive(Debug)]
struct MaxPool2x2Op;

impl<B: MaxPool2x2Backend> Backward<B, 1> for MaxPool2x2Op {
    type State = NodeId;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let [parent] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let x = checkpointer.retrieve_node_output(ops.state);
        if let Some(node) = parent {
            grads.register::<B>(node.id, B::max_pool2x2_backward(x, grad));
        }
    }
}

impl<B: MaxPool2x2Backend, C: CheckpointStrategy> MaxPool2x2Backend for Autodiff<B, C> {
    fn max_pool2x2(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match MaxPool2x2Op.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(mut prep) => {
                let state = prep.checkpoint(&x);
                prep.finish(state, B::max_pool2x2(x.into_primitive()))
            }
            OpsKind::UnTracked(prep) => prep.finish(B::max_pool2x2(x.into_primitive())),
        }
    }

    fn max_pool2x2_backward(_x: FloatTensor<Self>, _grad: FloatTensor<Self>) -> FloatTensor<Self> {
        panic!("max_pool2x2_backward is not differentiable")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::pool::MaxPool2dConfig;
    use burn::tensor::{Device, Distribution, TensorData};

    fn burn_pool(x: Tensor<4>) -> Tensor<4> {
        MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init().forward(x)
    }

    /// Inputs as the network produces them: contiguous, a permuted (NHWC-strided) view, odd
    /// sizes, and ties (a ReLU output has many zeros).
    fn inputs(device: &Device) -> Vec<Tensor<4>> {
        let a = Tensor::<4>::random([3, 4, 6, 8], Distribution::Normal(0.0, 1.0), device);
        let nhwc = Tensor::<4>::random([2, 7, 5, 3], Distribution::Normal(0.0, 1.0), device).permute([0, 3, 1, 2]);
        let ties = burn::tensor::activation::relu(Tensor::<4>::random([2, 3, 5, 5], Distribution::Normal(0.0, 1.0), device))
            .round();
        vec![a, nhwc, ties]
    }

    #[test]
    fn forward_equals_burns_max_pool() {
        let _rng = crate::rng_lock();
        let device = crate::device::inference_device();
        for x in inputs(&device) {
            let want = burn_pool(x.clone()).into_data();
            let got = max_pool2x2(x).into_data();
            assert_eq!(got.shape(), want.shape());
            got.assert_eq(&want, true);
        }
    }

    #[test]
    fn gradient_equals_burns_max_pool() {
        let _rng = crate::rng_lock();
        let device = crate::device::inference_device().autodiff();
        for x in inputs(&device) {
            let dims = x.dims();
            let x: Tensor<4> = Tensor::from_data(x.into_data(), &device).require_grad();
            let weights = Tensor::<4>::random([dims[0], dims[1], dims[2] / 2, dims[3] / 2], Distribution::Normal(0.0, 1.0), &device);
            let g_burn = (burn_pool(x.clone()) * weights.clone()).sum().backward();
            let want: TensorData = x.grad(&g_burn).unwrap().into_data();
            let x2: Tensor<4> = Tensor::from_data(x.clone().into_data(), &device).require_grad();
            let g_ours = (max_pool2x2(x2.clone()) * weights).sum().backward();
            let got: TensorData = x2.grad(&g_ours).unwrap().into_data();
            got.assert_eq(&want, true);
        }
    }
}
