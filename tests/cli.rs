//! End-to-end tests of the `ferrite` command line on small synthetic data.

use ferrite::Emotion;
use ferrite::data::synthetic;
use std::path::Path;

mod common;
use common::{ferrite, text};

/// Write a synthetic data set as an image folder (one PNG per face).
fn write_folder(root: &Path, per_class: usize, seed: u64) {
    let ds = synthetic(per_class, seed);
    for i in 0..ds.len() {
        let dir = root.join(ds.labels[i].name());
        std::fs::create_dir_all(&dir).unwrap();
        image::GrayImage::from_raw(48, 48, ds.face(i).to_vec())
            .unwrap()
            .save(dir.join(format!("{i:04}.png")))
            .unwrap();
    }
}

#[test]
fn summary_prints_the_keras_totals_and_writes_diagrams() {
    let dir = ferrite::fsutil::TempDir::new().unwrap();
    let svg = dir.path().join("arch.svg");
    let png = dir.path().join("arch.png");
    let o = ferrite(&["summary", "--arch", "reference", "--diagram", svg.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("Total params: 4,478,727"), "{out}");
    assert!(out.contains("Trainable params: 4,474,759"), "{out}");
    assert!(out.contains("Non-trainable params: 3,968"), "{out}");
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));
    let o = ferrite(&["summary", "--diagram", png.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(image::open(&png).is_ok());
}

#[test]
fn data_stats_counts_classes_and_draws_a_grid() {
    let dir = ferrite::fsutil::TempDir::new().unwrap();
    let data = dir.path().join("data");
    write_folder(&data, 3, 1);
    let grid = dir.path().join("grid.png");
    let o = ferrite(&["data", "stats", data.to_str().unwrap(), "--grid", grid.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    for e in Emotion::ALL {
        assert!(out.lines().any(|l| l.starts_with(e.name()) && l.contains(" 3 ")), "{out}");
    }
    assert!(out.contains("total            21"), "{out}");
    assert!(image::open(&grid).is_ok());
}

#[test]
fn train_then_evaluate_a_run_directory() {
    let dir = ferrite::fsutil::TempDir::new().unwrap();
    let (train, val, run, report) = (
        dir.path().join("train"),
        dir.path().join("val"),
        dir.path().join("run"),
        dir.path().join("report"),
    );
    write_folder(&train, 3, 1);
    write_folder(&val, 1, 2);
    let o = ferrite(&[
        "train", "--data", train.to_str().unwrap(), "--val", val.to_str().unwrap(), "--epochs", "1",
        "--batch-size", "16", "--low-res", "0.5", "--out", run.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["augment"]["low_res"], 0.5, "{config}");
    for f in ["config.json", "metrics.csv", "curves.png", "best.ferrite", "model.ferrite", "checkpoints/latest"] {
        assert!(run.join(f).exists(), "missing {f}");
    }
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 2, "{csv}");
    assert!(csv.starts_with("epoch,lr,train_loss,train_acc,val_loss,val_acc,val_macro_f1,epoch_seconds,elapsed_seconds"));

    let o = ferrite(&[
        "evaluate", "--model", run.to_str().unwrap(), "--data", val.to_str().unwrap(), "--out",
        report.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("confusion matrix"));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report.join("evaluate.json")).unwrap()).unwrap();
    assert_eq!(json["report"]["samples"], 7);
    assert!(json["report"]["accuracy"].as_f64().is_some());
    assert_eq!(json["report"]["per_class"].as_array().unwrap().len(), 7);
    assert!(image::open(report.join("confusion.png")).is_ok());

    // The same faces as a small face in a photo would be: scored, and said so.
    let o = ferrite(&[
        "evaluate", "--model", run.to_str().unwrap(), "--data", val.to_str().unwrap(), "--face-size", "24",
        "--out", report.to_str().unwrap(),
    ]);
    assert!(o.status.success() && text(&o).contains("faces seen at 24 px"), "{}", text(&o));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report.join("evaluate.json")).unwrap()).unwrap();
    assert_eq!((json["face_size"].as_u64(), json["report"]["samples"].as_u64()), (Some(24), Some(7)));
    let o = ferrite(&["evaluate", "--model", run.to_str().unwrap(), "--data", val.to_str().unwrap(), "--face-size", "4"]);
    assert!(!o.status.success() && text(&o).contains("face size 4 px"), "{}", text(&o));
    let o = ferrite(&["train", "--data", train.to_str().unwrap(), "--low-res", "2", "--out", dir.path().join("bad").to_str().unwrap()]);
    assert!(!o.status.success() && text(&o).contains("low-resolution probability"), "{}", text(&o));

    // Training again into the same directory is refused; resuming a finished run is a no-op.
    let o = ferrite(&["train", "--data", train.to_str().unwrap(), "--out", run.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(text(&o).contains("--resume"), "{}", text(&o));
}

/// `train --keep-checkpoints N` keeps the newest N epochs; `export --average-weights` turns
/// them into one network of their mean weights that every command takes.
#[test]
fn kept_checkpoints_average_into_one_model() {
    let dir = ferrite::fsutil::TempDir::new().unwrap();
    let (train, val, run) = (dir.path().join("train"), dir.path().join("val"), dir.path().join("run"));
    write_folder(&train, 3, 1);
    write_folder(&val, 1, 2);
    let o = ferrite(&[
        "train", "--data", train.to_str().unwrap(), "--val", val.to_str().unwrap(), "--arch", "compact", "--width", "4", "--epochs", "3",
        "--batch-size", "8", "--keep-checkpoints", "2", "--out", run.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let mut kept: Vec<String> = std::fs::read_dir(run.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("epoch-"))
        .collect();
    kept.sort();
    assert_eq!(kept, ["epoch-002", "epoch-003"]);
    let (a, b) = (run.join("checkpoints/epoch-002"), run.join("checkpoints/epoch-003"));
    let avg = dir.path().join("avg.ferrite");
    let o = ferrite(&[
        "export", "--average-weights", "--model", a.to_str().unwrap(), b.to_str().unwrap(), "--out",
        avg.to_str().unwrap(), "--precision", "f32",
    ]);
    assert!(o.status.success() && text(&o).contains("mean weights of 2 models"), "{}", text(&o));
    let device = ferrite::device::inference_device();
    let (net, header) = ferrite::model::file::load(&avg, &device).unwrap();
    assert_eq!(header.spec.arch, ferrite::model::Arch::Compact, "one network, not an ensemble");
    assert_eq!(header.meta.averaged[1].epoch, Some(3));
    assert_eq!(net.members().len(), 1);
    let o = ferrite(&["evaluate", "--model", avg.to_str().unwrap(), "--data", val.to_str().unwrap()]);
    assert!(o.status.success() && text(&o).contains("confusion matrix"), "{}", text(&o));
    // Another architecture is refused by name.
    let other = dir.path().join("other.ferrite");
    let mut spec = ferrite::model::ModelSpec::new(ferrite::model::Arch::Compact);
    spec.width = Some(6);
    ferrite::model::file::save(
        &other,
        &ferrite::model::Network::new(&spec, &device),
        &ferrite::model::file::ModelHeader::new(spec, Default::default()),
    )
    .unwrap();
    let o = ferrite(&[
        "export", "--average-weights", "--model", a.to_str().unwrap(), "--model", other.to_str().unwrap(), "--out",
        avg.to_str().unwrap(),
    ]);
    assert!(!o.status.success() && text(&o).contains("another architecture"), "{}", text(&o));
}

#[test]
fn bad_inputs_give_clear_errors() {
    let dir = ferrite::fsutil::TempDir::new().unwrap();
    let missing = dir.path().join("missing");
    let o = ferrite(&["data", "stats", missing.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("missing") && text(&o).contains("No such file"), "{}", text(&o));
    // A missing model file: named, and its I/O error said once (the library's message
    // already holds the error it keeps as its source).
    let o = ferrite(&["predict", "--model", missing.to_str().unwrap(), missing.to_str().unwrap()]);
    assert!(!o.status.success() && text(&o).contains("loading model") && text(&o).contains("missing"), "{}", text(&o));
    assert_eq!(text(&o).matches("(os error 2)").count(), 1, "{}", text(&o));

    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let o = ferrite(&["data", "stats", empty.to_str().unwrap()]);
    assert!(!o.status.success() && text(&o).contains("no class folders"), "{}", text(&o));

    let data = dir.path().join("data");
    write_folder(&data, 1, 1);
    std::fs::create_dir_all(data.join("bored")).unwrap();
    let o = ferrite(&["data", "stats", data.to_str().unwrap()]);
    assert!(!o.status.success() && text(&o).contains("bored"), "{}", text(&o));
    std::fs::remove_dir(data.join("bored")).unwrap();

    std::fs::write(data.join("happy/broken.jpg"), b"\xff\xd8\xff\xe0 truncated").unwrap();
    let grid = dir.path().join("g.png");
    let o = ferrite(&["data", "stats", data.to_str().unwrap(), "--grid", grid.to_str().unwrap()]);
    assert!(!o.status.success() && text(&o).contains("broken.jpg"), "{}", text(&o));
    let o = ferrite(&["data", "stats", data.to_str().unwrap(), "--skip-bad", "--grid", grid.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("skipped 1"), "{}", text(&o));

    let csv = dir.path().join("fer.csv");
    std::fs::write(&csv, "emotion,pixels,Usage\n3,1 2 3,Training\n").unwrap();
    let o = ferrite(&["data", "stats", csv.to_str().unwrap()]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("line 2") && text(&o).contains("pixels"), "{}", text(&o));

    let o = ferrite(&["train", "--resume", missing.to_str().unwrap()]);
    assert!(!o.status.success() && text(&o).contains("not a resumable run directory"), "{}", text(&o));
    let o = ferrite(&["--matmul", "f32", "train", "--resume", missing.to_str().unwrap()]);
    assert!(!o.status.success() && text(&o).contains("config.json sets it"), "{}", text(&o));

    let o = ferrite(&["bench", "--arch", "compact", "--replicas", "0"]);
    assert!(!o.status.success() && text(&o).contains("--replicas must be in 1..=16"), "{}", text(&o));

    let notmodel = dir.path().join("x.ferrite");
    std::fs::write(&notmodel, "nope").unwrap();
    let o = ferrite(&["evaluate", "--model", notmodel.to_str().unwrap(), "--data", data.to_str().unwrap(), "--skip-bad"]);
    assert!(!o.status.success() && text(&o).contains("x.ferrite"), "{}", text(&o));
}

#[test]
fn predict_and_evaluate_use_the_embedded_model_without_flags() {
    let dir = ferrite::fsutil::TempDir::new().unwrap();
    write_folder(dir.path(), 2, 5);
    let face = dir.path().join("happy").read_dir().unwrap().next().unwrap().unwrap().path();
    let o = ferrite(&["predict", face.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let p = v["probabilities"].as_object().unwrap();
    assert_eq!(p.len(), Emotion::COUNT);
    assert!((p.values().map(|x| x.as_f64().unwrap()).sum::<f64>() - 1.0).abs() < 1e-3);
    let o = ferrite(&["evaluate", "--data", dir.path().to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("<embedded default model>") && text(&o).contains("accuracy"), "{}", text(&o));
    let o = ferrite(&["predict", dir.path().join("nope.png").to_str().unwrap()]);
    assert!(!o.status.success() && text(&o).contains("nope.png"), "{}", text(&o));
}

/// An exported ONNX file run by tract on one 48x48 face: its seven probabilities.
fn run_onnx(path: &Path, face: &[u8]) -> Vec<f32> {
    use tract_onnx::prelude::*;
    let plan = tract_onnx::onnx()
        .model_for_path(path)
        .and_then(|m| m.with_input_fact(0, InferenceFact::dt_shape(f32::datum_type(), tvec!(1, 1, 48, 48))))
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable())
        .unwrap();
    let pixels: Vec<f32> = face.iter().map(|&p| p as f32 / 255.0).collect();
    let out = plan.run(tvec!(Tensor::from_shape(&[1, 1, 48, 48], &pixels).unwrap().into())).unwrap();
    out[0].to_plain_array_view::<f32>().unwrap().iter().copied().collect()
}

#[test]
fn export_onnx_gives_what_predict_prints() {
    let dir = ferrite::fsutil::TempDir::new().unwrap();
    write_folder(&dir.path().join("faces"), 1, 9);
    let face = dir.path().join("faces/surprise").read_dir().unwrap().next().unwrap().unwrap().path();
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/default.ferrite");
    let onnx_path = dir.path().join("default.onnx");
    let o = ferrite(&["export", "--model", model.to_str().unwrap(), "--out", onnx_path.to_str().unwrap()]);
    assert!(o.status.success() && text(&o).contains("ONNX"), "{}", text(&o));
    // --format wins over the file name.
    let other = dir.path().join("model.bin");
    let o = ferrite(&["export", "--model", model.to_str().unwrap(), "--out", other.to_str().unwrap(), "--format", "onnx"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(std::fs::read(&other).unwrap(), std::fs::read(&onnx_path).unwrap());

    let o = ferrite(&["predict", face.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let face_u8 = ferrite::data::read_face(&face, ferrite::data::preprocess::Contrast::default()).unwrap();
    let got = run_onnx(&onnx_path, &face_u8);
    // The reference is burn's forward pass of the model file (not the exported graph again):
    // both the exported ONNX run by tract and `predict` (which compiles its own ONNX) match it.
    let device = ferrite::device::inference_device();
    let (net, _) = ferrite::model::file::load(&model, &device).unwrap();
    let burn = ferrite::model::infer::predict_probs(&burn::module::Module::valid(&net), &face_u8, &device)[0];
    for ((e, p), b) in Emotion::ALL.iter().zip(got.iter()).zip(burn) {
        let printed = v["probabilities"][e.name()].as_f64().unwrap();
        assert!((*p - b).abs() < 1e-4, "{}: exported ONNX {p} vs burn {b}", e.name());
        assert!((printed - b as f64).abs() < 1e-4, "{}: predict {printed} vs burn {b}", e.name());
    }

    // A path under a regular file cannot be written: the error names it.
    let bad = face.join("x.onnx");
    let o = ferrite(&["export", "--model", model.to_str().unwrap(), "--out", bad.to_str().unwrap()]);
    assert!(!o.status.success() && text(&o).contains(bad.to_str().unwrap()), "{}", text(&o));
}

/// Issue 47: `export --quantize int8` measures ranges on the calibration faces and writes them
/// into a model file (which `--precision int8` then runs) or a QLinearConv ONNX graph that
/// tract reloads; a model without ranges cannot run int8, and the error says why.
#[test]
fn export_quantize_int8_writes_calibrated_models() {
    let dir = ferrite::fsutil::TempDir::new().unwrap();
    let faces = dir.path().join("faces");
    write_folder(&faces, 3, 4);
    let face = faces.join("happy").read_dir().unwrap().next().unwrap().unwrap().path();
    let (q_onnx, q_model) = (dir.path().join("q.onnx"), dir.path().join("q.ferrite"));
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let o = ferrite(&["export", "--model", "embedded:fer2013", "--out", &s(&q_onnx), "--quantize", "int8", "--calibrate", &s(&faces)]);
    assert!(o.status.success() && text(&o).contains("int8 QLinearConv") && text(&o).contains("21 faces"), "{}", text(&o));
    let o = ferrite(&["export", "--model", "embedded:fer2013", "--out", &s(&q_model), "--quantize", "int8", "--calibrate", &s(&faces)]);
    assert!(o.status.success(), "{}", text(&o));
    let (_, header) = ferrite::model::file::load(&q_model, &ferrite::device::inference_device()).unwrap();
    let ranges = header.meta.int8.clone().expect("the ranges are in the header");
    assert!(ranges.faces == 21 && ranges.conv_max.len() == 7, "{ranges:?}");

    let predict = |args: &[&str]| {
        let o = ferrite(&[&["predict", &s(&face), "--json"], args].concat());
        assert!(o.status.success(), "{}", text(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        Emotion::ALL.map(|e| v["probabilities"][e.name()].as_f64().unwrap() as f32)
    };
    let f32 = predict(&["--model", "embedded:fer2013"]);
    let int8 = predict(&["--model", &s(&q_model), "--precision", "int8"]);
    let onnx = run_onnx(&q_onnx, &ferrite::data::read_face(&face, header.contrast()).unwrap());
    for ((a, b), c) in f32.iter().zip(&int8).zip(onnx.iter()) {
        assert!((a - b).abs() < 0.1, "f32 {f32:?} vs int8 {int8:?}");
        assert!((b - c).abs() < 1e-4, "predict --precision int8 {int8:?} vs the exported graph {onnx:?}");
    }

    // No ranges, no int8: the library's error names the setting.
    let o = ferrite(&["predict", &s(&face), "--model", "embedded:fer2013", "--precision", "int8"]);
    assert!(!o.status.success() && text(&o).contains("precision") && text(&o).contains("no int8 calibration"), "{}", text(&o));
    let o = ferrite(&["export", "--model", "embedded:fer2013", "--out", &s(&q_onnx), "--quantize", "int8"]);
    assert!(!o.status.success() && text(&o).contains("--calibrate"), "{}", text(&o));
}

/// `export` with two models writes an ensemble whose probabilities are the members' averaged,
/// and every command takes it like any model file.
#[test]
fn export_two_models_gives_an_averaging_ensemble() {
    use ferrite::model::{Arch, ModelSpec, Network};
    use ferrite::model::file::{ModelHeader, save};
    let dir = ferrite::fsutil::TempDir::new().unwrap();
    write_folder(&dir.path().join("faces"), 1, 5);
    let face = dir.path().join("faces/happy").read_dir().unwrap().next().unwrap().unwrap().path();
    let device = ferrite::device::inference_device();
    let mut paths = Vec::new();
    for (i, (width, crop)) in [(4, None), (6, Some(40))].into_iter().enumerate() {
        let mut spec = ModelSpec::new(Arch::Compact);
        spec.width = Some(width);
        spec.crop = crop;
        let path = dir.path().join(format!("m{i}.ferrite"));
        save(&path, &Network::new(&spec, &device), &ModelHeader::new(spec, ferrite::model::meta::ModelMeta::from_json(serde_json::json!({ "member": i })))).unwrap();
        paths.push(path.to_str().unwrap().to_string());
    }
    let ens = dir.path().join("ens.ferrite");
    let o = ferrite(&["export", "--model", &paths[0], "--model", &paths[1], "--out", ens.to_str().unwrap(), "--precision", "f32"]);
    assert!(o.status.success() && text(&o).contains("ensemble"), "{}", text(&o));
    let probs = |model: &str| {
        let o = ferrite(&["predict", "--model", model, face.to_str().unwrap(), "--json"]);
        assert!(o.status.success(), "{}", text(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        Emotion::ALL.map(|e| v["probabilities"][e.name()].as_f64().unwrap())
    };
    let (a, b, both) = (probs(&paths[0]), probs(&paths[1]), probs(ens.to_str().unwrap()));
    assert_ne!(a, b);
    for i in 0..Emotion::COUNT {
        assert!((both[i] - (a[i] + b[i]) / 2.0).abs() < 1e-4, "{both:?} vs {a:?} and {b:?}");
    }
    let o = ferrite(&["evaluate", "--model", ens.to_str().unwrap(), "--data", dir.path().join("faces").to_str().unwrap()]);
    assert!(o.status.success() && text(&o).contains("(ensemble)"), "{}", text(&o));
    // A missing member is named.
    let missing = dir.path().join("missing.ferrite");
    let o = ferrite(&["export", "--model", &paths[0], "--model", missing.to_str().unwrap(), "--out", ens.to_str().unwrap()]);
    assert!(!o.status.success() && text(&o).contains("missing.ferrite"), "{}", text(&o));
}

/// Write `n` synthetic faces as a FER+ folder: `fer<row>.png` and a `label.csv` whose votes
/// put the majority on the face's synthetic class (neutral, happiness, ... in FER+ order).
fn write_ferplus_folder(root: &Path, per_class: usize, seed: u64) {
    let ds = synthetic(per_class, seed);
    std::fs::create_dir_all(root).unwrap();
    let column = |e: Emotion| match e {
        Emotion::Neutral => 0,
        Emotion::Happy => 1,
        Emotion::Surprise => 2,
        Emotion::Sad => 3,
        Emotion::Angry => 4,
        Emotion::Disgust => 5,
        Emotion::Fear => 6,
    };
    let mut csv = String::new();
    for i in 0..ds.len() {
        let name = format!("fer{i:07}.png");
        image::GrayImage::from_raw(48, 48, ds.face(i).to_vec()).unwrap().save(root.join(&name)).unwrap();
        let mut votes = [0u32; 10];
        votes[column(ds.labels[i])] = 8;
        votes[(column(ds.labels[i]) + 1) % 7] = 2;
        let v: Vec<String> = votes.iter().map(|v| v.to_string()).collect();
        csv.push_str(&format!("{name},\"(0, 0, 48, 48)\",{}\n", v.join(",")));
    }
    std::fs::write(root.join("label.csv"), csv).unwrap();
}

/// FER+ labels through the command line: a FER+ folder trains with soft targets (recorded in
/// config.json, priors in the model header), evaluates against the FER+ majority, and a bad
/// vote row or a missing image is an error naming the file (and line).
#[test]
fn ferplus_folders_train_and_evaluate_and_bad_rows_name_their_line() {
    let dir = ferrite::fsutil::TempDir::new().unwrap();
    let (train, val, run) = (dir.path().join("FER2013Train"), dir.path().join("FER2013Valid"), dir.path().join("run"));
    write_ferplus_folder(&train, 3, 1);
    write_ferplus_folder(&val, 1, 2);
    let o = ferrite(&[
        "train", "--data", train.to_str().unwrap(), "--val", val.to_str().unwrap(), "--ferplus", "crossentropy",
        "--arch", "compact", "--width", "4", "--epochs", "1", "--batch-size", "16", "--out", run.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["ferplus"]["mode"], "crossentropy");
    let o = ferrite(&["evaluate", "--model", run.to_str().unwrap(), "--data", val.to_str().unwrap(), "--ferplus"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("labels: FER+ majority") && text(&o).contains("samples 7 "), "{}", text(&o));
    assert!(text(&o).contains("balanced accuracy"), "{}", text(&o));
    // The run's priors are in its model: a prior correction applies and is reported.
    let o = ferrite(&["evaluate", "--model", run.to_str().unwrap(), "--data", val.to_str().unwrap(), "--ferplus", "--prior-correction", "1"]);
    assert!(o.status.success() && text(&o).contains("prior correction 1"), "{}", text(&o));

    let labels = val.join("label.csv");
    let good = std::fs::read_to_string(&labels).unwrap();
    std::fs::write(&labels, format!("{good}fer0000099.png,\"(0, 0, 48, 48)\",1,2,three,0,0,0,0,0,0,0\n")).unwrap();
    let o = ferrite(&["evaluate", "--data", val.to_str().unwrap(), "--ferplus"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("label.csv, line 8") && text(&o).contains("'surprise'"), "{}", text(&o));
    std::fs::write(&labels, format!("{good}fer0000099.png,\"(0, 0, 48, 48)\",1,2,3,0,0,0,0,0,0,0\n")).unwrap();
    let o = ferrite(&["evaluate", "--data", val.to_str().unwrap(), "--ferplus"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("fer0000099.png") && text(&o).contains("missing"), "{}", text(&o));
}

/// Both label sets at once: FER2013 class folders with a FER+ vote file beside them
/// (`ferplus/NAME.csv`, the shared data set's layout) train with each face's own label mixed into
/// its vote target (recorded in config.json and the model's label set); a FER+ image folder, which
/// has no labels of its own, a missing vote file and a vote file for other faces are errors
/// naming the folder or file.
#[test]
fn own_labels_mix_into_ferplus_targets_and_bad_label_files_are_named() {
    let dir = ferrite::fsutil::TempDir::new().unwrap();
    let root = dir.path().join("fer2013");
    let (train, val) = (root.join("train"), root.join("val"));
    write_folder(&train, 3, 1);
    write_folder(&val, 1, 2);
    std::fs::create_dir_all(root.join("ferplus")).unwrap();
    // FER+ columns: neutral, happiness, surprise, sadness, anger, disgust, fear, ...
    let column = |e: &str| ["neutral", "happy", "surprise", "sad", "angry", "disgust", "fear"].iter().position(|c| *c == e).unwrap();
    let write_votes = |folder: &Path, name: &str, shift: usize| {
        let mut csv = String::from("file,ferplus_name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF\n");
        for class in std::fs::read_dir(folder).unwrap() {
            let class = class.unwrap().path();
            let label = class.file_name().unwrap().to_string_lossy().into_owned();
            for f in std::fs::read_dir(&class).unwrap() {
                let f = f.unwrap().file_name().to_string_lossy().into_owned();
                // The crowd disagrees with the folder: its majority is the next class.
                let mut votes = [0u32; 10];
                votes[(column(&label) + shift) % 7] = 8;
                votes[column(&label)] = 2;
                let v: Vec<String> = votes.iter().map(|v| v.to_string()).collect();
                csv.push_str(&format!("{label}/{f},x.png,{}\n", v.join(",")));
            }
        }
        std::fs::write(root.join("ferplus").join(name), csv).unwrap();
    };
    write_votes(&train, "train.csv", 1);
    write_votes(&val, "val.csv", 1);
    let run = dir.path().join("run");
    let args = |data: &Path, out: &Path| -> Vec<String> {
        [
            "train", "--data", data.to_str().unwrap(), "--val", val.to_str().unwrap(), "--ferplus", "crossentropy", "--own-label-weight", "0.4",
            "--arch", "compact", "--width", "4", "--epochs", "1", "--batch-size", "16", "--out", out.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let o = ferrite(&args(&train, &run).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", text(&o));
    let cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["ferplus"]["own_label_weight"].as_f64().map(|w| (w * 10.0).round()), Some(4.0));
    let report = dir.path().join("report");
    let o = ferrite(&["evaluate", "--model", run.to_str().unwrap(), "--data", val.to_str().unwrap(), "--out", report.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(report.join("evaluate.json")).unwrap()).unwrap();
    assert_eq!(json["model_meta"]["labels"], "ferplus-crossentropy+fer2013-0.4");
    // Out of range: named by its library name.
    let o = ferrite(&["train", "--data", train.to_str().unwrap(), "--ferplus", "crossentropy", "--own-label-weight", "1", "--out", dir.path().join("r1").to_str().unwrap()]);
    assert!(!o.status.success() && text(&o).contains("own_label_weight"), "{}", text(&o));
    // A FER+ image folder has no own labels to mix.
    let fp = dir.path().join("FER2013Train");
    write_ferplus_folder(&fp, 2, 3);
    let o = ferrite(&args(&fp, &dir.path().join("r2")).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!o.status.success() && text(&o).contains("FER2013Train") && text(&o).contains("no FER2013 labels"), "{}", text(&o));
    // Votes missing: a folder with no vote file beside it is named.
    let lone = dir.path().join("lone");
    write_folder(&lone, 1, 4);
    let o = ferrite(&args(&lone, &dir.path().join("r3")).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!o.status.success() && text(&o).contains("lone") && text(&o).contains("no FER+ vote file"), "{}", text(&o));
    // Votes for other faces: the vote file is named.
    std::fs::write(root.join("ferplus/train.csv"), "file,ferplus_name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF\nangry/other.jpg,x.png,8,2,0,0,0,0,0,0,0,0\n").unwrap();
    let o = ferrite(&args(&train, &dir.path().join("r4")).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!o.status.success() && text(&o).contains("train.csv") && text(&o).contains("no face"), "{}", text(&o));
}

/// `kill -9` at several points of a training run, then `--resume` until it finishes: every
/// epoch appears once in metrics.csv, in order, the checkpoints and the final model load, and
/// an uninterrupted run of the same command ends at the same metrics (resume is exact).
#[test]
fn training_survives_kill_9_at_random_points() {
    let dir = ferrite::fsutil::TempDir::new().unwrap();
    let (train, val) = (dir.path().join("train"), dir.path().join("val"));
    write_folder(&train, 12, 1);
    write_folder(&val, 2, 2);
    let epochs = 8;
    let args = |out: &Path| -> Vec<String> {
        [
            "train", "--data", train.to_str().unwrap(), "--val", val.to_str().unwrap(), "--arch", "compact", "--width", "8",
            "--epochs", &epochs.to_string(), "--batch-size", "8", "--out", out.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let whole = dir.path().join("whole");
    let o = ferrite(&args(&whole).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", text(&o));

    let run = dir.path().join("killed");
    let bin = env!("CARGO_BIN_EXE_ferrite");
    // Kill after these many milliseconds of each attempt (fixed, so the test repeats), then
    // resume; the last attempt runs to the end.
    let delays = [150u64, 400, 90, 650, 250];
    let mut kills = 0;
    for &ms in &delays {
        let mut cmd = std::process::Command::new(bin);
        if run.join("checkpoints/latest").exists() {
            cmd.args(["train", "--resume", run.to_str().unwrap()]);
        } else {
            cmd.args(args(&run));
        }
        let mut child = cmd.env("RUST_LOG", "warn").stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(ms));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        child.wait().unwrap();
        if !run.join("checkpoints/latest").exists() && run.exists() {
            // Killed before the first epoch ended: start again from scratch.
            std::fs::remove_dir_all(&run).unwrap();
        }
    }
    let o = if run.join("checkpoints/latest").exists() {
        ferrite(&["train", "--resume", run.to_str().unwrap()])
    } else {
        ferrite(&args(&run).iter().map(String::as_str).collect::<Vec<_>>())
    };
    assert!(o.status.success(), "{}", text(&o));
    eprintln!("{kills} of {} attempts killed mid-run", delays.len());
    assert!(kills >= 2, "the kills must land mid-run for this test to mean anything");
    let rows = |d: &Path| -> Vec<String> { std::fs::read_to_string(d.join("metrics.csv")).unwrap().lines().map(String::from).collect() };
    let (got, want) = (rows(&run), rows(&whole));
    let epochs_seen: Vec<usize> = got[1..].iter().map(|l| l.split(',').next().unwrap().parse().unwrap()).collect();
    assert_eq!(epochs_seen, (1..=epochs).collect::<Vec<_>>(), "each epoch once, in order");
    // Same losses and accuracies as the uninterrupted run (times differ).
    let metrics = |l: &str| l.split(',').take(7).map(String::from).collect::<Vec<_>>();
    for (a, b) in got.iter().zip(&want) {
        assert_eq!(metrics(a), metrics(b));
    }
    let o = ferrite(&["evaluate", "--model", run.to_str().unwrap(), "--data", val.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
}

/// A full disk while a checkpoint is written (simulated with a file-size limit, RLIMIT_FSIZE,
/// which fails writes the way a full disk does): training stops with an error naming the file,
/// the previous checkpoint stays the latest and valid, metrics.csv keeps only finished epochs,
/// and a later `--resume` (disk freed) finishes every epoch once.
#[test]
fn a_full_disk_during_checkpointing_keeps_the_previous_checkpoint() {
    use std::os::unix::process::CommandExt;
    let dir = ferrite::fsutil::TempDir::new().unwrap();
    let (train, val, run) = (dir.path().join("train"), dir.path().join("val"), dir.path().join("run"));
    write_folder(&train, 4, 1);
    write_folder(&val, 1, 2);
    let o = ferrite(&[
        "train", "--data", train.to_str().unwrap(), "--val", val.to_str().unwrap(), "--arch", "compact", "--width", "8",
        "--epochs", "1", "--batch-size", "8", "--out", run.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    // Ask for two more epochs.
    let cfg_path = run.join("config.json");
    let mut cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg_path).unwrap()).unwrap();
    cfg["epochs"] = serde_json::json!(3);
    std::fs::write(&cfg_path, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    let model_size = std::fs::metadata(run.join("checkpoints/epoch-001/model.ferrite")).unwrap().len();
    let limit = model_size / 2;
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ferrite"));
    cmd.args(["train", "--resume", run.to_str().unwrap()]).env("RUST_LOG", "warn");
    // SAFETY: between fork and exec the closure only calls signal(2) and setrlimit(2), both
    // async-signal-safe, on plain values; nothing is allocated or locked.
    unsafe {
        cmd.pre_exec(move || {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let r = libc::rlimit { rlim_cur: limit, rlim_max: limit };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &r) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let o = cmd.output().unwrap();
    let msg = text(&o);
    assert!(!o.status.success(), "{msg}");
    assert!(msg.contains("model.ferrite") && msg.to_lowercase().contains("file too large"), "{msg}");
    assert_eq!(std::fs::read_to_string(run.join("checkpoints/latest")).unwrap().trim(), "epoch-001");
    assert!(!run.join("checkpoints/epoch-002").exists());
    let rows = |run: &Path| std::fs::read_to_string(run.join("metrics.csv")).unwrap().lines().count() - 1;
    assert_eq!(rows(&run), 1, "only the finished epoch is in metrics.csv");
    // The disk is free again: resume finishes.
    let o = ferrite(&["train", "--resume", run.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let epochs: Vec<String> =
        std::fs::read_to_string(run.join("metrics.csv")).unwrap().lines().skip(1).map(|l| l.split(',').next().unwrap().to_string()).collect();
    assert_eq!(epochs, ["1", "2", "3"]);
}

/// Distillation from the command line: a run started from another model's weights (`--init`)
/// trains on targets mixed with a teacher file (`--teacher`); a bad teacher row is an error
/// naming the file and line, a missing file names the file.
#[test]
fn a_run_distils_from_a_teacher_file_and_starts_from_a_model() {
    let dir = ferrite::fsutil::TempDir::new().unwrap();
    let (train, val) = (dir.path().join("train"), dir.path().join("val"));
    write_folder(&train, 3, 1);
    write_folder(&val, 1, 2);
    let mut teacher = String::from("file,angry,disgust,fear,happy,neutral,sad,surprise\n");
    for e in Emotion::ALL {
        for f in std::fs::read_dir(train.join(e.name())).unwrap() {
            teacher.push_str(&format!("{}/{},0.1,0.1,0.1,0.1,0.4,0.1,0.1\n", e.name(), f.unwrap().file_name().to_string_lossy()));
        }
    }
    let good = dir.path().join("teacher.csv");
    std::fs::write(&good, &teacher).unwrap();
    let base = |run: &Path| {
        vec![
            "train".to_string(), "--data".into(), train.display().to_string(), "--val".into(), val.display().to_string(),
            "--arch".into(), "compact".into(), "--width".into(), "4".into(), "--epochs".into(), "1".into(), "--batch-size".into(),
            "8".into(), "--out".into(), run.display().to_string(),
        ]
    };
    let run = |args: Vec<String>| ferrite(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let first = dir.path().join("first");
    let o = run(base(&first));
    assert!(o.status.success(), "{}", text(&o));
    let second = dir.path().join("second");
    let mut args = base(&second);
    args.extend(["--teacher".into(), good.display().to_string(), "--teacher-weight".into(), "0.3".into(), "--init".into(), first.display().to_string()]);
    let o = run(args);
    assert!(o.status.success(), "{}", text(&o));
    let cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(second.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["teacher"]["weight"], 0.3);
    assert_eq!(cfg["init"], first.display().to_string());
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, teacher.replacen("0.4", "x", 1)).unwrap();
    let mut args = base(&dir.path().join("third"));
    args.extend(["--teacher".into(), bad.display().to_string()]);
    let o = run(args);
    assert!(!o.status.success() && text(&o).contains("bad.csv, line 2"), "{}", text(&o));
    let mut args = base(&dir.path().join("fourth"));
    args.extend(["--teacher".into(), dir.path().join("missing.csv").display().to_string()]);
    let o = run(args);
    assert!(!o.status.success() && text(&o).contains("missing.csv"), "{}", text(&o));
    let mut args = base(&dir.path().join("fifth"));
    args.extend(["--init".into(), "embedded:default".into()]);
    let o = run(args);
    assert!(!o.status.success() && text(&o).contains("different network"), "{}", text(&o));
}

/// `train --init` fine-tunes with the library's fine-tuning recipe for every flag not given and
/// the starting model's network; `train --help` shows both recipes as the library holds them.
#[test]
fn fine_tuning_takes_the_librarys_recipe_and_help_shows_it() {
    let dir = ferrite::fsutil::TempDir::new().unwrap();
    let (train, run) = (dir.path().join("train"), dir.path().join("run"));
    write_folder(&train, 4, 4);
    let o = ferrite(&["train", "--data", train.to_str().unwrap(), "--init", "embedded:default", "--epochs", "1", "--out", run.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("config.json")).unwrap()).unwrap();
    let (fine, scratch) = (ferrite::Recipe::fine_tune(), ferrite::Recipe::scratch());
    assert_eq!(cfg["epochs"], 1, "a flag given wins");
    assert_eq!(cfg["lr"].as_f64(), Some(fine.lr));
    assert_eq!(cfg["batch_size"].as_u64(), Some(fine.batch_size as u64));
    assert_eq!(cfg["time_budget_minutes"].as_f64(), fine.time_budget_minutes);
    assert_eq!(cfg["augment"]["shift"].as_u64(), Some(fine.augment.shift as u64));
    assert_eq!(cfg["spec"]["arch"], "compact", "the embedded model's network");
    assert!(run.join("model.ferrite").exists());
    let help = text(&ferrite(&["train", "--help"]));
    for (r, column) in [(&scratch, "from scratch"), (&fine, "fine-tuning")] {
        assert!(help.contains(column) && help.contains(&format!("{:e}", r.lr)) && help.contains(&r.epochs.to_string()), "{help}");
    }
}
