//! bf16 matrix products for ferrite's convolution kernels: f32 operands rounded to bf16, products
//! summed in f32 (AVX512_BF16 `vdpbf16ps`), about twice the f32 multiply rate on CPUs that have it.
//!
//! Operands are converted while they are packed: the right-hand matrix into panels of 48 columns
//! holding, per pair of rows (2p, 2p+1), each column's two values side by side in one 32-bit
//! word; the left-hand matrix into the same pairs per row. The micro-kernel keeps an 8 x 48 block
//! of the result in 24 registers and adds 8 x 48 x 2 products per step.

/// dst (m x n, row-major) = [dst +] lhs (m x k) . rhs (k x n) with bf16 products and f32 sums,
/// on the calling thread; operands as in [`super::gemm::gemm`] (bounds checked there). The
/// token proves the CPU runs the instructions.
pub(crate) fn gemm(cpu: super::cpu::Avx512Bf16, dst: &mut [f32], mnk: [usize; 3], accumulate: bool, lhs: super::Mat, rhs: super::Mat) {
    let _ = cpu;
    #[cfg(target_arch = "x86_64")]
    SCRATCH.with_borrow_mut(|s| {
        // SAFETY: the `Avx512Bf16` token exists only where its check found the CPU features
        // `imp::gemm` is compiled for; the caller checked the operand bounds.
        unsafe { imp::gemm(s, dst, mnk, accumulate, lhs, rhs) }
    });
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("no Avx512Bf16 token exists off x86-64 ({dst:p}, {mnk:?}, {accumulate}, {lhs:p}, {rhs:p})", lhs = lhs.0, rhs = rhs.0);
}

#[cfg(target_arch = "x86_64")]
thread_local! {
    static SCRATCH: std::cell::RefCell<imp::Scratch> = std::cell::RefCell::default();
}

#[cfg(target_arch = "x86_64")]
mod imp {
    use std::arch::x86_64::*;

    /// Rows of the result block the micro-kernel keeps in registers.
    const MR: usize = 8;
    /// Columns of a packed right-hand panel (three 16-lane vectors).
    const NR: usize = 48;

    /// Packed operands, reused across calls on one thread.
    #[derive(Default)]
    pub(super) struct Scratch {
        a: Vec<u32>,
        b: Vec<u32>,
        col: Vec<u32>,
    }

    /// f32 -> bf16 bits, rounded to nearest even (NaN stays NaN, overflow becomes infinity).
    #[inline(always)]
    fn bf(x: f32) -> u32 {
        let u = x.to_bits();
        u.wrapping_add(0x7fff + ((u >> 16) & 1)) >> 16
    }

    /// The pair word of x[i0] and (when there is one) x[i1].
    #[inline(always)]
    fn pair(x: &[f32], i0: usize, i1: Option<usize>) -> u32 {
        bf(x[i0]) | i1.map_or(0, |i| bf(x[i]) << 16)
    }

    #[inline(always)]
    fn mask16(len: usize) -> __mmask16 {
        if len >= 16 { 0xffff } else { ((1u32 << len) - 1) as u16 }
    }

