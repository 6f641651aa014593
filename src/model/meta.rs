//! The model's contract, typed: the preprocessing it expects, its class priors and prior
//! correction, the labels it was trained on and where it came from ([`ModelMeta`]).
//!
//! Model files written before this type existed store the same facts as loose JSON keys in the
//! header's `meta` object; they read back unchanged (keys this type does not name are kept in
//! [`ModelMeta::extra`] and written again as they were).

use crate::data::preprocess::Contrast;
use crate::emotion::Emotion;
use serde::{Deserialize, Deserializer, Serialize};

/// What a model file says about how to use it and where it came from.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ModelMeta {
    /// The contrast step its faces were given in training; inference gives faces the same step.
    /// Files without it (and every model trained from 2026-12-01 on) equalise.
    #[serde(default)]
    pub contrast: Contrast,
    /// The mean training target per class (the class frequencies the model learned), in
    /// [`Emotion`] order: what prior correction divides by.
    #[serde(default, deserialize_with = "lenient_priors", skip_serializing_if = "Option::is_none")]
    pub class_priors: Option<[f64; Emotion::COUNT]>,
    /// The total prior correction folded into the classifier's bias (0: none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub prior_correction: f64,
    /// The label set it was trained on (`own`, `ferplus-majority`, `ferplus-crossentropy`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<String>,
    /// Provenance: the training epoch this model is from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<usize>,
    /// Provenance: accuracy on the training run's validation set at that epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_accuracy: Option<f64>,
    /// Provenance: macro-F1 on the training run's validation set at that epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_macro_f1: Option<f64>,
    /// int8 calibration: each convolution's output range on calibration faces (written by a
    /// quantized export; what [`InferencePrecision::Int8`](crate::model::quant::InferencePrecision) needs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub int8: Option<crate::model::quant::Int8Calibration>,
    /// An ensemble's members' metadata, in member order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<ModelMeta>,
    /// The metadata of the models whose weights were averaged into this one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub averaged: Vec<ModelMeta>,
    /// Anything else the file records, kept as written.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

/// Class priors as written by any ferrite version: a malformed list (wrong length, negative or
/// non-numeric values) counts as none, as it always did, instead of making the file unreadable.
fn lenient_priors<'de, D: Deserializer<'de>>(d: D) -> Result<Option<[f64; Emotion::COUNT]>, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    let Some(list) = v.as_array().filter(|l| l.len() == Emotion::COUNT) else {
        return Ok(None);
    };
    let mut p = [0.0; Emotion::COUNT];
    for (a, b) in p.iter_mut().zip(list) {
        match b.as_f64().filter(|x| x.is_finite() && *x >= 0.0) {
            Some(x) => *a = x,
            None => return Ok(None),
        }
    }
    Ok(Some(p))
}

impl ModelMeta {
    /// Metadata that records only the contrast step.
    pub fn with_contrast(contrast: Contrast) -> ModelMeta {
        ModelMeta { contrast, ..ModelMeta::default() }
    }

    /// Metadata that records only the training epoch (checkpoints).
    pub fn at_epoch(epoch: usize) -> ModelMeta {
        ModelMeta { epoch: Some(epoch), ..ModelMeta::default() }
    }

    /// Read a header's `meta` JSON (an old file's loose keys, or `null` for none).
    pub fn from_json(value: serde_json::Value) -> ModelMeta {
        if value.is_null() {
            return ModelMeta::default();
        }
        serde_json::from_value(value).unwrap_or_default()
    }
}

/// `meta` as an older ferrite wrote it may also be `null` or not an object: read as empty.
pub(crate) fn lenient_meta<'de, D: Deserializer<'de>>(d: D) -> Result<ModelMeta, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    if v.is_null() || !v.is_object() {
        return Ok(ModelMeta::default());
    }
    serde_json::from_value(v).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_loose_keys_read_into_the_typed_contract_and_back() {
        let old = serde_json::json!({
            "class_priors": [0.1, 0.01, 0.03, 0.28, 0.35, 0.13, 0.1],
            "contrast": "raw", "epoch": 162, "labels": "ferplus-crossentropy",
            "prior_correction": 0.25, "val_accuracy": 0.85, "seed": 7
        });
        let m: ModelMeta = serde_json::from_value(old.clone()).unwrap();
        assert_eq!(m.contrast, Contrast::Raw);
        assert_eq!(m.class_priors.unwrap()[4], 0.35);
        assert_eq!((m.prior_correction, m.epoch, m.labels.as_deref()), (0.25, Some(162), Some("ferplus-crossentropy")));
        assert_eq!(m.extra["seed"], 7);
        assert_eq!(serde_json::to_value(&m).unwrap(), old, "written back as it was read");
    }

    #[test]
    fn missing_or_malformed_keys_take_the_old_defaults() {
        let m = ModelMeta::from_json(serde_json::json!({"class_priors": [1, 2]}));
        assert_eq!((m.contrast, m.class_priors, m.prior_correction), (Contrast::Equalize, None, 0.0));
        let nested = ModelMeta::from_json(serde_json::json!({"members": [{"epoch": 1}, {"contrast": "raw"}]}));
        assert_eq!(nested.members[1].contrast, Contrast::Raw);
        assert_eq!(ModelMeta::from_json(serde_json::Value::Null), ModelMeta::default());
    }
}
