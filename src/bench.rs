//! Speed measurement of a network: training steps and batch-64 / batch-1 inference.

use crate::device::{inference_device, training_device};
use crate::emotion::Emotion;
use crate::kernels::Matmul;
use crate::model::{ModelSpec, Network};
use crate::data::preprocess::{FACE_PIXELS, batch_tensor};
use crate::train::{Batch, train_step_replicated};
use burn::module::Module;
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
    /// Precision of the convolutions' matrix products during the measurement.
    #[serde(default)]
    pub matmul: crate::kernels::MatmulPrecision,
    /// Training images per second (batch 64, Adam, forward + backward + update).
    pub train_img_s: f64,
    /// Inference images per second at batch 64.
    pub infer64_img_s: f64,
    /// Median milliseconds for one face (batch 1).
    pub infer1_ms: f64,
}

/// A fixed random batch of 64 faces and a fresh network with its optimiser and loss.
struct Setup {
    pixels: Vec<f32>,
    labels: Vec<i64>,
    device: burn::tensor::Device,
    net: Network,
    optim: burn::optim::ModuleOptimizer,
    loss_fn: crate::train::Loss,
}

impl Setup {
    fn new(spec: &ModelSpec, matmul: Matmul) -> Setup {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        let device = training_device();
        device.seed(0);
        Setup {
            pixels: (0..64 * FACE_PIXELS).map(|_| rng.random()).collect(),
            labels: (0..64).map(|_| rng.random_range(0..Emotion::COUNT as i64)).collect(),
            net: Network::new(spec, &device).with_matmul(matmul),
            optim: AdamConfig::new().init(),
            loss_fn: crate::train::Loss::default(),
            device,
        }
    }
}

/// Time `steps` training steps (split over `replicas` threads, `train_step_replicated`) and
/// inference passes after `warmup` untimed ones, the convolutions' products in precision `matmul`.
pub fn measure(spec: &ModelSpec, steps: usize, warmup: usize, replicas: usize, matmul: Matmul) -> SpeedReport {
    let Setup { pixels, labels, device, mut net, mut optim, loss_fn } = Setup::new(spec, matmul);
    let mut run = |n: usize, net: &mut Network| {
        for _ in 0..n {
            let batch = Batch::hard(pixels.clone(), labels.clone());
            let (next, _, _) = train_step_replicated(net.clone(), &mut optim, &loss_fn, batch, 5e-4, &device, replicas);
            *net = next;
        }
    };
    run(warmup, &mut net);
    let t = Instant::now();
    run(steps, &mut net);
    let train_img_s = (steps * 64) as f64 / t.elapsed().as_secs_f64();

    let (infer64_img_s, infer1_ms) = measure_inference(&net, steps, warmup);
    SpeedReport {
        framework: format!("ferrite {} (burn 0.22 flex)", env!("CARGO_PKG_VERSION")),
        arch: spec.arch.to_string(),
        threads: rayon::current_num_threads(),
        matmul: matmul.precision(),
        train_img_s,
        infer64_img_s,
        infer1_ms,
    }
}

/// Inference speed of a network: batch-64 images per second over `steps` passes, and the
/// median milliseconds of `5 * steps` single-face passes, after `warmup` untimed ones of each.
pub fn measure_inference(net: &Network, steps: usize, warmup: usize) -> (f64, f64) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let pixels: Vec<f32> = (0..64 * FACE_PIXELS).map(|_| rng.random()).collect();
    let dev = inference_device();
    let net = net.valid().to_device(&dev);
    let forward = |px: &[f32]| -> Result<(), std::convert::Infallible> {
        let out = net.forward(batch_tensor(px.to_vec(), &dev));
        let _ = out.into_data();
        Ok(())
    };
    let timed = time_passes(steps, warmup, || forward(&pixels), || forward(&pixels[..FACE_PIXELS]));
    timed.unwrap_or_else(|never| match never {})
}

