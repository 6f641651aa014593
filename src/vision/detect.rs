//! Face boxes: the `Detector` trait, box geometry (IoU, merging overlaps) and face crops.

use crate::error::Result;
use crate::data::preprocess::FACE_PIXELS;
use image::{DynamicImage, GrayImage, RgbImage};
use serde::{Deserialize, Serialize};

/// An axis-aligned box in image pixels: top-left corner and size.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BBox {
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
}

impl BBox {
    pub fn new(x: f32, y: f32, w: f32, h: f32) -> BBox {
        BBox { x, y, w, h }
    }

    pub fn area(&self) -> f32 {
        self.w.max(0.0) * self.h.max(0.0)
    }

    pub fn center(&self) -> (f32, f32) {
        (self.x + self.w / 2.0, self.y + self.h / 2.0)
    }

    /// Intersection over union (0 when either box is empty).
    pub fn iou(&self, o: &BBox) -> f32 {
        let x0 = self.x.max(o.x);
        let y0 = self.y.max(o.y);
        let x1 = (self.x + self.w).min(o.x + o.w);
        let y1 = (self.y + self.h).min(o.y + o.h);
        let inter = (x1 - x0).max(0.0) * (y1 - y0).max(0.0);
        let union = self.area() + o.area() - inter;
        if union <= 0.0 { 0.0 } else { inter / union }
    }

    /// The box grown by `margin` (a fraction of its size) on every side and made square around
    /// its centre, the crop the expression classifier expects (FER2013 faces include the brow
    /// and chin with a little background).
    pub fn expanded_square(&self, margin: f32) -> BBox {
        let (cx, cy) = self.center();
        let side = self.w.max(self.h) * (1.0 + 2.0 * margin);
        BBox::new(cx - side / 2.0, cy - side / 2.0, side, side)
    }

    /// The part of the box inside a `width` x `height` image (may be empty).
    pub fn clamped(&self, width: u32, height: u32) -> BBox {
        let x0 = self.x.clamp(0.0, width as f32);
        let y0 = self.y.clamp(0.0, height as f32);
        let x1 = (self.x + self.w).clamp(0.0, width as f32);
        let y1 = (self.y + self.h).clamp(0.0, height as f32);
        BBox::new(x0, y0, x1 - x0, y1 - y0)
    }
}

/// Six face landmarks in image pixels. The first four are the same for every detector: the eye
/// on the image's left (the person's right), the other eye, nose tip, mouth centre. The last two
/// are the detector's own, image-left first: BlazeFace's ear tragions, or YuNet's mouth corners
/// (YuNet's mouth centre is the corners' midpoint). One detection's points come from one model:
/// BlazeFace and YuNet detections are never merged.
pub type Landmarks = [[f32; 2]; 6];

/// One face found in an image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// Tight face box in image pixels.
    pub bbox: BBox,
    /// Detector confidence in [0, 1].
    pub score: f32,
    /// Landmarks, when the detector gives them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub landmarks: Option<Landmarks>,
}

impl Detection {
    /// A detection without landmarks.
    pub fn new(bbox: BBox, score: f32) -> Detection {
        Detection { bbox, score, landmarks: None }
    }

    /// The in-plane tilt of the face: the angle of the line from the image-left eye to the
    /// other, in radians (positive: the right-hand eye is lower, a clockwise tilt on screen);
    /// 0 without landmarks.
    pub fn roll(&self) -> f32 {
        match self.landmarks {
            Some(l) => (l[1][1] - l[0][1]).atan2(l[1][0] - l[0][0]),
            None => 0.0,
        }
    }
}

/// The whole pixels of `region` inside `image`: `[x, y, w, h]`, `None` when none is inside.
pub(crate) fn region_pixels(image: &RgbImage, region: BBox) -> Option<[u32; 4]> {
    let x = region.x.max(0.0) as u32;
    let y = region.y.max(0.0) as u32;
    let w = (region.w as u32).min(image.width().saturating_sub(x));
    let h = (region.h as u32).min(image.height().saturating_sub(y));
    (w > 0 && h > 0).then_some([x, y, w, h])
}

