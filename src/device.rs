//! The one place that chooses the compute backend (burn `flex` on CPU, `cuda` with the feature).

use burn::tensor::Device;

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

/// Caps the number of glibc malloc arenas at `arenas` (at least 1) for a long-running process
/// with many threads: glibc gives each new thread that meets contention an arena of its own
/// (up to 8 per core), and memory freed in one stays with it. In `ferrite serve` after image
/// bombs (issue 45) the blocking threads' arenas held ~220 MiB that `malloc_trim` could not
/// give back: 90 s of load with a bomb every few seconds, 2-core AMD EPYC, ended at 336 MiB
/// with glibc's default and at 118 MiB with 2 arenas (docs/RELIABILITY.md). Call it before the
/// threads start; arenas that already exist stay. A no-op on other platforms.
pub fn limit_allocator_arenas(arenas: usize) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a glibc malloc parameter; it is safe to call at any time.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, arenas.clamp(1, i32::MAX as usize) as i32);
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = arenas;
}

/// Whether `device` is burn's flex CPU backend (with or without autodiff): the backend that
/// ferrite's own kernels (`crate::kernels`) are written for.
pub fn is_flex(device: &Device) -> bool {
    matches!(device.as_dispatch().clone().inner(), burn::backend::DispatchDevice::Flex(_))
}
