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

/// One antenna's part of a frame: output row `i` (`p` values) takes the taps
/// `start[i]..start[i + 1]`, tap `k` reading `p` values of `x` from `off[k]`
/// (its source subcarrier times `p`) with coefficient `coef[k]`; `offset[i]`
/// is the row's `o`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Rows<'a> {
    pub x: &'a [f32],
    pub p: usize,
    pub start: &'a [usize],
    pub off: &'a [usize],
    pub coef: &'a [f32],
    pub offset: &'a [f32],
    /// Values to pull into the cache while the rows run (the part of the next
    /// frame this antenna's rows stand for), or empty.
    pub ahead: &'a [f32],
}

impl Rows<'_> {
    /// True when every tap reads inside an `x` of `x_len` values, every row's
    /// taps exist and `y_len` is the output's size: what the AVX2 kernel's
    /// unchecked reads need. (It ignores `self.x`: checked once per transform.)
    pub(super) fn in_bounds(&self, x_len: usize, y_len: usize) -> bool {
        let t = self.offset.len();
        let taps = self.start.last().copied().unwrap_or(0);
        self.p >= 8
            && y_len == t * self.p
            && self.start.len() == t + 1
            && self.start.windows(2).all(|w| w[0] <= w[1])
            && taps <= self.off.len().min(self.coef.len())
            && self
                .off
                .iter()
                .all(|&o| o.checked_add(self.p).is_some_and(|e| e <= x_len))
    }
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

/// Transform `rows` into `y`. `checked` is `Some((x_len, y_len))` when
/// `rows.in_bounds(x_len, y_len)` holds (checked once per transform).
#[inline]
pub(super) fn run_rows(
    rows: &Rows<'_>,
    checked: Option<(usize, usize)>,
    y: &mut [f32],
    lo: f32,
    r: f32,
) {
    let fast = checked == Some((rows.x.len(), y.len()));
    #[cfg(target_arch = "x86_64")]
    if fast && isa() >= Isa::Avx2 {
        // SAFETY: isa() reports only features the CPU has; `fast` says the
        // reads and writes are in bounds.
        return unsafe { avx2::rows(rows, y, lo, r) };
    }
    let _ = fast;
    for (i, (yr, &o)) in y.chunks_exact_mut(rows.p).zip(rows.offset).enumerate() {
        let ks = rows.start[i]..rows.start[i + 1];
        scalar::row(yr, rows, ks, Affine { lo, r, o });
    }
}

mod scalar {
    use std::ops::Range;

    use super::{Affine, Rows};

