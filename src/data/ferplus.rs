//! FER+ crowd labels (ten votes per face): the three file forms, the FER+ paper's label modes,
//! and joining the votes onto a loaded FER2013 data set.
//!
//! Vote columns, in FER+'s order: `neutral, happiness, surprise, sadness, anger, disgust, fear,
//! contempt, unknown, NF`. ferrite has no contempt class: contempt votes are dropped before a
//! distribution is formed, and a face whose majority is contempt, `unknown` or `NF` (not a face)
//! has no FER+ label.
//!
//! The forms read here:
//! - the shared data set's `ferplus/{train,val}.csv` (`file,ferplus_name,<10 votes>`, `file` a
//!   path under the image folder);
//! - Microsoft's `fer2013new.csv` (`Usage,Image name,<10 votes>`, one row per row of the
//!   original `fer2013.csv`, matched by row number);
//! - a FER+ image folder (`FER2013Train/` ...): `fer<row>.png` images with a `label.csv` of
//!   `name,box,<10 votes>` and no header ([`load_folder`]).

use crate::data::{Dataset, read_face};
use crate::emotion::Emotion;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The ten vote columns, in FER+'s file order.
pub const COLUMNS: [&str; 10] = [
    "neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF",
];

/// ferrite's class for each of FER+'s first eight columns (`None`: contempt).
const CLASS_OF_COLUMN: [Option<Emotion>; 8] = [
    Some(Emotion::Neutral),
    Some(Emotion::Happy),
    Some(Emotion::Surprise),
    Some(Emotion::Sad),
    Some(Emotion::Angry),
    Some(Emotion::Disgust),
    Some(Emotion::Fear),
    None,
];

/// One face's ten vote counts, in [`COLUMNS`] order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Votes(pub [u16; 10]);

/// How FER+ votes become training targets (the FER+ paper's four modes, Barsoum et al. 2016).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum LabelMode {
    /// One-hot on the majority emotion ([`Votes::majority`]).
    Majority,
    /// The paper's processed vote distribution; each time a face is shown, one label is drawn
    /// from it (the paper's "probability" mode).
    Probability,
    /// Cross-entropy against the processed vote distribution as a soft target (the paper's
    /// "crossentropy" mode).
    #[default]
    Crossentropy,
    /// Every emotion with >= 30% of the votes counts as right: loss `-log(sum of their
    /// probabilities)` (the paper's "multi_target" mode).
    MultiTarget,
}

impl Votes {
    /// Total votes.
    pub fn total(&self) -> u32 {
        self.0.iter().map(|&v| v as u32).sum()
    }

    /// The FER+ majority label used for evaluation: the column with the most votes, if it is
    /// unique and one of the seven emotions (ties, contempt, `unknown` and `NF` give `None`).
    pub fn majority(&self) -> Option<Emotion> {
        let max = *self.0.iter().max()?;
        if max == 0 || self.0.iter().filter(|&&v| v == max).count() != 1 {
            return None;
        }
        let col = self.0.iter().position(|&v| v == max)?;
        CLASS_OF_COLUMN.get(col).copied().flatten()
    }

