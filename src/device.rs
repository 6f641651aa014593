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

/// Whether `device` is burn's flex CPU backend (with or without autodiff): the backend that
/// ferrite's own kernels (`model::pool`) are written for.
pub fn is_flex(device: &Device) -> bool {
    matches!(device.as_dispatch().clone().inner(), burn::backend::DispatchDevice::Flex(_))
}
