//! PCK at one to seven thresholds (fewer than a curve's) with the MPJPE's
//! sums, for unmasked 2-D joints, in one pass with explicit AVX2: each run
//! of eight joints goes from its coordinates to its counts in registers.
//! The flat loops of `fast_block` stored the squares and the distances of a
//! block, then read them back for the sums, the brackets and the counts,
//! with no load in flight meanwhile (0.6-0.8 of the time to read the inputs
//! once, on top of that read).
//!
//! Each entry's float64 square `q` is `joint_squares`' (the bits of
//! `fast_block`'s), and its root is summed in `fast_block`'s blocks
//! ([`RunSums`]), so the MPJPE keeps `mpjpe()`'s bits. The boundary
//! `sqrt(q) / s <= t` is bracketed as `bounds` brackets it, with the row's
//! scale folded into one factor: `x = q * (1 / s^2)` against
//! `t^2 (1 -+ 1e-12)`. The few roundings of `x` (about 4.4e-16 each) are far
//! inside that margin; with `s` and `t` in `[1e-150, 1e150]` the factor and
//! the bracket are normal numbers, and an `x` that underflows or overflows
//! lies far on its side of the bracket. So an entry outside the bracket is
//! decided as the exact test decides it. The exact test itself takes the entries inside
//! the bracket, every entry of a row whose scale is out of that range (or
//! skipped), and every entry at a threshold out of it. A NaN square passes
//! neither side of the bracket and fails, as the exact test fails it.

use std::arch::x86_64::{
    __m256d, _mm256_blendv_pd, _mm256_castpd_ps, _mm256_castps_si256, _mm256_castsi256_pd,
    _mm256_cmp_pd, _mm256_loadu_si256, _mm256_movemask_pd, _mm256_mul_pd, _mm256_or_pd,
    _mm256_set1_pd, _mm256_shuffle_ps, _mm256_sqrt_pd, _mm256_storeu_pd, _mm256_storeu_si256,
    _mm256_sub_epi32,
};

use super::distances_avx2::{RunSums, joint_squares};
use super::simd::square;

/// The entry of the run held by each lane of [`joint_squares`]' two
/// vectors (lanes 0 2 1 3 and 4 6 5 7).
const SQUARE_ORDER: [[usize; 4]; 2] = [[0, 2, 1, 3], [4, 6, 5, 7]];

/// The entry of the run held by each 32-bit lane of a count vector: the
/// low halves of the two vectors' masks, as `_mm256_shuffle_ps` picks them.
const COUNT_ORDER: [usize; 8] = [0, 2, 4, 6, 1, 3, 5, 7];

/// Per run of a group of eight rows of `k >= 8` joints: the row of its first
/// entry, which lanes hold entries of the next row (a run of eight spans at
/// most two rows), and each count lane's joint.
pub(crate) struct RunRows {
    first: Vec<usize>,
    next: Vec<[[i64; 4]; 2]>,
    joint: Vec<[usize; 8]>,
}

impl RunRows {
    /// `None` when a run could span three rows (`k < 8`).
    pub(crate) fn new(k: usize) -> Option<Self> {
        if k < 8 {
            return None;
        }
        let first: Vec<usize> = (0..k).map(|run| 8 * run / k).collect();
        let next = first
            .iter()
            .enumerate()
            .map(|(run, &row)| {
                SQUARE_ORDER.map(|half| half.map(|e| -i64::from((8 * run + e) / k > row)))
            })
            .collect();
        let joint = (0..k)
            .map(|run| COUNT_ORDER.map(|e| (8 * run + e) % k))
            .collect();
        Some(Self { first, next, joint })
    }

    pub(crate) fn k(&self) -> usize {
        self.first.len()
    }

    /// Add `counts` (`[threshold][run]`, lanes in count order) to
    /// `correct[t * k + joint]`.
    pub(crate) fn add_counts(&self, counts: &[[i32; 8]], correct: &mut [u64]) {
        let k = self.k();
        for (i, lanes) in counts.iter().enumerate() {
            let (ti, run) = (i / k, i % k);
            for (&c, &j) in lanes.iter().zip(&self.joint[run]) {
                correct[ti * k + j] += c as u64;
            }
        }
    }
}