    /// The training target for `mode` over ferrite's seven classes (sums to 1), or `None` when
    /// the face is left out (no usable emotion by the paper's rules, or only contempt).
    ///
    /// `Probability` and `Crossentropy` follow the paper's processing: single votes are dropped
    /// as outliers, then the most-voted emotions are taken (at most three, ties together) until
    /// they hold 75% of the votes; a face where `unknown`/`NF` is reached first, or whose kept
    /// emotions hold no more than half the votes, is left out. `MultiTarget` keeps every emotion
    /// with at least 30% of the votes (the mask, normalised), leaving a face out when those hold
    /// no more than half. Contempt's share is then dropped and the rest renormalised.
    pub fn target(&self, mode: LabelMode) -> Option<[f32; Emotion::COUNT]> {
        let kept: [f64; 10] = match mode {
            LabelMode::Majority => {
                let e = self.majority()?;
                let mut t = [0.0f32; Emotion::COUNT];
                t[e.index()] = 1.0;
                return Some(t);
            }
            LabelMode::Probability | LabelMode::Crossentropy => self.paper_distribution()?,
            LabelMode::MultiTarget => {
                let raw = self.without_single_votes();
                let sum: f64 = raw.iter().sum();
                let mut mask = [0.0f64; 10];
                let mut held = 0.0;
                for i in 0..10 {
                    if sum > 0.0 && raw[i] >= 0.3 * sum {
                        mask[i] = 1.0;
                        held += raw[i];
                    }
                }
                if held <= 0.5 * sum || mask[8] > 0.0 || mask[9] > 0.0 {
                    return None;
                }
                mask
            }
        };
        let mut t = [0.0f32; Emotion::COUNT];
        for (col, class) in CLASS_OF_COLUMN.iter().enumerate() {
            if let Some(e) = class {
                t[e.index()] += kept[col] as f32;
            }
        }
        let s: f32 = t.iter().sum();
        if s <= 0.0 {
            return None;
        }
        t.iter_mut().for_each(|v| *v /= s);
        Some(t)
    }

    fn without_single_votes(&self) -> [f64; 10] {
        self.0.map(|v| if v <= 1 { 0.0 } else { v as f64 })
    }

    /// The FER+ paper's `_process_data` for its probability/crossentropy modes, over all ten
    /// columns (`None`: the paper marks the face unknown).
    fn paper_distribution(&self) -> Option<[f64; 10]> {
        let mut raw = self.without_single_votes();
        let sum: f64 = raw.iter().sum();
        if sum <= 0.0 {
            return None;
        }
        let mut emotion = [0.0f64; 10];
        let (mut sum_part, mut count, mut valid) = (0.0, 0, true);
        while sum_part < 0.75 * sum && count < 3 && valid {
            let maxval = raw.iter().copied().fold(0.0, f64::max);
            if maxval <= 0.0 {
                break;
            }
            for i in 0..10 {
                if raw[i] == maxval {
                    emotion[i] = maxval;
                    raw[i] = 0.0;
                    sum_part += maxval;
                    count += 1;
                    if i >= 8 {
                        valid = false;
                        if emotion.iter().sum::<f64>() > maxval {
                            emotion[i] = 0.0;
                            count -= 1;
                        }
                        break;
                    }
                }
            }
        }
        let kept: f64 = emotion.iter().sum();
        if kept <= 0.5 * sum || count > 3 || emotion[8] > 0.0 || emotion[9] > 0.0 {
            return None;
        }
        Some(emotion)
    }
}

/// Split one CSV line into fields, honouring double quotes (FER+'s `box` column is
/// `"(0, 0, 48, 48)"`).
pub fn split_csv_line(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    fields.push(cur);
    fields.into_iter().map(|f| f.trim().to_string()).collect()
}

/// Parse the ten vote fields (`fields` must hold exactly ten).
fn parse_votes(fields: &[String]) -> std::result::Result<Votes, String> {
    if fields.len() != 10 {
        return Err(format!("expected 10 vote columns ({}), found {}", COLUMNS.join(","), fields.len()));
    }
    let mut v = [0u16; 10];
    for (i, f) in fields.iter().enumerate() {
        v[i] = f
            .parse::<u16>()
            .ok()
            .filter(|&n| n <= 1000)
            .ok_or_else(|| format!("field '{}': '{f}' is not a vote count", COLUMNS[i]))?;
    }
    Ok(Votes(v))
}

/// The votes of a file, keyed as its form keys faces.
#[derive(Debug, Clone, Default)]
pub struct VoteTable {
    /// Key -> votes: a path under the image folder (shared form), `#ROW` (the 0-based data row
    /// of `fer2013.csv`, Microsoft's `fer2013new.csv`) or an image name (`label.csv`).
    pub votes: HashMap<String, Votes>,
    pub path: PathBuf,
}

/// Read a FER+ vote file in any of its three forms (told apart by the header line).
pub fn read_votes(path: &Path) -> Result<VoteTable> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    parse_vote_file(&text, path)
}

