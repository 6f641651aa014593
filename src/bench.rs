//! Speed measurement of a network: training steps and batch-64 / batch-1 inference.

use crate::device::{inference_device, training_device};
use crate::emotion::Emotion;
use crate::model::{ModelSpec, Network};
use crate::preprocess::{FACE_PIXELS, batch_tensor};
use crate::train::{Batch, train_step};
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::AdamConfig;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Measured speeds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SpeedReport {
    pub framework: String,
    pub arch: String,
    pub threads: usize,
    /// Training images per second (batch 64, Adam, forward + backward + update).
    pub train_img_s: f64,
    /// Inference images per second at batch 64.
    pub infer64_img_s: f64,
    /// Median milliseconds for one face (batch 1).
    pub infer1_ms: f64,
}

/// Time `steps` training steps and inference passes after `warmup` untimed ones.
pub fn measure(spec: &ModelSpec, steps: usize, warmup: usize) -> SpeedReport {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let pixels: Vec<f32> = (0..64 * FACE_PIXELS).map(|_| rng.random()).collect();
    let labels: Vec<i64> = (0..64).map(|_| rng.random_range(0..Emotion::COUNT as i64)).collect();

    let device = training_device();
    device.seed(0);
    let mut net = Network::new(spec, &device);
    let mut optim = AdamConfig::new().init();
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let mut run = |n: usize, net: &mut Network| {
        for _ in 0..n {
            let batch = Batch { pixels: pixels.clone(), labels: labels.clone() };
            let (next, _, _) = train_step(net.clone(), &mut optim, &loss_fn, batch, 5e-4, &device);
            *net = next;
        }
    };
    run(warmup, &mut net);
    let t = Instant::now();
    run(steps, &mut net);
    let train_img_s = (steps * 64) as f64 / t.elapsed().as_secs_f64();

    let dev = inference_device();
    let net = net.valid().to_device(&dev);
    let forward = |px: &[f32]| {
        let out = net.forward(batch_tensor(px.to_vec(), &dev));
        let _ = out.into_data();
    };
    for _ in 0..warmup {
        forward(&pixels);
    }
    let t = Instant::now();
    for _ in 0..steps {
        forward(&pixels);
    }
    let infer64_img_s = (steps * 64) as f64 / t.elapsed().as_secs_f64();
    let one = &pixels[..FACE_PIXELS];
    for _ in 0..warmup {
        forward(one);
    }
    let mut times: Vec<f64> = (0..steps * 5)
        .map(|_| {
            let t = Instant::now();
            forward(one);
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    SpeedReport {
        framework: format!("ferrite {} (burn 0.22 flex)", env!("CARGO_PKG_VERSION")),
        arch: spec.arch.to_string(),
        threads: rayon::current_num_threads(),
        train_img_s,
        infer64_img_s,
        infer1_ms: times[times.len() / 2],
    }
}
