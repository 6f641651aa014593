//! The `ferrite` command line: a thin layer over the library.

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use ferrite::data::augment::AugmentConfig;
use ferrite::data::{Dataset, LoadOptions};
use ferrite::kernels::{Matmul, MatmulPrecision};
use ferrite::model::infer::Tta;
use ferrite::model::{Arch, ModelSpec};
use ferrite::train::{Mix, OptimizerConfig, RunDir, Schedule, TrainConfig, TrainOptions};
use ferrite::model::{file as modelfile, summary};
use ferrite::{Emotion, device, plot};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(name = "ferrite", version, about = "Facial expression recognition: train, evaluate and run FER2013 CNNs")]
struct Cli {
    /// CPU threads for tensor kernels (default: all cores).
    #[arg(long, global = true)]
    threads: Option<usize>,
    /// Precision of the convolutions' matrix products: f32, or bf16 (bf16 operands, f32 sums;
    /// about twice the multiply rate, CPUs with AVX512_BF16 only). `train` records it in the
    /// run's config, which `--resume` follows.
    #[arg(long, global = true, value_enum)]
    matmul: Option<MatmulArg>,
    #[command(subcommand)]
    command: Command,
}

/// Shape options of the compact architecture (besides `--width`).
#[derive(clap::Args, Debug, Clone, Copy)]
struct ShapeArgs {
    /// Compact: the network sees the centred N x N crop of the 48x48 face (fewer
    /// multiply-adds; with --shift in training it is random-crop augmentation).
    #[arg(long)]
    crop: Option<usize>,
    /// Compact: convolutions in the first, 48-pixel stage (1 or 2, default 2).
    #[arg(long)]
    stem_convs: Option<usize>,
}

