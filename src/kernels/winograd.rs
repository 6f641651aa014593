//! Winograd convolution kernels F(2x2, 3x3), F(4x4, 3x3) and F(2x2, 5x5) for the stride-1 "same"
//! convolutions: forward (and so the input gradient, a forward convolution with the flipped
//! kernel) and the weight gradient, each a few matrix products on transformed tiles instead of
//! one im2col product: 2.25x (F(2,3)), 4x (F(4,3)) and 2.8x (F(2,5)) fewer multiply-adds for the
//! wide layers that dominate a training step.
//!
//! For an m x m output tile from an a x a input tile d (a = m + r - 1):
//! Y = AT [(G g G^T) . (BT d BT^T)] AT^T, and the tile's weight gradient is
//! G^T [(AT^T dY AT) . (BT d BT^T)] G (Lavin & Gray 2016). The matrices come from
//! `tools/winograd_matrices.py` (Toom-Cook on 0, 1, -1, 2, -2 and infinity, checked
//! symbolically there). Work is split into chunks of whole images (~256 tiles), a chunk at a time
//! per thread; the a^2 products of a chunk run through `gemm::gemm` (f32 or bf16) on one thread
//! each. The tile transforms work on 16-lane blocks of channels, channels last, and run as
//! AVX-512 instantiations where the CPU has it. Values equal the direct convolution up to float rounding (tests here and in `conv.rs`).

use super::cpu::Isa;
use super::gemm::Matmul;
use super::layout::{LANES, to_channels_last, to_planar};
use rayon::prelude::*;

/// Winograd pays off when both channel counts are this large or larger; below, the transforms
/// cost more than the saved multiplications (and the gemm shapes get thin).
const MIN_CHANNELS: usize = 16;
/// Below this many tiles in the batch the kernel transform costs more than the products save
/// (batch-1 inference of the small late planes); those stay direct.
const MIN_TILES: usize = 64;
/// About this many tiles per chunk: keeps the transformed chunk near the core's cache.
const TILES_PER_CHUNK: usize = 256;

/// One Winograd algorithm F(m x m, r x r): AT (m x a), G (a x r), BT (a x a), row-major,
/// a = m + r - 1. The matrices are constants so that each kernel below, instantiated per
/// algorithm, folds the zeros and ones of its tile transforms away.
trait Algo {
    const M: usize;
    const R: usize;
    const AT: &'static [f32];
    const G: &'static [f32];
    const BT: &'static [f32];
}

const S6: f32 = 1.0 / 6.0;
const S12: f32 = 1.0 / 12.0;
const S24: f32 = 1.0 / 24.0;
const BT6: [f32; 36] = [
    4.0, 0.0, -5.0, 0.0, 1.0, 0.0, //
    0.0, -4.0, -4.0, 1.0, 1.0, 0.0, //
    0.0, 4.0, -4.0, -1.0, 1.0, 0.0, //
    0.0, -2.0, -1.0, 2.0, 1.0, 0.0, //
    0.0, 2.0, -1.0, -2.0, 1.0, 0.0, //
    0.0, 4.0, 0.0, -5.0, 0.0, 1.0,
];

struct F23;
impl Algo for F23 {
    const M: usize = 2;
    const R: usize = 3;
    const AT: &'static [f32] = &[1.0, 1.0, 1.0, 0.0, 0.0, 1.0, -1.0, 1.0];
    const G: &'static [f32] = &[-1.0, 0.0, 0.0, 0.5, 0.5, 0.5, 0.5, -0.5, 0.5, 0.0, 0.0, 1.0];
    const BT: &'static [f32] = &[-1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, -1.0, 1.0, 0.0, 0.0, -1.0, 0.0, 1.0];
}

