//! Integration test on a real subset of FER2013 (path from FERRITE_DATA, default
//! ../shared/data/fer2013); skipped with a message when the data is absent.

use ferrite::data::{Dataset, LoadOptions};
use ferrite::evaluate::evaluate;
use ferrite::model::{Arch, ModelSpec};
use ferrite::train::{Schedule, TrainConfig, TrainOptions, train_on};
use std::path::PathBuf;

fn data_root() -> PathBuf {
    std::env::var_os("FERRITE_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/fer2013"))
}

#[test]
fn brief_training_on_real_faces_beats_chance() {
    let root = data_root();
    if !root.join("train").is_dir() || !root.join("val").is_dir() {
        eprintln!(
            "SKIPPED brief_training_on_real_faces_beats_chance: FER2013 not found at {} (set FERRITE_DATA)",
            root.display()
        );
        return;
    }
    let load = |dir: &str, per_class| {
        Dataset::load(&root.join(dir), &LoadOptions { max_per_class: Some(per_class), ..Default::default() })
            .expect("load FER2013 subset")
    };
    let (train, val) = (load("train", 300), load("val", 50));
    let run = ferrite::fsutil::TempDir::new().unwrap();
    let mut cfg = TrainConfig::new(ModelSpec::new(Arch::Reference), root.join("train"));
    cfg.val_data = Some(root.join("val"));
    cfg.epochs = 3;
    cfg.batch_size = 32;
    cfg.lr = 1e-3;
    cfg.schedule = Schedule::Constant;
    let outcome = train_on(&cfg, run.path(), &train, &val, TrainOptions::default()).expect("train");
    let best = ferrite::modelfile::load(&run.path().join("model.ferrite"), &ferrite::device::inference_device())
        .expect("load trained model")
        .0;
    let report = evaluate(&best, &val, &ferrite::device::inference_device());
    // Balanced subset (disgust has 50 of 56 val images): chance is 1/7 = 14.3%.
    eprintln!(
        "real subset: train {} val {} -> val accuracy {:.1}% (best epoch {})",
        train.len(),
        val.len(),
        100.0 * report.accuracy,
        outcome.state.best_epoch
    );
    assert!(report.accuracy > 0.25, "val accuracy {:.3} does not beat chance clearly", report.accuracy);
}

/// The model embedded in the binary classifies known-label FER2013 val images well above chance.
#[test]
fn embedded_model_beats_chance_on_real_val_faces() {
    let root = data_root();
    if !root.join("val").is_dir() {
        eprintln!(
            "SKIPPED embedded_model_beats_chance_on_real_val_faces: FER2013 not found at {} (set FERRITE_DATA)",
            root.display()
        );
        return;
    }
    let val = Dataset::load(&root.join("val"), &LoadOptions { max_per_class: Some(30), ..Default::default() })
        .expect("load FER2013 val subset");
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
