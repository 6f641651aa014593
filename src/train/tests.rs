//! Tests of the fit loop, steps, schedules, checkpoints and resume.

use super::*;
use crate::data::synthetic;
use crate::model::Arch;

fn small_config(dir: &Path) -> TrainConfig {
    let mut cfg = TrainConfig::new(ModelSpec::new(Arch::Reference), dir.join("unused"));
    cfg.epochs = 2;
    cfg.batch_size = 16;
    cfg.lr = 1e-3;
    cfg
}

fn quiet() -> TrainOptions {
    TrainOptions::default()
}

#[test]
fn overfits_one_small_batch() {
    let _rng = crate::rng_lock();
    let device = training_device();
    device.seed(1);
    let mut spec = ModelSpec::new(Arch::Reference);
    spec.dropout = 0.0;
    let mut net = Network::new(&spec, &device);
    let mut optim = AdamConfig::new().init();
    let loss_fn = Loss::default();
    // Random noise faces: nothing to learn but memorisation.
    let ds = synthetic(2, 3);
    let mut noise = ds.faces.clone();
    let mut rng = StdRng::seed_from_u64(9);
    noise.iter_mut().for_each(|p| *p = rand::Rng::random(&mut rng));
    let labels: Vec<i64> = ds.labels.iter().map(|e| e.index() as i64).collect();
    let mut first = None;
    let mut last = f32::NAN;
    for _ in 0..40 {
        let mut pixels = Vec::new();
        crate::data::preprocess::normalize_into(&noise, &mut pixels);
        let (next, loss, _) =
            train_step(net, &mut optim, &loss_fn, Batch::hard(pixels, labels.clone()), 1e-3, &device);
        net = next;
        first.get_or_insert(loss);
        last = loss;
    }
    assert!(last < 0.05, "loss went from {first:?} to {last}");
    let eval = device.clone().without_autodiff();
    let probs = crate::model::infer::predict_probs(&net.valid().to_device(&eval), &noise, &eval);
    for (p, t) in probs.iter().zip(&labels) {
        assert_eq!(crate::emotion::argmax(p) as i64, *t);
    }
}

/// Weights of a network as one flat vector (for comparing updates).
fn flat_weights(net: &Network) -> Vec<f32> {
    struct Collect(Vec<f32>);
    impl burn::module::ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
            self.0.extend(param.val().into_data().convert::<f32>().iter::<f32>());
        }
    }
    let mut c = Collect(Vec::new());
    net.visit(&mut c);
    c.0
}

/// Two replicas on a batch made of one part twice compute what one step on that part does:
/// same gradient (the parts' losses weighted 1/2 each), same BatchNorm statistics.
#[test]
fn replicas_on_a_doubled_batch_match_one_step_on_the_part() {
    let _rng = crate::rng_lock();
    let device = training_device();
    device.seed(3);
    let mut spec = ModelSpec::new(Arch::Compact);
    spec.width = Some(4);
    spec.dropout = 0.0;
    let net = Network::new(&spec, &device);
    let loss_fn = Loss::default();
    let ds = synthetic(1, 5);
    let mut part = Vec::new();
    crate::data::preprocess::normalize_into(&ds.faces, &mut part);
    let labels: Vec<i64> = ds.labels.iter().map(|e| e.index() as i64).collect();
    let fresh = || Network::new(&spec, &device).load_record(net.clone().into_record());
    let mut optim = burn::optim::SgdConfig::new().init();
    let (one, loss_one, correct_one) =
        train_step(fresh(), &mut optim, &loss_fn, Batch::hard(part.clone(), labels.clone()), 0.1, &device);
    let doubled = Batch::hard([part.clone(), part].concat(), [labels.clone(), labels].concat());
    let mut optim = burn::optim::SgdConfig::new().init();
    let (two, loss_two, correct_two) = train_step_replicated(fresh(), &mut optim, &loss_fn, doubled, 0.1, &device, 2);
    assert!((loss_one - loss_two).abs() < 1e-5, "{loss_one} vs {loss_two}");
    assert_eq!(2 * correct_one, correct_two);
    let (a, b) = (flat_weights(&one), flat_weights(&two));
    assert_eq!(a.len(), b.len());
    let moved = flat_weights(&net).iter().zip(&a).filter(|(x, y)| x != y).count();
    assert!(moved > a.len() / 2, "the step changed only {moved} of {} numbers", a.len());
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() <= 1e-5 * (1.0 + x.abs()), "{x} vs {y}");
    }
}

