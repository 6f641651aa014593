//! YuNet (libfacedetection, trained on WIDER FACE: turned, dim, small and partly hidden faces)
//! run with tract-onnx, embedded in the binary; one of the models [`super::blazeface`] runs.
//!
//! Source, licence and checksum: `models/README.md`; the bytes are checked against
//! [`YUNET_SHA256`] when the detector is built. Input: BGR, values 0-255, channels first, any
//! size that is a multiple of 32 (the graph's reshapes and upsampling follow the input), so a
//! frame is searched at its own aspect ratio. Output: per stride (8, 16, 32) and grid cell a class
//! and an objectness score, a box (centre offset and log size, in strides) and five landmarks.

use crate::error::{Error, Result};
use crate::vision::detect::{BBox, Detection, Landmarks, Letterbox, region_pixels, tract_error};
use image::RgbImage;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tract_onnx::prelude::*;

/// `face_detection_yunet_2023mar.onnx`, byte for byte as published.
pub static YUNET_ONNX: &[u8] = include_bytes!("../../models/face_detection_yunet_2023mar.onnx");

/// The sha256 of [`YUNET_ONNX`] (the Git-LFS object id in opencv/opencv_zoo; `models/README.md`).
pub const YUNET_SHA256: &str = "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4";

/// Longest side of YuNet's input: larger regions are scaled down to it (the size YuNet was
/// published for).
pub const YUNET_SIDE: usize = 640;

/// The strides of YuNet's three output levels.
const STRIDES: [usize; 3] = [8, 16, 32];

/// Compiled plans kept per input shape (a video has one; photos a few): past this many the
/// cache is emptied, so hostile sizes cannot grow it.
const MAX_PLANS: usize = 16;

/// The YuNet model: parsed once, compiled once per input shape.
pub struct YuNet {
    model: InferenceModel,
    plans: Mutex<HashMap<(usize, usize), Arc<TypedRunnableModel>>>,
    /// Boxes are made square (of the same area), scaled by this about their centre and moved
    /// down by `box_shift` of their side, to frame a face as BlazeFace's back model does (the
    /// crop margin was tuned on it).
    box_scale: f32,
    box_shift: f32,
}

/// The hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

impl YuNet {
    /// Load the embedded model, after checking its bytes against [`YUNET_SHA256`].
    pub fn new() -> Result<YuNet> {
        YuNet::from_bytes(YUNET_ONNX, YUNET_SHA256)
    }

    /// Load a YuNet ONNX file whose sha256 must be `sha256` (hex).
    pub fn from_bytes(onnx: &[u8], sha256: &str) -> Result<YuNet> {
        let got = sha256_hex(onnx);
        if !got.eq_ignore_ascii_case(sha256) {
            return Err(Error::Detector(format!("YuNet model: sha256 {got}, expected {sha256} (the file is damaged or not the published one)")));
        }
        let onnx_fw = tract_onnx::onnx();
        let mut proto = onnx_fw.proto_model_for_read(&mut &onnx[..]).map_err(tract_error("face detector: reading YuNet"))?;
        // The file states every tensor's shape for a 640x640 input; dropped, so that tract
        // works the shapes out from the input each plan is compiled for.
        if let Some(graph) = proto.graph.as_mut() {
            graph.value_info.clear();
            for o in &mut graph.output {
                o.r#type = None;
            }
        }
        let model = onnx_fw.model_for_proto_model(&proto).map_err(tract_error("face detector: reading YuNet"))?;
        Ok(YuNet { model, plans: Mutex::new(HashMap::new()), box_scale: 1.0, box_shift: 0.0 })
    }

    /// The plan for a `w` x `h` input (multiples of 32), compiled on first use.
    fn plan(&self, w: usize, h: usize) -> Result<Arc<TypedRunnableModel>> {
        if let Some(p) = self.plans.lock().ok().and_then(|m| m.get(&(w, h)).cloned()) {
            return Ok(p);
        }
        let plan = self
            .model
            .clone()
            .with_input_fact(0, InferenceFact::dt_shape(f32::datum_type(), tvec!(1, 3, h, w)))
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(tract_error("face detector: compiling YuNet"))?;
        if let Ok(mut m) = self.plans.lock() {
            if m.len() >= MAX_PLANS {
                m.clear();
            }
            m.insert((w, h), plan.clone());
        }
        Ok(plan)
    }