/// Inference speed of the tract-compiled copy (`onnx::FastModel`, what `predict`, `detect`,
/// `video` and `serve` run): 64 faces one run each, spread over the threads, in images per
/// second; and the median milliseconds of `5 * steps` single faces. Compiled at `fast`'s
/// own precision (`FastModel::with_precision`).
pub fn measure_fast(fast: &crate::model::onnx::FastModel, steps: usize, warmup: usize) -> crate::error::Result<(f64, f64)> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let faces: Vec<u8> = (0..64 * FACE_PIXELS).map(|_| rng.random()).collect();
    time_passes(steps, warmup, || fast.probs_each(&faces).map(drop), || fast.probs(&faces[..FACE_PIXELS]).map(drop))
}

/// Images per second of `steps` passes of `batch64` (64 faces each) and the median milliseconds
/// of `5 * steps` passes of `one`, each after `warmup` untimed passes.
fn time_passes<E>(
    steps: usize,
    warmup: usize,
    mut batch64: impl FnMut() -> Result<(), E>,
    mut one: impl FnMut() -> Result<(), E>,
) -> Result<(f64, f64), E> {
    for _ in 0..warmup {
        batch64()?;
    }
    let t = Instant::now();
    for _ in 0..steps {
        batch64()?;
    }
    let img_s = (steps * 64) as f64 / t.elapsed().as_secs_f64();
    for _ in 0..warmup {
        one()?;
    }
    let mut times = Vec::with_capacity(steps * 5);
    for _ in 0..steps * 5 {
        let t = Instant::now();
        one()?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    Ok((img_s, times[times.len() / 2]))
}

/// Where the time of one training step goes: forward per layer, loss, backward, update.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepProfile {
    /// (stage, milliseconds), in execution order; averaged over the measured steps.
    pub stages: Vec<(String, f64)>,
    pub total_ms: f64,
}

/// Profile `steps` training steps (batch 64) after `warmup` untimed ones. flex is eager, so the
/// wall time between layer outputs is each layer's forward cost.
pub fn profile_step(spec: &ModelSpec, steps: usize, warmup: usize, matmul: Matmul) -> StepProfile {
    use burn::optim::GradientsParams;

    let Setup { pixels, labels, device, mut net, mut optim, loss_fn } = Setup::new(spec, matmul);
    let mut sums: Vec<(String, f64)> = Vec::new();
    for i in 0..warmup + steps {
        let mut stages: Vec<(String, f64)> = Vec::new();
        let x = batch_tensor(pixels.clone(), &device);
        let targets = Batch::hard(Vec::new(), labels.clone()).targets;
        let mut pass = crate::model::Pass::traced();
        let logits = net.forward_with(x, &mut pass);
        let mut counts = std::collections::HashMap::new();
        for r in pass.tape.into_rows() {
            let k = counts.entry(r.kind).or_insert(0);
            *k += 1;
            stages.push((format!("forward {} #{}", r.kind, k), r.elapsed_ms));
        }
        let mut t = Instant::now();
        let mut lap = |name: &str, stages: &mut Vec<(String, f64)>| {
            let now = Instant::now();
            stages.push((name.to_string(), (now - t).as_secs_f64() * 1000.0));
            t = now;
        };
        let loss = loss_fn.forward(logits, &targets);
        let _: f32 = loss.clone().into_scalar();
        lap("loss", &mut stages);
        let grads = loss.backward();
        lap("backward (all layers)", &mut stages);
        let grads = GradientsParams::from_grads(grads, &net);
        net = optim.step(5e-4, net, grads);
        lap("optimizer update (Adam)", &mut stages);
        if i >= warmup {
            if sums.is_empty() {
                sums = stages.iter().map(|(n, _)| (n.clone(), 0.0)).collect();
            }
            for (s, (_, v)) in sums.iter_mut().zip(&stages) {
                s.1 += v / steps as f64;
            }
        }
    }
    let total_ms = sums.iter().map(|(_, v)| v).sum();
    StepProfile { stages: sums, total_ms }
}
