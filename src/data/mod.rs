//! FER2013 data: image-folder and original-CSV loaders, class counts, subsets.

pub mod augment;
pub mod ferplus;
pub mod imageio;
pub mod preprocess;
pub mod teacher;

use crate::emotion::Emotion;
use crate::error::{Error, Result};
use crate::data::preprocess::{FACE_PIXELS, FACE_SIZE, to_face};
use rayon::prelude::*;
use std::io::BufRead;
use std::path::{Path, PathBuf};

/// Image file extensions the folder loader reads (case-insensitive).
pub const IMAGE_EXTENSIONS: [&str; 7] = ["jpg", "jpeg", "png", "bmp", "tif", "tiff", "gif"];

/// A labelled set of 48x48 grayscale faces held in memory (one contiguous pixel buffer).
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    /// `len() * FACE_PIXELS` bytes, face after face, row-major.
    pub faces: Vec<u8>,
    pub labels: Vec<Emotion>,
    /// Where each face came from: a file path, or `file.csv:LINE`.
    pub sources: Vec<String>,
    /// Inputs skipped with `skip_bad`, with the reason.
    pub skipped: Vec<(String, String)>,
    /// Per-face training targets over the classes (FER+ vote distributions, each summing to
    /// 1); `None`: one-hot on `labels`.
    pub targets: Option<Vec<[f32; Emotion::COUNT]>>,
}

/// How to read a data set.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Skip (and count) unreadable images and bad CSV rows instead of failing.
    pub skip_bad: bool,
    /// For the CSV form: keep only rows whose `Usage` equals this (Training, PublicTest,
    /// PrivateTest). `None` keeps every row.
    pub usage: Option<String>,
    /// Keep at most this many images per class (the first ones in file-name order).
    pub max_per_class: Option<usize>,
    /// The contrast step of the face preprocessing.
    pub contrast: crate::data::preprocess::Contrast,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The pixels of face `i`.
    pub fn face(&self, i: usize) -> &[u8] {
        &self.faces[i * FACE_PIXELS..(i + 1) * FACE_PIXELS]
    }

    /// Every face as the preprocessing gives it when the face's crop is only `side` pixels
    /// wide in a photo ([`preprocess::seen_at`]): how a model reads small faces, measured on
    /// labelled 48x48 faces. `side` of 48 or more leaves the faces as they are; under 8 pixels
    /// is refused.
    pub fn seen_at(&mut self, side: u32, contrast: crate::data::preprocess::Contrast) -> Result<()> {
        if side < 8 {
            return Err(Error::Config(format!("face size {side} px: a face must be at least 8 pixels wide")));
        }
        if side as usize >= FACE_SIZE {
            return Ok(());
        }
        let small: Vec<u8> = self.faces.par_chunks(FACE_PIXELS).flat_map_iter(|f| crate::data::preprocess::seen_at(f, side, contrast)).collect();
        self.faces = small;
        Ok(())
    }

    /// Append one face (targets, if any, are the caller's to extend).
    pub fn push_face(&mut self, face: &[u8], label: Emotion, source: String) {
        debug_assert_eq!(face.len(), FACE_PIXELS);
        self.faces.extend_from_slice(face);
        self.labels.push(label);
        self.sources.push(source);
    }

    /// The training target of face `i`: its FER+ distribution, or one-hot on its label.
    pub fn target(&self, i: usize) -> [f32; Emotion::COUNT] {
        match &self.targets {
            Some(t) => t[i],
            None => {
                let mut t = [0.0; Emotion::COUNT];
                t[self.labels[i].index()] = 1.0;
                t
            }
        }
    }

    /// The mean training target: the class frequencies (or FER+ vote shares) the data teaches.
    pub fn class_priors(&self) -> [f64; Emotion::COUNT] {
        let mut p = [0.0f64; Emotion::COUNT];
        for i in 0..self.len() {
            for (a, b) in p.iter_mut().zip(self.target(i)) {
                *a += b as f64;
            }
        }
        let n = self.len().max(1) as f64;
        p.map(|v| v / n)
    }

    /// The faces `idx`, in that order (targets kept).
    pub fn subset(&self, idx: &[usize]) -> Dataset {
        let mut out = Dataset::default();
        for &i in idx {
            out.push_face(self.face(i), self.labels[i], self.sources[i].clone());
        }
        out.targets = self.targets.as_ref().map(|t| idx.iter().map(|&i| t[i]).collect());
        out
    }

    /// At most `m` faces per label, the first ones.
    pub fn take_per_class(&self, m: usize) -> Dataset {
        let mut per = [0usize; Emotion::COUNT];
        let idx: Vec<usize> = (0..self.len())
            .filter(|&i| {
                let c = &mut per[self.labels[i].index()];
                *c += 1;
                *c <= m
            })
            .collect();
        let mut out = self.subset(&idx);
        out.skipped = self.skipped.clone();
        out
    }

    /// Images per class, in `Emotion` order.
    pub fn class_counts(&self) -> [usize; Emotion::COUNT] {
        let mut counts = [0; Emotion::COUNT];
        for l in &self.labels {
            counts[l.index()] += 1;
        }
        counts
    }

    /// Read a data set: a folder with one subfolder per class, a FER2013 CSV file, or an image
    /// list (a CSV file with `path` and `label` columns, [`read_image_list`]).
    pub fn load(path: &Path, opts: &LoadOptions) -> Result<Dataset> {
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        let ds = if crate::data::ferplus::is_ferplus_folder(path) {
            crate::data::ferplus::load_folder(path, crate::data::ferplus::LabelMode::Majority, opts)?.0
        } else if meta.is_dir() {
            load_folder(path, opts)?
        } else if is_image_list(path)? {
            load_list(path, opts)?
        } else {
            load_csv(path, opts)?
        };
        if ds.is_empty() {
            return Err(Error::BadDataset {
                path: path.to_path_buf(),
                message: "the data set holds no usable images".into(),
            });
        }
        Ok(ds)
    }

    /// Build a data set from in-memory faces (tests, synthetic data).
    pub fn from_faces(faces: Vec<u8>, labels: Vec<Emotion>) -> Dataset {
        assert_eq!(faces.len(), labels.len() * FACE_PIXELS);
        let sources = (0..labels.len()).map(|i| format!("memory:{i}")).collect();
        Dataset {
            faces,
            labels,
            sources,
            skipped: Vec::new(),
            targets: None,
        }
    }
}