    /// Raw detections in a `w` x `h` BGR planar input: boxes and landmarks in input pixels.
    fn run(&self, input: Vec<f32>, w: usize, h: usize, min_score: f32) -> Result<Vec<(BBox, Landmarks, f32)>> {
        let plan = self.plan(w, h)?;
        let tensor = Tensor::from_shape(&[1, 3, h, w], &input).map_err(|e| Error::Tract { stage: "face detector: input", source: e.into() })?;
        // On rayon's pool, the one the caller's thread count sized (one thread: no split).
        let outputs = tract_linalg::multithread::multithread_tract_scope(tract_linalg::multithread::Executor::RayonGlobal, || plan.run(tvec!(tensor.into())))
            .map_err(tract_error("face detector: running YuNet"))?;
        if outputs.len() != 12 {
            return Err(Error::Detector(format!("YuNet gave {} outputs, expected 12", outputs.len())));
        }
        let arrays = outputs
            .iter()
            .map(|o| o.to_plain_array_view::<f32>())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(tract_error("face detector: YuNet output"))?;
        let views = arrays.iter().map(|a| a.as_slice().ok_or_else(|| Error::Detector("YuNet output not contiguous".into()))).collect::<Result<Vec<&[f32]>>>()?;
        let mut out = Vec::new();
        for (level, &stride) in STRIDES.iter().enumerate() {
            let (cols, rows) = (w / stride, h / stride);
            let n = cols * rows;
            let (cls, obj, bbox, kps) = (views[level], views[3 + level], views[6 + level], views[9 + level]);
            if cls.len() != n || obj.len() != n || bbox.len() != 4 * n || kps.len() != 10 * n {
                return Err(Error::Detector(format!("YuNet output sizes at stride {stride} do not fit a {w}x{h} input")));
            }
            let s = stride as f32;
            for i in 0..n {
                let score = (cls[i].clamp(0.0, 1.0) * obj[i].clamp(0.0, 1.0)).sqrt();
                if score < min_score || !score.is_finite() {
                    continue;
                }
                let (c, r) = ((i % cols) as f32, (i / cols) as f32);
                let b = &bbox[4 * i..4 * i + 4];
                let (cx, cy) = ((c + b[0]) * s, (r + b[1]) * s);
                // A square of the box's area, scaled and moved to frame the face as BlazeFace
                // back does (its boxes are square; YuNet's are 1.3 times as tall as wide).
                let side = (b[2].min(10.0).exp() * b[3].min(10.0).exp()).sqrt() * s * self.box_scale;
                let (bw, bh) = (side, side);
                let cy = cy + self.box_shift * side;
                let k = &kps[10 * i..10 * i + 10];
                let p = |j: usize| [(k[2 * j] + c) * s, (k[2 * j + 1] + r) * s];
                // YuNet: right eye, left eye (the person's; the image's left first), nose tip,
                // right and left mouth corners. In ferrite's six: eyes, nose, mouth centre, and
                // the mouth corners where BlazeFace has the ears.
                let (mr, ml) = (p(3), p(4));
                let marks: Landmarks = [p(0), p(1), p(2), [(mr[0] + ml[0]) / 2.0, (mr[1] + ml[1]) / 2.0], mr, ml];
                out.push((BBox::new(cx - bw / 2.0, cy - bh / 2.0, bw, bh), marks, score));
            }
        }
        Ok(out)
    }

