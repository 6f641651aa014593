//! Batched inference: class probabilities for faces, test-time augmentation, prior correction.

use crate::emotion::Emotion;
use crate::model::Network;
use crate::data::preprocess::{FACE_PIXELS, faces_tensor};
use burn::tensor::activation::softmax;
use burn::tensor::Device;

/// Batch size used for inference over data sets.
pub const EVAL_BATCH: usize = 256;

/// Class probabilities for each face (`faces.len() / FACE_PIXELS` rows), in `Emotion` order.
/// `net` should be in inference mode (`Module::valid`).
pub fn predict_probs(net: &Network, faces: &[u8], device: &Device) -> Vec<[f32; Emotion::COUNT]> {
    let mut out = Vec::with_capacity(faces.len() / FACE_PIXELS);
    for chunk in faces.chunks(EVAL_BATCH * FACE_PIXELS) {
        let x = faces_tensor(chunk, device);
        let probs = softmax(net.forward(x), 1)
            .into_data()
            .try_into_vec::<f32>()
            .expect("model output is f32");
        for row in probs.chunks_exact(Emotion::COUNT) {
            let mut p = [0.0; Emotion::COUNT];
            p.copy_from_slice(row);
            out.push(p);
        }
    }
    out
}

/// Test-time augmentation: average the probabilities of transformed copies of each face.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Tta {
    /// The face as is.
    #[default]
    None,
    /// The face and its mirror image.
    Flip,
    /// Ten views, the 48-pixel counterpart of ten-crop testing: the face and its mirror, each
    /// as is and shifted by 2 pixels towards the four corners (zero padded).
    Ten,
    /// Thirty views: `Ten`'s views of the face as is, shrunk to 0.9 and enlarged to 1.1 times
    /// its size about the centre (the training augmentation's zoom range).
    Thirty,
    /// Ninety views: `Thirty`'s views of the face as is and turned 5 degrees either way.
    Ninety,
}

impl Tta {
    /// The views this mode averages: (mirror, dx, dy).
    pub fn views(self) -> Vec<(bool, i32, i32)> {
        let shifts: &[(i32, i32)] = match self {
            Tta::None | Tta::Flip => &[(0, 0)],
            Tta::Ten | Tta::Thirty | Tta::Ninety => &[(0, 0), (-2, -2), (2, -2), (-2, 2), (2, 2)],
        };
        let mirrors: &[bool] = if self == Tta::None { &[false] } else { &[false, true] };
        mirrors
            .iter()
            .flat_map(|&m| shifts.iter().map(move |&(dx, dy)| (m, dx, dy)))
            .collect()
    }

    /// Warps applied to the face before `views()`, as (rotation in degrees, zoom factor):
    /// every view is taken of every warped copy ((0, 1) = the face as is).
    pub fn warps(self) -> &'static [(f32, f32)] {
        match self {
            Tta::Thirty => &[(0.0, 1.0), (0.0, 0.9), (0.0, 1.1)],
            Tta::Ninety => &[(0.0, 1.0), (0.0, 0.9), (0.0, 1.1), (-5.0, 1.0), (-5.0, 0.9), (-5.0, 1.1), (5.0, 1.0), (5.0, 0.9), (5.0, 1.1)],
            _ => &[(0.0, 1.0)],
        }
    }

    /// How many views are averaged.
    pub fn view_count(self) -> usize {
        self.views().len() * self.warps().len()
    }
}

/// Rotate every 48x48 face by `degrees` (positive: clockwise as displayed) and scale it by
/// `zoom` (above 1 enlarges) about its centre, sampling bilinearly; pixels from outside the face
/// become 0 (black). The training augmentation's map, without its flip and shift.
pub fn warp_faces(faces: &[u8], degrees: f32, zoom: f32) -> Vec<u8> {
    if degrees == 0.0 && zoom == 1.0 {
        return faces.to_vec();
    }
    let mut out = vec![0u8; faces.len()];
    for (src, dst) in faces.chunks_exact(FACE_PIXELS).zip(out.chunks_exact_mut(FACE_PIXELS)) {
        crate::data::augment::warp_into(src, false, (0.0, 0.0), degrees.to_radians(), zoom, |i, v| {
            dst[i] = v.round().clamp(0.0, 255.0) as u8
        });
    }
    out
}