/// A small learnable synthetic data set (tests, demos): class `c` is drawn as stripes of
/// period `c + 2` pixels, at a random phase, plus noise.
pub fn synthetic(per_class: usize, seed: u64) -> Dataset {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut faces = Vec::with_capacity(per_class * Emotion::COUNT * FACE_PIXELS);
    let mut labels = Vec::new();
    for _ in 0..per_class {
        for e in Emotion::ALL {
            let period = e.index() + 2;
            let phase = rng.random_range(0..period);
            for y in 0..crate::data::preprocess::FACE_SIZE {
                for _x in 0..crate::data::preprocess::FACE_SIZE {
                    let on = ((y + phase) / period.div_ceil(2)) % 2 == 0;
                    let base: i32 = if on { 190 } else { 60 };
                    faces.push((base + rng.random_range(-30..=30)).clamp(0, 255) as u8);
                }
            }
            labels.push(e);
        }
    }
    Dataset::from_faces(faces, labels)
}

/// Whether `p` is named like an image this build reads ([`IMAGE_EXTENSIONS`], any case).
pub fn is_image_file(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut entries = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| Error::io(dir, e))?;
    entries.sort();
    Ok(entries)
}

/// Decode one image file (`imageio::decode`: format from its bytes, EXIF orientation applied,
/// palette TIFFs read, truncated JPEGs refused) within `limits`, naming the file on failure.
/// Only a regular file is read ([`crate::fsutil::read_input`]).
pub fn decode_image(path: &Path, limits: &crate::data::imageio::DecodeLimits) -> Result<image::DynamicImage> {
    let bytes = crate::fsutil::read_input(path, crate::fsutil::MAX_INPUT_BYTES)?;
    decode_bytes(&bytes, path, limits)
}

/// Decode image bytes as [`decode_image`] does a file's; errors call them `name`.
pub fn decode_bytes(bytes: &[u8], name: &Path, limits: &crate::data::imageio::DecodeLimits) -> Result<image::DynamicImage> {
    crate::data::imageio::decode(bytes, limits).map_err(|e| Error::BadImage {
        path: name.to_path_buf(),
        message: e.to_string(),
    })
}

