//! The front door to training: [`Trainer::builder`] holds every training setting with its
//! default (a [`Recipe`] for a run from scratch and one for fine-tuning), [`TrainerBuilder::build`]
//! checks them (errors name the setting), [`Trainer::fit`] runs. The command line and the Python
//! package only turn their inputs into these settings.

use super::*;

/// The settings that depend on how a run starts: from a random initialisation, or from a
/// trained model (`init`) on a small set of a user's own faces. A setting given to the builder
/// wins over its recipe's.
#[derive(Debug, Clone, PartialEq)]
pub struct Recipe {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub schedule: Schedule,
    pub augment: AugmentConfig,
    /// Stop after this many epochs without a validation-accuracy gain (0 = never).
    pub early_stop_patience: usize,
    /// The share of the training data held out for validation when no validation set is given.
    pub val_fraction: f64,
    /// Wall-time budget in minutes (`None`: the epochs decide).
    pub time_budget_minutes: Option<f64>,
}

impl Recipe {
    /// From scratch, the tutorials' recipe: Adam 5e-4, batch 64, horizontal flip,
    /// ReduceLROnPlateau(0.1, 2, 1e-5), 20 epochs, 10% held out when no validation set is given.
    pub fn scratch() -> Recipe {
        Recipe {
            epochs: 20,
            batch_size: 64,
            lr: 5e-4,
            schedule: Schedule::plateau(),
            augment: AugmentConfig::default(),
            early_stop_patience: 0,
            val_fraction: 0.1,
            time_budget_minutes: None,
        }
    }

    /// Fine-tuning a trained model on a small set (hundreds to a few thousand faces): a fifth
    /// of the learning rate, annealed by a cosine to 1e-6, batch 32, flips with small shifts,
    /// turns and zooms (posed sets show each face a few times), at most 15 epochs and 1.5
    /// minutes of training (ten folds of a posed set fine-tune within 20 minutes on 2 cores),
    /// and early stopping after 4 epochs without a gain on a held-out 15% (when no validation
    /// set is given).
    pub fn fine_tune() -> Recipe {
        Recipe {
            epochs: 15,
            batch_size: 32,
            lr: 1e-4,
            schedule: Schedule::Cosine { warmup_epochs: 0.0, min_lr: 1e-6 },
            augment: AugmentConfig {
                shift: 3,
                rotate_deg: 10.0,
                zoom: 0.1,
                ..AugmentConfig::default()
            },
            early_stop_patience: 4,
            val_fraction: 0.15,
            time_budget_minutes: Some(1.5),
        }
    }

    /// The recipe for a run that starts from `init` (fine-tuning) or from scratch.
    pub fn for_start(init: Option<&str>) -> Recipe {
        if init.is_some() { Recipe::fine_tune() } else { Recipe::scratch() }
    }
}

/// Where a run's faces come from.
#[derive(Debug, Clone)]
enum Faces {
    /// A folder of class subfolders, a FER2013 CSV or an image list (`path,label` CSV).
    Path(PathBuf),
    /// Images and class names (a table's rows): written into the run directory as its image
    /// list ([`TRAIN_LIST`], [`VAL_LIST`]), so the run resumes from its own files.
    Rows(Vec<(PathBuf, String)>),
    /// Faces already in memory (tests, generated sets): such a run resumes with
    /// [`resume_with`].
    Memory(Dataset),
}

/// The image list a run writes for training rows given as a table.
pub const TRAIN_LIST: &str = "train-list.csv";
/// The image list a run writes for validation rows given as a table.
pub const VAL_LIST: &str = "val-list.csv";

