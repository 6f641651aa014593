//! One training step: batches, the loss, mixing, data-parallel replicas and the batch producer.

use super::*;

/// A batch ready for the device: normalised (augmented) pixels, class indices (for accuracy)
/// and the per-face training targets the loss compares with.
pub struct Batch {
    pub pixels: Vec<f32>,
    pub labels: Vec<i64>,
    /// `labels.len() * Emotion::COUNT` values: each face's target distribution (one-hot for
    /// hard labels; smoothed, mixed or FER+ vote shares otherwise).
    pub targets: Vec<f32>,
}

impl Batch {
    /// A batch with one-hot targets on `labels`.
    pub fn hard(pixels: Vec<f32>, labels: Vec<i64>) -> Batch {
        let mut targets = vec![0.0; labels.len() * Emotion::COUNT];
        for (k, &l) in labels.iter().enumerate() {
            targets[k * Emotion::COUNT + l as usize] = 1.0;
        }
        Batch { pixels, labels, targets }
    }

    pub(crate) fn part(&self, lo: usize, hi: usize) -> Batch {
        let per_face = self.pixels.len() / self.labels.len().max(1);
        Batch {
            pixels: self.pixels[lo * per_face..hi * per_face].to_vec(),
            labels: self.labels[lo..hi].to_vec(),
            targets: self.targets[lo * Emotion::COUNT..hi * Emotion::COUNT].to_vec(),
        }
    }
}

/// The training loss: cross-entropy between the softmax of the logits and each face's target
/// distribution, `-sum_k t_k log p_k` (with one-hot targets the usual cross-entropy), averaged
/// over the batch; or FER+'s multi-target loss `-log(sum_k t_k p_k)` (targets as a mask).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Loss {
    /// Per-class weights: face i weighs `sum_k t_ik w_k` and the batch loss is the weighted
    /// mean (PyTorch's and burn's weighted cross-entropy for one-hot targets).
    pub class_weights: Option<Vec<f32>>,
    pub multi_target: bool,
}

impl Loss {
    /// The batch loss (a one-element tensor) for `logits` (N, C) and row-major `targets`.
    pub fn forward(&self, logits: Tensor<2>, targets: &[f32]) -> Tensor<1> {
        let [n, c] = logits.dims();
        let device = logits.device();
        let t = Tensor::<2>::from_data(TensorData::new(targets.to_vec(), [n, c]), &device);
        let per_face: Tensor<2> = if self.multi_target {
            burn::tensor::activation::softmax(logits, 1).mul(t).sum_dim(1).clamp_min(1e-12).log().neg()
        } else {
            burn::tensor::activation::log_softmax(logits, 1).mul(t).sum_dim(1).neg()
        };
        match &self.class_weights {
            None => per_face.mean(),
            Some(w) => {
                let fw: Vec<f32> = targets.chunks(c).map(|t| t.iter().zip(w).map(|(a, b)| a * b).sum()).collect();
                let total: f32 = fw.iter().sum::<f32>().max(1e-12);
                let fw = Tensor::<2>::from_data(TensorData::new(fw, [n, 1]), &device);
                per_face.mul(fw).sum().div_scalar(total)
            }
        }
    }
}

/// Class weights for the loss: count^-power, normalised so the mean weight per face is 1.
pub fn class_weights(counts: &[usize; Emotion::COUNT], power: f32) -> Vec<f32> {
    let total: usize = counts.iter().sum();
    let raw: Vec<f64> = counts.iter().map(|&c| (c.max(1) as f64).powf(-(power as f64))).collect();
    let mean: f64 = counts.iter().zip(&raw).map(|(&c, w)| c as f64 * w).sum::<f64>() / total.max(1) as f64;
    raw.iter().map(|w| (w / mean) as f32).collect()
}

