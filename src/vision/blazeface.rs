//! The face detector: MediaPipe BlazeFace run with tract-onnx, embedded in the binary (the
//! "back" model, 256x256, small and distant faces; the full-range model, 192x192, large, turned
//! and near faces) and YuNet ([`super::yunet`]), alone or together, with the searches around
//! them (mirrored edge margin, small-face tiles, padded retries) that every model shares.
//!
//! Sources and checksums: `models/README.md`. Input: RGB letterboxed to the model's square,
//! values in [-1, 1]. Output: per anchor a score logit, box offsets and six landmarks in input
//! pixels from the anchor centre.

use crate::vision::detect::{BBox, Detection, Detector, Landmarks, Letterbox, merge_overlaps, region_pixels, tract_error};
use crate::error::{Error, Result};
use image::RgbImage;
use image::imageops::FilterType;
use std::sync::Arc;
use tract_onnx::pb;
use tract_onnx::prelude::*;

/// The "back" model, byte for byte as published (sha256 in `models/README.md`).
pub static BLAZEFACE_ONNX: &[u8] = include_bytes!("../../models/face_detection_back_256x256_barracuda.onnx");

/// The full-range model, converted from MediaPipe's tflite by `models/convert_fullrange.sh`.
pub static FULL_RANGE_ONNX: &[u8] = include_bytes!("../../models/face_detection_full_range.onnx");

/// Input size of the "back" model.
pub const INPUT: usize = 256;

/// Which packaged detector model(s) to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum DetectorModel {
    /// BlazeFace "back" (256x256): small and distant faces.
    Back,
    /// BlazeFace full-range (192x192): large, near and turned faces.
    Full,
    /// Both, their detections merged.
    Both,
    /// YuNet (libfacedetection, 640 px at the frame's aspect ratio): faces in the wild,
    /// turned, dim, small and partly hidden.
    Yunet,
    /// YuNet, and where it finds no face in an image, both BlazeFace models (the default:
    /// `wild/` faces found in 1,392 of 1,393 photos and labelled right in 61.7%, against 1,385
    /// and 60.8% for `Both`; `bench/detector_wild.sh`).
    #[default]
    YunetFirst,
}

/// How one packaged model is read.
struct Variant {
    onnx: &'static [u8],
    /// Side of the square input.
    input: usize,
    /// Channels first (1, 3, S, S) instead of (1, S, S, 3).
    nchw: bool,
    /// Anchor grids in output order: (cells per side, anchors per cell).
    grids: &'static [(usize, usize)],
    /// Default smallest score kept (chosen on the committed photos, `bench/detector.sh`).
    min_score: f32,
    /// Boxes are scaled by this about their centre so that every model frames a face alike
    /// (the crop margin was tuned on the back model's boxes).
    box_scale: f32,
}

const BACK: Variant = Variant {
    onnx: BLAZEFACE_ONNX,
    input: INPUT,
    nchw: false,
    grids: &[(16, 2), (8, 6)],
    min_score: 0.7,
    box_scale: 1.0,
};

const FULL: Variant = Variant {
    onnx: FULL_RANGE_ONNX,
    input: 192,
    nchw: true,
    grids: &[(48, 1)],
    min_score: 0.6,
    // Its boxes are wider than the back model's for the same face: median ratio 1.09 to 1.11
    // on 198 photos of `wild/` where both found the face.
    box_scale: 1.0 / 1.1,
};

