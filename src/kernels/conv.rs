//! A stride-1, "same"-padded 2-D convolution registered through burn's backend-extension point,
//! whose passes on flex are cheaper than flex's generic ones.
//!
//! Wide 3x3 and 5x5 layers (both channel counts >= 16, enough tiles in the batch) run all three
//! passes as Winograd convolutions (`winograd.rs`): the forward pass, the input gradient (the
//! forward convolution of the output gradient with the flipped, transposed kernel: for stride 1
//! and "same" padding that is the transposed convolution) and the weight gradient.
//! Inputs of at most four channels (the stems) run a direct forward kernel; elsewhere the
//! forward pass is flex's own `conv2d`; the weight gradient is one
//! `dW (C_out x C_in*k*k) += dY (C_out x P) . im2col(X)^T (P x C_in*k*k)` per chunk of images,
//! a chunk per thread, summed at the end (burn's generic backward computes it as a convolution
//! of the input with the output gradient as an H x W kernel, for which flex re-packs the whole
//! output gradient once per input channel); the input gradient is the flipped-kernel forward
//! convolution where the layer does not widen the channels and flex's `conv_transpose2d`
//! where it does. Values equal burn's up to float summation order (tested).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::NodeId;
use burn::backend::flex::FlexTensor;
use burn::backend::ops::{ConvOptions, ModuleOps};
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Autodiff, Backend, Dispatch, Flex};
use burn::nn::conv::Conv2d;
use burn::nn::PaddingConfig2d;
use burn::tensor::{DType, Tensor};

use super::cpu::Isa;
use super::gemm::Matmul;
use super::winograd;

/// The backend operations behind [`conv2d_same`].
#[backend_extension(Flex, Autodiff)]
pub trait ConvSameBackend: Backend {
    /// x (N, C, H, W), w (K, C, k, k) with k odd -> (N, K, H, W): stride 1, padding k/2, no
    /// bias; ferrite's kernels' matrix products in precision `mm`.
    fn conv2d_same(x: FloatTensor<Self>, w: FloatTensor<Self>, mm: Matmul) -> FloatTensor<Self>;
    /// The gradient with respect to `x` of [`conv2d_same`] given the output's gradient `grad`.
    fn conv2d_same_x_backward(x: FloatTensor<Self>, w: FloatTensor<Self>, grad: FloatTensor<Self>, mm: Matmul) -> FloatTensor<Self>;
    /// The gradient with respect to `w` of [`conv2d_same`] given the output's gradient `grad`.
    fn conv2d_same_w_backward(x: FloatTensor<Self>, w: FloatTensor<Self>, grad: FloatTensor<Self>, mm: Matmul) -> FloatTensor<Self>;
}

/// Stride-1 convolution with "same" zero padding and an odd square kernel:
/// x (N, C, H, W), w (K, C, k, k) -> (N, K, H, W). The values of burn's `conv2d` with padding
/// k/2; on flex the backward pass is faster. The matrix products run in precision `mm`.
pub fn conv2d_same(x: Tensor<4>, w: Tensor<4>, mm: Matmul) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as ConvSameBackend>::conv2d_same(x.into_dispatch(), w.into_dispatch(), mm))
}

/// `conv` applied to `x`: [`conv2d_same`] (plus the bias) on flex when `conv` is a plain
/// stride-1 convolution with an odd square kernel and "same" padding (every convolution of both
/// architectures), burn's own `Conv2d::forward` otherwise.
pub fn forward(conv: &Conv2d, x: Tensor<4>, mm: Matmul) -> Tensor<4> {
    let [kh, kw] = conv.kernel_size;
    let same = match &conv.padding {
        PaddingConfig2d::Same => true,
        PaddingConfig2d::Explicit(t, l, b, r) => [*t, *l, *b, *r] == [kh / 2; 4],
        _ => false,
    };
    let plain = kh == kw && kh % 2 == 1 && same && conv.stride == [1, 1] && conv.dilation == [1, 1] && conv.groups == 1;
    if !(plain && crate::device::is_flex(&x.device())) {
        return conv.forward(x);
    }
    let y = conv2d_same(x, conv.weight.val(), mm);
    match &conv.bias {
        Some(b) => {
            let k = b.dims()[0];
            y + b.val().reshape([1, k, 1, 1])
        }
        None => y,
    }
}

