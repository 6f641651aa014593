//! Model architectures, the `Network` that wraps them, and the layer tape used by `summary`.

pub mod reference;

use crate::error::{Error, Result};
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

pub use reference::{ReferenceCnn, ReferenceConfig};

/// The architectures ferrite can build (`--arch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// The FER2013 tutorials' CNN: 4 conv blocks, 2 dense blocks, 4,478,727 parameters.
    Reference,
}

impl Arch {
    pub const ALL: [Arch; 1] = [Arch::Reference];

    pub fn name(self) -> &'static str {
        match self {
            Arch::Reference => "reference",
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Arch {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Arch::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| {
                Error::Config(format!(
                    "unknown architecture '{s}' (known: {})",
                    Arch::ALL.map(|a| a.name()).join(", ")
                ))
            })
    }
}

/// Everything needed to rebuild a network before loading its weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    pub arch: Arch,
    /// Dropout probability of every dropout layer.
    pub dropout: f64,
}

impl ModelSpec {
    pub fn new(arch: Arch) -> Self {
        ModelSpec { arch, dropout: 0.25 }
    }
}

/// Any ferrite network. Input (N, 1, 48, 48) in [0, 1]; output (N, 7) logits in `Emotion` order.
#[derive(Module, Debug)]
pub enum Network {
    Reference(ReferenceCnn),
}

impl Network {
    /// A freshly initialised network.
    pub fn new(spec: &ModelSpec, device: &Device) -> Network {
        match spec.arch {
            Arch::Reference => Network::Reference(
                ReferenceConfig {
                    dropout: spec.dropout,
                }
                .init(device),
            ),
        }
    }

    /// Class logits for a batch of faces.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward_traced(x, &mut Tape::off())
    }

    /// `forward` that also records each layer's output shape and parameters on `tape`.
    pub fn forward_traced(&self, x: Tensor<4>, tape: &mut Tape) -> Tensor<2> {
        match self {
            Network::Reference(m) => m.forward(x, tape),
        }
    }
}

/// One row of a layer table.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerRow {
    /// Keras-style layer type (Conv2D, BatchNormalization, ...).
    pub kind: &'static str,
    /// Output shape without the batch dimension.
    pub shape: Vec<usize>,
    /// All parameters, BatchNorm running statistics included.
    pub params: usize,
    /// Parameters not trained by gradient (BatchNorm running mean and variance).
    pub non_trainable: usize,
    /// Wall time since the previous record (or since the tape was switched on), in ms.
    /// On an eager CPU backend this is the layer's forward time.
    pub elapsed_ms: f64,
}

/// Records layers during a forward pass when switched on; free when off.
#[derive(Debug, Default)]
pub struct Tape {
    rows: Option<Vec<LayerRow>>,
    last: Option<std::time::Instant>,
}

impl Tape {
    pub fn off() -> Tape {
        Tape { rows: None, last: None }
    }

    pub fn on() -> Tape {
        Tape {
            rows: Some(Vec::new()),
            last: Some(std::time::Instant::now()),
        }
    }

    /// Record a layer whose output is `out`.
    pub fn record<const D: usize>(
        &mut self,
        kind: &'static str,
        out: &Tensor<D>,
        params: usize,
        non_trainable: usize,
    ) {
        if let Some(rows) = &mut self.rows {
            let now = std::time::Instant::now();
            let elapsed_ms = self.last.map_or(0.0, |t| (now - t).as_secs_f64() * 1000.0);
            self.last = Some(now);
            rows.push(LayerRow {
                elapsed_ms,
                kind,
                shape: out.dims()[1..].to_vec(),
                params,
                non_trainable,
            });
        }
    }

    pub fn into_rows(self) -> Vec<LayerRow> {
        self.rows.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arch_names_parse() {
        for a in Arch::ALL {
            assert_eq!(a.name().parse::<Arch>().unwrap(), a);
        }
        assert!("resnet9000".parse::<Arch>().is_err());
    }
}
