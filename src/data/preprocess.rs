//! Image to 48x48 face tensor: the one preprocessing path shared by training, evaluation,
//! the CLI and the server.

use burn::tensor::{Device, Tensor, TensorData};
use image::{DynamicImage, imageops::FilterType};
use serde::{Deserialize, Serialize};

/// Side of the square face crop every model sees.
pub const FACE_SIZE: usize = 48;
/// Pixels in one face crop.
pub const FACE_PIXELS: usize = FACE_SIZE * FACE_SIZE;

/// The contrast step of [`to_face`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Contrast {
    /// Histogram-equalise every face (the default). FER2013's image-folder JPEGs are already
    /// equalised (near-flat cumulative histograms), while faces cut from photos and the CSV's
    /// pixels are not; equalising is idempotent, so training faces barely change and every
    /// other face is brought to their form (measured in `docs/PREPROCESSING.md`).
    #[default]
    Equalize,
    /// Pixels as the image has them (ferrite before 2026-12-01).
    Raw,
}

/// Convert any image (any size, colour type or bit depth) to a 48x48 8-bit grayscale face,
/// row-major, with the `contrast` step. Images that are already 48x48 are not resampled.
pub fn to_face(img: &DynamicImage, contrast: Contrast) -> Vec<u8> {
    let gray = img.to_luma8();
    let gray = if gray.width() as usize == FACE_SIZE && gray.height() as usize == FACE_SIZE {
        gray
    } else {
        image::imageops::resize(&gray, FACE_SIZE as u32, FACE_SIZE as u32, FilterType::Triangle)
    };
    let mut face = gray.into_raw();
    if contrast == Contrast::Equalize {
        equalize(&mut face);
    }
    face
}

/// The 48x48 face as [`to_face`] makes it from a photo in which the face's square crop is only
/// `side` pixels wide: `face` shrunk to `side` x `side` (each pixel the average of the area it
/// covers, as a camera's are) and enlarged back to 48x48 by `to_face`, with its `contrast` step.
/// A `side` of 48 or more is `to_face` of the face as it is; a slice that is not one 48x48 face
/// is returned unchanged. Training uses it to show the network small faces in photos and video
/// ([`crate::data::augment::AugmentConfig::low_res`]).
pub fn seen_at(face: &[u8], side: u32, contrast: Contrast) -> Vec<u8> {
    let Some(gray) = image::GrayImage::from_raw(FACE_SIZE as u32, FACE_SIZE as u32, face.to_vec()) else {
        return face.to_vec();
    };
    if side as usize >= FACE_SIZE {
        return to_face(&DynamicImage::ImageLuma8(gray), contrast);
    }
    let side = side.max(1);
    let small = image::imageops::resize(&gray, side, side, FilterType::Triangle);
    to_face(&DynamicImage::ImageLuma8(small), contrast)
}

/// Global histogram equalisation in place (OpenCV's `equalizeHist` mapping:
/// `round((cdf(v) - cdf_min) / (n - cdf_min) * 255)`); a flat image is left as it is.
pub fn equalize(pixels: &mut [u8]) {
    let mut hist = [0usize; 256];
    for &p in pixels.iter() {
        hist[p as usize] += 1;
    }
    let n = pixels.len();
    let cdf_min = hist.iter().copied().find(|&c| c > 0).unwrap_or(0);
    if n == cdf_min {
        return;
    }
    let mut lut = [0u8; 256];
    let mut cdf = 0usize;
    for (v, &h) in hist.iter().enumerate() {
        cdf += h;
        lut[v] = (((cdf.saturating_sub(cdf_min)) as f64 / (n - cdf_min) as f64) * 255.0).round() as u8;
    }
    for p in pixels.iter_mut() {
        *p = lut[*p as usize];
    }
}

/// Scale 8-bit pixels to the network's input range [0, 1].
#[inline]
pub fn normalize(p: u8) -> f32 {
    p as f32 * (1.0 / 255.0)
}

/// Normalise a batch of 8-bit faces (concatenated, `n * FACE_PIXELS` bytes) into `out`.
pub fn normalize_into(faces: &[u8], out: &mut Vec<f32>) {
    out.clear();
    out.extend(faces.iter().map(|&p| normalize(p)));
}

/// Build the (N, 1, 48, 48) input tensor from normalised pixels (`n * FACE_PIXELS` values).
pub fn batch_tensor(pixels: Vec<f32>, device: &Device) -> Tensor<4> {
    let n = pixels.len() / FACE_PIXELS;
    assert_eq!(n * FACE_PIXELS, pixels.len(), "batch is not a whole number of faces");
    Tensor::from_data(
        TensorData::new(pixels, [n, 1, FACE_SIZE, FACE_SIZE]),
        device,
    )
}

