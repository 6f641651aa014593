//! Classification metrics: confusion matrix, accuracy, per-class precision/recall/F1.

use crate::emotion::Emotion;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// Counts of (true class, predicted class) pairs; rows are true classes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Confusion {
    pub counts: [[u64; Emotion::COUNT]; Emotion::COUNT],
}

/// Precision, recall, F1 and support of one class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassScores {
    pub class: Emotion,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: u64,
}

/// The full evaluation report (also the evaluate JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub samples: u64,
    pub accuracy: f64,
    /// Mean recall over the classes present (balanced accuracy).
    #[serde(default)]
    pub balanced_accuracy: f64,
    pub macro_f1: f64,
    pub mean_loss: Option<f64>,
    pub per_class: Vec<ClassScores>,
    pub classes: Vec<String>,
    /// Rows are true classes, columns predictions, in `classes` order.
    pub confusion: Vec<Vec<u64>>,
    /// Classes without a single face in the data (left out of the balanced accuracy; their
    /// recall and F1 are 0).
    #[serde(default)]
    pub absent: Vec<String>,
}

impl Confusion {
    pub fn add(&mut self, truth: Emotion, predicted: Emotion) {
        self.counts[truth.index()][predicted.index()] += 1;
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }

    pub fn correct(&self) -> u64 {
        (0..Emotion::COUNT).map(|i| self.counts[i][i]).sum()
    }

    pub fn accuracy(&self) -> f64 {
        let t = self.total();
        if t == 0 { 0.0 } else { self.correct() as f64 / t as f64 }
    }

    pub fn per_class(&self) -> Vec<ClassScores> {
        Emotion::ALL
            .iter()
            .map(|&e| {
                let i = e.index();
                let tp = self.counts[i][i] as f64;
                let predicted: u64 = (0..Emotion::COUNT).map(|r| self.counts[r][i]).sum();
                let support: u64 = self.counts[i].iter().sum();
                let precision = if predicted == 0 { 0.0 } else { tp / predicted as f64 };
                let recall = if support == 0 { 0.0 } else { tp / support as f64 };
                let f1 = if precision + recall == 0.0 {
                    0.0
                } else {
                    2.0 * precision * recall / (precision + recall)
                };
                ClassScores {
                    class: e,
                    precision,
                    recall,
                    f1,
                    support,
                }
            })
            .collect()
    }

    pub fn report(&self, mean_loss: Option<f64>) -> Report {
        let per_class = self.per_class();
        let macro_f1 = per_class.iter().map(|c| c.f1).sum::<f64>() / Emotion::COUNT as f64;
        let absent = per_class.iter().filter(|c| c.support == 0).map(|c| c.class.name().to_string()).collect();
        Report {
            samples: self.total(),
            accuracy: self.accuracy(),
            balanced_accuracy: {
                let present: Vec<f64> = per_class.iter().filter(|c| c.support > 0).map(|c| c.recall).collect();
                present.iter().sum::<f64>() / present.len().max(1) as f64
            },
            macro_f1,
            mean_loss,
            per_class,
            absent,
            classes: Emotion::ALL.iter().map(|e| e.name().to_string()).collect(),
            confusion: self.counts.iter().map(|r| r.to_vec()).collect(),
        }
    }
}

impl Report {
    /// Human-readable tables: per-class scores, then the confusion matrix.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "samples {}   accuracy {:.2}%   balanced accuracy {:.2}%   macro-F1 {:.4}{}",
            self.samples,
            100.0 * self.accuracy,
            100.0 * self.balanced_accuracy,
            self.macro_f1,
            self.mean_loss.map(|l| format!("   loss {l:.4}")).unwrap_or_default()
        );
        if !self.absent.is_empty() {
            let _ = writeln!(s, "no faces of: {} (left out of the balanced accuracy)", self.absent.join(", "));
        }
        let _ = writeln!(s, "\n{:<10} {:>9} {:>9} {:>9} {:>8}", "class", "precision", "recall", "f1", "support");
        for c in &self.per_class {
            let _ = writeln!(
                s,
                "{:<10} {:>9.4} {:>9.4} {:>9.4} {:>8}",
                c.class.name(),
                c.precision,
                c.recall,
                c.f1,
                c.support
            );
        }
        let _ = writeln!(s, "\nconfusion matrix (rows: true class, columns: predicted)");
        let _ = write!(s, "{:<10}", "");
        for name in &self.classes {
            let _ = write!(s, " {:>8}", name);
        }
        let _ = writeln!(s);
        for (name, row) in self.classes.iter().zip(&self.confusion) {
            let _ = write!(s, "{name:<10}");
            for v in row {
                let _ = write!(s, " {v:>8}");
            }
            let _ = writeln!(s);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_match_hand_computation() {
        let mut c = Confusion::default();
        // 3 happy: 2 right, 1 called sad; 1 sad called happy; 1 sad right.
        c.add(Emotion::Happy, Emotion::Happy);
        c.add(Emotion::Happy, Emotion::Happy);
        c.add(Emotion::Happy, Emotion::Sad);
        c.add(Emotion::Sad, Emotion::Happy);
        c.add(Emotion::Sad, Emotion::Sad);
        assert_eq!(c.total(), 5);
        assert!((c.accuracy() - 0.6).abs() < 1e-12);
        let r = c.report(Some(1.0));
        let happy = &r.per_class[Emotion::Happy.index()];
        assert!((happy.precision - 2.0 / 3.0).abs() < 1e-12);
        assert!((happy.recall - 2.0 / 3.0).abs() < 1e-12);
        let sad = &r.per_class[Emotion::Sad.index()];
        assert!((sad.precision - 0.5).abs() < 1e-12 && (sad.recall - 0.5).abs() < 1e-12);
        assert_eq!(r.per_class[Emotion::Fear.index()].f1, 0.0);
        assert!((r.macro_f1 - (2.0 / 3.0 + 0.5) / 7.0).abs() < 1e-12);
        assert!(r.to_text().contains("accuracy 60.00%"));
        // Balanced accuracy: mean recall of the classes present (happy 2/3, sad 1/2).
        assert!((r.balanced_accuracy - (2.0 / 3.0 + 0.5) / 2.0).abs() < 1e-12);
        assert!(r.to_text().contains("balanced accuracy 58.33%"));
    }
}