fn options(k: usize) -> ConvOptions<2> {
    ConvOptions::new([1, 1], [k / 2, k / 2], [1, 1], 1)
}

fn dims4(t: &FlexTensor) -> [usize; 4] {
    let s = t.layout().shape();
    [s[0], s[1], s[2], s[3]]
}

/// (K, C, k, k) -> (C, K, k, k) mirrored in both spatial axes: the kernel whose forward
/// convolution of the output gradient is the input gradient.
fn flip_transpose(w: &[f32], [k_out, c_in, kh, kw]: [usize; 4]) -> Vec<f32> {
    let mut out = vec![0f32; w.len()];
    for o in 0..k_out {
        for c in 0..c_in {
            for a in 0..kh {
                for b in 0..kw {
                    out[((c * k_out + o) * kh + a) * kw + b] = w[((o * c_in + c) * kh + (kh - 1 - a)) * kw + (kw - 1 - b)];
                }
            }
        }
    }
    out
}

/// Rows (c, a, b) of the im2col matrix of images `imgs` of the contiguous input `x`
/// (N, C, H, W), row-major with `cols` = images x H x W columns: row (c, a, b), column
/// (image, y, x) holds x[image, c, y + a - k/2, x + b - k/2] (0 outside).
fn im2col_rows(x: &[f32], [_, c_in, h, w]: [usize; 4], k: usize, imgs: std::ops::Range<usize>, out: &mut [f32]) {
    let p = k / 2;
    let cols = imgs.len() * h * w;
    for c in 0..c_in {
        for a in 0..k {
            for b in 0..k {
                let row = &mut out[((c * k + a) * k + b) * cols..][..cols];
                for (i, img) in imgs.clone().enumerate() {
                    let plane = &x[(img * c_in + c) * h * w..][..h * w];
                    for y in 0..h {
                        let dst = &mut row[(i * h + y) * w..][..w];
                        let sy = y as isize + a as isize - p as isize;
                        if sy < 0 || sy >= h as isize {
                            dst.fill(0.0);
                            continue;
                        }
                        let src = &plane[sy as usize * w..][..w];
                        // dst[x] = src[x + b - p] where 0 <= x + b - p < w
                        let shift = b as isize - p as isize;
                        let (lo, hi) = ((-shift).max(0) as usize, (w as isize - shift).min(w as isize).max(0) as usize);
                        dst[..lo].fill(0.0);
                        if hi > lo {
                            dst[lo..hi].copy_from_slice(&src[(lo as isize + shift) as usize..(hi as isize + shift) as usize]);
                        }
                        dst[hi.max(lo)..].fill(0.0);
                    }
                }
            }
        }
    }
}

/// Inputs with at most this many channels (the 1-channel stem of both architectures) take
/// [`direct_thin`] forward: their im2col products have a k*k*C-long shared dimension, too short
/// for a matrix product to pay (flex: ~10 ms for the compact stem's batch of 64, one thread).
const THIN: usize = 4;

/// The forward stride-1 "same" convolution of the contiguous `x` (N, C, H, W) with kernels
/// `wt` (K, C, k, k), computed directly: per image and output channel, k*k*C scaled rows of a
/// zero-padded copy of the image are added up, a vector operation along each row.
fn direct_thin(x: &[f32], xd: [usize; 4], wt: &[f32], k_out: usize, k: usize) -> Vec<f32> {
    use rayon::prelude::*;
    let [n, _, h, w] = xd;
    let mut out = vec![0f32; n * k_out * h * w];
    let isa = Isa::detect();
    out.par_chunks_mut(k_out * h * w).enumerate().for_each(|(img, y)| match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: an `Avx512` token exists only where its check found the features
        // `thin_image_wide` is compiled for.
        Isa::Avx512(_) => unsafe { thin_image_wide(x, xd, wt, k, img, y) },
        _ => thin_image(x, xd, wt, k, img, y),
    });
    out
}