/// Shift every 48x48 face by (dx, dy) pixels; uncovered pixels become 0 (black), as in the
/// training-time shift augmentation.
pub fn shift_faces(faces: &[u8], dx: i32, dy: i32) -> Vec<u8> {
    let n = crate::data::preprocess::FACE_SIZE as i32;
    let mut out = vec![0u8; faces.len()];
    for (src, dst) in faces.chunks_exact(FACE_PIXELS).zip(out.chunks_exact_mut(FACE_PIXELS)) {
        for y in 0..n {
            let sy = y - dy;
            if !(0..n).contains(&sy) {
                continue;
            }
            for x in 0..n {
                let sx = x - dx;
                if (0..n).contains(&sx) {
                    dst[(y * n + x) as usize] = src[(sy * n + sx) as usize];
                }
            }
        }
    }
    out
}

/// Mirror every 48x48 face left-right.
pub fn mirror_faces(faces: &[u8]) -> Vec<u8> {
    let n = crate::data::preprocess::FACE_SIZE;
    let mut out = faces.to_vec();
    for row in out.chunks_exact_mut(n) {
        row.reverse();
    }
    out
}

/// [`predict_probs`] with test-time augmentation.
pub fn predict_probs_tta(net: &Network, faces: &[u8], device: &Device, tta: Tta) -> Vec<[f32; Emotion::COUNT]> {
    let ok: Result<_, std::convert::Infallible> = average_views(faces, tta, |batch| Ok(predict_probs(net, batch, device)));
    ok.unwrap_or_else(|never| match never {})
}

/// Test-time augmentation around any batch classifier: `probs` maps faces
/// (`n * FACE_PIXELS` bytes) to their probabilities; the views of `tta` are averaged.
pub fn average_views<F, E>(faces: &[u8], tta: Tta, mut probs: F) -> Result<Vec<[f32; Emotion::COUNT]>, E>
where
    F: FnMut(&[u8]) -> Result<Vec<[f32; Emotion::COUNT]>, E>,
{
    let views = tta.views();
    let mut sum = vec![[0.0f32; Emotion::COUNT]; faces.len() / FACE_PIXELS];
    for &(degrees, zoom) in tta.warps() {
        let warped;
        let upright = if (degrees, zoom) == (0.0, 1.0) {
            faces
        } else {
            warped = warp_faces(faces, degrees, zoom);
            &warped[..]
        };
        let mirrored = if views.iter().any(|v| v.0) { mirror_faces(upright) } else { Vec::new() };
        for &(mirror, dx, dy) in &views {
            let base = if mirror { &mirrored[..] } else { upright };
            let p = if (dx, dy) == (0, 0) { probs(base)? } else { probs(&shift_faces(base, dx, dy))? };
            for (s, p) in sum.iter_mut().zip(&p) {
                for (a, b) in s.iter_mut().zip(p) {
                    *a += b;
                }
            }
        }
    }
    let k = tta.view_count() as f32;
    for s in &mut sum {
        for a in s.iter_mut() {
            *a /= k;
        }
    }
    Ok(sum)
}

/// The class priors a model file records (`meta.class_priors`: the mean training target).
pub fn class_priors(header: &crate::model::file::ModelHeader) -> Option<[f64; Emotion::COUNT]> {
    header.meta.class_priors
}

