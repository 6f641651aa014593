//! `ferrite train`: train a network from scratch or fine-tune one, or resume a run; the flags
//! given become `ferrite::Trainer::builder()` settings, every default is the library's.

use super::{Ctx, NetArgs};
use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use ferrite::data::augment::AugmentConfig;
use ferrite::data::ferplus::LabelMode;
use ferrite::plot;
use ferrite::train::{Mix, OptimizerConfig, Schedule, TrainOptions};
use ferrite::{Recipe, Trainer, TrainerBuilder};
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(Args)]
#[command(after_help = defaults_help())]
pub struct TrainArgs {
    /// Training data: image folder or FER2013 CSV (its Training rows).
    #[arg(long, required_unless_present = "resume")]
    pub data: Option<PathBuf>,
    /// Validation data: image folder or FER2013 CSV (its PublicTest rows). Default: 10% of --data.
    #[arg(long)]
    pub val: Option<PathBuf>,
    /// Run directory to create (config, checkpoints, metrics, plots, model).
    #[arg(long, required_unless_present = "resume")]
    pub out: Option<PathBuf>,
    /// Continue the run in this directory from its last completed epoch.
    #[arg(long, conflicts_with_all = ["data", "out"])]
    pub resume: Option<PathBuf>,
    #[command(flatten)]
    pub net: NetArgs,
    /// Epochs at most.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Faces per step.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    #[arg(long, value_enum)]
    pub optimizer: Option<OptArg>,
    /// SGD momentum (Nesterov).
    #[arg(long)]
    pub momentum: Option<f64>,
    #[arg(long)]
    pub weight_decay: Option<f64>,
    #[arg(long, value_enum)]
    pub schedule: Option<ScheduleArg>,
    /// ReduceLROnPlateau factor / patience / minimum LR (also the cosine floor)
    ///.
    #[arg(long)]
    pub plateau_factor: Option<f64>,
    #[arg(long)]
    pub plateau_patience: Option<usize>,
    #[arg(long)]
    pub min_lr: Option<f64>,
    /// Cosine schedule warm-up in epochs.
    #[arg(long)]
    pub warmup: Option<f64>,
    #[arg(long)]
    pub label_smoothing: Option<f32>,
    /// Stop after this many epochs without a validation-accuracy gain (0 = off)
    ///.
    #[arg(long)]
    pub early_stop: Option<usize>,
    /// Share of --data held out for validation when --val is not given.
    #[arg(long)]
    pub val_fraction: Option<f64>,
    /// Dropout of every dropout layer.
    #[arg(long)]
    pub dropout: Option<f64>,
    /// Augmentation: disable the horizontal flip.
    #[arg(long)]
    pub no_flip: bool,
    /// Augmentation: random shift in pixels (0 = off).
    #[arg(long)]
    pub shift: Option<u32>,
    /// Augmentation: random rotation in degrees (0 = off).
    #[arg(long)]
    pub rotate: Option<f32>,
    /// Augmentation: random zoom, a fraction (0.1 = scale by 0.9-1.1; 0 = off).
    #[arg(long)]
    pub zoom: Option<f32>,
    /// Augmentation: random-erasing probability (0 = off).
    #[arg(long)]
    pub erase: Option<f32>,
    /// Augmentation: probability of showing a face at a lower resolution, as a small face in a
    /// photo or video frame reaches the network (0 = off).
    #[arg(long)]
    pub low_res: Option<f32>,
    /// Smallest crop side in pixels of --low-res (the face is shrunk to a random side from this
    /// to 47, then enlarged back to 48).
    #[arg(long)]
    pub low_res_min: Option<u32>,
    /// Augmentation: probability of showing a face in dim, uneven light (darkened, one side
    /// darker, sensor noise, then the contrast step), as a dark room films it (0 = off).
    #[arg(long)]
    pub light: Option<f32>,
    /// Mix pairs of faces in a batch: mixup or cutmix.
    #[arg(long, value_enum)]
    pub mix: Option<MixArg>,
    /// Beta(alpha, alpha) parameter of --mix.
    #[arg(long)]
    pub mix_alpha: Option<f32>,
    /// Weight classes in the loss by count^-power (0 = off, 0.5 = inverse square root)
    ///.
    #[arg(long)]
    pub class_weight_power: Option<f32>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Skip unreadable images and bad CSV rows (they are counted).
    #[arg(long)]
    pub skip_bad: bool,
    /// Use at most this many images per class (quick experiments).
    #[arg(long)]
    pub max_per_class: Option<usize>,
    /// Stop after this many epochs in this invocation; `--resume` continues.
    #[arg(long)]
    pub max_epochs_now: Option<usize>,
    /// Wall-time budget in minutes: no epoch starts that would end past it, and the cosine
    /// schedule anneals over the epochs that fit (judged by the median of the last five epochs)
    ///.
    #[arg(long)]
    pub time_budget: Option<f64>,
    /// Split each batch into this many data-parallel replicas, each forward and backward on its
    /// own thread, gradients summed: keeps all cores busy between the parallel kernels. BatchNorm
    /// then normalises each part by its own statistics.
    #[arg(long)]
    pub replicas: Option<usize>,
    /// Keep the checkpoints of the newest N epochs (default: the last only), e.g. to average the
    /// last epochs' weights afterwards with `export --average-weights`.
    #[arg(long)]
    pub keep_checkpoints: Option<usize>,
    /// Train on FER+'s ten-person votes instead of the data's own labels, in this mode:
    /// majority, probability (a label drawn from the votes each time), crossentropy (the vote
    /// distribution as a soft target) or multi-target (the FER+ paper's four modes).
    #[arg(long, value_enum)]
    pub ferplus: Option<LabelMode>,
    /// FER+ votes for --data (default: ferplus/NAME.csv beside the folder, fer2013new.csv beside
    /// the CSV, or a FER+ folder's label.csv).
    #[arg(long, requires = "ferplus")]
    pub train_votes: Option<PathBuf>,
    /// FER+ votes for --val (default as for --train-votes).
    #[arg(long, requires = "ferplus")]
    pub val_votes: Option<PathBuf>,
    /// Both label sets at once: the weight of each face's own FER2013 label (its folder or CSV
    /// row) in its target, (1 - w) * votes + w * own label, in [0, 1). Validation stays FER+
    /// majority; score FER2013's labels with `evaluate` (without --ferplus).
    #[arg(long, requires = "ferplus")]
    pub own_label_weight: Option<f32>,
    /// Distillation: a teacher file (`file,angry,...,surprise` per training face, as
    /// tools/teacher/teacher.cjs writes) mixed into each target with --teacher-weight.
    #[arg(long)]
    pub teacher: Option<PathBuf>,
    /// Weight of the teacher in each target: (1 - w) * labels + w * teacher.
    #[arg(long, requires = "teacher")]
    pub teacher_weight: Option<f32>,
    /// Start from this model's weights (model file, run directory or embedded:NAME) instead of
    /// a random initialisation: fine-tuning, with the fine-tuning recipe for every setting not
    /// given, and the model's own network unless the network flags name another.
    #[arg(long)]
    pub init: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum MixArg {
    None,
    Mixup,
    Cutmix,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum OptArg {
    Adam,
    Sgd,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ScheduleArg {
    Plateau,
    Cosine,
    Constant,
}

pub fn run(a: TrainArgs, ctx: &Ctx) -> Result<()> {
    let matmul = ctx.matmul_given;
    let opts = TrainOptions {
        progress: std::io::stderr().is_terminal(),
        max_epochs_this_call: a.max_epochs_now,
        on_epoch: Some(plot::curves_each_epoch()),
        on_step: None,
    };
    let outcome = if let Some(run) = &a.resume {
        if matmul.is_some() {
            bail!("--matmul cannot be given with --resume: the run's config.json sets it");
        }
        ferrite::train::resume(run, opts).with_context(|| format!("resuming {}", run.display()))?
    } else {
        let (Some(data), Some(out)) = (a.data.clone(), a.out.clone()) else {
            bail!("--data and --out are required unless --resume is given");
        };
        let trainer = builder(&a, matmul, opts)?.data(data).out(&out).build().context("checking the training settings")?;
        match trainer.fit() {
            Err(e @ ferrite::Error::RunExists { .. }) => bail!("{e} (`--resume {}` continues it)", out.display()),
            r => r.with_context(|| format!("training into {}", out.display()))?,
        }
    };
    let s = &outcome.state;
    println!(
        "{} epochs done in {:.0}s; best val accuracy {:.2}% at epoch {}{}; run directory {}",
        s.epoch,
        s.elapsed_seconds,
        100.0 * s.best_val_acc,
        s.best_epoch,
        if outcome.stopped_early { " (early stop)" } else { "" },
        outcome.run_dir.display()
    );
    if !outcome.missing_classes.is_empty() {
        let names: Vec<&str> = outcome.missing_classes.iter().map(|e| e.name()).collect();
        println!("no training faces of: {} (the model learnt to leave them out)", names.join(", "));
    }
    Ok(())
}

/// The defaults of the flags, from the library's recipes and settings (shown after `--help`).
fn defaults_help() -> String {
    let (s, f) = (Recipe::scratch(), Recipe::fine_tune());
    let base = ferrite::train::TrainConfig::new(ferrite::model::ModelSpec::new(Default::default()), Default::default());
    let schedule = |r: &Recipe| match r.schedule {
        Schedule::Plateau { factor, patience, min_lr } => format!("plateau (factor {factor}, patience {patience}, min lr {min_lr:e})"),
        Schedule::Cosine { warmup_epochs, min_lr } => format!("cosine (warm-up {warmup_epochs}, min lr {min_lr:e})"),
        Schedule::Constant => "constant".into(),
    };
    let augment = |r: &Recipe| format!("flip {}, shift {}, rotate {}, zoom {}", r.augment.flip, r.augment.shift, r.augment.rotate_deg, r.augment.zoom);
    let budget = |r: &Recipe| r.time_budget_minutes.map_or("none".into(), |m| format!("{m} min"));
    let row = |name: &str, a: String, b: String| format!("  {name:<16} {a:<48} {b}\n");
    let mut out = format!("Defaults (the library's recipes; a flag given wins):\n{}", row("", "from scratch".into(), "fine-tuning (--init)".into()));
    out += &row("--epochs", s.epochs.to_string(), f.epochs.to_string());
    out += &row("--time-budget", budget(&s), budget(&f));
    out += &row("--batch-size", s.batch_size.to_string(), f.batch_size.to_string());
    out += &row("--lr", format!("{:e}", s.lr), format!("{:e}", f.lr));
    out += &row("--schedule", schedule(&s), schedule(&f));
    out += &row("augmentation", augment(&s), augment(&f));
    out += &row("--early-stop", s.early_stop_patience.to_string(), f.early_stop_patience.to_string());
    out += &row("--val-fraction", s.val_fraction.to_string(), f.val_fraction.to_string());
    out += &format!(
        "Both: --arch {} (fine-tuning: the starting model's network), --dropout {}, --seed {}, --optimizer adam, SGD momentum {}, --mix-alpha {}, --teacher-weight {}, --low-res-min {}, --replicas {}, --keep-checkpoints {}.",
        base.spec.arch.name(),
        base.spec.dropout,
        base.seed,
        match ferrite::train::OptimizerConfig::sgd() { OptimizerConfig::Sgd { momentum, .. } => momentum, _ => f64::NAN },
        Mix::ALPHA,
        ferrite::data::teacher::TeacherConfig::DEFAULT_WEIGHT,
        base.augment.low_res_min,
        base.replicas,
        base.keep_checkpoints,
    );
    out
}

/// The flags as the library's training settings: only what was given is set, so every default
/// (and the fine-tuning recipe when --init is given) is the library's.
fn builder(a: &TrainArgs, matmul: Option<ferrite::kernels::MatmulPrecision>, opts: TrainOptions) -> Result<TrainerBuilder> {
    let mut b = Trainer::builder().options(opts);
    if let Some(v) = &a.val {
        b = b.val(v);
    }
    if let Some(init) = &a.init {
        b = b.init(init);
    }
    if a.net.given() || a.dropout.is_some() {
        b = b.network(a.net.spec(a.dropout)?);
    }
    let recipe = Recipe::for_start(a.init.as_deref());
    // Parts of the schedule and augmentation given: the rest is the recipe's (or, for another
    // kind of schedule than the recipe's, that kind's defaults).
    let schedule_given = a.schedule.is_some() || a.plateau_factor.is_some() || a.plateau_patience.is_some() || a.min_lr.is_some() || a.warmup.is_some();
    if schedule_given {
        let mut schedule = match (a.schedule, &recipe.schedule) {
            (None, s) => s.clone(),
            (Some(ScheduleArg::Plateau), s @ Schedule::Plateau { .. }) | (Some(ScheduleArg::Cosine), s @ Schedule::Cosine { .. }) => s.clone(),
            (Some(ScheduleArg::Plateau), _) => Schedule::plateau(),
            (Some(ScheduleArg::Cosine), _) => Schedule::cosine(),
            (Some(ScheduleArg::Constant), _) => Schedule::Constant,
        };
        match &mut schedule {
            Schedule::Plateau { factor, patience, min_lr } => {
                *factor = a.plateau_factor.unwrap_or(*factor);
                *patience = a.plateau_patience.unwrap_or(*patience);
                *min_lr = a.min_lr.unwrap_or(*min_lr);
            }
            Schedule::Cosine { warmup_epochs, min_lr } => {
                *warmup_epochs = a.warmup.unwrap_or(*warmup_epochs);
                *min_lr = a.min_lr.unwrap_or(*min_lr);
            }
            Schedule::Constant => {}
        }
        b = b.schedule(schedule);
    }
    let augment_given = a.no_flip || a.shift.is_some() || a.rotate.is_some() || a.zoom.is_some() || a.erase.is_some() || a.low_res.is_some() || a.low_res_min.is_some() || a.light.is_some();
    if augment_given {
        let r = recipe.augment;
        b = b.augment(AugmentConfig {
            flip: r.flip && !a.no_flip,
            shift: a.shift.unwrap_or(r.shift),
            rotate_deg: a.rotate.unwrap_or(r.rotate_deg),
            zoom: a.zoom.unwrap_or(r.zoom),
            erase_prob: a.erase.unwrap_or(r.erase_prob),
            low_res: a.low_res.unwrap_or(r.low_res),
            low_res_min: a.low_res_min.unwrap_or(r.low_res_min),
            light: a.light.unwrap_or(r.light),
        });
    }
    if a.optimizer.is_some() || a.momentum.is_some() || a.weight_decay.is_some() {
        b = b.optimizer(match (a.optimizer, OptimizerConfig::adam(), OptimizerConfig::sgd()) {
            (Some(OptArg::Sgd), _, OptimizerConfig::Sgd { momentum, nesterov, weight_decay }) => OptimizerConfig::Sgd {
                momentum: a.momentum.unwrap_or(momentum),
                nesterov,
                weight_decay: a.weight_decay.unwrap_or(weight_decay),
            },
            (_, OptimizerConfig::Adam { weight_decay }, _) => OptimizerConfig::Adam { weight_decay: a.weight_decay.unwrap_or(weight_decay) },
            (_, adam, _) => adam,
        });
    }
    let alpha = a.mix_alpha.unwrap_or(Mix::ALPHA);
    match a.mix {
        None => {}
        Some(MixArg::None) => b = b.mix(Mix::None),
        Some(MixArg::Mixup) => b = b.mix(Mix::Mixup { alpha }),
        Some(MixArg::Cutmix) => b = b.mix(Mix::Cutmix { alpha }),
    }
    macro_rules! given {
        ($($flag:ident => $setting:ident),*) => {$( if let Some(v) = a.$flag { b = b.$setting(v); } )*};
    }
    given!(epochs => epochs, batch_size => batch_size, lr => lr, label_smoothing => label_smoothing, early_stop => early_stop_patience, val_fraction => val_fraction, class_weight_power => class_weight_power, seed => seed, max_per_class => max_per_class, replicas => replicas, keep_checkpoints => keep_checkpoints);
    if let Some(m) = matmul {
        b = b.matmul(m);
    }
    if let Some(m) = a.time_budget {
        b = b.time_budget_minutes(Some(m));
    }
    if a.skip_bad {
        b = b.skip_bad(true);
    }
    if let Some(mode) = a.ferplus {
        b = b.ferplus(ferrite::data::ferplus::FerPlusConfig {
            mode,
            train_votes: a.train_votes.clone(),
            val_votes: a.val_votes.clone(),
            own_label_weight: a.own_label_weight.unwrap_or_default(),
        });
    }
    if let Some(path) = &a.teacher {
        b = b.teacher(ferrite::data::teacher::TeacherConfig {
            path: path.clone(),
            weight: a.teacher_weight.unwrap_or(ferrite::data::teacher::TeacherConfig::DEFAULT_WEIGHT),
        });
    }
    Ok(b)
}
