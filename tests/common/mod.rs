//! Helpers shared by the integration tests: run the `ferrite` binary, read its output.
#![allow(dead_code)]

use std::process::{Command, Output};

/// Run the built `ferrite` binary with `args` (quiet logging).
pub fn ferrite(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferrite"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run ferrite")
}

/// Standard output and standard error together.
pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// The FER2013 image folders (FERRITE_DATA, default ../shared/data/fer2013) when `subdirs` are
/// all there; otherwise prints why `test` is skipped and gives `None`.
pub fn fer2013(test: &str, subdirs: &[&str]) -> Option<std::path::PathBuf> {
    let root = std::env::var_os("FERRITE_DATA")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/fer2013"));
    if subdirs.iter().all(|d| root.join(d).is_dir()) {
        Some(root)
    } else {
        eprintln!("SKIPPED {test}: FER2013 not found at {} (set FERRITE_DATA)", root.display());
        None
    }
}

/// At most `per_class` faces per class of FER2013's `dir` (train or val).
pub fn fer2013_subset(root: &std::path::Path, dir: &str, per_class: usize) -> ferrite::data::Dataset {
    let opts = ferrite::data::LoadOptions { max_per_class: Some(per_class), ..Default::default() };
    ferrite::data::Dataset::load(&root.join(dir), &opts).expect("load FER2013 subset")
}

/// Trains the reference CNN briefly (3 epochs, batch 32, Adam 1e-3) on 300 train faces per
/// class in matrix-product precision `matmul`; the best model's accuracy on 50 val faces per
/// class (chance: 1/7) and its epoch.
pub fn brief_reference_training(root: &std::path::Path, matmul: ferrite::kernels::MatmulPrecision) -> (f64, usize) {
    use ferrite::model::{Arch, ModelSpec};
    use ferrite::train::{Schedule, TrainConfig, TrainOptions};
    let (train, val) = (fer2013_subset(root, "train", 300), fer2013_subset(root, "val", 50));
    let run = ferrite::fsutil::TempDir::new().unwrap();
    let mut cfg = TrainConfig::new(ModelSpec::new(Arch::Reference), root.join("train"));
    cfg.val_data = Some(root.join("val"));
    cfg.epochs = 3;
    cfg.batch_size = 32;
    cfg.lr = 1e-3;
    cfg.schedule = Schedule::Constant;
    cfg.matmul = matmul;
    let outcome = ferrite::train::train_on(&cfg, run.path(), &train, &val, TrainOptions::default()).expect("train");
    let device = ferrite::device::inference_device();
    let best = ferrite::model::file::load(&run.path().join("model.ferrite"), &device).expect("load trained model").0;
    let acc = ferrite::eval::evaluate(&best, &val, &device).accuracy;
    eprintln!(
        "brief {matmul} training: train {} val {} -> val accuracy {:.1}% (best epoch {})",
        train.len(),
        val.len(),
        100.0 * acc,
        outcome.state.best_epoch
    );
    (acc, outcome.state.best_epoch)
}
