//! int8 inference: the two precisions of the compiled path, the calibration a quantized
//! model carries (each convolution's output range, measured on faces by
//! `Int8Calibration::measure` in [`crate::model::onnx`]), and int8 weights per output channel.

use crate::error::{Error, Result};

/// The share of faces whose largest activation a range covers: the rest (a few bright
/// outliers) saturate at 255 instead of stretching every other face's steps.
pub const COVERED: f64 = 0.999;

/// The numbers the compiled single-face path computes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum InferencePrecision {
    /// f32 weights and activations.
    #[default]
    F32,
    /// int8 weights, 8-bit activations, int32 sums ([`crate::model::onnx::to_proto_int8`]); needs a model that
    /// carries its calibration (`meta.int8`). Fast where the CPU has int8 dot products
    /// (AVX-512 VNNI, AVX-VNNI, AMX); on AVX2 alone tract's int8 kernel is far slower than f32.
    Int8,
}

impl InferencePrecision {
    /// Its name as settings spell it (`f32`, `int8`).
    pub fn name(self) -> &'static str {
        match self {
            InferencePrecision::F32 => "f32",
            InferencePrecision::Int8 => "int8",
        }
    }
}

impl std::fmt::Display for InferencePrecision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for InferencePrecision {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "f32" => Ok(InferencePrecision::F32),
            "int8" => Ok(InferencePrecision::Int8),
            _ => Err(Error::Setting { name: "precision", value: s.to_string(), expected: "f32 or int8".into() }),
        }
    }
}

/// The int8 matrix instructions this CPU offers tract (its kernels are picked from them at run
/// time, the best first), for reports.
pub fn int8_kernel() -> &'static str {
    crate::kernels::cpu::int8_dot_product().unwrap_or("none (AVX2 or less: int8 is slower than f32 here)")
}

/// The output range of each convolution (in graph order, ensemble members one after another),
/// measured on calibration faces: what 8-bit inference maps 0..=255 onto.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Int8Calibration {
    /// The largest output (after its ReLU) each convolution gives, in graph order.
    pub conv_max: Vec<f32>,
    /// How many faces the ranges were measured on.
    pub faces: usize,
    /// What the faces were (a folder, a data set's name).
    pub source: String,
}

/// Symmetric int8 weights per output channel: (values, scale per channel).
pub(crate) fn quantize_weights(w: &[f32], channels: usize) -> (Vec<i32>, Vec<f32>) {
    let per = w.len() / channels;
    let mut q = Vec::with_capacity(w.len());
    let mut scales = Vec::with_capacity(channels);
    for c in w.chunks_exact(per) {
        let max = c.iter().fold(0f32, |m, x| m.max(x.abs()));
        let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
        q.extend(c.iter().map(|x| (x / scale).round().clamp(-127.0, 127.0) as i32));
        scales.push(scale);
    }
    (q, scales)
}