    /// Detections in the part `region` of `image` (image pixels), scaled so that it and its
    /// margin fit [`YUNET_SIDE`] at its own aspect ratio. With `edge_pad` > 0 that fraction of the
    /// region's longest side is left free on every side and filled by the region mirrored at
    /// its edges, and detections centred there are dropped; with 0 the border is black.
    pub fn detect_region(&self, image: &RgbImage, region: BBox, edge_pad: f32, min_score: f32) -> Result<Vec<Detection>> {
        let Some(px) = region_pixels(image, region) else { return Ok(Vec::new()) };
        let (rw, rh) = (px[2], px[3]);
        let pad = edge_pad.max(0.0);
        let side = YUNET_SIDE as f32;
        // Never enlarged beyond what puts the region at the whole image's size: a whole photo
        // is searched at most at its own resolution (enlarged, the faces of a small photo grow
        // past the sizes YuNet was trained for, about 10 to 300 px: on `wild/` 1,340 photos with
        // a face instead of 1,377), a part of it (a tile) as if it were the whole.
        let most = (image.width().max(image.height()) as f32 / rw.max(rh) as f32).max(1.0);
        let scale = (side / (rw.max(rh) as f32 * (1.0 + 2.0 * pad))).min(most);
        let (sw, sh) = (((rw as f32 * scale).round() as usize).clamp(1, YUNET_SIDE), ((rh as f32 * scale).round() as usize).clamp(1, YUNET_SIDE));
        let margin = (pad * sw.max(sh) as f32).round() as usize;
        let round32 = |v: usize| v.div_ceil(32).max(1) * 32;
        let (w, h) = (round32(sw + 2 * margin).min(YUNET_SIDE), round32(sh + 2 * margin).min(YUNET_SIDE));
        let placed = Letterbox::new(image, px, scale, (sw as u32, sh as u32), (w as u32, h as u32), pad > 0.0);
        // BGR planes.
        let plane = w * h;
        let mut input = vec![0.0f32; 3 * plane];
        for (i, p) in placed.canvas.pixels().enumerate() {
            input[i] = p.0[2] as f32;
            input[plane + i] = p.0[1] as f32;
            input[2 * plane + i] = p.0[0] as f32;
        }
        Ok(self
            .run(input, w, h, min_score)?
            .into_iter()
            .filter_map(|(b, marks, score)| placed.detection(b, marks, score))
            .collect())
    }

    /// Set the box framing (scale of the square about the centre, then a downward shift as a
    /// fraction of its side).
    pub(crate) fn with_framing(mut self, scale: f32, shift: f32) -> YuNet {
        self.box_scale = scale;
        self.box_shift = shift;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vision::blazeface::{BlazeFace, BlazeFaceConfig, DetectorModel};
    use crate::vision::detect::Detector;

    fn fixture(name: &str) -> RgbImage {
        image::open(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/photos").join(name)).unwrap().to_rgb8()
    }

    fn detector(model: DetectorModel) -> BlazeFace {
        BlazeFace::new(BlazeFaceConfig { model, ..BlazeFaceConfig::default() }).unwrap()
    }

    /// Faces in the committed group photos (counts by eye in `counts.txt`).
    const GROUPS: [(&str, usize); 6] = [("group1.jpg", 3), ("group2.jpg", 3), ("group3.jpg", 3), ("group4.jpg", 4), ("group5.jpg", 5), ("group6.jpg", 4)];

    /// On a committed photo: one face, a square box around it, the five points where a face has
    /// them (image-left eye first, eyes level and in the upper half, nose below, mouth centre
    /// between the mouth corners, below the nose); every group photo's faces, no more.
    #[test]
    fn yunet_boxes_and_landmarks_on_committed_photos() {
        let det = detector(DetectorModel::Yunet);
        let found = det.detect(&fixture("astronaut.jpg")).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        let (b, l) = (found[0].bbox, found[0].landmarks.expect("YuNet gives landmarks"));
        assert!((b.w - b.h).abs() < 1e-3 && b.w > 40.0 && b.w < 80.0, "{b:?}");
        let inside = |p: [f32; 2]| p[0] > b.x && p[0] < b.x + b.w && p[1] > b.y && p[1] < b.y + b.h;
        assert!(l.iter().all(|&p| inside(p)), "{l:?} in {b:?}");
        assert!(l[0][0] < l[1][0] && l[4][0] < l[5][0], "image-left first: {l:?}");
        assert!(l[0][1] < b.y + b.h / 2.0 && l[1][1] < b.y + b.h / 2.0, "eyes in the upper half: {l:?}");
        assert!(l[2][1] > l[0][1] && l[3][1] > l[2][1], "eyes, nose, mouth from the top: {l:?}");
        assert!((l[3][0] - (l[4][0] + l[5][0]) / 2.0).abs() < 1e-3, "mouth centre between the corners: {l:?}");
        assert!(found[0].roll().abs() < 10f32.to_radians(), "roll {}", found[0].roll().to_degrees());
        for (name, n) in GROUPS {
            let got = det.detect(&fixture(name)).unwrap();
            assert_eq!(got.len(), n, "{name}: {got:?}");
            assert!(got.iter().all(|d| d.score >= 0.8), "{name}: {got:?}");
        }
    }

    /// A dim room: every group photo darkened (gamma 3, contrast 0.5, noise), 22 faces.
    /// YuNet finds nearly all of them, at least as many as the BlazeFace pair.
    #[test]
    fn faces_in_dark_frames_are_found() {
        let mut seed = 11u32;
        let mut noise = move || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 24) as f32 / 255.0 * 16.0 - 8.0
        };
        let (yunet, pair) = (detector(DetectorModel::Yunet), detector(DetectorModel::Both));
        let (mut total, mut by_yunet, mut by_pair) = (0, 0, 0);
        for (name, n) in GROUPS {
            let mut img = fixture(name);
            for p in img.pixels_mut() {
                for c in p.0.iter_mut() {
                    let v = 255.0 * (*c as f32 / 255.0).powf(3.0) * 0.5 + noise();
                    *c = v.round().clamp(0.0, 255.0) as u8;
                }
            }
            let mean = img.pixels().map(|p| p.0.iter().map(|&c| c as f32).sum::<f32>() / 3.0).sum::<f32>() / (img.width() * img.height()) as f32;
            assert!(mean < 40.0, "{name} is dark: mean {mean}");
            total += n;
            by_yunet += yunet.detect(&img).unwrap().len().min(n);
            by_pair += pair.detect(&img).unwrap().len().min(n);

        }
        eprintln!("dark group photos: YuNet {by_yunet} of {total} faces, BlazeFace pair {by_pair}");
        assert!(by_yunet * 10 >= total * 9 && by_yunet >= by_pair, "YuNet {by_yunet}, pair {by_pair} of {total}");
    }

