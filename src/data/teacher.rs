//! Teacher probabilities for distillation: another model's seven probabilities per training
//! face, read from a CSV and mixed into the training targets.
//!
//! The file (`tools/teacher/teacher.cjs` writes one from face-api.js's expression network):
//! a header `file,angry,disgust,fear,happy,neutral,sad,surprise` (the class names in
//! [`Emotion::ALL`]'s order, checked), then one row per face: its key as FER+ vote files key
//! faces (the path under the image folder, or `#ROW` for a FER2013 CSV's data row) and seven
//! non-negative probabilities (renormalised to sum to 1).

use crate::data::Dataset;
use crate::data::ferplus::{face_key, split_csv_line};
use crate::emotion::Emotion;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A teacher file's probabilities, by face key.
#[derive(Debug, Clone, Default)]
pub struct TeacherTable {
    pub probs: HashMap<String, [f32; Emotion::COUNT]>,
    pub path: PathBuf,
}

/// How a run mixes teacher probabilities into its targets; recorded in `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeacherConfig {
    /// The teacher file for the training data.
    pub path: PathBuf,
    /// Weight of the teacher in each target: `(1 - w) * labels + w * teacher`, in [0, 1].
    pub weight: f32,
}

impl TeacherConfig {
    /// The teacher's weight in each target when none is given.
    pub const DEFAULT_WEIGHT: f32 = 0.5;
}

/// What mixing a teacher into a data set did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TeacherStats {
    /// Faces whose target took the teacher's probabilities.
    pub mixed: usize,
    /// Faces the teacher file has no row for (their targets are left as they were).
    pub unmatched: usize,
}

/// Read a teacher file; errors name the file and, for a bad row, its line.
pub fn read_teacher(path: &Path) -> Result<TeacherTable> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    parse_teacher(&text, path)
}

/// Parse the text of a teacher file (see the module docs); `path` names it in errors.
pub fn parse_teacher(text: &str, path: &Path) -> Result<TeacherTable> {
    let bad = |line: usize, message: String| Error::BadCsvRow {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut table = TeacherTable {
        probs: HashMap::new(),
        path: path.to_path_buf(),
    };
    let mut header_seen = false;
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let fields = split_csv_line(line);
        if !header_seen {
            let expected: Vec<&str> = std::iter::once("file").chain(Emotion::ALL.iter().map(|e| e.name())).collect();
            let got: Vec<String> = fields.iter().map(|f| f.trim().to_ascii_lowercase()).collect();
            if got != expected {
                return Err(bad(line_no, format!("header: expected '{}'", expected.join(","))));
            }
            header_seen = true;
            continue;
        }
        if fields.len() != 1 + Emotion::COUNT {
            return Err(bad(line_no, format!("expected {} comma-separated fields, found {}", 1 + Emotion::COUNT, fields.len())));
        }
        let key = fields[0].trim().replace('\\', "/");
        if key.is_empty() {
            return Err(bad(line_no, "empty file name".into()));
        }
        let mut p = [0f32; Emotion::COUNT];
        for (k, (slot, f)) in p.iter_mut().zip(&fields[1..]).enumerate() {
            *slot = f
                .trim()
                .parse::<f32>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| bad(line_no, format!("field '{}': '{f}' is not a probability", Emotion::ALL[k].name())))?;
        }
        let sum: f32 = p.iter().sum();
        if sum <= 0.0 || !sum.is_finite() {
            return Err(bad(line_no, format!("the probabilities sum to {sum}")));
        }
        p.iter_mut().for_each(|v| *v /= sum);
        if table.probs.insert(key.clone(), p).is_some() {
            return Err(bad(line_no, format!("'{key}' is listed twice")));
        }
    }
    if table.probs.is_empty() {
        return Err(Error::BadDataset {
            path: path.to_path_buf(),
            message: "no teacher rows".into(),
        });
    }
    Ok(table)
}

