//! Run directories, checkpoints (written atomically, the newest N kept) and resuming from them.

use super::*;

/// Files inside a run directory.
pub struct RunDir(pub PathBuf);

impl RunDir {
    pub fn config(&self) -> PathBuf {
        self.0.join("config.json")
    }
    pub fn metrics(&self) -> PathBuf {
        self.0.join("metrics.csv")
    }
    pub fn curves(&self) -> PathBuf {
        self.0.join("curves.png")
    }
    pub fn best(&self) -> PathBuf {
        self.0.join(crate::model::file::BEST_MODEL_FILE)
    }
    pub fn final_model(&self) -> PathBuf {
        self.0.join(crate::model::file::FINAL_MODEL_FILE)
    }
    pub fn checkpoints(&self) -> PathBuf {
        self.0.join("checkpoints")
    }
    pub(crate) fn latest_pointer(&self) -> PathBuf {
        self.checkpoints().join("latest")
    }
    /// The model to use from this run: the final model if training finished, else the best.
    pub fn model_for_inference(&self) -> PathBuf {
        crate::model::file::run_dir_model(&self.0)
    }
}

pub(crate) fn check_fresh(run_dir: &Path) -> Result<()> {
    if RunDir(run_dir.to_path_buf()).config().exists() {
        return Err(Error::RunExists { path: run_dir.to_path_buf() });
    }
    Ok(())
}

/// Everything a run directory's files hold to resume training from a checkpoint.
pub struct ResumePoint {
    pub cfg: TrainConfig,
    pub state: TrainState,
    pub net: Network,
    pub optim: ModuleOptimizer,
}

/// Decode a run's `config.json` and one checkpoint's `state.json`, `model.ferrite` and
/// `optimizer.bpk` (as bytes; `ckpt` names the checkpoint in errors). Every malformed part is
/// an error naming the file, never a panic (fuzzed: `fuzz/fuzz_targets/resume.rs`).
pub fn decode_resume_point(
    config: &[u8],
    state: &[u8],
    model: &[u8],
    optimizer: &[u8],
    ckpt: &Path,
    device: &Device,
) -> Result<ResumePoint> {
    let cfg = parse_run_config(config, ckpt)?;
    let state = parse_train_state(state, ckpt)?;
    let (net, optim) = decode_weights(&cfg, model, optimizer, ckpt, device)?;
    Ok(ResumePoint { cfg, state, net, optim })
}

/// A run's `config.json`; `dir` names the run or checkpoint in errors.
pub(crate) fn parse_run_config(bytes: &[u8], dir: &Path) -> Result<TrainConfig> {
    serde_json::from_slice(bytes).map_err(|e| Error::BadRunDir {
        path: dir.to_path_buf(),
        message: format!("config.json is invalid: {e}"),
    })
}

/// A checkpoint's `state.json`.
pub(crate) fn parse_train_state(bytes: &[u8], ckpt: &Path) -> Result<TrainState> {
    serde_json::from_slice(bytes).map_err(|e| Error::BadRunDir {
        path: ckpt.to_path_buf(),
        message: format!("{}/state.json is invalid: {e}", ckpt.display()),
    })
}

/// A checkpoint's network and optimizer state.
pub(crate) fn decode_weights(cfg: &TrainConfig, model: &[u8], optimizer: &[u8], ckpt: &Path, device: &Device) -> Result<(Network, ModuleOptimizer)> {
    let bad = |m: String| Error::BadRunDir {
        path: ckpt.to_path_buf(),
        message: m,
    };
    let (net, _) = modelfile::decode(model, &ckpt.join("model.ferrite"), device)?;
    check_optimizer_record(optimizer).map_err(|e| bad(format!("optimizer state is invalid: {e}")))?;
    let record = OptimizerRecord::from_bytes(Bytes::from_bytes_vec(optimizer.to_vec()))
        .map_err(|e| bad(format!("optimizer state is invalid: {e}")))?;
    Ok((net, build_optimizer(cfg).load_record(record)))
}

/// burn's `ModuleOptimizer::load_record` panics on a record tensor without a parameter id
/// (found by `fuzz/fuzz_targets/resume.rs`): refuse such a state before burn sees it.
pub(crate) fn check_optimizer_record(bytes: &[u8]) -> std::result::Result<(), String> {
    let reader = burn_pack::Reader::from_bytes(Bytes::from_bytes_vec(bytes.to_vec())).map_err(|e| e.to_string())?;
    for tensor in reader.into_tensors().map_err(|e| e.to_string())? {
        let (name, _, _, id, _) = tensor.into_parts().map_err(|e| e.to_string())?;
        if id.is_none() {
            return Err(format!("tensor '{name}' has no parameter id"));
        }
    }
    Ok(())
}