    /// A turned face: the cameraman (scikit-image's `camera`, three-quarter view, looking into
    /// his camera): one face, on his head.
    #[test]
    fn a_turned_face_is_found() {
        let found = detector(DetectorModel::Yunet).detect(&fixture("camera.jpg")).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        let (cx, cy) = found[0].bbox.center();
        // His face, by eye: x 125-160, y 80-120 in the 320 px copy.
        assert!((125.0..160.0).contains(&cx) && (80.0..120.0).contains(&cy), "{found:?}");
    }

    /// Frames without a face: black, gray, noise, the coffee cup; none found, and odd sizes
    /// (thin, tiny, larger than the input) are searched without error.
    #[test]
    fn frames_without_faces_give_none() {
        let det = detector(DetectorModel::Yunet);
        let mut seed = 3u32;
        let noise = RgbImage::from_fn(640, 480, |_, _| {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            image::Rgb([(seed >> 24) as u8, (seed >> 16) as u8, (seed >> 8) as u8])
        });
        for (what, img) in [("black", RgbImage::new(640, 480)), ("gray", RgbImage::from_pixel(1280, 720, image::Rgb([128, 128, 128]))), ("noise", noise), ("coffee", fixture("coffee.jpg"))] {
            assert!(det.detect(&img).unwrap().is_empty(), "{what}");
        }
        for (w, h) in [(1, 1), (3, 500), (500, 2), (20, 20), (2000, 90)] {
            assert!(det.detect(&RgbImage::new(w, h)).unwrap().is_empty(), "{w}x{h}");
        }
    }

    #[test]
    fn the_embedded_file_is_the_published_one_and_a_changed_one_is_refused() {
        assert_eq!(sha256_hex(YUNET_ONNX), YUNET_SHA256);
        let mut bad = YUNET_ONNX.to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        let err = YuNet::from_bytes(&bad, YUNET_SHA256).err().expect("a changed byte is refused");
        assert!(err.to_string().contains("sha256"), "{err}");
    }
}