/// Detector settings.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BlazeFaceConfig {
    /// Smallest detection score kept; `None` = each model's own (`DetectorModel::min_score`).
    #[serde(default)]
    pub min_score: Option<f32>,
    /// Overlap above which detections are merged into one face.
    pub merge_iou: f32,
    /// Also search a grid of `tiles` x `tiles` overlapping parts of the image, each enlarged to
    /// the model input, for faces too small to find in the whole frame (1 = off).
    pub tiles: u32,
    /// When the whole frame holds no face, search it again padded by this fraction of its size
    /// on each side (gray border): a face that fills the picture (a tight crop) is too large for
    /// the detector's anchors until it is made smaller. An image no larger than
    /// [`SMALL_IMAGE_SIDE`] that still holds none is searched at 3/4, 1/2 and 1/4 of this
    /// padding, keeping the first one's best face. 0 = off.
    #[serde(default)]
    pub pad_retry: f32,
    /// Which model(s) to run.
    #[serde(default)]
    pub model: DetectorModel,
    /// Margin added around the whole frame, as a fraction of its longest side on each side,
    /// before it is scaled into the detectors' input, and filled (with the letterbox border) by
    /// the frame mirrored at its edges: half a face cut by the frame's edge, mirrored, is a whole
    /// face to the detectors. Detections centred outside the frame (mirror images) are dropped.
    /// 0 = off: the frame fills the input, the letterbox border is black.
    #[serde(default = "default_edge_pad")]
    pub edge_pad: f32,
    /// When `tiles` is 1 and the whole frame holds a face smaller than this fraction of the
    /// frame's longest side, also search the frame in 2 x 2 tiles: a face that small is near
    /// the detectors' limit, and a crowd with one such face has more, too small to find in the
    /// whole frame. Frames with only larger faces (or none) cost nothing more. 0 = off. The
    /// BlazeFace models' search only: YuNet finds such faces in the whole frame.
    #[serde(default = "default_small_face_tiles")]
    pub small_face_tiles: f32,
}

/// YuNet's box framing: scale about the centre and downward shift (fraction of the height)
/// that match BlazeFace back's boxes (`examples/yunet_framing.rs` on `wild/`).
const YUNET_BOX_SCALE: f32 = 1.0 / 1.14;
const YUNET_BOX_SHIFT: f32 = 0.037;

/// The default [`BlazeFaceConfig::small_face_tiles`]: 7% of the longest side, 45 pixels in a
/// 640-pixel frame (the committed photos' smallest face is 48; `bench/detector.sh`).
pub const SMALL_FACE_TILES: f32 = 0.07;

fn default_small_face_tiles() -> f32 {
    SMALL_FACE_TILES
}

/// The default [`BlazeFaceConfig::edge_pad`] (chosen with `examples/edge_faces.rs` on the
/// committed photos; `bench/detector_wild.sh`).
pub const EDGE_PAD: f32 = 0.04;

fn default_edge_pad() -> f32 {
    EDGE_PAD
}

impl Default for BlazeFaceConfig {
    fn default() -> Self {
        BlazeFaceConfig {
            min_score: None,
            merge_iou: 0.3,
            tiles: 1,
            pad_retry: 1.0,
            model: DetectorModel::default(),
            edge_pad: EDGE_PAD,
            small_face_tiles: SMALL_FACE_TILES,
        }
    }
}

/// One loaded model: a BlazeFace variant or YuNet.
enum Model {
    Blaze(Net),
    Yunet(crate::vision::yunet::YuNet),
}

/// YuNet's default smallest score kept (chosen on the committed photos and `wild/`,
/// `bench/detector_wild.sh`).
pub const YUNET_MIN_SCORE: f32 = 0.72;

impl Model {
    /// The model's own default smallest score.
    fn min_score(&self) -> f32 {
        match self {
            Model::Blaze(n) => n.variant.min_score,
            Model::Yunet(_) => YUNET_MIN_SCORE,
        }
    }

    fn detect_region(&self, image: &RgbImage, region: BBox, edge_pad: f32, min_score: f32) -> Result<Vec<Detection>> {
        match self {
            Model::Blaze(n) => n.detect_region(image, region, edge_pad, min_score),
            Model::Yunet(y) => y.detect_region(image, region, edge_pad, min_score),
        }
    }
}

/// One loaded BlazeFace model: its plan and anchors.
struct Net {
    variant: &'static Variant,
    plan: Arc<TypedRunnableModel>,
    anchors: Vec<(f32, f32)>,
}