/// Mix each face of a batch with a partner from the same batch (mixup or CutMix), in place.
/// Returns each face's partner (an index into the batch) and the weight of the original face.
pub(crate) fn mix_batch(pixels: &mut [f32], n: usize, mix: Mix, rng: &mut StdRng) -> Option<(Vec<usize>, f32)> {
    use rand::Rng;
    use rand_distr::{Beta, Distribution};
    let alpha = match mix {
        Mix::None => return None,
        Mix::Mixup { alpha } | Mix::Cutmix { alpha } => alpha,
    };
    if n < 2 {
        return None;
    }
    let beta = Beta::new(alpha, alpha).ok()?;
    let mut lam: f32 = beta.sample(rng);
    lam = lam.max(1.0 - lam);
    let mut partner: Vec<usize> = (0..n).collect();
    partner.shuffle(rng);
    let orig = pixels.to_vec();
    let face = |k: usize| &orig[k * FACE_PIXELS..(k + 1) * FACE_PIXELS];
    match mix {
        Mix::Mixup { .. } => {
            for (k, &p) in partner.iter().enumerate() {
                let (a, b) = (face(k), face(p));
                for ((o, x), y) in pixels[k * FACE_PIXELS..(k + 1) * FACE_PIXELS].iter_mut().zip(a).zip(b) {
                    *o = lam * x + (1.0 - lam) * y;
                }
            }
        }
        Mix::Cutmix { .. } => {
            // One rectangle for the batch with area (1 - lam) of the face.
            let size = crate::data::preprocess::FACE_SIZE;
            let side = ((1.0 - lam).sqrt() * size as f32).round() as usize;
            let (h, w) = (side.min(size), side.min(size));
            let y0 = rng.random_range(0..=size - h);
            let x0 = rng.random_range(0..=size - w);
            for (k, &p) in partner.iter().enumerate() {
                let b = face(p);
                let dst = &mut pixels[k * FACE_PIXELS..(k + 1) * FACE_PIXELS];
                for y in y0..y0 + h {
                    dst[y * size + x0..y * size + x0 + w].copy_from_slice(&b[y * size + x0..y * size + x0 + w]);
                }
            }
            lam = 1.0 - (h * w) as f32 / (size * size) as f32;
        }
        Mix::None => unreachable!(),
    }
    Some((partner, lam))
}

/// One optimisation step: forward, cross-entropy, backward, update.
/// Returns the updated network, the batch loss and the number of correct predictions.
/// A non-finite loss is returned as is and the update is skipped.
pub fn train_step(
    net: Network,
    optim: &mut ModuleOptimizer,
    loss_fn: &Loss,
    batch: Batch,
    lr: f64,
    device: &Device,
) -> (Network, f32, usize) {
    let (grads, loss_value, correct) = batch_grads(&net, loss_fn, batch, 1.0, device, None);
    match grads {
        Some(grads) => (optim.step(lr, net, grads), loss_value, correct),
        None => (net, loss_value, 0),
    }
}

