//! The front door's settings: [`AnalyzerBuilder`] checks every setting, loads the model and
//! reads its preprocessing from the model itself, and assembles the [`Analyzer`] (the one place
//! an analyzer is put together: the command line, the server and the Python package all come
//! through here).

use crate::data::imageio::DecodeLimits;
use crate::data::preprocess::Contrast;
use crate::error::{Error, Result};
use crate::model::file::ModelHeader;
use crate::model::source::ModelSource;
use crate::model::infer::Tta;
use crate::model::Network;
use crate::model::quant::InferencePrecision;
use crate::vision::analyzer::{Analyzer, AnalyzerConfig, thread_pool};
use crate::vision::blazeface::{BlazeFace, BlazeFaceConfig, DetectorModel};
use crate::vision::detect::Detector;

/// Settings for an [`Analyzer`]; every one has a default, and [`build`](Self::build) checks
/// them all.
///
/// ```no_run
/// # fn main() -> ferrite::Result<()> {
/// use ferrite::{Analyzer, DetectorModel, Tta};
/// let analyzer = Analyzer::builder()
///     .model("embedded:fer2013")
///     .detector(DetectorModel::Back)
///     .tta(Tta::Flip)
///     .abstain(0.5)
///     .build()?;
/// # Ok(()) }
/// ```
#[must_use]
pub struct AnalyzerBuilder {
    model: ModelSource,
    network: Option<(Network, ModelHeader)>,
    detector_impl: Option<Box<dyn Detector>>,
    detector: DetectorModel,
    min_score: Option<f32>,
    tiles: u32,
    pad_retry: f32,
    edge_pad: f32,
    small_face_tiles: f32,
    margin: f32,
    align: bool,
    abstain: f32,
    tta: Tta,
    prior_correction: f32,
    contrast: Option<Contrast>,
    threads: Option<usize>,
    max_pixels: u64,
    precision: InferencePrecision,
}

impl Default for AnalyzerBuilder {
    fn default() -> Self {
        let config = AnalyzerConfig::default();
        AnalyzerBuilder {
            model: ModelSource::default(),
            network: None,
            detector_impl: None,
            detector: config.detector.model,
            min_score: config.detector.min_score,
            tiles: config.detector.tiles,
            pad_retry: config.detector.pad_retry,
            edge_pad: config.detector.edge_pad,
            small_face_tiles: config.detector.small_face_tiles,
            margin: config.margin,
            align: config.align,
            abstain: config.abstain_below,
            tta: config.tta,
            prior_correction: 0.0,
            contrast: None,
            threads: None,
            max_pixels: config.decode_limits.max_pixels,
            precision: InferencePrecision::default(),
        }
    }
}

/// The accepted range of each numeric setting (checked by `build`).
pub mod limits {
    /// `margin`: fraction of the face box added on each side.
    pub const MARGIN: (f32, f32) = (0.0, 1.0);
    /// `pad_retry`: fraction of the image added on each side for the second search.
    pub const PAD_RETRY: (f32, f32) = (0.0, 2.0);
    /// `edge_pad`: fraction of the frame's longest side mirrored around it on each side.
    pub const EDGE_PAD: (f32, f32) = (0.0, 0.5);
    /// `small_face_tiles`: fraction of the frame's longest side.
    pub const SMALL_FACE_TILES: (f32, f32) = (0.0, 1.0);
    /// `abstain` and `min_score`: probabilities.
    pub const PROBABILITY: (f32, f32) = (0.0, 1.0);
    /// `tiles`: grid side.
    pub const TILES: (u32, u32) = (1, 6);
    /// `prior_correction`: the power of the class priors divided out.
    pub const PRIOR_CORRECTION: (f32, f32) = (-2.0, 2.0);
}

fn check_range(name: &'static str, value: f32, (lo, hi): (f32, f32)) -> Result<()> {
    if value.is_finite() && (lo..=hi).contains(&value) {
        Ok(())
    } else {
        Err(Error::Setting { name, value: value.to_string(), expected: format!("a number in [{lo}, {hi}]") })
    }
}

impl Analyzer {
    /// Settings with their defaults, to change and [`build`](AnalyzerBuilder::build).
    pub fn builder() -> AnalyzerBuilder {
        AnalyzerBuilder::default()
    }

    /// The embedded detector and expression model with default settings.
    pub fn new() -> Result<Analyzer> {
        Analyzer::builder().build()
    }
}

