//! Integration test on a real subset of FER2013 (path from FERRITE_DATA, default
//! ../shared/data/fer2013); skipped with a message when the data is absent.

mod common;

use ferrite::kernels::MatmulPrecision;
use ferrite::eval::evaluate;

#[test]
fn brief_training_on_real_faces_beats_chance() {
    let Some(root) = common::fer2013("brief_training_on_real_faces_beats_chance", &["train", "val"]) else {
        return;
    };
    let (acc, _) = common::brief_reference_training(&root, MatmulPrecision::F32);
    // Balanced subset (disgust has 50 of 56 val images): chance is 1/7 = 14.3%.
    assert!(acc > 0.25, "val accuracy {acc:.3} does not beat chance clearly");
}

/// The embedded default model as its training run measured it (any prior correction folded
/// into it taken out again) and FER+ val with majority labels, preprocessed as the model says.
fn default_model_and_ferplus_val(root: &std::path::Path) -> (ferrite::model::Network, ferrite::model::file::ModelHeader, ferrite::data::Dataset) {
    let device = ferrite::device::inference_device();
    let (net, header) = ferrite::model::embedded::default_model(&device).expect("embedded model");
    let tau = header.meta.prior_correction as f32;
    let (net, header) = ferrite::model::infer::correct_priors(net, header, -tau).expect("undo the prior correction");
    let opts = ferrite::data::LoadOptions { contrast: header.contrast(), ..Default::default() };
    let mode = ferrite::data::ferplus::LabelMode::Majority;
    let val = ferrite::train::load_ferplus(&root.join("val"), &opts, mode, None, 0.0).expect("FER+ val");
    (net, header, val)
}

/// The model embedded in the binary keeps its stated accuracy (its header's `val_accuracy`,
/// FER+ majority on all of val) on a fixed sixth of val (every sixth face, ~590): within three
/// binomial standard deviations of the subset's size (~4.4 points at 85%), so a broken model,
/// a preprocessing change or a label mix-up fails it while the subset's sampling does not.
#[test]
fn embedded_model_keeps_its_stated_accuracy_on_a_subset() {
    let Some(root) = common::fer2013("embedded_model_keeps_its_stated_accuracy_on_a_subset", &["val", "ferplus"]) else {
        return;
    };
    let device = ferrite::device::inference_device();
    let (net, header, all) = default_model_and_ferplus_val(&root);
    let keep: Vec<usize> = (0..all.len()).step_by(6).collect();
    let faces: Vec<u8> = keep.iter().flat_map(|&i| all.face(i).to_vec()).collect();
    let subset = ferrite::data::Dataset::from_faces(faces, keep.iter().map(|&i| all.labels[i]).collect());
    let acc = evaluate(&net, &subset, &device).accuracy;
    let stated = header.meta.val_accuracy.expect("the training run's val accuracy");
    let n = subset.len() as f64;
    let band = 3.0 * (stated * (1.0 - stated) / n).sqrt();
    eprintln!("embedded model ({}): {:.2}% on {} val faces (every sixth), stated {:.2}% +- {:.2}", header.spec.arch, 100.0 * acc, subset.len(), 100.0 * stated, 100.0 * band);
    assert!((acc - stated).abs() <= band, "embedded model {acc:.4} on the subset vs stated {stated:.4} (+- {band:.4})");
}

/// The embedded default model (f16 weights) scores what its training run measured in f32 on
/// FER+ val (the header's `val_accuracy`, FER+ majority), within 0.6 points, once any prior
/// correction folded into it is taken out again: the f16 export keeps the model's accuracy.
/// `embedded:fer2013`, the FER2013-label model, keeps its stated 67.54% on val's own labels.
#[test]
fn embedded_models_keep_their_stated_accuracy() {
    let Some(root) = common::fer2013("embedded_models_keep_their_stated_accuracy", &["val", "ferplus"]) else {
        return;
    };
    let device = ferrite::device::inference_device();
    let (net, header, val) = default_model_and_ferplus_val(&root);
    let acc = evaluate(&net, &val, &device).accuracy;
    let stated = header.meta.val_accuracy.expect("the training run's val accuracy");
    eprintln!("embedded default model: {:.2}% FER+ majority on {} val faces (stated {:.2}%)", 100.0 * acc, val.len(), 100.0 * stated);
    assert!(header.meta.labels.as_deref().is_some_and(|l| l.starts_with("ferplus")), "{:?}", header.meta);
    assert!((acc - stated).abs() <= 0.006, "f16 model {acc:.4} vs its f32 run {stated:.4}");

    let (net, header) = ferrite::model::embedded::named("fer2013", &device).expect("embedded fer2013 model");
    let opts = ferrite::data::LoadOptions { contrast: header.contrast(), ..Default::default() };
    let val = ferrite::data::Dataset::load(&root.join("val"), &opts).expect("val");
    let acc = evaluate(&net, &val, &device).accuracy;
    eprintln!("embedded fer2013 model: {:.2}% on {} val faces", 100.0 * acc, val.len());
    assert!((acc - 0.6754).abs() <= 0.001, "{acc:.4}");

    // `embedded:both-labels` (issue 43): its run's figures on both label sets, f32 and f16 alike.
    let (net, header) = ferrite::model::embedded::named("both-labels", &device).expect("embedded both-labels model");
    assert_eq!(header.meta.labels.as_deref(), Some("ferplus-crossentropy+fer2013-0.4"));
    let opts = ferrite::data::LoadOptions { contrast: header.contrast(), ..Default::default() };
    let majority = ferrite::data::ferplus::LabelMode::Majority;
    let ferplus = ferrite::train::load_ferplus(&root.join("val"), &opts, majority, None, 0.0).expect("FER+ val");
    let own = ferrite::data::Dataset::load(&root.join("val"), &opts).expect("val");
    let (fp, fe) = (evaluate(&net, &ferplus, &device).accuracy, evaluate(&net, &own, &device).accuracy);
    eprintln!("embedded both-labels model: {:.2}% FER+ majority, {:.2}% FER2013 labels", 100.0 * fp, 100.0 * fe);
    assert!((fp - 0.8420).abs() <= 0.002 && (fe - 0.6149).abs() <= 0.002, "{fp:.4} / {fe:.4}");
}