/// A region of an image scaled and centred on a detector's input canvas, the border filled by
/// the region mirrored at its edges (faces cut by the edge become whole) or black; it maps what
/// the detector finds on the canvas back to the image, dropping mirror images.
pub(crate) struct Letterbox {
    pub canvas: RgbImage,
    /// The region's pixels in the image (`region_pixels`).
    px: [u32; 4],
    /// Where the scaled region lies on the canvas: top-left corner and size.
    at: [u32; 4],
    /// Canvas pixels per image pixel.
    pub scale: f32,
    mirror: bool,
}

impl Letterbox {
    /// The region `px` of `image` resized to `size`, centred on a `canvas`-sized image.
    pub(crate) fn new(image: &RgbImage, px: [u32; 4], scale: f32, size: (u32, u32), canvas: (u32, u32), mirror: bool) -> Letterbox {
        let [rx, ry, rw, rh] = px;
        let (sw, sh) = (size.0.clamp(1, canvas.0), size.1.clamp(1, canvas.1));
        let view = image::imageops::crop_imm(image, rx, ry, rw, rh);
        let resized = image::imageops::resize(&*view, sw, sh, image::imageops::FilterType::Triangle);
        let (ox, oy) = ((canvas.0 - sw) / 2, (canvas.1 - sh) / 2);
        let mut out = RgbImage::new(canvas.0, canvas.1);
        image::imageops::replace(&mut out, &resized, ox as i64, oy as i64);
        if mirror {
            let reflect = |v: i64, n: i64| -> u32 {
                let r = if v < 0 { -v - 1 } else if v >= n { 2 * n - v - 1 } else { v };
                r.clamp(0, n - 1) as u32
            };
            for py in 0..canvas.1 {
                for px in 0..canvas.0 {
                    let (x, y) = (px as i64 - ox as i64, py as i64 - oy as i64);
                    if x < 0 || y < 0 || x >= sw as i64 || y >= sh as i64 {
                        out.put_pixel(px, py, *resized.get_pixel(reflect(x, sw as i64), reflect(y, sh as i64)));
                    }
                }
            }
        }
        Letterbox { canvas: out, px, at: [ox, oy, sw, sh], scale, mirror }
    }

    /// A detection from a box, landmarks and score in canvas pixels, in image pixels; `None` for
    /// one centred in the mirrored border (a mirror image).
    pub(crate) fn detection(&self, b: BBox, marks: Landmarks, score: f32) -> Option<Detection> {
        let [ox, oy, sw, sh] = self.at.map(|v| v as f32);
        let (cx, cy) = b.center();
        if self.mirror && !(cx >= ox && cx < ox + sw && cy >= oy && cy < oy + sh) {
            return None;
        }
        let to_image = |x: f32, y: f32| [self.px[0] as f32 + (x - ox) / self.scale, self.px[1] as f32 + (y - oy) / self.scale];
        let [x, y] = to_image(b.x, b.y);
        Some(Detection { bbox: BBox::new(x, y, b.w / self.scale, b.h / self.scale), score, landmarks: Some(marks.map(|m| to_image(m[0], m[1]))) })
    }
}

/// A tract failure of a face detector at `stage`, the error kept as the source.
pub(crate) fn tract_error(stage: &'static str) -> impl Fn(tract_onnx::prelude::TractError) -> crate::error::Error {
    move |e| crate::error::Error::Tract { stage, source: e.into() }
}

/// Anything that finds faces in an RGB image.
pub trait Detector: Send + Sync {
    fn detect(&self, image: &RgbImage) -> Result<Vec<Detection>>;
}

/// Merge overlapping detections (IoU >= `iou`): each group becomes its score-weighted mean box
/// with the group's highest score, strongest first (BlazeFace's "weighted" non-max suppression).
pub fn merge_overlaps(mut dets: Vec<Detection>, iou: f32) -> Vec<Detection> {
    dets.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut used = vec![false; dets.len()];
    let mut out = Vec::new();
    for i in 0..dets.len() {
        if used[i] {
            continue;
        }
        used[i] = true;
        let (mut sx, mut sy, mut sw, mut sh, mut sum) = (0.0, 0.0, 0.0, 0.0, 0.0);
        let (mut marks, mut marks_sum) = ([[0.0f32; 2]; 6], 0.0);
        for j in i..dets.len() {
            if j > i && (used[j] || dets[i].bbox.iou(&dets[j].bbox) < iou) {
                continue;
            }
            used[j] = true;
            let (b, s) = (dets[j].bbox, dets[j].score);
            sx += b.x * s;
            sy += b.y * s;
            sw += b.w * s;
            sh += b.h * s;
            sum += s;
            if let Some(l) = dets[j].landmarks {
                for (m, p) in marks.iter_mut().zip(l) {
                    m[0] += p[0] * s;
                    m[1] += p[1] * s;
                }
                marks_sum += s;
            }
        }
        let sum: f32 = if sum > 0.0 { sum } else { 1.0 };
        out.push(Detection {
            bbox: BBox::new(sx / sum, sy / sum, sw / sum, sh / sum),
            score: dets[i].score,
            landmarks: (marks_sum > 0.0).then(|| marks.map(|m| [m[0] / marks_sum, m[1] / marks_sum])),
        });
    }
    out
}

