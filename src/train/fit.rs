//! The fit loop, taken apart: [`Fit`] holds what every epoch shares; an epoch is a training
//! pass ([`Fit::train_epoch`]), a validation ([`Fit::validate`]) and what follows it
//! ([`Fit::after_epoch`]: the schedule's step, the best model, the checkpoint, `metrics.csv`,
//! the caller's report, early stopping), in that order.

use super::*;

/// Why a call ended before the run's last epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Stop {
    /// No validation gain for `early_stop_patience` epochs.
    Early,
    /// The time budget has no room for another epoch.
    OutOfTime,
    /// This call's epoch limit (a later resume continues).
    CallLimit,
    /// The caller's step callback asked to stop (the epoch under way is dropped).
    Interrupted,
}

/// One epoch's training pass: mean loss and accuracy over its faces, the last step's rate.
struct Pass {
    loss: f64,
    acc: f64,
    lr: f64,
}

/// What every epoch of a run shares: settings, data, loss and reporting.
pub(crate) struct Fit<'a> {
    cfg: &'a TrainConfig,
    run: &'a RunDir,
    train_ds: &'a Dataset,
    val_ds: &'a Dataset,
    device: &'a Device,
    eval_device: Device,
    opts: TrainOptions,
    loss_fn: Loss,
    rules: TargetRules,
    priors: [f64; Emotion::COUNT],
    steps_per_epoch: usize,
}

/// Train `net` from `state` (a fresh start or a resume point) to the end of the run.
#[allow(clippy::too_many_arguments)]
pub(crate) fn fit(
    cfg: &TrainConfig,
    run: &RunDir,
    net: Network,
    optim: ModuleOptimizer,
    state: TrainState,
    train_ds: &Dataset,
    val_ds: &Dataset,
    device: &Device,
    opts: TrainOptions,
) -> Result<TrainOutcome> {
    let net = net.with_matmul(Matmul::new(cfg.matmul)?);
    Fit::new(cfg, run, train_ds, val_ds, device, opts)?.run(net, optim, state)
}

impl<'a> Fit<'a> {
    fn new(cfg: &'a TrainConfig, run: &'a RunDir, train_ds: &'a Dataset, val_ds: &'a Dataset, device: &'a Device, opts: TrainOptions) -> Result<Self> {
        if train_ds.is_empty() || val_ds.is_empty() {
            return Err(Error::Config("training and validation data must both be non-empty".into()));
        }
        let mut loss_fn = Loss {
            class_weights: None,
            multi_target: cfg.ferplus.as_ref().is_some_and(|f| f.mode == LabelMode::MultiTarget),
        };
        if cfg.class_weight_power > 0.0 {
            let weights = class_weights(&train_ds.class_counts(), cfg.class_weight_power);
            tracing::info!(?weights, "class weights in the loss");
            loss_fn.class_weights = Some(weights);
        }
        let missing = missing_classes(train_ds);
        if !missing.is_empty() {
            tracing::warn!("no training faces of {}: the model learns to leave them out", names(&missing));
        }
        tracing::info!(
            train = train_ds.len(),
            val = val_ds.len(),
            skipped = train_ds.skipped.len() + val_ds.skipped.len(),
            "data loaded"
        );
        Ok(Fit {
            cfg,
            run,
            train_ds,
            val_ds,
            device,
            eval_device: device.clone().without_autodiff(),
            opts,
            loss_fn,
            rules: TargetRules {
                sample: cfg.ferplus.as_ref().is_some_and(|f| f.mode == LabelMode::Probability),
                smoothing: cfg.label_smoothing,
            },
            priors: train_ds.class_priors(),
            steps_per_epoch: train_ds.len().div_ceil(cfg.batch_size),
        })
    }

    /// The epoch loop: before each epoch the limits, then pass, validation and what follows.
    fn run(self, mut net: Network, mut optim: ModuleOptimizer, mut state: TrainState) -> Result<TrainOutcome> {
        let mut stop = None;
        let mut epochs_this_call = 0;
        while state.epoch < self.cfg.epochs {
            if let Some(s) = self.before_epoch(&state, epochs_this_call) {
                stop = Some(s);
                break;
            }
            let started = Instant::now();
            let Some(pass) = self.train_epoch(&mut net, &mut optim, &mut state)? else {
                stop = Some(Stop::Interrupted);
                break;
            };
            let report = self.validate(&net, &state)?;
            self.record(&mut state, pass, &report, started.elapsed().as_secs_f64());
            epochs_this_call += 1;
            if self.after_epoch(&net, &optim, &mut state, &report)? {
                stop = Some(Stop::Early);
                break;
            }
        }
        self.finish(state, stop)
    }

