//! Faces in the wild: detect faces, classify each crop, abstain when unsure, track over video.
//!
//! `Analyzer::builder()...build()` (settings in [`crate::vision::builder`]) builds the detector
//! and expression model once; `analyze(&DynamicImage)` gives one `Face` per face found,
//! `analyze_many` many images in parallel, `predict` face crops. `VideoAnalyzer` adds detection
//! every N frames, tracking with stable ids in between and smoothing of probabilities.

use crate::vision::annotate::Painter;
use crate::vision::blazeface::BlazeFaceConfig;
use crate::vision::detect::{BBox, Detection, Detector, Landmarks, crop_face_rotated};
use crate::model::file::ModelHeader;
use crate::model::meta::ModelMeta;
use crate::emotion::Emotion;
use crate::error::Result;
use crate::emotion::argmax;
use crate::model::infer::Tta;
use crate::model::Network;
use crate::model::onnx::FastModel;
use crate::model::quant::InferencePrecision;
use crate::data::preprocess::FACE_PIXELS;
use crate::data::imageio::DecodeLimits;
use crate::vision::track::{Tracker, TrackerConfig};
use image::{DynamicImage, GrayImage, RgbImage};
use serde::{Deserialize, Serialize};

/// How faces are cropped and labelled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalyzerConfig {
    /// Margin added on each side of the detector's tight box before the square crop, as a
    /// fraction of the box size (FER2013 crops show brow to chin with some background).
    pub margin: f32,
    /// A face whose top probability is below this is labelled `uncertain` (0 = never).
    pub abstain_below: f32,
    pub detector: BlazeFaceConfig,
    /// Test-time augmentation for each face crop.
    pub tta: Tta,
    /// Turn each crop so the eyes are level (from the detector's landmarks).
    #[serde(default = "yes")]
    pub align: bool,
    /// The crops' contrast step (`preprocess::to_face`): the model's own (`ModelHeader::contrast`;
    /// `Analyzer::with_config` and the command line set it from the model).
    #[serde(default)]
    pub contrast: crate::data::preprocess::Contrast,
    /// What one image file or byte string may cost to decode ([`DecodeLimits`]).
    #[serde(default)]
    pub decode_limits: DecodeLimits,
}

impl Default for AnalyzerConfig {
    fn default() -> Self {
        AnalyzerConfig {
            margin: 0.15,
            abstain_below: 0.4,
            detector: BlazeFaceConfig::default(),
            tta: Tta::None,
            contrast: crate::data::preprocess::Contrast::default(),
            align: true,
            decode_limits: DecodeLimits::default(),
        }
    }
}

fn yes() -> bool {
    true
}

/// One face: where, how sure the detector is, the seven probabilities and the label.
///
/// Serialised (JSON output of the command line, the server and the Python package) as
/// `{"box": {"x", "y", "w", "h"}, "score", "label", "probabilities": {"angry": ..}, "landmarks"}`
/// (`label` is `"uncertain"` when abstaining; `landmarks` only when the detector gave them).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Face {
    pub bbox: BBox,
    pub score: f32,
    /// The detector's six landmarks in image pixels (eyes, nose tip, mouth centre, then
    /// BlazeFace's ear tragions or YuNet's mouth corners; [`Landmarks`]).
    pub landmarks: Option<Landmarks>,
    /// Probabilities in [`Emotion`] order, summing to 1.
    pub probs: [f32; Emotion::COUNT],
    /// The top class, or `None` (uncertain) when its probability is below the threshold.
    pub label: Option<Emotion>,
}

impl Serialize for Face {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("box", &self.bbox)?;
        m.serialize_entry("score", &self.score)?;
        m.serialize_entry("label", self.label_name())?;
        m.serialize_entry("probabilities", &Probabilities(&self.probs))?;
        if let Some(l) = &self.landmarks {
            m.serialize_entry("landmarks", l)?;
        }
        m.end()
    }
}

/// Probabilities serialised as a map from class name, in [`Emotion`] order.
pub struct Probabilities<'a>(pub &'a [f32; Emotion::COUNT]);

impl Serialize for Probabilities<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(Emotion::COUNT))?;
        for e in Emotion::ALL {
            m.serialize_entry(e.name(), &self.0[e.index()])?;
        }
        m.end()
    }
}

