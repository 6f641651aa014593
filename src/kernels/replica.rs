//! The state of a data-parallel training replica (`train::step` with replicas), a value its
//! forward pass carries (`model::Pass`): its own dropout seed stream and its BatchNorm
//! running-statistics updates, held back for the calling thread to apply in a fixed order, so
//! a run stays repeatable however the replicas' threads interleave.

use burn::module::RunningState;
use burn::nn::BatchNorm;
use burn::tensor::Tensor;

/// One BatchNorm layer's batch statistics, as a replica measured them.
pub(crate) struct BnUpdate {
    running_mean: RunningState<Tensor<1>>,
    running_var: RunningState<Tensor<1>>,
    momentum: f64,
    mean: Tensor<1>,
    var: Tensor<1>,
}

/// One replica's state: its dropout seed stream and the BatchNorm updates it measured.
#[derive(Default)]
pub struct Replica {
    seed: u64,
    draws: u64,
    bn: Vec<BnUpdate>,
}

impl Replica {
    /// A replica whose dropout seeds come from `seed`'s stream.
    pub fn new(seed: u64) -> Replica {
        Replica { seed, ..Default::default() }
    }

    /// The next dropout seed of the stream (48 bits, as the device draws give).
    pub(crate) fn dropout_seed(&mut self) -> u64 {
        self.draws += 1;
        super::splitmix64(self.seed ^ self.draws.wrapping_mul(0xD1B5_4A32_D192_ED03)) & 0xFFFF_FFFF_FFFF
    }

    /// Keep `bn`'s batch statistics for [`apply_bn_updates`].
    pub(crate) fn defer_bn_update(&mut self, bn: &BatchNorm, mean: &Tensor<1>, var: &Tensor<1>) {
        self.bn.push(BnUpdate {
            running_mean: bn.running_mean.clone(),
            running_var: bn.running_var.clone(),
            momentum: bn.momentum,
            mean: mean.clone(),
            var: var.clone(),
        });
    }
}

/// Apply the replicas' BatchNorm updates on this thread: layer by layer, the statistics
/// averaged with the given weights (each replica's share of the batch), one momentum step, as
/// one replica over the whole batch would (with each part's variance about its own mean).
pub fn apply_bn_updates(replicas: Vec<Replica>, weights: &[f64]) {
    let mut lists: Vec<std::vec::IntoIter<BnUpdate>> = replicas.into_iter().map(|r| r.bn.into_iter()).collect();
    let Some((first, rest)) = lists.split_first_mut() else { return };
    for u in first.by_ref() {
        let (mut mean, mut var) = (u.mean.mul_scalar(weights[0]), u.var.mul_scalar(weights[0]));
        for (other, w) in rest.iter_mut().zip(&weights[1..]) {
            if let Some(o) = other.next() {
                mean = mean + o.mean.mul_scalar(*w);
                var = var + o.var.mul_scalar(*w);
            }
        }
        update_running(&u.running_mean, &u.running_var, u.momentum, mean, var);
    }
}

/// running = (1 - momentum) * running + momentum * batch, for mean and variance (detached).
pub(crate) fn update_running(
    running_mean: &RunningState<Tensor<1>>,
    running_var: &RunningState<Tensor<1>>,
    m: f64,
    mean: Tensor<1>,
    var: Tensor<1>,
) {
    let device = mean.device();
    let rm = running_mean.value_sync().to_device(&device);
    let rv = running_var.value_sync().to_device(&device);
    running_mean.update((rm.mul_scalar(1.0 - m) + mean.detach().mul_scalar(m)).detach());
    running_var.update((rv.mul_scalar(1.0 - m) + var.detach().mul_scalar(m)).detach());
}