/// [`thin_image`] compiled for AVX-512.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
fn thin_image_wide(x: &[f32], xd: [usize; 4], wt: &[f32], k: usize, img: usize, y: &mut [f32]) {
    thin_image(x, xd, wt, k, img, y)
}

/// Image `img`'s output `y` (K, H, W) for [`direct_thin`].
#[inline(always)]
fn thin_image(x: &[f32], [_, c_in, h, w]: [usize; 4], wt: &[f32], k: usize, img: usize, y: &mut [f32]) {
    let p = k / 2;
    let (hp, wp) = (h + 2 * p, w + 2 * p);
    let mut pad = vec![0f32; c_in * hp * wp];
    for c in 0..c_in {
        for yy in 0..h {
            pad[(c * hp + yy + p) * wp + p..][..w].copy_from_slice(&x[((img * c_in + c) * h + yy) * w..][..w]);
        }
    }
    for (o, dst) in y.chunks_exact_mut(h * w).enumerate() {
        for (yy, row) in dst.chunks_exact_mut(w).enumerate() {
            for c in 0..c_in {
                for a in 0..k {
                    for b in 0..k {
                        let wv = wt[((o * c_in + c) * k + a) * k + b];
                        let src = &pad[(c * hp + yy + a) * wp + b..][..w];
                        for (d, s) in row.iter_mut().zip(src) {
                            *d += wv * s;
                        }
                    }
                }
            }
        }
    }
}

/// The weight gradient (K, C, k, k) of the stride-1 "same" convolution of the contiguous input
/// `x` (N, C, H, W) given the contiguous output gradient `g` (N, K, H, W).
fn weight_grad(x: &[f32], xd: [usize; 4], g: &[f32], k_out: usize, k: usize, mm: Matmul) -> Vec<f32> {
    let [n, c_in, h, w] = xd;
    let hw = h * w;
    let rows = c_in * k * k;
    // About 1,024 pixels per product keeps the gemm's shared dimension long.
    let per_chunk = 1024usize.div_ceil(hw).max(1);
    super::batch_sum(n, per_chunk, k_out * rows, |(col, dy): &mut (Vec<f32>, Vec<f32>), imgs, acc, accumulate| {
        let cols = imgs.len() * hw;
        col.resize(rows * cols, 0.0);
        im2col_rows(x, xd, k, imgs.clone(), col);
        dy.resize(k_out * cols, 0.0);
        for o in 0..k_out {
            for (i, b) in imgs.clone().enumerate() {
                dy[o * cols + i * hw..][..hw].copy_from_slice(&g[(b * k_out + o) * hw..][..hw]);
            }
        }
        // acc (K x rows) = [acc +] dy (K x cols) . col^T (cols x rows)
        super::gemm::gemm(mm, acc, [k_out, rows, cols], accumulate, (dy, cols, 1), (col, 1, cols));
    })
}

impl ConvSameBackend for Flex {
    fn conv2d_same(x: FloatTensor<Self>, w: FloatTensor<Self>, mm: Matmul) -> FloatTensor<Self> {
        let wd = dims4(&w);
        let xd = dims4(&x);
        if let (DType::F32, DType::F32, Some(plan)) = (x.dtype(), w.dtype(), winograd::plan(wd[2], wd[1], wd[0], [xd[0], xd[2], xd[3]])) {
            let (x, w) = (x.to_contiguous(), w.to_contiguous());
            let y = winograd::conv(plan, x.storage(), xd, w.storage(), wd[0], Isa::detect(), mm);
            return super::flex_f32(y, &[xd[0], wd[0], xd[2], xd[3]]);
        }
        if let (DType::F32, DType::F32, true) = (x.dtype(), w.dtype(), xd[1] <= THIN) {
            let (x, w) = (x.to_contiguous(), w.to_contiguous());
            let y = direct_thin(x.storage(), xd, w.storage(), wd[0], wd[2]);
            return super::flex_f32(y, &[xd[0], wd[0], xd[2], xd[3]]);
        }
        <Flex as ModuleOps<Flex>>::conv2d(x, w, None, options(wd[2]))
    }