impl Face {
    fn new(d: &Detection, probs: [f32; Emotion::COUNT], abstain_below: f32) -> Face {
        let top = argmax(&probs);
        let label = (probs[top] >= abstain_below).then_some(Emotion::ALL[top]);
        Face { bbox: d.bbox, score: d.score, landmarks: d.landmarks, probs, label }
    }

    /// The label's name, or "uncertain".
    pub fn label_name(&self) -> &'static str {
        self.label.map_or("uncertain", |e| e.name())
    }

    /// The most probable class and its probability (even when uncertain).
    pub fn top(&self) -> (Emotion, f32) {
        let k = argmax(&self.probs);
        (Emotion::ALL[k], self.probs[k])
    }

    /// The face as JSON (its `Serialize` form).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    /// Colour for drawing: the emotion's, white when uncertain.
    pub fn color(&self) -> [u8; 3] {
        self.label.map_or([255, 255, 255], |e| e.color())
    }

    /// "happy 93%" or "uncertain (sad 31%)".
    pub fn caption(&self) -> String {
        let (e, p) = self.top();
        match self.label {
            Some(l) => format!("{} {:.0}%", l.name(), 100.0 * self.probs[l.index()]),
            None => format!("uncertain ({} {:.0}%)", e.name(), 100.0 * p),
        }
    }
}

/// An image to analyse: already decoded, or a file or bytes that [`Analyzer::analyze_many`]
/// decodes on its worker threads.
pub trait ImageInput: Sync {
    /// The decoded image within `limits` (errors name the file; an image already decoded is
    /// taken as it is).
    fn decode(&self, limits: &DecodeLimits) -> Result<std::borrow::Cow<'_, DynamicImage>>;
}

impl ImageInput for DynamicImage {
    fn decode(&self, _: &DecodeLimits) -> Result<std::borrow::Cow<'_, DynamicImage>> {
        Ok(std::borrow::Cow::Borrowed(self))
    }
}

impl ImageInput for std::path::Path {
    fn decode(&self, limits: &DecodeLimits) -> Result<std::borrow::Cow<'_, DynamicImage>> {
        crate::data::decode_image(self, limits).map(std::borrow::Cow::Owned)
    }
}

impl ImageInput for std::path::PathBuf {
    fn decode(&self, limits: &DecodeLimits) -> Result<std::borrow::Cow<'_, DynamicImage>> {
        self.as_path().decode(limits)
    }
}

impl<T: ImageInput + ?Sized> ImageInput for &T {
    fn decode(&self, limits: &DecodeLimits) -> Result<std::borrow::Cow<'_, DynamicImage>> {
        (**self).decode(limits)
    }
}

/// Encoded image bytes (JPEG, PNG, BMP, TIFF, GIF) and the name errors give them.
pub struct EncodedImage<'a> {
    pub name: &'a str,
    pub bytes: &'a [u8],
}

impl ImageInput for EncodedImage<'_> {
    fn decode(&self, limits: &DecodeLimits) -> Result<std::borrow::Cow<'_, DynamicImage>> {
        crate::data::decode_bytes(self.bytes, std::path::Path::new(self.name), limits).map(std::borrow::Cow::Owned)
    }
}

/// A pool of `n` threads (at least 1) for the analyzer's parallel work.
pub(crate) fn thread_pool(n: usize) -> Result<rayon::ThreadPool> {
    let bad = |why: String| crate::Error::Setting { name: "threads", value: n.to_string(), expected: why };
    if n == 0 {
        return Err(bad("at least 1".into()));
    }
    rayon::ThreadPoolBuilder::new().num_threads(n).build().map_err(|e| bad(format!("a thread count this system can start ({e})")))
}

/// Detector + expression model, built once and shared between threads
/// ([`Analyzer::builder`], in [`crate::vision::builder`], makes one).
pub struct Analyzer {
    detector: Box<dyn Detector>,
    model: FastModel,
    painter: Painter,
    config: AnalyzerConfig,
    meta: ModelMeta,
    pool: Option<rayon::ThreadPool>,
}

impl Analyzer {
    /// Put the parts together ([`crate::AnalyzerBuilder::build`] checked them). The model is compiled
    /// once for single-face inference (`onnx::FastModel`), BatchNorm in inference mode.
    pub(crate) fn assemble(
        detector: Box<dyn Detector>,
        net: &Network,
        header: ModelHeader,
        config: AnalyzerConfig,
        precision: InferencePrecision,
        pool: Option<rayon::ThreadPool>,
    ) -> Result<Analyzer> {
        Ok(Analyzer {
            detector,
            model: FastModel::with_precision(net, header.meta.int8.as_ref(), precision)?,
            painter: Painter::new(),
            config,
            meta: header.meta,
            pool,
        })
    }