/// [`train_step`] with the batch split into `replicas` contiguous parts, each run forward and
/// backward on its own thread (the calling thread and `replicas - 1` scoped threads) on a
/// fork of `net`, their gradients summed (each part's loss weighted by its share of the
/// batch, so the sum is the whole batch's mean-loss gradient) and one update applied.
///
/// A single step leaves part of the cores idle: between the parallel convolution kernels,
/// flex runs the element-wise work on the calling thread alone. Two replicas fill those gaps.
/// What changes: BatchNorm normalises each part by its own statistics ("ghost" batches of
/// `batch / replicas` faces; the running statistics get their average), and dropout masks come
/// from per-replica seed streams seeded from the device generator. With class weights the parts'
/// weighted means are averaged by face count, not by weight. Results do not depend on thread
/// timing. `replicas <= 1` is exactly [`train_step`].
pub fn train_step_replicated(
    net: Network,
    optim: &mut ModuleOptimizer,
    loss_fn: &Loss,
    batch: Batch,
    lr: f64,
    device: &Device,
    replicas: usize,
) -> (Network, f32, usize) {
    let n = batch.labels.len();
    let replicas = replicas.clamp(1, n.max(1));
    if replicas == 1 {
        return train_step(net, optim, loss_fn, batch, lr, device);
    }
    let base_seed = crate::kernels::dropout::draw_seed(device);
    // Contiguous parts whose sizes differ by at most one.
    let bounds: Vec<usize> = (0..=replicas).map(|k| k * n / replicas).collect();
    let parts: Vec<(Batch, f32)> = bounds
        .windows(2)
        .map(|w| (batch.part(w[0], w[1]), (w[1] - w[0]) as f32 / n as f32))
        .collect();
    let run = |k: usize, part: Batch, weight: f32| {
        let fork = net.clone().fork(device);
        let mut replica = Replica::new(base_seed ^ (k as u64).wrapping_mul(0x9E37_79B9));
        let out = batch_grads(&fork, loss_fn, part, weight, device, Some(&mut replica));
        (out, replica)
    };
    let mut results = std::thread::scope(|scope| {
        let mut parts = parts.into_iter().enumerate();
        let (_, (first, w0)) = parts.next().expect("two or more parts");
        let handles: Vec<_> = parts.map(|(k, (part, w))| scope.spawn(move || run(k, part, w))).collect();
        let mut results = vec![run(0, first, w0)];
        for h in handles {
            match h.join() {
                Ok(r) => results.push(r),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        results
    });
    let weights: Vec<f64> = bounds.windows(2).map(|w| (w[1] - w[0]) as f64 / n as f64).collect();
    let loss_value: f32 = results.iter().zip(&weights).map(|((r, _), w)| r.1 * *w as f32).sum();
    let correct: usize = results.iter().map(|(r, _)| r.2).sum();
    if results.iter().any(|(r, _)| r.0.is_none()) || !loss_value.is_finite() {
        return (net, if loss_value.is_finite() { f32::NAN } else { loss_value }, 0);
    }
    let mut acc = burn::optim::GradientsAccumulator::<Network>::new();
    let mut states = Vec::with_capacity(replicas);
    for ((grads, _, _), state) in results.drain(..) {
        acc.accumulate(&net, grads.expect("checked above"));
        states.push(state);
    }
    crate::kernels::replica::apply_bn_updates(states, &weights);
    (optim.step(lr, net, acc.grads()), loss_value, correct)
}

/// Forward, loss (times `weight`), backward: the gradients (`None` if the loss is not finite),
/// the unweighted batch loss and the number of correct predictions.
pub(crate) fn batch_grads(net: &Network, loss_fn: &Loss, batch: Batch, weight: f32, device: &Device, replica: Option<&mut Replica>) -> (Option<GradientsParams>, f32, usize) {
    let x = batch_tensor(batch.pixels, device);
    let logits = net.forward_with(x, &mut crate::model::Pass { replica, ..Default::default() });
    let loss = loss_fn.forward(logits.clone(), &batch.targets);
    let loss_value: f32 = loss.clone().into_scalar();
    if !loss_value.is_finite() {
        return (None, loss_value, 0);
    }
    let correct = logits
        .argmax(1)
        .into_data()
        .iter::<i64>()
        .zip(&batch.labels)
        .filter(|(p, t)| p == *t)
        .count();
    let loss = if weight == 1.0 { loss } else { loss.mul_scalar(weight) };
    (Some(GradientsParams::from_grads(loss.backward(), net)), loss_value, correct)
}

/// What turns a face's target into the batch's: FER+ "probability" sampling and label
/// smoothing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TargetRules {
    pub(crate) sample: bool,
    pub(crate) smoothing: f32,
}

/// Produce an epoch's batches on a separate thread, a few ahead of the training step.
#[allow(clippy::too_many_arguments)]
pub(crate) fn batch_producer<'a>(
    scope: &'a std::thread::Scope<'a, '_>,
    ds: &'a Dataset,
    order: Vec<usize>,
    batch_size: usize,
    augment: &'a AugmentConfig,
    contrast: crate::data::preprocess::Contrast,
    mix: Mix,
    rules: TargetRules,
    seed: u64,
) -> std::sync::mpsc::Receiver<Batch> {
    let (tx, rx) = std::sync::mpsc::sync_channel(4);
    scope.spawn(move || {
        use rand::Rng;
        const C: usize = Emotion::COUNT;
        let mut rng = StdRng::seed_from_u64(seed);
        for idx in order.chunks(batch_size) {
            let mut pixels = vec![0.0f32; idx.len() * FACE_PIXELS];
            for (k, &i) in idx.iter().enumerate() {
                augment_into(ds.face(i), &mut pixels[k * FACE_PIXELS..(k + 1) * FACE_PIXELS], augment, contrast, &mut rng);
            }
            let labels: Vec<i64> = idx.iter().map(|&i| ds.labels[i].index() as i64).collect();
            let mut targets = Vec::with_capacity(idx.len() * C);
            for &i in idx {
                let mut t = ds.target(i);
                if rules.sample {
                    let u: f32 = rng.random();
                    let mut acc = 0.0;
                    let pick = (0..C).find(|&k| {
                        acc += t[k];
                        u < acc
                    });
                    let pick = pick.unwrap_or_else(|| crate::emotion::argmax(&t));
                    t = [0.0; C];
                    t[pick] = 1.0;
                }
                if rules.smoothing > 0.0 {
                    t.iter_mut().for_each(|v| *v = (1.0 - rules.smoothing) * *v + rules.smoothing / C as f32);
                }
                targets.extend_from_slice(&t);
            }
            if let Some((partner, lam)) = mix_batch(&mut pixels, idx.len(), mix, &mut rng) {
                let orig = targets.clone();
                for (k, &p) in partner.iter().enumerate() {
                    for c in 0..C {
                        targets[k * C + c] = lam * orig[k * C + c] + (1.0 - lam) * orig[p * C + c];
                    }
                }
            }
            if tx.send(Batch { pixels, labels, targets }).is_err() {
                return;
            }
        }
    });
    rx
}

pub(crate) fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(epoch as u64 * 1_000_003)
}