/// Floats ahead of a run that it prefetches, in each slice (as the curve's):
/// PCK@0.2 + MPJPE on 1,000,000 x 17 joints took 16.6-16.8 ms without it,
/// 15.2-15.5 with it (1,024 and 2,048 ahead: no better; one thread,
/// AVX-512 VM).
const PREFETCH: usize = 512;

/// The bracket of one threshold `t` in `x = q / s^2`: `x <= lo` surely
/// passes, `x > hi` surely fails. A `t` outside `[1e-150, 1e150]` (where
/// `t^2` or the products could leave the normal range) brackets nothing:
/// every entry takes the exact test.
pub(crate) fn limits(t: f64) -> (f64, f64, f64) {
    if (1e-150..=1e150).contains(&t) {
        let b = t * t;
        (b * (1.0 - 1e-12), b * (1.0 + 1e-12), t)
    } else {
        (f64::NEG_INFINITY, f64::INFINITY, t)
    }
}

/// The eight rows' factors `1 / s^2`, and a ninth (the "next row" of a run
/// in the last row, never picked); NaN for a scale outside
/// `[1e-150, 1e150]` or NaN (a skipped row). Returns whether every factor
/// is a number.
#[target_feature(enable = "avx2")]
fn factors(scale: &[f64; 8], inv: &mut [f64; 9]) -> bool {
    use std::arch::x86_64::{
        _CMP_GE_OQ, _CMP_LE_OQ, _mm256_and_pd, _mm256_div_pd, _mm256_loadu_pd,
    };
    let mut all = 0;
    for h in 0..2 {
        // SAFETY: four doubles from eight, four into nine.
        unsafe {
            let s = _mm256_loadu_pd(scale.as_ptr().add(4 * h));
            let ok = _mm256_and_pd(
                _mm256_cmp_pd::<_CMP_GE_OQ>(s, _mm256_set1_pd(1e-150)),
                _mm256_cmp_pd::<_CMP_LE_OQ>(s, _mm256_set1_pd(1e150)),
            );
            let f = _mm256_div_pd(_mm256_set1_pd(1.0), _mm256_mul_pd(s, s));
            let f = _mm256_blendv_pd(_mm256_set1_pd(f64::NAN), f, ok);
            _mm256_storeu_pd(inv.as_mut_ptr().add(4 * h), f);
            all |= _mm256_movemask_pd(ok) << (4 * h);
        }
    }
    inv[8] = inv[7];
    all == 0xff
}

