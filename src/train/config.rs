//! What a training run is told: optimiser, schedule, mixing and the whole `TrainConfig`.

use super::*;

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

impl Schedule {
    /// ReduceLROnPlateau as Keras's tutorials set it: factor 0.1 after 2 epochs without a
    /// validation-loss gain, down to 1e-5.
    pub fn plateau() -> Schedule {
        Schedule::Plateau { factor: 0.1, patience: 2, min_lr: 1e-5 }
    }

    /// Cosine decay without warm-up, to 1e-5.
    pub fn cosine() -> Schedule {
        Schedule::Cosine { warmup_epochs: 0.0, min_lr: 1e-5 }
    }
}

impl OptimizerConfig {
    /// Adam without weight decay (the default).
    pub fn adam() -> OptimizerConfig {
        OptimizerConfig::Adam { weight_decay: 0.0 }
    }

    /// SGD with Nesterov momentum 0.9, without weight decay.
    pub fn sgd() -> OptimizerConfig {
        OptimizerConfig::Sgd { momentum: 0.9, nesterov: true, weight_decay: 0.0 }
    }
}

impl Mix {
    /// The Beta(alpha, alpha) parameter mixup and CutMix take by default.
    pub const ALPHA: f32 = 0.2;
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
    pub contrast: crate::data::preprocess::Contrast,
    /// Distillation: another model's probabilities mixed into the training targets.
    #[serde(default)]
    pub teacher: Option<crate::data::teacher::TeacherConfig>,
    /// Start from this model's weights (a model file, run directory or `embedded:NAME`) instead
    /// of a random initialisation; its network must be the one `spec` describes.
    #[serde(default)]
    pub init: Option<String>,
}

pub(crate) fn one() -> usize {
    1
}

impl TrainConfig {
    /// A run from scratch with [`Recipe::scratch`] (the tutorials' recipe: Adam 5e-4, batch 64,
    /// flip, ReduceLROnPlateau(0.1, 2, 1e-5)); [`crate::Trainer::builder`] sets the rest.
    pub fn new(spec: ModelSpec, train_data: PathBuf) -> Self {
        let recipe = Recipe::scratch();
        TrainConfig {
            spec,
            train_data,
            val_data: None,
            val_fraction: recipe.val_fraction,
            epochs: recipe.epochs,
            batch_size: recipe.batch_size,
            lr: recipe.lr,
            optimizer: OptimizerConfig::adam(),
            schedule: recipe.schedule,
            label_smoothing: 0.0,
            early_stop_patience: recipe.early_stop_patience,
            augment: recipe.augment,
            mix: Mix::None,
            class_weight_power: 0.0,
            seed: 42,
            skip_bad: false,
            max_per_class: None,
            time_budget_minutes: recipe.time_budget_minutes,
            matmul: MatmulPrecision::F32,
            replicas: 1,
            keep_checkpoints: 1,
            ferplus: None,
            contrast: crate::data::preprocess::Contrast::default(),
            teacher: None,
            init: None,
        }
    }

    /// Check every setting; an error names the first bad one as the library spells it.
    pub(crate) fn validate(&self) -> Result<()> {
        fn bad(name: &'static str, value: impl std::fmt::Display, expected: &str) -> Result<()> {
            Err(Error::Setting { name, value: value.to_string(), expected: expected.into() })
        }
        if self.epochs == 0 {
            return bad("epochs", self.epochs, "at least 1");
        }
        if self.batch_size == 0 {
            return bad("batch_size", self.batch_size, "at least 1");
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("lr", self.lr, "a positive number");
        }
        if !(0.0..0.9).contains(&self.val_fraction) {
            return bad("val_fraction", self.val_fraction, "a fraction in [0, 0.9)");
        }
        self.augment.validate().map_err(|m| Error::Setting { name: "augment", value: format!("{:?}", self.augment), expected: m })?;
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return bad("label_smoothing", self.label_smoothing, "a fraction in [0, 1)");
        }
        if let Mix::Mixup { alpha } | Mix::Cutmix { alpha } = self.mix
            && !(alpha.is_finite() && alpha > 0.0)
        {
            return bad("mix", alpha, "a positive alpha");
        }
        if !(0.0..=2.0).contains(&self.class_weight_power) {
            return bad("class_weight_power", self.class_weight_power, "a power in [0, 2]");
        }
        if let Some(t) = self.teacher.as_ref().filter(|t| !(0.0..=1.0).contains(&t.weight)) {
            return bad("teacher", t.weight, "a weight in [0, 1]");
        }
        if let Some(fp) = &self.ferplus {
            fp.validate()?;
        }
        if let Some(m) = self.time_budget_minutes.filter(|m| !(m.is_finite() && *m > 0.0)) {
            return bad("time_budget_minutes", m, "a positive number of minutes");
        }
        if !(1..=16).contains(&self.replicas) || self.replicas > self.batch_size {
            return bad("replicas", self.replicas, "1 to 16, and at most the batch size");
        }
        if self.keep_checkpoints == 0 {
            return bad("keep_checkpoints", 0, "at least 1");
        }
        if self.spec.arch == crate::model::Arch::Ensemble {
            return bad("network", "an ensemble", "a single network (an ensemble is put together from trained members when exporting)");
        }
        Matmul::new(self.matmul)?;
        self.spec.validate()
    }
}

pub(crate) fn build_optimizer(cfg: &TrainConfig) -> ModuleOptimizer {
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

/// The label set a run trains on, as model headers name it: `fer2013`, `ferplus-MODE`, or
/// `ferplus-MODE+fer2013-W` when FER2013's own labels are mixed in with weight W.
pub fn label_set_name(cfg: &TrainConfig) -> String {
    match &cfg.ferplus {
        None => "fer2013".into(),
        Some(f) => {
            let mode = serde_json::to_value(f.mode).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
            match f.own_label_weight {
                w if w > 0.0 => format!("ferplus-{mode}+fer2013-{w}"),
                _ => format!("ferplus-{mode}"),
            }
        }
    }
}
