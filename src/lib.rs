//! ferrite: facial expression recognition (FER2013's seven classes) in Rust: find every face in
//! a photo or video, and give each the probabilities of angry, disgust, fear, happy, neutral,
//! sad and surprise. The face detector and expression models are embedded: nothing is
//! downloaded at run time.
//!
//! # The front door
//!
//! [`Analyzer::builder`] takes the settings (model, detector, test-time views, abstain
//! threshold, margin, alignment, threads), [`build`](AnalyzerBuilder::build) checks them, loads
//! the model and reads its preprocessing from the model itself. One analyzer is built once and
//! shared between threads:
//!
//! ```
//! use ferrite::{Analyzer, Emotion};
//!
//! # fn main() -> ferrite::Result<()> {
//! let analyzer = Analyzer::builder().abstain(0.4).build()?;
//! let photo = image::open("tests/fixtures/photos/astronaut.jpg").expect("a test photo");
//! let faces = analyzer.analyze(&photo)?;
//! assert_eq!(faces.len(), 1);
//! let face = &faces[0];
//! println!("{} at {:?}: happy {:.2}", face.label_name(), face.bbox, face.probs[Emotion::Happy.index()]);
//! assert!((face.probs.iter().sum::<f32>() - 1.0).abs() < 1e-4);
//! // Faces serialise to JSON as the command line and the server write them.
//! let json = serde_json::to_value(face).expect("a face serialises");
//! assert!(json["probabilities"]["happy"].is_number());
//! # Ok(()) }
//! ```
//!
//! Training and fine-tuning (feature `train`) have a front door of their own:
//! [`Trainer::builder`], with a [`Recipe`] for runs from scratch and one for fine-tuning a
//! trained model on a user's own faces.
//!
//! Many photos in parallel: [`Analyzer::analyze_many`] (paths, bytes or decoded images); face
//! crops without the detector: [`Analyzer::predict`]; video frames with tracking and smoothing:
//! [`Analyzer::video`] (and, with the `video` feature, ffmpeg input in [`vision::video`]).
//!
//! # Cargo features
//!
//! `default-features = false` is the core (detection, models, analysis, data sets, evaluation).
//! `train` (the fit loop), `video` (ffmpeg), `plot` (charts), `server` (web app) and `cli` (the
//! binary; on by default, with all the others) add the rest.
//!
//! # The parts
//!
//! Data flows photo -> [`vision`] (detector, crop and alignment) -> [`data::preprocess`] (48x48
//! face) -> [`model`] (network) -> [`vision::track`] (ids and smoothing over frames) -> output
//! (JSON/CSV, pictures, the server's answers); `ARCHITECTURE.md` draws it. One folder or file each:
//! - [`emotion`]: the one `Emotion` enum (class names, order, count); [`error`]: typed errors;
//!   [`device`]: the backend choice, threads, allocator; [`fsutil`]: atomic writes; [`draw`]: the
//!   font and PNG rendering of every picture;
//! - [`data`]: image folders and CSV ([`data::imageio`] decoding, [`data::ferplus`] votes,
//!   [`data::preprocess`] face to tensor, [`data::augment`] training augmentation);
//! - [`kernels`]: ferrite's CPU kernels for burn's flex backend (convolutions, Winograd, pool,
//!   dropout, BatchNorm, f32/bf16 products) with CPU features as tokens;
//! - [`model`]: architectures, each described once as a list of layers ([`model::layers`]),
//!   ensembles, inference with test-time augmentation ([`model::infer`]), the model file
//!   ([`model::file`]) and its typed contract ([`model::meta`]), ONNX export and tract
//!   ([`model::onnx`], f32 or int8 with [`model::quant`]'s calibration), the embedded models
//!   ([`model::embedded`]), layer tables and diagrams ([`model::summary`]);
//! - [`train`] (feature `train`): configs, steps, replicas, schedules, checkpoints, resume, the
//!   fit loop; [`mod@bench`]: speed measurement;
//! - [`eval`]: scores on data sets ([`eval::metrics`]) and on labelled photos ([`eval::photos`]);
//! - [`vision`]: face detection ([`vision::blazeface`], [`vision::yunet`], [`vision::detect`]),
//!   the analyzer and its settings ([`vision::analyzer`], [`vision::builder`]), tracking
//!   ([`vision::track`]), ffmpeg
//!   video ([`vision::video`], feature `video`), drawing ([`vision::annotate`]);
//! - [`server`] (feature `server`): the web app and JSON API; [`plot`] (feature `plot`): curves,
//!   heatmaps, sample grids, timelines.
//! - The command line is the binary's: `src/main.rs` parses and dispatches to `src/cli/`, one
//!   file per command.

#[cfg(feature = "train")]
pub mod bench;
pub mod data;
pub mod device;
pub mod draw;
pub mod emotion;
pub mod error;
pub mod eval;
pub mod fsutil;
pub mod kernels;
pub mod model;
#[cfg(feature = "plot")]
pub mod plot;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "train")]
pub mod train;
pub mod vision;

pub use data::preprocess::Contrast;
pub use emotion::Emotion;
pub use error::{Error, Result};
pub use eval::metrics::Report;
pub use model::source::ModelSource;
pub use model::infer::Tta;
pub use model::meta::ModelMeta;
pub use model::quant::InferencePrecision;
#[cfg(feature = "train")]
pub use train::{Recipe, Trainer, TrainerBuilder};
pub use vision::analyzer::{Analyzer, EncodedImage, Face, FrameResult, ImageInput, TrackedFace, VideoAnalyzer, VideoOptions};
pub use vision::blazeface::DetectorModel;
pub use vision::builder::AnalyzerBuilder;
pub use vision::detect::{BBox, Landmarks};

/// Tests that draw from the backend's global random generator (parameter init, dropout) hold
/// this lock, so that seeded runs stay repeatable while tests run in parallel.
#[cfg(test)]
pub(crate) fn rng_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}