struct F43;
impl Algo for F43 {
    const M: usize = 4;
    const R: usize = 3;
    const AT: &'static [f32] = &[
        1.0, 1.0, 1.0, 1.0, 1.0, 0.0, //
        0.0, 1.0, -1.0, 2.0, -2.0, 0.0, //
        0.0, 1.0, 1.0, 4.0, 4.0, 0.0, //
        0.0, 1.0, -1.0, 8.0, -8.0, 1.0,
    ];
    const G: &'static [f32] = &[
        0.25, 0.0, 0.0, //
        -S6, -S6, -S6, //
        -S6, S6, -S6, //
        S24, S12, S6, //
        S24, -S12, S6, //
        0.0, 0.0, 1.0,
    ];
    const BT: &'static [f32] = &BT6;
}

struct F25;
impl Algo for F25 {
    const M: usize = 2;
    const R: usize = 5;
    const AT: &'static [f32] = &[1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0, -1.0, 2.0, -2.0, 1.0];
    const G: &'static [f32] = &[
        0.25, 0.0, 0.0, 0.0, 0.0, //
        -S6, -S6, -S6, -S6, -S6, //
        -S6, S6, -S6, S6, -S6, //
        S24, S12, S6, 2.0 * S6, 4.0 * S6, //
        S24, -S12, S6, -2.0 * S6, 4.0 * S6, //
        0.0, 0.0, 0.0, 0.0, 1.0,
    ];
    const BT: &'static [f32] = &BT6;
}

/// The Winograd algorithm chosen for one convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plan {
    /// F(2x2, 3x3), 4x4 tiles
    F23,
    /// F(4x4, 3x3), 6x6 tiles
    F43,
    /// F(2x2, 5x5), 6x6 tiles
    F25,
}

impl Plan {
    /// (m, r, a): output tile side, kernel side, input tile side.
    fn sizes(self) -> (usize, usize, usize) {
        match self {
            Plan::F23 => (2, 3, 4),
            Plan::F43 => (4, 3, 6),
            Plan::F25 => (2, 5, 6),
        }
    }
}

/// The Winograd algorithm for a (C_in -> K_out, r x r) stride-1 "same" convolution of a batch
/// of N H x W planes, or `None` where the direct (im2col) convolution is the better choice:
/// 3x3 takes whichever of F(2,3) and F(4,3) multiplies less over the padded tiles (F(2,3) on
/// ties: it is the more accurate), 5x5 takes F(2,5).
pub(crate) fn plan(r: usize, c_in: usize, k_out: usize, [n, h, w]: [usize; 3]) -> Option<Plan> {
    if c_in < MIN_CHANNELS || k_out < MIN_CHANNELS || n * h.div_ceil(2) * w.div_ceil(2) < MIN_TILES {
        return None;
    }
    let cost = |p: Plan| {
        let (m, _, a) = p.sizes();
        a * a * h.div_ceil(m) * w.div_ceil(m)
    };
    match r {
        3 if cost(Plan::F43) < cost(Plan::F23) => Some(Plan::F43),
        3 => Some(Plan::F23),
        5 => Some(Plan::F25),
        _ => None,
    }
}

/// Stride-1, zero-padded ("same") r x r convolution with plan `p`, no bias: contiguous
/// x (N, C, H, W) and kernels `wt` (K, C, r, r) -> contiguous (N, K, H, W), the tile
/// transforms in instruction set `isa`, the products in precision `mm`.
pub(crate) fn conv(p: Plan, x: &[f32], xd: [usize; 4], wt: &[f32], k_out: usize, isa: Isa, mm: Matmul) -> Vec<f32> {
    match p {
        Plan::F23 => conv_with::<F23, 4>(x, xd, wt, k_out, isa, mm),
        Plan::F43 => conv_with::<F43, 6>(x, xd, wt, k_out, isa, mm),
        Plan::F25 => conv_with::<F25, 6>(x, xd, wt, k_out, isa, mm),
    }
}