impl AnalyzerBuilder {
    /// The expression model: `"embedded:NAME"` (`default`, `fer2013`), a model file or a
    /// training run directory (its final model, else its best). Default: the embedded default.
    pub fn model(mut self, model: impl Into<ModelSource>) -> Self {
        self.model = model.into();
        self.network = None;
        self
    }

    /// A network already in memory, with its header (its contract: contrast, priors).
    pub fn network(mut self, net: Network, header: ModelHeader) -> Self {
        self.network = Some((net, header));
        self
    }

    /// Which detector model(s) find faces (default: YuNet, and the BlazeFace pair where it finds
    /// none).
    pub fn detector(mut self, detector: DetectorModel) -> Self {
        self.detector = detector;
        self
    }

    /// Any face detector instead of the embedded ones (their settings then unused).
    pub fn custom_detector(mut self, detector: Box<dyn Detector>) -> Self {
        self.detector_impl = Some(detector);
        self
    }

    /// Smallest detector score kept, in [0, 1] (default: each detector model's own).
    pub fn min_score(mut self, min_score: Option<f32>) -> Self {
        self.min_score = min_score;
        self
    }

    /// Also search an N x N grid of enlarged tiles for small faces, N in 1..=6 (1 = off).
    pub fn tiles(mut self, tiles: u32) -> Self {
        self.tiles = tiles;
        self
    }

    /// When an image holds no face, search it again padded by this fraction of its size on
    /// each side, in [0, 2] (finds a face that fills the picture; 0 = off; default 1).
    pub fn pad_retry(mut self, pad_retry: f32) -> Self {
        self.pad_retry = pad_retry;
        self
    }

    /// Mirror the frame's edges into a margin of this fraction of its longest side, in
    /// [0, 0.5], before the detectors search it: finds faces cut by the frame's edge (0 = off;
    /// default [`EDGE_PAD`](crate::vision::blazeface::EDGE_PAD)).
    pub fn edge_pad(mut self, edge_pad: f32) -> Self {
        self.edge_pad = edge_pad;
        self
    }

    /// When `tiles` is 1 and a frame holds a face smaller than this fraction of its longest
    /// side, in [0, 1], also search it in 2 x 2 tiles for more small faces (0 = off; default
    /// [`SMALL_FACE_TILES`](crate::vision::blazeface::SMALL_FACE_TILES)).
    pub fn small_face_tiles(mut self, fraction: f32) -> Self {
        self.small_face_tiles = fraction;
        self
    }

    /// Margin around each face before cropping, a fraction of the box in [0, 1] (default 0.15).
    pub fn margin(mut self, margin: f32) -> Self {
        self.margin = margin;
        self
    }

    /// Turn each crop so the eyes are level (default on).
    pub fn align(mut self, align: bool) -> Self {
        self.align = align;
        self
    }

    /// Label a face `uncertain` when its top probability is below this, in [0, 1] (0 = never;
    /// default 0.4).
    pub fn abstain(mut self, abstain: f32) -> Self {
        self.abstain = abstain;
        self
    }

    /// Test-time augmentation of each face crop (default none).
    pub fn tta(mut self, tta: Tta) -> Self {
        self.tta = tta;
        self
    }

    /// Prior correction on top of the model's own, in [-2, 2] (0 = none; needs a model that
    /// records its class priors).
    pub fn prior_correction(mut self, tau: f32) -> Self {
        self.prior_correction = tau;
        self
    }

    /// The faces' contrast step; default: the step the model was trained with (its header).
    pub fn contrast(mut self, contrast: Option<Contrast>) -> Self {
        self.contrast = contrast;
        self
    }

    /// Threads the analyzer works on, at least 1: [`Analyzer::analyze_many`]'s images and each
    /// image's detector models share them (default: rayon's pool, all cores).
    pub fn threads(mut self, threads: Option<usize>) -> Self {
        self.threads = threads;
        self
    }

    /// Largest image (width x height) an input file or byte string may declare, at least 1:
    /// a larger one is refused from its header, before its pixels take memory (default 64
    /// megapixels; sides are at most 16384 px whatever this says).
    pub fn max_pixels(mut self, max_pixels: u64) -> Self {
        self.max_pixels = max_pixels;
        self
    }

    /// The numbers the expression model computes with (default f32). `Int8` needs a model
    /// that carries its int8 calibration (a quantized export; the embedded default does).
    pub fn precision(mut self, precision: InferencePrecision) -> Self {
        self.precision = precision;
        self
    }