/// Prior correction (post-hoc logit adjustment, Menon et al. 2021): add `-tau * ln(prior_k)`
/// to each class's logit, so that probabilities become `p_k / prior_k^tau` renormalised.
/// `tau = 1` decides as if training had been class-balanced; 0 changes nothing; a negative tau
/// undoes a correction a model file already has. The shift is
/// folded into the classifier's bias, so every path (burn, ONNX, tract) sees it; the header's
/// `meta.prior_correction` records the total tau applied.
pub fn correct_priors(
    net: Network,
    mut header: crate::model::file::ModelHeader,
    tau: f32,
) -> crate::Result<(Network, crate::model::file::ModelHeader)> {
    if tau == 0.0 {
        return Ok((net, header));
    }
    if !tau.is_finite() || !(-2.0..=2.0).contains(&tau) {
        return Err(crate::Error::Config(format!("prior correction must be in [-2, 2], got {tau}")));
    }
    let priors = class_priors(&header).ok_or_else(|| {
        crate::Error::Model("the model records no class priors (meta.class_priors); retrain or export it with ferrite >= 0.1 training".into())
    })?;
    let offset = priors.map(|p| -(tau as f64 * p.max(1e-6).ln()) as f32);
    let total = header.meta.prior_correction + tau as f64;
    header.meta.prior_correction = if total.abs() < 1e-6 { 0.0 } else { total };
    Ok((net.shift_logits(&offset), header))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::preprocess::FACE_PIXELS;

    #[test]
    fn mirror_reverses_each_row_and_is_an_involution() {
        let faces: Vec<u8> = (0..2 * FACE_PIXELS).map(|i| (i % 251) as u8).collect();
        let m = mirror_faces(&faces);
        assert_eq!(m[0], faces[47]);
        assert_eq!(m[FACE_PIXELS + 48], faces[FACE_PIXELS + 95]);
        assert_eq!(mirror_faces(&m), faces);
    }

    #[test]
    fn prior_correction_divides_by_the_priors_and_renormalises() {
        let _rng = crate::rng_lock();
        let device = crate::device::inference_device();
        let mut spec = crate::model::ModelSpec::new(crate::model::Arch::Compact);
        spec.width = Some(4);
        let net = burn::module::Module::valid(&Network::new(&spec, &device));
        let priors = [0.1, 0.02, 0.1, 0.25, 0.3, 0.13, 0.1];
        let header = crate::model::file::ModelHeader::new(spec.clone(), crate::model::meta::ModelMeta { class_priors: Some(priors), ..Default::default() });
        let faces: Vec<u8> = (0..2 * FACE_PIXELS).map(|i| (i * 13 % 256) as u8).collect();
        let before = predict_probs(&net, &faces, &device);
        let (fixed, h) = correct_priors(net, header.clone(), 1.0).unwrap();
        let after = predict_probs(&fixed, &faces, &device);
        for (b, a) in before.iter().zip(&after) {
            let z: f64 = b.iter().zip(&priors).map(|(p, q)| *p as f64 / q).sum();
            for k in 0..Emotion::COUNT {
                let want = b[k] as f64 / priors[k] / z;
                assert!((a[k] as f64 - want).abs() < 1e-5, "class {k}: {} vs {want}", a[k]);
            }
        }
        assert_eq!(h.meta.prior_correction, 1.0);
        // Half the correction twice is the whole; none is the identity; no priors is an error.
        let (half, h2) = correct_priors(fixed.clone(), header.clone(), 0.0).unwrap();
        assert_eq!(predict_probs(&half, &faces, &device), after);
        assert_eq!(h2.meta.prior_correction, 0.0);
        let bare = crate::model::file::ModelHeader::new(spec, Default::default());
        assert!(correct_priors(fixed, bare, 0.5).unwrap_err().to_string().contains("class priors"));
    }

    #[test]
    fn flip_tta_averages_two_views() {
        let _rng = crate::rng_lock();
        let device = crate::device::inference_device();
        let net = Network::new(&crate::model::ModelSpec::new(crate::model::Arch::Reference), &device);
        let net = burn::module::Module::valid(&net);
        let faces: Vec<u8> = (0..FACE_PIXELS).map(|i| (i * 7 % 256) as u8).collect();
        let a = predict_probs(&net, &faces, &device)[0];
        let b = predict_probs(&net, &mirror_faces(&faces), &device)[0];
        let t = predict_probs_tta(&net, &faces, &device, Tta::Flip)[0];
        for k in 0..Emotion::COUNT {
            assert!((t[k] - 0.5 * (a[k] + b[k])).abs() < 1e-6);
        }
        assert!((t.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }

    /// Thirty views: ten views of the face as is, zoomed to 0.9 and to 1.1, averaged; ninety:
    /// those thirty of the face as is and turned by -5 and +5 degrees.
    #[test]
    fn thirty_and_ninety_view_tta_average_ten_views_of_each_warp() {
        let _rng = crate::rng_lock();
        let device = crate::device::inference_device();
        let mut spec = crate::model::ModelSpec::new(crate::model::Arch::Compact);
        spec.width = Some(4);
        let net = burn::module::Module::valid(&Network::new(&spec, &device));
        let faces: Vec<u8> = (0..2 * FACE_PIXELS).map(|i| (i * 7 % 256) as u8).collect();
        for (tta, turns, count) in [(Tta::Thirty, &[0.0][..], 30), (Tta::Ninety, &[0.0, -5.0, 5.0][..], 90)] {
            assert_eq!(tta.view_count(), count);
            let warps = (turns.len() * 3) as f32;
            let mut want = [[0.0f32; Emotion::COUNT]; 2];
            for &degrees in turns {
                for zoom in [1.0, 0.9, 1.1] {
                    let ten = predict_probs_tta(&net, &warp_faces(&faces, degrees, zoom), &device, Tta::Ten);
                    for (w, t) in want.iter_mut().zip(&ten) {
                        for (a, b) in w.iter_mut().zip(t) {
                            *a += b / warps;
                        }
                    }
                }
            }
            let got = predict_probs_tta(&net, &faces, &device, tta);
            for (w, g) in want.iter().zip(&got) {
                for (a, b) in w.iter().zip(g) {
                    assert!((a - b).abs() < 1e-5, "{tta:?}: {w:?} vs {g:?}");
                }
            }
        }
    }

    #[test]
    fn warps_turn_and_scale_about_the_centre_and_pad_with_black() {
        let r: Vec<u8> = (0..FACE_PIXELS).map(|i| (i % 251) as u8).collect();
        assert_eq!(warp_faces(&r, 0.0, 1.0), r);
        // A quarter turn moves pixels exactly: output (x, y) reads source (y, 47 - x).
        let q = warp_faces(&r, 90.0, 1.0);
        for (x, y) in [(0, 0), (5, 40), (47, 3)] {
            assert_eq!(q[y * 48 + x], r[(47 - x) * 48 + y], "({x}, {y})");
        }
        // Four quarter turns give the face back.
        assert_eq!(warp_faces(&warp_faces(&q, 90.0, 1.0), 180.0, 1.0), r);
        // Ten degrees or a zoom of 0.9 of a uniform face: the centre keeps its value, the
        // corners come from outside the face (black); a zoom of 1.1 reads only inside it.
        let grey = vec![100u8; FACE_PIXELS];
        for t in [warp_faces(&grey, 10.0, 1.0), warp_faces(&grey, 0.0, 0.9)] {
            assert_eq!(t[24 * 48 + 24], 100);
            assert_eq!(t[0], 0);
            assert_eq!(t[FACE_PIXELS - 1], 0);
        }
        assert_eq!(warp_faces(&grey, 0.0, 1.1), grey);
        // Zoom 2 about the centre (23.5, 23.5): output (x, y) reads source ((x + 23.5) / 2, ...),
        // so output (1, 1) reads (12.25, 12.25), between source pixels 12 and 13.
        let ramp: Vec<u8> = (0..FACE_PIXELS).map(|i| (i % 48 * 5) as u8).collect();
        let z = warp_faces(&ramp, 0.0, 2.0);
        assert_eq!(z[48 + 1], (12.25f32 * 5.0).round() as u8);
    }

    #[test]
    fn ten_view_tta_has_ten_distinct_views_and_shifts_pad_with_black() {
        let views = Tta::Ten.views();
        assert_eq!(views.len(), 10);
        let mut uniq = views.clone();
        uniq.sort();
        uniq.dedup();
        assert_eq!(uniq.len(), 10);
        assert_eq!(Tta::None.views(), vec![(false, 0, 0)]);
        let faces = vec![9u8; FACE_PIXELS];
        let s = shift_faces(&faces, 2, -2);
        // Moved right by 2 and up by 2: the first 2 columns and last 2 rows are black.
        assert_eq!(s[48 * 10], 0);
        assert_eq!(s[48 * 10 + 2], 9);
        assert_eq!(s[48 * 46 + 10], 0);
        assert_eq!(s[48 * 45 + 10], 9);
        assert_eq!(s.iter().filter(|&&v| v == 9).count(), 46 * 46);
        let r: Vec<u8> = (0..FACE_PIXELS).map(|i| (i % 200) as u8).collect();
        assert_eq!(shift_faces(&r, 0, 0), r);
        assert_eq!(shift_faces(&shift_faces(&r, 1, 0), -1, 0)[..47], r[..47]);
    }
}