    fn conv2d_same_x_backward(x: FloatTensor<Self>, w: FloatTensor<Self>, grad: FloatTensor<Self>, mm: Matmul) -> FloatTensor<Self> {
        let wd = dims4(&w);
        let gd = dims4(&grad);
        if let (DType::F32, DType::F32, Some(plan)) = (w.dtype(), grad.dtype(), winograd::plan(wd[2], wd[0], wd[1], [gd[0], gd[2], gd[3]])) {
            let (w, g) = (w.to_contiguous(), grad.to_contiguous());
            let flipped = flip_transpose(w.storage(), wd);
            let dx = winograd::conv(plan, g.storage(), gd, &flipped, wd[1], Isa::detect(), mm);
            return super::flex_f32(dx, &[gd[0], wd[1], gd[2], gd[3]]);
        }
        // Measured per layer of the reference CNN (examples/convprobe.rs): the flipped-kernel
        // convolution wins when it does not narrow the channels (512 -> 512: 160 vs 244 ms) and
        // loses ~15-25% when it does (128 -> 64, 512 -> 128), where flex's transposed
        // convolution is kept.
        if w.dtype() != DType::F32 || wd[0] > wd[1] {
            return <Flex as ModuleOps<Flex>>::conv2d_x_backward(x, w, grad, options(wd[2]));
        }
        let w = w.to_contiguous();
        let flipped = super::flex_f32(flip_transpose(w.storage(), wd), &[wd[1], wd[0], wd[2], wd[3]]);
        <Flex as ModuleOps<Flex>>::conv2d(grad, flipped, None, options(wd[2]))
    }

    fn conv2d_same_w_backward(x: FloatTensor<Self>, w: FloatTensor<Self>, grad: FloatTensor<Self>, mm: Matmul) -> FloatTensor<Self> {
        let wd = dims4(&w);
        if x.dtype() != DType::F32 || grad.dtype() != DType::F32 {
            return <Flex as ModuleOps<Flex>>::conv2d_weight_backward(x, w, grad, options(wd[2]));
        }
        let x = x.to_contiguous();
        let g = grad.to_contiguous();
        let xd = dims4(&x);
        let out = if let Some(plan) = winograd::plan(wd[2], wd[1], wd[0], [xd[0], xd[2], xd[3]]) {
            winograd::weight_grad(plan, x.storage(), xd, g.storage(), wd[0], Isa::detect(), mm)
        } else {
            weight_grad(x.storage(), xd, g.storage(), wd[0], wd[2], mm)
        };
        super::flex_f32(out, &wd)
    }
}

#[derive(Debug)]
struct ConvSameOp;

impl<B: ConvSameBackend> Backward<B, 2> for ConvSameOp {
    type State = (NodeId, NodeId, Matmul);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let [x_parent, w_parent] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let x: FloatTensor<B> = checkpointer.retrieve_node_output(ops.state.0);
        let w: FloatTensor<B> = checkpointer.retrieve_node_output(ops.state.1);
        if let Some(node) = x_parent {
            grads.register::<B>(node.id, B::conv2d_same_x_backward(x.clone(), w.clone(), grad.clone(), ops.state.2));
        }
        if let Some(node) = w_parent {
            grads.register::<B>(node.id, B::conv2d_same_w_backward(x, w, grad, ops.state.2));
        }
    }
}

impl<B: ConvSameBackend, C: CheckpointStrategy> ConvSameBackend for Autodiff<B, C> {
    fn conv2d_same(x: FloatTensor<Self>, w: FloatTensor<Self>, mm: Matmul) -> FloatTensor<Self> {
        match ConvSameOp.prepare::<C>([x.node(), w.node()]).compute_bound().stateful() {
            OpsKind::Tracked(mut prep) => {
                let state = (prep.checkpoint(&x), prep.checkpoint(&w), mm);
                prep.finish(state, B::conv2d_same(x.into_primitive(), w.into_primitive(), mm))
            }
            OpsKind::UnTracked(prep) => prep.finish(B::conv2d_same(x.into_primitive(), w.into_primitive(), mm)),
        }
    }

