//! BatchNorm for training on flex: two reductions and one per-channel scale and shift.

use burn::tensor::Tensor;

/// `bn` applied to `x` (N, C, ...): in training, the batch statistics come from two reductions
/// (sum and sum of squares per channel) and the output is one per-channel scale and shift, about
/// half the memory passes of burn's generic `batch_norm_train` (which flex does not specialise),
/// forward and backward; running statistics are updated as burn does (a data-parallel
/// `replica` collects its updates instead). Inference (and a frozen
/// layer) uses burn's own path. Same parameters and record format as `BatchNorm::forward`.
pub fn batch_norm<const D: usize>(bn: &burn::nn::BatchNorm, x: Tensor<D>, replica: Option<&mut super::replica::Replica>) -> Tensor<D> {
    if !(x.device().is_autodiff() && bn.training.is_enabled()) {
        return bn.forward(x);
    }
    let dims = x.dims();
    let (n, c) = (dims[0], dims[1]);
    let rest: usize = dims[2..].iter().product();
    let count = (n * rest) as f64;
    let flat: Tensor<3> = x.clone().reshape([n, c, rest]);
    let sum: Tensor<1> = flat.clone().sum_dim(2).sum_dim(0).reshape([c]);
    let sum_sq: Tensor<1> = flat.clone().mul(flat).sum_dim(2).sum_dim(0).reshape([c]);
    let mean = sum.div_scalar(count);
    // Biased variance, as burn's running statistics use; clamped against rounding below zero.
    let var = (sum_sq.div_scalar(count) - mean.clone().powi_scalar(2)).clamp_min(0.0);
    let scale = bn.gamma.val() / (var.clone() + bn.epsilon).sqrt();
    let shift = bn.beta.val() - mean.clone() * scale.clone();
    let mut per_channel = [1usize; D];
    per_channel[1] = c;

    // A data-parallel replica leaves the update to the thread that combines the replicas.
    let (batch_mean, batch_var) = (mean.clone().detach(), var.clone().detach());
    match replica {
        Some(r) => r.defer_bn_update(bn, &batch_mean, &batch_var),
        None => super::replica::update_running(&bn.running_mean, &bn.running_var, bn.momentum, batch_mean, batch_var),
    }

    x * scale.reshape(per_channel) + shift.reshape(per_channel)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    /// The lean training BatchNorm gives burn's output, gradients and running statistics.
    #[test]
    fn batch_norm_matches_burn_in_training() {
        let _rng = crate::rng_lock();
        use burn::nn::BatchNormConfig;
        use burn::tensor::Distribution;
        let dev = crate::device::training_device();
        fn close<const D: usize>(a: Tensor<D>, b: Tensor<D>, what: &str) {
            let d = (a - b).abs().max().into_scalar::<f32>();
            assert!(d < 1e-4, "{what}: max difference {d}");
        }
        fn check<const D: usize>(shape: [usize; D], dev: &Device) {
            let ours = BatchNormConfig::new(shape[1]).init(dev);
            let theirs = ours.clone();
            let x: Tensor<D> = Tensor::random(shape, Distribution::Normal(1.5, 3.0), dev).require_grad();
            let g: Tensor<D> = Tensor::random(shape, Distribution::Normal(0.0, 1.0), dev);
            let (y1, y2) = (theirs.forward(x.clone()), batch_norm(&ours, x.clone(), None));
            close(y1.clone(), y2.clone(), "output");
            let (g1, g2) = ((y1 * g.clone()).sum().backward(), (y2 * g).sum().backward());
            close(x.grad(&g1).unwrap(), x.grad(&g2).unwrap(), "input gradient");
            close(theirs.gamma.grad(&g1).unwrap(), ours.gamma.grad(&g2).unwrap(), "gamma gradient");
            close(theirs.beta.grad(&g1).unwrap(), ours.beta.grad(&g2).unwrap(), "beta gradient");
            close(theirs.running_mean.value(), ours.running_mean.value(), "running mean");
            close(theirs.running_var.value(), ours.running_var.value(), "running variance");
        }
        check([8, 5, 6, 7], &dev);
        check([16, 9], &dev);
    }
}