#[derive(Subcommand)]
enum Command {
    /// Print a Keras-style layer table of an architecture; optionally write a diagram.
    Summary {
        #[arg(long, value_enum, default_value = "reference")]
        arch: ArchArg,
        /// Channel width (architectures that have one, e.g. compact: first-stage channels).
        #[arg(long)]
        width: Option<usize>,
        #[command(flatten)]
        shape: ShapeArgs,
        /// Write an architecture diagram (.svg or .png).
        #[arg(long)]
        diagram: Option<PathBuf>,
    },
    /// Data set tools.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
    /// Train a network.
    Train(Box<TrainArgs>),
    /// Measure training and inference speed of an architecture (random data).
    Bench {
        #[arg(long, value_enum, default_value = "reference")]
        arch: ArchArg,
        /// Channel width (architectures that have one).
        #[arg(long)]
        width: Option<usize>,
        #[command(flatten)]
        shape: ShapeArgs,
        /// Timed steps (after 5 untimed warm-up steps).
        #[arg(long, default_value_t = 30)]
        steps: usize,
        /// Print one JSON line instead of a table.
        #[arg(long)]
        json: bool,
        /// Instead of speeds, print where a training step's time goes (per layer forward,
        /// backward, optimizer update).
        #[arg(long)]
        profile: bool,
        /// Inference only, with a trained model's weights: a model file or run directory.
        #[arg(long, conflicts_with_all = ["profile", "embedded"])]
        model: Option<PathBuf>,
        /// Inference only, with the model embedded in this binary.
        #[arg(long, conflicts_with = "profile")]
        embedded: bool,
        /// Inference only, with `--arch`'s freshly initialised weights.
        #[arg(long, conflicts_with = "profile")]
        inference_only: bool,
        /// Training steps split over this many data-parallel replicas (as `train --replicas`).
        #[arg(long, default_value_t = 1)]
        replicas: usize,
    },
    /// Evaluate a model on a labelled data set.
    Evaluate(EvaluateArgs),
    /// Write a model file (from a file or run directory) with f32 or f16 weights, e.g. to
    /// replace the embedded default model (`models/default.ferrite`).
    Export {
        /// A model file, training run directory or checkpoint directory. Given two or more
        /// times (or with several values: `--model a b`), the file written is an ensemble of the
        /// models: their class probabilities are averaged.
        #[arg(long, required = true, num_args = 1..)]
        model: Vec<PathBuf>,
        /// The model file to write.
        #[arg(long)]
        out: PathBuf,
        /// ferrite's model file, or ONNX (opset 13, BatchNorm folded, softmax output) for other
        /// runtimes. Default: onnx when --out ends in .onnx, else ferrite.
        #[arg(long, value_enum)]
        format: Option<ExportFormat>,
        /// Weight precision of the ferrite format (ONNX is always f32).
        #[arg(long, value_enum, default_value = "f16")]
        precision: PrecisionArg,
        /// With several --model of one architecture (e.g. a run's last checkpoints, kept with
        /// `train --keep-checkpoints`): write one network whose weights are their mean, instead
        /// of an ensemble. Costs what one model costs.
        #[arg(long)]
        average_weights: bool,
        /// Fold a prior correction into the model written: each class probability divided by
        /// its training frequency (`meta.class_priors`) to this power, then renormalised
        /// (0 = none, 1 = decisions as if trained on balanced classes).
        #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
        prior_correction: f32,
        /// Record the contrast step the model expects (`meta.contrast`), e.g. `raw` for a model
        /// trained before ferrite equalised every face. Default: keep the model's.
        #[arg(long, value_enum)]
        contrast: Option<ContrastArg>,
        /// Record the class frequencies of this training data (image folder or CSV) as the
        /// model's priors (`meta.class_priors`, used by --prior-correction), for a model
        /// trained before ferrite recorded them.
        #[arg(long)]
        class_priors_from: Option<PathBuf>,
    },
    /// Find faces in photos (files or folders) and label each face's expression.
    Detect {
        /// Image files or folders (searched recursively).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Folder for annotated copies and results.json / results.csv. Without it the results
        /// go to standard output.
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "json")]
        format: FormatArg,
        #[command(flatten)]
        face: FaceArgs,
    },
    /// Label faces in a video file, camera (/dev/video0) or stream URL over time.
    Video {
        /// Anything ffmpeg reads: a file, /dev/video0, rtsp://...
        source: String,
        /// Write an annotated copy (same frame rate, audio kept).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Write the per-frame, per-face timeline as CSV.
        #[arg(long)]
        csv: Option<PathBuf>,
        /// Write each person's emotion over time as a PNG.
        #[arg(long)]
        plot: Option<PathBuf>,
        /// Run the face detector on every Nth frame; the tracker carries boxes in between.
        #[arg(long, default_value_t = 3)]
        detect_every: usize,
        /// Smoothing of each face's probabilities over time: the time constant of their moving
        /// average in seconds, 0 (none) to 5.
        #[arg(long, default_value_t = 0.3)]
        smooth_seconds: f32,
        /// Label hysteresis: a face's shown label changes only when another class's smoothed
        /// probability beats it by more than this, 0 (always the top class) to 0.5.
        #[arg(long, default_value_t = 0.15)]
        hysteresis: f32,
        /// Scene-cut detection: a frame whose small grayscale thumbnail differs from the previous
        /// one's by more than this mean absolute difference (0-1) starts a new shot, where tracks
        /// end and the detector runs. 0 = off.
        #[arg(long, default_value_t = 0.1)]
        cut_threshold: f32,
        /// Stop after this many frames (cameras and streams run until stopped otherwise).
        #[arg(long)]
        max_frames: Option<usize>,
        /// Show the annotated frames in a window (needs a display and ffplay).
        #[arg(long)]
        show: bool,
        #[command(flatten)]
        face: FaceArgs,
    },
    /// Start the web app and JSON API (live webcam in the browser, photo upload, MJPEG feed).
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: String,
        /// A server-side video source for /video_feed (file, /dev/video0, rtsp://...).
        #[arg(long)]
        source: Option<String>,
        /// Largest upload in MiB.
        #[arg(long, default_value_t = 10)]
        max_upload_mb: usize,
        /// Most concurrent live-camera sessions.
        #[arg(long, default_value_t = 8)]
        max_sessions: usize,
        /// Most open connections; one more is answered 503 and closed.
        #[arg(long, default_value_t = 1024)]
        max_connections: usize,
        /// Seconds a connection may take to send a request head (idle and stalled connections
        /// are closed after it) and an upload its body (408 after it).
        #[arg(long, default_value_t = 10)]
        timeout_s: u64,
        /// Most concurrent /video_feed viewers (they share one decoder).
        #[arg(long, default_value_t = 16)]
        max_viewers: usize,
        #[command(flatten)]
        face: FaceArgs,
    },
    /// Classify face crops: the seven probabilities for each image.
    Predict {
        /// Face images (any format, size or colour; converted to 48x48 grayscale).
        #[arg(required = true)]
        images: Vec<PathBuf>,
        /// A model file or training run directory. Default: the model embedded in this binary.
        #[arg(long)]
        model: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "none")]
        tta: TtaArg,
        /// Print one JSON object per image instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum DataCommand {
    /// Per-class counts and a PNG grid of sample faces.
    Stats {
        /// Image folder or FER2013 CSV.
        dir: PathBuf,
        #[arg(long)]
        usage: Option<String>,
        #[arg(long)]
        skip_bad: bool,
        /// Where to write the sample grid.
        #[arg(long, default_value = "samples.png")]
        grid: PathBuf,
        /// Faces per class in the grid.
        #[arg(long, default_value_t = 10)]
        per_class: usize,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum MatmulArg {
    F32,
    Bf16,
}

impl From<MatmulArg> for MatmulPrecision {
    fn from(a: MatmulArg) -> MatmulPrecision {
        match a {
            MatmulArg::F32 => MatmulPrecision::F32,
            MatmulArg::Bf16 => MatmulPrecision::Bf16,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum ArchArg {
    Reference,
    Compact,
}

impl From<ArchArg> for Arch {
    fn from(a: ArchArg) -> Arch {
        match a {
            ArchArg::Reference => Arch::Reference,
            ArchArg::Compact => Arch::Compact,
        }
    }
}

/// Options shared by `detect` and `video`.
#[derive(Args, Clone)]
struct FaceArgs {
    /// Expression model file or run directory. Default: the model embedded in this binary.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Smallest face-detector score kept (default: each detector model's own, back 0.7,
    /// full-range 0.6).
    #[arg(long)]
    min_score: Option<f32>,
    /// Margin around each face before cropping, as a fraction of the box size.
    #[arg(long, default_value_t = 0.15)]
    margin: f32,
    /// Label a face `uncertain` when its top probability is below this (0 = never).
    #[arg(long, default_value_t = 0.4)]
    abstain: f32,
    /// Also search an N x N grid of enlarged tiles for small faces (group photos; slower).
    #[arg(long, default_value_t = 1)]
    tiles: u32,
    /// When an image holds no face, search it again padded by this fraction of its size on
    /// each side: finds a face that fills the picture (tight crops). 0 = off.
    #[arg(long, default_value_t = 1.0)]
    pad_retry: f32,
    /// Face detector model(s): BlazeFace "back" (small, distant faces), full-range (large, near,
    /// turned faces) or both, their detections merged.
    #[arg(long, value_enum, default_value_t = ferrite::vision::blazeface::DetectorModel::default())]
    detector: ferrite::vision::blazeface::DetectorModel,
    /// Crop faces as the detector boxes them, without turning them level by their eyes.
    #[arg(long)]
    no_align: bool,
    #[arg(long, value_enum, default_value = "none")]
    tta: TtaArg,
}

impl FaceArgs {
    fn analyzer(&self) -> Result<ferrite::vision::analyzer::Analyzer> {
        use ferrite::vision::analyzer::{Analyzer, AnalyzerConfig};
        use ferrite::vision::blazeface::{BlazeFace, BlazeFaceConfig};
        if !(0.0..=1.0).contains(&self.abstain) || self.min_score.is_some_and(|m| !(0.0..=1.0).contains(&m)) {
            bail!("--abstain and --min-score must be between 0 and 1");
        }
        if !(0.0..=1.0).contains(&self.margin) || !(1..=6).contains(&self.tiles) {
            bail!("--margin must be in [0, 1] and --tiles in 1..=6");
        }
        if !(0.0..=2.0).contains(&self.pad_retry) {
            bail!("--pad-retry must be in [0, 2]");
        }
        let config = AnalyzerConfig {
            margin: self.margin,
            abstain_below: self.abstain,
            detector: BlazeFaceConfig {
                min_score: self.min_score,
                tiles: self.tiles,
                pad_retry: self.pad_retry,
                model: self.detector,
                ..BlazeFaceConfig::default()
            },
            tta: self.tta.into(),
            contrast: ferrite::data::preprocess::Contrast::default(),
            align: !self.no_align,
        };
        let device = device::inference_device();
        // (The analyzer runs the network compiled by tract: the precision of ferrite's kernels
        // does not apply.)
        let (net, header, _) = load_model(self.model.as_deref(), &device, Matmul::F32)?;
        let config = AnalyzerConfig { contrast: header.contrast(), ..config };
        let detector = BlazeFace::new(config.detector.clone()).context("building the face detector")?;
        Analyzer::from_parts(Box::new(detector), &net, config).context("compiling the expression model")
    }
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum FormatArg {
    Json,
    Csv,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ExportFormat {
    Ferrite,
    Onnx,
}

#[derive(Clone, Copy, ValueEnum)]
enum PrecisionArg {
    F32,
    F16,
}

#[derive(Clone, Copy, ValueEnum)]
enum MixArg {
    None,
    Mixup,
    Cutmix,
}

#[derive(Clone, Copy, ValueEnum)]
enum TtaArg {
    None,
    Flip,
    /// The face and its mirror, each centred and shifted 2 px towards the four corners.
    Ten,
    /// Ten's views of the face as is, zoomed out to 0.9 and in to 1.1.
    Thirty,
    /// Thirty's views of the face as is and turned 5 degrees either way.
    Ninety,
}

impl From<TtaArg> for Tta {
    fn from(t: TtaArg) -> Tta {
        match t {
            TtaArg::None => Tta::None,
            TtaArg::Flip => Tta::Flip,
            TtaArg::Ten => Tta::Ten,
            TtaArg::Thirty => Tta::Thirty,
            TtaArg::Ninety => Tta::Ninety,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum OptArg {
    Adam,
    Sgd,
}

#[derive(Clone, Copy, ValueEnum)]
enum ScheduleArg {
    Plateau,
    Cosine,
    Constant,
}

#[derive(Args)]
struct EvaluateArgs {
    /// A model file, or a training run directory (uses its final or best model).
    /// Default: the model embedded in this binary.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Image folder (one subfolder per class) or FER2013 CSV.
    #[arg(long)]
    data: PathBuf,
    /// For CSV data: the Usage rows to use (Training, PublicTest, PrivateTest).
    #[arg(long)]
    usage: Option<String>,
    /// Skip unreadable images and bad CSV rows (they are counted).
    #[arg(long)]
    skip_bad: bool,
    /// Folder for evaluate.json and confusion.png.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Test-time augmentation: average over the face and its mirror image (flip), ten
    /// shifted and mirrored views (ten), those of the face zoomed to 0.9 and 1.1 too
    /// (thirty), or of those also turned 5 degrees either way (ninety).
    #[arg(long, value_enum, default_value = "none")]
    tta: TtaArg,
    /// Score against FER+'s ten-person majority instead of the data's own labels (faces
    /// with a tie, or a majority of contempt, unknown or not-a-face, are left out).
    #[arg(long)]
    ferplus: bool,
    /// FER+ vote file for --data (default: ferplus/NAME.csv beside the folder,
    /// fer2013new.csv beside the CSV, or a FER+ folder's label.csv).
    #[arg(long, requires = "ferplus")]
    votes: Option<PathBuf>,
    /// Prior correction on top of the model's own: divide each probability by the class's
    /// training frequency to this power (0 = none, 1 = as if trained balanced).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    prior_correction: f32,
    /// --data is a folder of labelled photos (one subfolder per class): run the whole
    /// pipeline (face detector, crop, model) and score each photo's largest face; photos
    /// where no face is found count as wrong and are listed.
    #[arg(long, conflicts_with_all = ["ferplus", "usage"])]
    detect: bool,
    /// The faces' contrast step: equalize (histogram equalisation) or raw (pixels as they are).
    /// Default: the step the model was trained with (its header's `contrast`).
    #[arg(long, value_enum)]
    contrast: Option<ContrastArg>,
    /// With --detect: the detector's padded retry for images without a face (see `detect`).
    #[arg(long, default_value_t = 1.0, requires = "detect")]
    pad_retry: f32,
    /// With --detect: margin around each face before cropping, a fraction of the box size.
    #[arg(long, default_value_t = 0.15, requires = "detect")]
    margin: f32,
    /// With --detect: crop faces without turning them level by their eyes.
    #[arg(long, requires = "detect")]
    no_align: bool,
    /// With --detect: the face detector model(s) (see `detect`).
    #[arg(long, value_enum, default_value_t = ferrite::vision::blazeface::DetectorModel::default(), requires = "detect")]
    detector: ferrite::vision::blazeface::DetectorModel,
}

#[derive(Args)]
struct TrainArgs {
    /// Training data: image folder or FER2013 CSV (its Training rows).
    #[arg(long, required_unless_present = "resume")]
    data: Option<PathBuf>,
    /// Validation data: image folder or FER2013 CSV (its PublicTest rows). Default: 10% of --data.
    #[arg(long)]
    val: Option<PathBuf>,
    /// Run directory to create (config, checkpoints, metrics, plots, model).
    #[arg(long, required_unless_present = "resume")]
    out: Option<PathBuf>,
    /// Continue the run in this directory from its last completed epoch.
    #[arg(long, conflicts_with_all = ["data", "out"])]
    resume: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "reference")]
    arch: ArchArg,
    #[arg(long, default_value_t = 20)]
    epochs: usize,
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    #[arg(long, default_value_t = 5e-4)]
    lr: f64,
    #[arg(long, value_enum, default_value = "adam")]
    optimizer: OptArg,
    /// SGD momentum (Nesterov).
    #[arg(long, default_value_t = 0.9)]
    momentum: f64,
    #[arg(long, default_value_t = 0.0)]
    weight_decay: f64,
    #[arg(long, value_enum, default_value = "plateau")]
    schedule: ScheduleArg,
    /// ReduceLROnPlateau factor / patience / minimum LR (also the cosine floor).
    #[arg(long, default_value_t = 0.1)]
    plateau_factor: f64,
    #[arg(long, default_value_t = 2)]
    plateau_patience: usize,
    #[arg(long, default_value_t = 1e-5)]
    min_lr: f64,
    /// Cosine schedule warm-up in epochs.
    #[arg(long, default_value_t = 0.0)]
    warmup: f64,
    #[arg(long, default_value_t = 0.0)]
    label_smoothing: f32,
    /// Stop after this many epochs without a validation-accuracy gain (0 = off).
    #[arg(long, default_value_t = 0)]
    early_stop: usize,
    #[arg(long, default_value_t = 0.25)]
    dropout: f64,
    /// Channel width (architectures that have one, e.g. compact: first-stage channels, default 32).
    #[arg(long)]
    width: Option<usize>,
    #[command(flatten)]
    shape: ShapeArgs,
    /// Augmentation: disable the horizontal flip.
    #[arg(long)]
    no_flip: bool,
    /// Augmentation: random shift in pixels (0 = off).
    #[arg(long, default_value_t = 0)]
    shift: u32,
    /// Augmentation: random rotation in degrees (0 = off).
    #[arg(long, default_value_t = 0.0)]
    rotate: f32,
    /// Augmentation: random zoom, a fraction (0.1 = scale by 0.9-1.1; 0 = off).
    #[arg(long, default_value_t = 0.0)]
    zoom: f32,
    /// Augmentation: random-erasing probability (0 = off).
    #[arg(long, default_value_t = 0.0)]
    erase: f32,
    /// Mix pairs of faces in a batch: mixup or cutmix.
    #[arg(long, value_enum, default_value = "none")]
    mix: MixArg,
    /// Beta(alpha, alpha) parameter of --mix.
    #[arg(long, default_value_t = 0.2)]
    mix_alpha: f32,
    /// Weight classes in the loss by count^-power (0 = off, 0.5 = inverse square root).
    #[arg(long, default_value_t = 0.0)]
    class_weight_power: f32,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Skip unreadable images and bad CSV rows (they are counted).
    #[arg(long)]
    skip_bad: bool,
    /// Use at most this many images per class (quick experiments).
    #[arg(long)]
    max_per_class: Option<usize>,
    /// Stop after this many epochs in this invocation; `--resume` continues.
    #[arg(long)]
    max_epochs_now: Option<usize>,
    /// Wall-time budget in minutes: no epoch starts that would end past it, and the cosine
    /// schedule anneals over the epochs that fit (judged by the median of the last five epochs).
    #[arg(long)]
    time_budget: Option<f64>,
    /// Split each batch into this many data-parallel replicas, each forward and backward on its
    /// own thread, gradients summed: keeps all cores busy between the parallel kernels. BatchNorm
    /// then normalises each part by its own statistics.
    #[arg(long, default_value_t = 1)]
    replicas: usize,
    /// Keep the checkpoints of the newest N epochs (default: the last only), e.g. to average the
    /// last epochs' weights afterwards with `export --average-weights`.
    #[arg(long, default_value_t = 1)]
    keep_checkpoints: usize,
    /// Train on FER+'s ten-person votes instead of the data's own labels, in this mode:
    /// majority, probability (a label drawn from the votes each time), crossentropy (the vote
    /// distribution as a soft target) or multi-target (the FER+ paper's four modes).
    #[arg(long, value_enum)]
    ferplus: Option<LabelModeArg>,
    /// FER+ votes for --data (default: ferplus/NAME.csv beside the folder, fer2013new.csv beside
    /// the CSV, or a FER+ folder's label.csv).
    #[arg(long, requires = "ferplus")]
    train_votes: Option<PathBuf>,
    /// FER+ votes for --val (default as for --train-votes).
    #[arg(long, requires = "ferplus")]
    val_votes: Option<PathBuf>,
}

/// The contrast step of face preprocessing (`ferrite::data::preprocess::Contrast`).
#[derive(Clone, Copy, Debug, ValueEnum)]
enum ContrastArg {
    Equalize,
    Raw,
}

impl From<ContrastArg> for ferrite::data::preprocess::Contrast {
    fn from(c: ContrastArg) -> Self {
        match c {
            ContrastArg::Equalize => ferrite::data::preprocess::Contrast::Equalize,
            ContrastArg::Raw => ferrite::data::preprocess::Contrast::Raw,
        }
    }
}

/// FER+ label modes (see `ferrite::data::ferplus::LabelMode`).
#[derive(Clone, Copy, Debug, ValueEnum)]
enum LabelModeArg {
    Majority,
    Probability,
    Crossentropy,
    MultiTarget,
}

impl From<LabelModeArg> for ferrite::data::ferplus::LabelMode {
    fn from(m: LabelModeArg) -> Self {
        use ferrite::data::ferplus::LabelMode as L;
        match m {
            LabelModeArg::Majority => L::Majority,
            LabelModeArg::Probability => L::Probability,
            LabelModeArg::Crossentropy => L::Crossentropy,
            LabelModeArg::MultiTarget => L::MultiTarget,
        }
    }
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_target(false)
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let cli = Cli::parse();
    device::tune_allocator();
    device::set_threads(cli.threads);
    let matmul = Matmul::new(cli.matmul.map_or(MatmulPrecision::F32, MatmulPrecision::from)).context("--matmul")?;
    match cli.command {
        Command::Summary { arch, width, shape, diagram } => {
            let spec = spec_for(arch, width, shape, None)?;
            let s = summary::summarize(&spec, &device::inference_device());
            print!("{}", s.to_text());
            if let Some(path) = diagram {
                s.write_diagram(&path)
                    .with_context(|| format!("writing diagram {}", path.display()))?;
                println!("diagram written to {}", path.display());
            }
        }
        Command::Data {
            command:
                DataCommand::Stats {
                    dir,
                    usage,
                    skip_bad,
                    grid,
                    per_class,
                },
        } => {
            let ds = Dataset::load(
                &dir,
                &LoadOptions {
                    skip_bad,
                    usage,
                    ..Default::default()
                },
            )
            .with_context(|| format!("loading {}", dir.display()))?;
            let counts = ds.class_counts();
            println!("{:<10} {:>8} {:>7}", "class", "images", "share");
            for e in Emotion::ALL {
                println!(
                    "{:<10} {:>8} {:>6.2}%",
                    e.name(),
                    counts[e.index()],
                    100.0 * counts[e.index()] as f64 / ds.len() as f64
                );
            }
            println!("{:<10} {:>8}", "total", ds.len());
            if !ds.skipped.is_empty() {
                println!("skipped {} unreadable inputs:", ds.skipped.len());
                for (src, why) in ds.skipped.iter().take(10) {
                    println!("  {src}: {why}");
                }
            }
            plot::sample_grid(&ds, per_class, &grid)
                .with_context(|| format!("writing {}", grid.display()))?;
            println!("sample grid written to {}", grid.display());
        }
        Command::Train(args) => train(*args, cli.matmul.map(MatmulPrecision::from))?,
        Command::Bench { arch, width, shape, steps, json, model, embedded, inference_only, .. }
            if embedded || model.is_some() || inference_only =>
        {
            let device = device::inference_device();
            let (net, header, name) = if inference_only && !embedded && model.is_none() {
                let spec = spec_for(arch, width, shape, None)?;
                let net = ferrite::model::Network::new(&spec, &device);
                (net, modelfile::ModelHeader::new(spec, serde_json::Value::Null), "random weights".to_string())
            } else {
                load_model(model.as_deref(), &device, matmul)?
            };
            let net = net.with_matmul(matmul);
            let (infer64, infer1) = ferrite::bench::measure_inference(&net, steps.max(1), 5);
            let (fast64, fast1) =
                ferrite::bench::measure_fast(&net, steps.max(1), 5).context("timing the compiled (tract) model")?;
            let threads = rayon::current_num_threads();
            if json {
                println!(
                    "{}",
                    serde_json::json!({"model": name, "arch": header.spec.arch, "threads": threads,
                        "matmul": matmul.precision(),
                        "infer64_img_s": infer64, "infer1_ms": infer1,
                        "fast64_img_s": fast64, "fast1_ms": fast1})
                );
            } else {
                println!("{name} ({}) on {threads} threads, {} matmul:", header.spec.arch, matmul.precision());
                println!("  burn flex         {infer64:8.1} img/s (batch 64)");
                println!("  burn flex         {infer1:8.2} ms per face (batch 1, median)");
                println!("  compiled (tract)  {fast64:8.1} img/s (64 faces, one run each)");
                println!("  compiled (tract)  {fast1:8.2} ms per face (median)");
            }
        }
        Command::Bench { arch, width, shape, steps, json, profile: true, .. } => {
            let p = ferrite::bench::profile_step(&spec_for(arch, width, shape, None)?, steps.max(1), 3, matmul);
            if json {
                println!("{}", serde_json::to_string(&p)?);
            } else {
                println!("{:<36} {:>9} {:>7}", "stage (batch 64)", "ms", "share");
                for (name, ms) in &p.stages {
                    println!("{name:<36} {ms:>9.1} {:>6.1}%", 100.0 * ms / p.total_ms);
                }
                println!("{:<36} {:>9.1}", "total", p.total_ms);
            }
        }
        Command::Bench { arch, width, shape, steps, json, profile: false, replicas, .. } => {
            if !(1..=16).contains(&replicas) {
                bail!("--replicas must be in 1..=16 (as for train), not {replicas}");
            }
            let r = ferrite::bench::measure(&spec_for(arch, width, shape, None)?, steps.max(1), 5, replicas, matmul);
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!("{} {} on {} threads, {} matmul:", r.framework, r.arch, r.threads, r.matmul);
                println!("  training          {:8.1} img/s (batch 64)", r.train_img_s);
                println!("  inference         {:8.1} img/s (batch 64)", r.infer64_img_s);
                println!("  inference         {:8.2} ms per face (batch 1, median)", r.infer1_ms);
            }
        }
        Command::Evaluate(args) => evaluate(args, matmul)?,
        Command::Export { model, out, format, precision, average_weights, prior_correction, contrast, class_priors_from } => {
            let device = device::inference_device();
            let mut parts = Vec::with_capacity(model.len());
            for m in &model {
                parts.push(load_model(Some(m), &device, Matmul::F32)?);
            }
            let (net, header, name) = if average_weights {
                let count = parts.len();
                let (net, header) = modelfile::average(parts.into_iter().map(|(n, h, _)| (n, h)).collect())
                    .context("averaging the models' weights")?;
                (burn::module::Module::valid(&net), header, format!("the mean weights of {count} models"))
            } else if parts.len() == 1 {
                parts.remove(0)
            } else {
                let names: Vec<String> = parts.iter().map(|p| p.2.clone()).collect();
                let (net, header) = modelfile::ensemble(parts.into_iter().map(|(n, h, _)| (n, h)).collect())
                    .context("building the ensemble")?;
                (net, header, format!("an ensemble of {}", names.join(", ")))
            };
            let mut header = header;
            if let Some(data) = &class_priors_from {
                let opts = LoadOptions { usage: data.is_file().then(|| "Training".to_string()), ..Default::default() };
                let ds = Dataset::load(data, &opts).with_context(|| format!("loading {}", data.display()))?;
                if let Some(m) = header.meta.as_object_mut() {
                    m.insert("class_priors".into(), serde_json::json!(ds.class_priors()));
                } else {
                    header.meta = serde_json::json!({ "class_priors": ds.class_priors() });
                }
            }
            let (net, mut header) = ferrite::model::infer::correct_priors(net, header, prior_correction)?;
            if let Some(c) = contrast {
                header.set_contrast(c.into());
            }
            let onnx_ext = out.extension().is_some_and(|e| e.eq_ignore_ascii_case("onnx"));
            if format.unwrap_or(if onnx_ext { ExportFormat::Onnx } else { ExportFormat::Ferrite }) == ExportFormat::Onnx {
                let bytes = ferrite::model::onnx::to_bytes(&net).context("converting the model to ONNX")?;
                ferrite::fsutil::write_atomic(&out, &bytes).with_context(|| format!("writing {}", out.display()))?;
                println!("wrote {} (ONNX opset {}, f32, {} bytes) from {name}", out.display(), ferrite::model::onnx::OPSET, bytes.len());
                return Ok(());
            }
            let precision = match precision {
                PrecisionArg::F32 => modelfile::Precision::F32,
                PrecisionArg::F16 => modelfile::Precision::F16,
            };
            modelfile::save_with(&out, &net, &header, precision)
                .with_context(|| format!("writing {}", out.display()))?;
            let size = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
            println!("wrote {} ({precision:?}, {size} bytes) from {name}", out.display());
        }
        Command::Detect { paths, out, format, face } => detect(&paths, out.as_deref(), format, &face)?,
        Command::Video {
            source,
            out,
            csv,
            plot,
            detect_every,
            smooth_seconds,
            hysteresis,
            cut_threshold,
            max_frames,
            show,
            face,
        } => {
            let opts = ferrite::vision::analyzer::VideoOptions {
                detect_every,
                tracker: ferrite::vision::track::TrackerConfig { smooth_seconds, hysteresis, ..Default::default() },
                cut_threshold,
            };
            video(&source, out.as_deref(), csv.as_deref(), plot.as_deref(), opts, max_frames, show, &face)?
        }
        Command::Serve { addr, source, max_upload_mb, max_sessions, max_connections, timeout_s, max_viewers, face } => {
            let analyzer = face.analyzer()?;
            let model_name = match &face.model {
                Some(p) => p.display().to_string(),
                None => ferrite::model::embedded::DEFAULT_MODEL_NAME.to_string(),
            };
            let limits = ferrite::server::Limits {
                max_upload_bytes: max_upload_mb.max(1) * 1024 * 1024,
                max_sessions: max_sessions.max(1),
                max_viewers: max_viewers.max(1),
                body_timeout: std::time::Duration::from_secs(timeout_s.max(1)),
                ..Default::default()
            };
            let serve_opts = ferrite::server::ServeOptions {
                header_timeout: std::time::Duration::from_secs(timeout_s.max(1)),
                max_connections: max_connections.max(1),
                ..Default::default()
            };
            let state = ferrite::server::AppState::new(analyzer, model_name, limits, source);
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(&addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr}"))?;
                let local = listener.local_addr()?;
                println!("ferrite is serving on http://{local}/ (Ctrl-C or SIGTERM stops)");
                let app = ferrite::server::app(state);
                ferrite::server::serve(listener, app, serve_opts, ferrite::server::shutdown_signal()).await.context("server failed")
            })?;
        }
        Command::Predict { images, model, tta, json } => predict(&images, model.as_deref(), tta.into(), json)?,
    }
    Ok(())
}

/// A model spec from the command line, checked.
fn spec_for(arch: ArchArg, width: Option<usize>, shape: ShapeArgs, dropout: Option<f64>) -> Result<ModelSpec> {
    let mut spec = ModelSpec::new(arch.into());
    if width.is_some() {
        spec.width = width;
    }
    spec.crop = shape.crop;
    spec.stem_convs = shape.stem_convs;
    if let Some(d) = dropout {
        spec.dropout = d;
    }
    spec.validate()?;
    Ok(spec)
}

/// Load `--model` (a file or a run directory), or the embedded default model.
/// Returns the network in inference mode, its header and a name for reports.
fn load_model(model: Option<&Path>, device: &burn::tensor::Device, matmul: Matmul) -> Result<(ferrite::model::Network, modelfile::ModelHeader, String)> {
    // No --model, or `embedded:NAME`: a model compiled into the binary.
    let embedded = model.and_then(|m| m.to_str()).and_then(|s| s.strip_prefix("embedded:"));
    match model.filter(|_| embedded.is_none()) {
        None => {
            let name = embedded.unwrap_or("default");
            let (net, header) = ferrite::model::embedded::named(name, device).with_context(|| format!("loading the embedded model '{name}'"))?;
            Ok((net.with_matmul(matmul), header, format!("<embedded {name} model>")))
        }
        Some(model) => {
            let path = if model.is_dir() {
                RunDir(model.to_path_buf()).model_for_inference()
            } else {
                model.to_path_buf()
            };
            let (net, header) =
                modelfile::load(&path, device).with_context(|| format!("loading model {}", path.display()))?;
            Ok((burn::module::Module::valid(&net).with_matmul(matmul), header, path.display().to_string()))
        }
    }
}

fn predict(images: &[PathBuf], model: Option<&Path>, tta: Tta, json: bool) -> Result<()> {
    let device = device::inference_device();
    // (Classified by the tract-compiled network: the kernels' precision does not apply.)
    let (net, header, _name) = load_model(model, &device, Matmul::F32)?;
    let mut faces = Vec::with_capacity(images.len() * ferrite::data::preprocess::FACE_PIXELS);
    for path in images {
        faces.extend(ferrite::data::read_face(path, header.contrast()).with_context(|| format!("reading {}", path.display()))?);
    }
    let fast = ferrite::model::onnx::FastModel::new(&net).context("compiling the expression model")?;
    let probs = fast.probs_tta(&faces, tta).context("classifying the faces")?;
    if !json {
        print!("{:<28} {:<9}", "image", "label");
        for e in Emotion::ALL {
            print!(" {:>8}", e.name());
        }
        println!();
    }
    for (path, p) in images.iter().zip(&probs) {
        let top = Emotion::ALL[ferrite::emotion::argmax(p)];
        if json {
            let map: serde_json::Map<String, serde_json::Value> =
                Emotion::ALL.iter().map(|e| (e.name().to_string(), serde_json::json!(p[e.index()]))).collect();
            println!(
                "{}",
                serde_json::json!({"image": path.display().to_string(), "label": top.name(), "probabilities": map})
            );
        } else {
            print!("{:<28} {:<9}", path.display().to_string(), top.name());
            for v in p {
                print!(" {v:>8.4}");
            }
            println!();
        }
    }
    Ok(())
}

fn train(a: TrainArgs, matmul: Option<MatmulPrecision>) -> Result<()> {
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
        let spec = spec_for(a.arch, a.width, a.shape, Some(a.dropout))?;
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
            mode: m.into(),
            train_votes: a.train_votes.clone(),
            val_votes: a.val_votes.clone(),
        });
        ferrite::train::train(&cfg, &out, opts).with_context(|| format!("training into {}", out.display()))?
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

fn evaluate(args: EvaluateArgs, matmul: Matmul) -> Result<()> {
    let EvaluateArgs { model, data, usage, skip_bad, out, tta, ferplus, votes, prior_correction, detect, contrast, pad_retry, margin, no_align, detector } = args;
    let (model, data, out, tta) = (model.as_deref(), data.as_path(), out.as_deref(), Tta::from(tta));
    let device = device::inference_device();
    let (net, header, model_name) = load_model(model, &device, matmul)?;
    let contrast = contrast.map_or(header.contrast(), Into::into);
    let opts = LoadOptions { skip_bad, usage, max_per_class: None, contrast };
    let ferplus = ferplus.then_some(votes);
    let (net, header) = ferrite::model::infer::correct_priors(net, header, prior_correction)?;
    if detect {
        use ferrite::vision::analyzer::{Analyzer, AnalyzerConfig};
        if !(0.0..=1.0).contains(&margin) || !(0.0..=2.0).contains(&pad_retry) {
            bail!("--margin must be in [0, 1] and --pad-retry in [0, 2]");
        }
        let mut config = AnalyzerConfig { tta, contrast: opts.contrast, margin, align: !no_align, ..AnalyzerConfig::default() };
        config.detector.pad_retry = pad_retry;
        config.detector.model = detector;
        let detector = ferrite::vision::blazeface::BlazeFace::new(config.detector.clone()).context("building the face detector")?;
        let analyzer = Analyzer::from_parts(Box::new(detector), &net, config).context("compiling the expression model")?;
        let report = ferrite::eval::photos::evaluate_photos(&analyzer, data).with_context(|| format!("evaluating {}", data.display()))?;
        println!(
            "model {model_name} ({}), full pipeline (detector, largest face), test-time augmentation: {tta:?}, prior correction {}",
            header.spec.arch,
            header.meta.get("prior_correction").and_then(|v| v.as_f64()).unwrap_or(0.0)
        );
        print!("{}", report.to_text());
        if let Some(dir) = out {
            let json = serde_json::to_vec_pretty(&serde_json::json!({
                "model": model_name,
                "data": data.display().to_string(),
                "tta": tta,
                "model_meta": header.meta,
                "photos": report,
            }))?;
            ferrite::fsutil::write_atomic(&dir.join("evaluate.json"), &json)?;
            let title = format!("{} on {} photos (largest face; {:.2}% right)", header.spec.arch, data.display(), 100.0 * report.accuracy);
            plot::confusion(&report.found, &title, &dir.join("confusion.png"))?;
            println!("wrote {}/evaluate.json and confusion.png", dir.display());
        }
        return Ok(());
    }
    let ds = match &ferplus {
        None => Dataset::load(data, &opts),
        Some(votes) => ferrite::train::load_ferplus(data, &opts, ferrite::data::ferplus::LabelMode::Majority, votes.as_deref()),
    }
    .with_context(|| format!("loading {}", data.display()))?;
    let report = ferrite::eval::evaluate_tta(&net, &ds, &device, tta);
    println!(
        "model {model_name} ({}), labels: {}, contrast {:?}, test-time augmentation: {tta:?}, prior correction {}",
        header.spec.arch,
        if ferplus.is_some() { "FER+ majority" } else { "the data's own" },
        opts.contrast,
        header.meta.get("prior_correction").and_then(|v| v.as_f64()).unwrap_or(0.0)
    );
    print!("{}", report.to_text());
    if !ds.skipped.is_empty() {
        println!("skipped {} unreadable inputs", ds.skipped.len());
    }
    if let Some(dir) = out {
        let json = serde_json::to_vec_pretty(&serde_json::json!({
            "model": model_name,
            "arch": header.spec.arch,
            "data": data.display().to_string(),
            "skipped": ds.skipped.len(),
            "tta": tta,
            "labels": if ferplus.is_some() { "ferplus-majority" } else { "own" },
            "model_meta": header.meta,
            "report": report,
        }))?;
        ferrite::fsutil::write_atomic(&dir.join("evaluate.json"), &json)?;
        let title = format!(
            "{} on {} (accuracy {:.2}%, TTA {tta:?})",
            header.spec.arch,
            data.display(),
            100.0 * report.accuracy
        );
        plot::confusion(&report, &title, &dir.join("confusion.png"))?;
        println!("wrote {}/evaluate.json and confusion.png", dir.display());
    }
    Ok(())
}

const IMAGE_EXTENSIONS: [&str; 7] = ["jpg", "jpeg", "png", "bmp", "tif", "tiff", "gif"];

/// Image files named on the command line: files as given, folders searched recursively.
fn collect_images(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("reading folder {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out)?;
            } else if p
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
            {
                out.push(p);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let before = out.len();
            walk(p, &mut out)?;
            if out.len() == before {
                bail!("{}: no images in this folder", p.display());
            }
        } else if p.exists() {
            out.push(p.clone());
        } else {
            bail!("{}: no such file or folder", p.display());
        }
    }
    Ok(out)
}

const CSV_PROBS: &str = "angry,disgust,fear,happy,neutral,sad,surprise";

fn face_csv_fields(f: &ferrite::vision::analyzer::Face) -> String {
    let probs: Vec<String> = f.probs.iter().map(|p| format!("{p:.4}")).collect();
    format!(
        "{:.0},{:.0},{:.0},{:.0},{:.4},{},{}",
        f.bbox.x,
        f.bbox.y,
        f.bbox.w,
        f.bbox.h,
        f.score,
        f.label_name(),
        probs.join(",")
    )
}

fn csv_quote(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn detect(paths: &[PathBuf], out: Option<&Path>, format: FormatArg, face: &FaceArgs) -> Result<()> {
    use rayon::prelude::*;
    debug_assert_eq!(CSV_PROBS.split(',').count(), Emotion::COUNT);
    let images = collect_images(paths)?;
    let analyzer = face.analyzer()?;
    if let Some(dir) = out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let bar = if images.len() > 1 && std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(images.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    // Annotated copies keep the file name (folders flattened: a/x.jpg -> a_x.jpg when needed).
    let names: Vec<String> = images
        .iter()
        .map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default())
        .collect();
    let mut name_counts: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for n in &names {
        *name_counts.entry(n.as_str()).or_default() += 1;
    }
    let results: Vec<Result<Vec<ferrite::vision::analyzer::Face>, String>> = images
        .par_iter()
        .enumerate()
        .map(|(i, path)| {
            let r = (|| -> Result<Vec<ferrite::vision::analyzer::Face>> {
                let img = ferrite::data::decode_image(path)?;
                let faces = analyzer.analyze(&img).with_context(|| format!("{}: detection failed", path.display()))?;
                if let Some(dir) = out {
                    let mut rgb = img.to_rgb8();
                    analyzer.draw(&mut rgb, &faces);
                    let unique = name_counts[names[i].as_str()] == 1;
                    let stem = Path::new(&names[i]).file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                    let name = if unique { format!("{stem}.jpg") } else { format!("{stem}_{i}.jpg") };
                    let target = dir.join(name);
                    ferrite::fsutil::write_atomic_with(&target, |tmp| {
                        rgb.save_with_format(tmp, image::ImageFormat::Jpeg)
                            .map_err(|e| ferrite::Error::Plot(format!("{}: {e}", target.display())))
                    })?;
                }
                Ok(faces)
            })();
            bar.inc(1);
            r.map_err(|e| format!("{e:#}"))
        })
        .collect();
    bar.finish_and_clear();
    let mut failed = 0;
    let mut json_rows = Vec::new();
    let mut csv = format!("image,face,x,y,w,h,score,label,{CSV_PROBS}\n");
    for (path, r) in images.iter().zip(&results) {
        match r {
            Ok(faces) => {
                let labels: Vec<String> = faces.iter().map(|f| f.caption()).collect();
                let line = format!("{}: {} face(s){}{}", path.display(), faces.len(), if faces.is_empty() { "" } else { ": " }, labels.join(", "));
                if out.is_some() { println!("{line}") } else { eprintln!("{line}") }
                json_rows.push(serde_json::json!({
                    "image": path.display().to_string(),
                    "faces": faces.iter().map(|f| f.to_json()).collect::<Vec<_>>(),
                }));
                for (k, f) in faces.iter().enumerate() {
                    csv.push_str(&format!("{},{k},{}\n", csv_quote(&path.display().to_string()), face_csv_fields(f)));
                }
            }
            Err(e) => {
                failed += 1;
                eprintln!("error: {e}");
            }
        }
    }
    let text = match format {
        FormatArg::Json => serde_json::to_string_pretty(&json_rows)? + "\n",
        FormatArg::Csv => csv,
    };
    match out {
        Some(dir) => {
            let name = if format == FormatArg::Json { "results.json" } else { "results.csv" };
            ferrite::fsutil::write_atomic(&dir.join(name), text.as_bytes())?;
            println!("wrote {} annotated image(s) and {name} to {}", images.len() - failed, dir.display());
        }
        None => print!("{text}"),
    }
    if failed > 0 {
        bail!("{failed} of {} image(s) could not be processed", images.len());
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn video(
    source: &str,
    out: Option<&Path>,
    csv: Option<&Path>,
    plot_path: Option<&Path>,
    mut opts: ferrite::vision::analyzer::VideoOptions,
    max_frames: Option<usize>,
    show: bool,
    face: &FaceArgs,
) -> Result<()> {
    use ferrite::vision::analyzer::VideoAnalyzer;
    use ferrite::vision::video::{FrameReader, FrameWriter, probe};
    use std::io::Write;
    if !(0.0..=5.0).contains(&opts.tracker.smooth_seconds) {
        bail!("--smooth-seconds must be between 0 and 5");
    }
    if !(0.0..=0.5).contains(&opts.tracker.hysteresis) {
        bail!("--hysteresis must be between 0 and 0.5");
    }
    if !(0.0..=1.0).contains(&opts.cut_threshold) {
        bail!("--cut-threshold must be between 0 and 1");
    }
    if opts.detect_every == 0 {
        bail!("--detect-every must be at least 1");
    }
    let info = probe(source)?;
    let analyzer = face.analyzer()?;
    let mut reader = FrameReader::open(source, &info)?;
    let audio = info.has_audio.then_some(source);
    let mut writer = match out {
        Some(p) => Some(FrameWriter::create(p, info.width, info.height, info.fps, audio)?),
        None => None,
    };
    let mut csv_file = match csv {
        Some(p) => {
            let mut f = std::io::BufWriter::new(std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?);
            writeln!(f, "frame,time_s,track,detected,x,y,w,h,score,label,{CSV_PROBS}")?;
            Some((p, f))
        }
        None => None,
    };
    let mut viewer = if show {
        if std::env::var_os("DISPLAY").is_none() && std::env::var_os("WAYLAND_DISPLAY").is_none() {
            eprintln!("warning: --show needs a display (DISPLAY is not set); continuing without a window");
            None
        } else {
            std::process::Command::new("ffplay")
                .args(["-loglevel", "error", "-f", "rawvideo", "-pixel_format", "rgb24", "-video_size"])
                .arg(format!("{}x{}", info.width, info.height))
                .arg("-framerate")
                .arg(format!("{}", info.fps))
                .args(["-window_title", "ferrite", "-i", "-"])
                .stdin(std::process::Stdio::piped())
                .spawn()
                .map_err(|e| eprintln!("warning: cannot open a window (ffplay: {e})"))
                .ok()
        }
    } else {
        None
    };
    // A track survives a second without its face (and at least one detection interval).
    opts.tracker.max_missed = (info.fps.round() as usize).max(opts.detect_every + 1);
    let detect_every = opts.detect_every;
    let mut va = VideoAnalyzer::new(&analyzer, info.fps, opts);
    let mut timeline: Vec<ferrite::plot::TimelinePoint> = Vec::new();
    let started = std::time::Instant::now();
    let mut frames = 0usize;
    let interactive = std::io::stderr().is_terminal();
    let (mut decode_s, mut draw_s, mut encode_s) = (0.0f64, 0.0f64, 0.0f64);
    let outcome: Result<()> = (|| {
        while max_frames.is_none_or(|m| frames < m) {
            let t = std::time::Instant::now();
            let Some(mut frame) = reader.next_frame()? else { break };
            decode_s += t.elapsed().as_secs_f64();
            let r = va.process(&frame)?;
            frames += 1;
            if let Some((_, f)) = csv_file.as_mut() {
                for t in &r.faces {
                    writeln!(f, "{},{:.3},{},{},{}", r.index, r.time_s, t.id, r.detected as u8, face_csv_fields(&t.face))?;
                }
                f.flush()?;
            }
            for t in &r.faces {
                timeline.push(ferrite::plot::TimelinePoint { time_s: r.time_s, track: t.id, probs: t.face.probs });
            }
            let t = std::time::Instant::now();
            if writer.is_some() || viewer.is_some() {
                analyzer.draw_tracked(&mut frame, &r.faces);
            }
            let t2 = std::time::Instant::now();
            draw_s += (t2 - t).as_secs_f64();
            if let Some(w) = writer.as_mut() {
                w.write(&frame)?;
            }
            encode_s += t2.elapsed().as_secs_f64();
            if let Some(v) = viewer.as_mut()
                && v.stdin.as_mut().is_none_or(|s| s.write_all(frame.as_raw()).is_err())
            {
                viewer = None; // window closed
            }
            if interactive && frames.is_multiple_of(25) {
                eprint!("\rframe {frames} ({:.1} fps)", frames as f64 / started.elapsed().as_secs_f64());
            }
        }
        Ok(())
    })();
    if interactive {
        eprintln!();
    }
    let secs = started.elapsed().as_secs_f64();
    // Whatever happened, keep what was already analysed: the CSV rows are flushed per frame.
    if let Some((p, mut f)) = csv_file {
        f.flush().with_context(|| format!("writing {}", p.display()))?;
        println!("timeline: {}", p.display());
    }
    if let Some(p) = plot_path
        && !timeline.is_empty()
    {
        ferrite::plot::timeline(&timeline, 6, p).with_context(|| format!("writing {}", p.display()))?;
        println!("plot: {}", p.display());
    }
    outcome.with_context(|| format!("after {frames} frame(s)"))?;
    if let Some(w) = writer {
        w.finish()?;
        println!("annotated video: {}", out.map(|p| p.display().to_string()).unwrap_or_default());
    }
    let tracks: std::collections::BTreeSet<u32> = timeline.iter().map(|t| t.track).collect();
    println!(
        "{frames} frame(s) in {secs:.1}s ({:.1} fps), {} person(s) tracked",
        frames as f64 / secs.max(1e-9),
        tracks.len()
    );
    let per = |s: f64| 1000.0 * s / frames.max(1) as f64;
    println!(
        "ms per frame: decode wait {:.2}, detect {:.2} (every {detect_every} frames), classify {:.2}, draw {:.2}, encode wait {:.2}",
        per(decode_s),
        per(va.detect_s),
        per(va.classify_s),
        per(draw_s),
        per(encode_s)
    );
    Ok(())
}
