//! The fit loop shared by every architecture: optimiser, LR schedule, checkpoints, resume,
//! metrics CSV and curves.

use crate::augment::{AugmentConfig, augment_into};
use crate::data::{Dataset, LoadOptions};
use crate::device::training_device;
use crate::kernels::{Matmul, MatmulPrecision, Replica};
use crate::emotion::Emotion;
use crate::error::{Error, Result};
use crate::evaluate::evaluate;
use crate::ferplus::{FerPlusConfig, LabelMode};
use crate::fsutil::write_atomic;
use crate::model::{ModelSpec, Network};
use crate::modelfile::{self, ModelHeader};
use crate::preprocess::{FACE_PIXELS, batch_tensor};
use burn::module::Module;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer, OptimizerRecord, SgdConfig};
use burn::tensor::{Bytes, Device, Tensor, TensorData};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Optimiser choice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum OptimizerConfig {
    Adam { weight_decay: f64 },
    Sgd { momentum: f64, nesterov: bool, weight_decay: f64 },
}

/// Learning-rate schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Schedule {
    /// Keras ReduceLROnPlateau on validation loss.
    Plateau { factor: f64, patience: usize, min_lr: f64 },
    /// Linear warm-up, then cosine decay to `min_lr` over the remaining epochs (per step).
    Cosine { warmup_epochs: f64, min_lr: f64 },
    Constant,
}

/// Mixing two training faces into one (and their labels in the loss).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Mix {
    #[default]
    None,
    /// mixup: a weighted average of two faces, weight ~ Beta(alpha, alpha).
    Mixup { alpha: f32 },
    /// CutMix: a rectangle of another face pasted in, area ~ Beta(alpha, alpha).
    Cutmix { alpha: f32 },
}

/// Everything that defines a training run; saved as `config.json` in the run directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub spec: ModelSpec,
    pub train_data: PathBuf,
    /// Validation data; `None` holds out `val_fraction` of the training data.
    pub val_data: Option<PathBuf>,
    pub val_fraction: f64,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub optimizer: OptimizerConfig,
    pub schedule: Schedule,
    pub label_smoothing: f32,
    /// Stop when validation accuracy has not improved for this many epochs (0 = never).
    pub early_stop_patience: usize,
    pub augment: AugmentConfig,
    /// mixup / CutMix of pairs of faces within a batch.
    #[serde(default)]
    pub mix: Mix,
    /// Class weights in the loss proportional to count^-power (0 = off, 0.5 = inverse square
    /// root, 1 = inverse frequency), normalised to average 1 over the training faces.
    #[serde(default)]
    pub class_weight_power: f32,
    pub seed: u64,
    pub skip_bad: bool,
    pub max_per_class: Option<usize>,
    /// Wall-time budget in minutes (training and validation, summed over resumed calls): no
    /// epoch is started that would end past it (judged by the median of the last five epochs), and the
    /// cosine schedule anneals over the epochs that fit instead of `epochs`.
    #[serde(default)]
    pub time_budget_minutes: Option<f64>,
    /// Precision of the convolutions' matrix products (set for the whole process while training).
    #[serde(default)]
    pub matmul: MatmulPrecision,
    /// Data-parallel replicas per step (`train_step_replicated`): the batch is split into this
    /// many parts, each run on its own thread; 1 = no split.
    #[serde(default = "one")]
    pub replicas: usize,
    /// Epoch checkpoints kept in `checkpoints/` (the newest ones); more than one lets the last
    /// epochs be averaged afterwards (`ferrite export --average-weights`).
    #[serde(default = "one")]
    pub keep_checkpoints: usize,
    /// FER+ labels instead of the data's own (`None`: the folder or CSV labels).
    #[serde(default)]
    pub ferplus: Option<FerPlusConfig>,
    /// The contrast step of the face preprocessing (histogram equalisation by default).
    #[serde(default)]
    pub contrast: crate::preprocess::Contrast,
}

fn one() -> usize {
    1
}

impl TrainConfig {
    /// The tutorials' recipe: Adam 5e-4, batch 64, flip, ReduceLROnPlateau(0.1, 2, 1e-5).
    pub fn new(spec: ModelSpec, train_data: PathBuf) -> Self {
        TrainConfig {
            spec,
            train_data,
            val_data: None,
            val_fraction: 0.1,
            epochs: 20,
            batch_size: 64,
            lr: 5e-4,
            optimizer: OptimizerConfig::Adam { weight_decay: 0.0 },
            schedule: Schedule::Plateau {
                factor: 0.1,
                patience: 2,
                min_lr: 1e-5,
            },
            label_smoothing: 0.0,
            early_stop_patience: 0,
            augment: AugmentConfig::default(),
            mix: Mix::None,
            class_weight_power: 0.0,
            seed: 42,
            skip_bad: false,
            max_per_class: None,
            time_budget_minutes: None,
            matmul: MatmulPrecision::F32,
            replicas: 1,
            keep_checkpoints: 1,
            ferplus: None,
            contrast: crate::preprocess::Contrast::default(),
        }
    }

    fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Config(m.to_string()));
        if self.epochs == 0 {
            return bad("epochs must be at least 1");
        }
        if self.batch_size == 0 {
            return bad("batch size must be at least 1");
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("learning rate must be a positive number");
        }
        if !(0.0..0.9).contains(&self.val_fraction) {
            return bad("validation fraction must be in [0, 0.9)");
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return bad("label smoothing must be in [0, 1)");
        }
        if let Mix::Mixup { alpha } | Mix::Cutmix { alpha } = self.mix
            && !(alpha.is_finite() && alpha > 0.0)
        {
            return bad("mix alpha must be a positive number");
        }
        if !(0.0..=2.0).contains(&self.class_weight_power) {
            return bad("class weight power must be in [0, 2]");
        }
        if self.time_budget_minutes.is_some_and(|m| !(m.is_finite() && m > 0.0)) {
            return bad("time budget must be a positive number of minutes");
        }
        if !(1..=16).contains(&self.replicas) || self.replicas > self.batch_size {
            return bad("replicas must be in 1..=16 and at most the batch size");
        }
        if self.keep_checkpoints == 0 {
            return bad("at least one checkpoint must be kept");
        }
        if self.spec.arch == crate::model::Arch::Ensemble {
            return bad("an ensemble is not trained: train its members, then `ferrite export --model A --model B`");
        }
        Matmul::new(self.matmul)?;
        self.spec.validate()
    }
}

/// One row of `metrics.csv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub lr: f64,
    pub train_loss: f64,
    pub train_acc: f64,
    pub val_loss: f64,
    pub val_acc: f64,
    pub val_macro_f1: f64,
    pub epoch_seconds: f64,
    pub elapsed_seconds: f64,
    /// Mean recall over the validation classes present.
    #[serde(default)]
    pub val_balanced_acc: f64,
}

const CSV_HEADER: &str =
    "epoch,lr,train_loss,train_acc,val_loss,val_acc,val_macro_f1,epoch_seconds,elapsed_seconds,val_balanced_acc";

/// Render the metrics CSV.
pub fn metrics_csv(history: &[EpochRecord]) -> String {
    let mut s = format!("{CSV_HEADER}\n");
    for r in history {
        s.push_str(&format!(
            "{},{:.4e},{:.5},{:.5},{:.5},{:.5},{:.5},{:.1},{:.1},{:.5}\n",
            r.epoch,
            r.lr,
            r.train_loss,
            r.train_acc,
            r.val_loss,
            r.val_acc,
            r.val_macro_f1,
            r.epoch_seconds,
            r.elapsed_seconds,
            r.val_balanced_acc
        ));
    }
    s
}