/// Parse the text of a FER+ vote file (any of its three forms); errors name `path` and the line.
pub fn parse_vote_file(text: &str, path: &Path) -> Result<VoteTable> {
    let bad = |line: usize, message: String| Error::BadCsvRow {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut table = VoteTable {
        votes: HashMap::new(),
        path: path.to_path_buf(),
    };
    #[derive(PartialEq)]
    enum Form {
        Shared,
        Microsoft,
        LabelCsv,
    }
    let mut form = None;
    let mut data_row = 0usize;
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let fields = split_csv_line(line);
        if form.is_none() {
            let first = fields[0].to_ascii_lowercase();
            form = Some(if first == "file" {
                Form::Shared
            } else if first == "usage" {
                Form::Microsoft
            } else {
                Form::LabelCsv
            });
            if form != Some(Form::LabelCsv) {
                let expected = if form == Some(Form::Shared) { "ferplus_name" } else { "image name" };
                if fields.get(1).map(|f| f.to_ascii_lowercase()) != Some(expected.into()) || fields.len() != 12 {
                    return Err(bad(line_no, format!("header: expected 12 columns, the second '{expected}'")));
                }
                continue;
            }
        }
        if fields.len() != 12 {
            return Err(bad(line_no, format!("expected 12 comma-separated fields, found {}", fields.len())));
        }
        let votes = parse_votes(&fields[2..]).map_err(|m| bad(line_no, m))?;
        let key = match form {
            Some(Form::Shared) => fields[0].replace('\\', "/"),
            Some(Form::Microsoft) => {
                let k = format!("#{data_row}");
                data_row += 1;
                if fields[1].is_empty() {
                    continue; // FER+ has no image for this row (not a face)
                }
                k
            }
            _ => fields[0].clone(),
        };
        if key.is_empty() {
            return Err(bad(line_no, "empty file name".into()));
        }
        if table.votes.insert(key.clone(), votes).is_some() {
            return Err(bad(line_no, format!("'{key}' is listed twice")));
        }
    }
    if table.votes.is_empty() {
        return Err(Error::BadDataset {
            path: path.to_path_buf(),
            message: "no vote rows".into(),
        });
    }
    Ok(table)
}

/// How FER+ labels are applied to a data set; recorded in a run's `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FerPlusConfig {
    pub mode: LabelMode,
    /// Votes for the training data (`None`: the data is a FER+ folder with its `label.csv`).
    pub train_votes: Option<PathBuf>,
    /// Votes for the validation data (`None`: a FER+ folder, or the default next to the data).
    pub val_votes: Option<PathBuf>,
    /// Weight of the data's own label (FER2013's: the folder or the CSV's `emotion`) in each
    /// training target, in [0, 1): `(1 - w) * votes + w * one-hot(own label)`. Both label sets
    /// at once: the crowd's reading and the expression the photo was found for. 0: votes only.
    #[serde(default)]
    pub own_label_weight: f32,
}

impl FerPlusConfig {
    /// Check the settings; errors name the setting.
    pub fn validate(&self) -> Result<()> {
        if !(self.own_label_weight.is_finite() && (0.0..1.0).contains(&self.own_label_weight)) {
            return Err(Error::Setting {
                name: "own_label_weight",
                value: self.own_label_weight.to_string(),
                expected: "a weight in [0, 1)".into(),
            });
        }
        if self.own_label_weight > 0.0 && self.mode == LabelMode::MultiTarget {
            return Err(Error::Setting {
                name: "own_label_weight",
                value: self.own_label_weight.to_string(),
                expected: "0 with the multi-target label mode (it scores a set of right answers, not a distribution to mix into)".into(),
            });
        }
        Ok(())
    }
}

/// What joining votes onto a data set kept and left out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JoinStats {
    pub kept: usize,
    /// Faces the vote file has no row for.
    pub unmatched: usize,
    /// Faces whose votes give no label in this mode (ties, contempt, unknown, NF).
    pub no_label: usize,
    /// Kept faces whose own label is not the votes' top class (counted when the own label is
    /// mixed in).
    pub own_label_differs: usize,
}

