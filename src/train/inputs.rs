//! The data a run trains on: loading as the config says (FER+ votes too) and the validation split.

use super::*;

/// Load train and validation data as the config says (with FER+ labels if it names them).
pub fn load_data(cfg: &TrainConfig) -> Result<(Dataset, Dataset)> {
    let opts = LoadOptions {
        skip_bad: cfg.skip_bad,
        usage: None,
        max_per_class: cfg.max_per_class,
        contrast: cfg.contrast,
    };
    // With FER+ labels, per-class caps apply to the FER+ labels (after the join).
    // Validation is scored against the FER+ majority, whatever the training mode.
    let load = |path: &Path, usage: &str, votes: Option<&PathBuf>, train: bool| -> Result<Dataset> {
        let mut o = LoadOptions {
            usage: path.is_file().then(|| usage.to_string()),
            ..opts.clone()
        };
        match &cfg.ferplus {
            None => Dataset::load(path, &o),
            Some(fp) => {
                o.max_per_class = None;
                let mode = if train { fp.mode } else { LabelMode::Majority };
                let own = if train { fp.own_label_weight } else { 0.0 };
                let ds = load_ferplus(path, &o, mode, votes.map(PathBuf::as_path), own)?;
                Ok(match cfg.max_per_class {
                    Some(m) => ds.take_per_class(m),
                    None => ds,
                })
            }
        }
    };
    let fp_votes = |train: bool| cfg.ferplus.as_ref().and_then(|f| if train { f.train_votes.as_ref() } else { f.val_votes.as_ref() });
    let mut train = load(&cfg.train_data, "Training", fp_votes(true), true)?;
    if let Some(t) = &cfg.teacher {
        let table = crate::data::teacher::read_teacher(&t.path)?;
        let (mixed, stats) = crate::data::teacher::apply(train, &cfg.train_data, &table, t.weight)?;
        tracing::info!(?stats, weight = t.weight, "teacher {} mixed into the targets", t.path.display());
        train = mixed;
    }
    match &cfg.val_data {
        Some(v) => Ok((train, load(v, "PublicTest", fp_votes(false), false)?)),
        None => Ok(split(train, cfg.val_fraction, cfg.seed)),
    }
}

/// A labelled data set to score: with its own labels (`ferplus` None), or FER+'s majority
/// (`ferplus` Some: the vote file, or None to find it beside the data). Evaluation in the
/// command line and the Python package both read data this way.
pub fn load_labelled(path: &Path, opts: &LoadOptions, ferplus: Option<Option<&Path>>) -> Result<Dataset> {
    match ferplus {
        None => Dataset::load(path, opts),
        Some(votes) => load_ferplus(path, opts, LabelMode::Majority, votes, 0.0),
    }
}

/// Load a data set with FER+ labels in `mode`: a FER+ folder with its `label.csv`, or a
/// FER2013 folder or CSV joined with `votes` (default: [`crate::data::ferplus::default_votes`]).
/// `own_weight` > 0 mixes each face's own label (its folder or CSV row) into its target
/// ([`crate::data::ferplus::apply`]); a FER+ folder has no labels of its own to mix.
pub fn load_ferplus(path: &Path, opts: &LoadOptions, mode: LabelMode, votes: Option<&Path>, own_weight: f32) -> Result<Dataset> {
    if own_weight > 0.0 && crate::data::ferplus::is_ferplus_folder(path) {
        return Err(Error::BadDataset {
            path: path.to_path_buf(),
            message: "a FER+ image folder has no FER2013 labels of its own to mix into the targets; use the FER2013 folders or CSV with their vote file".into(),
        });
    }
    if crate::data::ferplus::is_ferplus_folder(path) && votes.is_none() {
        let (ds, stats) = crate::data::ferplus::load_folder(path, mode, opts)?;
        tracing::info!(?stats, "FER+ folder {}", path.display());
        return Ok(ds);
    }
    let votes_path = match votes {
        Some(v) => v.to_path_buf(),
        None => crate::data::ferplus::default_votes(path).ok_or_else(|| Error::BadDataset {
            path: path.to_path_buf(),
            message: "no FER+ vote file found beside it (ferplus/NAME.csv or fer2013new.csv); name one".into(),
        })?,
    };
    let table = crate::data::ferplus::read_votes(&votes_path)?;
    let ds = Dataset::load(path, opts)?;
    let (ds, stats) = crate::data::ferplus::apply(ds, path, &table, mode, own_weight)?;
    tracing::info!(?stats, "FER+ votes {} on {}", votes_path.display(), path.display());
    Ok(ds)
}

/// Seeded, stratified split of a data set into (train, held-out).
pub fn split(ds: Dataset, fraction: f64, seed: u64) -> (Dataset, Dataset) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5EED_5EED);
    let mut held = vec![false; ds.len()];
    for e in Emotion::ALL {
        let mut idx: Vec<usize> = (0..ds.len()).filter(|&i| ds.labels[i] == e).collect();
        idx.shuffle(&mut rng);
        let k = (idx.len() as f64 * fraction).round() as usize;
        for &i in &idx[..k] {
            held[i] = true;
        }
    }
    let (held_idx, kept_idx): (Vec<usize>, Vec<usize>) = (0..ds.len()).partition(|&i| held[i]);
    let mut a = ds.subset(&kept_idx);
    let b = ds.subset(&held_idx);
    a.skipped = ds.skipped;
    (a, b)
}
