//! The face options `detect`, `video` and `serve` share, and the analyzer they build.

use anyhow::{Context, Result};
use clap::Args;
use ferrite::{Analyzer, AnalyzerBuilder, DetectorModel, InferencePrecision, ModelSource, Tta};
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
    /// Mirror each frame's edges into a margin of this fraction of its longest side before
    /// searching it: finds faces cut by the frame's edge. 0 = off.
    #[arg(long, default_value_t = CropArgs::DEFAULT.edge_pad)]
    pub edge_pad: f32,
    /// When a frame holds a face smaller than this fraction of its longest side, also search it
    /// in 2 x 2 tiles for more small faces (crowds). 0 = off; `--tiles N` searches N x N always.
    #[arg(long, default_value_t = CropArgs::DEFAULT.small_face_tiles)]
    pub small_face_tiles: f32,
    /// Face detector model(s): BlazeFace "back" (small, distant faces), full-range (large, near,
    /// turned faces), both of them (detections merged), YuNet (faces in the wild: turned, dim,
    /// small, partly hidden) or YuNet first and the BlazeFace pair where it finds no face.
    #[arg(long, value_enum, default_value_t = CropArgs::DEFAULT.detector)]
    pub detector: DetectorModel,
    /// Crop faces as the detector boxes them, without turning them level by their eyes.
    #[arg(long)]
    pub no_align: bool,
}

impl CropArgs {
    /// The flags' defaults.
    pub const DEFAULT: CropArgs = CropArgs {
        margin: 0.15,
        pad_retry: 1.0,
        edge_pad: ferrite::vision::blazeface::EDGE_PAD,
        small_face_tiles: ferrite::vision::blazeface::SMALL_FACE_TILES,
        detector: DetectorModel::YunetFirst,
        no_align: false,
    };

    /// Set these options on `builder` (the library checks them).
    pub fn apply(&self, builder: AnalyzerBuilder) -> AnalyzerBuilder {
        builder
            .margin(self.margin)
            .pad_retry(self.pad_retry)
            .edge_pad(self.edge_pad)
            .small_face_tiles(self.small_face_tiles)
            .detector(self.detector)
            .align(!self.no_align)
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
    /// Largest image (width x height) a file may declare; larger ones are refused from their
    /// header, before decoding (default: 64 megapixels).
    #[arg(long)]
    pub max_pixels: Option<u64>,
    /// The numbers the expression model computes with: int8 needs a model with int8
    /// calibration (the embedded default has it; `export --quantize int8` writes it) and pays
    /// only on CPUs with int8 dot products (AVX-512 VNNI, AVX-VNNI, AMX); `bench` shows both.
    #[arg(long, value_enum, default_value = "f32")]
    pub precision: InferencePrecision,
}

impl FaceArgs {
    /// The analyzer these options describe (checked and assembled by the library).
    pub fn analyzer(&self) -> Result<Analyzer> {
        let builder = Analyzer::builder()
            .model(ModelSource::from_arg(self.model.as_deref()))
            .min_score(self.min_score)
            .abstain(self.abstain)
            .tiles(self.tiles)
            .tta(self.tta)
            .precision(self.precision);
        let builder = match self.max_pixels {
            Some(n) => builder.max_pixels(n),
            None => builder,
        };
        self.crop.apply(builder).build().context("building the analyzer")
    }
}
