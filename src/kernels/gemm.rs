//! Matrix products of ferrite's convolution kernels, in the precision a network carries.

use super::cpu::Avx512Bf16;
use serde::{Deserialize, Serialize};

/// The precision of the matrix products inside ferrite's convolution kernels (`kernels::conv`,
/// `kernels::winograd`: every wide 3x3/5x5 layer, all three passes, and the weight gradients),
/// as a user asks for it (`--matmul`, a training config). flex's own operations (the dense
/// layers, the first 1-channel convolution) stay f32. [`Matmul::new`] turns it into what the
/// kernels run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum MatmulPrecision {
    /// f32 operands, products and sums.
    #[default]
    F32,
    /// Operands rounded to bf16 (8 significant bits), products summed in f32: about twice the
    /// multiply rate. Needs a CPU with AVX512_BF16 (AMD Zen 4 and later, Intel Cooper Lake,
    /// Sapphire Rapids and later).
    Bf16,
}

impl std::fmt::Display for MatmulPrecision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MatmulPrecision::F32 => "f32",
            MatmulPrecision::Bf16 => "bf16",
        })
    }
}

/// A matrix-product precision this CPU runs: bf16 only with the proof that it can. Networks
/// carry one (`Network::with_matmul`); every product of their convolution kernels, forward and
/// backward, uses it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Matmul {
    #[default]
    F32,
    Bf16(Avx512Bf16),
}

impl Matmul {
    /// `p` on this CPU, or an error naming what it lacks.
    pub fn new(p: MatmulPrecision) -> Result<Matmul, crate::error::Error> {
        // ferrite's kernels run on the flex CPU backend only; a CUDA build never calls them.
        #[cfg(feature = "cuda")]
        if p == MatmulPrecision::Bf16 {
            return Err(crate::error::Error::Unsupported {
                what: "bf16 matrix products are ferrite's CPU kernels, which a CUDA build does not run; use f32",
            });
        }
        match p {
            MatmulPrecision::F32 => Ok(Matmul::F32),
            MatmulPrecision::Bf16 => Avx512Bf16::detect().map(Matmul::Bf16).ok_or(crate::error::Error::Unsupported {
                what: "bf16 matrix products need a CPU with AVX512_BF16, which this one lacks; use f32",
            }),
        }
    }

    /// The precision asked for.
    pub fn precision(self) -> MatmulPrecision {
        match self {
            Matmul::F32 => MatmulPrecision::F32,
            Matmul::Bf16(_) => MatmulPrecision::Bf16,
        }
    }
}

pub(crate) use super::Mat;

/// dst (m x n, row-major) = [dst +] lhs (m x k) . rhs (k x n) on the calling thread, in
/// precision `p`: f32 through the `gemm` crate, or bf16 products with f32 sums
/// ([`super::bf16`]). Panics if an operand's slice is shorter than its strides reach.
pub(crate) fn gemm(p: Matmul, dst: &mut [f32], mnk: [usize; 3], accumulate: bool, lhs: Mat, rhs: Mat) {
    check_operands(dst, mnk, lhs, rhs);
    match p {
        Matmul::Bf16(cpu) => super::bf16::gemm(cpu, dst, mnk, accumulate, lhs, rhs),
        Matmul::F32 => gemm_f32_checked(dst, mnk, accumulate, lhs, rhs),
    }
}

fn check_operands(dst: &[f32], [m, n, k]: [usize; 3], lhs: Mat, rhs: Mat) {
    let fits = |(d, rs, cs): Mat, rows: usize, cols: usize| rows == 0 || cols == 0 || (rows - 1) * rs + (cols - 1) * cs < d.len();
    assert!(dst.len() >= m * n && fits(lhs, m, k) && fits(rhs, k, n), "gemm: operand shorter than its shape");
}

/// The `gemm` crate's f32 product; the operands were checked by the caller.
fn gemm_f32_checked(dst: &mut [f32], [m, n, k]: [usize; 3], accumulate: bool, lhs: Mat, rhs: Mat) {
    // SAFETY: `check_operands` (every caller) keeps every element the strides address inside
    // its slice, and `dst` holds m x n elements at row stride n.
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