    /// The first `len` (<= 16) values of two f32 rows -> `len` pair words (lo[j] | hi[j] << 16).
    ///
    /// # Safety
    /// The CPU runs AVX512F/BW/BF16; `lo` and `hi` each point to `len` readable values and
    /// `out` to `len` writable words.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    unsafe fn pair16(lo: *const f32, hi: *const f32, out: *mut u32, len: usize) {
        let idx = _mm512_set_epi16(
            31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0,
        );
        let m = mask16(len);
        // SAFETY: the caller guarantees `len` readable values at `lo` and `hi` and `len` writable words at `out`.
        unsafe {
            let halves = _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(m, hi), _mm512_maskz_loadu_ps(m, lo));
            let v = _mm512_permutexvar_epi16(idx, std::mem::transmute::<__m512bh, __m512i>(halves));
            _mm512_mask_storeu_epi32(out.cast(), m, v);
        }
    }

    /// k contiguous f32 -> k.div_ceil(2) pair words in order (an odd last value pairs with 0).
    ///
    /// # Safety
    /// The CPU runs AVX512F/BW/BF16 (the slices bound every access).
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    unsafe fn convert_row(x: &[f32], out: &mut [u32]) {
        let k = x.len();
        assert!(out.len() >= k.div_ceil(2));
        let mut e = 0;
        while e < k {
            let (l0, l1) = ((k - e).min(16), (k - e).saturating_sub(16).min(16));
            // SAFETY: the masks limit the loads to x[e..k] and the store to out[..k.div_ceil(2)].
            unsafe {
                let lo = _mm512_maskz_loadu_ps(mask16(l0), x.as_ptr().add(e));
                // (wrapping: past the end of x when l1 is 0, where the mask loads nothing)
                let hi = _mm512_maskz_loadu_ps(mask16(l1), x.as_ptr().wrapping_add(e + 16));
                let v = std::mem::transmute::<__m512bh, __m512i>(_mm512_cvtne2ps_pbh(hi, lo));
                _mm512_mask_storeu_epi32(out.as_mut_ptr().add(e / 2).cast(), mask16((l0 + l1).div_ceil(2)), v);
            }
            e += 32;
        }
    }

    /// See [`super::gemm`].
    ///
    /// # Safety
    /// The CPU runs AVX512F/BW/BF16, and every element the operands' strides address lies
    /// inside their slices.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    pub(super) unsafe fn gemm(s: &mut Scratch, dst: &mut [f32], [m, n, k]: [usize; 3], acc: bool, (a, ars, acs): super::super::Mat, (b, brs, bcs): super::super::Mat) {
        if m == 0 || n == 0 {
            return;
        }
        let kp = k.div_ceil(2);
        let panels = n.div_ceil(NR);
        // B: [panel][pair p][NR] words; columns past n stay 0.
        s.b.clear();
        s.b.resize(panels * kp * NR, 0);
        if bcs == 1 {
            // Row-major: interleave rows 2p and 2p+1, 16 columns at a time.
            for p in 0..kp {
                let (r0, r1) = (2 * p * brs, (2 * p + 1) * brs);
                for pn in 0..panels {
                    let (j0, w) = (pn * NR, NR.min(n - pn * NR));
                    let out = &mut s.b[(pn * kp + p) * NR..][..NR];
                    if 2 * p + 1 < k {
                        for j in (0..w).step_by(16) {
                            // SAFETY: w - j values from both rows are inside b; out has NR >= w words.
                            unsafe { pair16(b.as_ptr().add(r0 + j0 + j), b.as_ptr().add(r1 + j0 + j), out.as_mut_ptr().add(j), w - j) };
                        }
                    } else {
                        for j in 0..w {
                            out[j] = bf(b[r0 + j0 + j]);
                        }
                    }
                }
            }
        } else if brs == 1 {
            // Column-major: each column is a contiguous run of k values; convert, then scatter.
            s.col.resize(kp, 0);
            for j in 0..n {
                // SAFETY: CPU features as for this function.
                unsafe { convert_row(&b[j * bcs..][..k], &mut s.col) };
                let (pn, jj) = (j / NR, j % NR);
                let out = &mut s.b[pn * kp * NR..][..kp * NR];
                for (p, &word) in s.col.iter().enumerate() {
                    out[p * NR + jj] = word;
                }
            }
        } else {
            for p in 0..kp {
                for j in 0..n {
                    let hi = (2 * p + 1 < k).then(|| (2 * p + 1) * brs + j * bcs);
                    s.b[((j / NR) * kp + p) * NR + j % NR] = pair(b, 2 * p * brs + j * bcs, hi);
                }
            }
        }
        // A: pair (i, p) at i * a_row + p * a_pair; rows m..mpad stay 0.
        let mpad = m.next_multiple_of(MR);
        s.a.clear();
        s.a.resize(mpad * kp, 0);
        let (a_row, a_pair) = if acs == 1 {
            for i in 0..m {
                // SAFETY: CPU features as for this function.
                unsafe { convert_row(&a[i * ars..][..k], &mut s.a[i * kp..][..kp]) };
            }
            (kp, 1)
        } else {
            for p in 0..kp {
                let (r0, r1) = (2 * p * acs, (2 * p + 1) * acs);
                let out = &mut s.a[p * mpad..][..mpad];
                if ars == 1 && 2 * p + 1 < k {
                    for i in (0..m).step_by(16) {
                        // SAFETY: m - i values from both columns are inside a; out has mpad >= m words.
                        unsafe { pair16(a.as_ptr().add(r0 + i), a.as_ptr().add(r1 + i), out.as_mut_ptr().add(i), m - i) };
                    }
                } else {
                    for (i, word) in out[..m].iter_mut().enumerate() {
                        *word = pair(a, r0 + i * ars, (2 * p + 1 < k).then(|| r1 + i * ars));
                    }
                }
            }
            (1, mpad)
        };
        for i0 in (0..m).step_by(MR) {
            let rows = MR.min(m - i0);
            let ap = &s.a[i0 * a_row..];
            for pn in 0..panels {
                let (j0, w) = (pn * NR, NR.min(n - pn * NR));
                let bp = &s.b[pn * kp * NR..][..kp * NR];
                let d = &mut dst[i0 * n + j0..];
                let t = Tile { a_row, a_pair, kp, ldd: n, rows, cols: w, acc };
                // SAFETY: `ap` holds MR rows of kp pairs from i0 (mpad rows in all), `bp` kp x NR
                // words, and `d` reaches row rows-1, column w-1 at stride n.
                unsafe {
                    match w.div_ceil(16) {
                        3 => kernel::<3>(ap, bp, d, t),
                        2 => kernel::<2>(ap, bp, d, t),
                        _ => kernel::<1>(ap, bp, d, t),
                    }
                }
            }
        }
    }

    /// Strides and extent of one result block.
    #[derive(Clone, Copy)]
    struct Tile {
        a_row: usize,
        a_pair: usize,
        kp: usize,
        ldd: usize,
        rows: usize,
        cols: usize,
        acc: bool,
    }

    /// The MR x 16V block at `d` (row stride t.ldd; only t.rows x t.cols written) = [d +]
    /// sum over pairs p of A pair (r, p) . B pair (p, column).
    ///
    /// # Safety
    /// The CPU runs AVX512F/BW/BF16; `pa` holds MR rows of `t.kp` pairs at row stride
    /// `t.a_row` and pair stride `t.a_pair`, `pb` holds `t.kp` x NR words, and `d` holds
    /// `t.rows` rows of `t.cols` values at row stride `t.ldd`.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    #[inline]
    unsafe fn kernel<const V: usize>(pa: &[u32], pb: &[u32], d: &mut [f32], t: Tile) {
        let mut c = [[_mm512_setzero_ps(); V]; MR];
        let (mut ap, mut bp) = (pa.as_ptr(), pb.as_ptr());
        for _ in 0..t.kp {
            // SAFETY: see the call site; every pointer stays inside `pa` / `pb`.
            unsafe {
                let mut bv = [_mm512_setzero_si512(); V];
                for (v, x) in bv.iter_mut().enumerate() {
                    *x = _mm512_loadu_si512(bp.add(16 * v).cast());
                }
                for (r, row) in c.iter_mut().enumerate() {
                    let av = std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(*ap.add(r * t.a_row) as i32));
                    for (x, bx) in row.iter_mut().zip(&bv) {
                        *x = _mm512_dpbf16_ps(*x, av, std::mem::transmute::<__m512i, __m512bh>(*bx));
                    }
                }
            }
            // (wrapping: after the last pair these may point past the operands; never read there)
            ap = ap.wrapping_add(t.a_pair);
            bp = bp.wrapping_add(NR);
        }
        for (r, row) in c.iter().enumerate().take(t.rows) {
            for (v, x) in row.iter().enumerate() {
                let m = mask16(t.cols.saturating_sub(16 * v));
                // SAFETY: the mask keeps the access inside row r's t.cols columns of `d`.
                unsafe {
                    let p = d.as_mut_ptr().add(r * t.ldd + 16 * v);
                    let y = if t.acc { _mm512_add_ps(*x, _mm512_maskz_loadu_ps(m, p)) } else { *x };
                    _mm512_mask_storeu_ps(p, m, y);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rnd(len: usize, seed: &mut u64) -> Vec<f32> {
        (0..len)
            .map(|_| {
                *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((*seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect()
    }

    /// f32 -> the nearest bf16 (ties to even), as an f32.
    fn round(x: f32) -> f32 {
        let u = x.to_bits();
        f32::from_bits((u.wrapping_add(0x7fff + ((u >> 16) & 1)) >> 16) << 16)
    }

    /// Every operand layout the convolution kernels use (and a strided one), odd and even
    /// shapes, with and without accumulation: the f32 product of the bf16-rounded operands (a
    /// product of two bf16 values is exact in f32, so only the order of the f32 sums differs).
    #[test]
    fn equals_the_f32_product_of_the_rounded_operands() {
        let Some(cpu) = crate::kernels::cpu::Avx512Bf16::detect() else {
            eprintln!("skipped: this CPU has no AVX512_BF16");
            return;
        };
        let mut seed = 3;
        for &(m, n, k) in &[(1, 1, 1), (7, 5, 3), (8, 48, 32), (9, 49, 33), (37, 101, 67), (130, 56, 28)] {
            // (row stride, column stride) of A (m x k) and B (k x n).
            let layouts = [((k, 1), (n, 1)), ((k, 1), (1, k)), ((1, m), (n, 1)), ((1, m), (1, k)), ((2 * k, 2), (1, 3 * k))];
            for (li, &((ars, acs), (brs, bcs))) in layouts.iter().enumerate() {
                let a = rnd((m - 1) * ars + (k - 1) * acs + 1, &mut seed);
                let b = rnd((k - 1) * brs + (n - 1) * bcs + 1, &mut seed);
                let (ar, br): (Vec<f32>, Vec<f32>) = (a.iter().map(|&x| round(x)).collect(), b.iter().map(|&x| round(x)).collect());
                let start = rnd(m * n, &mut seed);
                for accumulate in [false, true] {
                    let (mut want, mut got) = (start.clone(), start.clone());
                    crate::kernels::gemm::gemm(crate::kernels::Matmul::F32, &mut want, [m, n, k], accumulate, (&ar, ars, acs), (&br, brs, bcs));
                    gemm(cpu, &mut got, [m, n, k], accumulate, (&a, ars, acs), (&b, brs, bcs));
                    for (idx, (w, g)) in want.iter().zip(&got).enumerate() {
                        assert!((w - g).abs() <= 1e-4, "{m}x{n}x{k} layout {li} acc {accumulate} at {idx}: f32 {w} bf16 {g}");
                    }
                }
            }
        }
    }

    #[test]
    fn values_round_to_the_nearest_bf16() {
        let Some(cpu) = crate::kernels::cpu::Avx512Bf16::detect() else {
            eprintln!("skipped: this CPU has no AVX512_BF16");
            return;
        };
        // 1 + 2^-8 lies halfway between 1 and 1 + 2^-7 (ties go to even: 1); 1 + 3 * 2^-9 rounds up.
        for (x, want) in [(1.0 + 2f32.powi(-8), 1.0), (1.0 + 3.0 * 2f32.powi(-9), 1.0 + 2f32.powi(-7)), (-2.5, -2.5)] {
            let mut d = [0f32];
            gemm(cpu, &mut d, [1, 1, 1], false, (&[x], 1, 1), (&[1.0], 1, 1));
            assert_eq!(d[0], want, "{x}");
        }
    }
}