    /// Whether this call ends before the next epoch: its epoch limit, or the time budget.
    fn before_epoch(&self, state: &TrainState, epochs_this_call: usize) -> Option<Stop> {
        if self.opts.max_epochs_this_call.is_some_and(|m| epochs_this_call >= m) {
            return Some(Stop::CallLimit);
        }
        if state.epoch >= planned_epochs(self.cfg, &state.history) {
            tracing::info!(
                "time budget: {:.0} of {:.0} minutes used and an epoch takes {:.1}; stopping after epoch {}",
                state.elapsed_seconds / 60.0,
                self.cfg.time_budget_minutes.unwrap_or(0.0),
                typical_epoch_seconds(&state.history).unwrap_or(0.0) / 60.0,
                state.epoch
            );
            return Some(Stop::OutOfTime);
        }
        None
    }

    /// One pass over the training faces in a seeded order (augmented batches made on another
    /// thread); `None` when the step callback asked to stop.
    fn train_epoch(&self, net: &mut Network, optim: &mut ModuleOptimizer, state: &mut TrainState) -> Result<Option<Pass>> {
        let (cfg, steps) = (self.cfg, self.steps_per_epoch);
        let epoch = state.epoch + 1;
        let seed = epoch_seed(cfg.seed, epoch);
        // Reseed dropout every epoch so a resumed run repeats an uninterrupted one.
        self.device.seed(seed);
        let mut order: Vec<usize> = (0..self.train_ds.len()).collect();
        order.shuffle(&mut StdRng::seed_from_u64(seed));
        let planned = planned_epochs(cfg, &state.history);
        let bar = self.progress_bar(epoch);
        let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
        let mut lr = state.lr;
        let first_step = state.epoch * steps;
        let finished: Result<bool> = std::thread::scope(|scope| {
            let rx = batch_producer(scope, self.train_ds, order, cfg.batch_size, &cfg.augment, cfg.contrast, cfg.mix, self.rules, seed);
            for (k, batch) in rx.iter().enumerate() {
                if let Schedule::Cosine { warmup_epochs, min_lr } = cfg.schedule {
                    lr = cosine_step(cfg, &mut state.cosine_anchor, planned, warmup_epochs, min_lr, first_step + k, steps, lr);
                }
                let n = batch.labels.len();
                let (next, loss_value, batch_correct) = train_step_replicated(net.clone(), optim, &self.loss_fn, batch, lr, self.device, cfg.replicas);
                *net = next;
                if !loss_value.is_finite() {
                    return Err(Error::NonFinite(format!(
                        "loss became {loss_value} at epoch {epoch}, batch {}; the last good checkpoint (epoch {}) is kept in {}",
                        k + 1,
                        state.epoch,
                        self.run.checkpoints().display()
                    )));
                }
                correct += batch_correct;
                loss_sum += loss_value as f64 * n as f64;
                seen += n;
                let progress = StepProgress {
                    epoch,
                    epochs: cfg.epochs,
                    step: k + 1,
                    steps,
                    loss: loss_sum / seen as f64,
                    accuracy: correct as f64 / seen as f64,
                    lr,
                };
                bar.inc(1);
                bar.set_message(format!("loss {:.4} acc {:.2}%", progress.loss, 100.0 * progress.accuracy));
                if !self.opts.progress && (k + 1) % (steps / 10).max(1) == 0 {
                    tracing::info!(
                        "epoch {epoch} step {}/{steps}: loss {:.4} acc {:.2}% lr {lr:.2e}",
                        k + 1,
                        progress.loss,
                        100.0 * progress.accuracy
                    );
                }
                if self.opts.on_step.as_ref().is_some_and(|keep_going| !keep_going(&progress)) {
                    tracing::info!("stopped at epoch {epoch}, step {}; the last finished epoch ({}) is kept", k + 1, state.epoch);
                    return Ok(false);
                }
            }
            Ok(true)
        });
        bar.finish_and_clear();
        Ok(finished?.then(|| Pass {
            loss: loss_sum / seen.max(1) as f64,
            acc: correct as f64 / seen.max(1) as f64,
            lr,
        }))
    }

    /// The live bar of an epoch's steps (hidden unless the caller asked for it).
    fn progress_bar(&self, epoch: usize) -> indicatif::ProgressBar {
        if !self.opts.progress {
            return indicatif::ProgressBar::hidden();
        }
        let b = indicatif::ProgressBar::new(self.steps_per_epoch as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {per_sec} eta {eta} {msg}")
                .expect("static template")
                .progress_chars("=> "),
        );
        b.set_prefix(format!("{epoch}/{}", self.cfg.epochs));
        b
    }

    /// Scores on the validation faces; a non-finite loss ends the run (the last good
    /// checkpoint stays).
    fn validate(&self, net: &Network, state: &TrainState) -> Result<crate::eval::metrics::Report> {
        let report = evaluate(&net.valid().to_device(&self.eval_device), self.val_ds, &self.eval_device);
        let val_loss = report.mean_loss.unwrap_or(f64::NAN);
        if !val_loss.is_finite() {
            return Err(Error::NonFinite(format!(
                "validation loss became {val_loss} after epoch {}; the last good checkpoint (epoch {}) is kept in {}",
                state.epoch + 1,
                state.epoch,
                self.run.checkpoints().display()
            )));
        }
        Ok(report)
    }