/// Parse a metrics CSV written by [`metrics_csv`] (files from before the balanced-accuracy
/// column, 9 fields a row, read with it as 0).
pub fn parse_metrics_csv(text: &str, path: &Path) -> Result<Vec<EpochRecord>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |m: String| Error::BadCsvRow {
            path: path.to_path_buf(),
            line: i + 1,
            message: m,
        };
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 9 && f.len() != 10 {
            return Err(bad(format!("expected 10 fields, found {}", f.len())));
        }
        let num = |k: usize| f[k].trim().parse::<f64>().map_err(|_| bad(format!("field {} is not a number", k + 1)));
        out.push(EpochRecord {
            epoch: num(0)? as usize,
            lr: num(1)?,
            train_loss: num(2)?,
            train_acc: num(3)?,
            val_loss: num(4)?,
            val_acc: num(5)?,
            val_macro_f1: num(6)?,
            epoch_seconds: num(7)?,
            elapsed_seconds: num(8)?,
            val_balanced_acc: if f.len() == 10 { num(9)? } else { 0.0 },
        });
    }
    Ok(out)
}

/// Scheduler and bookkeeping state; saved with every checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Epochs completed.
    pub epoch: usize,
    /// Learning rate in effect for the next epoch (plateau and constant schedules).
    pub lr: f64,
    /// Best validation loss seen by the plateau schedule (JSON null = none yet).
    #[serde(with = "inf_as_null")]
    pub plateau_best_loss: f64,
    pub plateau_bad_epochs: usize,
    pub best_val_acc: f64,
    pub best_epoch: usize,
    pub elapsed_seconds: f64,
    pub history: Vec<EpochRecord>,
    /// The cosine schedule's current anchor (`None` until its first step after warm-up).
    #[serde(default)]
    pub cosine_anchor: Option<CosineAnchor>,
}

/// JSON has no infinity: store `f64::INFINITY` as null and read null back as infinity.
mod inf_as_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() { s.serialize_f64(*v) } else { s.serialize_none() }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::INFINITY))
    }
}

impl TrainState {
    /// Keras ReduceLROnPlateau (mode min, min_delta 1e-4, cooldown 0) after an epoch with
    /// validation loss `val_loss`.
    pub fn plateau_step(&mut self, val_loss: f64, factor: f64, patience: usize, min_lr: f64) {
        if val_loss < self.plateau_best_loss - 1e-4 {
            self.plateau_best_loss = val_loss;
            self.plateau_bad_epochs = 0;
        } else {
            self.plateau_bad_epochs += 1;
            if self.plateau_bad_epochs >= patience {
                let new_lr = (self.lr * factor).max(min_lr);
                if new_lr < self.lr {
                    tracing::info!("reducing learning rate to {new_lr:.2e}");
                }
                self.lr = new_lr;
                self.plateau_bad_epochs = 0;
            }
        }
    }
}

/// Files inside a run directory.
pub struct RunDir(pub PathBuf);

impl RunDir {
    pub fn config(&self) -> PathBuf {
        self.0.join("config.json")
    }
    pub fn metrics(&self) -> PathBuf {
        self.0.join("metrics.csv")
    }
    pub fn curves(&self) -> PathBuf {
        self.0.join("curves.png")
    }
    pub fn best(&self) -> PathBuf {
        self.0.join("best.ferrite")
    }
    pub fn final_model(&self) -> PathBuf {
        self.0.join("model.ferrite")
    }
    pub fn checkpoints(&self) -> PathBuf {
        self.0.join("checkpoints")
    }
    fn latest_pointer(&self) -> PathBuf {
        self.checkpoints().join("latest")
    }
    /// The model to use from this run: the final model if training finished, else the best.
    pub fn model_for_inference(&self) -> PathBuf {
        let f = self.final_model();
        if f.exists() { f } else { self.best() }
    }
}

/// What the caller sees of a finished run.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    pub state: TrainState,
    pub stopped_early: bool,
    pub run_dir: PathBuf,
}

/// How training reports progress.
#[derive(Debug, Clone, Copy, Default)]
pub struct TrainOptions {
    /// Show a live progress bar (loss and accuracy) on the terminal.
    pub progress: bool,
    /// Stop after this many epochs in this call even if the schedule has more (tests, time boxes).
    pub max_epochs_this_call: Option<usize>,
}

fn build_optimizer(cfg: &TrainConfig) -> ModuleOptimizer {
    match &cfg.optimizer {
        OptimizerConfig::Adam { weight_decay } => {
            let mut c = AdamConfig::new().with_epsilon(1e-7);
            if *weight_decay > 0.0 {
                c = c.with_weight_decay(Some(WeightDecayConfig::new(*weight_decay as f32)));
            }
            c.init()
        }
        OptimizerConfig::Sgd {
            momentum,
            nesterov,
            weight_decay,
        } => {
            let mut c = SgdConfig::new().with_momentum(Some(
                MomentumConfig::new()
                    .with_momentum(*momentum)
                    .with_dampening(0.0)
                    .with_nesterov(*nesterov),
            ));
            if *weight_decay > 0.0 {
                c = c.with_weight_decay(Some(WeightDecayConfig::new(*weight_decay as f32)));
            }
            c.init()
        }
    }
}

/// Where the cosine decay runs from: the learning rate `lr` at (fractional) epoch `at_epoch`,
/// annealing to the floor at epoch `planned`. A time budget that re-plans the epochs moves the
/// anchor to the current step and rate, so after warm-up the rate only ever decays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CosineAnchor {
    pub at_epoch: f64,
    pub lr: f64,
    pub planned: usize,
}

/// Learning rate of `step` under the cosine schedule: linear warm-up to `cfg.lr`, then the
/// cosine from `cfg.lr` to `min_lr`. `anchor` is created on first use; when `planned` changes
/// after warm-up it moves to this step at `prev_lr` (the rate of the step before), and the
/// rest of the cosine, from the phase at which it gives `prev_lr`, is stretched or squeezed over
/// the epochs now planned: the rate never rises, keeps its slope, and reaches the floor at the
/// new end, however often the plan changes.
#[allow(clippy::too_many_arguments)]
fn cosine_step(
    cfg: &TrainConfig,
    anchor: &mut Option<CosineAnchor>,
    planned: usize,
    warmup_epochs: f64,
    min_lr: f64,
    step: usize,
    steps_per_epoch: usize,
    prev_lr: f64,
) -> f64 {
    let t = step as f64 / steps_per_epoch.max(1) as f64; // epochs done, fractional
    if t < warmup_epochs {
        return cfg.lr * (t + 1.0 / steps_per_epoch.max(1) as f64) / warmup_epochs;
    }
    let a = anchor.get_or_insert(CosineAnchor {
        at_epoch: warmup_epochs,
        lr: cfg.lr,
        planned,
    });
    if a.planned != planned {
        *a = CosineAnchor {
            at_epoch: t,
            lr: prev_lr.min(a.lr),
            planned,
        };
    }
    let span = (cfg.lr - min_lr).max(1e-12);
    // The phase in [0, 1] of the full cosine at which it gives the anchor's rate.
    let p0 = (2.0 * (a.lr - min_lr) / span - 1.0).clamp(-1.0, 1.0).acos() / std::f64::consts::PI;
    let s = ((t - a.at_epoch) / (a.planned as f64 - a.at_epoch).max(1e-9)).clamp(0.0, 1.0);
    let p = p0 + (1.0 - p0) * s;
    min_lr + 0.5 * span * (1.0 + (std::f64::consts::PI * p).cos())
}

/// The epochs a run will get: `cfg.epochs`, or with a time budget the epochs done plus those
/// that still fit, each assumed to take [`typical_epoch_seconds`] (at least one more while none
/// is done, so the first epoch measures the speed).
pub fn planned_epochs(cfg: &TrainConfig, history: &[EpochRecord]) -> usize {
    let Some(minutes) = cfg.time_budget_minutes else { return cfg.epochs };
    let (Some(last), Some(typical)) = (history.last(), typical_epoch_seconds(history)) else {
        return cfg.epochs;
    };
    let left = minutes * 60.0 - last.elapsed_seconds;
    let more = if typical > 0.0 { (left / typical).floor().max(0.0) as usize } else { cfg.epochs };
    (last.epoch + more).min(cfg.epochs)
}