    /// The numbers the expression model computes with.
    pub fn precision(&self) -> InferencePrecision {
        self.model.precision()
    }

    /// The settings in force (read-only: build another analyzer to change them).
    pub fn config(&self) -> &AnalyzerConfig {
        &self.config
    }

    /// The model's contract and provenance (contrast, class priors, prior correction).
    pub fn meta(&self) -> &ModelMeta {
        &self.meta
    }

    /// Find and classify every face in an image (any colour type or bit depth).
    pub fn analyze(&self, image: &DynamicImage) -> Result<Vec<Face>> {
        match image {
            DynamicImage::ImageRgb8(rgb) => self.analyze_rgb(rgb),
            other => self.analyze_rgb(&other.to_rgb8()),
        }
    }

    /// [`analyze`](Self::analyze) for an RGB image.
    pub fn analyze_rgb(&self, rgb: &RgbImage) -> Result<Vec<Face>> {
        let dets = self.detect(rgb)?;
        let gray = image::imageops::grayscale(rgb);
        let probs = self.classify(&gray, &dets)?;
        Ok(dets.iter().zip(probs).map(|(d, p)| Face::new(d, p, self.config.abstain_below)).collect())
    }

    /// The detector's faces, on the analyzer's threads when it has its own
    /// ([`crate::AnalyzerBuilder::threads`]: the detector's models run side by side on them).
    fn detect(&self, rgb: &RgbImage) -> Result<Vec<Detection>> {
        match &self.pool {
            Some(pool) if pool.current_thread_index().is_none() => pool.install(|| self.detector.detect(rgb)),
            _ => self.detector.detect(rgb),
        }
    }

    /// Analyse many images in parallel (decoding included), on the analyzer's threads
    /// ([`crate::AnalyzerBuilder::threads`]); one result per input, in order.
    pub fn analyze_many<I: ImageInput>(&self, inputs: &[I]) -> Vec<Result<Vec<Face>>> {
        self.analyze_on(inputs, self.pool.as_ref())
    }

    /// [`analyze_many`](Self::analyze_many) on `threads` threads for this call (`None`: the
    /// analyzer's own).
    pub fn analyze_many_on<I: ImageInput>(&self, inputs: &[I], threads: Option<usize>) -> Result<Vec<Result<Vec<Face>>>> {
        match threads {
            None => Ok(self.analyze_many(inputs)),
            Some(n) => Ok(self.analyze_on(inputs, Some(&thread_pool(n)?))),
        }
    }

    fn analyze_on<I: ImageInput>(&self, inputs: &[I], pool: Option<&rayon::ThreadPool>) -> Vec<Result<Vec<Face>>> {
        use rayon::prelude::*;
        let run = || inputs.par_iter().map(|i| self.analyze(i.decode(&self.config.decode_limits)?.as_ref())).collect();
        match pool {
            Some(pool) => pool.install(run),
            None => run(),
        }
    }

    /// Expression probabilities of face crops (no detector): each image, any size or colour,
    /// is made a 48x48 face with the model's own preprocessing; test-time views as set.
    pub fn predict(&self, crops: &[DynamicImage]) -> Result<Vec<[f32; Emotion::COUNT]>> {
        let mut faces = Vec::with_capacity(crops.len() * FACE_PIXELS);
        for c in crops {
            faces.extend(crate::data::preprocess::to_face(c, self.config.contrast));
        }
        self.predict_faces(&faces)
    }

    /// Probabilities of faces already in the model's form: 48x48 gray, row-major, one after
    /// another, preprocessed (see [`crate::data::preprocess::to_face`]).
    pub fn predict_faces(&self, faces: &[u8]) -> Result<Vec<[f32; Emotion::COUNT]>> {
        if !faces.len().is_multiple_of(FACE_PIXELS) {
            return Err(crate::Error::Setting {
                name: "faces",
                value: format!("{} bytes", faces.len()),
                expected: format!("a multiple of {FACE_PIXELS} (48x48 faces)"),
            });
        }
        if faces.is_empty() {
            return Ok(Vec::new());
        }
        self.model.probs_tta(faces, self.config.tta)
    }