/// The weight gradient (K, C, r, r) of [`conv`] with plan `p` for the contiguous input
/// `x` (N, C, H, W) and output gradient `g` (N, K, H, W).
pub(crate) fn weight_grad(p: Plan, x: &[f32], xd: [usize; 4], g: &[f32], k_out: usize, isa: Isa, mm: Matmul) -> Vec<f32> {
    match p {
        Plan::F23 => weight_grad_with::<F23, 4>(x, xd, g, k_out, isa, mm),
        Plan::F43 => weight_grad_with::<F43, 6>(x, xd, g, k_out, isa, mm),
        Plan::F25 => weight_grad_with::<F25, 6>(x, xd, g, k_out, isa, mm),
    }
}

/// Images per chunk for H x W planes and m x m output tiles.
fn imgs_per_chunk(m: usize, n: usize, h: usize, w: usize) -> usize {
    let tiles = h.div_ceil(m) * w.div_ceil(m);
    let per = (TILES_PER_CHUNK / tiles.max(1)).max(1);
    // At least two chunks per thread where the batch allows, so the threads stay balanced.
    let threads = rayon::current_num_threads().max(1);
    per.min(n.div_ceil(2 * threads)).max(1)
}

/// out (rows x rows) = L x L^T for x (cols x cols), where L (rows x cols) is the row-major `l`
/// or, with `T`, the transpose of the row-major (cols x rows) `l`. Small fixed-size arrays.
#[inline(always)]
fn sandwich<const A: usize, const T: bool>(l: &[f32], rows: usize, cols: usize, x: &[[f32; A]; A]) -> [[f32; A]; A] {
    let at = |i: usize, k: usize| if T { l[k * rows + i] } else { l[i * cols + k] };
    let mut tmp = [[0f32; A]; A];
    for (i, t) in tmp.iter_mut().enumerate().take(rows) {
        for j in 0..cols {
            let mut s = 0f32;
            for (k, row) in x.iter().enumerate().take(cols) {
                s += at(i, k) * row[j];
            }
            t[j] = s;
        }
    }
    let mut out = [[0f32; A]; A];
    for (i, o) in out.iter_mut().enumerate().take(rows) {
        for (j, v) in o.iter_mut().enumerate().take(rows) {
            *v = tmp[i].iter().take(cols).enumerate().map(|(k, t)| t * at(j, k)).sum();
        }
    }
    out
}

/// (K, C, r, r) kernels -> u[e][k][c] = (G g G^T)[e], a^2 x K' x C for K' >= K output
/// channels (zero for k >= K).
fn filter_transform<P: Algo, const A: usize>(wt: &[f32], k_out: usize, c_in: usize, k_rows: usize) -> Vec<f32> {
    let r = P::R;
    let mut u = vec![0f32; A * A * c_in * k_rows];
    for o in 0..k_out {
        for c in 0..c_in {
            let g = &wt[(o * c_in + c) * r * r..][..r * r];
            let mut x = [[0f32; A]; A];
            for (i, row) in x.iter_mut().enumerate().take(r) {
                row[..r].copy_from_slice(&g[i * r..][..r]);
            }
            let t = sandwich::<A, false>(P::G, A, r, &x);
            for (i, row) in t.iter().enumerate() {
                for (j, val) in row.iter().enumerate() {
                    u[((i * A + j) * k_rows + o) * c_in + c] = *val;
                }
            }
        }
    }
    u
}

type Lanes = [f32; LANES];

/// `c` channels rounded up to whole lane blocks.
fn padded(c: usize) -> usize {
    c.div_ceil(LANES) * LANES
}

/// The lane block of `buf` at `at`.
#[inline(always)]
fn lanes(buf: &[f32], at: usize) -> Lanes {
    let mut out = [0f32; LANES];
    out.copy_from_slice(&buf[at..][..LANES]);
    out
}

