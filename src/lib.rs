//! ferrite: facial expression recognition (FER2013) in Rust: data, models, training, evaluation.
//!
//! The parts:
//! - [`emotion`]: the one `Emotion` enum (class names, order, count);
//! - [`data`]: image-folder and CSV loaders; [`imageio`]: decoding images (EXIF orientation, palette TIFF, truncated JPEG); [`ferplus`]: FER+ vote files and label modes; [`preprocess`]: image to 48x48 tensor;
//!   [`augment`]: training-time augmentation;
//! - [`model`]: architectures (one file each, and ensembles of trained networks) behind the
//!   `Network` enum, flex kernels for their max-pool, convolutions (Winograd for the wide 3x3/5x5
//!   layers) and dropout, and the per-thread state of data-parallel training replicas;
//!   [`summary`]: layer tables;
//! - [`train`]: the fit loop (optionally data-parallel), checkpoints and resume; [`evaluate`] and [`metrics`]: scores;
//! - [`modelfile`]: the one-file model format; [`onnx`]: ONNX export and the tract single-face path; [`embedded`]: the default model in the binary; [`plot`]: curves, heatmaps, sample grids;
//! - [`analyzer`]: faces in photos and videos (detect, classify, track); [`photos`]: full-pipeline accuracy on labelled photos;
//!   [`blazeface`]: the embedded face detectors (BlazeFace back and full-range); [`detect`]: face boxes and crops; [`track`]: ids across frames; [`annotate`]: drawing;
//!   [`video`]: ffmpeg frames in and out;
//! - [`server`]: the web app and JSON API (axum; `app(state)` builds the router, `serve` runs it with timeouts, a connection cap and graceful shutdown);
//! - [`bench`]: speed measurement; [`device`]: the backend choice; [`fsutil`]: atomic writes; [`error`]: typed errors.

pub mod analyzer;
pub mod annotate;
pub mod augment;
pub mod bench;
pub mod blazeface;
pub mod data;
pub mod detect;
pub mod device;
pub mod embedded;
pub mod emotion;
pub mod error;
pub mod evaluate;
pub mod ferplus;
pub mod fsutil;
pub mod imageio;
pub mod kernels;
pub mod metrics;
pub mod model;
pub mod modelfile;
pub mod onnx;
pub mod photos;
pub mod plot;
pub mod preprocess;
pub mod server;
pub mod summary;
pub mod track;
pub mod train;
pub mod video;

pub use emotion::Emotion;
pub use error::{Error, Result};

/// Tests that draw from the backend's global random generator (parameter init, dropout) hold
/// this lock, so that seeded runs stay repeatable while tests run in parallel.
#[cfg(test)]
pub(crate) fn rng_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}
