//! Training-time augmentation of 48x48 faces: dim and uneven light, low resolution, flip, shift,
//! rotation, zoom, random erasing.

use crate::data::preprocess::{Contrast, FACE_PIXELS, FACE_SIZE, normalize, seen_at};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// Which augmentations run, and how strongly. Every field can be switched off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AugmentConfig {
    /// Mirror left-right with probability 0.5 (the tutorials' augmentation).
    pub flip: bool,
    /// Largest random shift in pixels, each axis (0 = off). Equivalent to a random crop
    /// from a zero-padded image.
    pub shift: u32,
    /// Largest random rotation in degrees (0 = off).
    pub rotate_deg: f32,
    /// Largest random zoom as a fraction: the face is scaled by a factor in [1 - z, 1 + z]
    /// (0 = off).
    pub zoom: f32,
    /// Probability of erasing one random rectangle (0 = off).
    pub erase_prob: f32,
    /// Probability of seeing the face at a lower resolution first (0 = off): as a face whose
    /// crop is a random `low_res_min`-47 pixels wide in a photo or video frame comes out of the
    /// preprocessing ([`seen_at`]).
    pub low_res: f32,
    /// The smallest crop side of `low_res`, in pixels (the detector finds faces down to ~25 px,
    /// whose crops, grown by the margin, are ~33 px).
    pub low_res_min: u32,
    /// Probability of seeing the face in dim, uneven light first (0 = off): [`dim_light`], then
    /// the data set's contrast step, as a face filmed in a dark room comes out of the
    /// preprocessing (few grey levels, sensor noise, one side darker).
    pub light: f32,
}

/// The default smallest crop side of the low-resolution augmentation.
pub const LOW_RES_MIN: u32 = 24;

impl Default for AugmentConfig {
    fn default() -> Self {
        AugmentConfig {
            flip: true,
            shift: 0,
            rotate_deg: 0.0,
            zoom: 0.0,
            erase_prob: 0.0,
            low_res: 0.0,
            low_res_min: LOW_RES_MIN,
            light: 0.0,
        }
    }
}

impl AugmentConfig {
    /// No augmentation at all.
    pub fn none() -> Self {
        AugmentConfig {
            flip: false,
            shift: 0,
            rotate_deg: 0.0,
            zoom: 0.0,
            erase_prob: 0.0,
            low_res: 0.0,
            low_res_min: LOW_RES_MIN,
            light: 0.0,
        }
    }

    /// Whether any augmentation is enabled.
    pub fn is_identity(&self) -> bool {
        !self.flip && self.shift == 0 && self.rotate_deg == 0.0 && self.zoom == 0.0 && self.erase_prob == 0.0 && self.low_res == 0.0 && self.light == 0.0
    }

    /// Check the probabilities and ranges; the message names the setting.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..1.0).contains(&self.zoom) {
            return Err("zoom must be a fraction in [0, 1)".into());
        }
        if !(0.0..=180.0).contains(&self.rotate_deg) {
            return Err("rotation must be in [0, 180] degrees".into());
        }
        if self.shift as usize >= FACE_SIZE / 2 {
            return Err(format!("shift must be under {} pixels", FACE_SIZE / 2));
        }
        if !(0.0..=1.0).contains(&self.erase_prob) {
            return Err("erasing probability must be in [0, 1]".into());
        }
        if !(0.0..=1.0).contains(&self.low_res) {
            return Err("low-resolution probability must be in [0, 1]".into());
        }
        if !(0.0..=1.0).contains(&self.light) {
            return Err("dim-light probability must be in [0, 1]".into());
        }
        if !(8..FACE_SIZE as u32).contains(&self.low_res_min) {
            return Err(format!("low-resolution smallest side must be in 8..{FACE_SIZE} pixels"));
        }
        Ok(())
    }
}