/// Mix `teacher` into the targets of `ds` (loaded from `root`): each face with a row gets
/// `(1 - weight) * target + weight * teacher`; faces without one keep their target. Labels
/// (used for validation and class counts) are unchanged. An error if no face has a row (the
/// file is for other data).
pub fn apply(mut ds: Dataset, root: &Path, teacher: &TeacherTable, weight: f32) -> Result<(Dataset, TeacherStats)> {
    if !(0.0..=1.0).contains(&weight) {
        return Err(Error::Config(format!("teacher weight must be in [0, 1], got {weight}")));
    }
    let header_lines = if root.is_file() { crate::data::ferplus::csv_header_lines(root)? } else { 0 };
    let mut targets: Vec<[f32; Emotion::COUNT]> = (0..ds.len()).map(|i| ds.target(i)).collect();
    let mut stats = TeacherStats::default();
    for (i, t) in targets.iter_mut().enumerate() {
        match face_key(&ds.sources[i], root, header_lines).and_then(|k| teacher.probs.get(&k)) {
            Some(p) => {
                for (a, b) in t.iter_mut().zip(p) {
                    *a = (1.0 - weight) * *a + weight * b;
                }
                stats.mixed += 1;
            }
            None => stats.unmatched += 1,
        }
    }
    if stats.mixed == 0 {
        return Err(Error::BadDataset {
            path: teacher.path.clone(),
            message: format!("no face of {} has a row here ({} faces looked up)", root.display(), ds.len()),
        });
    }
    ds.targets = Some(targets);
    Ok((ds, stats))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::preprocess::FACE_PIXELS;

    const HEADER: &str = "file,angry,disgust,fear,happy,neutral,sad,surprise\n";

    #[test]
    fn a_good_file_reads_and_rows_are_renormalised() {
        let text = format!("{HEADER}happy/a.jpg,0,0,0,2,2,0,0\n\nsad\\b.jpg,0.1,0,0,0,0,0.9,0\n");
        let t = parse_teacher(&text, Path::new("t.csv")).unwrap();
        assert_eq!(t.probs.len(), 2);
        assert_eq!(t.probs["happy/a.jpg"][Emotion::Happy.index()], 0.5);
        assert_eq!(t.probs["sad/b.jpg"][Emotion::Sad.index()], 0.9);
    }

    #[test]
    fn bad_rows_name_the_file_and_line() {
        let cases = [
            (format!("{HEADER}a.jpg,0,0,0,1,0,0\n"), 2, "found 7"),
            (format!("{HEADER}a.jpg,0,0,0,1,0,0,0\nb.jpg,0,x,0,1,0,0,0\n"), 3, "'disgust': 'x'"),
            (format!("{HEADER}a.jpg,0,0,0,-1,0,0,0\n"), 2, "not a probability"),
            (format!("{HEADER}a.jpg,0,0,0,NaN,0,0,0\n"), 2, "not a probability"),
            (format!("{HEADER}a.jpg,0,0,0,0,0,0,0\n"), 2, "sum to 0"),
            (format!("{HEADER}a.jpg,3e38,3e38,0,0,0,0,0\n"), 2, "sum to inf"),
            (format!("{HEADER}a.jpg,0,0,0,1,0,0,0\na.jpg,0,0,0,1,0,0,0\n"), 3, "twice"),
            (format!("{HEADER},0,0,0,1,0,0,0\n"), 2, "empty file name"),
            ("file,happy,angry,disgust,fear,neutral,sad,surprise\n".to_string(), 1, "header"),
        ];
        for (text, line, needle) in cases {
            let e = parse_teacher(&text, Path::new("dir/t.csv")).unwrap_err();
            let msg = e.to_string();
            assert!(matches!(e, Error::BadCsvRow { line: l, .. } if l == line), "{msg}");
            assert!(msg.contains("dir/t.csv") && msg.contains(needle), "{msg}");
        }
        let e = parse_teacher(HEADER, Path::new("t.csv")).unwrap_err();
        assert!(e.to_string().contains("no teacher rows"), "{e}");
    }

    #[test]
    fn a_missing_file_is_named() {
        let e = read_teacher(Path::new("/nonexistent/teacher.csv")).unwrap_err();
        assert!(matches!(e, Error::Io { .. }) && e.to_string().contains("/nonexistent/teacher.csv"), "{e}");
    }

    #[test]
    fn apply_mixes_matched_faces_and_keeps_the_rest() {
        let root = Path::new("/data/train");
        let mut ds = Dataset::default();
        ds.push_face(&[0; FACE_PIXELS], Emotion::Neutral, "/data/train/neutral/a.jpg".into());
        ds.push_face(&[0; FACE_PIXELS], Emotion::Sad, "/data/train/sad/b.jpg".into());
        let text = format!("{HEADER}neutral/a.jpg,1,0,0,0,0,0,0\n");
        let t = parse_teacher(&text, Path::new("t.csv")).unwrap();
        let (mixed, stats) = apply(ds.clone(), root, &t, 0.25).unwrap();
        assert_eq!(stats, TeacherStats { mixed: 1, unmatched: 1 });
        let a = mixed.target(0);
        assert_eq!((a[Emotion::Angry.index()], a[Emotion::Neutral.index()]), (0.25, 0.75));
        assert_eq!(mixed.target(1), ds.target(1));
        assert_eq!(mixed.labels, ds.labels);
        let other = parse_teacher(&format!("{HEADER}x.jpg,1,0,0,0,0,0,0\n"), Path::new("t.csv")).unwrap();
        assert!(apply(ds.clone(), root, &other, 0.5).unwrap_err().to_string().contains("no face"));
        assert!(matches!(apply(ds, root, &t, 1.5), Err(Error::Config(_))));
    }
}