/// Build the input tensor straight from 8-bit faces.
pub fn faces_tensor(faces: &[u8], device: &Device) -> Tensor<4> {
    let mut buf = Vec::with_capacity(faces.len());
    normalize_into(faces, &mut buf);
    batch_tensor(buf, device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GrayImage, Rgb, RgbImage, Rgba, RgbaImage};

    #[test]
    fn any_image_becomes_48x48_gray() {
        let rgb = DynamicImage::ImageRgb8(RgbImage::from_pixel(100, 60, Rgb([255, 0, 0])));
        let face = to_face(&rgb, Contrast::Equalize);
        assert_eq!(face.len(), FACE_PIXELS);
        // Luma of pure red is about 54 (Rec. 709 weights).
        assert!(face.iter().all(|&p| (50..60).contains(&p)), "{}", face[0]);
        let rgba = DynamicImage::ImageRgba8(RgbaImage::from_pixel(10, 10, Rgba([9, 9, 9, 255])));
        assert!(to_face(&rgba, Contrast::Equalize).iter().all(|&p| p == 9));
        let img16 = DynamicImage::ImageLuma16(image::ImageBuffer::from_pixel(
            48,
            48,
            image::Luma([65535u16]),
        ));
        assert!(to_face(&img16, Contrast::Equalize).iter().all(|&p| p == 255));
    }

    #[test]
    fn a_48x48_equalised_image_is_passed_through_exactly() {
        let img = GrayImage::from_fn(48, 48, |x, y| image::Luma([(x * 5 + y) as u8]));
        let mut once = img.clone().into_raw();
        equalize(&mut once);
        let face = to_face(&DynamicImage::ImageLuma8(GrayImage::from_raw(48, 48, once.clone()).unwrap()), Contrast::Equalize);
        assert_eq!(face, once, "equalising is idempotent");
        let raw = to_face(&DynamicImage::ImageLuma8(img.clone()), Contrast::Raw);
        assert_eq!(raw, img.into_raw(), "raw passes a 48x48 image through");
    }

    #[test]
    fn a_face_seen_small_loses_detail_but_keeps_its_size_and_layout() {
        // Fine vertical stripes (2 px period) on the left half, flat grey on the right.
        let face: Vec<u8> = (0..FACE_PIXELS)
            .map(|i| {
                let x = i % FACE_SIZE;
                if x < 24 { if x.is_multiple_of(2) { 40 } else { 220 } } else { 130 }
            })
            .collect();
        let stripes = |f: &[u8]| (0..23).map(|x| (f[10 * FACE_SIZE + x] as i32 - f[10 * FACE_SIZE + x + 1] as i32).abs()).sum::<i32>();
        let raw = seen_at(&face, 48, Contrast::Raw);
        assert_eq!(raw, face, "a 48-pixel face is the face");
        let small = seen_at(&face, 20, Contrast::Raw);
        assert_eq!(small.len(), FACE_PIXELS);
        assert!(stripes(&small) * 4 < stripes(&face), "stripes finer than a pixel of the small face blur out");
        // The halves stay where they were: left averages to the stripes' mean, right stays grey.
        let mean = |f: &[u8], xs: std::ops::Range<usize>| {
            let v: Vec<u32> = (0..FACE_SIZE).flat_map(|y| xs.clone().map(move |x| (y, x))).map(|(y, x)| f[y * FACE_SIZE + x] as u32).collect();
            v.iter().sum::<u32>() / v.len() as u32
        };
        assert!((mean(&small, 2..20) as i32 - 130).abs() < 8, "{}", mean(&small, 2..20));
        assert!((mean(&small, 28..46) as i32 - 130).abs() < 3);
        // With equalisation the result is equalised as `to_face` leaves a photo's face.
        let mut expected = small.clone();
        equalize(&mut expected);
        assert_eq!(seen_at(&face, 20, Contrast::Equalize), expected);
        assert_eq!(seen_at(&face[..10], 20, Contrast::Raw), face[..10].to_vec());
    }

    #[test]
    fn equalisation_spreads_a_low_contrast_face_and_keeps_order() {
        // Values 100..=131 only: equalised they span 0..=255, order kept.
        let mut px: Vec<u8> = (0..FACE_PIXELS).map(|i| 100 + (i % 32) as u8).collect();
        let before = px.clone();
        equalize(&mut px);
        assert_eq!(*px.iter().min().unwrap(), 0);
        assert_eq!(*px.iter().max().unwrap(), 255);
        for (a, b) in before.iter().zip(&before[1..]).zip(px.iter().zip(&px[1..])) {
            assert_eq!((a.0 < a.1), (b.0 < b.1));
        }
        // A flat image is left alone.
        let mut flat = vec![77u8; FACE_PIXELS];
        equalize(&mut flat);
        assert!(flat.iter().all(|&p| p == 77));
    }

    #[test]
    fn batch_tensor_has_nchw_shape_and_unit_range() {
        let device = crate::device::inference_device();
        let faces = vec![255u8; 2 * FACE_PIXELS];
        let t = faces_tensor(&faces, &device);
        assert_eq!(t.dims(), [2, 1, 48, 48]);
        let max: f32 = t.max().into_scalar();
        assert!((max - 1.0).abs() < 1e-6);
    }
}