/// The key a face of `ds` has in a vote file: its path under `root` for image folders, `#ROW`
/// for a CSV source (`file.csv:LINE`, `header_lines` lines before the first data row).
pub(crate) fn face_key(source: &str, root: &Path, header_lines: usize) -> Option<String> {
    if let Some((_, line)) = source.rsplit_once(':')
        && let Ok(line) = line.parse::<usize>()
        && !Path::new(source).exists()
    {
        return line.checked_sub(header_lines + 1).map(|r| format!("#{r}"));
    }
    let p = Path::new(source);
    let rel = p.strip_prefix(root).unwrap_or(p);
    Some(rel.to_string_lossy().replace('\\', "/"))
}

/// Relabel `ds` (loaded from `root`) with FER+ `votes`: faces without a row or without a label
/// in `mode` are left out; `labels` become the FER+ majority (for `Majority`) or the target's
/// top class, and `targets` the per-face target. With `own_weight` > 0 each target keeps that
/// share of the face's own label (`ds.labels`, FER2013's): `(1 - w) * votes + w * one-hot`.
pub fn apply(ds: Dataset, root: &Path, votes: &VoteTable, mode: LabelMode, own_weight: f32) -> Result<(Dataset, JoinStats)> {
    let header_lines = if root.is_file() { csv_header_lines(root)? } else { 0 };
    let mut out = Dataset::default();
    let mut targets = Vec::new();
    let mut stats = JoinStats::default();
    for i in 0..ds.len() {
        let Some(v) = face_key(&ds.sources[i], root, header_lines).and_then(|k| votes.votes.get(&k)) else {
            stats.unmatched += 1;
            continue;
        };
        let Some(mut t) = v.target(mode) else {
            stats.no_label += 1;
            continue;
        };
        if own_weight > 0.0 {
            t.iter_mut().for_each(|p| *p *= 1.0 - own_weight);
            t[ds.labels[i].index()] += own_weight;
            if ds.labels[i] != Emotion::ALL[crate::emotion::argmax(&v.target(mode).expect("checked above"))] {
                stats.own_label_differs += 1;
            }
        }
        let label = match mode {
            LabelMode::Majority => v.majority().expect("a majority target has a majority"),
            _ => Emotion::ALL[crate::emotion::argmax(&t)],
        };
        out.push_face(ds.face(i), label, ds.sources[i].clone());
        targets.push(t);
        stats.kept += 1;
    }
    out.skipped = ds.skipped;
    out.targets = Some(targets);
    if out.is_empty() {
        return Err(Error::BadDataset {
            path: votes.path.clone(),
            message: format!(
                "no face of {} has a FER+ label here ({} without a vote row, {} without a label)",
                root.display(),
                stats.unmatched,
                stats.no_label
            ),
        });
    }
    Ok((out, stats))
}

/// Lines before the first data row of a FER2013 CSV (1 with its `emotion,...` header).
pub(crate) fn csv_header_lines(path: &Path) -> Result<usize> {
    use std::io::BufRead;
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut first = String::new();
    std::io::BufReader::new(f).read_line(&mut first).map_err(|e| Error::io(path, e))?;
    Ok(usize::from(first.trim().to_ascii_lowercase().starts_with("emotion")))
}

/// The vote file that goes with a data set when none is named: `DIR/label.csv` for a FER+
/// folder, else `ferplus/NAME.csv` beside the folder `NAME` (the shared data set's layout) or
/// `fer2013new.csv` beside `fer2013.csv`.
pub fn default_votes(data: &Path) -> Option<PathBuf> {
    if data.is_dir() && data.join("label.csv").is_file() {
        return Some(data.join("label.csv"));
    }
    let parent = data.parent()?;
    let candidate = if data.is_file() {
        parent.join("fer2013new.csv")
    } else {
        parent.join("ferplus").join(format!("{}.csv", data.file_name()?.to_string_lossy()))
    };
    candidate.is_file().then_some(candidate)
}

