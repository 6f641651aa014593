//! The one place that chooses the compute backend (burn `flex` on CPU, `cuda` with the feature).

use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};

/// The inference device: CUDA GPU 0 when built with `--features cuda`, else burn's flex CPU backend.
pub fn inference_device() -> Device {
    #[cfg(feature = "cuda")]
    {
        Device::cuda(0)
    }
    #[cfg(not(feature = "cuda"))]
    {
        Device::flex()
    }
}

/// The training device: the inference device with autodiff enabled.
pub fn training_device() -> Device {
    inference_device().autodiff()
}

/// Limit the CPU threads used by tensor kernels (rayon's global pool). Call once, early;
/// later calls are ignored. `None` keeps rayon's default (one thread per core).
pub fn set_threads(threads: Option<usize>) {
    if let Some(n) = threads {
        let _ = rayon::ThreadPoolBuilder::new().num_threads(n.max(1)).build_global();
    }
}

/// The precision of the matrix products inside ferrite's convolution kernels (`model::conv`,
/// `model::winograd`: every wide 3x3/5x5 layer, all three passes, and the weight gradients).
/// flex's own operations (the dense layers, the first 1-channel convolution) stay f32.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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

static BF16_MATMUL: AtomicBool = AtomicBool::new(false);

/// Sets the process-wide [`MatmulPrecision`] (like `set_threads`, a property of the process:
/// every network run afterwards, on any thread, uses it). Training sets it from its config.
pub fn set_matmul_precision(p: MatmulPrecision) -> crate::error::Result<()> {
    check_matmul_precision(p)?;
    BF16_MATMUL.store(p == MatmulPrecision::Bf16, Ordering::Relaxed);
    Ok(())
}

/// An error where this CPU cannot run precision `p`.
pub fn check_matmul_precision(p: MatmulPrecision) -> crate::error::Result<()> {
    if p == MatmulPrecision::Bf16 && !crate::model::bf16::available() {
        return Err(crate::error::Error::Config(
            "bf16 matrix products need a CPU with AVX512_BF16, which this one lacks; use f32".into(),
        ));
    }
    Ok(())
}

/// The precision [`set_matmul_precision`] chose (f32 until it is called).
pub fn matmul_precision() -> MatmulPrecision {
    if BF16_MATMUL.load(Ordering::Relaxed) { MatmulPrecision::Bf16 } else { MatmulPrecision::F32 }
}

/// Tunes glibc's allocator for tensor work: blocks up to 32 MiB come from the heap instead of
/// fresh `mmap`s, and freed memory stays in the process (no trimming). flex allocates a new
/// buffer for every op's output; with glibc's defaults each large one was a new mapping whose
/// pages the kernel faulted in and zeroed, and unmapped again on free: `perf` on a training
/// run showed ~30% of the main thread in page-fault and unmap code. Reference training step
/// +9% in an A/B (docs/BENCHMARKS.md). A no-op on other platforms.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets glibc malloc parameters; it is safe to call at any time.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
    }
}

/// Whether `device` is burn's flex CPU backend (with or without autodiff): the backend that
/// ferrite's own kernels (`model::pool`) are written for.
pub fn is_flex(device: &Device) -> bool {
    matches!(device.as_dispatch().clone().inner(), burn::backend::DispatchDevice::Flex(_))
}