    /// Frame-by-frame analysis of a video at `fps` with tracking and smoothing.
    pub fn video(&self, fps: f64, opts: VideoOptions) -> Result<VideoAnalyzer<&Analyzer>> {
        VideoAnalyzer::checked(self, fps, opts)
    }

    /// Expression probabilities of the detected faces (test-time views averaged per face),
    /// each cropped level by its landmarks when `config.align` is on.
    pub fn classify(&self, gray: &GrayImage, dets: &[Detection]) -> Result<Vec<[f32; Emotion::COUNT]>> {
        if dets.is_empty() {
            return Ok(Vec::new());
        }
        let mut faces = Vec::with_capacity(dets.len() * FACE_PIXELS);
        for d in dets {
            let roll = if self.config.align { d.roll() } else { 0.0 };
            faces.extend(crop_face_rotated(gray, &d.bbox, self.config.margin, roll, self.config.contrast));
        }
        self.model.probs_tta(&faces, self.config.tta)
    }

    /// Draw each face's box and caption on `img`.
    pub fn draw(&self, img: &mut RgbImage, faces: &[Face]) {
        for f in faces {
            self.painter.labelled_box(img, &f.bbox, &f.caption(), f.color());
        }
    }

    /// Draw tracked faces with their ids.
    pub fn draw_tracked(&self, img: &mut RgbImage, faces: &[TrackedFace]) {
        for t in faces {
            let caption = format!("#{} {}", t.id, t.face.caption());
            self.painter.labelled_box(img, &t.face.bbox, &caption, t.face.color());
        }
    }
}

/// A face in a video frame with its track id (probabilities smoothed over time); serialised as
/// the face with an `"id"`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct TrackedFace {
    pub id: u32,
    #[serde(flatten)]
    pub face: Face,
}

/// Results for one video frame.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct FrameResult {
    pub index: usize,
    /// Seconds from the first frame: the frame's own presentation time where the caller
    /// gives it ([`VideoAnalyzer::process_at`]), else index / fps.
    pub time_s: f64,
    /// Whether the detector ran on this frame (otherwise boxes come from the tracker).
    pub detected: bool,
    /// Whether this frame starts a new shot (a cut): tracks were ended and the detector ran.
    pub cut: bool,
    pub faces: Vec<TrackedFace>,
}

/// Video settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoOptions {
    /// Run the detector on every Nth frame (1 = every frame); boxes are carried by the
    /// tracker in between and the faces are classified on every frame.
    pub detect_every: usize,
    pub tracker: TrackerConfig,
    /// A frame whose 32x24 grayscale thumbnail differs from the previous frame's by more than
    /// this mean absolute difference (0-1) is a cut: tracks end (no id or smoothing carried
    /// from one shot to the next) and the detector runs on it. 0 = never.
    #[serde(default = "default_cut_threshold")]
    pub cut_threshold: f32,
}

impl VideoOptions {
    /// Check the settings: `detect_every` >= 1, `cut_threshold` in [0, 1], and the tracker's
    /// ([`TrackerConfig::validate`]).
    pub fn validate(&self) -> Result<()> {
        if self.detect_every == 0 {
            return Err(crate::Error::Setting { name: "detect_every", value: "0".into(), expected: "at least 1".into() });
        }
        if !(0.0..=1.0).contains(&self.cut_threshold) {
            return Err(crate::Error::Setting { name: "cut_threshold", value: self.cut_threshold.to_string(), expected: "a number in [0, 1]".into() });
        }
        self.tracker.validate()
    }
}

fn default_cut_threshold() -> f32 {
    VideoOptions::default().cut_threshold
}

impl Default for VideoOptions {
    fn default() -> Self {
        VideoOptions {
            detect_every: 3,
            tracker: TrackerConfig::default(),
            cut_threshold: 0.1,
        }
    }
}

/// Side of the thumbnails compared for cut detection.
const CUT_THUMB: (u32, u32) = (32, 24);

/// Mean absolute difference (0-1) of two equal-size grayscale thumbnails.
fn thumb_difference(a: &GrayImage, b: &GrayImage) -> f32 {
    let n = a.as_raw().len().max(1) as f32;
    let sum: u32 = a.as_raw().iter().zip(b.as_raw()).map(|(&x, &y)| x.abs_diff(y) as u32).sum();
    sum as f32 / n / 255.0
}