pub(crate) fn resume_impl(run_dir: &Path, data: Option<(&Dataset, &Dataset)>, opts: TrainOptions) -> Result<TrainOutcome> {
    let run = RunDir(run_dir.to_path_buf());
    let bad = |m: String| Error::BadRunDir {
        path: run_dir.to_path_buf(),
        message: m,
    };
    if !run_dir.is_dir() {
        return Err(bad("no such directory".into()));
    }
    // The same steps as decode_resume_point, file by file, so that each problem is reported
    // before the next file is read.
    let cfg_bytes = std::fs::read(run.config()).map_err(|e| bad(format!("cannot read config.json: {e}")))?;
    let cfg = parse_run_config(&cfg_bytes, run_dir)?;
    let latest = std::fs::read_to_string(run.latest_pointer())
        .map_err(|e| bad(format!("no completed epoch to resume from (checkpoints/latest: {e})")))?;
    let ckpt = run.checkpoints().join(latest.trim());
    let read = |name: &str| std::fs::read(ckpt.join(name)).map_err(|e| bad(format!("{}: {e}", ckpt.join(name).display())));
    let state = parse_train_state(&read("state.json")?, &ckpt)?;
    let device = training_device();
    let (net, optim) = decode_weights(&cfg, &read("model.ferrite")?, &read("optimizer.bpk")?, &ckpt, &device)?;
    match data {
        Some((tr, va)) => fit(&cfg, &run, net, optim, state, tr, va, &device, opts),
        None => {
            let (tr, va) = load_data(&cfg)?;
            fit(&cfg, &run, net, optim, state, &tr, &va, &device, opts)
        }
    }
}

pub(crate) fn save_checkpoint(
    run: &RunDir,
    cfg: &TrainConfig,
    net: &Network,
    optim: &ModuleOptimizer,
    state: &TrainState,
    meta: crate::model::meta::ModelMeta,
) -> Result<()> {
    let dir_name = format!("epoch-{:03}", state.epoch);
    let tmp = run.checkpoints().join(format!(".{dir_name}.tmp"));
    let dst = run.checkpoints().join(&dir_name);
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let header = ModelHeader::new(cfg.spec.clone(), meta);
    write_atomic(&tmp.join("model.ferrite"), &modelfile::encode(net, &header)?)?;
    let optim_bytes = optim
        .into_bytes()
        .map_err(|e| Error::Serialize { what: "the optimizer state", source: e.to_string().into() })?;
    write_atomic(&tmp.join("optimizer.bpk"), &optim_bytes)?;
    write_atomic(&tmp.join("state.json"), &serde_json::to_vec_pretty(state).map_err(|e| Error::Serialize { what: "the training state", source: e.into() })?)?;
    let _ = std::fs::remove_dir_all(&dst);
    std::fs::rename(&tmp, &dst).map_err(|e| Error::io(&dst, e))?;
    write_atomic(&run.latest_pointer(), dir_name.as_bytes())?;
    // Keep the newest `keep_checkpoints` (epoch numbers, not names, decide: epoch-1000 > epoch-999).
    if let Ok(entries) = std::fs::read_dir(run.checkpoints()) {
        let found: Vec<(usize, PathBuf)> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let epoch = name.strip_prefix("epoch-")?.parse::<usize>().ok()?;
                Some((epoch, e.path()))
            })
            .collect();
        let epochs: Vec<usize> = found.iter().map(|(e, _)| *e).collect();
        let drop = checkpoints_to_drop(&epochs, state.epoch, cfg.keep_checkpoints);
        for (_, path) in found.into_iter().filter(|(e, _)| drop.contains(e)) {
            let _ = std::fs::remove_dir_all(path);
        }
    }
    Ok(())
}

/// The keep-N policy: of the checkpoints of `epochs`, those to delete once epoch `current` is
/// saved, keeping the newest `keep` (at least one) up to `current`. Checkpoints from after
/// `current` (a resumed run that went back) are dropped first. Sorted by epoch.
pub fn checkpoints_to_drop(epochs: &[usize], current: usize, keep: usize) -> Vec<usize> {
    let mut sorted = epochs.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let (newer, kept): (Vec<usize>, Vec<usize>) = sorted.into_iter().partition(|e| *e > current);
    let surplus = kept.len().saturating_sub(keep.max(1));
    let mut drop: Vec<usize> = kept.into_iter().take(surplus).chain(newer).collect();
    drop.sort_unstable();
    drop
}
