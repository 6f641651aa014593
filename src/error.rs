//! Typed errors of the ferrite library.

use std::path::PathBuf;

/// Everything the library can fail with; each variant names the file or field at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting outside what it accepts (`name` as the library spells it, never a flag).
    #[error("setting `{name}` = {value}: expected {expected}")]
    Setting { name: &'static str, value: String, expected: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a readable image: {message}")]
    BadImage { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    BadDataset { path: PathBuf, message: String },
    #[error("{path}, line {line}: {message}")]
    BadCsvRow {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{path}: not a valid ferrite model or checkpoint: {message}")]
    BadModelFile { path: PathBuf, message: String },
    #[error("{path}: not a resumable run directory: {message}")]
    BadRunDir { path: PathBuf, message: String },
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A value could not be written out (a model's weights, a header, a run's state).
    #[error("cannot serialise {what}: {source}")]
    Serialize {
        what: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Models that cannot be averaged or joined into an ensemble.
    #[error("models cannot be combined: {0}")]
    Incompatible(String),
    /// A network the ONNX exporter does not handle.
    #[error("ONNX export: {0}")]
    OnnxExport(String),
    /// A training run directory that already holds a run (`train` never overwrites one).
    #[error("{path} already holds a training run; resume it or choose another output folder")]
    RunExists { path: PathBuf },
    /// This machine cannot do what was asked (a CPU feature it lacks).
    #[error("{what}")]
    Unsupported { what: &'static str },
    #[error("training diverged: {0}")]
    NonFinite(String),
    #[error("{0}")]
    Plot(String),
    #[error("video {source_name}: {message}")]
    Video { source_name: String, message: String },
    /// Talking to ffmpeg/ffprobe failed (`what` it was doing), the I/O error kept as the source.
    #[error("video {source_name}: {what}: {source}")]
    VideoIo {
        source_name: String,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("face detector: {0}")]
    Detector(String),
    /// tract (the ONNX runtime behind the face detector and the compiled expression model)
    /// failed at `stage`.
    #[error("{stage}: {source}")]
    Tract {
        stage: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("expression model: {0}")]
    Model(String),
}

impl Error {
    /// Wrap an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result alias for the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;
