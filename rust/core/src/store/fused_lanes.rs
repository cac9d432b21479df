//! The fused load path's inner loops in AVX2 registers, with a scalar twin
//! that gives the same bits (every output is the same sequence of IEEE
//! float32 operations on the same inputs; no fused multiply-adds).
//!
//! Rows of the output are short (10 packets in every CSI format we read), so
//! a row of `p >= 8` values is covered by vectors at 0, 8, ... and one last
//! vector ending at `p` that overlaps the one before: an output is a pure
//! function of its inputs, so the overlap writes the same value twice and no
//! lane is spent on a scalar tail. Rows shorter than eight take the scalar twin.

use crate::metrics::simd::{Isa, isa};

/// Lanes of the min-max's accumulator: one AVX2 register. Min and max of +0
/// and -0 depend on the order they meet, so the scalar twin keeps the same
/// lanes and the same fold (and both the order of the kernel before them).
const LANES: usize = 8;

/// The affine part of a row: `y = (taps of (x - lo)) * r + o`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Affine {
    pub lo: f32,
    pub r: f32,
    pub o: f32,
}

/// The taps of one output row: source rows (each `p` values) and coefficients.
pub(super) trait Taps {
    fn len(&self) -> usize;
    fn source(&self, k: usize) -> &[f32];
    fn coef(&self, k: usize) -> f32;
}

/// Minimum and maximum of `x`, NaN ignored (infinity / -infinity when all are NaN).
pub(super) fn min_max(x: &[f32]) -> (f32, f32) {
    #[cfg(target_arch = "x86_64")]
    if isa() >= Isa::Avx2 {
        // SAFETY: isa() reports only features the CPU has.
        return unsafe { avx2::min_max(x) };
    }
    min_max_scalar(x)
}

#[inline(always)]
fn min_max_scalar(x: &[f32]) -> (f32, f32) {
    let (mut lo, mut hi) = ([f32::INFINITY; LANES], [f32::NEG_INFINITY; LANES]);
    let mut it = x.chunks_exact(LANES);
    for c in &mut it {
        for l in 0..LANES {
            lo[l] = if c[l] < lo[l] { c[l] } else { lo[l] };
            hi[l] = if c[l] > hi[l] { c[l] } else { hi[l] };
        }
    }
    fold(lo, hi, it.remainder())
}

/// The tail's values into lanes 0.., then the lanes in order.
#[inline(always)]
fn fold(mut lo: [f32; LANES], mut hi: [f32; LANES], tail: &[f32]) -> (f32, f32) {
    for (l, &v) in tail.iter().enumerate() {
        lo[l] = if v < lo[l] { v } else { lo[l] };
        hi[l] = if v > hi[l] { v } else { hi[l] };
    }
    let lo = lo
        .iter()
        .fold(f32::INFINITY, |m, &v| if v < m { v } else { m });
    let hi = hi
        .iter()
        .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
    (lo, hi)
}

/// Which kernel the rows of a frame run: chosen once per frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kernel {
    Scalar,
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl Kernel {
    pub(super) fn best() -> Self {
        #[cfg(target_arch = "x86_64")]
        if isa() >= Isa::Avx2 {
            return Kernel::Avx2;
        }
        Kernel::Scalar
    }
}

