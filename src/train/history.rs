//! What a run remembers: one record per epoch (`metrics.csv`) and the resumable `TrainState`.

use super::*;

/// One row of `metrics.csv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub lr: f64,
    pub train_loss: f64,
    pub train_acc: f64,
    pub val_loss: f64,
    pub val_acc: f64,
    pub val_macro_f1: f64,
    pub epoch_seconds: f64,
    pub elapsed_seconds: f64,
    /// Mean recall over the validation classes present.
    #[serde(default)]
    pub val_balanced_acc: f64,
}

pub(crate) const CSV_HEADER: &str =
    "epoch,lr,train_loss,train_acc,val_loss,val_acc,val_macro_f1,epoch_seconds,elapsed_seconds,val_balanced_acc";

/// Render the metrics CSV.
pub fn metrics_csv(history: &[EpochRecord]) -> String {
    let mut s = format!("{CSV_HEADER}\n");
    for r in history {
        s.push_str(&format!(
            "{},{:.4e},{:.5},{:.5},{:.5},{:.5},{:.5},{:.1},{:.1},{:.5}\n",
            r.epoch,
            r.lr,
            r.train_loss,
            r.train_acc,
            r.val_loss,
            r.val_acc,
            r.val_macro_f1,
            r.epoch_seconds,
            r.elapsed_seconds,
            r.val_balanced_acc
        ));
    }
    s
}

/// Parse a metrics CSV written by [`metrics_csv`] (files from before the balanced-accuracy
/// column, 9 fields a row, read with it as 0).
pub fn parse_metrics_csv(text: &str, path: &Path) -> Result<Vec<EpochRecord>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |m: String| Error::BadCsvRow {
            path: path.to_path_buf(),
            line: i + 1,
            message: m,
        };
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 9 && f.len() != 10 {
            return Err(bad(format!("expected 10 fields, found {}", f.len())));
        }
        let num = |k: usize| f[k].trim().parse::<f64>().map_err(|_| bad(format!("field {} is not a number", k + 1)));
        out.push(EpochRecord {
            epoch: num(0)? as usize,
            lr: num(1)?,
            train_loss: num(2)?,
            train_acc: num(3)?,
            val_loss: num(4)?,
            val_acc: num(5)?,
            val_macro_f1: num(6)?,
            epoch_seconds: num(7)?,
            elapsed_seconds: num(8)?,
            val_balanced_acc: if f.len() == 10 { num(9)? } else { 0.0 },
        });
    }
    Ok(out)
}

/// Scheduler and bookkeeping state; saved with every checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Epochs completed.
    pub epoch: usize,
    /// Learning rate in effect for the next epoch (plateau and constant schedules).
    pub lr: f64,
    /// Best validation loss seen by the plateau schedule (JSON null = none yet).
    #[serde(with = "inf_as_null")]
    pub plateau_best_loss: f64,
    pub plateau_bad_epochs: usize,
    pub best_val_acc: f64,
    pub best_epoch: usize,
    pub elapsed_seconds: f64,
    pub history: Vec<EpochRecord>,
    /// The cosine schedule's current anchor (`None` until its first step after warm-up).
    #[serde(default)]
    pub cosine_anchor: Option<CosineAnchor>,
}

/// JSON has no infinity: store `f64::INFINITY` as null and read null back as infinity.
pub(crate) mod inf_as_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() { s.serialize_f64(*v) } else { s.serialize_none() }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::INFINITY))
    }
}

impl TrainState {
    /// Keras ReduceLROnPlateau (mode min, min_delta 1e-4, cooldown 0) after an epoch with
    /// validation loss `val_loss`.
    pub fn plateau_step(&mut self, val_loss: f64, factor: f64, patience: usize, min_lr: f64) {
        if val_loss < self.plateau_best_loss - 1e-4 {
            self.plateau_best_loss = val_loss;
            self.plateau_bad_epochs = 0;
        } else {
            self.plateau_bad_epochs += 1;
            if self.plateau_bad_epochs >= patience {
                let new_lr = (self.lr * factor).max(min_lr);
                if new_lr < self.lr {
                    tracing::info!("reducing learning rate to {new_lr:.2e}");
                }
                self.lr = new_lr;
                self.plateau_bad_epochs = 0;
            }
        }
    }
}