/// sum over k < len of coef(k) * src(k) for one lane block; the coefficients are compile-time
/// constants after inlining, so the zero terms vanish.
#[inline(always)]
fn lin(len: usize, coef: impl Fn(usize) -> f32, src: impl Fn(usize) -> Lanes) -> Lanes {
    let mut acc = [0f32; LANES];
    for k in 0..len {
        let cf = coef(k);
        if cf != 0.0 {
            let v = src(k);
            for (a, x) in acc.iter_mut().zip(v) {
                *a += cf * x;
            }
        }
    }
    acc
}

/// Per-thread buffers of the kernels, kept between calls (a training step calls each kernel
/// for every layer; fresh buffers would be page-faulted in each time).
#[derive(Default)]
struct Scratch {
    pad: Vec<f32>,
    v: Vec<f32>,
    mm: Vec<f32>,
    y: Vec<f32>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::default();
}

/// The input tiles of images `imgs` of the contiguous (N, C, H, W) `x`, transformed, channels
/// last: v[e][t][c] = (BT d BT^T)[e] for the A x A tile d of tile t (tiles numbered image,
/// row, column; tile (ty, tx) reads input rows m*ty - r/2 .. m*ty - r/2 + A, zero outside),
/// with channel stride `padded(C)`.
/// The images go through a zero-padded channels-last copy so that each transform step is a
/// vector operation over a block of channels.
#[inline(always)]
fn input_tiles<P: Algo, const A: usize>(x: &[f32], [_, c_in, h, w]: [usize; 4], imgs: std::ops::Range<usize>, s: &mut Scratch, isa: Isa) {
    let (m, off) = (P::M, P::R / 2);
    let (th, tw) = (h.div_ceil(m), w.div_ceil(m));
    let ni = imgs.len();
    let tc = ni * th * tw;
    let cp = padded(c_in);
    let (hp, wp) = ((th - 1) * m + A, (tw - 1) * m + A);
    s.pad.clear();
    s.pad.resize(ni * hp * wp * cp, 0.0);
    for (i, img) in imgs.enumerate() {
        to_channels_last(isa, &x[img * c_in * h * w..][..c_in * h * w], c_in, h, w, |y| ((i * hp + y + off) * wp + off) * cp, cp, &mut s.pad);
    }
    // Every element of v is written below (the extra lanes from the zero lanes of `pad`).
    s.v.resize(A * A * tc * cp, 0.0);
    let (pad, v) = (&s.pad, &mut s.v);
    for i in 0..ni {
        for ty in 0..th {
            for tx in 0..tw {
                let t = (i * th + ty) * tw + tx;
                let base = ((i * hp + ty * m) * wp + tx * m) * cp;
                for cb in (0..cp).step_by(LANES) {
                    let d = |k: usize, j: usize| lanes(pad, base + (k * wp + j) * cp + cb);
                    // tmp[r][j] = sum_k BT[r][k] d[k][j]
                    let mut tmp = [[[0f32; LANES]; A]; A];
                    for (r, row) in tmp.iter_mut().enumerate() {
                        for (j, out) in row.iter_mut().enumerate() {
                            *out = lin(A, |k| P::BT[r * A + k], |k| d(k, j));
                        }
                    }
                    // v[r][jj] = sum_k tmp[r][k] BT[jj][k]
                    for (r, row) in tmp.iter().enumerate() {
                        for jj in 0..A {
                            let o = lin(A, |k| P::BT[jj * A + k], |k| row[k]);
                            v[((r * A + jj) * tc + t) * cp + cb..][..LANES].copy_from_slice(&o);
                        }
                    }
                }
            }
        }
    }
}