/// The median duration of the last five epochs: the estimate of the next epochs' length. A few
/// epochs slowed by other work on the machine (a build, a benchmark) do not shorten the plan,
/// as judging by the slowest epoch did; a lasting slow-down shows within five epochs.
pub fn typical_epoch_seconds(history: &[EpochRecord]) -> Option<f64> {
    let mut recent: Vec<f64> = history.iter().rev().take(5).map(|r| r.epoch_seconds).collect();
    if recent.is_empty() {
        return None;
    }
    recent.sort_by(f64::total_cmp);
    let mid = recent.len() / 2;
    Some(if recent.len() % 2 == 1 { recent[mid] } else { (recent[mid - 1] + recent[mid]) / 2.0 })
}

/// Load train and validation data as the config says (with FER+ labels if it names them).
pub fn load_data(cfg: &TrainConfig) -> Result<(Dataset, Dataset)> {
    let opts = LoadOptions {
        skip_bad: cfg.skip_bad,
        usage: None,
        max_per_class: cfg.max_per_class,
        contrast: cfg.contrast,
    };
    // With FER+ labels, per-class caps apply to the FER+ labels (after the join).
    // Validation is scored against the FER+ majority, whatever the training mode.
    let load = |path: &Path, usage: &str, votes: Option<&PathBuf>, train: bool| -> Result<Dataset> {
        let mut o = LoadOptions {
            usage: path.is_file().then(|| usage.to_string()),
            ..opts.clone()
        };
        match &cfg.ferplus {
            None => Dataset::load(path, &o),
            Some(fp) => {
                o.max_per_class = None;
                let mode = if train { fp.mode } else { LabelMode::Majority };
                let ds = load_ferplus(path, &o, mode, votes.map(PathBuf::as_path))?;
                Ok(match cfg.max_per_class {
                    Some(m) => ds.take_per_class(m),
                    None => ds,
                })
            }
        }
    };
    let fp_votes = |train: bool| cfg.ferplus.as_ref().and_then(|f| if train { f.train_votes.as_ref() } else { f.val_votes.as_ref() });
    let train = load(&cfg.train_data, "Training", fp_votes(true), true)?;
    match &cfg.val_data {
        Some(v) => Ok((train, load(v, "PublicTest", fp_votes(false), false)?)),
        None => Ok(split(train, cfg.val_fraction, cfg.seed)),
    }
}

/// Load a data set with FER+ labels in `mode`: a FER+ folder with its `label.csv`, or a
/// FER2013 folder or CSV joined with `votes` (default: [`crate::ferplus::default_votes`]).
pub fn load_ferplus(path: &Path, opts: &LoadOptions, mode: LabelMode, votes: Option<&Path>) -> Result<Dataset> {
    if crate::ferplus::is_ferplus_folder(path) && votes.is_none() {
        let (ds, stats) = crate::ferplus::load_folder(path, mode, opts)?;
        tracing::info!(?stats, "FER+ folder {}", path.display());
        return Ok(ds);
    }
    let votes_path = match votes {
        Some(v) => v.to_path_buf(),
        None => crate::ferplus::default_votes(path).ok_or_else(|| Error::BadDataset {
            path: path.to_path_buf(),
            message: "no FER+ vote file found beside it (ferplus/NAME.csv or fer2013new.csv); name one".into(),
        })?,
    };
    let table = crate::ferplus::read_votes(&votes_path)?;
    let ds = Dataset::load(path, opts)?;
    let (ds, stats) = crate::ferplus::apply(ds, path, &table, mode)?;
    tracing::info!(?stats, "FER+ votes {} on {}", votes_path.display(), path.display());
    Ok(ds)
}

