//! ferrite's own CPU kernels for burn's flex backend, each with its autodiff node: the
//! convolutions (`conv`, Winograd for the wide 3x3/5x5 layers), 2x2 max-pool, hashed dropout,
//! training BatchNorm, the matrix products they share (`gemm`: f32 or bf16) and the state of a
//! data-parallel training replica. CPU features are tokens (`cpu`): no safe call reaches an
//! instruction the CPU lacks.
//!
//! The networks in `crate::model` call [`conv::forward`], [`pool::forward`],
//! [`dropout::forward`] and [`batch_norm::batch_norm`]; on any other backend these fall back to
//! burn's own layers.

mod bf16;
pub mod batch_norm;
pub mod conv;
pub mod cpu;
pub mod dropout;
pub mod gemm;
mod layout;
pub mod pool;
pub mod replica;
mod winograd;

pub use gemm::{Matmul, MatmulPrecision};
pub use replica::Replica;

/// A matrix operand of [`gemm::gemm`]: (data, row stride, column stride).
pub(crate) type Mat<'a> = (&'a [f32], usize, usize);

/// SplitMix64's additive constant (2^64 / golden ratio).
pub(crate) const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function: a bijective mix of the 64 bits of `z`.
#[inline(always)]
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One SplitMix64 step from state `z`: the hash of a seed.
pub(crate) fn splitmix64(z: u64) -> u64 {
    mix64(z.wrapping_add(GOLDEN_GAMMA))
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
