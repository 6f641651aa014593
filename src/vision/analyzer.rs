//! Faces in the wild: detect faces, classify each crop, abstain when unsure, track over video.
//!
//! `Analyzer::new()` builds the embedded detector and expression model once;
//! `analyze(&DynamicImage)` gives one `Face` per face found. `VideoAnalyzer` adds detection every
//! N frames, tracking with stable ids in between and smoothing of probabilities.

use crate::vision::annotate::Painter;
use crate::vision::blazeface::{BlazeFace, BlazeFaceConfig};
use crate::vision::detect::{BBox, Detection, Detector, crop_face_rotated};
use crate::emotion::Emotion;
use crate::error::Result;
use crate::emotion::argmax;
use crate::model::infer::Tta;
use crate::model::Network;
use crate::model::onnx::FastModel;
use crate::data::preprocess::FACE_PIXELS;
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
        }
    }
}

fn yes() -> bool {
    true
}

/// One face: where, how sure the detector is, the seven probabilities and the label.
#[derive(Debug, Clone, PartialEq)]
pub struct Face {
    pub bbox: BBox,
    pub score: f32,
    pub probs: [f32; Emotion::COUNT],
    /// The top class, or `None` (uncertain) when its probability is below the threshold.
    pub label: Option<Emotion>,
}

impl Face {
    fn new(bbox: BBox, score: f32, probs: [f32; Emotion::COUNT], abstain_below: f32) -> Face {
        let top = argmax(&probs);
        let label = (probs[top] >= abstain_below).then_some(Emotion::ALL[top]);
        Face { bbox, score, probs, label }
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

    /// The face as JSON: box, detector score, label, probabilities by class name.
    pub fn to_json(&self) -> serde_json::Value {
        let probs: serde_json::Map<String, serde_json::Value> = Emotion::ALL
            .iter()
            .map(|e| (e.name().to_string(), serde_json::json!((self.probs[e.index()] * 1e4).round() / 1e4)))
            .collect();
        serde_json::json!({
            "box": {"x": self.bbox.x.round(), "y": self.bbox.y.round(), "w": self.bbox.w.round(), "h": self.bbox.h.round()},
            "score": (self.score * 1e4).round() / 1e4,
            "label": self.label_name(),
            "probabilities": probs,
        })
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

/// Detector + expression model, built once and shared.
pub struct Analyzer {
    detector: Box<dyn Detector>,
    model: FastModel,
    painter: Painter,
    pub config: AnalyzerConfig,
}

impl Analyzer {
    /// The embedded detector and expression model with default settings.
    pub fn new() -> Result<Analyzer> {
        Analyzer::with_config(AnalyzerConfig::default())
    }

    /// The embedded detector and expression model.
    pub fn with_config(config: AnalyzerConfig) -> Result<Analyzer> {
        let device = crate::device::inference_device();
        let (net, header) = crate::model::embedded::default_model(&device)?;
        let config = AnalyzerConfig {
            contrast: header.contrast(),
            ..config
        };
        let detector = BlazeFace::new(config.detector.clone())?;
        Analyzer::from_parts(Box::new(detector), &net, config)
    }

    /// Any detector and model (e.g. a model file the user trained). The model is compiled once
    /// for single-face inference (`onnx::FastModel`); its BatchNorm statistics are used as in
    /// inference mode.
    pub fn from_parts(detector: Box<dyn Detector>, net: &Network, config: AnalyzerConfig) -> Result<Analyzer> {
        Ok(Analyzer {
            detector,
            model: FastModel::new(net)?,
            painter: Painter::new(),
            config,
        })
    }

    /// Find and classify every face in an image (any colour type or bit depth).
    pub fn analyze(&self, image: &DynamicImage) -> Result<Vec<Face>> {
        let rgb = image.to_rgb8();
        self.analyze_rgb(&rgb)
    }

    pub fn analyze_rgb(&self, rgb: &RgbImage) -> Result<Vec<Face>> {
        let dets = self.detector.detect(rgb)?;
        let gray = image::imageops::grayscale(rgb);
        let probs = self.classify(&gray, &dets)?;
        Ok(dets
            .iter()
            .zip(probs)
            .map(|(d, p)| Face::new(d.bbox, d.score, p, self.config.abstain_below))
            .collect())
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

/// A face in a video frame with its track id (probabilities smoothed over time).
#[derive(Debug, Clone, PartialEq)]
pub struct TrackedFace {
    pub id: u32,
    pub face: Face,
}

/// Results for one video frame.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameResult {
    pub index: usize,
    /// Seconds from the start (index / fps).
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
        let tracker = TrackerConfig {
            abstain: analyzer.config.abstain_below,
            ..opts.tracker.clone()
        };
        VideoAnalyzer {
            analyzer,
            tracker: Tracker::new(tracker),
            opts,
            fps: if fps > 0.0 { fps } else { 25.0 },
            index: 0,
            carried: Vec::new(),
            thumb: None,
            detect_s: 0.0,
            classify_s: 0.0,
        }
    }

    /// The analyzer this video uses.
    pub fn analyzer(&self) -> &A {
        &self.analyzer
    }

    /// Analyse the next frame.
    pub fn process(&mut self, frame: &RgbImage) -> Result<FrameResult> {
        let index = self.index;
        self.index += 1;
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
        let detected = cut || index.is_multiple_of(self.opts.detect_every.max(1));
        let t0 = std::time::Instant::now();
        let found: Vec<Detection> = if detected {
            self.analyzer.detector.detect(frame)?
        } else {
            self.carried.clone()
        };
        let t1 = std::time::Instant::now();
        let boxes: Vec<BBox> = found.iter().map(|f| f.bbox).collect();
        let probs = self.analyzer.classify(&gray, &found)?;
        self.detect_s += (t1 - t0).as_secs_f64();
        self.classify_s += t1.elapsed().as_secs_f64();
        let faces: Vec<(BBox, [f32; Emotion::COUNT])> = boxes.iter().copied().zip(probs).collect();
        let ids = self.tracker.update(&faces, (1.0 / self.fps) as f32);
        let abstain = self.analyzer.config.abstain_below;
        let tracked = found
            .iter()
            .zip(ids)
            .map(|(d, (id, smoothed))| {
                let mut face = Face::new(d.bbox, d.score, smoothed, abstain);
                // The tracker's label (or uncertain), held against flicker.
                face.label = self.tracker.label(id);
                TrackedFace { id, face }
            })
            .collect();
        self.carried = found;
        Ok(FrameResult {
            index,
            time_s: index as f64 / self.fps,
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
        let f = Face::new(BBox::new(0.0, 0.0, 10.0, 10.0), 0.9, p, 0.5);
        assert_eq!(f.label, None);
        assert_eq!(f.label_name(), "uncertain");
        assert!(f.caption().starts_with("uncertain (happy"));
        let f = Face::new(f.bbox, 0.9, p, 0.3);
        assert_eq!(f.label, Some(Emotion::Happy));
        assert_eq!(f.to_json()["label"], "happy");
    }

    /// The embedded model behind a detector that finds one fixed face in every image.
    fn one_face_analyzer() -> Analyzer {
        // Decoding a model file initialises a network first: a draw from the global generator.
        let _rng = crate::rng_lock();
        let device = crate::device::inference_device();
        let (net, _) = crate::model::embedded::default_model(&device).unwrap();
        let det = Fixed(vec![Detection::new(BBox::new(10.0, 10.0, 40.0, 40.0), 0.9)]);
        Analyzer::from_parts(Box::new(det), &net, AnalyzerConfig::default()).unwrap()
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