/// Run `rows` (each an output row with its taps and affine part) with `kernel`.
#[inline]
pub(super) fn run_rows<'x, T: Taps, I: Iterator<Item = (&'x mut [f32], T, f32)>>(
    kernel: Kernel,
    rows: I,
    lo: f32,
    r: f32,
) {
    match kernel {
        Kernel::Scalar => {
            for (y, taps, o) in rows {
                scalar::row(y, &taps, Affine { lo, r, o });
            }
        }
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Kernel::Avx2` is only chosen when the CPU has AVX2 (`best`).
        Kernel::Avx2 => unsafe { avx2::rows(rows, lo, r) },
    }
}

mod scalar {
    use super::{Affine, Taps};

    /// One output row, `y[j] = (sum_k c_k (x_k[j] - lo)) * r + o`.
    #[inline(always)]
    pub(super) fn row<T: Taps>(y: &mut [f32], taps: &T, a: Affine) {
        let Affine { lo, r, o } = a;
        match taps.len() {
            0 => y.fill(o),
            1 => {
                let (c0, x0) = (taps.coef(0), taps.source(0));
                for (v, &a0) in y.iter_mut().zip(x0) {
                    *v = (c0 * (a0 - lo)) * r + o;
                }
            }
            2 => {
                let (c0, c1, x0, x1) = (taps.coef(0), taps.coef(1), taps.source(0), taps.source(1));
                for ((v, &a0), &a1) in y.iter_mut().zip(x0).zip(x1) {
                    *v = (c0 * (a0 - lo) + c1 * (a1 - lo)) * r + o;
                }
            }
            n => {
                y.fill(0.0);
                for k in 0..n {
                    let c = taps.coef(k);
                    for (v, &a0) in y.iter_mut().zip(taps.source(k)) {
                        *v += c * (a0 - lo);
                    }
                }
                for v in y.iter_mut() {
                    *v = *v * r + o;
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::{
        __m256, _mm256_add_ps, _mm256_loadu_ps, _mm256_max_ps, _mm256_min_ps, _mm256_mul_ps,
        _mm256_set1_ps, _mm256_setzero_ps, _mm256_storeu_ps, _mm256_sub_ps,
    };

    use super::{Affine, LANES, Taps, fold, scalar};

    /// Eight values of `s` from `j`.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn load(s: &[f32], j: usize) -> __m256 {
        let s = &s[j..j + 8];
        // SAFETY: `s` holds exactly eight values.
        unsafe { _mm256_loadu_ps(s.as_ptr()) }
    }

    #[target_feature(enable = "avx2")]
    #[inline]
    fn store(s: &mut [f32], j: usize, v: __m256) {
        let s = &mut s[j..j + 8];
        // SAFETY: `s` holds exactly eight values.
        unsafe { _mm256_storeu_ps(s.as_mut_ptr(), v) }
    }

    #[target_feature(enable = "avx2")]
    pub(super) fn min_max(x: &[f32]) -> (f32, f32) {
        // `_mm256_min_ps(c, lo)` is `c < lo ? c : lo` lane by lane (NaN in `c`
        // keeps `lo`), the scalar twin's compare.
        let mut lo = _mm256_set1_ps(f32::INFINITY);
        let mut hi = _mm256_set1_ps(f32::NEG_INFINITY);
        let mut it = x.chunks_exact(LANES);
        for c in &mut it {
            let xv = load(c, 0);
            lo = _mm256_min_ps(xv, lo);
            hi = _mm256_max_ps(xv, hi);
        }
        let (mut lo_l, mut hi_l) = ([0.0f32; LANES], [0.0f32; LANES]);
        store(&mut lo_l, 0, lo);
        store(&mut hi_l, 0, hi);
        fold(lo_l, hi_l, it.remainder())
    }

    /// Vector starts covering `p >= 8` values: 0, 8, ... and `p - 8` last.
    #[inline(always)]
    fn starts(p: usize) -> impl Iterator<Item = usize> {
        (0..p.div_ceil(8)).map(move |i| (8 * i).min(p - 8))
    }

    #[target_feature(enable = "avx2")]
    pub(super) fn rows<'x, T: Taps, I: Iterator<Item = (&'x mut [f32], T, f32)>>(
        rows: I,
        lo: f32,
        r: f32,
    ) {
        let (lov, rv) = (_mm256_set1_ps(lo), _mm256_set1_ps(r));
        for (y, taps, o) in rows {
            let p = y.len();
            let n = taps.len();
            if p < 8 || n == 0 || (0..n).any(|k| taps.source(k).len() < p) {
                scalar::row(y, &taps, Affine { lo, r, o });
                continue;
            }
            let ov = _mm256_set1_ps(o);
            // The same operations, in the same order, as `scalar::row`.
            match n {
                1 => {
                    let (c0, x0) = (_mm256_set1_ps(taps.coef(0)), taps.source(0));
                    for j in starts(p) {
                        let t0 = _mm256_mul_ps(c0, _mm256_sub_ps(load(x0, j), lov));
                        store(y, j, _mm256_add_ps(_mm256_mul_ps(t0, rv), ov));
                    }
                }
                2 => {
                    let (c0, x0) = (_mm256_set1_ps(taps.coef(0)), taps.source(0));
                    let (c1, x1) = (_mm256_set1_ps(taps.coef(1)), taps.source(1));
                    for j in starts(p) {
                        let t0 = _mm256_mul_ps(c0, _mm256_sub_ps(load(x0, j), lov));
                        let t1 = _mm256_mul_ps(c1, _mm256_sub_ps(load(x1, j), lov));
                        store(y, j, _mm256_add_ps(_mm256_mul_ps(_mm256_add_ps(t0, t1), rv), ov));
                    }
                }
                _ => {
                    for j in starts(p) {
                        let mut acc = _mm256_setzero_ps();
                        for k in 0..n {
                            let c = _mm256_set1_ps(taps.coef(k));
                            let t = _mm256_mul_ps(c, _mm256_sub_ps(load(taps.source(k), j), lov));
                            acc = _mm256_add_ps(acc, t);
                        }
                        store(y, j, _mm256_add_ps(_mm256_mul_ps(acc, rv), ov));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Rows<'a> {
        src: Vec<&'a [f32]>,
        coef: Vec<f32>,
    }

    impl Taps for &Rows<'_> {
        fn len(&self) -> usize {
            self.coef.len()
        }
        fn source(&self, k: usize) -> &[f32] {
            self.src[k]
        }
        fn coef(&self, k: usize) -> f32 {
            self.coef[k]
        }
    }

    /// Values with the edge cases of float32: signed zeros, NaN, infinities, subnormals.
    fn values(n: usize, seed: u64) -> Vec<f32> {
        let special = [0.0, -0.0, f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e-40, -3.5];
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let u = (s >> 40) as f32 / (1u64 << 24) as f32;
                if (s >> 20) % 9 == 0 {
                    special[((s >> 8) % special.len() as u64) as usize]
                } else {
                    u * 50.0 - 10.0
                }
            })
            .collect()
    }

    #[test]
    fn every_kernel_gives_the_same_bits() {
        let Kernel::Avx2 = Kernel::best() else {
            return; // nothing to compare on this CPU
        };
        for n in 0..200 {
            let x = values(n, n as u64 + 1);
            let (got, want) = (min_max(&x), min_max_scalar(&x));
            assert_eq!(
                (got.0.to_bits(), got.1.to_bits()),
                (want.0.to_bits(), want.1.to_bits()),
                "{n} values"
            );
        }
        for p in 1..40 {
            for taps in 0..5 {
                let x = values(p * 6, (p * 31 + taps) as u64);
                let rows = Rows {
                    src: (0..taps).map(|k| &x[k * p..(k + 1) * p]).collect(),
                    coef: values(taps, 99).iter().map(|c| c / 7.0).collect(),
                };
                for (lo, r, o) in [(0.0, 1.0, 0.0), (-2.5, 0.031, -1.75), (1e-3, 7.0, -0.0)] {
                    let mut got = vec![1.0f32; p];
                    let mut want = vec![2.0f32; p];
                    run_rows(Kernel::Avx2, std::iter::once((&mut got[..], &rows, o)), lo, r);
                    run_rows(Kernel::Scalar, std::iter::once((&mut want[..], &rows, o)), lo, r);
                    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&got), bits(&want), "p {p}, {taps} taps");
                }
            }
        }
    }
}
