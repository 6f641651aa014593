//! Face boxes: the `Detector` trait, box geometry (IoU, merging overlaps) and face crops.

use crate::error::Result;
use crate::preprocess::FACE_PIXELS;
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

    /// Linear interpolation towards `o` (t = 0 gives self).
    pub fn lerp(&self, o: &BBox, t: f32) -> BBox {
        BBox::new(
            self.x + (o.x - self.x) * t,
            self.y + (o.y - self.y) * t,
            self.w + (o.w - self.w) * t,
            self.h + (o.h - self.h) * t,
        )
    }
}

/// One face found in an image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// Tight face box in image pixels.
    pub bbox: BBox,
    /// Detector confidence in [0, 1].
    pub score: f32,
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
        }
        let sum: f32 = if sum > 0.0 { sum } else { 1.0 };
        out.push(Detection {
            bbox: BBox::new(sx / sum, sy / sum, sw / sum, sh / sum),
            score: dets[i].score,
        });
    }
    out
}

/// Cut the square face crop around `bbox` (grown by `margin`) out of `gray` and make it a
/// 48x48 face with the one shared preprocessing step (`preprocess::to_face`). Parts outside the
/// image are filled by clamping to the border.
pub fn crop_face(gray: &GrayImage, bbox: &BBox, margin: f32, contrast: crate::preprocess::Contrast) -> Vec<u8> {
    let sq = bbox.expanded_square(margin);
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
    crate::preprocess::to_face(&DynamicImage::ImageLuma8(square), contrast)
}

/// Any image as 8-bit RGB (grayscale, RGBA, 16-bit and palette images included).
pub fn to_rgb(image: &DynamicImage) -> RgbImage {
    image.to_rgb8()
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
        let d = |x: f32, s: f32| Detection { bbox: BBox::new(x, 0.0, 10.0, 10.0), score: s };
        let out = merge_overlaps(vec![d(0.0, 0.9), d(1.0, 0.6), d(50.0, 0.8)], 0.3);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].score, 0.9);
        assert!(out[0].bbox.x > 0.0 && out[0].bbox.x < 1.0);
        assert_eq!(out[1].bbox.x, 50.0);
        assert!(merge_overlaps(vec![], 0.3).is_empty());
    }

    #[test]
    fn face_crop_is_square_48_and_clamps_at_the_border() {
        // Left half black, right half white.
        let img = GrayImage::from_fn(100, 60, |x, _| image::Luma([if x < 50 { 0 } else { 255 }]));
        let face = crop_face(&img, &BBox::new(30.0, 10.0, 40.0, 40.0), 0.0, crate::preprocess::Contrast::Raw);
        assert_eq!(face.len(), FACE_PIXELS);
        assert!(face[0] < 10 && face[47] > 245, "{} {}", face[0], face[47]);
        // A box hanging off the image still gives a full crop.
        let face = crop_face(&img, &BBox::new(-30.0, -30.0, 50.0, 50.0), 0.2, crate::preprocess::Contrast::Raw);
        assert_eq!(face.len(), FACE_PIXELS);
        let sq = BBox::new(0.0, 0.0, 10.0, 20.0).expanded_square(0.25);
        assert_eq!((sq.w, sq.h), (30.0, 30.0));
        assert_eq!(sq.center(), (5.0, 10.0));
    }
}
