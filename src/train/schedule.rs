//! Learning-rate schedules and the time budget: cosine steps, planned epochs.

use super::*;

/// Where the cosine decay runs from: the learning rate `lr` at (fractional) epoch `at_epoch`,
/// annealing to the floor at epoch `planned`. A time budget that re-plans the epochs moves the
/// anchor to the current step and rate, so after warm-up the rate only ever decays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CosineAnchor {
    pub at_epoch: f64,
    pub lr: f64,
    pub planned: usize,
}

/// Learning rate of `step` under the cosine schedule: linear warm-up to `cfg.lr`, then the
/// cosine from `cfg.lr` to `min_lr`. `anchor` is created on first use; when `planned` changes
/// after warm-up it moves to this step at `prev_lr` (the rate of the step before), and the
/// rest of the cosine, from the phase at which it gives `prev_lr`, is stretched or squeezed over
/// the epochs now planned: the rate never rises, keeps its slope, and reaches the floor at the
/// new end, however often the plan changes.
#[allow(clippy::too_many_arguments)]
pub(crate) fn cosine_step(
    cfg: &TrainConfig,
    anchor: &mut Option<CosineAnchor>,
    planned: usize,
    warmup_epochs: f64,
    min_lr: f64,
    step: usize,
    steps_per_epoch: usize,
    prev_lr: f64,
) -> f64 {
    let t = step as f64 / steps_per_epoch.max(1) as f64; // epochs done, fractional
    if t < warmup_epochs {
        return cfg.lr * (t + 1.0 / steps_per_epoch.max(1) as f64) / warmup_epochs;
    }
    let a = anchor.get_or_insert(CosineAnchor {
        at_epoch: warmup_epochs,
        lr: cfg.lr,
        planned,
    });
    if a.planned != planned {
        *a = CosineAnchor {
            at_epoch: t,
            lr: prev_lr.min(a.lr),
            planned,
        };
    }
    let span = (cfg.lr - min_lr).max(1e-12);
    // The phase in [0, 1] of the full cosine at which it gives the anchor's rate.
    let p0 = (2.0 * (a.lr - min_lr) / span - 1.0).clamp(-1.0, 1.0).acos() / std::f64::consts::PI;
    let s = ((t - a.at_epoch) / (a.planned as f64 - a.at_epoch).max(1e-9)).clamp(0.0, 1.0);
    let p = p0 + (1.0 - p0) * s;
    min_lr + 0.5 * span * (1.0 + (std::f64::consts::PI * p).cos())
}

/// The epochs a run will get: `cfg.epochs`, or with a time budget the epochs done plus those
/// that still fit, each assumed to take [`typical_epoch_seconds`] (at least one more while none
/// is done, so the first epoch measures the speed).
pub fn planned_epochs(cfg: &TrainConfig, history: &[EpochRecord]) -> usize {
    let Some(minutes) = cfg.time_budget_minutes else { return cfg.epochs };
    let (Some(last), Some(typical)) = (history.last(), typical_epoch_seconds(history)) else {
        return cfg.epochs;
    };
    let left = minutes * 60.0 - last.elapsed_seconds;
    let more = if typical > 0.0 { (left / typical).floor().max(0.0) as usize } else { cfg.epochs };
    (last.epoch + more).min(cfg.epochs)
}

/// The median duration of the last five epochs: the estimate of the next epochs' length. A few
/// epochs slowed by other work on the machine (a build, a benchmark) do not shorten the plan,
/// as judging by the slowest epoch did; a lasting slow-down shows within five epochs.
pub fn typical_epoch_seconds(history: &[EpochRecord]) -> Option<f64> {
    let mut recent: Vec<f64> = history.iter().rev().take(5).map(|r| r.epoch_seconds).collect();
    if recent.is_empty() {
        return None;
    }
    recent.sort_by(f64::total_cmp);
    let mid = recent.len() / 2;
    Some(if recent.len() % 2 == 1 { recent[mid] } else { (recent[mid - 1] + recent[mid]) / 2.0 })
}