/// Every setting of a training run, each with its default; [`build`](Self::build) checks them
/// all. Settings a [`Recipe`] holds take the fine-tuning recipe's values when `init` is set,
/// unless given.
///
/// A fine-tune of the embedded default model on a small generated set, written into a run
/// directory (`best.ferrite`, `model.ferrite`, `metrics.csv`, checkpoints):
///
/// ```
/// # fn main() -> ferrite::Result<()> {
/// use ferrite::Trainer;
/// let dir = ferrite::fsutil::TempDir::new()?;
/// let faces = ferrite::data::synthetic(4, 1); // 4 faces per class
/// let outcome = Trainer::builder()
///     .faces(faces)
///     .init("embedded:default")
///     .epochs(1)
///     .out(dir.path().join("run"))
///     .build()?
///     .fit()?;
/// assert_eq!(outcome.state.history.len(), 1);
/// assert!(outcome.run_dir.join("model.ferrite").exists());
/// # Ok(()) }
/// ```
#[must_use]
#[derive(Debug, Clone, Default)]
pub struct TrainerBuilder {
    data: Option<Faces>,
    val: Option<Faces>,
    out: Option<PathBuf>,
    network: Option<ModelSpec>,
    init: Option<String>,
    epochs: Option<usize>,
    batch_size: Option<usize>,
    lr: Option<f64>,
    schedule: Option<Schedule>,
    augment: Option<AugmentConfig>,
    early_stop_patience: Option<usize>,
    val_fraction: Option<f64>,
    time_budget_minutes: Option<Option<f64>>,
    optimizer: Option<OptimizerConfig>,
    label_smoothing: Option<f32>,
    mix: Option<Mix>,
    class_weight_power: Option<f32>,
    seed: Option<u64>,
    skip_bad: Option<bool>,
    max_per_class: Option<usize>,
    matmul: Option<MatmulPrecision>,
    replicas: Option<usize>,
    keep_checkpoints: Option<usize>,
    ferplus: Option<FerPlusConfig>,
    contrast: Option<crate::data::preprocess::Contrast>,
    teacher: Option<crate::data::teacher::TeacherConfig>,
    opts: TrainOptions,
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty;)*) => {$(
        $(#[$doc])*
        pub fn $name(mut self, value: $ty) -> Self {
            self.$name = Some(value);
            self
        }
    )*};
}

impl TrainerBuilder {
    /// Training data: a folder with one subfolder per class, a FER2013 CSV (its Training
    /// rows) or an image list (a CSV file with `path` and `label` columns).
    pub fn data(mut self, path: impl Into<PathBuf>) -> Self {
        self.data = Some(Faces::Path(path.into()));
        self
    }

    /// Training data as rows of (image, class name), e.g. a table's columns; a class name
    /// that is not one of [`Emotion`]'s is an error naming it and its image. The rows are
    /// written into the run directory as its image list, so the run resumes from its own files.
    pub fn rows<P: Into<PathBuf>, L: Into<String>>(mut self, rows: impl IntoIterator<Item = (P, L)>) -> Self {
        self.data = Some(Faces::Rows(rows.into_iter().map(|(p, l)| (p.into(), l.into())).collect()));
        self
    }

    /// Validation data as rows of (image, class name).
    pub fn val_rows<P: Into<PathBuf>, L: Into<String>>(mut self, rows: impl IntoIterator<Item = (P, L)>) -> Self {
        self.val = Some(Faces::Rows(rows.into_iter().map(|(p, l)| (p.into(), l.into())).collect()));
        self
    }

    /// Training faces already in memory.
    pub fn faces(mut self, faces: Dataset) -> Self {
        self.data = Some(Faces::Memory(faces));
        self
    }

    /// Validation data (a path as [`data`](Self::data) takes); without it, the recipe's
    /// `val_fraction` of the training data is held out.
    pub fn val(mut self, path: impl Into<PathBuf>) -> Self {
        self.val = Some(Faces::Path(path.into()));
        self
    }

    /// Validation faces already in memory.
    pub fn val_faces(mut self, faces: Dataset) -> Self {
        self.val = Some(Faces::Memory(faces));
        self
    }

    /// The run directory to create (config, checkpoints, metrics, best and final model).
    pub fn out(mut self, dir: impl Into<PathBuf>) -> Self {
        self.out = Some(dir.into());
        self
    }

    /// Start from this model's weights (a model file, a run directory or `embedded:NAME`):
    /// fine-tuning, with [`Recipe::fine_tune`] for every recipe setting not given. The network
    /// is the model's own unless [`network`](Self::network) names it.
    pub fn init(mut self, model: impl Into<String>) -> Self {
        self.init = Some(model.into());
        self
    }

    /// The network to train (default: the model `init` names, else the reference network).
    pub fn network(mut self, spec: ModelSpec) -> Self {
        self.network = Some(spec);
        self
    }

    /// Wall-time budget in minutes (`None`: no budget, the epochs decide).
    pub fn time_budget_minutes(mut self, minutes: Option<f64>) -> Self {
        self.time_budget_minutes = Some(minutes);
        self
    }

