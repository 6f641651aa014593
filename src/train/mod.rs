//! Training: the fit loop shared by every architecture, reporting each epoch to a callback.
//!
//! The parts: [`config`] (what a run is told), [`inputs`] (its data), [`step`] (one training
//! step, data-parallel replicas, the batch producer), [`schedule`] (learning rates, time
//! budget), [`history`] (per-epoch records, the resumable state), [`checkpoint`] (run
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
pub mod history;
pub mod inputs;
pub mod schedule;
pub mod step;
#[cfg(test)]
mod tests;

pub use checkpoint::*;
pub use config::*;
pub use history::*;
pub use inputs::*;
pub use schedule::*;
pub use step::*;

/// What the caller sees of a finished run.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    pub state: TrainState,
    pub stopped_early: bool,
    pub run_dir: PathBuf,
}

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
}

impl std::fmt::Debug for TrainOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrainOptions")
            .field("progress", &self.progress)
            .field("max_epochs_this_call", &self.max_epochs_this_call)
            .field("on_epoch", &self.on_epoch.as_ref().map(|_| "callback"))
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
    Ok(Network::new(spec, device).load_record(net.into_record()))
}

/// Continue the run in `run_dir` from its last completed epoch.
pub fn resume(run_dir: &Path, opts: TrainOptions) -> Result<TrainOutcome> {
    resume_impl(run_dir, None, opts)
}

/// [`resume`] with data already in memory instead of the paths in the run's config.
pub fn resume_with(run_dir: &Path, train_ds: &Dataset, val_ds: &Dataset, opts: TrainOptions) -> Result<TrainOutcome> {
    resume_impl(run_dir, Some((train_ds, val_ds)), opts)
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
            let rx = batch_producer(scope, train_ds, order, cfg.batch_size, &cfg.augment, cfg.contrast, cfg.mix, rules, seed);
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

        // The epoch's model carries the run's contract (labels, class priors, contrast), in the
        // best model and in its checkpoint alike, so either can be evaluated or prior-corrected.
        let meta = ModelMeta {
            epoch: Some(epoch),
            val_accuracy: Some(report.accuracy),
            val_macro_f1: Some(report.macro_f1),
            labels: Some(label_set_name(cfg)),
            class_priors: Some(priors),
            contrast: cfg.contrast,
            ..ModelMeta::default()
        };
        let improved = report.accuracy > state.best_val_acc;
        if improved {
            state.best_val_acc = report.accuracy;
            state.best_epoch = epoch;
            modelfile::save(&run.best(), &net.valid(), &ModelHeader::new(cfg.spec.clone(), meta.clone()))?;
        }
        save_checkpoint(run, cfg, &net, &optim, &state, meta)?;
        write_atomic(&run.metrics(), metrics_csv(&state.history).as_bytes())?;
        if let Some(report) = &opts.on_epoch {
            report(run, &state);
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
