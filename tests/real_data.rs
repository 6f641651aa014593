//! Integration test on a real subset of FER2013 (path from FERRITE_DATA, default
//! ../shared/data/fer2013); skipped with a message when the data is absent.

mod common;

use ferrite::device::MatmulPrecision;
use ferrite::evaluate::evaluate;

#[test]
fn brief_training_on_real_faces_beats_chance() {
    let Some(root) = common::fer2013("brief_training_on_real_faces_beats_chance", &["train", "val"]) else {
        return;
    };
    let (acc, _) = common::brief_reference_training(&root, MatmulPrecision::F32);
    // Balanced subset (disgust has 50 of 56 val images): chance is 1/7 = 14.3%.
    assert!(acc > 0.25, "val accuracy {acc:.3} does not beat chance clearly");
}

/// The model embedded in the binary classifies known-label FER2013 val images well above chance.
#[test]
fn embedded_model_beats_chance_on_real_val_faces() {
    let Some(root) = common::fer2013("embedded_model_beats_chance_on_real_val_faces", &["val"]) else {
        return;
    };
    let val = common::fer2013_subset(&root, "val", 30);
    let device = ferrite::device::inference_device();
    let (net, header) = ferrite::embedded::default_model(&device).expect("embedded model");
    let report = evaluate(&net, &val, &device);
    eprintln!(
        "embedded model ({}): {:.1}% on {} balanced val faces",
        header.spec.arch,
        100.0 * report.accuracy,
        val.len()
    );
    // Balanced subset: chance is 1/7 = 14.3%.
    assert!(report.accuracy > 0.35, "embedded model accuracy {:.3}", report.accuracy);
}