    /// The finished epoch counted and its record added to the history (and the log).
    fn record(&self, state: &mut TrainState, pass: Pass, report: &crate::eval::metrics::Report, epoch_seconds: f64) {
        state.elapsed_seconds += epoch_seconds;
        state.epoch += 1;
        let record = EpochRecord {
            epoch: state.epoch,
            lr: pass.lr,
            train_loss: pass.loss,
            train_acc: pass.acc,
            val_loss: report.mean_loss.unwrap_or(f64::NAN),
            val_acc: report.accuracy,
            val_macro_f1: report.macro_f1,
            epoch_seconds,
            elapsed_seconds: state.elapsed_seconds,
            val_balanced_acc: report.balanced_accuracy,
        };
        tracing::info!(
            "epoch {}/{}: lr {:.2e} train loss {:.4} acc {:.2}% | val loss {:.4} acc {:.2}% balanced {:.2}% f1 {:.4} | {:.0}s (total {:.0}s)",
            record.epoch,
            self.cfg.epochs,
            record.lr,
            record.train_loss,
            100.0 * record.train_acc,
            record.val_loss,
            100.0 * record.val_acc,
            100.0 * record.val_balanced_acc,
            record.val_macro_f1,
            epoch_seconds,
            state.elapsed_seconds
        );
        state.history.push(record);
    }

    /// What follows an epoch, in order: the schedule's step, the best model, the checkpoint,
    /// `metrics.csv`, the caller's report; then whether to stop early.
    fn after_epoch(&self, net: &Network, optim: &ModuleOptimizer, state: &mut TrainState, report: &crate::eval::metrics::Report) -> Result<bool> {
        let (cfg, run) = (self.cfg, self.run);
        let last = state.history.last().expect("an epoch was just recorded");
        match cfg.schedule {
            Schedule::Plateau { factor, patience, min_lr } => state.plateau_step(last.val_loss, factor, patience, min_lr),
            Schedule::Cosine { .. } => state.lr = last.lr,
            Schedule::Constant => {}
        }
        // The epoch's model carries the run's contract (labels, class priors, contrast), in the
        // best model and in its checkpoint alike, so either can be evaluated or prior-corrected.
        let meta = ModelMeta {
            epoch: Some(state.epoch),
            val_accuracy: Some(report.accuracy),
            val_macro_f1: Some(report.macro_f1),
            labels: Some(label_set_name(cfg)),
            class_priors: Some(self.priors),
            contrast: cfg.contrast,
            ..ModelMeta::default()
        };
        if report.accuracy > state.best_val_acc {
            state.best_val_acc = report.accuracy;
            state.best_epoch = state.epoch;
            modelfile::save(&run.best(), &net.valid(), &ModelHeader::new(cfg.spec.clone(), meta.clone()))?;
        }
        save_checkpoint(run, cfg, net, optim, state, meta)?;
        write_atomic(&run.metrics(), metrics_csv(&state.history).as_bytes())?;
        if let Some(report) = &self.opts.on_epoch {
            report(run, state);
        }
        let stop = cfg.early_stop_patience > 0 && state.epoch - state.best_epoch >= cfg.early_stop_patience;
        if stop {
            tracing::info!(
                "early stop: no val accuracy gain for {} epochs (best {:.2}% at epoch {})",
                cfg.early_stop_patience,
                100.0 * state.best_val_acc,
                state.best_epoch
            );
        }
        Ok(stop)
    }

    /// The run's final model (a copy of the best) once the run is over, and the outcome.
    fn finish(self, state: TrainState, stop: Option<Stop>) -> Result<TrainOutcome> {
        let over = state.epoch >= self.cfg.epochs || matches!(stop, Some(Stop::Early | Stop::OutOfTime));
        if over && self.run.best().exists() {
            let bytes = std::fs::read(self.run.best()).map_err(|e| Error::io(self.run.best(), e))?;
            write_atomic(&self.run.final_model(), &bytes)?;
        }
        Ok(TrainOutcome {
            state,
            stopped_early: stop == Some(Stop::Early),
            interrupted: stop == Some(Stop::Interrupted),
            missing_classes: missing_classes(self.train_ds),
            run_dir: self.run.0.clone(),
        })
    }
}

/// The classes without a single training face.
pub fn missing_classes(ds: &Dataset) -> Vec<Emotion> {
    let counts = ds.class_counts();
    Emotion::ALL.into_iter().filter(|e| counts[e.index()] == 0).collect()
}

fn names(classes: &[Emotion]) -> String {
    classes.iter().map(|e| e.name()).collect::<Vec<_>>().join(", ")
}