    setters! {
        /// Epochs at most (the time budget or early stopping may end the run sooner).
        epochs: usize;
        /// Faces per training step.
        batch_size: usize;
        /// The learning rate the schedule starts from.
        lr: f64;
        /// The learning-rate schedule.
        schedule: Schedule;
        /// Training augmentation.
        augment: AugmentConfig;
        /// Epochs without a validation-accuracy gain before stopping (0 = never).
        early_stop_patience: usize;
        /// The share held out for validation when no validation set is given, in [0, 0.9).
        val_fraction: f64;
        /// The optimiser (default Adam without weight decay).
        optimizer: OptimizerConfig;
        /// Label smoothing, in [0, 1).
        label_smoothing: f32;
        /// mixup or CutMix of pairs of faces in a batch.
        mix: Mix;
        /// Class weights in the loss by count^-power, in [0, 2] (0 = off).
        class_weight_power: f32;
        /// The seed of initialisation, shuffling, augmentation and the held-out split.
        seed: u64;
        /// Skip unreadable images and bad rows (counted) instead of failing.
        skip_bad: bool;
        /// At most this many faces per class (quick experiments).
        max_per_class: usize;
        /// Precision of the convolutions' matrix products.
        matmul: MatmulPrecision;
        /// Data-parallel replicas per step, 1-16.
        replicas: usize;
        /// Epoch checkpoints kept (the newest).
        keep_checkpoints: usize;
        /// FER+ vote labels instead of the data's own.
        ferplus: FerPlusConfig;
        /// The contrast step of the face preprocessing (default: the starting model's, else
        /// histogram equalisation).
        contrast: crate::data::preprocess::Contrast;
        /// Distillation from a teacher file.
        teacher: crate::data::teacher::TeacherConfig;
    }

    /// How the run reports and is limited, all at once (progress bar, epoch limit, callbacks).
    pub fn options(mut self, opts: TrainOptions) -> Self {
        self.opts = opts;
        self
    }

    /// Show a live progress bar on the terminal.
    pub fn progress(mut self, on: bool) -> Self {
        self.opts.progress = on;
        self
    }

    /// Stop after this many epochs in this call (a later resume continues).
    pub fn max_epochs_this_call(mut self, n: usize) -> Self {
        self.opts.max_epochs_this_call = Some(n);
        self
    }

    /// Told about each finished epoch, once its model, checkpoint and metrics are written.
    pub fn on_epoch(mut self, callback: EpochCallback) -> Self {
        self.opts.on_epoch = Some(callback);
        self
    }

    /// Told about each training step; returning `false` stops the run at once, keeping the
    /// last finished epoch's checkpoint (a resume repeats the unfinished epoch).
    pub fn on_step(mut self, callback: StepCallback) -> Self {
        self.opts.on_step = Some(callback);
        self
    }

    /// Check every setting and read the starting model's network and contrast: the trainer,
    /// or an error naming the first bad setting.
    pub fn build(self) -> Result<Trainer> {
        let missing = |name: &'static str, expected: &str| Error::Setting { name, value: "nothing".into(), expected: expected.into() };
        let data = self.data.ok_or_else(|| missing("data", "a folder of class folders, a FER2013 CSV, an image list or rows of faces"))?;
        let out = self.out.ok_or_else(|| missing("out", "the run directory to create"))?;
        let start = match &self.init {
            Some(init) => Some(crate::model::source::ModelSource::from(init.as_str()).load(&crate::device::inference_device())?.1),
            None => None,
        };
        let spec = match (self.network, &start) {
            (Some(spec), _) => spec,
            (None, Some(header)) => header.spec.clone(),
            (None, None) => ModelSpec::new(crate::model::Arch::default()),
        };
        let recipe = Recipe::for_start(self.init.as_deref());
        let mut cfg = TrainConfig::new(spec, PathBuf::new());
        cfg.epochs = self.epochs.unwrap_or(recipe.epochs);
        cfg.batch_size = self.batch_size.unwrap_or(recipe.batch_size);
        cfg.lr = self.lr.unwrap_or(recipe.lr);
        cfg.schedule = self.schedule.unwrap_or(recipe.schedule);
        cfg.augment = self.augment.unwrap_or(recipe.augment);
        cfg.early_stop_patience = self.early_stop_patience.unwrap_or(recipe.early_stop_patience);
        cfg.val_fraction = self.val_fraction.unwrap_or(recipe.val_fraction);
        cfg.time_budget_minutes = self.time_budget_minutes.unwrap_or(recipe.time_budget_minutes);
        macro_rules! given {
            ($($name:ident),*) => {$( if let Some(v) = self.$name { cfg.$name = v; } )*};
        }
        given!(optimizer, label_smoothing, mix, class_weight_power, seed, skip_bad, matmul, replicas, keep_checkpoints, contrast);
        cfg.max_per_class = self.max_per_class;
        cfg.ferplus = self.ferplus;
        cfg.teacher = self.teacher;
        cfg.init = self.init;
        if self.contrast.is_none()
            && let Some(header) = &start
        {
            cfg.contrast = header.contrast();
        }
        let data = Faces::checked(data)?;
        let val = self.val.map(Faces::checked).transpose()?;
        if val.as_ref().is_some_and(|v| matches!(v, Faces::Memory(_)) != matches!(data, Faces::Memory(_))) {
            return Err(Error::Setting { name: "val", value: "faces in memory with training data from files, or the other way round".into(), expected: "both in memory, or both from files or rows".into() });
        }
        cfg.train_data = data.path(&out, TRAIN_LIST);
        cfg.val_data = val.as_ref().map(|v| v.path(&out, VAL_LIST));
        cfg.validate()?;
        Ok(Trainer { cfg, out, data, val, opts: self.opts })
    }
}