/// Decode one image file into a 48x48 face.
pub fn read_face(path: &Path, contrast: crate::data::preprocess::Contrast) -> Result<Vec<u8>> {
    Ok(to_face(&decode_image(path, &Default::default())?, contrast))
}

/// The class subfolders of an image-folder data set, in name order, with their class (hidden
/// folders skipped; an unknown folder name, or none at all, is an error naming the folder).
pub fn class_folders(root: &Path) -> Result<Vec<(PathBuf, Emotion)>> {
    let mut out = Vec::new();
    for entry in read_dir_sorted(root)? {
        if !entry.is_dir() {
            continue;
        }
        let name = entry
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with('.') {
            continue;
        }
        let label: Emotion = name.parse().map_err(|msg: String| Error::BadDataset {
            path: entry.clone(),
            message: format!("unknown class folder: {msg}"),
        })?;
        out.push((entry, label));
    }
    if out.is_empty() {
        return Err(Error::BadDataset {
            path: root.to_path_buf(),
            message: format!(
                "no class folders found (expected subfolders named {})",
                Emotion::ALL.map(|e| e.name()).join(", ")
            ),
        });
    }
    Ok(out)
}

/// Image files named on a command line: files as given, folders searched recursively (sorted);
/// a folder without images, or a path that does not exist, is an error naming it.
/// A folder reached twice (through symbolic links, or named twice) is searched once: the walk
/// ends even when links form a loop, and no image is listed twice that way.
pub fn collect_images(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>, seen: &mut std::collections::HashSet<(u64, u64)>) -> Result<()> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(dir).map_err(|e| Error::io(dir, e))?;
        if !seen.insert((meta.dev(), meta.ino())) {
            return Ok(());
        }
        for p in read_dir_sorted(dir)? {
            if p.is_dir() {
                walk(&p, out, seen)?;
            } else if is_image_file(&p) {
                out.push(p);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for p in paths {
        if p.is_dir() {
            let before = out.len();
            let again = std::fs::metadata(p).is_ok_and(|m| {
                use std::os::unix::fs::MetadataExt;
                seen.contains(&(m.dev(), m.ino()))
            });
            walk(p, &mut out, &mut seen)?;
            if out.len() == before && !again {
                return Err(Error::BadDataset { path: p.clone(), message: "no images in this folder".into() });
            }
        } else if p.exists() {
            out.push(p.clone());
        } else {
            return Err(Error::BadDataset { path: p.clone(), message: "no such file or folder".into() });
        }
    }
    Ok(out)
}

/// The image files directly in `dir`, in name order.
pub fn image_files(dir: &Path) -> Result<Vec<PathBuf>> {
    Ok(read_dir_sorted(dir)?.into_iter().filter(|f| f.is_file() && is_image_file(f)).collect())
}

fn load_folder(root: &Path, opts: &LoadOptions) -> Result<Dataset> {
    let mut files: Vec<(PathBuf, Emotion)> = Vec::new();
    for (dir, label) in class_folders(root)? {
        let take = opts.max_per_class.unwrap_or(usize::MAX);
        files.extend(image_files(&dir)?.into_iter().take(take).map(|f| (f, label)));
    }
    read_faces(files, Dataset::default(), opts)
}

/// The columns an image list's header names (in any order, among others).
pub const IMAGE_LIST_COLUMNS: [&str; 2] = ["path", "label"];

/// Whether `path` is an image list: a file whose first line names the `path` and `label`
/// columns (a FER2013 CSV's starts `emotion,pixels`).
pub fn is_image_list(path: &Path) -> Result<bool> {
    use std::io::Read;
    let mut head = Vec::new();
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    file.take(4096).read_to_end(&mut head).map_err(|e| Error::io(path, e))?;
    let first = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let columns: Vec<String> = String::from_utf8_lossy(first).split(',').map(|c| c.trim().trim_start_matches('\u{feff}').trim_matches('"').to_ascii_lowercase()).collect();
    Ok(IMAGE_LIST_COLUMNS.iter().all(|c| columns.iter().any(|h| h == c)))
}

/// One image-list row: the image, its class and its line in the list.
pub type ListRow = (PathBuf, Emotion, usize);
/// Inputs skipped with `skip_bad`: where (`file:LINE` or the file) and why.
pub type Skipped = Vec<(String, String)>;

/// Read an image list: a CSV file (header `path,label`, other columns ignored, quoting as
/// Python's `csv` and pandas write it) whose rows name an image and its class by name
/// (`angry` ... `surprise`, any case). Relative paths are read from the list's folder. Returns
/// each row's image, class and line; a bad row is an error naming the list, the line and the
/// field (with `skip_bad`: counted in `skipped` instead).
pub fn read_image_list(reader: impl std::io::Read, path: &Path, skip_bad: bool) -> Result<(Vec<ListRow>, Skipped)> {
    let bad = |line: usize, message: String| Error::BadCsvRow { path: path.to_path_buf(), line, message };
    let mut rows = csv::ReaderBuilder::new().flexible(true).from_reader(reader);
    let header = rows.headers().map_err(|e| bad(1, format!("cannot read the header: {e}")))?.clone();
    // A spreadsheet's UTF-8 byte-order mark before the first column name is not part of it.
    let column = |name: &str| header.iter().position(|h| h.trim().trim_start_matches('\u{feff}').eq_ignore_ascii_case(name));
    let (Some(path_col), Some(label_col)) = (column("path"), column("label")) else {
        return Err(bad(1, format!("the header must name the columns {}", IMAGE_LIST_COLUMNS.join(" and "))));
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let (mut out, mut skipped) = (Vec::new(), Vec::new());
    for record in rows.records() {
        let line = |p: Option<&csv::Position>| p.map_or(0, |p| p.line() as usize);
        let (line, parsed) = match record {
            Err(e) => (line(e.position()), Err(format!("cannot read the row: {e}"))),
            Ok(r) => {
                let field = |i: usize, name: &str| r.get(i).map(str::trim).filter(|v| !v.is_empty()).ok_or_else(|| format!("field '{name}' is missing"));
                let parsed = field(path_col, "path").and_then(|p| {
                    let label = field(label_col, "label")?.parse::<Emotion>().map_err(|m| format!("field 'label': {m}"))?;
                    Ok((base.join(p), label))
                });
                (line(r.position()), parsed)
            }
        };
        match parsed {
            Ok((image, label)) => out.push((image, label, line)),
            Err(message) if skip_bad => skipped.push((format!("{}:{line}", path.display()), message)),
            Err(message) => return Err(bad(line, message)),
        }
    }
    Ok((out, skipped))
}

/// An image list's bytes: the header, then one `path,label` row per image (quoted where a
/// path needs it), as [`read_image_list`] reads it back.
pub fn write_image_list(rows: &[(PathBuf, Emotion)]) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let failed = |e: csv::Error| Error::Serialize { what: "an image list", source: e.into() };
    w.write_record(IMAGE_LIST_COLUMNS).map_err(failed)?;
    for (path, label) in rows {
        let Some(p) = path.to_str() else {
            return Err(Error::BadDataset { path: path.clone(), message: "an image list holds UTF-8 paths only".into() });
        };
        w.write_record([p, label.name()]).map_err(failed)?;
    }
    w.into_inner().map_err(|e| Error::Serialize { what: "an image list", source: e.to_string().into() })
}

fn load_list(path: &Path, opts: &LoadOptions) -> Result<Dataset> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let (rows, skipped) = read_image_list(std::io::BufReader::new(file), path, opts.skip_bad)?;
    let mut per_class = [0usize; Emotion::COUNT];
    let files = rows
        .into_iter()
        .filter(|(_, label, _)| {
            per_class[label.index()] += 1;
            opts.max_per_class.is_none_or(|m| per_class[label.index()] <= m)
        })
        .map(|(image, label, _)| (image, label))
        .collect();
    read_faces(files, Dataset { skipped, ..Dataset::default() }, opts)
}