/// Replicated steps (dropout on) give the same network every time, however the threads run,
/// and learn: the loss on a memorisable batch falls.
#[test]
fn replicated_steps_are_repeatable_and_learn() {
    let _rng = crate::rng_lock();
    let run = || {
        let device = training_device();
        device.seed(11);
        let mut spec = ModelSpec::new(Arch::Compact);
        spec.width = Some(4);
        spec.dropout = 0.2;
        let mut net = Network::new(&spec, &device);
        let mut optim = AdamConfig::new().init();
        let loss_fn = Loss::default();
        let ds = synthetic(2, 4);
        let mut pixels = Vec::new();
        crate::data::preprocess::normalize_into(&ds.faces, &mut pixels);
        let labels: Vec<i64> = ds.labels.iter().map(|e| e.index() as i64).collect();
        let mut losses = Vec::new();
        for _ in 0..25 {
            let batch = Batch::hard(pixels.clone(), labels.clone());
            let (next, loss, _) = train_step_replicated(net, &mut optim, &loss_fn, batch, 3e-3, &device, 3);
            net = next;
            losses.push(loss);
        }
        (flat_weights(&net), losses)
    };
    let (w1, l1) = run();
    let (w2, l2) = run();
    assert_eq!(l1, l2);
    assert!(w1 == w2, "two identical replicated runs ended with different weights");
    assert!(l1[l1.len() - 1] < 0.5 * l1[0], "loss went from {} to {}", l1[0], l1[l1.len() - 1]);
}

#[test]
fn resume_repeats_an_uninterrupted_run() {
    let _rng = crate::rng_lock();
    let dir = crate::fsutil::TempDir::new().unwrap();
    let (tr, va) = (synthetic(3, 1), synthetic(1, 2));
    let cfg = small_config(dir.path());
    let full = train_on(&cfg, &dir.path().join("full"), &tr, &va, quiet()).unwrap();
    assert_eq!(full.state.epoch, 2);
    let part = dir.path().join("part");
    let opts = TrainOptions {
        max_epochs_this_call: Some(1),
        ..quiet()
    };
    let first = train_on(&cfg, &part, &tr, &va, opts).unwrap();
    assert_eq!(first.state.epoch, 1);
    assert!(!RunDir(part.clone()).final_model().exists(), "an unfinished run has no final model");
    // Resume reads the data back from the config, so give it files: here, reuse in memory.
    // Each epoch is reported to the callback (here: the command line's curves).
    let reported = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = reported.clone();
    let curves = crate::plot::curves_each_epoch();
    let on_epoch: EpochCallback = std::sync::Arc::new(move |run: &RunDir, state: &TrainState| {
        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        curves(run, state)
    });
    let resumed = resume_with(&part, &tr, &va, TrainOptions { on_epoch: Some(on_epoch), ..quiet() }).unwrap();
    assert_eq!(resumed.state.epoch, 2);
    assert_eq!(reported.load(std::sync::atomic::Ordering::Relaxed), 1, "one epoch, one report");
    // Same learning rates, losses and accuracies (up to the last bits of parallel sums).
    assert_eq!(full.state.history.len(), resumed.state.history.len());
    for (a, b) in full.state.history.iter().zip(&resumed.state.history) {
        assert_eq!((a.lr, a.val_acc), (b.lr, b.val_acc));
        for (x, y) in [(a.train_loss, b.train_loss), (a.val_loss, b.val_loss)] {
            assert!((x - y).abs() <= 1e-6 * x.abs(), "{a:?} vs {b:?}");
        }
    }
    let csv = std::fs::read_to_string(part.join("metrics.csv")).unwrap();
    let parsed = parse_metrics_csv(&csv, &part.join("metrics.csv")).unwrap();
    assert_eq!(parsed.len(), 2);
    assert!(parsed[1].val_balanced_acc > 0.0 && (parsed[1].val_balanced_acc - resumed.state.history[1].val_balanced_acc).abs() < 1e-5);
    // A file from before the balanced-accuracy column still reads; a short row is refused.
    let old = parse_metrics_csv("epoch,lr\n1,1e-3,2.0,0.2,1.9,0.25,0.1,3.0,3.0\n", Path::new("old.csv")).unwrap();
    assert_eq!((old[0].val_acc, old[0].val_balanced_acc), (0.25, 0.0));
    let e = parse_metrics_csv("epoch,lr\n1,1e-3,2.0\n", Path::new("m.csv")).unwrap_err().to_string();
    assert!(e.contains("m.csv, line 2") && e.contains("expected 10 fields"), "{e}");
    assert!(part.join("curves.png").exists() && part.join("model.ferrite").exists());
    // A checkpoint's model carries the run's contract, as the best model does: it can be
    // evaluated with a prior correction.
    let (_, ckpt) = modelfile::load(&part.join("checkpoints/epoch-002/model.ferrite"), &training_device()).unwrap();
    let (_, best) = modelfile::load(&part.join("best.ferrite"), &training_device()).unwrap();
    assert_eq!(ckpt.meta.epoch, Some(2));
    assert!(ckpt.meta.class_priors.is_some() && ckpt.meta.class_priors == best.meta.class_priors && ckpt.meta.labels == best.meta.labels);
    // A second `train` into the same directory is refused.
    assert!(train_on(&cfg, &part, &tr, &va, quiet()).unwrap_err().to_string().contains("resume it"));
}