/// [`conv`] with algorithm `P` (input tiles A x A).
fn conv_with<P: Algo, const A: usize>(x: &[f32], xd: [usize; 4], wt: &[f32], k_out: usize, isa: Isa, mm: Matmul) -> Vec<f32> {
    let [n, c_in, h, w] = xd;
    let m = P::M;
    let kp = padded(k_out);
    // Kernels transformed for K rounded up to whole lane blocks (zero kernels beyond K), so
    // the products' rows are whole lane blocks for the output transform.
    let u = filter_transform::<P, A>(wt, k_out, c_in, kp);
    let per = imgs_per_chunk(m, n, h, w);
    let plane = h * w;
    let mut out = vec![0f32; n * k_out * plane];
    out.par_chunks_mut(per * k_out * plane).enumerate().for_each(|(chunk, y)| {
        let imgs = chunk * per..((chunk + 1) * per).min(n);
        SCRATCH.with_borrow_mut(|s| match isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: an `Avx512` token exists only where its check found the features
            // `conv_chunk_wide` is compiled for.
            Isa::Avx512(_) => unsafe { conv_chunk_wide::<P, A>(x, xd, &u, k_out, imgs, y, s, (isa, mm)) },
            _ => conv_chunk::<P, A>(x, xd, &u, k_out, imgs, y, s, (isa, mm)),
        })
    });
    out
}

/// [`conv_chunk`] compiled for AVX-512.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
#[allow(clippy::too_many_arguments)]
fn conv_chunk_wide<P: Algo, const A: usize>(x: &[f32], xd: [usize; 4], u: &[f32], k_out: usize, imgs: std::ops::Range<usize>, y: &mut [f32], s: &mut Scratch, run: (Isa, Matmul)) {
    conv_chunk::<P, A>(x, xd, u, k_out, imgs, y, s, run)
}

/// The output `y` (NCHW) of images `imgs` for the transformed kernels `u` ([`conv_with`]).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn conv_chunk<P: Algo, const A: usize>(x: &[f32], xd: [usize; 4], u: &[f32], k_out: usize, imgs: std::ops::Range<usize>, y: &mut [f32], s: &mut Scratch, (isa, mm): (Isa, Matmul)) {
    let [_, c_in, h, w] = xd;
    let m = P::M;
    let (th, tw) = (h.div_ceil(m), w.div_ceil(m));
    let (cp, kp) = (padded(c_in), padded(k_out));
    let plane = h * w;
    let ni = imgs.len();
    let tc = ni * th * tw;
    input_tiles::<P, A>(x, xd, imgs, s, isa);
    s.mm.resize(A * A * tc * kp, 0.0);
    for e in 0..A * A {
        // mm_e (tc x K') = v_e (tc x C) . u_e^T (C x K')
        let (v, uk) = (&s.v[e * tc * cp..][..tc * cp], &u[e * kp * c_in..][..kp * c_in]);
        super::gemm::gemm(mm, &mut s.mm[e * tc * kp..][..tc * kp], [tc, kp, c_in], false, (v, cp, 1), (uk, 1, c_in));
    }
    // Y = AT mm AT^T per tile over the channel blocks, into a channels-last image buffer
    // (every pixel of the plane is some tile's output).
    s.y.resize(ni * plane * kp, 0.0);
    let (mm, yb) = (&s.mm, &mut s.y);
    for i in 0..ni {
        for ty in 0..th {
            for tx in 0..tw {
                let t = (i * th + ty) * tw + tx;
                for cb in (0..kp).step_by(LANES) {
                    let at = |e: usize| lanes(mm, (e * tc + t) * kp + cb);
                    // tmp[r][j] = sum_l AT[r][l] mm[l][j]   (r < m)
                    let mut tmp = [[[0f32; LANES]; A]; A];
                    for (r, row) in tmp.iter_mut().enumerate().take(m) {
                        for (j, o) in row.iter_mut().enumerate() {
                            *o = lin(A, |l| P::AT[r * A + l], |l| at(l * A + j));
                        }
                    }
                    for (r, row) in tmp.iter().enumerate().take(m.min(h - ty * m)) {
                        for jj in 0..m.min(w - tx * m) {
                            let px = (ty * m + r) * w + tx * m + jj;
                            let o = lin(A, |l| P::AT[jj * A + l], |l| row[l]);
                            yb[(i * plane + px) * kp + cb..][..LANES].copy_from_slice(&o);
                        }
                    }
                }
            }
        }
    }
    // channels-last -> NCHW
    for i in 0..ni {
        let src = &s.y[i * plane * kp..][..plane * kp];
        let dst = &mut y[i * k_out * plane..][..k_out * plane];
        to_planar(isa, src, kp, k_out, plane, dst);
    }
}