/// Whether `dir` is a FER+ image folder (holds `label.csv`).
pub fn is_ferplus_folder(dir: &Path) -> bool {
    dir.is_dir() && dir.join("label.csv").is_file()
}

/// Load a FER+ folder (`fer<row>.png` + `label.csv`): every face with a label in `mode`.
/// A listed image that is missing or unreadable is an error naming it (or skipped with
/// `skip_bad`).
pub fn load_folder(dir: &Path, mode: LabelMode, opts: &crate::data::LoadOptions) -> Result<(Dataset, JoinStats)> {
    let (skip_bad, max_per_class) = (opts.skip_bad, opts.max_per_class);
    let table = read_votes(&dir.join("label.csv"))?;
    let mut names: Vec<&String> = table.votes.keys().collect();
    names.sort();
    let mut ds = Dataset::default();
    for name in names {
        let path = dir.join(name);
        if !path.is_file() {
            let e = Error::BadDataset {
                path: path.clone(),
                message: format!("listed in {} but missing", table.path.display()),
            };
            if skip_bad {
                ds.skipped.push((path.display().to_string(), e.to_string()));
                continue;
            }
            return Err(e);
        }
        // Labels are decided by `apply`; a placeholder label until then.
        match read_face(&path, opts.contrast) {
            Ok(face) => ds.push_face(&face, Emotion::Neutral, path.display().to_string()),
            Err(e) if skip_bad => ds.skipped.push((path.display().to_string(), e.to_string())),
            Err(e) => return Err(e),
        }
    }
    let (mut ds, stats) = apply(ds, dir, &table, mode, 0.0)?;
    if let Some(m) = max_per_class {
        ds = ds.take_per_class(m);
    }
    Ok((ds, stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(a: [u16; 10]) -> Votes {
        Votes(a)
    }

    #[test]
    fn majority_excludes_ties_contempt_unknown_and_nf() {
        assert_eq!(v([8, 1, 0, 0, 1, 0, 0, 0, 0, 0]).majority(), Some(Emotion::Neutral));
        assert_eq!(v([0, 0, 0, 0, 4, 3, 3, 0, 0, 0]).majority(), Some(Emotion::Angry));
        assert_eq!(v([4, 4, 0, 0, 2, 0, 0, 0, 0, 0]).majority(), None, "tie");
        assert_eq!(v([2, 0, 0, 0, 0, 0, 0, 6, 2, 0]).majority(), None, "contempt");
        assert_eq!(v([2, 0, 0, 0, 0, 0, 0, 0, 6, 2]).majority(), None, "unknown");
        assert_eq!(v([0; 10]).majority(), None);
    }

    #[test]
    fn paper_distribution_drops_single_votes_and_keeps_the_top_emotions() {
        // 8 neutral, 1 sad, 1 angry: single votes are outliers, so all mass on neutral.
        let t = v([8, 0, 0, 1, 1, 0, 0, 0, 0, 0]).target(LabelMode::Crossentropy).unwrap();
        assert_eq!(t[Emotion::Neutral.index()], 1.0);
        // 5 happy, 3 surprise, 2 neutral: top two reach 80% >= 75%, neutral not taken.
        let t = v([2, 5, 3, 0, 0, 0, 0, 0, 0, 0]).target(LabelMode::Crossentropy).unwrap();
        assert!((t[Emotion::Happy.index()] - 5.0 / 8.0).abs() < 1e-6);
        assert!((t[Emotion::Surprise.index()] - 3.0 / 8.0).abs() < 1e-6);
        assert_eq!(t[Emotion::Neutral.index()], 0.0);
        // Unknown at the top: left out.
        assert!(v([2, 0, 0, 0, 0, 0, 0, 0, 6, 2]).target(LabelMode::Crossentropy).is_none());
        // Contempt shares are dropped and the rest renormalised.
        let t = v([0, 0, 0, 0, 0, 4, 0, 4, 0, 0]).target(LabelMode::Probability).unwrap();
        assert_eq!(t[Emotion::Disgust.index()], 1.0);
        // Multi-target: the emotions with >= 30%.
        let t = v([4, 0, 0, 4, 2, 0, 0, 0, 0, 0]).target(LabelMode::MultiTarget).unwrap();
        assert_eq!((t[Emotion::Neutral.index()], t[Emotion::Sad.index()], t[Emotion::Angry.index()]), (0.5, 0.5, 0.0));
    }

    #[test]
    fn csv_fields_honour_quotes() {
        assert_eq!(
            split_csv_line("fer0000000.png,\"(0, 0, 48, 48)\",4,0,0,1,3,2,0,0,0,0").len(),
            12
        );
        assert_eq!(split_csv_line("a,\"b,\"\"c\"\"\",d"), vec!["a", "b,\"c\"", "d"]);
    }

    #[test]
    fn the_three_forms_read_and_bad_rows_name_their_line() {
        let dir = std::env::temp_dir().join(format!("ferrite-ferplus-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let shared = dir.join("val.csv");
        std::fs::write(
            &shared,
            "file,ferplus_name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF\n\
             angry/a.jpg,fer0000001.png,8,0,0,1,1,0,0,0,0,0\n",
        )
        .unwrap();
        let t = read_votes(&shared).unwrap();
        assert_eq!(t.votes["angry/a.jpg"].majority(), Some(Emotion::Neutral));

        let ms = dir.join("fer2013new.csv");
        std::fs::write(
            &ms,
            "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF\n\
             Training,fer0000000.png,4,0,0,1,3,2,0,0,0,0\n\
             Training,,0,0,0,0,0,0,0,0,0,10\n\
             PublicTest,fer0000002.png,0,10,0,0,0,0,0,0,0,0\n",
        )
        .unwrap();
        let t = read_votes(&ms).unwrap();
        assert_eq!(t.votes.len(), 2);
        assert_eq!(t.votes["#2"].majority(), Some(Emotion::Happy));

        let label = dir.join("label.csv");
        std::fs::write(&label, "fer0000000.png,\"(0, 0, 48, 48)\",4,0,0,1,3,2,0,0,0,0\n").unwrap();
        assert_eq!(read_votes(&label).unwrap().votes["fer0000000.png"].majority(), Some(Emotion::Neutral));

        std::fs::write(&label, "fer0000000.png,\"(0, 0, 48, 48)\",4,0,0,1,3,2,0,0,0,0\nfer1.png,box,1,2,x,0,0,0,0,0,0,0\n").unwrap();
        let e = read_votes(&label).unwrap_err().to_string();
        assert!(e.contains("label.csv, line 2") && e.contains("'surprise'"), "{e}");
        std::fs::write(&label, "fer0000000.png,box,1,2,3\n").unwrap();
        let e = read_votes(&label).unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("12"), "{e}");
        let e = read_votes(&dir.join("missing.csv")).unwrap_err().to_string();
        assert!(e.contains("missing.csv"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_ferplus_folder_loads_and_a_missing_image_is_named() {
        let dir = std::env::temp_dir().join(format!("ferrite-ferplus-dir-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, v) in [("fer0000000.png", 40u8), ("fer0000001.png", 200)] {
            image::GrayImage::from_pixel(48, 48, image::Luma([v])).save(dir.join(name)).unwrap();
        }
        std::fs::write(
            dir.join("label.csv"),
            "fer0000000.png,\"(0, 0, 48, 48)\",0,9,1,0,0,0,0,0,0,0\n\
             fer0000001.png,\"(0, 0, 48, 48)\",0,0,0,0,0,0,0,0,10,0\n",
        )
        .unwrap();
        assert!(is_ferplus_folder(&dir));
        assert_eq!(default_votes(&dir), Some(dir.join("label.csv")));
        let (ds, stats) = load_folder(&dir, LabelMode::Majority, &Default::default()).unwrap();
        assert_eq!(ds.labels, vec![Emotion::Happy]);
        assert_eq!(stats, JoinStats { kept: 1, unmatched: 0, no_label: 1, own_label_differs: 0 });
        std::fs::write(
            dir.join("label.csv"),
            "fer0000000.png,\"(0, 0, 48, 48)\",0,9,1,0,0,0,0,0,0,0\nfer0000009.png,b,0,9,1,0,0,0,0,0,0,0\n",
        )
        .unwrap();
        let e = load_folder(&dir, LabelMode::Majority, &Default::default()).unwrap_err().to_string();
        assert!(e.contains("fer0000009.png") && e.contains("missing"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn apply_joins_image_folder_and_csv_faces() {
        let mut ds = Dataset::default();
        ds.push_face(&[0u8; crate::data::preprocess::FACE_PIXELS], Emotion::Angry, "/d/train/angry/a.jpg".into());
        ds.push_face(&[0u8; crate::data::preprocess::FACE_PIXELS], Emotion::Angry, "/d/train/angry/b.jpg".into());
        let mut votes = VoteTable::default();
        votes.votes.insert("angry/a.jpg".into(), Votes([8, 0, 0, 1, 1, 0, 0, 0, 0, 0]));
        let (out, stats) = apply(ds, Path::new("/d/train"), &votes, LabelMode::Crossentropy, 0.0).unwrap();
        assert_eq!(out.labels, vec![Emotion::Neutral]);
        assert_eq!(stats.unmatched, 1);
        assert_eq!(out.targets.as_ref().unwrap()[0][Emotion::Neutral.index()], 1.0);
        assert_eq!(face_key("/x/fer2013.csv:5", Path::new("/x/fer2013.csv"), 1), Some("#3".into()));
    }

    #[test]
    fn own_labels_mix_into_the_vote_targets() {
        let px = [0u8; crate::data::preprocess::FACE_PIXELS];
        let mut ds = Dataset::default();
        // FER2013 filed a as angry; the crowd calls it neutral. b: both say happy.
        ds.push_face(&px, Emotion::Angry, "/d/train/angry/a.jpg".into());
        ds.push_face(&px, Emotion::Happy, "/d/train/happy/b.jpg".into());
        let mut votes = VoteTable::default();
        votes.votes.insert("angry/a.jpg".into(), Votes([8, 0, 0, 0, 2, 0, 0, 0, 0, 0]));
        votes.votes.insert("happy/b.jpg".into(), Votes([0, 10, 0, 0, 0, 0, 0, 0, 0, 0]));
        let (out, stats) = apply(ds, Path::new("/d/train"), &votes, LabelMode::Crossentropy, 0.4).unwrap();
        let t = out.targets.as_ref().unwrap();
        let votes_a = Votes([8, 0, 0, 0, 2, 0, 0, 0, 0, 0]).target(LabelMode::Crossentropy).unwrap();
        for e in Emotion::ALL {
            let own = if e == Emotion::Angry { 0.4 } else { 0.0 };
            assert!((t[0][e.index()] - (0.6 * votes_a[e.index()] + own)).abs() < 1e-6, "{e:?}");
        }
        assert!((t[0].iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(t[1][Emotion::Happy.index()], 1.0);
        // The label follows the mixed target's top class; one face's own label differed.
        assert_eq!(out.labels, vec![Emotion::Neutral, Emotion::Happy]);
        assert_eq!((stats.kept, stats.own_label_differs), (2, 1));
    }

    #[test]
    fn own_label_weight_is_checked_and_named() {
        let cfg = |mode, own_label_weight| FerPlusConfig {
            mode,
            train_votes: None,
            val_votes: None,
            own_label_weight,
        };
        assert!(cfg(LabelMode::Crossentropy, 0.5).validate().is_ok());
        for bad in [cfg(LabelMode::Crossentropy, 1.0), cfg(LabelMode::Crossentropy, -0.1), cfg(LabelMode::Majority, f32::NAN), cfg(LabelMode::MultiTarget, 0.3)] {
            let e = bad.validate().unwrap_err().to_string();
            assert!(e.contains("own_label_weight"), "{e}");
        }
        // A config.json from before the setting reads as votes only.
        let old: FerPlusConfig = serde_json::from_str(r#"{"mode":"crossentropy","train_votes":null,"val_votes":null}"#).unwrap();
        assert_eq!(old.own_label_weight, 0.0);
    }
}
