//! Probe: time flex's conv2d forward, input-gradient and weight-gradient passes per reference layer.
use burn::backend::flex::{FlexTensor, Layout};
use burn::backend::ops::{ConvOptions, ModuleOps};
use burn::backend::Flex;
use burn::tensor::DType;
use std::time::Instant;

fn t(dims: [usize; 4], seed: u32) -> FlexTensor {
    let n: usize = dims.iter().product();
    let mut s = seed.wrapping_mul(2654435761).max(1);
    let data: Vec<f32> = (0..n).map(|_| { s ^= s << 13; s ^= s >> 17; s ^= s << 5; (s as f32 / u32::MAX as f32) - 0.5 }).collect();
    FlexTensor::new(burn::tensor::Bytes::from_elems(data), Layout::contiguous(dims.into()), DType::F32)
}

fn main() {
    let layers = [(64usize, 128usize, 5usize, 24usize), (128, 512, 3, 12), (512, 512, 3, 6)];
    for &(ci, co, k, hw) in &layers {
        let x = t([64, ci, hw, hw], 1);
        let w = t([co, ci, k, k], 2);
        let g = t([64, co, hw, hw], 3);
        let p = k / 2;
        let opt = ConvOptions::new([1, 1], [p, p], [1, 1], 1);
        let mut best = [f64::MAX; 5];
        for _ in 0..3 {
            let s = Instant::now();
            let _y = <Flex as ModuleOps<Flex>>::conv2d(x.clone(), w.clone(), None, opt.clone());
            best[0] = best[0].min(s.elapsed().as_secs_f64() * 1e3);
            let s = Instant::now();
            let _dx = <Flex as ModuleOps<Flex>>::conv2d_x_backward(x.clone(), w.clone(), g.clone(), opt.clone());
            best[1] = best[1].min(s.elapsed().as_secs_f64() * 1e3);
            let s = Instant::now();
            let _dw = <Flex as ModuleOps<Flex>>::conv2d_weight_backward(x.clone(), w.clone(), g.clone(), opt.clone());
            best[2] = best[2].min(s.elapsed().as_secs_f64() * 1e3);
            let s = Instant::now();
            let _dx = <Flex as ferrite::model::conv::ConvSameBackend>::conv2d_same_x_backward(x.clone(), w.clone(), g.clone());
            best[3] = best[3].min(s.elapsed().as_secs_f64() * 1e3);
            let s = Instant::now();
            let _dw = <Flex as ferrite::model::conv::ConvSameBackend>::conv2d_same_w_backward(x.clone(), w.clone(), g.clone());
            best[4] = best[4].min(s.elapsed().as_secs_f64() * 1e3);
        }
        let gflop = 2.0 * (64 * co * ci * k * k * hw * hw) as f64 / 1e9;
        println!("{ci}->{co} {k}x{k} @{hw}: fwd {:.1} ms, dx {:.1} ms, dw {:.1} ms | ours dx {:.1} ms, dw {:.1} ms ({gflop:.1} GFLOP each)", best[0], best[1], best[2], best[3], best[4]);
    }
}