/// Frame-by-frame analysis of a video with tracking. `A` is `&Analyzer` or `Arc<Analyzer>`.
pub struct VideoAnalyzer<A: std::ops::Deref<Target = Analyzer>> {
    analyzer: A,
    tracker: Tracker,
    opts: VideoOptions,
    fps: f64,
    index: usize,
    /// The time of the last frame analysed.
    last_time: Option<f64>,
    /// Boxes and detector scores of the faces seen on the last detection frame, moved along
    /// with their tracks.
    carried: Vec<Detection>,
    /// The previous frame's thumbnail, for cut detection.
    thumb: Option<GrayImage>,
    /// Seconds spent detecting and classifying so far.
    pub detect_s: f64,
    pub classify_s: f64,
}

impl<A: std::ops::Deref<Target = Analyzer>> VideoAnalyzer<A> {
    /// The tracker labels faces `uncertain` with the analyzer's `abstain_below` (held by the
    /// tracker's hysteresis), whatever `opts.tracker.abstain` says.
    pub fn new(analyzer: A, fps: f64, opts: VideoOptions) -> VideoAnalyzer<A> {
        let tracker = TrackerConfig { abstain: analyzer.config.abstain_below, ..opts.tracker.clone() };
        VideoAnalyzer {
            analyzer,
            tracker: Tracker::new(tracker),
            opts,
            fps: if fps > 0.0 { fps } else { 25.0 },
            index: 0,
            last_time: None,
            carried: Vec::new(),
            thumb: None,
            detect_s: 0.0,
            classify_s: 0.0,
        }
    }

    /// [`new`](Self::new) with the options checked ([`VideoOptions::validate`]) and `fps`
    /// finite and not negative (0: unknown, taken as 25).
    pub fn checked(analyzer: A, fps: f64, opts: VideoOptions) -> Result<VideoAnalyzer<A>> {
        opts.validate()?;
        if !fps.is_finite() || fps < 0.0 {
            return Err(crate::Error::Setting { name: "fps", value: fps.to_string(), expected: "a positive number".into() });
        }
        Ok(VideoAnalyzer::new(analyzer, fps, opts))
    }

    /// The analyzer this video uses.
    pub fn analyzer(&self) -> &A {
        &self.analyzer
    }

    /// Analyse the next frame (numbered on from the last, at `index / fps` seconds).
    pub fn process(&mut self, frame: &RgbImage) -> Result<FrameResult> {
        self.process_at(frame, self.index, self.index as f64 / self.fps)
    }