/// Write one augmented, normalised face (`FACE_PIXELS` values) into `out`.
///
/// Dim light comes first, then the low-resolution view (each with the data set's `contrast`
/// step, as the preprocessing gives such a face); flip, shift, rotation and zoom are one inverse affine map
/// sampled bilinearly (outside pixels are 0); erasing then fills a rectangle of 2-20% of the
/// area with uniform noise.
pub fn augment_into(src: &[u8], out: &mut [f32], cfg: &AugmentConfig, contrast: Contrast, rng: &mut impl Rng) {
    debug_assert_eq!(src.len(), FACE_PIXELS);
    debug_assert_eq!(out.len(), FACE_PIXELS);
    let dim;
    let src = if cfg.light > 0.0 && rng.random_bool(cfg.light.clamp(0.0, 1.0) as f64) {
        dim = dim_light(src, contrast, rng);
        &dim[..]
    } else {
        src
    };
    let small;
    let src = if cfg.low_res > 0.0 && rng.random_bool(cfg.low_res.clamp(0.0, 1.0) as f64) {
        let side = rng.random_range(cfg.low_res_min.min(FACE_SIZE as u32 - 1)..FACE_SIZE as u32);
        small = seen_at(src, side, contrast);
        &small[..]
    } else {
        src
    };
    let flip = cfg.flip && rng.random_bool(0.5);
    let (dx, dy) = if cfg.shift > 0 {
        let s = cfg.shift as i32;
        (rng.random_range(-s..=s) as f32, rng.random_range(-s..=s) as f32)
    } else {
        (0.0, 0.0)
    };
    let angle = if cfg.rotate_deg > 0.0 {
        rng.random_range(-cfg.rotate_deg..=cfg.rotate_deg).to_radians()
    } else {
        0.0
    };
    let zoom = if cfg.zoom > 0.0 {
        let z = cfg.zoom.min(0.9);
        rng.random_range(1.0 - z..=1.0 + z)
    } else {
        1.0
    };
    let n = FACE_SIZE;
    if angle == 0.0 && zoom == 1.0 {
        // Integer shift and flip: exact copies, no resampling.
        let (dx, dy) = (dx as i32, dy as i32);
        for y in 0..n as i32 {
            let sy = y - dy;
            for x in 0..n as i32 {
                let mut sx = x - dx;
                if flip {
                    sx = n as i32 - 1 - sx;
                }
                let v = if (0..n as i32).contains(&sx) && (0..n as i32).contains(&sy) {
                    normalize(src[sy as usize * n + sx as usize])
                } else {
                    0.0
                };
                out[y as usize * n + x as usize] = v;
            }
        }
    } else {
        warp_into(src, flip, (dx, dy), angle, zoom, |i, v| out[i] = v * (1.0 / 255.0));
    }
    if cfg.erase_prob > 0.0 && rng.random_bool(cfg.erase_prob.clamp(0.0, 1.0) as f64) {
        let area = rng.random_range(0.02..0.2) * (n * n) as f32;
        let aspect = rng.random_range(0.3f32..3.3);
        let h = ((area * aspect).sqrt().round() as usize).clamp(1, n);
        let w = ((area / aspect).sqrt().round() as usize).clamp(1, n);
        let y0 = rng.random_range(0..=n - h);
        let x0 = rng.random_range(0..=n - w);
        for y in y0..y0 + h {
            for v in &mut out[y * n + x0..y * n + x0 + w] {
                *v = rng.random::<f32>();
            }
        }
    }
}

/// A face as a dim, unevenly lit room gives it, after the `contrast` step: the light falls to a
/// random 8-50% overall and, along a random direction, to 30-100% of that on the far side; the
/// sensor adds noise (1-4 grey levels) and the few grey levels left are rounded to whole values.
/// With histogram equalisation the face is spread over the full range again, its noise and
/// banding with it, as the preprocessing does to a dark face.
pub fn dim_light(src: &[u8], contrast: Contrast, rng: &mut impl Rng) -> Vec<u8> {
    let n = FACE_SIZE as f32;
    let level = rng.random_range(0.08f32..0.5);
    let far = rng.random_range(0.3f32..=1.0);
    let (dir_s, dir_c) = rng.random_range(0.0f32..std::f32::consts::TAU).sin_cos();
    let sigma = rng.random_range(1.0f32..4.0);
    let normal = rand_distr::Normal::new(0.0f32, sigma).expect("a positive deviation");
    let c = (n - 1.0) / 2.0;
    let reach = c * std::f32::consts::SQRT_2;
    let lit: Vec<u8> = src
        .iter()
        .enumerate()
        .map(|(i, &p)| {
            let (x, y) = ((i % FACE_SIZE) as f32 - c, (i / FACE_SIZE) as f32 - c);
            // 0 on the lit side, 1 on the far side.
            let t = ((x * dir_c + y * dir_s) / reach + 1.0) / 2.0;
            let gain = level * (1.0 - t * (1.0 - far));
            (p as f32 * gain + rng.sample(normal)).round().clamp(0.0, 255.0) as u8
        })
        .collect();
    let Some(gray) = image::GrayImage::from_raw(FACE_SIZE as u32, FACE_SIZE as u32, lit.clone()) else {
        return lit;
    };
    crate::data::preprocess::to_face(&image::DynamicImage::ImageLuma8(gray), contrast)
}