#[test]
fn non_finite_loss_stops_and_keeps_the_last_good_checkpoint() {
    let _rng = crate::rng_lock();
    let dir = crate::fsutil::TempDir::new().unwrap();
    let run = dir.path().join("run");
    let (tr, va) = (synthetic(2, 1), synthetic(1, 2));
    let mut cfg = small_config(dir.path());
    cfg.epochs = 3;
    cfg.optimizer = OptimizerConfig::Sgd { momentum: 0.9, nesterov: true, weight_decay: 0.0 };
    cfg.schedule = Schedule::Constant;
    let opts = TrainOptions {
        max_epochs_this_call: Some(1),
        ..quiet()
    };
    train_on(&cfg, &run, &tr, &va, opts).unwrap();
    let good = std::fs::read(run.join("checkpoints/epoch-001/model.ferrite")).unwrap();
    // Make the next epoch diverge: an absurd learning rate.
    let state_path = run.join("checkpoints/epoch-001/state.json");
    let mut state: TrainState = serde_json::from_slice(&std::fs::read(&state_path).unwrap()).unwrap();
    state.lr = 1e30;
    std::fs::write(&state_path, serde_json::to_vec(&state).unwrap()).unwrap();
    let err = resume_with(&run, &tr, &va, quiet()).unwrap_err();
    assert!(matches!(err, Error::NonFinite(_)), "{err}");
    assert!(err.to_string().contains("epoch 1"), "{err}");
    assert_eq!(std::fs::read_to_string(run.join("checkpoints/latest")).unwrap(), "epoch-001");
    assert_eq!(std::fs::read(run.join("checkpoints/epoch-001/model.ferrite")).unwrap(), good);
}

