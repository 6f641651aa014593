//! Drawing results on images: a box per face in its emotion's colour, with a legible label.

use crate::vision::detect::BBox;
use ab_glyph::{Font, FontRef, PxScale, ScaleFont, point};
use image::{Rgb, RgbImage};

/// Text renderer with the embedded DejaVu Sans font (parsed once).
pub struct Painter {
    font: FontRef<'static>,
}

impl Default for Painter {
    fn default() -> Self {
        Painter::new()
    }
}

impl Painter {
    pub fn new() -> Painter {
        Painter {
            font: FontRef::try_from_slice(crate::draw::FONT).expect("the embedded font is valid"),
        }
    }

    /// Width and height in pixels of `text` at `size` px.
    pub fn text_size(&self, text: &str, size: f32) -> (u32, u32) {
        let f = self.font.as_scaled(PxScale::from(size));
        let w: f32 = text.chars().map(|c| f.h_advance(f.glyph_id(c))).sum();
        (w.ceil() as u32, (f.ascent() - f.descent()).ceil() as u32)
    }

    /// Draw `text` with its top-left corner at (x, y), blending `color` by glyph coverage.
    pub fn text(&self, img: &mut RgbImage, x: i32, y: i32, text: &str, size: f32, color: [u8; 3]) {
        let scale = PxScale::from(size);
        let f = self.font.as_scaled(scale);
        let mut caret = x as f32;
        let baseline = y as f32 + f.ascent();
        for c in text.chars() {
            let id = f.glyph_id(c);
            let glyph = id.with_scale_and_position(scale, point(caret, baseline));
            caret += f.h_advance(id);
            if let Some(outline) = self.font.outline_glyph(glyph) {
                let b = outline.px_bounds();
                outline.draw(|gx, gy, cov| {
                    let px = b.min.x as i32 + gx as i32;
                    let py = b.min.y as i32 + gy as i32;
                    blend(img, px, py, color, cov);
                });
            }
        }
    }

    /// A face box with `label` on a filled tab above it (or inside, at the image top).
    pub fn labelled_box(&self, img: &mut RgbImage, bbox: &BBox, label: &str, color: [u8; 3]) {
        let thick = ((bbox.w.max(bbox.h) / 60.0).round() as i32).clamp(2, 6);
        rect_outline(img, bbox, thick, color);
        let size = (bbox.w * 0.16).clamp(13.0, 32.0);
        let (tw, th) = self.text_size(label, size);
        let pad = (size / 5.0).round() as i32;
        let x0 = bbox.x.round() as i32;
        let mut y0 = bbox.y.round() as i32 - th as i32 - 2 * pad;
        if y0 < 0 {
            y0 = bbox.y.round() as i32;
        }
        fill_rect(img, x0, y0, tw as i32 + 2 * pad, th as i32 + 2 * pad, color);
        // Dark text on light colours, white on dark ones.
        let luma = 0.299 * color[0] as f32 + 0.587 * color[1] as f32 + 0.114 * color[2] as f32;
        let fg = if luma > 140.0 { [0, 0, 0] } else { [255, 255, 255] };
        self.text(img, x0 + pad, y0 + pad, label, size, fg);
    }
}

fn blend(img: &mut RgbImage, x: i32, y: i32, color: [u8; 3], alpha: f32) {
    if x < 0 || y < 0 || x >= img.width() as i32 || y >= img.height() as i32 {
        return;
    }
    let a = alpha.clamp(0.0, 1.0);
    let p = img.get_pixel_mut(x as u32, y as u32);
    for (v, c) in p.0.iter_mut().zip(color) {
        *v = (*v as f32 * (1.0 - a) + c as f32 * a).round() as u8;
    }
}

/// Fill a rectangle (clipped to the image).
pub fn fill_rect(img: &mut RgbImage, x: i32, y: i32, w: i32, h: i32, color: [u8; 3]) {
    let (iw, ih) = (img.width() as i32, img.height() as i32);
    for yy in y.max(0)..(y + h).min(ih) {
        for xx in x.max(0)..(x + w).min(iw) {
            img.put_pixel(xx as u32, yy as u32, Rgb(color));
        }
    }
}

/// A rectangle outline `thick` pixels wide, drawn inside the box (clipped to the image).
pub fn rect_outline(img: &mut RgbImage, b: &BBox, thick: i32, color: [u8; 3]) {
    let (x, y) = (b.x.round() as i32, b.y.round() as i32);
    let (w, h) = (b.w.round() as i32, b.h.round() as i32);
    fill_rect(img, x, y, w, thick, color);
    fill_rect(img, x, y + h - thick, w, thick, color);
    fill_rect(img, x, y, thick, h, color);
    fill_rect(img, x + w - thick, y, thick, h, color);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes_and_text_change_pixels_only_where_drawn() {
        let mut img = RgbImage::from_pixel(200, 120, Rgb([10, 10, 10]));
        let p = Painter::new();
        let (w, h) = p.text_size("happy 0.93", 16.0);
        assert!(w > 40 && h >= 14, "{w}x{h}");
        p.labelled_box(&mut img, &BBox::new(50.0, 50.0, 60.0, 60.0), "happy 0.93", [255, 200, 0]);
        assert_eq!(img.get_pixel(50, 80).0, [255, 200, 0], "left edge");
        assert_eq!(img.get_pixel(80, 80).0, [10, 10, 10], "inside untouched");
        assert_eq!(img.get_pixel(190, 5).0, [10, 10, 10], "far corner untouched");
        // The tab above the box holds dark text on the yellow fill.
        let tab: Vec<_> = (30..50).flat_map(|y| (50..110).map(move |x| (x, y))).collect();
        assert!(tab.iter().any(|&(x, y)| img.get_pixel(x, y).0 == [255, 200, 0]));
        assert!(tab.iter().any(|&(x, y)| img.get_pixel(x, y).0[0] < 100));
        // Boxes hanging off the image are clipped, not a panic.
        p.labelled_box(&mut img, &BBox::new(-30.0, -30.0, 400.0, 400.0), "fear", [0, 0, 200]);
    }
}