/// Decode the faces of `files` in parallel into `ds` (unreadable ones skipped and counted
/// with `skip_bad`, else the first is the error).
fn read_faces(files: Vec<(PathBuf, Emotion)>, mut ds: Dataset, opts: &LoadOptions) -> Result<Dataset> {
    let decoded: Vec<Result<Vec<u8>>> = files.par_iter().map(|(p, _)| read_face(p, opts.contrast)).collect();
    ds.faces.reserve(files.len() * FACE_PIXELS);
    for ((path, label), face) in files.into_iter().zip(decoded) {
        match face {
            Ok(face) => ds.push_face(&face, label, path.display().to_string()),
            Err(e) if opts.skip_bad => ds.skipped.push((path.display().to_string(), e.to_string())),
            Err(e) => return Err(e),
        }
    }
    Ok(ds)
}

/// Parse one data row of the FER2013 CSV (`emotion,pixels[,Usage]`).
/// Returns the class, the 2304 pixels and the usage column (empty when absent).
pub fn parse_csv_row(line: &str) -> std::result::Result<(Emotion, Vec<u8>, String), String> {
    let fields: Vec<&str> = line.split(',').map(|f| f.trim().trim_matches('"')).collect();
    if fields.len() < 2 || fields.len() > 3 {
        return Err(format!(
            "expected 2 or 3 comma-separated fields (emotion,pixels,Usage), found {}",
            fields.len()
        ));
    }
    let label = fields[0]
        .parse::<u32>()
        .ok()
        .and_then(Emotion::from_csv_label)
        .ok_or_else(|| format!("field 'emotion': '{}' is not a label 0-6", fields[0]))?;
    let mut pixels = Vec::with_capacity(FACE_PIXELS);
    for (i, tok) in fields[1].split_ascii_whitespace().enumerate() {
        let v = tok
            .parse::<u8>()
            .map_err(|_| format!("field 'pixels': value {} '{tok}' is not 0-255", i + 1))?;
        pixels.push(v);
    }
    if pixels.len() != FACE_PIXELS {
        return Err(format!(
            "field 'pixels': expected {FACE_PIXELS} values (48x48), found {}",
            pixels.len()
        ));
    }
    let usage = fields.get(2).map(|s| s.to_string()).unwrap_or_default();
    Ok((label, pixels, usage))
}

