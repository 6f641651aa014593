//! `ferrite train`: train a network from scratch or resume a run.

use super::{Ctx, NetArgs};
use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use ferrite::data::augment::AugmentConfig;
use ferrite::data::ferplus::LabelMode;
use ferrite::plot;
use ferrite::train::{Mix, OptimizerConfig, Schedule, TrainConfig, TrainOptions};
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(Args)]
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
    #[arg(long, default_value_t = 20)]
    pub epochs: usize,
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 5e-4)]
    pub lr: f64,
    #[arg(long, value_enum, default_value = "adam")]
    pub optimizer: OptArg,
    /// SGD momentum (Nesterov).
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f64,
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    #[arg(long, value_enum, default_value = "plateau")]
    pub schedule: ScheduleArg,
    /// ReduceLROnPlateau factor / patience / minimum LR (also the cosine floor).
    #[arg(long, default_value_t = 0.1)]
    pub plateau_factor: f64,
    #[arg(long, default_value_t = 2)]
    pub plateau_patience: usize,
    #[arg(long, default_value_t = 1e-5)]
    pub min_lr: f64,
    /// Cosine schedule warm-up in epochs.
    #[arg(long, default_value_t = 0.0)]
    pub warmup: f64,
    #[arg(long, default_value_t = 0.0)]
    pub label_smoothing: f32,
    /// Stop after this many epochs without a validation-accuracy gain (0 = off).
    #[arg(long, default_value_t = 0)]
    pub early_stop: usize,
    #[arg(long, default_value_t = 0.25)]
    pub dropout: f64,
    /// Augmentation: disable the horizontal flip.
    #[arg(long)]
    pub no_flip: bool,
    /// Augmentation: random shift in pixels (0 = off).
    #[arg(long, default_value_t = 0)]
    pub shift: u32,
    /// Augmentation: random rotation in degrees (0 = off).
    #[arg(long, default_value_t = 0.0)]
    pub rotate: f32,
    /// Augmentation: random zoom, a fraction (0.1 = scale by 0.9-1.1; 0 = off).
    #[arg(long, default_value_t = 0.0)]
    pub zoom: f32,
    /// Augmentation: random-erasing probability (0 = off).
    #[arg(long, default_value_t = 0.0)]
    pub erase: f32,
    /// Augmentation: probability of showing a face at a lower resolution, as a small face in a
    /// photo or video frame reaches the network (0 = off).
    #[arg(long, default_value_t = 0.0)]
    pub low_res: f32,
    /// Smallest crop side in pixels of --low-res (the face is shrunk to a random side from this
    /// to 47, then enlarged back to 48).
    #[arg(long, default_value_t = ferrite::data::augment::LOW_RES_MIN)]
    pub low_res_min: u32,
    /// Augmentation: probability of showing a face in dim, uneven light (darkened, one side
    /// darker, sensor noise, then the contrast step), as a dark room films it (0 = off).
    #[arg(long, default_value_t = 0.0)]
    pub light: f32,
    /// Mix pairs of faces in a batch: mixup or cutmix.
    #[arg(long, value_enum, default_value = "none")]
    pub mix: MixArg,
    /// Beta(alpha, alpha) parameter of --mix.
    #[arg(long, default_value_t = 0.2)]
    pub mix_alpha: f32,
    /// Weight classes in the loss by count^-power (0 = off, 0.5 = inverse square root).
    #[arg(long, default_value_t = 0.0)]
    pub class_weight_power: f32,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
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
    /// schedule anneals over the epochs that fit (judged by the median of the last five epochs).
    #[arg(long)]
    pub time_budget: Option<f64>,
    /// Split each batch into this many data-parallel replicas, each forward and backward on its
    /// own thread, gradients summed: keeps all cores busy between the parallel kernels. BatchNorm
    /// then normalises each part by its own statistics.
    #[arg(long, default_value_t = 1)]
    pub replicas: usize,
    /// Keep the checkpoints of the newest N epochs (default: the last only), e.g. to average the
    /// last epochs' weights afterwards with `export --average-weights`.
    #[arg(long, default_value_t = 1)]
    pub keep_checkpoints: usize,
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
    #[arg(long, default_value_t = 0.0, requires = "ferplus")]
    pub own_label_weight: f32,
    /// Distillation: a teacher file (`file,angry,...,surprise` per training face, as
    /// tools/teacher/teacher.cjs writes) mixed into each target with --teacher-weight.
    #[arg(long)]
    pub teacher: Option<PathBuf>,
    /// Weight of the teacher in each target: (1 - w) * labels + w * teacher.
    #[arg(long, default_value_t = 0.5, requires = "teacher")]
    pub teacher_weight: f32,
    /// Start from this model's weights (model file, run directory or embedded:NAME) instead of
    /// a random initialisation: fine-tuning. Its network must match the one the flags describe.
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
    };
    let outcome = if let Some(run) = &a.resume {
        if matmul.is_some() {
            bail!("--matmul cannot be given with --resume: the run's config.json sets it");
        }
        ferrite::train::resume(run, opts).with_context(|| format!("resuming {}", run.display()))?
    } else {
        let (Some(data), Some(out)) = (a.data, a.out) else {
            bail!("--data and --out are required unless --resume is given");
        };
        let spec = a.net.spec(Some(a.dropout))?;
        let mut cfg = TrainConfig::new(spec, data);
        cfg.val_data = a.val;
        cfg.epochs = a.epochs;
        cfg.batch_size = a.batch_size;
        cfg.lr = a.lr;
        cfg.optimizer = match a.optimizer {
            OptArg::Adam => OptimizerConfig::Adam {
                weight_decay: a.weight_decay,
            },
            OptArg::Sgd => OptimizerConfig::Sgd {
                momentum: a.momentum,
                nesterov: true,
                weight_decay: a.weight_decay,
            },
        };
        cfg.schedule = match a.schedule {
            ScheduleArg::Plateau => Schedule::Plateau {
                factor: a.plateau_factor,
                patience: a.plateau_patience,
                min_lr: a.min_lr,
            },
            ScheduleArg::Cosine => Schedule::Cosine {
                warmup_epochs: a.warmup,
                min_lr: a.min_lr,
            },
            ScheduleArg::Constant => Schedule::Constant,
        };
        cfg.label_smoothing = a.label_smoothing;
        cfg.early_stop_patience = a.early_stop;
        cfg.time_budget_minutes = a.time_budget;
        cfg.augment = AugmentConfig {
            flip: !a.no_flip,
            shift: a.shift,
            rotate_deg: a.rotate,
            zoom: a.zoom,
            erase_prob: a.erase,
            low_res: a.low_res,
            low_res_min: a.low_res_min,
            light: a.light,
        };
        cfg.mix = match a.mix {
            MixArg::None => Mix::None,
            MixArg::Mixup => Mix::Mixup { alpha: a.mix_alpha },
            MixArg::Cutmix => Mix::Cutmix { alpha: a.mix_alpha },
        };
        cfg.class_weight_power = a.class_weight_power;
        cfg.seed = a.seed;
        cfg.skip_bad = a.skip_bad;
        cfg.max_per_class = a.max_per_class;
        cfg.matmul = matmul.unwrap_or_default();
        cfg.replicas = a.replicas;
        cfg.keep_checkpoints = a.keep_checkpoints;
        cfg.ferplus = a.ferplus.map(|m| ferrite::data::ferplus::FerPlusConfig {
            mode: m,
            train_votes: a.train_votes.clone(),
            val_votes: a.val_votes.clone(),
            own_label_weight: a.own_label_weight,
        });
        cfg.teacher = a.teacher.map(|path| ferrite::data::teacher::TeacherConfig {
            path,
            weight: a.teacher_weight,
        });
        cfg.init = a.init;
        match ferrite::train::train(&cfg, &out, opts) {
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
    Ok(())
}