/// Cut the square face crop around `bbox` (grown by `margin`) out of `gray` and make it a
/// 48x48 face with the one shared preprocessing step (`preprocess::to_face`). Parts outside the
/// image are filled by clamping to the border.
pub fn crop_face(gray: &GrayImage, bbox: &BBox, margin: f32, contrast: crate::data::preprocess::Contrast) -> Vec<u8> {
    crop_face_rotated(gray, bbox, margin, 0.0, contrast)
}

/// [`crop_face`] of a face tilted by `roll` radians (`Detection::roll`): the square is turned
/// with the face about the box centre, so the eyes come out level (bilinear sampling, borders
/// clamped). `roll = 0` is exactly `crop_face`'s crop.
pub fn crop_face_rotated(gray: &GrayImage, bbox: &BBox, margin: f32, roll: f32, contrast: crate::data::preprocess::Contrast) -> Vec<u8> {
    let sq = bbox.expanded_square(margin);
    if roll != 0.0 && roll.is_finite() {
        let (w, h) = (gray.width() as i64, gray.height() as i64);
        if w == 0 || h == 0 {
            return vec![0u8; FACE_PIXELS];
        }
        let side = (sq.w.round() as u32).max(1);
        let (cx, cy) = sq.center();
        let (sin, cos) = roll.sin_cos();
        let half = side as f32 / 2.0;
        let at = |x: i64, y: i64| gray.get_pixel(x.clamp(0, w - 1) as u32, y.clamp(0, h - 1) as u32).0[0] as f32;
        let square = GrayImage::from_fn(side, side, |x, y| {
            // Output pixel centre relative to the square's centre, turned by the face's roll.
            let (u, v) = (x as f32 + 0.5 - half, y as f32 + 0.5 - half);
            let (sx, sy) = (cx + u * cos - v * sin - 0.5, cy + u * sin + v * cos - 0.5);
            let (x0, y0) = (sx.floor(), sy.floor());
            let (fx, fy) = (sx - x0, sy - y0);
            let (x0, y0) = (x0 as i64, y0 as i64);
            let top = at(x0, y0) * (1.0 - fx) + at(x0 + 1, y0) * fx;
            let bottom = at(x0, y0 + 1) * (1.0 - fx) + at(x0 + 1, y0 + 1) * fx;
            image::Luma([(top * (1.0 - fy) + bottom * fy).round().clamp(0.0, 255.0) as u8])
        });
        return crate::data::preprocess::to_face(&DynamicImage::ImageLuma8(square), contrast);
    }
    let (w, h) = (gray.width() as i64, gray.height() as i64);
    if w == 0 || h == 0 {
        return vec![0u8; FACE_PIXELS];
    }
    let side = (sq.w.round() as u32).max(1);
    let (x0, y0) = (sq.x.round() as i64, sq.y.round() as i64);
    let square = GrayImage::from_fn(side, side, |x, y| {
        let px = (x0 + x as i64).clamp(0, w - 1) as u32;
        let py = (y0 + y as i64).clamp(0, h - 1) as u32;
        *gray.get_pixel(px, py)
    });
    crate::data::preprocess::to_face(&DynamicImage::ImageLuma8(square), contrast)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_of_boxes() {
        let a = BBox::new(0.0, 0.0, 10.0, 10.0);
        assert_eq!(a.iou(&a), 1.0);
        assert_eq!(a.iou(&BBox::new(20.0, 0.0, 10.0, 10.0)), 0.0);
        let half = a.iou(&BBox::new(5.0, 0.0, 10.0, 10.0));
        assert!((half - 50.0 / 150.0).abs() < 1e-6);
        assert_eq!(a.iou(&BBox::new(0.0, 0.0, 0.0, 0.0)), 0.0);
    }

    #[test]
    fn merging_keeps_separate_faces_and_blends_duplicates() {
        let d = |x: f32, s: f32| Detection::new(BBox::new(x, 0.0, 10.0, 10.0), s);
        let out = merge_overlaps(vec![d(0.0, 0.9), d(1.0, 0.6), d(50.0, 0.8)], 0.3);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].score, 0.9);
        assert!(out[0].bbox.x > 0.0 && out[0].bbox.x < 1.0);
        assert_eq!(out[1].bbox.x, 50.0);
        assert!(merge_overlaps(vec![], 0.3).is_empty());
    }

    /// A synthetic face turned 20 degrees: two dark eyes on a tilted line. Cropped with the
    /// roll its landmarks give, the eyes come out level, on one row of the 48x48 face.
    #[test]
    fn a_face_tilted_20_degrees_comes_out_level() {
        let (cx, cy, r) = (100.0f32, 100.0f32, 30.0f32);
        let tilt = 20f32.to_radians();
        let eyes = [[cx - r * tilt.cos(), cy - 15.0 - r * tilt.sin()], [cx + r * tilt.cos(), cy - 15.0 + r * tilt.sin()]];
        let img = GrayImage::from_fn(200, 200, |x, y| {
            let near = eyes.iter().any(|e| (x as f32 - e[0]).hypot(y as f32 - e[1]) < 6.0);
            image::Luma([if near { 0 } else { 220 }])
        });
        let mut det = Detection::new(BBox::new(50.0, 50.0, 100.0, 100.0), 0.9);
        let mut marks = [[0.0f32; 2]; 6];
        marks[0] = eyes[0];
        marks[1] = eyes[1];
        det.landmarks = Some(marks);
        assert!((det.roll() - tilt).abs() < 1e-5);
        // Dark-pixel centre of each half of the crop.
        let centres = |face: &[u8]| {
            let mut c = [(0.0f32, 0.0f32, 0.0f32); 2];
            for (i, &p) in face.iter().enumerate() {
                if p < 100 {
                    let (x, y) = ((i % 48) as f32, (i / 48) as f32);
                    let k = usize::from(x >= 24.0);
                    c[k] = (c[k].0 + x, c[k].1 + y, c[k].2 + 1.0);
                }
            }
            c.map(|(x, y, n)| (x / n, y / n))
        };
        let raw = crate::data::preprocess::Contrast::Raw;
        let straight = centres(&crop_face(&img, &det.bbox, 0.0, raw));
        assert!(straight[1].1 - straight[0].1 > 5.0, "unaligned, the eyes are tilted: {straight:?}");
        let level = centres(&crop_face_rotated(&img, &det.bbox, 0.0, det.roll(), raw));
        assert!((level[1].1 - level[0].1).abs() < 0.75, "aligned, the eyes are level: {level:?}");
        assert!((level[1].0 - level[0].0 - 2.0 * r * 48.0 / 100.0).abs() < 1.5, "eye distance kept: {level:?}");
    }

    #[test]
    fn face_crop_is_square_48_and_clamps_at_the_border() {
        // Left half black, right half white.
        let img = GrayImage::from_fn(100, 60, |x, _| image::Luma([if x < 50 { 0 } else { 255 }]));
        let face = crop_face(&img, &BBox::new(30.0, 10.0, 40.0, 40.0), 0.0, crate::data::preprocess::Contrast::Raw);
        assert_eq!(face.len(), FACE_PIXELS);
        assert!(face[0] < 10 && face[47] > 245, "{} {}", face[0], face[47]);
        // A box hanging off the image still gives a full crop.
        let face = crop_face(&img, &BBox::new(-30.0, -30.0, 50.0, 50.0), 0.2, crate::data::preprocess::Contrast::Raw);
        assert_eq!(face.len(), FACE_PIXELS);
        let sq = BBox::new(0.0, 0.0, 10.0, 20.0).expanded_square(0.25);
        assert_eq!((sq.w, sq.h), (30.0, 30.0));
        assert_eq!(sq.center(), (5.0, 10.0));
    }
}