    /// One output row, `y[j] = (sum_k c_k (x_k[j] - lo)) * r + o`.
    #[inline(always)]
    pub(super) fn row(y: &mut [f32], rows: &Rows<'_>, ks: Range<usize>, a: Affine) {
        let Affine { lo, r, o } = a;
        let p = y.len();
        let source = |k: usize| &rows.x[rows.off[k]..rows.off[k] + p];
        let (k0, n) = (ks.start, ks.len());
        match n {
            0 => y.fill(o),
            1 => {
                let (c0, x0) = (rows.coef[k0], source(k0));
                for (v, &a0) in y.iter_mut().zip(x0) {
                    *v = (c0 * (a0 - lo)) * r + o;
                }
            }
            2 => {
                let (c0, c1) = (rows.coef[k0], rows.coef[k0 + 1]);
                let (x0, x1) = (source(k0), source(k0 + 1));
                for ((v, &a0), &a1) in y.iter_mut().zip(x0).zip(x1) {
                    *v = (c0 * (a0 - lo) + c1 * (a1 - lo)) * r + o;
                }
            }
            _ => {
                y.fill(0.0);
                for k in ks {
                    let c = rows.coef[k];
                    for (v, &a0) in y.iter_mut().zip(source(k)) {
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
        __m256, _MM_HINT_T0, _mm_prefetch, _mm256_add_ps, _mm256_loadu_ps, _mm256_max_ps,
        _mm256_min_ps, _mm256_mul_ps, _mm256_set1_ps, _mm256_setzero_ps, _mm256_storeu_ps,
        _mm256_sub_ps,
    };

    use super::{LANES, Rows, fold};

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
        // keeps `lo`), the scalar twin's compare. Four registers take turns
        // so the compare chains overlap; they can only disagree with the
        // twin's single register on which zero (+0 or -0) wins a tie, so a
        // frame whose minimum or maximum is zero is redone in the twin's order.
        let mut lo = [_mm256_set1_ps(f32::INFINITY); 4];
        let mut hi = [_mm256_set1_ps(f32::NEG_INFINITY); 4];
        let mut it = x.chunks_exact(4 * LANES);
        for c in &mut it {
            for v in 0..4 {
                let xv = load(c, LANES * v);
                lo[v] = _mm256_min_ps(xv, lo[v]);
                hi[v] = _mm256_max_ps(xv, hi[v]);
            }
        }
        let (l, h) = (
            _mm256_min_ps(_mm256_min_ps(lo[0], lo[1]), _mm256_min_ps(lo[2], lo[3])),
            _mm256_max_ps(_mm256_max_ps(hi[0], hi[1]), _mm256_max_ps(hi[2], hi[3])),
        );
        let (mut lo_l, mut hi_l) = ([0.0f32; LANES], [0.0f32; LANES]);
        store(&mut lo_l, 0, l);
        store(&mut hi_l, 0, h);
        let rest = it.remainder();
        let mut tail = rest.chunks_exact(LANES);
        for c in &mut tail {
            for (j, &v) in c.iter().enumerate() {
                lo_l[j] = if v < lo_l[j] { v } else { lo_l[j] };
                hi_l[j] = if v > hi_l[j] { v } else { hi_l[j] };
            }
        }
        let (lo, hi) = fold(lo_l, hi_l, tail.remainder());
        if lo == 0.0 || hi == 0.0 {
            return one_register(x);
        }
        (lo, hi)
    }

    /// The scalar twin's order exactly: one register of eight lanes.
    #[target_feature(enable = "avx2")]
    fn one_register(x: &[f32]) -> (f32, f32) {
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

    /// The rows of one antenna, the same operations in the same order as
    /// `scalar::row`; a row of `p` values is covered by vectors at 0, 8, ...
    /// and `p - 8` last.
    ///
    /// # Safety
    /// The CPU has AVX2 and `rows.in_bounds(rows.x.len(), y.len())`.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn rows(rows: &Rows<'_>, y: &mut [f32], lo: f32, r: f32) {
        let p = rows.p;
        let (xp, yp) = (rows.x.as_ptr(), y.as_mut_ptr());
        let (lov, rv) = (_mm256_set1_ps(lo), _mm256_set1_ps(r));
        // SAFETY: `in_bounds`: row i's taps k lie in `start[i]..start[i + 1]`
        // within `off` and `coef`, each reads `x[off[k]..off[k] + p]`, and row i
        // writes `y[i p..(i + 1) p]` with `p >= 8`; every access below is a
        // vector of eight at `j <= p - 8` inside those ranges.
        unsafe {
            let ahead = rows.ahead.as_ptr().cast::<i8>();
            let ahead_bytes = std::mem::size_of_val(rows.ahead);
            for (i, &o) in rows.offset.iter().enumerate() {
                // Two lines of the next frame per row: its misses overlap this
                // frame's arithmetic instead of stalling the next min-max pass
                // (asked for all at once they queue behind each other and
                // were slower than the pages alone; benches/bench_data_cpu.py).
                for line in [2 * i, 2 * i + 1] {
                    if line * 64 < ahead_bytes {
                        _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(line * 64));
                    }
                }
                let (k0, k1) = (
                    *rows.start.get_unchecked(i),
                    *rows.start.get_unchecked(i + 1),
                );
                let yr = yp.add(i * p);
                let ov = _mm256_set1_ps(o);
                let src = |k: usize| xp.add(*rows.off.get_unchecked(k));
                let coef = |k: usize| _mm256_set1_ps(*rows.coef.get_unchecked(k));
                let term = |c: __m256, x: *const f32, j: usize| {
                    _mm256_mul_ps(c, _mm256_sub_ps(_mm256_loadu_ps(x.add(j)), lov))
                };
                // Vectors at 0, 8, ... and p - 8; straight-line for rows of 8 to 16.
                macro_rules! each_vector {
                    ($jj:ident => $body:block) => {
                        if p <= 16 {
                            let $jj = 0;
                            $body
                            if p > 8 {
                                let $jj = p - 8;
                                $body
                            }
                        } else {
                            let mut j = 0;
                            while j < p {
                                let $jj = j.min(p - 8);
                                $body
                                j += 8;
                            }
                        }
                    };
                }
                match k1 - k0 {
                    1 => {
                        let (c0, x0) = (coef(k0), src(k0));
                        each_vector!(jj => {
                            let v = _mm256_mul_ps(term(c0, x0, jj), rv);
                            _mm256_storeu_ps(yr.add(jj), _mm256_add_ps(v, ov));
                        });
                    }
                    2 => {
                        let (c0, x0, c1, x1) = (coef(k0), src(k0), coef(k0 + 1), src(k0 + 1));
                        each_vector!(jj => {
                            let s = _mm256_add_ps(term(c0, x0, jj), term(c1, x1, jj));
                            let v = _mm256_mul_ps(s, rv);
                            _mm256_storeu_ps(yr.add(jj), _mm256_add_ps(v, ov));
                        });
                    }
                    0 => each_vector!(jj => {
                        _mm256_storeu_ps(yr.add(jj), ov);
                    }),
                    _ => each_vector!(jj => {
                        let mut acc = _mm256_setzero_ps();
                        for k in k0..k1 {
                            acc = _mm256_add_ps(acc, term(coef(k), src(k), jj));
                        }
                        let v = _mm256_mul_ps(acc, rv);
                        _mm256_storeu_ps(yr.add(jj), _mm256_add_ps(v, ov));
                    }),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values with the edge cases of float32: signed zeros, NaN, infinities, subnormals.
    fn values(n: usize, seed: u64) -> Vec<f32> {
        let special = [
            0.0,
            -0.0,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            1e-40,
            -3.5,
        ];
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let u = (s >> 40) as f32 / (1u64 << 24) as f32;
                if (s >> 20).is_multiple_of(9) {
                    special[((s >> 8) % special.len() as u64) as usize]
                } else {
                    u * 50.0 - 10.0
                }
            })
            .collect()
    }

    #[test]
    fn every_kernel_gives_the_same_bits() {
        #[cfg(target_arch = "x86_64")]
        if isa() < Isa::Avx2 {
            return; // nothing to compare on this CPU
        }
        for n in 0..200 {
            let x = values(n, n as u64 + 1);
            let (got, want) = (min_max(&x), min_max_scalar(&x));
            assert_eq!(
                (got.0.to_bits(), got.1.to_bits()),
                (want.0.to_bits(), want.1.to_bits()),
                "{n} values"
            );
        }
        // Bits, every NaN as one: which NaN payload an operation passes on
        // depends on its operand order, which the compiler may swap.
        let bits = |v: &[f32]| {
            v.iter()
                .map(|f| if f.is_nan() { u32::MAX } else { f.to_bits() })
                .collect::<Vec<_>>()
        };
        for p in 1..40 {
            // Six source rows; output rows of 0..=4 taps reading them in any order.
            let x = values(p * 6, p as u64 * 31);
            let (mut start, mut off) = (vec![0], vec![]);
            for (i, taps) in [2, 1, 0, 3, 4, 2, 1].into_iter().enumerate() {
                off.extend((0..taps).map(|k| ((i * 5 + k * 3) % 6) * p));
                start.push(off.len());
            }
            let coef: Vec<f32> = values(off.len(), 99).iter().map(|c| c / 7.0).collect();
            let offset = values(7, p as u64);
            let rows = Rows {
                x: &x,
                p,
                start: &start,
                off: &off,
                coef: &coef,
                offset: &offset,
                ahead: &x,
            };
            assert_eq!(rows.in_bounds(6 * p, 7 * p), p >= 8);
            assert!(!rows.in_bounds(6 * p - 1, 7 * p) && !rows.in_bounds(6 * p, 7 * p + 1));
            let checked = rows.in_bounds(6 * p, 7 * p).then_some((6 * p, 7 * p));
            for (lo, r) in [(0.0, 1.0), (-2.5, 0.031), (1e-3, 7.0), (-0.0, 1.0)] {
                let (mut got, mut want) = (vec![1.0f32; 7 * p], vec![2.0f32; 7 * p]);
                run_rows(&rows, checked, &mut got, lo, r);
                run_rows(&rows, None, &mut want, lo, r);
                assert_eq!(bits(&got), bits(&want), "p {p}");
            }
        }
    }
}
