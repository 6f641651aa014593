//! Image to 48x48 face tensor: the one preprocessing path shared by training, evaluation,
//! the CLI and the server.

use burn::tensor::{Device, Tensor, TensorData};
use image::{DynamicImage, imageops::FilterType};

/// Side of the square face crop every model sees.
pub const FACE_SIZE: usize = 48;
/// Pixels in one face crop.
pub const FACE_PIXELS: usize = FACE_SIZE * FACE_SIZE;

/// Convert any image (any size, colour type or bit depth) to a 48x48 8-bit grayscale face,
/// row-major. Images that are already 48x48 are not resampled.
pub fn to_face(img: &DynamicImage) -> Vec<u8> {
    let gray = img.to_luma8();
    let gray = if gray.width() as usize == FACE_SIZE && gray.height() as usize == FACE_SIZE {
        gray
    } else {
        image::imageops::resize(&gray, FACE_SIZE as u32, FACE_SIZE as u32, FilterType::Triangle)
    };
    gray.into_raw()
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
        let face = to_face(&rgb);
        assert_eq!(face.len(), FACE_PIXELS);
        // Luma of pure red is about 54 (Rec. 709 weights).
        assert!(face.iter().all(|&p| (50..60).contains(&p)), "{}", face[0]);
        let rgba = DynamicImage::ImageRgba8(RgbaImage::from_pixel(10, 10, Rgba([9, 9, 9, 255])));
        assert!(to_face(&rgba).iter().all(|&p| p == 9));
        let img16 = DynamicImage::ImageLuma16(image::ImageBuffer::from_pixel(
            48,
            48,
            image::Luma([65535u16]),
        ));
        assert!(to_face(&img16).iter().all(|&p| p == 255));
    }

    #[test]
    fn a_48x48_gray_image_is_passed_through_exactly() {
        let img = GrayImage::from_fn(48, 48, |x, y| image::Luma([(x * 5 + y) as u8]));
        let face = to_face(&DynamicImage::ImageLuma8(img.clone()));
        assert_eq!(face, img.into_raw());
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
