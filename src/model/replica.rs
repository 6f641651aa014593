//! Per-thread state of a data-parallel training replica (`train::train_step` with replicas):
//! its own dropout seed stream and its BatchNorm running-statistics updates, held back for
//! the calling thread to apply in a fixed order, so a run stays repeatable however the
//! replicas' threads interleave.

use burn::module::RunningState;
use burn::nn::BatchNorm;
use burn::tensor::Tensor;
use std::cell::RefCell;

/// One BatchNorm layer's batch statistics, as a replica measured them.
pub(crate) struct BnUpdate {
    running_mean: RunningState<Tensor<1>>,
    running_var: RunningState<Tensor<1>>,
    momentum: f64,
    mean: Tensor<1>,
    var: Tensor<1>,
}

/// What a replica hands back besides its gradients.
#[derive(Default)]
pub(crate) struct ReplicaState {
    seed: u64,
    draws: u64,
    bn: Vec<BnUpdate>,
}

thread_local! {
    static REPLICA: RefCell<Option<ReplicaState>> = const { RefCell::new(None) };
}

/// Run `f` as a replica on this thread: dropout seeds come from `seed`'s stream and BatchNorm
/// updates are collected instead of applied. Returns `f`'s value and the collected updates.
pub(crate) fn run_as_replica<T>(seed: u64, f: impl FnOnce() -> T) -> (T, ReplicaState) {
    REPLICA.with(|r| *r.borrow_mut() = Some(ReplicaState { seed, ..Default::default() }));
    let out = f();
    let state = REPLICA.with(|r| r.borrow_mut().take()).unwrap_or_default();
    (out, state)
}

/// Inside a replica: the next dropout seed of its stream (48 bits, as the device draws give).
pub(crate) fn dropout_seed() -> Option<u64> {
    REPLICA.with(|r| {
        r.borrow_mut().as_mut().map(|s| {
            s.draws += 1;
            splitmix(s.seed ^ s.draws.wrapping_mul(0xD1B5_4A32_D192_ED03)) & 0xFFFF_FFFF_FFFF
        })
    })
}

/// Inside a replica: keep `bn`'s batch statistics for later and return `true`; outside, `false`
/// (the caller updates the running statistics itself).
pub(crate) fn defer_bn_update(bn: &BatchNorm, mean: &Tensor<1>, var: &Tensor<1>) -> bool {
    REPLICA.with(|r| match r.borrow_mut().as_mut() {
        Some(s) => {
            s.bn.push(BnUpdate {
                running_mean: bn.running_mean.clone(),
                running_var: bn.running_var.clone(),
                momentum: bn.momentum,
                mean: mean.clone(),
                var: var.clone(),
            });
            true
        }
        None => false,
    })
}

/// Apply the replicas' BatchNorm updates on this thread: layer by layer, the statistics
/// averaged with the given weights (each replica's share of the batch), one momentum step, as
/// one replica over the whole batch would (with each part's variance about its own mean).
pub(crate) fn apply_bn_updates(replicas: Vec<ReplicaState>, weights: &[f64]) {
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

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