/// Regression (fuzz/fuzz_targets/resume.rs): an optimizer state whose tensor lacks a
/// parameter id made burn's loader panic; it is now an error.
#[test]
fn an_optimizer_state_without_parameter_ids_is_refused() {
    let tensor = |id| {
        let data: Vec<u8> = [1.0f32, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        burn_pack::Tensor::new("m".into(), burn_pack::DType::F32, [2], id, burn_pack::Bytes::from_bytes_vec(data))
    };
    let pack = |id| burn_pack::Writer::new(vec![tensor(id)]).into_bytes().unwrap().to_vec();
    assert!(check_optimizer_record(&pack(Some(7))).is_ok());
    let e = check_optimizer_record(&pack(None)).unwrap_err();
    assert!(e.contains("no parameter id"), "{e}");
    assert!(check_optimizer_record(b"not a pack").is_err());
}

#[test]
fn resume_rejects_missing_and_corrupt_run_dirs() {
    let dir = crate::fsutil::TempDir::new().unwrap();
    let err = resume(&dir.path().join("nope"), quiet()).unwrap_err();
    assert!(matches!(err, Error::BadRunDir { .. }) && err.to_string().contains("nope"), "{err}");
    std::fs::write(dir.path().join("config.json"), "{ not json").unwrap();
    let err = resume(dir.path(), quiet()).unwrap_err().to_string();
    assert!(err.contains("config.json is invalid"), "{err}");
    let cfg = small_config(dir.path());
    std::fs::write(dir.path().join("config.json"), serde_json::to_vec(&cfg).unwrap()).unwrap();
    let err = resume(dir.path(), quiet()).unwrap_err().to_string();
    assert!(err.contains("no completed epoch"), "{err}");
    std::fs::create_dir_all(dir.path().join("checkpoints/epoch-001")).unwrap();
    std::fs::write(dir.path().join("checkpoints/latest"), "epoch-001").unwrap();
    std::fs::write(dir.path().join("checkpoints/epoch-001/state.json"), "[]").unwrap();
    let err = resume(dir.path(), quiet()).unwrap_err().to_string();
    assert!(err.contains("state.json is invalid"), "{err}");
}

#[test]
fn plateau_follows_keras() {
    let mut s = TrainState {
        epoch: 0,
        lr: 1e-3,
        plateau_best_loss: f64::INFINITY,
        plateau_bad_epochs: 0,
        best_val_acc: 0.0,
        best_epoch: 0,
        elapsed_seconds: 0.0,
        cosine_anchor: None,
        history: vec![],
    };
    s.plateau_step(1.0, 0.1, 2, 1e-5);
    s.plateau_step(0.9, 0.1, 2, 1e-5);
    assert_eq!(s.lr, 1e-3);
    s.plateau_step(0.95, 0.1, 2, 1e-5);
    assert_eq!(s.lr, 1e-3);
    s.plateau_step(0.9, 0.1, 2, 1e-5); // second epoch without gain: reduce
    assert!((s.lr - 1e-4).abs() < 1e-12);
    for _ in 0..10 {
        s.plateau_step(2.0, 0.1, 2, 1e-5);
    }
    assert_eq!(s.lr, 1e-5, "never below min_lr");
}

#[test]
fn class_weights_follow_the_power_and_average_one() {
    let counts = [400, 100, 400, 400, 400, 400, 400];
    assert!(class_weights(&counts, 0.0).iter().all(|&w| (w - 1.0).abs() < 1e-6));
    let w = class_weights(&counts, 0.5);
    assert!((w[1] / w[0] - 2.0).abs() < 1e-5, "{w:?}");
    let mean: f32 = counts.iter().zip(&w).map(|(&c, w)| c as f32 * w).sum::<f32>() / 2500.0;
    assert!((mean - 1.0).abs() < 1e-5);
}

#[test]
fn mixing_keeps_pixels_in_range_and_weights_the_original_labels_most() {
    let mut rng = StdRng::seed_from_u64(3);
    let n = 8;
    let base: Vec<f32> = (0..n * FACE_PIXELS).map(|i| (i / FACE_PIXELS) as f32 / n as f32).collect();
    let labels: Vec<usize> = (0..n).collect();
    assert!(mix_batch(&mut base.clone(), n, Mix::None, &mut rng).is_none());
    for mix in [Mix::Mixup { alpha: 0.4 }, Mix::Cutmix { alpha: 1.0 }] {
        let mut px = base.clone();
        let (partner, lam) = mix_batch(&mut px, n, mix, &mut rng).unwrap();
        assert!((0.5..=1.0).contains(&lam), "{lam}");
        let mut sorted = partner.clone();
        sorted.sort();
        assert_eq!(sorted, labels, "partners are a permutation of the batch");
        for k in 0..n {
            let face = &px[k * FACE_PIXELS..(k + 1) * FACE_PIXELS];
            let (a, b) = (k as f32 / n as f32, partner[k] as f32 / n as f32);
            // Each face's mean is the label-weighted mean of the two sources.
            let mean = face.iter().sum::<f32>() / FACE_PIXELS as f32;
            assert!((mean - (lam * a + (1.0 - lam) * b)).abs() < 1e-3, "{mix:?} {mean} {lam} {a} {b}");
        }
    }
}

#[test]
fn soft_target_loss_matches_a_hand_computation() {
    let device = training_device();
    let x: Vec<f32> = vec![1.0, 2.0, 0.5, 0.0, -1.0, 0.0, 3.0, 0.2, -0.3, 0.0, 1.5, 0.0, 0.7, -2.0];
    let mut t = vec![0.0f32; 14];
    t[1] = 0.5;
    t[6] = 0.25;
    t[0] = 0.25;
    t[7 + 3] = 1.0;
    let logits = || Tensor::<2>::from_data(TensorData::new(x.clone(), [2, 7]), &device);
    // By hand: log p_k = x_k - ln(sum_j e^x_j).
    let log_p = |row: usize, k: usize| {
        let r = &x[row * 7..row * 7 + 7];
        r[k] as f64 - r.iter().map(|&v| (v as f64).exp()).sum::<f64>().ln()
    };
    let face = |row: usize| -(0..7).map(|k| t[row * 7 + k] as f64 * log_p(row, k)).sum::<f64>();
    let plain: f32 = Loss::default().forward(logits(), &t).into_scalar();
    assert!((plain as f64 - (face(0) + face(1)) / 2.0).abs() < 1e-5, "{plain}");
    // Class weights: face weights sum_k t_k w_k, weighted mean.
    let w = vec![2.0f32, 1.0, 1.0, 3.0, 1.0, 1.0, 0.5];
    let (w0, w1) = (0.25 * 2.0 + 0.5 * 1.0 + 0.25 * 0.5, 3.0);
    let weighted: f32 = Loss { class_weights: Some(w), multi_target: false }.forward(logits(), &t).into_scalar();
    assert!((weighted as f64 - (w0 * face(0) + w1 * face(1)) / (w0 + w1)).abs() < 1e-5, "{weighted}");
    // Multi-target: -ln(sum_k t_k p_k).
    let mt = |row: usize| -(0..7).map(|k| t[row * 7 + k] as f64 * log_p(row, k).exp()).sum::<f64>().ln();
    let multi: f32 = Loss { class_weights: None, multi_target: true }.forward(logits(), &t).into_scalar();
    assert!((multi as f64 - (mt(0) + mt(1)) / 2.0).abs() < 1e-5, "{multi}");
    // One-hot targets give burn's own cross-entropy.
    let labels = vec![3i64, 6];
    let hard = Batch::hard(vec![], labels.clone());
    let ours: f32 = Loss::default().forward(logits(), &hard.targets).into_scalar();
    let y = Tensor::<1, burn::tensor::Int>::from_data(TensorData::new(labels, [2]), &device);
    let burns: f32 = burn::nn::loss::CrossEntropyLossConfig::new().init(&device).forward(logits(), y).into_scalar();
    assert!((ours - burns).abs() < 1e-5, "{ours} vs {burns}");
}

#[test]
fn cosine_warms_up_then_decays_to_the_floor() {
    let mut cfg = small_config(Path::new("."));
    cfg.epochs = 10;
    cfg.lr = 1.0;
    let lr = |step| cosine_step(&cfg, &mut None, cfg.epochs, 1.0, 0.01, step, 100, 1.0);
    assert!(lr(0) < 0.02);
    assert!((lr(99) - 1.0).abs() < 1e-9);
    assert!(lr(500) < lr(200));
    assert!((lr(1000) - 0.01).abs() < 1e-9);
}

/// A re-plan to more epochs (epochs got faster) never raises the rate after warm-up: the
/// decay goes on from where it was, stretched over the new plan, and still ends at the floor.
#[test]
fn a_longer_plan_after_warm_up_only_slows_the_decay() {
    let mut cfg = small_config(Path::new("."));
    cfg.lr = 1.0;
    let mut anchor = None;
    let (mut prev, mut rates) = (0.0, Vec::new());
    for step in 0..2000 {
        // 10 epochs planned until epoch 6, then 20 (epochs became twice as fast).
        let planned = if step < 600 { 10 } else { 20 };
        prev = cosine_step(&cfg, &mut anchor, planned, 1.0, 0.01, step, 100, prev);
        rates.push(prev);
    }
    for w in rates[100..].windows(2) {
        assert!(w[1] <= w[0] + 1e-12, "rate rose from {} to {}", w[0], w[1]);
    }
    assert!((rates[599] - rates[600]).abs() < 1e-2, "no jump at the re-plan");
    assert!((rates[1999] - 0.01).abs() < 1e-4, "{}", rates[1999]);
    assert!(rates[1200] > 0.05, "the longer plan decays more slowly: {}", rates[1200]);
    // A plan that changes every epoch (the machine's speed wobbling) still decays along
    // the cosine's shape and ends at the floor: no restart of the flat top each time.
    let (mut anchor, mut prev, mut rates) = (None, 0.0, Vec::new());
    for step in 0..2000 {
        let planned = if (step / 100) % 2 == 0 { 20 } else { 19 };
        prev = cosine_step(&cfg, &mut anchor, planned, 1.0, 0.01, step, 100, prev);
        rates.push(prev);
    }
    for w in rates[100..].windows(2) {
        assert!(w[1] <= w[0] + 1e-12, "rate rose from {} to {}", w[0], w[1]);
    }
    let plain = |step| cosine_step(&cfg, &mut None, 20, 1.0, 0.01, step, 100, 1.0);
    assert!((rates[1000] - plain(1000)).abs() < 0.08, "halfway {} vs the plain cosine {}", rates[1000], plain(1000));
    assert!(rates[1999] < 0.02, "{}", rates[1999]);
}

#[test]
fn time_budget_plans_the_epochs_that_fit() {
    let mut cfg = small_config(Path::new("."));
    cfg.epochs = 30;
    let row = |epoch: usize, secs: f64, elapsed: f64| EpochRecord {
        epoch,
        lr: 0.0,
        train_loss: 0.0,
        train_acc: 0.0,
        val_loss: 0.0,
        val_acc: 0.0,
        val_macro_f1: 0.0,
        epoch_seconds: secs,
        elapsed_seconds: elapsed,
        val_balanced_acc: 0.0,
    };
    let history = [row(1, 300.0, 300.0), row(2, 360.0, 660.0)];
    assert_eq!(planned_epochs(&cfg, &history), 30, "no budget: the configured epochs");
    cfg.time_budget_minutes = Some(60.0);
    assert_eq!(planned_epochs(&cfg, &[]), 30, "nothing measured yet");
    // 3600 - 660 = 2940 s left; an epoch takes 330 s (median of 300 and 360): 8 more.
    assert_eq!(planned_epochs(&cfg, &history), 10);
    // One epoch slowed by other work does not shorten the plan: median 300 s, 2100 s left.
    let bumpy = [row(1, 300.0, 300.0), row(2, 600.0, 900.0), row(3, 300.0, 1200.0), row(4, 300.0, 1500.0)];
    assert_eq!(planned_epochs(&cfg, &bumpy), 11);
    // The estimate follows the last five epochs.
    let slower: Vec<_> = (1..=8).map(|e| row(e, if e <= 3 { 100.0 } else { 200.0 }, 0.0)).collect();
    assert_eq!(typical_epoch_seconds(&slower), Some(200.0));
    assert_eq!(typical_epoch_seconds(&[]), None);
    cfg.time_budget_minutes = Some(10.0);
    assert_eq!(planned_epochs(&cfg, &history), 2, "over budget: no more epochs");
    cfg.time_budget_minutes = Some(1000.0);
    assert_eq!(planned_epochs(&cfg, &history), 30, "never beyond --epochs");
}

#[test]
fn a_spent_time_budget_stops_training_and_writes_the_model() {
    let _rng = crate::rng_lock();
    let dir = crate::fsutil::TempDir::new().unwrap();
    let (tr, va) = (synthetic(2, 1), synthetic(1, 2));
    let mut cfg = small_config(dir.path());
    cfg.epochs = 5;
    cfg.time_budget_minutes = Some(1e-6);
    let run = dir.path().join("run");
    let out = train_on(&cfg, &run, &tr, &va, quiet()).unwrap();
    assert_eq!(out.state.epoch, 1, "the first epoch measures the speed, then the budget is spent");
    assert!(run.join("model.ferrite").exists());
    let again = resume_with(&run, &tr, &va, quiet()).unwrap();
    assert_eq!(again.state.epoch, 1, "resuming a spent budget trains nothing more");
}

/// The keep-N policy: the newest N up to the current epoch survive, by epoch number.
#[test]
fn keep_n_policy_keeps_the_newest_up_to_the_current_epoch() {
    assert_eq!(checkpoints_to_drop(&[1, 2, 3], 3, 2), vec![1]);
    assert_eq!(checkpoints_to_drop(&[999, 1000, 998], 1000, 2), vec![998], "numbers, not names");
    assert_eq!(checkpoints_to_drop(&[1, 2, 3, 4, 5], 2, 1), vec![1, 3, 4, 5], "later epochs of a run that went back go");
    assert_eq!(checkpoints_to_drop(&[4], 4, 0), Vec::<usize>::new(), "at least one is kept");
    assert_eq!(checkpoints_to_drop(&[], 1, 3), Vec::<usize>::new());
}

/// A run trains in its config's matrix-product precision: the same seeded epoch in bf16 ends
/// with other losses than in f32 (bf16 rounds the wide layers' operands), and the same
/// precision twice gives the same losses.
#[test]
fn training_runs_in_the_configured_precision() {
    if Matmul::new(MatmulPrecision::Bf16).is_err() {
        eprintln!("skipped: this CPU has no AVX512_BF16");
        return;
    }
    let _rng = crate::rng_lock();
    let dir = crate::fsutil::TempDir::new().unwrap();
    let (tr, va) = (synthetic(3, 1), synthetic(1, 2));
    let run = |name: &str, matmul: MatmulPrecision| {
        let mut cfg = small_config(dir.path());
        cfg.epochs = 1;
        cfg.matmul = matmul;
        let outcome = train_on(&cfg, &dir.path().join(name), &tr, &va, quiet()).unwrap();
        let r = &outcome.state.history[0];
        (r.train_loss, r.val_loss)
    };
    let (f32_a, f32_b, bf16) = (run("f32a", MatmulPrecision::F32), run("f32b", MatmulPrecision::F32), run("bf16", MatmulPrecision::Bf16));
    assert_eq!(f32_a, f32_b, "a seeded epoch repeats");
    assert_ne!(f32_a, bf16, "the bf16 run computed exactly what the f32 run did: the precision was not applied");
}

#[test]
fn a_run_can_start_from_a_model_of_the_same_network_only() {
    let dir = crate::fsutil::TempDir::new().unwrap();
    let device = training_device();
    let mut spec = ModelSpec::new(Arch::Compact);
    spec.width = Some(4);
    let net = Network::new(&spec, &device);
    let header = ModelHeader::new(spec.clone(), ModelMeta::at_epoch(1));
    let path = dir.path().join("start.ferrite");
    modelfile::save(&path, &net, &header).unwrap();
    let init = path.to_string_lossy().into_owned();
    let loaded = initial_weights(&init, &spec, &device).unwrap();
    // The same weights: the same probabilities for the same faces (inference mode).
    let faces = synthetic(2, 5).faces;
    let eval = device.clone().without_autodiff();
    let probs = |n: &Network| crate::model::infer::predict_probs(&n.valid().to_device(&eval), &faces, &eval);
    let (a, b) = (probs(&loaded), probs(&net));
    assert_eq!(a, b);
    let mut other = spec.clone();
    other.width = Some(8);
    let e = initial_weights(&init, &other, &device).unwrap_err();
    assert!(matches!(e, Error::Config(_)) && e.to_string().contains("different network"), "{e}");
    assert!(initial_weights("/nonexistent/model.ferrite", &spec, &device).is_err());
    // A file with a prior correction folded in (as the embedded default has) starts the run
    // from the network without it.
    let mut priored = header.clone();
    priored.meta.class_priors = Some([0.09, 0.01, 0.03, 0.28, 0.35, 0.14, 0.10]);
    let (corrected, corrected_header) = crate::model::infer::correct_priors(net.clone(), priored, 0.5).unwrap();
    let corrected_path = dir.path().join("corrected.ferrite");
    modelfile::save(&corrected_path, &corrected, &corrected_header).unwrap();
    assert_ne!(probs(&initial_weights(&init, &spec, &device).unwrap()), probs(&modelfile::load(&corrected_path, &device).unwrap().0));
    let restarted = probs(&initial_weights(&corrected_path.to_string_lossy(), &spec, &device).unwrap());
    for (x, y) in restarted.iter().flatten().zip(b.iter().flatten()) {
        assert!((x - y).abs() < 1e-5, "{x} vs {y}");
    }
    // A run from a half-precision file (as the embedded models are stored) trains: its
    // weights are tracked for gradients.
    let half = dir.path().join("half.ferrite");
    modelfile::save_with(&half, &net, &header, crate::model::file::Precision::F16).unwrap();
    let mut cfg = TrainConfig::new(spec, dir.path().join("unused"));
    cfg.epochs = 1;
    cfg.batch_size = 8;
    cfg.init = Some(half.to_string_lossy().into_owned());
    let done = train_on(&cfg, &dir.path().join("run"), &synthetic(2, 1), &synthetic(1, 2), quiet()).unwrap();
    assert_eq!(done.state.epoch, 1);
}

/// The fit loop, taken apart into its parts (issue 46), trains as the single function before it
/// did: the same seed gives the metrics.csv that code wrote (tests/fixtures/train/, written by
/// commit 69adcbd's fit), learning rates exactly, losses and accuracies up to the last bits of
/// the kernels' sums (another CPU may dispatch other SIMD), for a plateau run that stops early
/// and a cosine run with mixup.
#[test]
fn the_fit_loop_repeats_the_recorded_metrics() {
    let _rng = crate::rng_lock();
    let dir = crate::fsutil::TempDir::new().unwrap();
    let (tr, va) = (synthetic(6, 11), synthetic(2, 12));
    let mut spec = ModelSpec::new(Arch::Compact);
    spec.width = Some(4);
    let mut cfg = TrainConfig::new(spec, dir.path().join("unused"));
    cfg.epochs = 6;
    cfg.batch_size = 8;
    cfg.lr = 3e-3;
    cfg.schedule = Schedule::Plateau { factor: 0.5, patience: 1, min_lr: 1e-4 };
    cfg.early_stop_patience = 2;
    cfg.label_smoothing = 0.1;
    cfg.class_weight_power = 0.5;
    cfg.augment.shift = 2;
    cfg.augment.rotate_deg = 5.0;
    cfg.keep_checkpoints = 2;
    cfg.seed = 7;
    let mut cosine = cfg.clone();
    cosine.schedule = Schedule::Cosine { warmup_epochs: 1.0, min_lr: 1e-4 };
    cosine.mix = Mix::Mixup { alpha: 0.2 };
    cosine.early_stop_patience = 0;
    cosine.epochs = 3;
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/train");
    for (cfg, name, golden) in [(&cfg, "plateau", "golden-metrics.csv"), (&cosine, "cosine", "golden-metrics-cosine.csv")] {
        let out = train_on(cfg, &dir.path().join(name), &tr, &va, quiet()).unwrap();
        // The plateau run stops early at epoch 3 (no gain on epoch 1's accuracy for 2 epochs).
        assert_eq!(out.stopped_early, name == "plateau", "{name}");
        let got = parse_metrics_csv(&std::fs::read_to_string(dir.path().join(name).join("metrics.csv")).unwrap(), Path::new(name)).unwrap();
        let path = fixtures.join(golden);
        let want = parse_metrics_csv(&std::fs::read_to_string(&path).unwrap(), &path).unwrap();
        assert_eq!(got.len(), want.len(), "{name}: epochs run");
        assert_eq!(out.state.history.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert_eq!((g.epoch, g.lr), (w.epoch, w.lr), "{name}: {g:?} vs {w:?}");
            for (a, b) in [(g.train_loss, w.train_loss), (g.val_loss, w.val_loss)] {
                assert!((a - b).abs() <= 1e-3 * b.abs().max(1.0), "{name}: {g:?} vs {w:?}");
            }
            // One face more or less on a CPU whose sums round otherwise.
            assert!((g.train_acc - w.train_acc).abs() <= 1.0 / tr.len() as f64 + 1e-9, "{name}: {g:?} vs {w:?}");
            assert!((g.val_acc - w.val_acc).abs() <= 1.0 / va.len() as f64 + 1e-9, "{name}: {g:?} vs {w:?}");
        }
    }
}

#[test]
fn the_builder_checks_and_names_every_setting_and_picks_the_recipe() {
    let dir = crate::fsutil::TempDir::new().unwrap();
    let setting = |b: TrainerBuilder| match b.build() {
        Err(Error::Setting { name, .. }) => name,
        other => panic!("expected a setting error, got {:?}", other.map(|t| t.config().clone())),
    };
    let base = || Trainer::builder().faces(synthetic(1, 1)).out(dir.path().join("run"));
    assert_eq!(setting(Trainer::builder().out(dir.path())), "data");
    assert_eq!(setting(Trainer::builder().faces(synthetic(1, 1))), "out");
    assert_eq!(setting(base().epochs(0)), "epochs");
    assert_eq!(setting(base().batch_size(0)), "batch_size");
    assert_eq!(setting(base().lr(-1.0)), "lr");
    assert_eq!(setting(base().val_fraction(0.95)), "val_fraction");
    assert_eq!(setting(base().label_smoothing(1.0)), "label_smoothing");
    assert_eq!(setting(base().class_weight_power(3.0)), "class_weight_power");
    assert_eq!(setting(base().time_budget_minutes(Some(0.0))), "time_budget_minutes");
    assert_eq!(setting(base().replicas(17)), "replicas");
    assert_eq!(setting(base().keep_checkpoints(0)), "keep_checkpoints");
    assert_eq!(setting(base().mix(Mix::Mixup { alpha: 0.0 })), "mix");
    assert_eq!(setting(base().augment(AugmentConfig { zoom: 2.0, ..AugmentConfig::default() })), "augment");
    assert_eq!(setting(base().rows([("a.png", "happy")]).val_faces(synthetic(1, 2))), "val");
    assert_eq!(setting(base().val("Cargo.toml")), "val");
    assert_eq!(setting(Trainer::builder().rows(Vec::<(PathBuf, String)>::new()).out(dir.path())), "data");
    // A missing path is an I/O error naming it; an unknown class names the class and its image.
    let e = Trainer::builder().data(dir.path().join("nothere")).out(dir.path().join("r")).build().unwrap_err();
    assert!(matches!(&e, Error::Io { path, .. } if path.ends_with("nothere")), "{e}");
    let e = Trainer::builder().rows([("faces/x.png", "happy"), ("faces/y.png", "contempt")]).out(dir.path().join("r")).build().unwrap_err().to_string();
    assert!(e.contains("y.png") && e.contains("'contempt'"), "{e}");
    // Recipes: from scratch by default, fine-tuning with `init` (and its network and contrast);
    // a setting given wins over either.
    let scratch = base().build().unwrap();
    let r = Recipe::scratch();
    assert_eq!((scratch.config().epochs, scratch.config().lr, scratch.config().batch_size), (r.epochs, r.lr, r.batch_size));
    assert_eq!(scratch.config().spec, ModelSpec::new(Arch::default()));
    let fine = base().init("embedded:default").build().unwrap();
    let (f, (_, header)) = (Recipe::fine_tune(), crate::model::embedded::named("default", &crate::device::inference_device()).unwrap());
    let c = fine.config();
    assert_eq!((c.epochs, c.lr, c.batch_size, &c.schedule, &c.augment), (f.epochs, f.lr, f.batch_size, &f.schedule, &f.augment));
    assert_eq!((c.early_stop_patience, c.val_fraction, c.time_budget_minutes), (f.early_stop_patience, f.val_fraction, f.time_budget_minutes));
    assert_eq!((&c.spec, c.contrast), (&header.spec, header.contrast()));
    let given = base().init("embedded:default").lr(1e-3).time_budget_minutes(None).build().unwrap();
    assert_eq!((given.config().lr, given.config().time_budget_minutes, given.config().epochs), (1e-3, None, f.epochs));
    assert_ne!(r, f, "the two recipes differ");
}

#[test]
fn rows_train_from_the_runs_own_list_and_a_missing_class_is_reported() {
    let _rng = crate::rng_lock();
    let dir = crate::fsutil::TempDir::new().unwrap();
    // Generated faces without neutral, saved as PNGs and given as rows of (image, class name).
    let ds = synthetic(4, 3);
    let mut rows = Vec::new();
    for i in (0..ds.len()).filter(|&i| ds.labels[i] != Emotion::Neutral) {
        let p = dir.path().join(format!("faces/{i}.png"));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        image::GrayImage::from_raw(48, 48, ds.face(i).to_vec()).unwrap().save(&p).unwrap();
        rows.push((p, ds.labels[i].name().to_uppercase()));
    }
    let mut spec = ModelSpec::new(Arch::Compact);
    spec.width = Some(4);
    let steps = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = steps.clone();
    let run = dir.path().join("run");
    let outcome = Trainer::builder()
        .rows(rows.clone())
        .val_fraction(0.25)
        .network(spec)
        .epochs(3)
        .batch_size(4)
        .out(&run)
        // Stop in the second epoch: the first is kept, and resume finishes the run.
        .on_step(std::sync::Arc::new(move |p: &StepProgress| {
            count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            p.epoch < 2
        }))
        .build()
        .unwrap()
        .fit()
        .unwrap();
    assert!(outcome.interrupted && !outcome.stopped_early);
    assert_eq!(outcome.missing_classes, vec![Emotion::Neutral]);
    assert_eq!(outcome.state.epoch, 1);
    assert!(!RunDir(run.clone()).final_model().exists(), "an interrupted run has no final model");
    let listed = std::fs::read_to_string(run.join(TRAIN_LIST)).unwrap();
    assert_eq!(listed.lines().count(), rows.len() + 1);
    let resumed = resume(&run, quiet()).unwrap();
    assert_eq!(resumed.state.history.iter().map(|r| r.epoch).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(resumed.missing_classes, vec![Emotion::Neutral]);
    assert!(RunDir(run.clone()).final_model().exists());
    // Scored on its own faces, the report names the class without faces.
    let device = crate::device::inference_device();
    let (net, _) = crate::model::source::ModelSource::from(run.as_path()).load(&device).unwrap();
    let report = evaluate(&net, &Dataset::load(&run.join(TRAIN_LIST), &LoadOptions::default()).unwrap(), &device);
    assert_eq!(report.absent, vec!["neutral".to_string()]);
    assert!(report.to_text().contains("no faces of: neutral"));
}
