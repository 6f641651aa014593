//! Where a model comes from, as a user names it: embedded in the binary, a model file, or a
//! training run directory ([`ModelSource`]).

use crate::error::Result;
use crate::model::Network;
use crate::model::file::{ModelHeader, load, model_file};
use burn::tensor::Device;
use std::path::{Path, PathBuf};

/// Where a model comes from: a model compiled into the binary (`embedded:NAME`; the default is
/// `embedded:default`), or a model file or training run directory.
///
/// ```
/// use ferrite::ModelSource;
/// assert_eq!(ModelSource::from("embedded:fer2013"), ModelSource::Embedded("fer2013".into()));
/// assert_eq!(ModelSource::from("runs/a"), ModelSource::Path("runs/a".into()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ModelSource {
    Embedded(String),
    /// A model file, or a run directory (its [`crate::model::file::run_dir_model`]).
    Path(PathBuf),
}

impl Default for ModelSource {
    fn default() -> Self {
        ModelSource::Embedded("default".into())
    }
}

impl From<&Path> for ModelSource {
    /// `embedded:NAME` names an embedded model; anything else is a file or run directory.
    fn from(p: &Path) -> ModelSource {
        match p.to_str().and_then(|s| s.strip_prefix("embedded:")) {
            Some(name) => ModelSource::Embedded(name.to_string()),
            None => ModelSource::Path(p.to_path_buf()),
        }
    }
}

impl From<&str> for ModelSource {
    fn from(s: &str) -> ModelSource {
        ModelSource::from(Path::new(s))
    }
}

impl From<String> for ModelSource {
    fn from(s: String) -> ModelSource {
        ModelSource::from(Path::new(&s))
    }
}

impl From<PathBuf> for ModelSource {
    fn from(p: PathBuf) -> ModelSource {
        ModelSource::from(p.as_path())
    }
}

impl ModelSource {
    /// The source an optional model argument names (none: the embedded default model).
    pub fn from_arg(arg: Option<&Path>) -> ModelSource {
        arg.map(ModelSource::from).unwrap_or_default()
    }

    /// How reports and errors name the model: `<embedded NAME model>` or the file read.
    pub fn name(&self) -> String {
        match self {
            ModelSource::Embedded(name) => format!("<embedded {name} model>"),
            ModelSource::Path(p) => model_file(p).display().to_string(),
        }
    }

    /// The network (in inference mode) and its header.
    pub fn load(&self, device: &Device) -> Result<(Network, ModelHeader)> {
        match self {
            ModelSource::Embedded(name) => crate::model::embedded::named(name, device),
            ModelSource::Path(p) => {
                let (net, header) = load(&model_file(p), device)?;
                Ok((burn::module::Module::valid(&net), header))
            }
        }
    }
}

