//! The ensemble "architecture": trained networks whose class probabilities are averaged.
//!
//! Averaging members trained from different seeds is the cheapest accuracy there is at test
//! time: each member errs differently on FER2013's ambiguous faces. The members are
//! [`Network`]s of their own (`ModelSpec::members`); nothing here is trained.

use super::{Network, Pass};
use burn::tensor::Tensor;
use burn::tensor::activation::softmax;

/// log(mean over members of softmax(member(x))): (N, 1, 48, 48) -> (N, 7).
///
/// The log makes the output a logit vector whose softmax is the averaged probabilities exactly
/// (they already sum to one), so everything downstream of `Network::forward` works unchanged.
pub(crate) fn forward(members: &[Network], x: Tensor<4>, pass: &mut Pass) -> Tensor<2> {
    let n = x.dims()[0];
    let device = x.device();
    let mut sum: Tensor<2> = Tensor::zeros([n, crate::emotion::Emotion::COUNT], &device);
    for m in members {
        // (N, 7) logits -> (N, 7) probabilities
        sum = sum + softmax(m.forward_with(x.clone(), pass), 1);
    }
    // An empty ensemble (`ModelSpec::validate` rejects it) would give log 0: give uniform instead.
    sum.div_scalar(members.len().max(1) as f64).clamp_min(1e-30).log()
}

#[cfg(test)]
mod tests {
    use crate::model::{Arch, ModelSpec, Network};
    use burn::module::Module;

    fn member(width: usize, crop: Option<usize>) -> ModelSpec {
        let mut s = ModelSpec::new(Arch::Compact);
        s.width = Some(width);
        s.crop = crop;
        s
    }

    /// The ensemble's probabilities are its members' averaged, shape (N, 7).
    #[test]
    fn ensemble_averages_member_probabilities() {
        let _rng = crate::rng_lock();
        let device = crate::device::inference_device();
        let spec = ModelSpec::ensemble(vec![member(4, None), member(4, Some(40)), ModelSpec::new(Arch::Reference)]);
        spec.validate().unwrap();
        let net = Network::new(&spec, &device).valid();
        let faces: Vec<u8> = (0..3 * crate::data::preprocess::FACE_PIXELS).map(|i| (i * 29 % 253) as u8).collect();
        let all = crate::model::infer::predict_probs(&net, &faces, &device);
        assert_eq!(all.len(), 3);
        let each: Vec<_> = net.members().iter().map(|m| crate::model::infer::predict_probs(m, &faces, &device)).collect();
        assert_eq!(each.len(), 3);
        for (i, row) in all.iter().enumerate() {
            for (c, p) in row.iter().enumerate() {
                let mean = each.iter().map(|e| e[i][c]).sum::<f32>() / 3.0;
                assert!((p - mean).abs() < 1e-5, "face {i} class {c}: {p} vs {mean}");
            }
        }
        // The members differ, so the test is not comparing a network with itself.
        assert_ne!(each[0], each[1]);
        assert_eq!(net.num_params(), net.members().iter().map(|m| m.num_params()).sum::<usize>());
    }

    #[test]
    fn ensemble_specs_validate() {
        let one = ModelSpec::ensemble(vec![member(4, None)]);
        assert!(one.validate().unwrap_err().to_string().contains("two or more"));
        let nested = ModelSpec::ensemble(vec![member(4, None), ModelSpec::ensemble(vec![member(4, None), member(4, None)])]);
        assert!(nested.validate().unwrap_err().to_string().contains("cannot be ensembles"));
        let bad_member = ModelSpec::ensemble(vec![member(4, None), member(0, None)]);
        assert!(bad_member.validate().unwrap_err().to_string().contains("width"));
        let mut stray = ModelSpec::new(Arch::Compact);
        stray.members = vec![member(4, None)];
        assert!(stray.validate().unwrap_err().to_string().contains("no ensemble members"));
        let good = ModelSpec::ensemble(vec![member(4, None), member(8, Some(40))]);
        let back: ModelSpec = serde_json::from_str(&serde_json::to_string(&good).unwrap()).unwrap();
        assert_eq!(back, good);
        assert!(!serde_json::to_string(&member(4, None)).unwrap().contains("members"));
    }
}