/// Counts of the whole groups of eight rows of `p`, `g` (rows of
/// `k = rows.k()` unmasked 2-D joints, interleaved x, y) at the `T`
/// thresholds `limits` (from [`limits`], sorted): entries that pass are
/// added to `counts[t * k + run]`, lanes in count order. A group's scales
/// come from `fill(first row, scale)` at the last run of the group before:
/// their loads find the lines that group's prefetches brought in, and their
/// latency hides under its runs. (Halfway through, the later rows' lines
/// were not in yet: PCK + MPJPE on 1,000,000 x 17 joints took 16.1-16.3 ms
/// against 15.5-15.7, one thread, AVX-512 VM.)
/// With `SUMS`, the entries' float64 distances are added to `sums.0` as
/// `fast_block` adds them in blocks of `sums.1` entries from the first row
/// ([`RunSums`]). Returns the groups taken and, without `SUMS`, whether the
/// sum of the squares is finite (false for any NaN or infinite square, and
/// for an overflow, where the caller's scan finds nothing); with them, the
/// sum of the roots tells.
///
/// A group with an entry inside its bracket, or a row without a factor,
/// goes through [`settle_group`] after its runs: a check per group, where a
/// check per run cost about a tenth of the pass at four thresholds (within
/// noise at one).
#[target_feature(enable = "avx2")]
pub(crate) fn pck_2d<const T: usize, const SUMS: bool>(
    (p, g): (&[f32], &[f32]),
    mut fill: impl FnMut(usize, &mut [f64; 8]),
    rows: &RunRows,
    limits: &[(f64, f64, f64); T],
    counts: &mut [[i32; 8]],
    sums: (&mut f64, usize),
) -> (usize, bool) {
    use std::arch::x86_64::{
        _CMP_EQ_OQ, _CMP_LE_OQ, _MM_HINT_T0, _mm_loadu_ps, _mm_prefetch, _mm256_add_pd,
        _mm256_andnot_pd, _mm256_setzero_pd, _mm256_sub_pd,
    };
    let k = rows.k();
    let groups = (p.len() / (16 * k))
        .min(g.len() / (16 * k))
        .min(if counts.len() >= T * k { usize::MAX } else { 0 });
    let mut squares = _mm256_setzero_pd();
    let mut lanes_sum = RunSums::new(sums.1);
    let bounds = limits.map(|(lo, hi, _)| (_mm256_set1_pd(lo), _mm256_set1_pd(hi)));
    let (mut scale, mut inv) = ([0.0; 8], [0.0; 9]);
    let mut valid = true;
    if groups > 0 {
        fill(0, &mut scale);
        valid = factors(&scale, &mut inv);
    }
    for grp in 0..groups {
        let (this_scale, this_inv, this_valid) = (scale, inv, valid);
        let entries = grp * 8 * k;
        let (pg, gg) = (
            &p[2 * entries..2 * (entries + 8 * k)],
            &g[2 * entries..2 * (entries + 8 * k)],
        );
        let mut open = _mm256_setzero_pd();
        for run in 0..k {
            if run == k - 1 && grp + 1 < groups {
                fill(8 * (grp + 1), &mut scale);
                valid = factors(&scale, &mut inv);
            }
            let first = rows.first[run];
            // SAFETY: every load reads inside the group's slices (16 floats
            // a run, k runs); the tables hold k runs; `first + 1 <= 8`;
            // `counts` holds T k runs (checked above).
            unsafe {
                let (pr, gr) = (pg.as_ptr().add(16 * run), gg.as_ptr().add(16 * run));
                _mm_prefetch::<_MM_HINT_T0>(pr.wrapping_add(PREFETCH).cast());
                _mm_prefetch::<_MM_HINT_T0>(gr.wrapping_add(PREFETCH).cast());
                let q: [__m256d; 2] = [0, 1].map(|h| {
                    joint_squares(
                        [_mm_loadu_ps(pr.add(8 * h)), _mm_loadu_ps(pr.add(8 * h + 4))],
                        [_mm_loadu_ps(gr.add(8 * h)), _mm_loadu_ps(gr.add(8 * h + 4))],
                    )
                });
                if SUMS {
                    lanes_sum.add([_mm256_sqrt_pd(q[0]), _mm256_sqrt_pd(q[1])], sums.0);
                } else {
                    // Squares are >= 0: a NaN or infinite one makes the sum so.
                    squares = _mm256_add_pd(squares, _mm256_add_pd(q[0], q[1]));
                }
                let (a, b) = (
                    _mm256_set1_pd(*this_inv.get_unchecked(first)),
                    _mm256_set1_pd(*this_inv.get_unchecked(first + 1)),
                );
                let next = &rows.next[run];
                let x = [0, 1].map(|h| {
                    let m = _mm256_castsi256_pd(_mm256_loadu_si256(next[h].as_ptr().cast()));
                    _mm256_mul_pd(q[h], _mm256_blendv_pd(a, b, m))
                });
                for (ti, &(lo, hi)) in bounds.iter().enumerate() {
                    let pass = x.map(|x| _mm256_cmp_pd::<_CMP_LE_OQ>(x, lo));
                    let maybe = x.map(|x| _mm256_cmp_pd::<_CMP_LE_OQ>(x, hi));
                    open = _mm256_or_pd(open, _mm256_andnot_pd(pass[0], maybe[0]));
                    open = _mm256_or_pd(open, _mm256_andnot_pd(pass[1], maybe[1]));
                    let c = counts.get_unchecked_mut(ti * k + run);
                    let m = _mm256_castps_si256(_mm256_shuffle_ps::<0b10_00_10_00>(
                        _mm256_castpd_ps(pass[0]),
                        _mm256_castpd_ps(pass[1]),
                    ));
                    let now = _mm256_loadu_si256(c.as_ptr().cast());
                    _mm256_storeu_si256(c.as_mut_ptr().cast(), _mm256_sub_epi32(now, m));
                }
            }
        }
        if _mm256_movemask_pd(open) != 0 || !this_valid {
            let group = &mut counts[..T * k];
            settle_group((pg, gg), (&this_scale, &this_inv), limits, group);
        }
    }
    if SUMS {
        lanes_sum.flush(sums.0);
    }
    // s - s is 0 for a finite sum, NaN otherwise (an overflow of finite
    // squares too: the caller's scan then finds nothing).
    let z = _mm256_sub_pd(squares, squares);
    let finite = _mm256_movemask_pd(_mm256_cmp_pd::<_CMP_EQ_OQ>(z, z)) == 0b1111;
    (groups, finite)
}