/// Seeded, stratified split of a data set into (train, held-out).
pub fn split(ds: Dataset, fraction: f64, seed: u64) -> (Dataset, Dataset) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5EED_5EED);
    let mut held = vec![false; ds.len()];
    for e in Emotion::ALL {
        let mut idx: Vec<usize> = (0..ds.len()).filter(|&i| ds.labels[i] == e).collect();
        idx.shuffle(&mut rng);
        let k = (idx.len() as f64 * fraction).round() as usize;
        for &i in &idx[..k] {
            held[i] = true;
        }
    }
    let (held_idx, kept_idx): (Vec<usize>, Vec<usize>) = (0..ds.len()).partition(|&i| held[i]);
    let mut a = ds.subset(&kept_idx);
    let b = ds.subset(&held_idx);
    a.skipped = ds.skipped;
    (a, b)
}

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

    fn part(&self, lo: usize, hi: usize) -> Batch {
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
fn mix_batch(pixels: &mut [f32], n: usize, mix: Mix, rng: &mut StdRng) -> Option<(Vec<usize>, f32)> {
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
            let size = crate::preprocess::FACE_SIZE;
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
fn batch_grads(net: &Network, loss_fn: &Loss, batch: Batch, weight: f32, device: &Device, replica: Option<&mut Replica>) -> (Option<GradientsParams>, f32, usize) {
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
struct TargetRules {
    sample: bool,
    smoothing: f32,
}

/// Produce an epoch's batches on a separate thread, a few ahead of the training step.
#[allow(clippy::too_many_arguments)]
fn batch_producer<'a>(
    scope: &'a std::thread::Scope<'a, '_>,
    ds: &'a Dataset,
    order: Vec<usize>,
    batch_size: usize,
    augment: &'a AugmentConfig,
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
                augment_into(ds.face(i), &mut pixels[k * FACE_PIXELS..(k + 1) * FACE_PIXELS], augment, &mut rng);
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
                    let pick = pick.unwrap_or_else(|| crate::evaluate::argmax(&t));
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

/// The label set a run trains on, as model headers name it: `fer2013` or `ferplus-MODE`.
pub fn label_set_name(cfg: &TrainConfig) -> String {
    match &cfg.ferplus {
        None => "fer2013".into(),
        Some(f) => format!("ferplus-{}", serde_json::to_value(f.mode).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()),
    }
}

fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(epoch as u64 * 1_000_003)
}

fn check_fresh(run_dir: &Path) -> Result<()> {
    if RunDir(run_dir.to_path_buf()).config().exists() {
        return Err(Error::Config(format!(
            "{} already holds a training run; use --resume to continue it or choose another --out",
            run_dir.display()
        )));
    }
    Ok(())
}

/// Train the network `cfg` describes from scratch into `run_dir` (created; must not hold a run).
pub fn train(cfg: &TrainConfig, run_dir: &Path, opts: TrainOptions) -> Result<TrainOutcome> {
    cfg.validate()?;
    check_fresh(run_dir)?;
    let (train_ds, val_ds) = load_data(cfg)?;
    train_on(cfg, run_dir, &train_ds, &val_ds, opts)
}

/// Train from scratch on data already in memory (`cfg`'s data paths are only recorded).
pub fn train_on(
    cfg: &TrainConfig,
    run_dir: &Path,
    train_ds: &Dataset,
    val_ds: &Dataset,
    opts: TrainOptions,
) -> Result<TrainOutcome> {
    cfg.validate()?;
    check_fresh(run_dir)?;
    let run = RunDir(run_dir.to_path_buf());
    std::fs::create_dir_all(run_dir).map_err(|e| Error::io(run_dir, e))?;
    write_atomic(&run.config(), &serde_json::to_vec_pretty(cfg).map_err(|e| Error::Config(e.to_string()))?)?;
    let device = training_device();
    device.seed(cfg.seed);
    let net = Network::new(&cfg.spec, &device);
    let optim = build_optimizer(cfg);
    let state = TrainState {
        epoch: 0,
        lr: cfg.lr,
        plateau_best_loss: f64::INFINITY,
        plateau_bad_epochs: 0,
        best_val_acc: -1.0,
        best_epoch: 0,
        elapsed_seconds: 0.0,
        history: Vec::new(),
        cosine_anchor: None,
    };
    fit(cfg, &run, net, optim, state, train_ds, val_ds, &device, opts)
}

/// Continue the run in `run_dir` from its last completed epoch.
pub fn resume(run_dir: &Path, opts: TrainOptions) -> Result<TrainOutcome> {
    resume_impl(run_dir, None, opts)
}

/// [`resume`] with data already in memory instead of the paths in the run's config.
pub fn resume_with(run_dir: &Path, train_ds: &Dataset, val_ds: &Dataset, opts: TrainOptions) -> Result<TrainOutcome> {
    resume_impl(run_dir, Some((train_ds, val_ds)), opts)
}

/// Everything a run directory's files hold to resume training from a checkpoint.
pub struct ResumePoint {
    pub cfg: TrainConfig,
    pub state: TrainState,
    pub net: Network,
    pub optim: ModuleOptimizer,
}

/// Decode a run's `config.json` and one checkpoint's `state.json`, `model.ferrite` and
/// `optimizer.bpk` (as bytes; `ckpt` names the checkpoint in errors). Every malformed part is
/// an error naming the file, never a panic (fuzzed: `fuzz/fuzz_targets/resume.rs`).
pub fn decode_resume_point(
    config: &[u8],
    state: &[u8],
    model: &[u8],
    optimizer: &[u8],
    ckpt: &Path,
    device: &Device,
) -> Result<ResumePoint> {
    let cfg = parse_run_config(config, ckpt)?;
    let state = parse_train_state(state, ckpt)?;
    let (net, optim) = decode_weights(&cfg, model, optimizer, ckpt, device)?;
    Ok(ResumePoint { cfg, state, net, optim })
}

/// A run's `config.json`; `dir` names the run or checkpoint in errors.
fn parse_run_config(bytes: &[u8], dir: &Path) -> Result<TrainConfig> {
    serde_json::from_slice(bytes).map_err(|e| Error::BadRunDir {
        path: dir.to_path_buf(),
        message: format!("config.json is invalid: {e}"),
    })
}

/// A checkpoint's `state.json`.
fn parse_train_state(bytes: &[u8], ckpt: &Path) -> Result<TrainState> {
    serde_json::from_slice(bytes).map_err(|e| Error::BadRunDir {
        path: ckpt.to_path_buf(),
        message: format!("{}/state.json is invalid: {e}", ckpt.display()),
    })
}

/// A checkpoint's network and optimizer state.
fn decode_weights(cfg: &TrainConfig, model: &[u8], optimizer: &[u8], ckpt: &Path, device: &Device) -> Result<(Network, ModuleOptimizer)> {
    let bad = |m: String| Error::BadRunDir {
        path: ckpt.to_path_buf(),
        message: m,
    };
    let (net, _) = modelfile::decode(model, &ckpt.join("model.ferrite"), device)?;
    check_optimizer_record(optimizer).map_err(|e| bad(format!("optimizer state is invalid: {e}")))?;
    let record = OptimizerRecord::from_bytes(Bytes::from_bytes_vec(optimizer.to_vec()))
        .map_err(|e| bad(format!("optimizer state is invalid: {e}")))?;
    Ok((net, build_optimizer(cfg).load_record(record)))
}

/// burn's `ModuleOptimizer::load_record` panics on a record tensor without a parameter id
/// (found by `fuzz/fuzz_targets/resume.rs`): refuse such a state before burn sees it.
fn check_optimizer_record(bytes: &[u8]) -> std::result::Result<(), String> {
    let reader = burn_pack::Reader::from_bytes(Bytes::from_bytes_vec(bytes.to_vec())).map_err(|e| e.to_string())?;
    for tensor in reader.into_tensors().map_err(|e| e.to_string())? {
        let (name, _, _, id, _) = tensor.into_parts().map_err(|e| e.to_string())?;
        if id.is_none() {
            return Err(format!("tensor '{name}' has no parameter id"));
        }
    }
    Ok(())
}

fn resume_impl(run_dir: &Path, data: Option<(&Dataset, &Dataset)>, opts: TrainOptions) -> Result<TrainOutcome> {
    let run = RunDir(run_dir.to_path_buf());
    let bad = |m: String| Error::BadRunDir {
        path: run_dir.to_path_buf(),
        message: m,
    };
    if !run_dir.is_dir() {
        return Err(bad("no such directory".into()));
    }
    // The same steps as decode_resume_point, file by file, so that each problem is reported
    // before the next file is read.
    let cfg_bytes = std::fs::read(run.config()).map_err(|e| bad(format!("cannot read config.json: {e}")))?;
    let cfg = parse_run_config(&cfg_bytes, run_dir)?;
    let latest = std::fs::read_to_string(run.latest_pointer())
        .map_err(|e| bad(format!("no completed epoch to resume from (checkpoints/latest: {e})")))?;
    let ckpt = run.checkpoints().join(latest.trim());
    let read = |name: &str| std::fs::read(ckpt.join(name)).map_err(|e| bad(format!("{}: {e}", ckpt.join(name).display())));
    let state = parse_train_state(&read("state.json")?, &ckpt)?;
    let device = training_device();
    let (net, optim) = decode_weights(&cfg, &read("model.ferrite")?, &read("optimizer.bpk")?, &ckpt, &device)?;
    match data {
        Some((tr, va)) => fit(&cfg, &run, net, optim, state, tr, va, &device, opts),
        None => {
            let (tr, va) = load_data(&cfg)?;
            fit(&cfg, &run, net, optim, state, &tr, &va, &device, opts)
        }
    }
}

fn save_checkpoint(
    run: &RunDir,
    cfg: &TrainConfig,
    net: &Network,
    optim: &ModuleOptimizer,
    state: &TrainState,
) -> Result<()> {
    let dir_name = format!("epoch-{:03}", state.epoch);
    let tmp = run.checkpoints().join(format!(".{dir_name}.tmp"));
    let dst = run.checkpoints().join(&dir_name);
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let header = ModelHeader::new(cfg.spec.clone(), serde_json::json!({ "epoch": state.epoch }));
    write_atomic(&tmp.join("model.ferrite"), &modelfile::encode(net, &header)?)?;
    let optim_bytes = optim
        .into_bytes()
        .map_err(|e| Error::Config(format!("cannot serialise optimizer state: {e}")))?;
    write_atomic(&tmp.join("optimizer.bpk"), &optim_bytes)?;
    write_atomic(&tmp.join("state.json"), &serde_json::to_vec_pretty(state).map_err(|e| Error::Config(e.to_string()))?)?;
    let _ = std::fs::remove_dir_all(&dst);
    std::fs::rename(&tmp, &dst).map_err(|e| Error::io(&dst, e))?;
    write_atomic(&run.latest_pointer(), dir_name.as_bytes())?;
    // Keep the newest `keep_checkpoints` (epoch numbers, not names, decide: epoch-1000 > epoch-999).
    if let Ok(entries) = std::fs::read_dir(run.checkpoints()) {
        let mut epochs: Vec<(usize, PathBuf)> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let epoch = name.strip_prefix("epoch-")?.parse::<usize>().ok()?;
                Some((epoch, e.path()))
            })
            .collect();
        epochs.sort();
        // Checkpoints from after this epoch (a resumed run that went back) are dropped first.
        let (newer, kept): (Vec<_>, Vec<_>) = epochs.into_iter().partition(|(e, _)| *e > state.epoch);
        let surplus = kept.len().saturating_sub(cfg.keep_checkpoints.max(1));
        for (_, path) in newer.into_iter().chain(kept.into_iter().take(surplus)) {
            let _ = std::fs::remove_dir_all(path);
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn fit(
    cfg: &TrainConfig,
    run: &RunDir,
    mut net: Network,
    mut optim: ModuleOptimizer,
    mut state: TrainState,
    train_ds: &Dataset,
    val_ds: &Dataset,
    device: &Device,
    opts: TrainOptions,
) -> Result<TrainOutcome> {
    if train_ds.is_empty() || val_ds.is_empty() {
        return Err(Error::Config("training and validation data must both be non-empty".into()));
    }
    net = net.with_matmul(Matmul::new(cfg.matmul)?);
    let mut loss_fn = Loss {
        class_weights: None,
        multi_target: cfg.ferplus.as_ref().is_some_and(|f| f.mode == LabelMode::MultiTarget),
    };
    if cfg.class_weight_power > 0.0 {
        let weights = class_weights(&train_ds.class_counts(), cfg.class_weight_power);
        tracing::info!(?weights, "class weights in the loss");
        loss_fn.class_weights = Some(weights);
    }
    let priors = train_ds.class_priors();
    let rules = TargetRules {
        sample: cfg.ferplus.as_ref().is_some_and(|f| f.mode == LabelMode::Probability),
        smoothing: cfg.label_smoothing,
    };
    let steps_per_epoch = train_ds.len().div_ceil(cfg.batch_size);
    let eval_device = device.clone().without_autodiff();
    let mut stopped_early = false;
    let mut epochs_this_call = 0;
    tracing::info!(
        train = train_ds.len(),
        val = val_ds.len(),
        skipped = train_ds.skipped.len() + val_ds.skipped.len(),
        "data loaded"
    );
    let mut out_of_time = false;
    while state.epoch < cfg.epochs {
        if opts.max_epochs_this_call.is_some_and(|m| epochs_this_call >= m) {
            break;
        }
        let planned = planned_epochs(cfg, &state.history);
        if state.epoch >= planned {
            tracing::info!(
                "time budget: {:.0} of {:.0} minutes used and an epoch takes {:.1}; stopping after epoch {}",
                state.elapsed_seconds / 60.0,
                cfg.time_budget_minutes.unwrap_or(0.0),
                typical_epoch_seconds(&state.history).unwrap_or(0.0) / 60.0,
                state.epoch
            );
            out_of_time = true;
            break;
        }
        let epoch = state.epoch + 1;
        let started = Instant::now();
        let seed = epoch_seed(cfg.seed, epoch);
        // Reseed dropout every epoch so a resumed run repeats an uninterrupted one.
        device.seed(seed);
        let mut order: Vec<usize> = (0..train_ds.len()).collect();
        order.shuffle(&mut StdRng::seed_from_u64(seed));
        let bar = if opts.progress {
            let b = indicatif::ProgressBar::new(steps_per_epoch as u64);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "epoch {prefix} [{bar:30}] {pos}/{len} {per_sec} eta {eta} {msg}",
                )
                .expect("static template")
                .progress_chars("=> "),
            );
            b.set_prefix(format!("{epoch}/{}", cfg.epochs));
            b
        } else {
            indicatif::ProgressBar::hidden()
        };
        let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
        let mut lr = state.lr;
        let first_step = state.epoch * steps_per_epoch;
        let result: Result<()> = std::thread::scope(|scope| {
            let rx = batch_producer(scope, train_ds, order, cfg.batch_size, &cfg.augment, cfg.mix, rules, seed);
            for (k, batch) in rx.iter().enumerate() {
                if let Schedule::Cosine { warmup_epochs, min_lr } = cfg.schedule {
                    lr = cosine_step(cfg, &mut state.cosine_anchor, planned, warmup_epochs, min_lr, first_step + k, steps_per_epoch, lr);
                }
                let n = batch.labels.len();
                let (next, loss_value, batch_correct) =
                    train_step_replicated(net.clone(), &mut optim, &loss_fn, batch, lr, device, cfg.replicas);
                net = next;
                if !loss_value.is_finite() {
                    return Err(Error::NonFinite(format!(
                        "loss became {loss_value} at epoch {epoch}, batch {}; the last good checkpoint (epoch {}) is kept in {}",
                        k + 1,
                        state.epoch,
                        run.checkpoints().display()
                    )));
                }
                correct += batch_correct;
                loss_sum += loss_value as f64 * n as f64;
                seen += n;
                bar.inc(1);
                if !opts.progress && (k + 1) % (steps_per_epoch / 10).max(1) == 0 {
                    tracing::info!(
                        "epoch {epoch} step {}/{steps_per_epoch}: loss {:.4} acc {:.2}% lr {lr:.2e}",
                        k + 1,
                        loss_sum / seen as f64,
                        100.0 * correct as f64 / seen as f64
                    );
                }
                bar.set_message(format!(
                    "loss {:.4} acc {:.2}%",
                    loss_sum / seen as f64,
                    100.0 * correct as f64 / seen as f64
                ));
            }
            Ok(())
        });
        bar.finish_and_clear();
        result?;

        let report = evaluate(&net.valid().to_device(&eval_device), val_ds, &eval_device);
        let val_loss = report.mean_loss.unwrap_or(f64::NAN);
        if !val_loss.is_finite() {
            return Err(Error::NonFinite(format!(
                "validation loss became {val_loss} after epoch {epoch}; the last good checkpoint (epoch {}) is kept in {}",
                state.epoch,
                run.checkpoints().display()
            )));
        }
        let epoch_seconds = started.elapsed().as_secs_f64();
        state.elapsed_seconds += epoch_seconds;
        state.epoch = epoch;
        let record = EpochRecord {
            epoch,
            lr,
            train_loss: loss_sum / seen.max(1) as f64,
            train_acc: correct as f64 / seen.max(1) as f64,
            val_loss,
            val_acc: report.accuracy,
            val_macro_f1: report.macro_f1,
            epoch_seconds,
            elapsed_seconds: state.elapsed_seconds,
            val_balanced_acc: report.balanced_accuracy,
        };
        tracing::info!(
            "epoch {epoch}/{}: lr {:.2e} train loss {:.4} acc {:.2}% | val loss {:.4} acc {:.2}% balanced {:.2}% f1 {:.4} | {:.0}s (total {:.0}s)",
            cfg.epochs,
            lr,
            record.train_loss,
            100.0 * record.train_acc,
            val_loss,
            100.0 * report.accuracy,
            100.0 * report.balanced_accuracy,
            report.macro_f1,
            epoch_seconds,
            state.elapsed_seconds
        );
        state.history.push(record);

        // Schedule for the next epoch.
        match cfg.schedule {
            Schedule::Plateau { factor, patience, min_lr } => {
                state.plateau_step(val_loss, factor, patience, min_lr)
            }
            Schedule::Cosine { .. } => state.lr = lr,
            Schedule::Constant => {}
        }

        let improved = report.accuracy > state.best_val_acc;
        if improved {
            state.best_val_acc = report.accuracy;
            state.best_epoch = epoch;
            let header = ModelHeader::new(
                cfg.spec.clone(),
                serde_json::json!({
                    "epoch": epoch,
                    "val_accuracy": report.accuracy,
                    "val_macro_f1": report.macro_f1,
                    "labels": label_set_name(cfg),
                    "class_priors": priors,
                    "contrast": cfg.contrast,
                }),
            );
            modelfile::save(&run.best(), &net.valid(), &header)?;
        }
        save_checkpoint(run, cfg, &net, &optim, &state)?;
        write_atomic(&run.metrics(), metrics_csv(&state.history).as_bytes())?;
        if let Err(e) = crate::plot::curves(&state.history, &run.curves()) {
            tracing::warn!("could not draw curves: {e}");
        }
        epochs_this_call += 1;
        if cfg.early_stop_patience > 0 && epoch - state.best_epoch >= cfg.early_stop_patience {
            tracing::info!(
                "early stop: no val accuracy gain for {} epochs (best {:.2}% at epoch {})",
                cfg.early_stop_patience,
                100.0 * state.best_val_acc,
                state.best_epoch
            );
            stopped_early = true;
            break;
        }
    }
    if (state.epoch >= cfg.epochs || stopped_early || out_of_time) && run.best().exists() {
        let bytes = std::fs::read(run.best()).map_err(|e| Error::io(run.best(), e))?;
        write_atomic(&run.final_model(), &bytes)?;
    }
    Ok(TrainOutcome {
        state,
        stopped_early,
        run_dir: run.0.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::synthetic;
    use crate::model::Arch;

    fn small_config(dir: &Path) -> TrainConfig {
        let mut cfg = TrainConfig::new(ModelSpec::new(Arch::Reference), dir.join("unused"));
        cfg.epochs = 2;
        cfg.batch_size = 16;
        cfg.lr = 1e-3;
        cfg
    }

    fn quiet() -> TrainOptions {
        TrainOptions::default()
    }

    #[test]
    fn overfits_one_small_batch() {
        let _rng = crate::rng_lock();
        let device = training_device();
        device.seed(1);
        let mut spec = ModelSpec::new(Arch::Reference);
        spec.dropout = 0.0;
        let mut net = Network::new(&spec, &device);
        let mut optim = AdamConfig::new().init();
        let loss_fn = Loss::default();
        // Random noise faces: nothing to learn but memorisation.
        let ds = synthetic(2, 3);
        let mut noise = ds.faces.clone();
        let mut rng = StdRng::seed_from_u64(9);
        noise.iter_mut().for_each(|p| *p = rand::Rng::random(&mut rng));
        let labels: Vec<i64> = ds.labels.iter().map(|e| e.index() as i64).collect();
        let mut first = None;
        let mut last = f32::NAN;
        for _ in 0..40 {
            let mut pixels = Vec::new();
            crate::preprocess::normalize_into(&noise, &mut pixels);
            let (next, loss, _) =
                train_step(net, &mut optim, &loss_fn, Batch::hard(pixels, labels.clone()), 1e-3, &device);
            net = next;
            first.get_or_insert(loss);
            last = loss;
        }
        assert!(last < 0.05, "loss went from {first:?} to {last}");
        let eval = device.clone().without_autodiff();
        let probs = crate::evaluate::predict_probs(&net.valid().to_device(&eval), &noise, &eval);
        for (p, t) in probs.iter().zip(&labels) {
            assert_eq!(crate::evaluate::argmax(p) as i64, *t);
        }
    }

    /// Weights of a network as one flat vector (for comparing updates).
    fn flat_weights(net: &Network) -> Vec<f32> {
        struct Collect(Vec<f32>);
        impl burn::module::ModuleVisitor for Collect {
            fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
                self.0.extend(param.val().into_data().convert::<f32>().iter::<f32>());
            }
        }
        let mut c = Collect(Vec::new());
        net.visit(&mut c);
        c.0
    }

    /// Two replicas on a batch made of one part twice compute what one step on that part does:
    /// same gradient (the parts' losses weighted 1/2 each), same BatchNorm statistics.
    #[test]
    fn replicas_on_a_doubled_batch_match_one_step_on_the_part() {
        let _rng = crate::rng_lock();
        let device = training_device();
        device.seed(3);
        let mut spec = ModelSpec::new(Arch::Compact);
        spec.width = Some(4);
        spec.dropout = 0.0;
        let net = Network::new(&spec, &device);
        let loss_fn = Loss::default();
        let ds = synthetic(1, 5);
        let mut part = Vec::new();
        crate::preprocess::normalize_into(&ds.faces, &mut part);
        let labels: Vec<i64> = ds.labels.iter().map(|e| e.index() as i64).collect();
        let fresh = || Network::new(&spec, &device).load_record(net.clone().into_record());
        let mut optim = burn::optim::SgdConfig::new().init();
        let (one, loss_one, correct_one) =
            train_step(fresh(), &mut optim, &loss_fn, Batch::hard(part.clone(), labels.clone()), 0.1, &device);
        let doubled = Batch::hard([part.clone(), part].concat(), [labels.clone(), labels].concat());
        let mut optim = burn::optim::SgdConfig::new().init();
        let (two, loss_two, correct_two) = train_step_replicated(fresh(), &mut optim, &loss_fn, doubled, 0.1, &device, 2);
        assert!((loss_one - loss_two).abs() < 1e-5, "{loss_one} vs {loss_two}");
        assert_eq!(2 * correct_one, correct_two);
        let (a, b) = (flat_weights(&one), flat_weights(&two));
        assert_eq!(a.len(), b.len());
        let moved = flat_weights(&net).iter().zip(&a).filter(|(x, y)| x != y).count();
        assert!(moved > a.len() / 2, "the step changed only {moved} of {} numbers", a.len());
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() <= 1e-5 * (1.0 + x.abs()), "{x} vs {y}");
        }
    }

    /// Replicated steps (dropout on) give the same network every time, however the threads run,
    /// and learn: the loss on a memorisable batch falls.
    #[test]
    fn replicated_steps_are_repeatable_and_learn() {
        let _rng = crate::rng_lock();
        let run = || {
            let device = training_device();
            device.seed(11);
            let mut spec = ModelSpec::new(Arch::Compact);
            spec.width = Some(4);
            spec.dropout = 0.2;
            let mut net = Network::new(&spec, &device);
            let mut optim = AdamConfig::new().init();
            let loss_fn = Loss::default();
            let ds = synthetic(2, 4);
            let mut pixels = Vec::new();
            crate::preprocess::normalize_into(&ds.faces, &mut pixels);
            let labels: Vec<i64> = ds.labels.iter().map(|e| e.index() as i64).collect();
            let mut losses = Vec::new();
            for _ in 0..25 {
                let batch = Batch::hard(pixels.clone(), labels.clone());
                let (next, loss, _) = train_step_replicated(net, &mut optim, &loss_fn, batch, 3e-3, &device, 3);
                net = next;
                losses.push(loss);
            }
            (flat_weights(&net), losses)
        };
        let (w1, l1) = run();
        let (w2, l2) = run();
        assert_eq!(l1, l2);
        assert!(w1 == w2, "two identical replicated runs ended with different weights");
        assert!(l1[l1.len() - 1] < 0.5 * l1[0], "loss went from {} to {}", l1[0], l1[l1.len() - 1]);
    }

    #[test]
    fn resume_repeats_an_uninterrupted_run() {
        let _rng = crate::rng_lock();
        let dir = crate::fsutil::TempDir::new().unwrap();
        let (tr, va) = (synthetic(3, 1), synthetic(1, 2));
        let cfg = small_config(dir.path());
        let full = train_on(&cfg, &dir.path().join("full"), &tr, &va, quiet()).unwrap();
        assert_eq!(full.state.epoch, 2);
        let part = dir.path().join("part");
        let opts = TrainOptions {
            max_epochs_this_call: Some(1),
            ..quiet()
        };
        let first = train_on(&cfg, &part, &tr, &va, opts).unwrap();
        assert_eq!(first.state.epoch, 1);
        assert!(!RunDir(part.clone()).final_model().exists(), "an unfinished run has no final model");
        // Resume reads the data back from the config, so give it files: here, reuse in memory.
        let resumed = resume_with(&part, &tr, &va, quiet()).unwrap();
        assert_eq!(resumed.state.epoch, 2);
        // Same learning rates, losses and accuracies (up to the last bits of parallel sums).
        assert_eq!(full.state.history.len(), resumed.state.history.len());
        for (a, b) in full.state.history.iter().zip(&resumed.state.history) {
            assert_eq!((a.lr, a.val_acc), (b.lr, b.val_acc));
            for (x, y) in [(a.train_loss, b.train_loss), (a.val_loss, b.val_loss)] {
                assert!((x - y).abs() <= 1e-6 * x.abs(), "{a:?} vs {b:?}");
            }
        }
        let csv = std::fs::read_to_string(part.join("metrics.csv")).unwrap();
        let parsed = parse_metrics_csv(&csv, &part.join("metrics.csv")).unwrap();
        assert_eq!(parsed.len(), 2);
        assert!(parsed[1].val_balanced_acc > 0.0 && (parsed[1].val_balanced_acc - resumed.state.history[1].val_balanced_acc).abs() < 1e-5);
        // A file from before the balanced-accuracy column still reads; a short row is refused.
        let old = parse_metrics_csv("epoch,lr\n1,1e-3,2.0,0.2,1.9,0.25,0.1,3.0,3.0\n", Path::new("old.csv")).unwrap();
        assert_eq!((old[0].val_acc, old[0].val_balanced_acc), (0.25, 0.0));
        let e = parse_metrics_csv("epoch,lr\n1,1e-3,2.0\n", Path::new("m.csv")).unwrap_err().to_string();
        assert!(e.contains("m.csv, line 2") && e.contains("expected 10 fields"), "{e}");
        assert!(part.join("curves.png").exists() && part.join("model.ferrite").exists());
        // A second `train` into the same directory is refused.
        assert!(train_on(&cfg, &part, &tr, &va, quiet()).unwrap_err().to_string().contains("--resume"));
    }

    #[test]
    fn non_finite_loss_stops_and_keeps_the_last_good_checkpoint() {
        let _rng = crate::rng_lock();
        let dir = crate::fsutil::TempDir::new().unwrap();
        let run = dir.path().join("run");
        let (tr, va) = (synthetic(2, 1), synthetic(1, 2));
        let mut cfg = small_config(dir.path());
        cfg.epochs = 3;
        cfg.optimizer = OptimizerConfig::Sgd { momentum: 0.9, nesterov: true, weight_decay: 0.0 };
        cfg.schedule = Schedule::Constant;
        let opts = TrainOptions {
            max_epochs_this_call: Some(1),
            ..quiet()
        };
        train_on(&cfg, &run, &tr, &va, opts).unwrap();
        let good = std::fs::read(run.join("checkpoints/epoch-001/model.ferrite")).unwrap();
        // Make the next epoch diverge: an absurd learning rate.
        let state_path = run.join("checkpoints/epoch-001/state.json");
        let mut state: TrainState = serde_json::from_slice(&std::fs::read(&state_path).unwrap()).unwrap();
        state.lr = 1e30;
        std::fs::write(&state_path, serde_json::to_vec(&state).unwrap()).unwrap();
        let err = resume_with(&run, &tr, &va, quiet()).unwrap_err();
        assert!(matches!(err, Error::NonFinite(_)), "{err}");
        assert!(err.to_string().contains("epoch 1"), "{err}");
        assert_eq!(std::fs::read_to_string(run.join("checkpoints/latest")).unwrap(), "epoch-001");
        assert_eq!(std::fs::read(run.join("checkpoints/epoch-001/model.ferrite")).unwrap(), good);
    }

    /// Regression (fuzz/fuzz_targets/resume.rs): an optimizer state whose tensor lacks a
    /// parameter id made burn's loader panic; it is now an error.
    #[test]
    fn an_optimizer_state_without_parameter_ids_is_refused() {
        let tensor = |id| {
            let data: Vec<u8> = [1.0f32, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
            burn_pack::Tensor::new("m".into(), burn_pack::DType::F32, [2], id, burn_pack::Bytes::from_bytes_vec(data))
        };
        let pack = |id| burn_pack::Writer::new(vec![tensor(id)]).into_bytes().unwrap().to_vec();
        assert!(check_optimizer_record(&pack(Some(7))).is_ok());
        let e = check_optimizer_record(&pack(None)).unwrap_err();
        assert!(e.contains("no parameter id"), "{e}");
        assert!(check_optimizer_record(b"not a pack").is_err());
    }

    #[test]
    fn resume_rejects_missing_and_corrupt_run_dirs() {
        let dir = crate::fsutil::TempDir::new().unwrap();
        let err = resume(&dir.path().join("nope"), quiet()).unwrap_err();
        assert!(matches!(err, Error::BadRunDir { .. }) && err.to_string().contains("nope"), "{err}");
        std::fs::write(dir.path().join("config.json"), "{ not json").unwrap();
        let err = resume(dir.path(), quiet()).unwrap_err().to_string();
        assert!(err.contains("config.json is invalid"), "{err}");
        let cfg = small_config(dir.path());
        std::fs::write(dir.path().join("config.json"), serde_json::to_vec(&cfg).unwrap()).unwrap();
        let err = resume(dir.path(), quiet()).unwrap_err().to_string();
        assert!(err.contains("no completed epoch"), "{err}");
        std::fs::create_dir_all(dir.path().join("checkpoints/epoch-001")).unwrap();
        std::fs::write(dir.path().join("checkpoints/latest"), "epoch-001").unwrap();
        std::fs::write(dir.path().join("checkpoints/epoch-001/state.json"), "[]").unwrap();
        let err = resume(dir.path(), quiet()).unwrap_err().to_string();
        assert!(err.contains("state.json is invalid"), "{err}");
    }

    #[test]
    fn plateau_follows_keras() {
        let mut s = TrainState {
            epoch: 0,
            lr: 1e-3,
            plateau_best_loss: f64::INFINITY,
            plateau_bad_epochs: 0,
            best_val_acc: 0.0,
            best_epoch: 0,
            elapsed_seconds: 0.0,
            cosine_anchor: None,
            history: vec![],
        };
        s.plateau_step(1.0, 0.1, 2, 1e-5);
        s.plateau_step(0.9, 0.1, 2, 1e-5);
        assert_eq!(s.lr, 1e-3);
        s.plateau_step(0.95, 0.1, 2, 1e-5);
        assert_eq!(s.lr, 1e-3);
        s.plateau_step(0.9, 0.1, 2, 1e-5); // second epoch without gain: reduce
        assert!((s.lr - 1e-4).abs() < 1e-12);
        for _ in 0..10 {
            s.plateau_step(2.0, 0.1, 2, 1e-5);
        }
        assert_eq!(s.lr, 1e-5, "never below min_lr");
    }

    #[test]
    fn class_weights_follow_the_power_and_average_one() {
        let counts = [400, 100, 400, 400, 400, 400, 400];
        assert!(class_weights(&counts, 0.0).iter().all(|&w| (w - 1.0).abs() < 1e-6));
        let w = class_weights(&counts, 0.5);
        assert!((w[1] / w[0] - 2.0).abs() < 1e-5, "{w:?}");
        let mean: f32 = counts.iter().zip(&w).map(|(&c, w)| c as f32 * w).sum::<f32>() / 2500.0;
        assert!((mean - 1.0).abs() < 1e-5);
    }

    #[test]
    fn mixing_keeps_pixels_in_range_and_weights_the_original_labels_most() {
        let mut rng = StdRng::seed_from_u64(3);
        let n = 8;
        let base: Vec<f32> = (0..n * FACE_PIXELS).map(|i| (i / FACE_PIXELS) as f32 / n as f32).collect();
        let labels: Vec<usize> = (0..n).collect();
        assert!(mix_batch(&mut base.clone(), n, Mix::None, &mut rng).is_none());
        for mix in [Mix::Mixup { alpha: 0.4 }, Mix::Cutmix { alpha: 1.0 }] {
            let mut px = base.clone();
            let (partner, lam) = mix_batch(&mut px, n, mix, &mut rng).unwrap();
            assert!((0.5..=1.0).contains(&lam), "{lam}");
            let mut sorted = partner.clone();
            sorted.sort();
            assert_eq!(sorted, labels, "partners are a permutation of the batch");
            for k in 0..n {
                let face = &px[k * FACE_PIXELS..(k + 1) * FACE_PIXELS];
                let (a, b) = (k as f32 / n as f32, partner[k] as f32 / n as f32);
                // Each face's mean is the label-weighted mean of the two sources.
                let mean = face.iter().sum::<f32>() / FACE_PIXELS as f32;
                assert!((mean - (lam * a + (1.0 - lam) * b)).abs() < 1e-3, "{mix:?} {mean} {lam} {a} {b}");
            }
        }
    }

    #[test]
    fn soft_target_loss_matches_a_hand_computation() {
        let device = training_device();
        let x: Vec<f32> = vec![1.0, 2.0, 0.5, 0.0, -1.0, 0.0, 3.0, 0.2, -0.3, 0.0, 1.5, 0.0, 0.7, -2.0];
        let mut t = vec![0.0f32; 14];
        t[1] = 0.5;
        t[6] = 0.25;
        t[0] = 0.25;
        t[7 + 3] = 1.0;
        let logits = || Tensor::<2>::from_data(TensorData::new(x.clone(), [2, 7]), &device);
        // By hand: log p_k = x_k - ln(sum_j e^x_j).
        let log_p = |row: usize, k: usize| {
            let r = &x[row * 7..row * 7 + 7];
            r[k] as f64 - r.iter().map(|&v| (v as f64).exp()).sum::<f64>().ln()
        };
        let face = |row: usize| -(0..7).map(|k| t[row * 7 + k] as f64 * log_p(row, k)).sum::<f64>();
        let plain: f32 = Loss::default().forward(logits(), &t).into_scalar();
        assert!((plain as f64 - (face(0) + face(1)) / 2.0).abs() < 1e-5, "{plain}");
        // Class weights: face weights sum_k t_k w_k, weighted mean.
        let w = vec![2.0f32, 1.0, 1.0, 3.0, 1.0, 1.0, 0.5];
        let (w0, w1) = (0.25 * 2.0 + 0.5 * 1.0 + 0.25 * 0.5, 3.0);
        let weighted: f32 = Loss { class_weights: Some(w), multi_target: false }.forward(logits(), &t).into_scalar();
        assert!((weighted as f64 - (w0 * face(0) + w1 * face(1)) / (w0 + w1)).abs() < 1e-5, "{weighted}");
        // Multi-target: -ln(sum_k t_k p_k).
        let mt = |row: usize| -(0..7).map(|k| t[row * 7 + k] as f64 * log_p(row, k).exp()).sum::<f64>().ln();
        let multi: f32 = Loss { class_weights: None, multi_target: true }.forward(logits(), &t).into_scalar();
        assert!((multi as f64 - (mt(0) + mt(1)) / 2.0).abs() < 1e-5, "{multi}");
        // One-hot targets give burn's own cross-entropy.
        let labels = vec![3i64, 6];
        let hard = Batch::hard(vec![], labels.clone());
        let ours: f32 = Loss::default().forward(logits(), &hard.targets).into_scalar();
        let y = Tensor::<1, burn::tensor::Int>::from_data(TensorData::new(labels, [2]), &device);
        let burns: f32 = burn::nn::loss::CrossEntropyLossConfig::new().init(&device).forward(logits(), y).into_scalar();
        assert!((ours - burns).abs() < 1e-5, "{ours} vs {burns}");
    }

    #[test]
    fn cosine_warms_up_then_decays_to_the_floor() {
        let mut cfg = small_config(Path::new("."));
        cfg.epochs = 10;
        cfg.lr = 1.0;
        let lr = |step| cosine_step(&cfg, &mut None, cfg.epochs, 1.0, 0.01, step, 100, 1.0);
        assert!(lr(0) < 0.02);
        assert!((lr(99) - 1.0).abs() < 1e-9);
        assert!(lr(500) < lr(200));
        assert!((lr(1000) - 0.01).abs() < 1e-9);
    }

    /// A re-plan to more epochs (epochs got faster) never raises the rate after warm-up: the
    /// decay goes on from where it was, stretched over the new plan, and still ends at the floor.
    #[test]
    fn a_longer_plan_after_warm_up_only_slows_the_decay() {
        let mut cfg = small_config(Path::new("."));
        cfg.lr = 1.0;
        let mut anchor = None;
        let (mut prev, mut rates) = (0.0, Vec::new());
        for step in 0..2000 {
            // 10 epochs planned until epoch 6, then 20 (epochs became twice as fast).
            let planned = if step < 600 { 10 } else { 20 };
            prev = cosine_step(&cfg, &mut anchor, planned, 1.0, 0.01, step, 100, prev);
            rates.push(prev);
        }
        for w in rates[100..].windows(2) {
            assert!(w[1] <= w[0] + 1e-12, "rate rose from {} to {}", w[0], w[1]);
        }
        assert!((rates[599] - rates[600]).abs() < 1e-2, "no jump at the re-plan");
        assert!((rates[1999] - 0.01).abs() < 1e-4, "{}", rates[1999]);
        assert!(rates[1200] > 0.05, "the longer plan decays more slowly: {}", rates[1200]);
        // A plan that changes every epoch (the machine's speed wobbling) still decays along
        // the cosine's shape and ends at the floor: no restart of the flat top each time.
        let (mut anchor, mut prev, mut rates) = (None, 0.0, Vec::new());
        for step in 0..2000 {
            let planned = if (step / 100) % 2 == 0 { 20 } else { 19 };
            prev = cosine_step(&cfg, &mut anchor, planned, 1.0, 0.01, step, 100, prev);
            rates.push(prev);
        }
        for w in rates[100..].windows(2) {
            assert!(w[1] <= w[0] + 1e-12, "rate rose from {} to {}", w[0], w[1]);
        }
        let plain = |step| cosine_step(&cfg, &mut None, 20, 1.0, 0.01, step, 100, 1.0);
        assert!((rates[1000] - plain(1000)).abs() < 0.08, "halfway {} vs the plain cosine {}", rates[1000], plain(1000));
        assert!(rates[1999] < 0.02, "{}", rates[1999]);
    }

    #[test]
    fn time_budget_plans_the_epochs_that_fit() {
        let mut cfg = small_config(Path::new("."));
        cfg.epochs = 30;
        let row = |epoch: usize, secs: f64, elapsed: f64| EpochRecord {
            epoch,
            lr: 0.0,
            train_loss: 0.0,
            train_acc: 0.0,
            val_loss: 0.0,
            val_acc: 0.0,
            val_macro_f1: 0.0,
            epoch_seconds: secs,
            elapsed_seconds: elapsed,
            val_balanced_acc: 0.0,
        };
        let history = [row(1, 300.0, 300.0), row(2, 360.0, 660.0)];
        assert_eq!(planned_epochs(&cfg, &history), 30, "no budget: the configured epochs");
        cfg.time_budget_minutes = Some(60.0);
        assert_eq!(planned_epochs(&cfg, &[]), 30, "nothing measured yet");
        // 3600 - 660 = 2940 s left; an epoch takes 330 s (median of 300 and 360): 8 more.
        assert_eq!(planned_epochs(&cfg, &history), 10);
        // One epoch slowed by other work does not shorten the plan: median 300 s, 2100 s left.
        let bumpy = [row(1, 300.0, 300.0), row(2, 600.0, 900.0), row(3, 300.0, 1200.0), row(4, 300.0, 1500.0)];
        assert_eq!(planned_epochs(&cfg, &bumpy), 11);
        // The estimate follows the last five epochs.
        let slower: Vec<_> = (1..=8).map(|e| row(e, if e <= 3 { 100.0 } else { 200.0 }, 0.0)).collect();
        assert_eq!(typical_epoch_seconds(&slower), Some(200.0));
        assert_eq!(typical_epoch_seconds(&[]), None);
        cfg.time_budget_minutes = Some(10.0);
        assert_eq!(planned_epochs(&cfg, &history), 2, "over budget: no more epochs");
        cfg.time_budget_minutes = Some(1000.0);
        assert_eq!(planned_epochs(&cfg, &history), 30, "never beyond --epochs");
    }

    #[test]
    fn a_spent_time_budget_stops_training_and_writes_the_model() {
        let _rng = crate::rng_lock();
        let dir = crate::fsutil::TempDir::new().unwrap();
        let (tr, va) = (synthetic(2, 1), synthetic(1, 2));
        let mut cfg = small_config(dir.path());
        cfg.epochs = 5;
        cfg.time_budget_minutes = Some(1e-6);
        let run = dir.path().join("run");
        let out = train_on(&cfg, &run, &tr, &va, quiet()).unwrap();
        assert_eq!(out.state.epoch, 1, "the first epoch measures the speed, then the budget is spent");
        assert!(run.join("model.ferrite").exists());
        let again = resume_with(&run, &tr, &va, quiet()).unwrap();
        assert_eq!(again.state.epoch, 1, "resuming a spent budget trains nothing more");
    }
}
