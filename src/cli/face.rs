//! The face options `detect`, `video` and `serve` share, and the analyzer they build.

use super::load_model;
use anyhow::{Context, Result, bail};
use clap::Args;
use ferrite::kernels::Matmul;
use ferrite::model::infer::Tta;
use ferrite::vision::analyzer::AnalyzerConfig;
use ferrite::vision::blazeface::DetectorModel;
use std::path::PathBuf;

/// How faces are found and cut out: shared by `detect`, `video`, `serve` (through
/// [`FaceArgs`]) and `evaluate --detect`.
#[derive(Args, Clone, Copy, Debug, PartialEq)]
pub struct CropArgs {
    /// Margin around each face before cropping, as a fraction of the box size.
    #[arg(long, default_value_t = CropArgs::DEFAULT.margin)]
    pub margin: f32,
    /// When an image holds no face, search it again padded by this fraction of its size on
    /// each side: finds a face that fills the picture (tight crops). 0 = off.
    #[arg(long, default_value_t = CropArgs::DEFAULT.pad_retry)]
    pub pad_retry: f32,
    /// Face detector model(s): BlazeFace "back" (small, distant faces), full-range (large, near,
    /// turned faces) or both, their detections merged.
    #[arg(long, value_enum, default_value_t = CropArgs::DEFAULT.detector)]
    pub detector: DetectorModel,
    /// Crop faces as the detector boxes them, without turning them level by their eyes.
    #[arg(long)]
    pub no_align: bool,
}

impl CropArgs {
    /// The flags' defaults.
    pub const DEFAULT: CropArgs = CropArgs { margin: 0.15, pad_retry: 1.0, detector: DetectorModel::Both, no_align: false };

    /// Check the values and set them in `config`.
    pub fn apply(&self, config: &mut AnalyzerConfig) -> Result<()> {
        if !(0.0..=1.0).contains(&self.margin) || !(0.0..=2.0).contains(&self.pad_retry) {
            bail!("--margin must be in [0, 1] and --pad-retry in [0, 2]");
        }
        config.margin = self.margin;
        config.align = !self.no_align;
        config.detector.pad_retry = self.pad_retry;
        config.detector.model = self.detector;
        Ok(())
    }
}

/// Options shared by `detect`, `video` and `serve`.
#[derive(Args, Clone)]
pub struct FaceArgs {
    /// Expression model file or run directory. Default: the model embedded in this binary.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Smallest face-detector score kept (default: each detector model's own, back 0.7,
    /// full-range 0.6).
    #[arg(long)]
    pub min_score: Option<f32>,
    /// Label a face `uncertain` when its top probability is below this (0 = never).
    #[arg(long, default_value_t = 0.4)]
    pub abstain: f32,
    /// Also search an N x N grid of enlarged tiles for small faces (group photos; slower).
    #[arg(long, default_value_t = 1)]
    pub tiles: u32,
    #[command(flatten)]
    pub crop: CropArgs,
    #[arg(long, value_enum, default_value = "none")]
    pub tta: Tta,
}

impl FaceArgs {
    pub fn analyzer(&self) -> Result<ferrite::vision::analyzer::Analyzer> {
        use ferrite::vision::analyzer::Analyzer;
        use ferrite::vision::blazeface::{BlazeFace, BlazeFaceConfig};
        if !(0.0..=1.0).contains(&self.abstain) || self.min_score.is_some_and(|m| !(0.0..=1.0).contains(&m)) {
            bail!("--abstain and --min-score must be between 0 and 1");
        }
        if !(1..=6).contains(&self.tiles) {
            bail!("--tiles must be in 1..=6");
        }
        let mut config = AnalyzerConfig {
            abstain_below: self.abstain,
            detector: BlazeFaceConfig {
                min_score: self.min_score,
                tiles: self.tiles,
                ..BlazeFaceConfig::default()
            },
            tta: self.tta,
            ..AnalyzerConfig::default()
        };
        self.crop.apply(&mut config)?;
        let device = ferrite::device::inference_device();
        // (The analyzer runs the network compiled by tract: the precision of ferrite's kernels
        // does not apply.)
        let (net, header, _) = load_model(self.model.as_deref(), &device, Matmul::F32)?;
        let config = AnalyzerConfig { contrast: header.contrast(), ..config };
        let detector = BlazeFace::new(config.detector.clone()).context("building the face detector")?;
        Analyzer::from_parts(Box::new(detector), &net, config).context("compiling the expression model")
    }
}
