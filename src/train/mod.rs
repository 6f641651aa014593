//! Training: the fit loop shared by every architecture, reporting each epoch to a callback.
//!
//! The parts: [`trainer`] (the front door: `Trainer::builder()`, every setting's default, the
//! scratch and fine-tuning recipes), [`config`] (what a run is told), [`inputs`] (its data),
//! [`fit`] (the epoch loop: training pass, validation, what follows an epoch), [`step`] (one
//! training step, data-parallel replicas, the batch producer), [`schedule`] (learning rates,
//! time budget), [`history`] (per-epoch records, the resumable state), [`checkpoint`] (run
//! directories, checkpoints kept by a keep-N policy, resume).

use crate::data::augment::{AugmentConfig, augment_into};
use crate::data::{Dataset, LoadOptions};
use crate::device::training_device;
use crate::kernels::{Matmul, MatmulPrecision, Replica};
use crate::emotion::Emotion;
use crate::error::{Error, Result};
use crate::eval::evaluate;
use crate::data::ferplus::{FerPlusConfig, LabelMode};
use crate::fsutil::write_atomic;
use crate::model::{ModelSpec, Network};
use crate::model::file::{self as modelfile, ModelHeader};
use crate::model::meta::ModelMeta;
use crate::data::preprocess::{FACE_PIXELS, batch_tensor};
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

pub mod checkpoint;
pub mod config;
pub mod fit;
pub mod history;
pub mod inputs;
pub mod schedule;
pub mod step;
#[cfg(test)]
mod tests;
pub mod trainer;

pub use checkpoint::*;
pub use config::*;
pub use history::*;
pub use inputs::*;
pub use schedule::*;
pub use step::*;
pub use trainer::*;
pub use fit::missing_classes;
pub(crate) use fit::fit;

/// What the caller sees of a finished run.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    pub state: TrainState,
    pub stopped_early: bool,
    /// The step callback stopped the run: the epoch under way was dropped, the last finished
    /// one is the checkpoint a resume continues from.
    pub interrupted: bool,
    /// Classes without a single training face (posed sets often have no neutral): the model
    /// keeps their outputs and learns to leave them out.
    pub missing_classes: Vec<Emotion>,
    pub run_dir: PathBuf,
}

/// Where a training pass stands after a step, as the step callback is told.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepProgress {
    /// The epoch under way (1-based) and the run's epochs at most.
    pub epoch: usize,
    pub epochs: usize,
    /// Steps done in this epoch, and the epoch's steps.
    pub step: usize,
    pub steps: usize,
    /// Mean training loss and accuracy over the epoch's faces so far.
    pub loss: f64,
    pub accuracy: f64,
    /// The learning rate of the last step.
    pub lr: f64,
}

/// Called after every training step; returning `false` stops the run at once (Ctrl-C in
/// Python), keeping the last finished epoch's checkpoint.
pub type StepCallback = std::sync::Arc<dyn Fn(&StepProgress) -> bool + Send + Sync>;

/// Called after every epoch, once its record, best model, checkpoint and `metrics.csv` are
/// written: with the run directory and the state so far (`state.history` holds every epoch).
pub type EpochCallback = std::sync::Arc<dyn Fn(&RunDir, &TrainState) + Send + Sync>;

/// How training reports progress.
#[derive(Clone, Default)]
pub struct TrainOptions {
    /// Show a live progress bar (loss and accuracy) on the terminal.
    pub progress: bool,
    /// Stop after this many epochs in this call even if the schedule has more (tests, time boxes).
    pub max_epochs_this_call: Option<usize>,
    /// Told about each finished epoch (the command line draws `curves.png` from it).
    pub on_epoch: Option<EpochCallback>,
    /// Told about each step; it may stop the run.
    pub on_step: Option<StepCallback>,
}

impl std::fmt::Debug for TrainOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrainOptions")
            .field("progress", &self.progress)
            .field("max_epochs_this_call", &self.max_epochs_this_call)
            .field("on_epoch", &self.on_epoch.as_ref().map(|_| "callback"))
            .field("on_step", &self.on_step.as_ref().map(|_| "callback"))
            .finish()
    }
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
    write_atomic(&run.config(), &serde_json::to_vec_pretty(cfg).map_err(|e| Error::Serialize { what: "the run config", source: e.into() })?)?;
    let device = training_device();
    device.seed(cfg.seed);
    let net = match &cfg.init {
        None => Network::new(&cfg.spec, &device),
        Some(init) => initial_weights(init, &cfg.spec, &device)?,
    };
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

/// The network of the model `init` names (file, run directory or `embedded:NAME`), which must
/// be the one `spec` describes, without the prior correction its file records: the starting
/// point of a fine-tuning run.
fn initial_weights(init: &str, spec: &ModelSpec, device: &Device) -> Result<Network> {
    let source = crate::model::source::ModelSource::from(init);
    let (net, header) = source.load(device)?;
    if &header.spec != spec {
        return Err(Error::Config(format!(
            "the starting model {} is a different network ({:?}) from the one this run trains ({spec:?})",
            source.name(),
            header.spec
        )));
    }
    // A prior correction folded into its classifier's bias (the embedded default's 0.25) is
    // taken out: the run trains, records and exports the network itself, as a run from scratch
    // does, and `export --prior-correction` puts a correction back.
    let tau = header.meta.prior_correction as f32;
    let (net, _) = crate::model::infer::correct_priors(net, header, -tau)?;
    // Loaded for inference (an f16 file's weights cast to f32 are untracked): its weights put
    // into a network made for training, whose parameters are tracked.
    Ok(Network::zeroed(spec, device).load_record(net.into_record()))
}

/// Continue the run in `run_dir` from its last completed epoch.
pub fn resume(run_dir: &Path, opts: TrainOptions) -> Result<TrainOutcome> {
    resume_impl(run_dir, None, opts)
}

/// [`resume`] with data already in memory instead of the paths in the run's config.
pub fn resume_with(run_dir: &Path, train_ds: &Dataset, val_ds: &Dataset, opts: TrainOptions) -> Result<TrainOutcome> {
    resume_impl(run_dir, Some((train_ds, val_ds)), opts)
}