/// A count lane's entry in its run ([`COUNT_ORDER`] inverted).
const COUNT_LANE: [usize; 8] = [0, 4, 1, 5, 2, 6, 3, 7];

/// The exact test `sqrt(q) / s <= t` (as `settle_row` takes it) for every
/// entry of one group that [`pck_2d`] left open: inside its bracket, or in a
/// row without a factor (the same `q` and `x = q * factor`, so the same
/// entries). A pass adds one to its lane of `counts[t * k + run]`.
#[cold]
fn settle_group<const T: usize>(
    (p, g): (&[f32], &[f32]),
    (scale, inv): (&[f64; 8], &[f64; 9]),
    limits: &[(f64, f64, f64); T],
    counts: &mut [[i32; 8]],
) {
    let k = p.len() / 16;
    for (e, (pe, ge)) in p.chunks_exact(2).zip(g.chunks_exact(2)).enumerate() {
        let row = e / k;
        let q = square::<2>(pe, ge);
        let x = q * inv[row];
        for (ti, &(lo, hi, t)) in limits.iter().enumerate() {
            // As the vector's masks: NaN passes neither.
            let (pass, maybe) = (x <= lo, x <= hi);
            let open = inv[row].is_nan() || (maybe && !pass);
            if open && q.sqrt() / scale[row] <= t {
                counts[ti * k + e / 8][COUNT_LANE[e % 8]] += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::simd::{Isa, isa, masked_sum};
    use super::*;

    /// Rows of `k` joints with every case the pass must decide as the exact
    /// test: NaN and infinite predictions, zero distances, and entries
    /// whose normalised distance is exactly a threshold (drawn from them).
    fn batch(k: usize, rows: usize, seed: u64) -> (Vec<f32>, Vec<f32>, Vec<f64>) {
        let mut state = seed;
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32) / (1u64 << 24) as f32
        };
        let m = rows * k;
        let g: Vec<f32> = (0..2 * m).map(|_| next() * 4.0).collect();
        let mut p: Vec<f32> = g.iter().map(|&x| x + (next() - 0.5)).collect();
        let mut scale: Vec<f64> = (0..rows).map(|_| f64::from(0.5 + next())).collect();
        for e in (0..m).step_by(37) {
            p[2 * e] = f32::NAN;
        }
        p[2 * 5 + 1] = f32::INFINITY;
        p[2 * 9..2 * 9 + 2].copy_from_slice(&g[2 * 9..2 * 9 + 2]);
        // Rows without a usable factor: skipped, zero, tiny and huge scales.
        scale[3] = f64::NAN;
        scale[11] = 0.0;
        scale[12] = 1e-200;
        scale[30] = 1e200;
        // Scale 1 and distances of 0.5 and 0.25: exactly the thresholds below.
        scale[20] = 1.0;
        for j in 0..k {
            let e = 20 * k + j;
            p[2 * e] = g[2 * e] + if j % 2 == 0 { 0.5 } else { 0.25 };
            p[2 * e + 1] = g[2 * e + 1];
        }
        (p, g, scale)
    }

    fn run<const T: usize, const SUMS: bool>(k: usize, limits_t: [f64; T]) {
        let (rows, block_rows) = (8 * 13, 30.min(512 / k));
        let (p, g, scale) = batch(k, rows, 99 + k as u64);
        let dist = |p: &[f32]| -> Vec<f64> {
            p.chunks_exact(2)
                .zip(g.chunks_exact(2))
                .map(|(pe, ge)| square::<2>(pe, ge).sqrt())
                .collect()
        };
        // fast_block's sums: masked_sum block by block.
        let want_sum = |p: &[f32]| -> f64 {
            dist(p)
                .chunks(block_rows * k)
                .map(|b| masked_sum(b, None).0)
                .sum()
        };
        let rows_table = RunRows::new(k).unwrap();
        let lim = limits_t.map(limits);
        let pass = |p: &[f32]| {
            let mut counts = vec![[0i32; 8]; T * k];
            let mut sum = 0.0;
            let fill = |row: usize, out: &mut [f64; 8]| out.copy_from_slice(&scale[row..row + 8]);
            // SAFETY: the CPU has AVX2 (checked by the caller).
            let (groups, finite) = unsafe {
                let sums = (&mut sum, block_rows * k);
                pck_2d::<T, SUMS>((p, &g), fill, &rows_table, &lim, &mut counts, sums)
            };
            assert_eq!(groups, rows / 8);
            let mut got = vec![0u64; T * k];
            rows_table.add_counts(&counts, &mut got);
            (got, sum, finite)
        };
        // The exact test.
        let mut want = vec![0u64; T * k];
        for (e, d) in dist(&p).iter().enumerate() {
            for (ti, &t) in limits_t.iter().enumerate() {
                want[ti * k + e % k] += u64::from(d / scale[e / k] <= t);
            }
        }
        let (got, sum, finite) = pass(&p);
        assert_eq!(got, want, "k {k}, thresholds {limits_t:?}");
        // Without the NaN and infinite predictions, the sums are numbers.
        let clean: Vec<f32> = p
            .iter()
            .map(|x| if x.is_finite() { *x } else { 0.0 })
            .collect();
        let (_, clean_sum, clean_finite) = pass(&clean);
        if SUMS {
            assert!(sum.is_nan() && want_sum(&p).is_nan());
            let w = want_sum(&clean);
            assert_eq!(clean_sum.to_bits(), w.to_bits(), "k {k}: fast_block's bits");
        } else {
            assert!(!finite, "the NaN predictions are reported");
            assert!(clean_finite, "finite squares are not reported");
        }
    }

    #[test]
    fn the_pass_decides_as_the_exact_test() {
        if isa() < Isa::Avx2 {
            return;
        }
        for k in [8, 13, 15, 17, 21] {
            run::<1, true>(k, [0.5]);
            run::<1, false>(k, [0.25]);
            run::<2, true>(k, [0.25, 0.5]);
            run::<3, false>(k, [0.0, 0.25, 0.3]);
            // Thresholds without a bracket: negative, tiny and huge.
            run::<4, true>(k, [-1.0, 1e-200, 0.5, 1e200]);
            run::<7, true>(k, [0.05, 0.1, 0.2, 0.25, 0.3, 0.5, 1.0]);
            run::<0, true>(k, []);
        }
    }

    #[test]
    fn short_joint_counts_have_no_run_table() {
        assert!(RunRows::new(7).is_none());
        assert!(RunRows::new(8).is_some());
    }
}