/// [`weight_grad`] with algorithm `P` (input tiles A x A).
fn weight_grad_with<P: Algo, const A: usize>(x: &[f32], xd: [usize; 4], g: &[f32], k_out: usize, isa: Isa, mm: Matmul) -> Vec<f32> {
    let [n, c_in, h, w] = xd;
    let (m, r) = (P::M, P::R);
    let a = A;
    let per = imgs_per_chunk(m, n, h, w);
    let kc = k_out * c_in;
    let s = super::batch_sum(n, per, A * A * kc, |_: &mut (), imgs, acc, accumulate| {
        let part = WeightPart { x, xd, g, k_out, isa, mm };
        SCRATCH.with_borrow_mut(|s| match isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: an `Avx512` token exists only where its check found the features
            // `weight_chunk_wide` is compiled for.
            Isa::Avx512(_) => unsafe { weight_chunk_wide::<P, A>(&part, imgs, acc, accumulate, s) },
            _ => weight_chunk::<P, A>(&part, imgs, acc, accumulate, s),
        })
    });
    // dW = G^T s G per (k, c).
    let mut dw = vec![0f32; kc * r * r];
    for idx in 0..kc {
        let mut tile = [[0f32; A]; A];
        for (i, row) in tile.iter_mut().enumerate() {
            for (j, val) in row.iter_mut().enumerate() {
                *val = s[(i * a + j) * kc + idx];
            }
        }
        // G^T (r x a) around the a x a sum
        let d = sandwich::<A, true>(P::G, r, a, &tile);
        for i in 0..r {
            dw[(idx * r + i) * r..][..r].copy_from_slice(&d[i][..r]);
        }
    }
    dw
}

/// [`weight_chunk`] compiled for AVX-512.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
fn weight_chunk_wide<P: Algo, const A: usize>(part: &WeightPart, imgs: std::ops::Range<usize>, acc: &mut [f32], accumulate: bool, s: &mut Scratch) {
    weight_chunk::<P, A>(part, imgs, acc, accumulate, s)
}

/// The operands of one weight-gradient call, shared by its chunks.
struct WeightPart<'a> {
    x: &'a [f32],
    xd: [usize; 4],
    g: &'a [f32],
    k_out: usize,
    isa: Isa,
    mm: Matmul,
}

