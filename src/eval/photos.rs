//! Full-pipeline evaluation on a labelled folder of photos: detect, crop, classify the largest
//! face of each photo, and score it against the photo's class folder ("no face" counted).

use crate::vision::analyzer::Analyzer;
use crate::data::{class_folders, image_files};
use crate::emotion::Emotion;
use crate::error::{Error, Result};
use crate::eval::metrics::{Confusion, Report};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// What the pipeline made of a folder of labelled photos.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhotoReport {
    /// Photos read (unreadable ones are listed in `unreadable`, not counted).
    pub photos: usize,
    /// Photos whose largest face got the folder's label, over all photos read.
    pub accuracy: f64,
    /// Mean over the classes present of that per-class rate (no face = wrong).
    pub balanced_accuracy: f64,
    /// Per class: (photos, no face found, labelled right).
    pub per_class: Vec<(Emotion, usize, usize, usize)>,
    /// Scores over the photos where a face was found (their largest face).
    pub found: Report,
    /// Photos in which no face was found.
    pub no_face: Vec<String>,
    pub unreadable: Vec<(String, String)>,
}

impl PhotoReport {
    /// The report as text: overall, per class, then the scores on photos with a face.
    pub fn to_text(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "photos {}   labelled right {:.2}%   balanced {:.2}%   no face found {} ({:.1}%)   unreadable {}",
            self.photos,
            100.0 * self.accuracy,
            100.0 * self.balanced_accuracy,
            self.no_face.len(),
            100.0 * self.no_face.len() as f64 / self.photos.max(1) as f64,
            self.unreadable.len()
        );
        let _ = writeln!(s, "\n{:<10} {:>7} {:>8} {:>7} {:>8}", "class", "photos", "no face", "right", "right %");
        for (e, n, none, right) in &self.per_class {
            let _ = writeln!(s, "{:<10} {:>7} {:>8} {:>7} {:>7.1}%", e.name(), n, none, right, 100.0 * *right as f64 / (*n).max(1) as f64);
        }
        let _ = writeln!(s, "\nlargest face of the {} photos with a face:", self.found.samples);
        s.push_str(&self.found.to_text());
        s
    }
}

/// Run `analyzer` on every photo under `root` (one subfolder per class, as for training data)
/// and score the largest face of each against its folder.
pub fn evaluate_photos(analyzer: &Analyzer, root: &Path) -> Result<PhotoReport> {
    let mut files = Vec::new();
    for (dir, label) in class_folders(root)? {
        for f in image_files(&dir)? {
            files.push((f, label));
        }
    }
    if files.is_empty() {
        return Err(Error::BadDataset {
            path: root.to_path_buf(),
            message: "no photos in its class folders".into(),
        });
    }
    let outcomes: Vec<(String, Emotion, std::result::Result<Option<Emotion>, String>)> = files
        .par_iter()
        .map(|(path, label)| {
            let r = (|| -> Result<Option<Emotion>> {
                let img = crate::data::decode_image(path, &analyzer.config().decode_limits)?;
                let faces = analyzer.analyze(&img)?;
                Ok(faces
                    .iter()
                    .max_by(|a, b| a.bbox.area().total_cmp(&b.bbox.area()))
                    .map(|f| Emotion::ALL[crate::emotion::argmax(&f.probs)]))
            })();
            (path.display().to_string(), *label, r.map_err(|e| e.to_string()))
        })
        .collect();
    let mut confusion = Confusion::default();
    let mut per = [(0usize, 0usize, 0usize); Emotion::COUNT];
    let (mut no_face, mut unreadable) = (Vec::new(), Vec::new());
    for (path, label, r) in outcomes {
        match r {
            Err(e) => unreadable.push((path, e)),
            Ok(pred) => {
                let c = &mut per[label.index()];
                c.0 += 1;
                match pred {
                    None => {
                        c.1 += 1;
                        no_face.push(path);
                    }
                    Some(p) => {
                        confusion.add(label, p);
                        c.2 += usize::from(p == label);
                    }
                }
            }
        }
    }
    let photos: usize = per.iter().map(|c| c.0).sum();
    let right: usize = per.iter().map(|c| c.2).sum();
    let present: Vec<f64> = per.iter().filter(|c| c.0 > 0).map(|c| c.2 as f64 / c.0 as f64).collect();
    Ok(PhotoReport {
        photos,
        accuracy: right as f64 / photos.max(1) as f64,
        balanced_accuracy: present.iter().sum::<f64>() / present.len().max(1) as f64,
        per_class: Emotion::ALL.iter().map(|&e| (e, per[e.index()].0, per[e.index()].1, per[e.index()].2)).filter(|c| c.1 > 0).collect(),
        found: confusion.report(None),
        no_face,
        unreadable,
    })
}
