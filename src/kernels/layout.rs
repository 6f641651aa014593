//! Channels-last <-> planar copies of images for the Winograd tile transforms, with AVX-512
//! gather instantiations reached through the `Isa` token.

use super::cpu::Isa;

/// Channel vectors are transformed this many lanes at a time (one AVX-512 register); the
/// channels-last buffers round their channel stride up to a whole number of lane blocks (the
/// extra lanes hold zeros), so every step is a whole fixed-size block.
pub(crate) const LANES: usize = 16;

/// Copies one image `x` (C, H, W) into a channels-last buffer: pixel (y, x) of channel c goes
/// to `out[row(y) + x * stride + c]`, where `stride` is a whole number of lane blocks and every
/// row holds W pixels.
#[allow(clippy::too_many_arguments)]
pub(crate) fn to_channels_last(isa: Isa, x: &[f32], c_in: usize, h: usize, w: usize, row: impl Fn(usize) -> usize, stride: usize, out: &mut [f32]) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: an `Avx512` token exists only where its check found the features
        // `to_channels_last_wide` is compiled for.
        Isa::Avx512(_) => unsafe { to_channels_last_wide(x, c_in, h, w, row, stride, out) },
        _ => to_channels_last_scalar(x, c_in, h, w, row, stride, out),
    }
}

/// [`to_channels_last`], one value at a time.
fn to_channels_last_scalar(x: &[f32], c_in: usize, h: usize, w: usize, row: impl Fn(usize) -> usize, stride: usize, out: &mut [f32]) {
    let plane = h * w;
    for y in 0..h {
        let r = row(y);
        for xx in 0..w {
            let dst = &mut out[r + xx * stride..][..c_in];
            for (c, d) in dst.iter_mut().enumerate() {
                *d = x[c * plane + y * w + xx];
            }
        }
    }
}

/// [`to_channels_last`] with AVX-512 gathers: 16 channels of a pixel per instruction (the
/// scalar copy is one load and one store per value); lanes beyond C are written as zeros.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn to_channels_last_wide(x: &[f32], c_in: usize, h: usize, w: usize, row: impl Fn(usize) -> usize, stride: usize, out: &mut [f32]) {
    use std::arch::x86_64::*;
    let plane = h * w;
    assert!(x.len() >= c_in * plane && stride.is_multiple_of(LANES) && stride >= c_in && plane * LANES < i32::MAX as usize);
    let lane_offsets = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), _mm512_set1_epi32(plane as i32));
    for y in 0..h {
        let dst = &mut out[row(y)..][..w * stride];
        for xx in 0..w {
            for c0 in (0..c_in).step_by(LANES) {
                let mask: __mmask16 = if c_in - c0 >= LANES { 0xffff } else { (1u16 << (c_in - c0)) - 1 };
                // SAFETY: lane l (< C - c0 where the mask is set) reads x[(c0 + l) * plane + y * W
                // + xx], inside `x` (asserted length); the store writes dst[xx * stride + c0..][..16],
                // inside `dst` as c0 + 16 <= stride.
                unsafe {
                    let v = _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), mask, lane_offsets, x.as_ptr().add(c0 * plane + y * w + xx));
                    _mm512_storeu_ps(dst.as_mut_ptr().add(xx * stride + c0), v);
                }
            }
        }
    }
}

/// The reverse of [`to_channels_last`] for one image: dst[c * plane + p] = src[p * stride + c]
/// for channels c < C and pixels p < plane.
pub(crate) fn to_planar(isa: Isa, src: &[f32], stride: usize, c_out: usize, plane: usize, dst: &mut [f32]) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: an `Avx512` token exists only where its check found the features
        // `to_planar_wide` is compiled for.
        Isa::Avx512(_) => unsafe { to_planar_wide(src, stride, c_out, plane, dst) },
        _ => to_planar_scalar(src, stride, c_out, plane, dst),
    }
}

/// [`to_planar`], one value at a time.
fn to_planar_scalar(src: &[f32], stride: usize, c_out: usize, plane: usize, dst: &mut [f32]) {
    // Channel by channel: contiguous stores, strided loads (cheaper than the reverse).
    for (o, out) in dst[..c_out * plane].chunks_exact_mut(plane).enumerate() {
        for (p, val) in out.iter_mut().enumerate() {
            *val = src[p * stride + o];
        }
    }
}

/// [`to_planar`] with AVX-512 gathers, 16 pixels of a channel per instruction.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn to_planar_wide(src: &[f32], stride: usize, c_out: usize, plane: usize, dst: &mut [f32]) {
    use std::arch::x86_64::*;
    assert!(src.len() >= plane * stride && stride >= c_out && dst.len() >= c_out * plane && stride * LANES < i32::MAX as usize);
    let lane_offsets = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), _mm512_set1_epi32(stride as i32));
    for o in 0..c_out {
        for p0 in (0..plane).step_by(LANES) {
            let mask: __mmask16 = if plane - p0 >= LANES { 0xffff } else { (1u16 << (plane - p0)) - 1 };
            // SAFETY: lane l (< plane - p0 where the mask is set) reads src[(p0 + l) * stride +
            // o] and writes dst[o * plane + p0 + l], inside both (asserted lengths).
            unsafe {
                let v = _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), mask, lane_offsets, src.as_ptr().add(p0 * stride + o));
                _mm512_mask_storeu_ps(dst.as_mut_ptr().add(o * plane + p0), mask, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..len)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (s >> 40) as f32
            })
            .collect()
    }

    /// Every instruction set this CPU runs gives the scalar copies' values.
    #[test]
    fn layout_copies_agree_with_their_scalar_forms() {
        // 20 channels (a lane block and a part), 3 x 7 planes (a pixel block and a part).
        let (c, h, w, stride) = (20, 3, 7, 32);
        let x = pseudo(c * h * w, 4);
        let row = |y: usize| 5 + y * (w + 1) * stride;
        let len = row(h) + w * stride;
        let src = pseudo(h * w * stride, 5);
        for isa in Isa::all_available() {
            let (mut a, mut b) = (vec![9f32; len], vec![9f32; len]);
            to_channels_last(isa, &x, c, h, w, row, stride, &mut a);
            to_channels_last_scalar(&x, c, h, w, row, stride, &mut b);
            for y in 0..h {
                for xx in 0..w {
                    let at = row(y) + xx * stride;
                    assert_eq!(a[at..at + c], b[at..at + c], "{isa:?} pixel ({y}, {xx})");
                }
            }
            let (mut p, mut q) = (vec![0f32; c * h * w], vec![1f32; c * h * w]);
            to_planar(isa, &src, stride, c, h * w, &mut p);
            to_planar_scalar(&src, stride, c, h * w, &mut q);
            assert_eq!(p, q, "{isa:?}");
        }
    }
}
