//! The `ferrite` command line: clap types, one file per command, and the dispatch. Raw flags
//! become ready-to-run library values here; `main.rs` only parses and calls [`run`].

mod bench;
mod data;
mod detect;
mod evaluate;
mod export;
mod face;
mod predict;
mod serve;
mod summary;
mod train;
mod video;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use ferrite::kernels::{Matmul, MatmulPrecision};
use ferrite::ModelSource;
use ferrite::model::file::ModelHeader;
use ferrite::model::{Arch, ModelSpec, Network};
use std::path::Path;

#[derive(Parser)]
#[command(name = "ferrite", version, about = "Facial expression recognition: train, evaluate and run FER2013 CNNs")]
pub struct Cli {
    /// CPU threads for tensor kernels (default: all cores).
    #[arg(long, global = true)]
    pub threads: Option<usize>,
    /// Precision of the convolutions' matrix products: f32, or bf16 (bf16 operands, f32 sums;
    /// about twice the multiply rate, CPUs with AVX512_BF16 only). `train` records it in the
    /// run's config, which `--resume` follows.
    #[arg(long, global = true, value_enum)]
    pub matmul: Option<MatmulPrecision>,
    #[command(subcommand)]
    pub command: Command,
}

/// The network options `summary`, `bench` and `train` share.
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct NetArgs {
    /// The architecture [default: reference; fine-tuning: the starting model's].
    #[arg(long, value_enum)]
    pub arch: Option<Arch>,
    /// Channel width (architectures that have one, e.g. compact: first-stage channels, default 32).
    #[arg(long)]
    pub width: Option<usize>,
    /// Compact: the network sees the centred N x N crop of the 48x48 face (fewer
    /// multiply-adds; with --shift in training it is random-crop augmentation).
    #[arg(long)]
    pub crop: Option<usize>,
    /// Compact: convolutions in the first, 48-pixel stage (1 or 2, default 2).
    #[arg(long)]
    pub stem_convs: Option<usize>,
}

impl NetArgs {
    /// Whether any of these options was given.
    pub fn given(&self) -> bool {
        self.arch.is_some() || self.width.is_some() || self.crop.is_some() || self.stem_convs.is_some()
    }

    /// The model spec these options give (with `dropout` where given), checked.
    pub fn spec(&self, dropout: Option<f64>) -> Result<ModelSpec> {
        let mut spec = ModelSpec::new(self.arch.unwrap_or_default());
        if self.width.is_some() {
            spec.width = self.width;
        }
        spec.crop = self.crop;
        spec.stem_convs = self.stem_convs;
        if let Some(d) = dropout {
            spec.dropout = d;
        }
        spec.validate()?;
        Ok(spec)
    }
}

#[derive(Subcommand)]
pub enum Command {
    /// Print a Keras-style layer table of an architecture; optionally write a diagram.
    Summary(summary::SummaryArgs),
    /// Data set tools.
    Data {
        #[command(subcommand)]
        command: data::DataCommand,
    },
    /// Train a network.
    Train(Box<train::TrainArgs>),
    /// Measure training and inference speed of an architecture (random data).
    Bench(bench::BenchArgs),
    /// Evaluate a model on a labelled data set.
    Evaluate(evaluate::EvaluateArgs),
    /// Write a model file (from a file or run directory) with f32 or f16 weights, e.g. to
    /// replace the embedded default model (`models/default.ferrite`).
    Export(export::ExportArgs),
    /// Find faces in photos (files or folders) and label each face's expression.
    Detect(detect::DetectArgs),
    /// Label faces in a video file, camera (/dev/video0) or stream URL over time.
    Video(video::VideoArgs),
    /// Start the web app and JSON API (live webcam in the browser, photo upload, MJPEG feed).
    Serve(serve::ServeArgs),
    /// Classify face crops: the seven probabilities for each image.
    Predict(predict::PredictArgs),
}

/// What every command gets besides its own flags: the global options, resolved.
pub struct Ctx {
    /// The precision of ferrite's convolution kernels (checked against this CPU).
    pub matmul: Matmul,
    /// `--matmul` as given (training records it; `--resume` refuses it).
    pub matmul_given: Option<MatmulPrecision>,
}

/// An error and its causes on one line, outermost first. A cause whose text its parent's
/// message already contains (the library's errors print their source) is not said twice.
pub fn report(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Run the command `cli` names.
pub fn run(cli: Cli) -> Result<()> {
    ferrite::device::tune_allocator();
    ferrite::device::set_threads(cli.threads);
    let ctx = Ctx {
        matmul: Matmul::new(cli.matmul.unwrap_or_default()).context("--matmul")?,
        matmul_given: cli.matmul,
    };
    match cli.command {
        Command::Summary(args) => summary::run(args),
        Command::Data { command } => data::run(command),
        Command::Train(args) => train::run(*args, &ctx),
        Command::Bench(args) => bench::run(args, &ctx),
        Command::Evaluate(args) => evaluate::run(args, &ctx),
        Command::Export(args) => export::run(args),
        Command::Detect(args) => detect::run(args),
        Command::Video(args) => video::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Predict(args) => predict::run(args),
    }
}

/// The model `--model` names (a file, a run directory, `embedded:NAME`; none: the embedded
/// default) in inference mode, its convolutions in precision `matmul`; with its header and
/// the name reports give it.
pub fn load_model(model: Option<&Path>, device: &burn::tensor::Device, matmul: Matmul) -> Result<(Network, ModelHeader, String)> {
    let source = ModelSource::from_arg(model);
    let name = source.name();
    let (net, header) = source.load(device).with_context(|| match &source {
        ModelSource::Embedded(e) => format!("loading the embedded model '{e}'"),
        _ => format!("loading model {name}"),
    })?;
    Ok((net.with_matmul(matmul), header, name))
}