/// Flip, shift `(dx, dy)`, rotation (`angle`, radians) and zoom about the face's centre as one
/// inverse map: each output pixel is sampled bilinearly from `src` (pixels outside the face are
/// 0) and handed to `put(index, value)` in the source's units (0-255). The training
/// augmentation and the test-time warps (`evaluate::warp_faces`) share it.
pub(crate) fn warp_into(src: &[u8], flip: bool, (dx, dy): (f32, f32), angle: f32, zoom: f32, mut put: impl FnMut(usize, f32)) {
    let n = FACE_SIZE;
    let c = (n as f32 - 1.0) / 2.0;
    let (sin, cos) = angle.sin_cos();
    for y in 0..n {
        for x in 0..n {
            // Output pixel -> source pixel: undo shift, zoom, rotation, then flip.
            let ux = (x as f32 - dx - c) / zoom;
            let uy = (y as f32 - dy - c) / zoom;
            let mut sx = cos * ux + sin * uy + c;
            let sy = -sin * ux + cos * uy + c;
            if flip {
                sx = n as f32 - 1.0 - sx;
            }
            put(y * n + x, bilinear(src, sx, sy));
        }
    }
}

fn bilinear(src: &[u8], x: f32, y: f32) -> f32 {
    let n = FACE_SIZE as i32;
    let x0 = x.floor();
    let y0 = y.floor();
    let (fx, fy) = (x - x0, y - y0);
    let (x0, y0) = (x0 as i32, y0 as i32);
    let px = |xx: i32, yy: i32| -> f32 {
        if xx >= 0 && xx < n && yy >= 0 && yy < n {
            src[(yy * n + xx) as usize] as f32
        } else {
            0.0
        }
    };
    let top = px(x0, y0) * (1.0 - fx) + px(x0 + 1, y0) * fx;
    let bottom = px(x0, y0 + 1) * (1.0 - fx) + px(x0 + 1, y0 + 1) * fx;
    top * (1.0 - fy) + bottom * fy
}

#[cfg(test)]
mod tests {
    #[test]
    fn zoom_in_magnifies_the_centre() {
        // A bright 8x8 centre square on black grows when zoomed in, shrinks when zoomed out.
        let mut src = vec![0u8; FACE_PIXELS];
        for y in 20..28 {
            for x in 20..28 {
                src[y * FACE_SIZE + x] = 255;
            }
        }
        let cfg = AugmentConfig {
            zoom: 0.4,
            ..AugmentConfig::none()
        };
        let mut rng = StdRng::seed_from_u64(5);
        let (mut bigger, mut smaller) = (false, false);
        for _ in 0..40 {
            let mut out = vec![0.0; FACE_PIXELS];
            augment_into(&src, &mut out, &cfg, Contrast::Raw, &mut rng);
            let mass: f32 = out.iter().sum();
            bigger |= mass > 64.0 * 1.3;
            smaller |= mass < 64.0 * 0.8;
            assert!(mass > 64.0 * 0.25 && mass < 64.0 * 2.2, "{mass}");
        }
        assert!(bigger && smaller);
    }

    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn ramp() -> Vec<u8> {
        (0..FACE_PIXELS).map(|i| ((i % FACE_SIZE) * 5) as u8).collect()
    }

    #[test]
    fn identity_config_only_normalises() {
        let src = ramp();
        let mut out = vec![0.0; FACE_PIXELS];
        augment_into(&src, &mut out, &AugmentConfig::none(), Contrast::Raw, &mut StdRng::seed_from_u64(1));
        for (o, s) in out.iter().zip(&src) {
            assert_eq!(*o, normalize(*s));
        }
    }

    #[test]
    fn flip_mirrors_rows_and_twice_is_identity() {
        let src = ramp();
        let cfg = AugmentConfig {
            flip: true,
            ..AugmentConfig::none()
        };
        let mut rng = StdRng::seed_from_u64(7);
        let mut seen_flip = false;
        for _ in 0..20 {
            let mut out = vec![0.0; FACE_PIXELS];
            augment_into(&src, &mut out, &cfg, Contrast::Raw, &mut rng);
            let flipped = (0..FACE_SIZE).all(|x| out[x] == normalize(src[FACE_SIZE - 1 - x]));
            let same = (0..FACE_SIZE).all(|x| out[x] == normalize(src[x]));
            assert!(flipped || same);
            seen_flip |= flipped;
            // Every row is a permutation of the source row: no value is invented.
            let mut a: Vec<_> = out[..FACE_SIZE].to_vec();
            let mut b: Vec<_> = src[..FACE_SIZE].iter().map(|&p| normalize(p)).collect();
            a.sort_by(f32::total_cmp);
            b.sort_by(f32::total_cmp);
            assert_eq!(a, b);
        }
        assert!(seen_flip);
    }

