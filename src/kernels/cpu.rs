//! CPU features as values: zero-sized tokens that only a successful run-time check creates.
//!
//! The build targets baseline x86-64; ferrite's own vector kernels are also compiled with
//! `#[target_feature]` for AVX-512, and their AVX-512 code is reached only through a token, so
//! no safe call can run an instruction this CPU lacks.

/// Proof that this CPU runs AVX-512F and AVX-512VL (and so AVX2 and FMA). Only
/// [`Avx512::detect`] creates one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Avx512 {
    _checked: (),
}

impl Avx512 {
    /// The token where the CPU has the features (checked once per process, then cached).
    pub fn detect() -> Option<Avx512> {
        #[cfg(target_arch = "x86_64")]
        {
            static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
            let has = *HAS.get_or_init(|| {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512vl")
                    && std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            });
            has.then_some(Avx512 { _checked: () })
        }
        #[cfg(not(target_arch = "x86_64"))]
        None
    }
}

/// Proof that this CPU runs AVX-512F, AVX-512BW and AVX512_BF16 (`vdpbf16ps`). Only
/// [`Avx512Bf16::detect`] creates one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Avx512Bf16 {
    _checked: (),
}

impl Avx512Bf16 {
    /// The token where the CPU has the features (checked once per process, then cached).
    pub fn detect() -> Option<Avx512Bf16> {
        #[cfg(target_arch = "x86_64")]
        {
            static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
            let has = *HAS.get_or_init(|| {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                    && std::arch::is_x86_feature_detected!("avx512bf16")
            });
            has.then_some(Avx512Bf16 { _checked: () })
        }
        #[cfg(not(target_arch = "x86_64"))]
        None
    }
}

/// The int8 dot-product instructions this CPU has, best first (AMX-INT8, AVX-512 VNNI,
/// AVX-VNNI), for reports of which int8 kernels tract can pick; `None` without any.
pub fn int8_dot_product() -> Option<&'static str> {
    #[cfg(target_arch = "x86_64")]
    {
        // CPUID leaf 7, EDX bit 25: AMX-INT8 (`is_x86_feature_detected!` has no stable name for it).
        if std::arch::is_x86_feature_detected!("avx512f") && std::arch::x86_64::__cpuid_count(7, 0).edx >> 25 & 1 == 1 {
            return Some("AMX-INT8");
        }
        if std::arch::is_x86_feature_detected!("avx512vnni") {
            return Some("AVX-512 VNNI");
        }
        if std::arch::is_x86_feature_detected!("avxvnni") {
            return Some("AVX-VNNI");
        }
    }
    None
}

/// The instruction set a vector kernel runs: the baseline, or AVX-512 with its proof.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// Baseline x86-64 (SSE2) or whatever the target guarantees.
    Baseline,
    /// The AVX-512 instantiation.
    Avx512(Avx512),
}

impl Isa {
    /// The widest instruction set this CPU runs.
    pub fn detect() -> Isa {
        Avx512::detect().map_or(Isa::Baseline, Isa::Avx512)
    }

    /// Every instruction set this CPU runs, baseline first (for tests comparing them).
    pub fn all_available() -> Vec<Isa> {
        std::iter::once(Isa::Baseline).chain(Avx512::detect().map(Isa::Avx512)).collect()
    }
}