    /// Check every setting, load the model and the detector, and compile the model.
    pub fn build(self) -> Result<Analyzer> {
        check_range("margin", self.margin, limits::MARGIN)?;
        check_range("pad_retry", self.pad_retry, limits::PAD_RETRY)?;
        check_range("edge_pad", self.edge_pad, limits::EDGE_PAD)?;
        check_range("small_face_tiles", self.small_face_tiles, limits::SMALL_FACE_TILES)?;
        check_range("abstain", self.abstain, limits::PROBABILITY)?;
        if let Some(m) = self.min_score {
            check_range("min_score", m, limits::PROBABILITY)?;
        }
        check_range("prior_correction", self.prior_correction, limits::PRIOR_CORRECTION)?;
        if !(limits::TILES.0..=limits::TILES.1).contains(&self.tiles) {
            return Err(Error::Setting {
                name: "tiles",
                value: self.tiles.to_string(),
                expected: format!("a whole number in {}..={}", limits::TILES.0, limits::TILES.1),
            });
        }
        if self.max_pixels == 0 {
            return Err(Error::Setting { name: "max_pixels", value: "0".into(), expected: "at least 1".into() });
        }
        let (net, header) = match self.network {
            Some(nh) => nh,
            None => self.model.load(&crate::device::inference_device())?,
        };
        let (net, header) = crate::model::infer::correct_priors(net, header, self.prior_correction)?;
        let config = AnalyzerConfig {
            margin: self.margin,
            abstain_below: self.abstain,
            detector: BlazeFaceConfig {
                min_score: self.min_score,
                tiles: self.tiles,
                pad_retry: self.pad_retry,
                edge_pad: self.edge_pad,
                small_face_tiles: self.small_face_tiles,
                model: self.detector,
                ..BlazeFaceConfig::default()
            },
            tta: self.tta,
            align: self.align,
            contrast: self.contrast.unwrap_or(header.contrast()),
            decode_limits: DecodeLimits { max_pixels: self.max_pixels, ..DecodeLimits::default() },
        };
        let detector: Box<dyn Detector> = match self.detector_impl {
            Some(d) => d,
            None => Box::new(BlazeFace::new(config.detector.clone())?),
        };
        let pool = self.threads.map(thread_pool).transpose()?;
        Analyzer::assemble(detector, &net, header, config, self.precision, pool)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_is_checked_and_named() {
        let cases: Vec<(AnalyzerBuilder, &str)> = vec![
            (AnalyzerBuilder::default().margin(1.5), "margin"),
            (AnalyzerBuilder::default().margin(f32::NAN), "margin"),
            (AnalyzerBuilder::default().pad_retry(-1.0), "pad_retry"),
            (AnalyzerBuilder::default().edge_pad(0.6), "edge_pad"),
            (AnalyzerBuilder::default().edge_pad(f32::NAN), "edge_pad"),
            (AnalyzerBuilder::default().small_face_tiles(-0.1), "small_face_tiles"),
            (AnalyzerBuilder::default().abstain(2.0), "abstain"),
            (AnalyzerBuilder::default().min_score(Some(1.1)), "min_score"),
            (AnalyzerBuilder::default().tiles(0), "tiles"),
            (AnalyzerBuilder::default().tiles(7), "tiles"),
            (AnalyzerBuilder::default().prior_correction(3.0), "prior_correction"),
            (AnalyzerBuilder::default().threads(Some(0)), "threads"),
            (AnalyzerBuilder::default().max_pixels(0), "max_pixels"),
        ];
        for (b, name) in cases {
            let e = b.build().err().expect("a bad setting is refused");
            match &e {
                Error::Setting { name: n, .. } => assert_eq!(*n, name),
                other => panic!("{name}: {other}"),
            }
            assert!(!e.to_string().contains("--"), "no command-line flag in {e}");
        }
    }

    #[test]
    fn the_model_sets_the_contrast_unless_overridden() {
        let _rng = crate::rng_lock();
        let a = AnalyzerBuilder::default().model("embedded:fer2013").build().unwrap();
        assert_eq!(a.config().contrast, Contrast::Raw, "the FER2013-label model was trained on raw faces");
        assert_eq!(a.meta().contrast, Contrast::Raw);
        let b = AnalyzerBuilder::default().build().unwrap();
        assert_eq!(b.config().contrast, Contrast::Equalize);
        let c = AnalyzerBuilder::default().model("embedded:fer2013").contrast(Some(Contrast::Equalize)).build().unwrap();
        assert_eq!(c.config().contrast, Contrast::Equalize);
        let missing = AnalyzerBuilder::default().model("no/such/model.ferrite").build().err().unwrap();
        assert!(missing.to_string().contains("no/such/model.ferrite"), "{missing}");
    }
}