/// Images `imgs`' share of the transformed-domain weight gradient sums `acc` (a^2 x K x C;
/// written, or added to with `accumulate`) for the output gradient `g` ([`weight_grad_with`]).
#[inline(always)]
fn weight_chunk<P: Algo, const A: usize>(part: &WeightPart, imgs: std::ops::Range<usize>, acc: &mut [f32], accumulate: bool, s: &mut Scratch) {
    let &WeightPart { x, xd, g, k_out, isa, mm } = part;
    let [_, c_in, h, w] = xd;
    let m = P::M;
    let (th, tw) = (h.div_ceil(m), w.div_ceil(m));
    let (cp, kp) = (padded(c_in), padded(k_out));
    let plane = h * w;
    let kc = k_out * c_in;
    let ni = imgs.len();
    let tc = ni * th * tw;
    input_tiles::<P, A>(x, xd, imgs.clone(), s, isa);
    // The output gradient, channels last (stride K rounded up to lane blocks), zero
    // beyond the plane: (th*m) x (tw*m). `y` is free in this kernel.
    let (hg, wg) = (th * m, tw * m);
    let gpad = &mut s.y;
    gpad.clear();
    gpad.resize(ni * hg * wg * kp, 0.0);
    for (i, b) in imgs.enumerate() {
        to_channels_last(isa, &g[b * k_out * plane..][..k_out * plane], k_out, h, w, |y| (i * hg + y) * wg * kp, kp, gpad);
    }
    // z[e][t][k] = (AT^T dY AT)[e] for the m x m output-gradient tile.
    s.mm.resize(A * A * tc * kp, 0.0);
    let (gpad, z) = (&s.y, &mut s.mm);
    for i in 0..ni {
        for ty in 0..th {
            for tx in 0..tw {
                let t = (i * th + ty) * tw + tx;
                for cb in (0..kp).step_by(LANES) {
                    let dy = |rr: usize, j: usize| lanes(gpad, ((i * hg + ty * m + rr) * wg + tx * m + j) * kp + cb);
                    // tmp[rr][j] = sum_l AT[l][rr] dY[l][j]   (j < m)
                    let mut tmp = [[[0f32; LANES]; A]; A];
                    for (rr, row) in tmp.iter_mut().enumerate() {
                        for (j, o) in row.iter_mut().enumerate().take(m) {
                            *o = lin(m, |l| P::AT[l * A + rr], |l| dy(l, j));
                        }
                    }
                    for (rr, row) in tmp.iter().enumerate() {
                        for jj in 0..A {
                            let o = lin(m, |l| P::AT[l * A + jj], |l| row[l]);
                            z[((rr * A + jj) * tc + t) * kp + cb..][..LANES].copy_from_slice(&o);
                        }
                    }
                }
            }
        }
    }
    for e in 0..A * A {
        // acc_e (K x C) [+]= z_e^T (K x tc) . v_e (tc x C)
        let (ze, v) = (&s.mm[e * tc * kp..][..tc * kp], &s.v[e * tc * cp..][..tc * cp]);
        super::gemm::gemm(mm, &mut acc[e * kc..][..kc], [k_out, c_in, tc], accumulate, (ze, 1, kp), (v, cp, 1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct "same" r x r convolution, the definition.
    fn direct(x: &[f32], [n, c_in, h, w]: [usize; 4], wt: &[f32], k_out: usize, r: usize) -> Vec<f32> {
        let mut y = vec![0f32; n * k_out * h * w];
        let off = (r / 2) as isize;
        for b in 0..n {
            for o in 0..k_out {
                for yy in 0..h {
                    for xx in 0..w {
                        let mut s = 0f32;
                        for c in 0..c_in {
                            for i in 0..r {
                                for j in 0..r {
                                    let (sy, sx) = (yy as isize + i as isize - off, xx as isize + j as isize - off);
                                    if sy >= 0 && sx >= 0 && (sy as usize) < h && (sx as usize) < w {
                                        s += x[((b * c_in + c) * h + sy as usize) * w + sx as usize] * wt[((o * c_in + c) * r + i) * r + j];
                                    }
                                }
                            }
                        }
                        y[((b * k_out + o) * h + yy) * w + xx] = s;
                    }
                }
            }
        }
        y
    }

    fn pseudo(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..len)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// Both instantiations (baseline and, where the CPU has it, AVX-512) of the forward
    /// convolution and the weight gradient against the definition, in f32.
    #[test]
    fn forward_and_weight_gradient_equal_the_direct_convolution() {
        // Every instruction set gives the baseline's values exactly (the same sums in the same
        // order, 16 lanes at a time or one).
        let (x, wt, q, xd) = (pseudo(2 * 18 * 30, 1), pseudo(20 * 18 * 9, 2), pseudo(2 * 20 * 30, 3), [2, 18, 5, 6]);
        let base = (conv(Plan::F43, &x, xd, &wt, 20, Isa::Baseline, Matmul::F32), weight_grad(Plan::F43, &x, xd, &q, 20, Isa::Baseline, Matmul::F32));
        for isa in Isa::all_available() {
            assert_eq!(conv(Plan::F43, &x, xd, &wt, 20, isa, Matmul::F32), base.0, "{isa:?} forward");
            assert_eq!(weight_grad(Plan::F43, &x, xd, &q, 20, isa, Matmul::F32), base.1, "{isa:?} weight gradient");
        }
        for isa in Isa::all_available() {
            for plan in [Plan::F23, Plan::F43, Plan::F25] {
                let (m, r, _) = plan.sizes();
                // odd and even sizes, partial tiles, one and several chunks
                // (channels beyond one 16-lane block: 18 -> 20)
                for (n, c, k, h, w) in [(2, 3, 4, 5, 7), (3, 2, 2, 6, 6), (9, 4, 3, 1, 3), (40, 2, 3, 4, 4), (2, 3, 2, 9, 8), (2, 18, 20, 5, 6)] {
                    let xd = [n, c, h, w];
                    let x = pseudo(n * c * h * w, 1);
                    let wt = pseudo(k * c * r * r, 2);
                    let y = conv(plan, &x, xd, &wt, k, isa, Matmul::F32);
                    let y0 = direct(&x, xd, &wt, k, r);
                    for (a, b) in y.iter().zip(&y0) {
                        assert!((a - b).abs() < 2e-4, "{isa:?} F({m},{r}) forward {a} vs {b} at {xd:?}");
                    }
                    // The weight gradient of sum(y * q) is, per kernel entry, the convolution with
                    // that entry's unit kernel, dotted with q.
                    let q = pseudo(n * k * h * w, 3);
                    let dw = weight_grad(plan, &x, xd, &q, k, isa, Matmul::F32);
                    // (every entry for the small cases, every 13th for the wide one)
                    for idx in (0..wt.len()).step_by(if c > 8 { 13 } else { 1 }) {
                        let mut unit = vec![0f32; wt.len()];
                        unit[idx] = 1.0;
                        let expect: f32 = direct(&x, xd, &unit, k, r).iter().zip(&q).map(|(a, b)| a * b).sum();
                        assert!((dw[idx] - expect).abs() < 2e-3, "{isa:?} F({m},{r}) weight gradient {} vs {expect} at {idx} {xd:?}", dw[idx]);
                    }
                }
            }
        }
    }

    /// With bf16 products (where the CPU has them) the result stays within bf16 rounding of
    /// the definition.
    #[test]
    fn bf16_products_stay_near_the_direct_convolution() {
        let Ok(mm) = Matmul::new(crate::kernels::MatmulPrecision::Bf16) else {
            eprintln!("skipped: this CPU has no AVX512_BF16");
            return;
        };
        let (n, c, k, h, w) = (2, 18, 20, 6, 6);
        let xd = [n, c, h, w];
        let (x, wt) = (pseudo(n * c * h * w, 1), pseudo(k * c * 9, 2));
        let y = conv(Plan::F23, &x, xd, &wt, k, Isa::detect(), mm);
        let y0 = direct(&x, xd, &wt, k, 3);
        let worst = y.iter().zip(&y0).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst > 0.0 && worst < 0.1, "bf16 forward off by {worst}");
    }

    #[test]
    fn plans_follow_the_multiplication_count() {
        assert!(plan(3, 8, 64, [64, 12, 12]).is_none(), "thin layers stay direct");
        assert!(plan(7, 64, 64, [64, 12, 12]).is_none());
        assert!(plan(3, 512, 512, [1, 6, 6]).is_none(), "a few tiles stay direct");
        assert_eq!(plan(3, 64, 64, [64, 12, 12]), Some(Plan::F43));
        assert_eq!(plan(3, 64, 64, [64, 6, 6]), Some(Plan::F23), "a tie goes to F(2,3)");
        assert_eq!(plan(5, 64, 128, [64, 24, 24]), Some(Plan::F25));
    }
}