fn load_csv(path: &Path, opts: &LoadOptions) -> Result<Dataset> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    read_csv(std::io::BufReader::new(file), path, opts)
}

/// Read the FER2013 CSV from `reader`; errors name `path` and the line.
pub fn read_csv(reader: impl BufRead, path: &Path, opts: &LoadOptions) -> Result<Dataset> {
    let mut ds = Dataset::default();
    let mut per_class = [0usize; Emotion::COUNT];
    for (i, line) in reader.lines().enumerate() {
        let line_no = i + 1;
        let line = line.map_err(|e| Error::BadCsvRow {
            path: path.to_path_buf(),
            line: line_no,
            message: format!("cannot read line: {e}"),
        })?;
        let trimmed = line.trim();
        if trimmed.is_empty() || (line_no == 1 && trimmed.to_ascii_lowercase().starts_with("emotion")) {
            continue;
        }
        match parse_csv_row(trimmed) {
            Ok((label, mut pixels, usage)) => {
                if opts.contrast == crate::data::preprocess::Contrast::Equalize {
                    crate::data::preprocess::equalize(&mut pixels);
                }
                if opts.usage.as_ref().is_some_and(|u| !u.eq_ignore_ascii_case(&usage)) {
                    continue;
                }
                if opts.max_per_class.is_some_and(|m| per_class[label.index()] >= m) {
                    continue;
                }
                per_class[label.index()] += 1;
                ds.push_face(&pixels, label, format!("{}:{line_no}", path.display()));
            }
            Err(message) if opts.skip_bad => ds
                .skipped
                .push((format!("{}:{line_no}", path.display()), message)),
            Err(message) => {
                return Err(Error::BadCsvRow {
                    path: path.to_path_buf(),
                    line: line_no,
                    message,
                });
            }
        }
    }
    Ok(ds)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pixels_str(v: u8) -> String {
        vec![v.to_string(); FACE_PIXELS].join(" ")
    }

    fn write_png(path: &Path, v: u8, size: u32) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        image::GrayImage::from_pixel(size, size, image::Luma([v])).save(path).unwrap();
    }

    #[test]
    fn folder_walks_end_on_symlink_loops_and_list_each_image_once() {
        let dir = crate::fsutil::TempDir::new().unwrap();
        let root = dir.path().join("photos");
        write_png(&root.join("a.png"), 10, 8);
        write_png(&root.join("sub/b.png"), 20, 8);
        std::os::unix::fs::symlink(&root, root.join("self1")).unwrap();
        std::os::unix::fs::symlink(&root, root.join("sub/up")).unwrap();
        std::os::unix::fs::symlink(root.join("sub"), root.join("sub2")).unwrap();
        let found = collect_images(std::slice::from_ref(&root)).unwrap();
        assert_eq!(found, vec![root.join("a.png"), root.join("sub/b.png")]);
        // The same folder named twice is listed once and is not an empty folder the second time.
        assert_eq!(collect_images(&[root.clone(), root.join("sub2")]).unwrap().len(), 2);
    }

    #[test]
    fn image_lists_read_paths_and_classes_and_name_bad_rows() {
        let dir = crate::fsutil::TempDir::new().unwrap();
        write_png(&dir.path().join("faces/a.png"), 10, 60);
        write_png(&dir.path().join("faces/b, c.png"), 20, 60);
        let list = dir.path().join("list.csv");
        std::fs::write(&list, "\u{feff}label,path,person\nHappy,faces/a.png,s1\nsad,\"faces/b, c.png\",s2\n").unwrap();
        assert!(is_image_list(&list).unwrap());
        let ds = Dataset::load(&list, &LoadOptions::default()).unwrap();
        assert_eq!(ds.labels, vec![Emotion::Happy, Emotion::Sad]);
        assert_eq!(ds.sources[1], dir.path().join("faces/b, c.png").display().to_string());
        // Written back (absolute paths) and read again: the same rows.
        let rows = vec![(dir.path().join("faces/b, c.png"), Emotion::Sad), (dir.path().join("faces/a.png"), Emotion::Fear)];
        let again = read_image_list(write_image_list(&rows).unwrap().as_slice(), Path::new("x.csv"), false).unwrap().0;
        assert_eq!(again.into_iter().map(|(p, l, _)| (p, l)).collect::<Vec<_>>(), rows);
        // An unknown class names the list, the line and the label; a missing file names the file.
        std::fs::write(&list, "path,label\nfaces/a.png,happy\nfaces/a.png,contempt\n").unwrap();
        let e = Dataset::load(&list, &LoadOptions::default()).unwrap_err().to_string();
        assert!(e.contains("list.csv, line 3") && e.contains("'contempt'"), "{e}");
        let skipped = Dataset::load(&list, &LoadOptions { skip_bad: true, ..Default::default() }).unwrap();
        assert_eq!((skipped.len(), skipped.skipped.len()), (1, 1));
        std::fs::write(&list, "path,label\nfaces/nothere.png,happy\n").unwrap();
        let e = Dataset::load(&list, &LoadOptions::default()).unwrap_err().to_string();
        assert!(e.contains("nothere.png"), "{e}");
        std::fs::write(&list, "path,label\n").unwrap();
        assert!(Dataset::load(&list, &LoadOptions::default()).unwrap_err().to_string().contains("no usable images"));
        // A FER2013 CSV is not a list.
        std::fs::write(&list, format!("emotion,pixels\n3,{}\n", pixels_str(1))).unwrap();
        assert!(!is_image_list(&list).unwrap());
    }

    #[test]
    fn csv_rows_map_labels_and_select_usage() {
        let dir = crate::fsutil::TempDir::new().unwrap();
        let p = dir.path().join("fer.csv");
        let body = format!(
            "emotion,pixels,Usage\n4,{},Training\n6,{},PublicTest\n0,{},Training\n",
            pixels_str(1),
            pixels_str(2),
            pixels_str(3)
        );
        std::fs::write(&p, body).unwrap();
        let all = Dataset::load(&p, &LoadOptions::default()).unwrap();
        assert_eq!(all.labels, vec![Emotion::Sad, Emotion::Neutral, Emotion::Angry]);
        assert_eq!(all.face(1)[0], 2);
        let opts = LoadOptions {
            usage: Some("Training".into()),
            ..Default::default()
        };
        let train = Dataset::load(&p, &opts).unwrap();
        assert_eq!(train.labels, vec![Emotion::Sad, Emotion::Angry]);
        assert!(train.sources[1].ends_with(":4"));
    }

    #[test]
    fn bad_csv_rows_name_their_line_and_field() {
        let dir = crate::fsutil::TempDir::new().unwrap();
        let p = dir.path().join("bad.csv");
        let short = vec!["5"; 100].join(" ");
        std::fs::write(
            &p,
            format!("emotion,pixels,Usage\n3,{},Training\n3,{short},Training\n9,{},Training\n", pixels_str(0), pixels_str(0)),
        )
        .unwrap();
        let err = Dataset::load(&p, &LoadOptions::default()).unwrap_err().to_string();
        assert!(err.contains("line 3") && err.contains("expected 2304 values") && err.contains("found 100"), "{err}");
        let opts = LoadOptions {
            skip_bad: true,
            ..Default::default()
        };
        let ds = Dataset::load(&p, &opts).unwrap();
        assert_eq!(ds.len(), 1);
        assert_eq!(ds.skipped.len(), 2);
        assert!(ds.skipped[1].1.contains("'emotion'"), "{:?}", ds.skipped);
        assert!(parse_csv_row(&format!("1,{} 300", vec!["0"; 2303].join(" "))).unwrap_err().contains("not 0-255"));
    }

    #[test]
    fn folders_load_any_size_and_reject_unknown_classes() {
        let dir = crate::fsutil::TempDir::new().unwrap();
        let root = dir.path();
        write_png(&root.join("happy/a.png"), 200, 48);
        write_png(&root.join("happy/b.png"), 100, 96);
        write_png(&root.join("sad/c.png"), 50, 20);
        std::fs::write(root.join("sad/notes.txt"), "ignored").unwrap();
        let ds = Dataset::load(root, &LoadOptions::default()).unwrap();
        assert_eq!(ds.len(), 3);
        assert_eq!(ds.labels, vec![Emotion::Happy, Emotion::Happy, Emotion::Sad]);
        assert!(ds.face(1).iter().all(|&p| p == 100));
        assert_eq!(ds.class_counts()[Emotion::Happy.index()], 2);

        let limited = Dataset::load(
            root,
            &LoadOptions {
                max_per_class: Some(1),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(limited.len(), 2);

        write_png(&root.join("joyful/d.png"), 1, 48);
        let err = Dataset::load(root, &LoadOptions::default()).unwrap_err().to_string();
        assert!(err.contains("joyful") && err.contains("unknown class folder"), "{err}");
    }

    #[test]
    fn missing_and_empty_folders_are_clear_errors() {
        let dir = crate::fsutil::TempDir::new().unwrap();
        let missing = dir.path().join("nope");
        let err = Dataset::load(&missing, &LoadOptions::default()).unwrap_err();
        assert!(matches!(&err, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound), "{err}");
        assert!(err.to_string().contains("nope"), "{err}");
        let err = Dataset::load(dir.path(), &LoadOptions::default()).unwrap_err().to_string();
        assert!(err.contains("no class folders"), "{err}");
        std::fs::create_dir(dir.path().join("fear")).unwrap();
        let err = Dataset::load(dir.path(), &LoadOptions::default()).unwrap_err().to_string();
        assert!(err.contains("no usable images"), "{err}");
    }

    #[test]
    fn corrupt_and_truncated_images_name_the_file_or_are_skipped() {
        let dir = crate::fsutil::TempDir::new().unwrap();
        let root = dir.path();
        write_png(&root.join("angry/good.png"), 7, 48);
        std::fs::write(root.join("angry/garbage.jpg"), b"this is not a jpeg").unwrap();
        let full = std::fs::read(root.join("angry/good.png")).unwrap();
        std::fs::write(root.join("angry/truncated.png"), &full[..full.len() / 2]).unwrap();
        let err = Dataset::load(root, &LoadOptions::default()).unwrap_err().to_string();
        assert!(err.contains("garbage.jpg"), "{err}");
        let ds = Dataset::load(
            root,
            &LoadOptions {
                skip_bad: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(ds.len(), 1);
        assert_eq!(ds.skipped.len(), 2);
        assert!(ds.skipped.iter().any(|(p, _)| p.ends_with("truncated.png")));
    }
}
