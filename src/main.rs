//! The `ferrite` command line: a thin layer over the library.

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use ferrite::augment::AugmentConfig;
use ferrite::data::{Dataset, LoadOptions};
use ferrite::evaluate::Tta;
use ferrite::model::{Arch, ModelSpec};
use ferrite::train::{Mix, OptimizerConfig, RunDir, Schedule, TrainConfig, TrainOptions};
use ferrite::{Emotion, device, modelfile, plot, summary};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(name = "ferrite", version, about = "Facial expression recognition: train, evaluate and run FER2013 CNNs")]
struct Cli {
    /// CPU threads for tensor kernels (default: all cores).
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
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
    Train(TrainArgs),
    /// Measure training and inference speed of an architecture (random data).
    Bench {
        #[arg(long, value_enum, default_value = "reference")]
        arch: ArchArg,
        /// Channel width (architectures that have one).
        #[arg(long)]
        width: Option<usize>,
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
    },
    /// Evaluate a model on a labelled data set.
    Evaluate {
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
        /// Test-time augmentation: average over the face and its mirror image (flip) or ten
        /// shifted and mirrored views (ten).
        #[arg(long, value_enum, default_value = "none")]
        tta: TtaArg,
    },
    /// Write a model file (from a file or run directory) with f32 or f16 weights, e.g. to
    /// replace the embedded default model (`models/default.ferrite`).
    Export {
        /// A model file or training run directory.
        #[arg(long)]
        model: PathBuf,
        /// The model file to write.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, value_enum, default_value = "f16")]
        precision: PrecisionArg,
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
}

impl From<TtaArg> for Tta {
    fn from(t: TtaArg) -> Tta {
        match t {
            TtaArg::None => Tta::None,
            TtaArg::Flip => Tta::Flip,
            TtaArg::Ten => Tta::Ten,
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
    device::set_threads(cli.threads);
    match cli.command {
        Command::Summary { arch, width, diagram } => {
            let spec = spec_for(arch, width, None)?;
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
                    max_per_class: None,
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
        Command::Train(args) => train(args)?,
        Command::Bench { steps, json, model, embedded, .. } if embedded || model.is_some() => {
            let device = device::inference_device();
            let (net, header, name) = load_model(model.as_deref(), &device)?;
            let (infer64, infer1) = ferrite::bench::measure_inference(&net, steps.max(1), 5);
            let threads = rayon::current_num_threads();
            if json {
                println!(
                    "{}",
                    serde_json::json!({"model": name, "arch": header.spec.arch, "threads": threads,
                        "infer64_img_s": infer64, "infer1_ms": infer1})
                );
            } else {
                println!("{name} ({}) on {threads} threads:", header.spec.arch);
                println!("  inference         {infer64:8.1} img/s (batch 64)");
                println!("  inference         {infer1:8.2} ms per face (batch 1, median)");
            }
        }
        Command::Bench { arch, width, steps, json, profile: true, .. } => {
            let p = ferrite::bench::profile_step(&spec_for(arch, width, None)?, steps.max(1), 3);
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
        Command::Bench { arch, width, steps, json, profile: false, .. } => {
            let r = ferrite::bench::measure(&spec_for(arch, width, None)?, steps.max(1), 5);
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!("{} {} on {} threads:", r.framework, r.arch, r.threads);
                println!("  training          {:8.1} img/s (batch 64)", r.train_img_s);
                println!("  inference         {:8.1} img/s (batch 64)", r.infer64_img_s);
                println!("  inference         {:8.2} ms per face (batch 1, median)", r.infer1_ms);
            }
        }
        Command::Evaluate {
            model,
            data,
            usage,
            skip_bad,
            out,
            tta,
        } => evaluate(model.as_deref(), &data, usage, skip_bad, out.as_deref(), tta.into())?,
        Command::Export { model, out, precision } => {
            let device = device::inference_device();
            let (net, header, name) = load_model(Some(&model), &device)?;
            let precision = match precision {
                PrecisionArg::F32 => modelfile::Precision::F32,
                PrecisionArg::F16 => modelfile::Precision::F16,
            };
            modelfile::save_with(&out, &net, &header, precision)
                .with_context(|| format!("writing {}", out.display()))?;
            let size = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
            println!("wrote {} ({precision:?}, {size} bytes) from {name}", out.display());
        }
        Command::Predict { images, model, tta, json } => predict(&images, model.as_deref(), tta.into(), json)?,
    }
    Ok(())
}

/// A model spec from the command line, checked.
fn spec_for(arch: ArchArg, width: Option<usize>, dropout: Option<f64>) -> Result<ModelSpec> {
    let mut spec = ModelSpec::new(arch.into());
    if width.is_some() {
        spec.width = width;
    }
    if let Some(d) = dropout {
        spec.dropout = d;
    }
    spec.validate()?;
    Ok(spec)
}

/// Load `--model` (a file or a run directory), or the embedded default model.
/// Returns the network in inference mode, its header and a name for reports.
fn load_model(model: Option<&Path>, device: &burn::tensor::Device) -> Result<(ferrite::model::Network, modelfile::ModelHeader, String)> {
    match model {
        None => {
            let (net, header) = ferrite::embedded::default_model(device).context("loading the embedded model")?;
            Ok((net, header, ferrite::embedded::DEFAULT_MODEL_NAME.to_string()))
        }
        Some(model) => {
            let path = if model.is_dir() {
                RunDir(model.to_path_buf()).model_for_inference()
            } else {
                model.to_path_buf()
            };
            let (net, header) =
                modelfile::load(&path, device).with_context(|| format!("loading model {}", path.display()))?;
            Ok((burn::module::Module::valid(&net), header, path.display().to_string()))
        }
    }
}

fn predict(images: &[PathBuf], model: Option<&Path>, tta: Tta, json: bool) -> Result<()> {
    let device = device::inference_device();
    let (net, _header, _name) = load_model(model, &device)?;
    let mut faces = Vec::with_capacity(images.len() * ferrite::preprocess::FACE_PIXELS);
    for path in images {
        faces.extend(ferrite::data::read_face(path).with_context(|| format!("reading {}", path.display()))?);
    }
    let probs = ferrite::evaluate::predict_probs_tta(&net, &faces, &device, tta);
    if !json {
        print!("{:<28} {:<9}", "image", "label");
        for e in Emotion::ALL {
            print!(" {:>8}", e.name());
        }
        println!();
    }
    for (path, p) in images.iter().zip(&probs) {
        let top = Emotion::ALL[ferrite::evaluate::argmax(p)];
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

fn train(a: TrainArgs) -> Result<()> {
    let opts = TrainOptions {
        progress: std::io::stderr().is_terminal(),
        max_epochs_this_call: a.max_epochs_now,
    };
    let outcome = if let Some(run) = &a.resume {
        ferrite::train::resume(run, opts).with_context(|| format!("resuming {}", run.display()))?
    } else {
        let (Some(data), Some(out)) = (a.data, a.out) else {
            bail!("--data and --out are required unless --resume is given");
        };
        let spec = spec_for(a.arch, a.width, Some(a.dropout))?;
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

fn evaluate(
    model: Option<&Path>,
    data: &Path,
    usage: Option<String>,
    skip_bad: bool,
    out: Option<&Path>,
    tta: Tta,
) -> Result<()> {
    let device = device::inference_device();
    let (net, header, model_name) = load_model(model, &device)?;
    let ds = Dataset::load(
        data,
        &LoadOptions {
            skip_bad,
            usage,
            max_per_class: None,
        },
    )
    .with_context(|| format!("loading {}", data.display()))?;
    let report = ferrite::evaluate::evaluate_tta(&net, &ds, &device, tta);
    println!("model {model_name} ({}), test-time augmentation: {tta:?}", header.spec.arch);
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
