//! Probe: time flex's conv2d forward, input-gradient and weight-gradient passes per reference layer, and ferrite's (`kernels::conv`, Winograd for the 3x3 layers).
//! PROBE_NET=compact: the layers of the embedded compact net (width 28, crop 40); PROBE_BF16=1:
//! bf16 matrix products (`--matmul bf16`).
use burn::backend::flex::{FlexTensor, Layout};
use burn::backend::ops::{ConvOptions, ModuleOps};
use burn::backend::Flex;
use burn::tensor::DType;
use std::time::Instant;

/// Wall time, or with PROBE_CPU=1 the process's CPU time (steadier while other work shares the
/// machine; run with RAYON_NUM_THREADS=1 to compare per-thread costs).
struct Clock(Option<Instant>, f64);

impl Clock {
    fn now() -> Self {
        if std::env::var_os("PROBE_CPU").is_some() {
            let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
            // SAFETY: clock_gettime writes the timespec it is given.
            unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
            Clock(None, ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9)
        } else {
            Clock(Some(Instant::now()), 0.0)
        }
    }

    /// Milliseconds since `now`.
    fn ms(&self) -> f64 {
        match self.0 {
            Some(t) => t.elapsed().as_secs_f64() * 1e3,
            None => (Clock::now().1 - self.1) * 1e3,
        }
    }
}

fn t(dims: [usize; 4], seed: u32) -> FlexTensor {
    let n: usize = dims.iter().product();
    let mut s = seed.wrapping_mul(2654435761).max(1);
    let data: Vec<f32> = (0..n).map(|_| { s ^= s << 13; s ^= s >> 17; s ^= s << 5; (s as f32 / u32::MAX as f32) - 0.5 }).collect();
    FlexTensor::new(burn::tensor::Bytes::from_elems(data), Layout::contiguous(dims.into()), DType::F32)
}

use ferrite::kernels::Matmul;

fn main() {
    let layers: Vec<(usize, usize, usize, usize)> = if std::env::var("PROBE_NET").as_deref() == Ok("compact") {
        vec![(1, 28, 3, 40), (28, 56, 3, 20), (56, 56, 3, 20), (56, 112, 3, 10), (112, 112, 3, 10), (112, 224, 3, 5), (224, 224, 3, 5)]
    } else {
        vec![(64, 128, 5, 24), (128, 512, 3, 12), (512, 512, 3, 6)]
    };
    let mm = if std::env::var_os("PROBE_BF16").is_some() {
        Matmul::new(ferrite::kernels::MatmulPrecision::Bf16).expect("bf16 products")
    } else {
        Matmul::F32
    };
    // PROBE_LAYER=i times only layer i (0-based).
    let only: Option<usize> = std::env::var("PROBE_LAYER").ok().and_then(|v| v.parse().ok());
    for (i, &(ci, co, k, hw)) in layers.iter().enumerate() {
        if only.is_some_and(|o| o != i) {
            continue;
        }
        let x = t([64, ci, hw, hw], 1);
        let w = t([co, ci, k, k], 2);
        let g = t([64, co, hw, hw], 3);
        let p = k / 2;
        let opt = ConvOptions::new([1, 1], [p, p], [1, 1], 1);
        let mut best = [f64::MAX; 6];
        // PROBE_OURS=1 skips flex's passes (for profiling ferrite's).
        let ours_only = std::env::var_os("PROBE_OURS").is_some();
        for _ in 0..3 {
            if !ours_only {
            let s = Clock::now();
            let _y = <Flex as ModuleOps<Flex>>::conv2d(x.clone(), w.clone(), None, opt.clone());
            best[0] = best[0].min(s.ms());
            let s = Clock::now();
            let _dx = <Flex as ModuleOps<Flex>>::conv2d_x_backward(x.clone(), w.clone(), g.clone(), opt.clone());
            best[1] = best[1].min(s.ms());
            let s = Clock::now();
            let _dw = <Flex as ModuleOps<Flex>>::conv2d_weight_backward(x.clone(), w.clone(), g.clone(), opt.clone());
            best[2] = best[2].min(s.ms());
            }
            let s = Clock::now();
            let _dx = <Flex as ferrite::kernels::conv::ConvSameBackend>::conv2d_same_x_backward(x.clone(), w.clone(), g.clone(), mm);
            best[3] = best[3].min(s.ms());
            let s = Clock::now();
            let _dw = <Flex as ferrite::kernels::conv::ConvSameBackend>::conv2d_same_w_backward(x.clone(), w.clone(), g.clone(), mm);
            best[4] = best[4].min(s.ms());
            let s = Clock::now();
            let _y = <Flex as ferrite::kernels::conv::ConvSameBackend>::conv2d_same(x.clone(), w.clone(), mm);
            best[5] = best[5].min(s.ms());
        }
        let gflop = 2.0 * (64 * co * ci * k * k * hw * hw) as f64 / 1e9;
        println!("{ci}->{co} {k}x{k} @{hw}: fwd {:.1} ms, dx {:.1} ms, dw {:.1} ms | ours fwd {:.1} ms, dx {:.1} ms, dw {:.1} ms ({gflop:.1} GFLOP each)", best[0], best[1], best[2], best[5], best[3], best[4]);
    }
}