/// The BlazeFace detector; build once, use from many threads.
pub struct BlazeFace {
    nets: Vec<Model>,
    /// Searched when `nets` find no face in an image (`DetectorModel::YunetFirst`).
    fallback: Option<Box<BlazeFace>>,
    pub config: BlazeFaceConfig,
}


/// The published model's `ConstantOfShape` nodes lack their `value` attribute, which tract
/// then takes as an f64 zero and fails to type-check; give them the f32 zero ONNX means.
fn add_constant_of_shape_values(proto: &mut pb::ModelProto) {
    let Some(graph) = proto.graph.as_mut() else { return };
    for node in &mut graph.node {
        if node.op_type == "ConstantOfShape" && !node.attribute.iter().any(|a| a.name == "value") {
            node.attribute.push(pb::AttributeProto {
                name: "value".into(),
                r#type: pb::attribute_proto::AttributeType::Tensor as i32,
                t: Some(pb::TensorProto {
                    dims: vec![1],
                    data_type: pb::tensor_proto::DataType::Float as i32,
                    float_data: vec![0.0],
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
    }
}

/// Anchor centres in [0, 1] input coordinates, in the model's output order.
fn anchors(grids: &[(usize, usize)]) -> Vec<(f32, f32)> {
    let mut out = Vec::new();
    for &(cells, per_cell) in grids {
        for y in 0..cells {
            for x in 0..cells {
                for _ in 0..per_cell {
                    out.push(((x as f32 + 0.5) / cells as f32, (y as f32 + 0.5) / cells as f32));
                }
            }
        }
    }
    out
}

impl Net {
    fn new(variant: &'static Variant) -> Result<Net> {
        let onnx = tract_onnx::onnx();
        let mut proto = onnx.proto_model_for_read(&mut &variant.onnx[..]).map_err(tract_error("face detector: reading its model"))?;
        add_constant_of_shape_values(&mut proto);
        let s = variant.input;
        let shape = if variant.nchw { tvec!(1, 3, s, s) } else { tvec!(1, s, s, 3) };
        let plan = onnx
            .model_for_proto_model(&proto)
            .and_then(|m| m.with_input_fact(0, InferenceFact::dt_shape(f32::datum_type(), shape)))
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(tract_error("face detector: compiling its model"))?;
        Ok(Net {
            variant,
            plan,
            anchors: anchors(variant.grids),
        })
    }

    /// Raw detections in a square RGB patch of the model's input size (interleaved RGB, values
    /// in [-1, 1]): box and landmarks in [0, 1] patch coordinates, score.
    fn run_patch(&self, patch: &[f32], min_score: f32) -> Result<Vec<(BBox, Landmarks, f32)>> {
        let s = self.variant.input;
        let input = if self.variant.nchw {
            let planar: Vec<f32> = (0..3).flat_map(|c| patch.iter().skip(c).step_by(3).copied()).collect();
            Tensor::from_shape(&[1, 3, s, s], &planar)
        } else {
            Tensor::from_shape(&[1, s, s, 3], patch)
        }
        .map_err(|e| Error::Tract { stage: "face detector: input", source: e.into() })?;
        let outputs = self.plan.run(tvec!(input.into())).map_err(tract_error("face detector: running"))?;
        // Outputs: per grid a score tensor (1, N, 1) and a box tensor (1, N, 16), N = anchors
        // in the grid, told apart by shape.
        let grids = self.variant.grids;
        let mut scores: Vec<Option<Vec<f32>>> = vec![None; grids.len()];
        let mut boxes: Vec<Option<Vec<f32>>> = vec![None; grids.len()];
        for o in &outputs {
            let v = o.to_plain_array_view::<f32>().map_err(tract_error("face detector: output"))?;
            let shape = v.shape().to_vec();
            let (n, last) = (shape.iter().rev().nth(1).copied().unwrap_or(0), *shape.last().unwrap_or(&0));
            let Some(layer) = grids.iter().position(|&(c, k)| c * c * k == n) else {
                return Err(Error::Detector(format!("unexpected output shape {shape:?}")));
            };
            let data: Vec<f32> = v.iter().copied().collect();
            match last {
                1 => scores[layer] = Some(data),
                16 => boxes[layer] = Some(data),
                _ => return Err(Error::Detector(format!("unexpected output shape {shape:?}"))),
            }
        }
        let mut out = Vec::new();
        let mut base = 0;
        let size = s as f32;
        for layer in 0..grids.len() {
            let (Some(sc), Some(b)) = (&scores[layer], &boxes[layer]) else {
                return Err(Error::Detector("model outputs missing".into()));
            };
            for (i, &logit) in sc.iter().enumerate() {
                let score = 1.0 / (1.0 + (-logit).exp());
                if score < min_score {
                    continue;
                }
                let (ax, ay) = self.anchors[base + i];
                let r = &b[i * 16..i * 16 + 16];
                let (cx, cy) = (ax + r[0] / size, ay + r[1] / size);
                let (w, h) = (r[2] / size * self.variant.box_scale, r[3] / size * self.variant.box_scale);
                let marks: Landmarks = std::array::from_fn(|k| [ax + r[4 + 2 * k] / size, ay + r[5 + 2 * k] / size]);
                out.push((BBox::new(cx - w / 2.0, cy - h / 2.0, w, h), marks, score));
            }
            base += sc.len();
        }
        Ok(out)
    }

    /// Detections in the part `region` of `image` (in image pixels), letterboxed into the input.
    /// With `edge_pad` > 0 the region is scaled to leave that fraction of its longest side free
    /// on every side, the border is filled by the region mirrored at its edges, and detections
    /// centred in the border are dropped; with 0 the border is black.
    fn detect_region(&self, image: &RgbImage, region: BBox, edge_pad: f32, min_score: f32) -> Result<Vec<Detection>> {
        let input = self.variant.input;
        let Some(px) = region_pixels(image, region) else { return Ok(Vec::new()) };
        let (rw, rh) = (px[2], px[3]);
        let scale = input as f32 / (rw.max(rh) as f32 * (1.0 + 2.0 * edge_pad.max(0.0)));
        let size = ((rw as f32 * scale).round() as u32, (rh as f32 * scale).round() as u32);
        let placed = Letterbox::new(image, px, scale, size, (input as u32, input as u32), edge_pad > 0.0);
        // Interleaved RGB in [-1, 1] (a black border is -1).
        let patch: Vec<f32> = placed.canvas.as_raw().iter().map(|&v| v as f32 / 127.5 - 1.0).collect();
        let size = input as f32;
        let in_pixels = |x: f32, y: f32| [x * size, y * size];
        Ok(self
            .run_patch(&patch, min_score)?
            .into_iter()
            .filter_map(|(b, marks, score)| {
                let [x, y] = in_pixels(b.x, b.y);
                placed.detection(BBox::new(x, y, b.w * size, b.h * size), marks.map(|m| in_pixels(m[0], m[1])), score)
            })
            .collect())
    }
}

impl BlazeFace {
    /// Build the embedded detector(s) `config.model` names.
    pub fn new(config: BlazeFaceConfig) -> Result<BlazeFace> {
        let (variants, yunet): (&[&'static Variant], bool) = match config.model {
            DetectorModel::Back => (&[&BACK], false),
            DetectorModel::Full => (&[&FULL], false),
            DetectorModel::Both => (&[&BACK, &FULL], false),
            DetectorModel::Yunet | DetectorModel::YunetFirst => (&[], true),
        };
        let mut nets = variants.iter().map(|v| Net::new(v).map(Model::Blaze)).collect::<Result<Vec<_>>>()?;
        if yunet {
            nets.push(Model::Yunet(crate::vision::yunet::YuNet::new()?.with_framing(YUNET_BOX_SCALE, YUNET_BOX_SHIFT)));
        }
        let fallback = match config.model {
            DetectorModel::YunetFirst => Some(Box::new(BlazeFace::new(BlazeFaceConfig { model: DetectorModel::Both, ..config.clone() })?)),
            _ => None,
        };
        Ok(BlazeFace { nets, fallback, config })
    }

    /// Every model's detections in `region` of `image` (the models side by side on rayon's
    /// pool: one after the other under `--threads 1`).
    fn detect_region(&self, image: &RgbImage, region: BBox, edge_pad: f32) -> Result<Vec<Detection>> {
        use rayon::prelude::*;
        let run = |net: &Model| net.detect_region(image, region, edge_pad, self.config.min_score.unwrap_or(net.min_score()));
        let found = self.nets.par_iter().map(run).collect::<Result<Vec<_>>>()?;
        Ok(found.into_iter().flatten().collect())
    }
}

impl Detector for BlazeFace {
    fn detect(&self, image: &RgbImage) -> Result<Vec<Detection>> {
        let (w, h) = (image.width() as f32, image.height() as f32);
        let mut dets = self.detect_region(image, BBox::new(0.0, 0.0, w, h), self.config.edge_pad)?;
        let small = self.config.small_face_tiles * w.max(h);
        // YuNet finds faces down to about 10 px in the whole frame (all 28 of bench/collage.sh's
        // small faces, tiles or not; the tiles cost it 2.8 times the frame): the small-face
        // tiles are the BlazeFace models' search.
        let blaze_only = self.nets.iter().all(|n| matches!(n, Model::Blaze(_)));
        let t = match self.config.tiles.max(1) {
            1 if blaze_only && dets.iter().any(|d| d.bbox.w.max(d.bbox.h) < small) => 2,
            t => t,
        };
        if t > 1 {
            // Overlapping tiles: each covers 1/t of the frame plus a quarter tile of overlap.
            let (tw, th) = (w / t as f32, h / t as f32);
            for j in 0..t {
                for i in 0..t {
                    let r = BBox::new(i as f32 * tw - tw / 4.0, j as f32 * th - th / 4.0, tw * 1.5, th * 1.5).clamped(image.width(), image.height());
                    dets.extend(self.detect_region(image, r, 0.0)?);
                }
            }
        }
        if dets.is_empty() && self.config.pad_retry > 0.0 {
            dets = self.detect_padded(image, self.config.pad_retry)?;
            if dets.is_empty() && image.width().max(image.height()) <= SMALL_IMAGE_SIDE {
                dets = self.detect_small_crop(image)?;
            }
        }
        if dets.is_empty()
            && let Some(fallback) = &self.fallback
        {
            return fallback.detect(image);
        }
        Ok(merge_overlaps(dets, self.config.merge_iou))
    }
}

/// Longest side of an image that, holding no face on its own or on the padded canvas, is searched
/// at more paddings ([`BlazeFace::detect_small_crop`]): no larger than the detectors' input, so it
/// is a thumbnail or a face cut out of a larger photo, not a scene (a video frame never is).
pub const SMALL_IMAGE_SIDE: u32 = 256;

/// The further paddings tried on a small image, as fractions of `pad_retry`, in order.
const SMALL_CROP_PADS: [f32; 3] = [0.75, 0.5, 0.25];

/// Largest side of an image searched again on a padded canvas ([`BlazeFace::detect_padded`]).
pub const PADDED_MAX_SIDE: u32 = 2048;

impl BlazeFace {
    /// A small image in which neither the image nor the padded canvas held a face: most often a
    /// tight crop of one face, which the padded canvas made too small or placed between the
    /// anchors. Search it at less padding ([`SMALL_CROP_PADS`] of `pad_retry`) until one finds a
    /// face, and keep only that search's best detection, if it scores at least the strictest of
    /// the running models' thresholds: such an image holds one face, and a wrong guess costs at
    /// most one false face.
    fn detect_small_crop(&self, image: &RgbImage) -> Result<Vec<Detection>> {
        let strictest = self.config.min_score.unwrap_or_else(|| self.nets.iter().map(Model::min_score).fold(0.0, f32::max));
        for f in SMALL_CROP_PADS {
            let dets = self.detect_padded(image, self.config.pad_retry * f)?;
            if let Some(best) = dets.into_iter().max_by(|a, b| a.score.total_cmp(&b.score)) {
                return Ok(if best.score >= strictest { vec![best] } else { Vec::new() });
            }
        }
        Ok(Vec::new())
    }

    /// Detect in `image` centred on a gray canvas `1 + 2 * pad` times its size; boxes in the
    /// image's coordinates, clamped to it.
    ///
    /// The canvas is searched at the detectors' input size (at most 256 px), so an image larger
    /// than [`PADDED_MAX_SIDE`] is shrunk to it first: a 40-megapixel photo then costs a 2048 px
    /// canvas, not one four times its own size.
    fn detect_padded(&self, image: &RgbImage, pad: f32) -> Result<Vec<Detection>> {
        let (w, h) = (image.width(), image.height());
        let shrink = (PADDED_MAX_SIDE as f32 / w.max(h) as f32).min(1.0);
        let small;
        let src = if shrink < 1.0 {
            let (sw, sh) = (((w as f32 * shrink).round() as u32).max(1), ((h as f32 * shrink).round() as u32).max(1));
            small = image::imageops::resize(image, sw, sh, FilterType::Triangle);
            &small
        } else {
            image
        };
        let (sx, sy) = (w as f32 / src.width() as f32, h as f32 / src.height() as f32);
        let (px, py) = ((src.width() as f32 * pad).round() as u32, (src.height() as f32 * pad).round() as u32);
        let mut canvas = RgbImage::from_pixel(src.width() + 2 * px, src.height() + 2 * py, image::Rgb([128, 128, 128]));
        image::imageops::replace(&mut canvas, src, px as i64, py as i64);
        let full = BBox::new(0.0, 0.0, canvas.width() as f32, canvas.height() as f32);
        let back = |x: f32, y: f32| [(x - px as f32) * sx, (y - py as f32) * sy];
        Ok(self
            .detect_region(&canvas, full, 0.0)?
            .into_iter()
            .map(|d| {
                let [x, y] = back(d.bbox.x, d.bbox.y);
                Detection {
                    bbox: BBox::new(x, y, d.bbox.w * sx, d.bbox.h * sy).clamped(w, h),
                    score: d.score,
                    landmarks: d.landmarks.map(|l| l.map(|m| back(m[0], m[1]))),
                }
            })
            .filter(|d| d.bbox.w >= 1.0 && d.bbox.h >= 1.0)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_cover_both_grids_in_output_order() {
        let a = anchors(BACK.grids);
        assert_eq!(a.len(), 896);
        assert_eq!(a[0], (1.0 / 32.0, 1.0 / 32.0));
        assert_eq!(a[1], a[0]);
        assert_eq!(a[2], (3.0 / 32.0, 1.0 / 32.0));
        assert_eq!(a[512], (1.0 / 16.0, 1.0 / 16.0));
        assert_eq!(a[895], (15.0 / 16.0, 15.0 / 16.0));
        let f = anchors(FULL.grids);
        assert_eq!(f.len(), 2304);
        assert_eq!(f[49], (1.5 / 48.0, 1.5 / 48.0));
    }

    #[test]
    fn blank_image_has_no_faces() {
        for model in [DetectorModel::Back, DetectorModel::Full, DetectorModel::Both, DetectorModel::Yunet, DetectorModel::YunetFirst] {
        let det = BlazeFace::new(BlazeFaceConfig { model, ..Default::default() }).unwrap();
        for img in [RgbImage::new(640, 480), RgbImage::from_pixel(37, 300, image::Rgb([200, 180, 160]))] {
            assert!(det.detect(&img).unwrap().is_empty());
        }
        }
    }

    fn fixture(name: &str) -> RgbImage {
        image::open(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/photos").join(name)).unwrap().to_rgb8()
    }

    /// A face cut out of a photo and shrunk to 48x48 (a FER2013-sized thumbnail): neither the
    /// image nor the canvas padded by `pad_retry` shows it to the detectors; a smaller padding
    /// does, and the ladder keeps that one face.
    /// The BlazeFace pair, whose anchors these retries were tuned for.
    fn pair() -> BlazeFaceConfig {
        BlazeFaceConfig { model: DetectorModel::Both, ..BlazeFaceConfig::default() }
    }

    #[test]
    fn a_small_face_crop_is_found_at_a_smaller_padding() {
        let det = BlazeFace::new(pair()).unwrap();
        // The left face of group2.jpg as the detector boxes it in the whole photo.
        let crop = image::imageops::crop_imm(&fixture("group2.jpg"), 113, 63, 63, 63).to_image();
        let small = image::imageops::resize(&crop, 48, 48, image::imageops::FilterType::Triangle);
        assert!(det.detect_region(&small, BBox::new(0.0, 0.0, 48.0, 48.0), 0.0).unwrap().is_empty(), "found without padding");
        assert!(det.detect_padded(&small, det.config.pad_retry).unwrap().is_empty(), "found at the first padding");
        let found = det.detect(&small).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        let b = found[0].bbox;
        assert!(b.w * b.h > 0.3 * 48.0 * 48.0, "the face fills much of the picture: {b:?}");
        assert!(found[0].score >= 0.7, "the strictest model's threshold: {}", found[0].score);
        // The ladder is for small images only: the same crop at 300x300 is not searched by it.
        let side = SMALL_IMAGE_SIDE + 44;
        let big = image::imageops::resize(&small, side, side, image::imageops::FilterType::Triangle);
        eprintln!("the crop at {side}x{side}: {} face(s)", det.detect(&big).unwrap().len());
    }

    /// Faces cut by the frame's edge (`examples/edge_faces.rs` on every committed photo): each
    /// face of three group photos, cut by the left or right edge through a quarter or a half of
    /// its width. The mirrored margin finds clearly more of them, the uncut photos keep their
    /// faces, and no mirror image is reported as a second face.
    #[test]
    fn the_mirrored_margin_finds_faces_cut_by_the_frame_edge() {
        let plain = BlazeFace::new(BlazeFaceConfig { edge_pad: 0.0, ..pair() }).unwrap();
        let mirrored = BlazeFace::new(pair()).unwrap();
        assert!(mirrored.config.edge_pad > 0.0);
        let (mut cut, mut before, mut after) = (0, 0, 0);
        for name in ["group1.jpg", "group4.jpg", "group5.jpg"] {
            let img = fixture(name);
            let faces = plain.detect(&img).unwrap();
            let again = mirrored.detect(&img).unwrap();
            assert_eq!(again.len(), faces.len(), "{name}: {again:?}");
            for f in &faces {
                assert!(again.iter().any(|d| d.bbox.iou(&f.bbox) > 0.5), "{name}: {f:?} lost");
            }
            for f in faces.iter().map(|d| d.bbox) {
                for frac in [0.25, 0.5] {
                    for left in [true, false] {
                        let (x0, x1) = if left { ((f.x + frac * f.w) as u32, img.width()) } else { (0, (f.x + (1.0 - frac) * f.w) as u32) };
                        let crop = image::imageops::crop_imm(&img, x0, 0, x1 - x0, img.height()).to_image();
                        let visible = BBox::new(f.x - x0 as f32, f.y, f.w, f.h).clamped(crop.width(), crop.height());
                        let found = |det: &BlazeFace| det.detect(&crop).unwrap().iter().any(|d| d.bbox.clamped(crop.width(), crop.height()).iou(&visible) >= 0.3);
                        cut += 1;
                        before += usize::from(found(&plain));
                        after += usize::from(found(&mirrored));
                    }
                }
            }
        }
        eprintln!("faces cut by the edge found: {before} of {cut} without the margin, {after} with it");
        assert!(cut >= 40 && after >= before + cut / 5, "{before} -> {after} of {cut}");
    }

    /// A crowd of small faces: four group photos (13 faces) shrunk into one 640x480 frame, so
    /// faces are 25-45 px. The whole frame shows a few of them, each smaller than
    /// `small_face_tiles` of the frame, which sends it to the 2 x 2 tiles that find most of the
    /// rest. A group photo whose faces are all larger is searched as before.
    #[test]
    fn a_frame_with_small_faces_is_searched_again_in_tiles() {
        let mut collage = RgbImage::from_pixel(640, 480, image::Rgb([0, 0, 0]));
        for (k, name) in ["group1.jpg", "group2.jpg", "group3.jpg", "group4.jpg"].into_iter().enumerate() {
            let img = fixture(name);
            let scale = (320.0 / img.width() as f32).min(240.0 / img.height() as f32);
            let (w, h) = ((img.width() as f32 * scale) as u32, (img.height() as f32 * scale) as u32);
            let small = image::imageops::resize(&img, w, h, FilterType::Triangle);
            let (x, y) = (320 * (k as i64 % 2) + (320 - w as i64) / 2, 240 * (k as i64 / 2) + (240 - h as i64) / 2);
            image::imageops::replace(&mut collage, &small, x, y);
        }
        let off = BlazeFace::new(BlazeFaceConfig { small_face_tiles: 0.0, ..pair() }).unwrap();
        let on = BlazeFace::new(pair()).unwrap();
        let (before, after) = (off.detect(&collage).unwrap(), on.detect(&collage).unwrap());
        eprintln!("collage of 13 faces: {} found without the tiles, {} with them", before.len(), after.len());
        assert!(before.len() <= 6 && after.len() >= 10 && after.len() <= 13, "{} -> {}", before.len(), after.len());
        let group = fixture("group1.jpg");
        assert_eq!(off.detect(&group).unwrap(), on.detect(&group).unwrap());
    }

    /// The ladder's price, on small pictures without a face: 42 pieces of the coffee photo at
    /// thumbnail sizes. The padded retry alone calls the cup a face in 5 of them (a known false
    /// alarm); the ladder, which searches only the pieces still empty, adds 1 (the cup at 64 px).
    /// Random noise stays empty.
    #[test]
    fn small_pictures_without_a_face_gain_at_most_one_false_face() {
        let det = BlazeFace::new(pair()).unwrap();
        let coffee = fixture("coffee.jpg"); // 320x214
        let (mut before, mut after) = (0, 0);
        for side in [48u32, 64, 96, 128, 160, 200, 256] {
            for (x, y) in [(0, 0), (100, 50), (200, 94), (50, 90), (60, 20), (140, 60)] {
                let piece = image::imageops::crop_imm(&coffee, x, y, 120, 120).to_image();
                let small = image::imageops::resize(&piece, side, side, image::imageops::FilterType::Triangle);
                let whole = det.detect_region(&small, BBox::new(0.0, 0.0, side as f32, side as f32), 0.0).unwrap();
                let padded = if whole.is_empty() { det.detect_padded(&small, det.config.pad_retry).unwrap() } else { whole };
                before += usize::from(!padded.is_empty());
                after += usize::from(!det.detect(&small).unwrap().is_empty());
            }
        }
        eprintln!("pieces with a false face: {before} without the ladder, {after} with it");
        assert!(before <= 5 && after <= before + 1, "{before} -> {after} of 42");
        let mut seed = 7u32;
        let noise = RgbImage::from_fn(64, 64, |_, _| {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            image::Rgb([(seed >> 24) as u8, (seed >> 16) as u8, (seed >> 8) as u8])
        });
        assert!(det.detect(&noise).unwrap().is_empty(), "noise");
    }
}
