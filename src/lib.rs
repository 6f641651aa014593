//! ferrite: facial expression recognition (FER2013) in Rust: data, models, training, evaluation,
//! faces in photos and video, a web app. Data flows photo -> [`vision`] (detector, crop and
//! alignment) -> [`data::preprocess`] (48x48 face) -> [`model`] (network) -> [`vision::track`]
//! (ids and smoothing over frames) -> output (JSON/CSV, pictures, the [`server`]'s answers);
//! `ARCHITECTURE.md` draws it.
//!
//! The parts, one folder or file each:
//! - [`emotion`]: the one `Emotion` enum (class names, order, count); [`error`]: typed errors;
//!   [`device`]: the backend choice, threads, allocator; [`fsutil`]: atomic writes; [`draw`]: the
//!   font and PNG rendering of every picture;
//! - [`data`]: image folders and CSV ([`data::imageio`] decoding, [`data::ferplus`] votes,
//!   [`data::preprocess`] face to tensor, [`data::augment`] training augmentation);
//! - [`kernels`]: ferrite's CPU kernels for burn's flex backend (convolutions, Winograd, pool,
//!   dropout, BatchNorm, f32/bf16 products) with CPU features as tokens;
//! - [`model`]: architectures, each described once as a list of layers ([`model::layers`]),
//!   ensembles, inference with test-time augmentation ([`model::infer`]), the model file
//!   ([`model::file`]), ONNX export and tract ([`model::onnx`]), the embedded models
//!   ([`model::embedded`]), layer tables and diagrams ([`model::summary`]);
//! - [`train`]: configs, steps, replicas, schedules, checkpoints, resume, the fit loop;
//! - [`eval`]: scores on data sets ([`eval::metrics`]) and on labelled photos ([`eval::photos`]);
//! - [`vision`]: face detection ([`vision::blazeface`], [`vision::detect`]), the photo/video
//!   analyzer ([`vision::analyzer`]), tracking ([`vision::track`]), ffmpeg video
//!   ([`vision::video`]), drawing ([`vision::annotate`]);
//! - [`server`]: the web app and JSON API; [`plot`]: curves, heatmaps, sample grids, timelines;
//!   [`mod@bench`]: speed measurement.
//! - The command line is the binary's: `src/main.rs` parses and dispatches to `src/cli/`, one
//!   file per command.

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
pub mod plot;
pub mod server;
pub mod train;
pub mod vision;

pub use emotion::Emotion;
pub use error::{Error, Result};

/// Tests that draw from the backend's global random generator (parameter init, dropout) hold
/// this lock, so that seeded runs stay repeatable while tests run in parallel.
#[cfg(test)]
pub(crate) fn rng_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}