impl Faces {
    /// The faces with their paths checked and their rows' class names read.
    fn checked(self) -> Result<Faces> {
        match self {
            Faces::Path(p) if !p.exists() => Err(Error::io(p, std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or folder"))),
            Faces::Rows(rows) => {
                if rows.is_empty() {
                    return Err(Error::Setting { name: "data", value: "no rows".into(), expected: "at least one image".into() });
                }
                for (path, label) in &rows {
                    label.trim().parse::<Emotion>().map_err(|message| Error::BadDataset { path: path.clone(), message })?;
                }
                Ok(Faces::Rows(rows))
            }
            other => Ok(other),
        }
    }

    /// The path a run's config records for these faces (rows: the list written in the run).
    fn path(&self, out: &Path, list: &str) -> PathBuf {
        match self {
            Faces::Path(p) => p.clone(),
            Faces::Rows(_) | Faces::Memory(_) => out.join(list),
        }
    }

    /// Write rows as the run's image list (absolute paths, so the run resumes from anywhere).
    fn write_list(&self, file: &Path) -> Result<()> {
        let Faces::Rows(rows) = self else { return Ok(()) };
        let rows: Vec<(PathBuf, Emotion)> = rows
            .iter()
            .map(|(p, l)| Ok((std::path::absolute(p).map_err(|e| Error::io(p, e))?, l.trim().parse::<Emotion>().map_err(|m| Error::BadDataset { path: p.clone(), message: m })?)))
            .collect::<Result<_>>()?;
        write_atomic(file, &crate::data::write_image_list(&rows)?)
    }
}

/// A checked training run, ready to [`fit`](Self::fit).
#[derive(Debug)]
pub struct Trainer {
    cfg: TrainConfig,
    out: PathBuf,
    data: Faces,
    val: Option<Faces>,
    opts: TrainOptions,
}

impl Trainer {
    /// Every training setting, with its default.
    pub fn builder() -> TrainerBuilder {
        TrainerBuilder::default()
    }

    /// The run's settings as checked (saved as the run's `config.json`).
    pub fn config(&self) -> &TrainConfig {
        &self.cfg
    }

    /// Train into the run directory (created; it must not hold a run already).
    pub fn fit(self) -> Result<TrainOutcome> {
        let Trainer { cfg, out, data, val, opts } = self;
        check_fresh(&out)?;
        for (faces, list) in [(Some(&data), TRAIN_LIST), (val.as_ref(), VAL_LIST)] {
            if let Some(faces @ Faces::Rows(_)) = faces {
                std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
                faces.write_list(&out.join(list))?;
            }
        }
        match (data, val) {
            (Faces::Memory(train), Some(Faces::Memory(val))) => train_on(&cfg, &out, &train, &val, opts),
            (Faces::Memory(train), _) => {
                let (train, val) = split(train, cfg.val_fraction, cfg.seed);
                train_on(&cfg, &out, &train, &val, opts)
            }
            _ => train(&cfg, &out, opts),
        }
    }
}