    /// Analyse frame `index` of the stream, shown at `time_s` seconds from its first frame
    /// (a video reader's own numbers: the detector runs on every `detect_every`-th frame of
    /// the stream and on the first one given, and smoothing follows the real time between
    /// frames).
    pub fn process_at(&mut self, frame: &RgbImage, index: usize, time_s: f64) -> Result<FrameResult> {
        let first = self.last_time.is_none();
        let dt = match self.last_time {
            Some(t) if time_s > t => time_s - t,
            _ => 1.0 / self.fps,
        };
        self.last_time = Some(time_s);
        self.index = index + 1;
        let gray = image::imageops::grayscale(frame);
        let mut cut = false;
        if self.opts.cut_threshold > 0.0 {
            let thumb = image::imageops::thumbnail(&gray, CUT_THUMB.0, CUT_THUMB.1);
            cut = self.thumb.as_ref().is_some_and(|prev| thumb_difference(prev, &thumb) > self.opts.cut_threshold);
            self.thumb = Some(thumb);
        }
        if cut {
            self.tracker.reset();
        }
        let detected = cut || first || index.is_multiple_of(self.opts.detect_every.max(1));
        let t0 = std::time::Instant::now();
        let found: Vec<Detection> = if detected {
            self.analyzer.detect(frame)?
        } else {
            self.carried.clone()
        };
        let t1 = std::time::Instant::now();
        let probs = self.analyzer.classify(&gray, &found)?;
        self.detect_s += (t1 - t0).as_secs_f64();
        self.classify_s += t1.elapsed().as_secs_f64();
        let faces: Vec<(BBox, [f32; Emotion::COUNT])> = found.iter().map(|f| f.bbox).zip(probs).collect();
        let ids = self.tracker.update(&faces, dt as f32);
        let abstain = self.analyzer.config.abstain_below;
        let tracked = found
            .iter()
            .zip(ids)
            .map(|(d, (id, smoothed))| {
                let mut face = Face::new(d, smoothed, abstain);
                // The tracker's label (or uncertain), held against flicker.
                face.label = self.tracker.label(id);
                TrackedFace { id, face }
            })
            .collect();
        self.carried = found;
        Ok(FrameResult {
            index,
            time_s,
            detected,
            cut,
            faces: tracked,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vision::detect::Detection;

    /// A detector that reports fixed boxes.
    struct Fixed(Vec<Detection>);
    impl Detector for Fixed {
        fn detect(&self, _: &RgbImage) -> Result<Vec<Detection>> {
            Ok(self.0.clone())
        }
    }

    #[test]
    fn abstains_below_the_threshold() {
        let mut p = [0.1f32; Emotion::COUNT];
        p[3] = 0.4;
        let d = Detection::new(BBox::new(0.0, 0.0, 10.0, 10.0), 0.9);
        let f = Face::new(&d, p, 0.5);
        assert_eq!(f.label, None);
        assert_eq!(f.label_name(), "uncertain");
        assert!(f.caption().starts_with("uncertain (happy"));
        let f = Face::new(&d, p, 0.3);
        assert_eq!(f.label, Some(Emotion::Happy));
        let json = f.to_json();
        assert_eq!(json["label"], "happy");
        assert_eq!(json["box"]["w"], 10.0);
        assert_eq!(json["probabilities"]["happy"].as_f64().unwrap() as f32, 0.4);
        assert!(json.get("landmarks").is_none());
    }

    /// The embedded model behind a detector that finds one fixed face in every image.
    fn one_face_analyzer() -> Analyzer {
        // Decoding a model file initialises a network first: a draw from the global generator.
        let _rng = crate::rng_lock();
        let det = Fixed(vec![Detection::new(BBox::new(10.0, 10.0, 40.0, 40.0), 0.9)]);
        Analyzer::builder().custom_detector(Box::new(det)).build().unwrap()
    }

    #[test]
    fn video_frames_carry_boxes_between_detections() {
        let a = one_face_analyzer();
        let faces = a.analyze(&DynamicImage::new_luma16(64, 64)).unwrap();
        assert_eq!(faces.len(), 1);
        assert!((faces[0].probs.iter().sum::<f32>() - 1.0).abs() < 1e-4);
        let mut v = VideoAnalyzer::new(&a, 10.0, VideoOptions::default());
        let frame = RgbImage::new(64, 64);
        let results: Vec<_> = (0..4).map(|_| v.process(&frame).unwrap()).collect();
        assert_eq!(results.iter().map(|r| r.detected).collect::<Vec<_>>(), [true, false, false, true]);
        assert!(results.iter().all(|r| r.faces.len() == 1 && r.faces[0].id == results[0].faces[0].id));
        assert!((results[2].time_s - 0.2).abs() < 1e-9);
    }

    /// A cut (a frame unlike the last) ends the tracks and runs the detector; a small shift
    /// of the same picture does not.
    #[test]
    fn a_cut_ends_tracks_and_runs_the_detector() {
        let a = one_face_analyzer();
        let mut v = VideoAnalyzer::new(&a, 25.0, VideoOptions::default());
        // Shot one: a horizontal ramp, shifted by a pixel per frame; shot two: its negative.
        let shot = |shift: u32, invert: bool| {
            RgbImage::from_fn(96, 72, |x, _| {
                let g = (((x + shift) * 255) / 100) as u8;
                let g = if invert { 255 - g } else { g };
                image::Rgb([g, g, g])
            })
        };
        let r: Vec<_> = (0..6).map(|k| v.process(&shot(k, k >= 4)).unwrap()).collect();
        assert_eq!(r.iter().map(|r| r.cut).collect::<Vec<_>>(), [false, false, false, false, true, false]);
        assert_eq!(r.iter().map(|r| r.detected).collect::<Vec<_>>(), [true, false, false, true, true, false]);
        let ids: Vec<u32> = r.iter().map(|r| r.faces[0].id).collect();
        assert!(ids[..4].iter().all(|&i| i == ids[0]), "{ids:?}");
        assert!(ids[4] != ids[0] && ids[5] == ids[4], "a new track after the cut: {ids:?}");
        let off = VideoOptions { cut_threshold: 0.0, ..Default::default() };
        let mut v = VideoAnalyzer::new(&a, 25.0, off);
        assert!((0..6).all(|k| !v.process(&shot(k, k >= 4)).unwrap().cut));
    }
}