    fn conv2d_same_x_backward(_x: FloatTensor<Self>, _w: FloatTensor<Self>, _grad: FloatTensor<Self>, _mm: Matmul) -> FloatTensor<Self> {
        panic!("conv2d_same_x_backward is not differentiable")
    }

    fn conv2d_same_w_backward(_x: FloatTensor<Self>, _w: FloatTensor<Self>, _grad: FloatTensor<Self>, _mm: Matmul) -> FloatTensor<Self> {
        panic!("conv2d_same_w_backward is not differentiable")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::conv::Conv2dConfig;
    use burn::tensor::{Distribution, TensorData, Tolerance};

    /// The output of `conv` and the gradients of sum(conv(x) * r) for x and the kernel, through
    /// [`forward`] (`ours`) or burn's `Conv2d::forward`.
    fn grads(conv: &Conv2d, x: &Tensor<4>, r: &Tensor<4>, ours: bool) -> (TensorData, TensorData, TensorData) {
        let device = x.device();
        let x: Tensor<4> = Tensor::from_data(x.clone().into_data(), &device).require_grad();
        let w = conv.weight.val();
        let y = if ours { forward(conv, x.clone(), Matmul::F32) } else { conv.forward(x.clone()) };
        let g = (y.clone() * r.clone()).sum().backward();
        let dx = x.grad(&g).expect("x gradient");
        let dw = w.grad(&g).expect("weight gradient");
        (y.into_data(), dx.into_data(), dw.into_data())
    }

    #[test]
    fn values_and_gradients_equal_burns_conv2d() {
        let _rng = crate::rng_lock();
        let device = crate::device::inference_device().autodiff();
        // (C_in, C_out, k, H, W, N, bias, NHWC-strided input)
        for (ci, co, k, h, w, n, bias, nhwc) in [
            (3, 5, 3, 7, 6, 3, false, false),
            (4, 6, 5, 9, 9, 2, true, false),
            (8, 4, 3, 6, 6, 70, false, true),
            (6, 6, 3, 5, 5, 3, true, true),
            (1, 4, 3, 5, 4, 2, true, false),
            (2, 3, 1, 4, 4, 2, false, false),
            // Winograd sizes (both channel counts >= 16, >= 64 tiles), odd and even planes
            (16, 24, 3, 7, 5, 8, true, false),
            (24, 16, 3, 6, 6, 8, false, true),
            (16, 16, 3, 12, 12, 2, false, false),
            (16, 20, 5, 9, 10, 4, true, true),
        ] {
            let conv = Conv2dConfig::new([ci, co], [k, k]).with_padding(PaddingConfig2d::Same).with_bias(bias).init(&device);
            let x = if nhwc {
                Tensor::<4>::random([n, h, w, ci], Distribution::Normal(0.0, 1.0), &device).permute([0, 3, 1, 2])
            } else {
                Tensor::<4>::random([n, ci, h, w], Distribution::Normal(0.0, 1.0), &device)
            };
            let r = Tensor::<4>::random([n, co, h, w], Distribution::Normal(0.0, 1.0), &device);
            let (y0, dx0, dw0) = grads(&conv, &x, &r, false);
            let (y1, dx1, dw1) = grads(&conv, &x, &r, true);
            let tol = Tolerance::<f32>::absolute(1e-4);
            y1.assert_approx_eq::<f32>(&y0, tol);
            dx1.assert_approx_eq::<f32>(&dx0, tol);
            dw1.assert_approx_eq::<f32>(&dw0, Tolerance::<f32>::absolute(1e-3));
        }
    }

    #[test]
    fn flip_transpose_mirrors_and_swaps_channels() {
        // K=1, C=2, 2x2 kernels [[1,2],[3,4]] and [[5,6],[7,8]] -> C=2 outputs of one input each.
        let w: Vec<f32> = (1..=8).map(|v| v as f32).collect();
        assert_eq!(flip_transpose(&w, [1, 2, 2, 2]), vec![4.0, 3.0, 2.0, 1.0, 8.0, 7.0, 6.0, 5.0]);
    }
}