    #[test]
    fn shift_moves_content_and_pads_with_zero() {
        let src = vec![200u8; FACE_PIXELS];
        let cfg = AugmentConfig {
            shift: 4,
            ..AugmentConfig::none()
        };
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..20 {
            let mut out = vec![0.0; FACE_PIXELS];
            augment_into(&src, &mut out, &cfg, Contrast::Raw, &mut rng);
            let kept = out.iter().filter(|&&v| v > 0.0).count();
            // At most 4 rows and 4 columns are lost.
            assert!(kept >= 44 * 44, "{kept}");
            assert!(out.iter().all(|&v| v == 0.0 || v == normalize(200)));
        }
    }

    #[test]
    fn low_resolution_views_blur_some_faces_and_are_checked() {
        // A checkerboard of single pixels: any view below 48 pixels averages it towards grey.
        let src: Vec<u8> = (0..FACE_PIXELS).map(|i| if (i % FACE_SIZE + i / FACE_SIZE).is_multiple_of(2) { 0 } else { 250 }).collect();
        let cfg = AugmentConfig {
            low_res: 0.5,
            ..AugmentConfig::none()
        };
        let mut rng = StdRng::seed_from_u64(9);
        let (mut sharp, mut blurred) = (0, 0);
        for _ in 0..100 {
            let mut out = vec![0.0; FACE_PIXELS];
            augment_into(&src, &mut out, &cfg, Contrast::Raw, &mut rng);
            if out.iter().zip(&src).all(|(o, s)| *o == normalize(*s)) {
                sharp += 1;
            } else {
                // Shrunk to 24-47 pixels, the single-pixel pattern is mostly gone.
                let spread = out.iter().map(|v| (v - 0.49).abs()).sum::<f32>() / FACE_PIXELS as f32;
                assert!(spread < 0.35, "{spread}");
                blurred += 1;
            }
        }
        assert!((30..70).contains(&sharp) && sharp + blurred == 100, "{sharp} {blurred}");
        assert!(AugmentConfig { low_res: 1.5, ..cfg.clone() }.validate().unwrap_err().contains("low-resolution"));
        assert!(AugmentConfig { low_res_min: 48, ..cfg.clone() }.validate().is_err());
        assert!(cfg.validate().is_ok() && !cfg.is_identity());
    }

    #[test]
    fn rotation_and_erasing_stay_in_range_and_are_seeded() {
        let src = ramp();
        let cfg = AugmentConfig {
            flip: true,
            shift: 3,
            rotate_deg: 15.0,
            zoom: 0.15,
            erase_prob: 1.0,
            low_res: 0.5,
            low_res_min: LOW_RES_MIN,
            light: 0.5,
        };
        let run = |seed| {
            let mut out = vec![0.0; FACE_PIXELS];
            augment_into(&src, &mut out, &cfg, Contrast::Raw, &mut StdRng::seed_from_u64(seed));
            out
        };
        let a = run(11);
        assert_eq!(a, run(11));
        assert_ne!(a, run(12));
        assert!(a.iter().all(|v| (0.0..=1.0).contains(v)));
    }

    #[test]
    fn dim_light_darkens_unevenly_and_equalisation_brings_the_range_back() {
        let src = ramp();
        let mut rng = StdRng::seed_from_u64(21);
        for _ in 0..20 {
            // Raw contrast: the face stays dark (at most half its light) and noisy.
            let raw = dim_light(&src, Contrast::Raw, &mut rng);
            let mean = |f: &[u8]| f.iter().map(|&v| v as f32).sum::<f32>() / f.len() as f32;
            assert!(mean(&raw) < 0.55 * mean(&src), "{} vs {}", mean(&raw), mean(&src));
            // Equalised: the full range again, but not the face as it was.
            let eq = dim_light(&src, Contrast::Equalize, &mut rng);
            assert_eq!((eq.iter().min(), eq.iter().max()), (Some(&0), Some(&255)));
            assert_ne!(eq, seen_at(&src, 48, Contrast::Equalize));
        }
        let cfg = AugmentConfig {
            light: 1.0,
            ..AugmentConfig::none()
        };
        let mut out = vec![0.0; FACE_PIXELS];
        augment_into(&src, &mut out, &cfg, Contrast::Raw, &mut rng);
        assert!(out.iter().zip(&src).any(|(o, s)| *o != normalize(*s)));
        assert!(AugmentConfig { light: 1.5, ..cfg.clone() }.validate().unwrap_err().contains("dim-light"));
        assert!(cfg.validate().is_ok() && !cfg.is_identity());
    }
}
