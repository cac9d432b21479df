//! The float32 PCK curve of unmasked 2-D joints in one pass with explicit
//! AVX2: each run of eight joints goes from its coordinates to its histogram
//! cells in registers. The flat loops of `curve_block32` stored the squares,
//! a factor per entry, a joint per entry and the cells in block buffers and
//! read them back (28 bytes an entry through L2, beside the 16 read from
//! memory); here a group of eight rows keeps its eight factors in one
//! register and each lane picks its row's with a permute. The arithmetic per
//! entry is [`Grid32::cells`]' (the same float32 operations), so the cells
//! it marks sure are the same, and those are the exact test's.

use std::ops::Range;

use std::arch::x86_64::{_mm256_castps256_ps128, _mm256_extractf128_ps, _mm256_sqrt_pd};

use super::curve_grid::Grid32;
use super::distances_avx2::{RunSums, in_order, joint_squares};

/// The entry of the group's run held by each lane: the pair sums of
/// `_mm256_hadd_ps` come out as joints 0 1 4 5 2 3 6 7 of the run.
const ORDER: [usize; 8] = [0, 1, 4, 5, 2, 3, 6, 7];

/// For groups of eight rows of `k` joints (`8 k` entries in `k` runs of
/// eight): each lane's row in the group and joint, run by run.
pub(crate) struct Lanes {
    row: Vec<[i32; 8]>,
    joint: Vec<[u32; 8]>,
}

impl Lanes {
    pub(crate) fn new(k: usize) -> Self {
        let entry = |run: usize, lane: usize| 8 * run + ORDER[lane];
        Self {
            row: (0..k)
                .map(|r| std::array::from_fn(|l| (entry(r, l) / k) as i32))
                .collect(),
            joint: (0..k)
                .map(|r| std::array::from_fn(|l| (entry(r, l) % k) as u32))
                .collect(),
        }
    }

    fn k(&self) -> usize {
        self.row.len()
    }
}

/// Floats ahead of a run that it prefetches, in each slice: 2 KiB. Without
/// it the pass ran at 28 ms on 1,000,000 x 17 joints (one thread, AVX-512
/// VM); 256, 512, 1,024 and 2,048 floats ran at 24.5, 23.1, 23.3 and 24.4.
const PREFETCH: usize = 512;

/// The histogram cells (`index * k + joint`) of the entries of the whole
/// groups of eight rows of `scale.len()` rows of `k = lanes.k()` unmasked
/// 2-D joints (`p`, `g`: interleaved x, y), into `cells` in each run's lane
/// order (the histogram does not need entry order). Each group's scales are
/// filled in by `fill(rows, scale[rows])` (NaN: a skipped row) just before
/// its joints are read, so that its loads find lines the stream of the
/// previous group brought in; its factors are [`Grid32::row_factor`]'s.
/// Entries the float32 index cannot decide surely take `open(entry, scale)`:
/// the cell of the exact test (entries counted from the first row). Returns
/// whether every float32 square is finite.
///
/// The caller counts the cells after the block: increments between the
/// runs, run by run or group by group, took 15-20 of 32-37 ms on 1,000,000
/// x 17 joints (one thread, AVX-512 VM) where a pass of their own takes
/// about 6-7 under the profiler.
///
/// With `SUMS`, the MPJPE's float64 distances of the same loads are added to
/// `sums.0` as `fast_block` adds them: `simd::masked_sum`'s eight lanes over
/// blocks of `sums.1` entries from the first row, each block's lane total
/// in turn, so the same bits as `mpjpe()`. A run's lanes are entries
/// `8 r .. 8 r + 8`, so each lands in one masked_sum lane per block (its
/// offset in the block modulo 8): the lanes are kept in run order and
/// rotated once per block.
#[target_feature(enable = "avx2")]
pub(crate) fn cells_2d<const SUMS: bool>(
    (p, g): (&[f32], &[f32]),
    (scale, mut fill): (&mut [f64], impl FnMut(Range<usize>, &mut [f64])),
    (grid, lanes): (&Grid32, &Lanes),
    open: impl Fn(usize, &[f64]) -> u32,
    cells: &mut [u32],
    sums: (&mut f64, usize),
) -> bool {
    use std::arch::x86_64::{
        _CMP_EQ_OQ, _CMP_GE_OQ, _CMP_GT_OQ, _CMP_LE_OQ, _CMP_LT_OQ, _MM_FROUND_NO_EXC,
        _MM_FROUND_TO_POS_INF, _MM_HINT_T0, _mm_prefetch, _mm256_add_epi32, _mm256_add_ps,
        _mm256_and_ps, _mm256_cmp_ps, _mm256_cvttps_epi32, _mm256_hadd_ps, _mm256_loadu_ps,
        _mm256_loadu_si256, _mm256_max_ps, _mm256_min_ps, _mm256_movemask_ps, _mm256_mul_ps,
        _mm256_mullo_epi32, _mm256_permutevar8x32_ps, _mm256_round_ps, _mm256_set1_epi32,
        _mm256_set1_ps, _mm256_setzero_ps, _mm256_sqrt_ps, _mm256_storeu_si256, _mm256_sub_ps,
    };
    let k = lanes.k();
    let groups = (scale.len() / 8)
        .min(p.len() / (16 * k))
        .min(g.len() / (16 * k))
        .min(cells.len() / (8 * k));
    let (off, lo, hi, margin) = grid.constants();
    let (qmin, qmax) = Grid32::square_range();
    let mut nan = _mm256_setzero_ps();
    let mut lanes_sum = RunSums::new(sums.1);
    for grp in 0..groups {
        let (rows, entries) = (8 * grp..8 * grp + 8, grp * 8 * k);
        fill(rows.clone(), &mut scale[rows.clone()]);
        let factors: [f32; 8] = std::array::from_fn(|r| grid.row_factor(scale[8 * grp + r]));
        let (pg, gg) = (
            &p[2 * entries..2 * (entries + 8 * k)],
            &g[2 * entries..2 * (entries + 8 * k)],
        );
        // SAFETY: every load reads inside the group's slices (16 floats a
        // run, k runs), the tables hold 8 lanes a run, and the cells 8 u32.
        unsafe {
            let factors = _mm256_loadu_ps(factors.as_ptr());
            for run in 0..k {
                let (pr, gr) = (pg.as_ptr().add(16 * run), gg.as_ptr().add(16 * run));
                _mm_prefetch::<_MM_HINT_T0>(pr.wrapping_add(PREFETCH).cast());
                _mm_prefetch::<_MM_HINT_T0>(gr.wrapping_add(PREFETCH).cast());
                let (p0, p1) = (_mm256_loadu_ps(pr), _mm256_loadu_ps(pr.add(8)));
                let (g0, g1) = (_mm256_loadu_ps(gr), _mm256_loadu_ps(gr.add(8)));
                if SUMS {
                    let half = |v| [_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v)];
                    let lo = _mm256_sqrt_pd(joint_squares(half(p0), half(g0)));
                    let hi = _mm256_sqrt_pd(joint_squares(half(p1), half(g1)));
                    lanes_sum.add([lo, hi], sums.0);
                }
                let (d0, d1) = (_mm256_sub_ps(p0, g0), _mm256_sub_ps(p1, g1));
                // x^2 + y^2 of joints 0 1 4 5 2 3 6 7 (ORDER).
                let q = _mm256_hadd_ps(_mm256_mul_ps(d0, d0), _mm256_mul_ps(d1, d1));
                let a = _mm256_permutevar8x32_ps(
                    factors,
                    _mm256_loadu_si256(lanes.row[run].as_ptr().cast()),
                );
                let f = _mm256_sub_ps(_mm256_mul_ps(_mm256_sqrt_ps(q), a), _mm256_set1_ps(off));
                // max(lo, f) and min(hi, f) return f when it is NaN, as the
                // scalar clamps do.
                let f = _mm256_min_ps(_mm256_set1_ps(hi), _mm256_max_ps(_mm256_set1_ps(lo), f));
                let c = _mm256_round_ps::<{ _MM_FROUND_TO_POS_INF | _MM_FROUND_NO_EXC }>(f);
                let gap = _mm256_sub_ps(c, f);
                let above = _mm256_cmp_ps::<_CMP_GT_OQ>(gap, _mm256_set1_ps(margin));
                let below = _mm256_cmp_ps::<_CMP_LT_OQ>(gap, _mm256_set1_ps(1.0 - margin));
                let inside = _mm256_and_ps(
                    _mm256_cmp_ps::<_CMP_GE_OQ>(q, _mm256_set1_ps(qmin)),
                    _mm256_cmp_ps::<_CMP_LE_OQ>(q, _mm256_set1_ps(qmax)),
                );
                let sure = _mm256_movemask_ps(_mm256_and_ps(_mm256_and_ps(above, below), inside));
                let cell = _mm256_add_epi32(
                    _mm256_mullo_epi32(_mm256_cvttps_epi32(c), _mm256_set1_epi32(k as i32)),
                    _mm256_loadu_si256(lanes.joint[run].as_ptr().cast()),
                );
                let run_cells = &mut cells[entries + 8 * run..entries + 8 * run + 8];
                _mm256_storeu_si256(run_cells.as_mut_ptr().cast(), cell);
                if sure != 0xff {
                    // A square outside the range (NaN, infinite) is never sure.
                    nan = _mm256_add_ps(nan, _mm256_sub_ps(q, q));
                    for (lane, cl) in run_cells.iter_mut().enumerate() {
                        if sure & (1 << lane) == 0 {
                            *cl = open(entries + 8 * run + ORDER[lane], scale);
                        }
                    }
                }
            }
        }
    }
    if SUMS {
        lanes_sum.flush(sums.0);
    }
    _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_EQ_OQ>(nan, nan)) == 0xff
}

/// The torso scales `max(|g[a] - g[b]|, floor)` of the eight rows of `g`
/// (rows of `k` 2-D joints, `a, b < k`) into `out`, as `torso_scales`
/// computes them (the same float64 operations): each joint's x, y pair read
/// as one 64-bit load, two rows to a vector, where the scalar loop took
/// about a tenth of [`cells_2d`]'s time, and four gathers 16.2-16.5 ms
/// against 15.3-15.5 for these loads in PCK + MPJPE (1,000,000 x 17 joints,
/// one thread, AVX-512 VM). `false` (nothing written) unless `g`
/// holds eight rows, `out` eight values and `a, b < k`.
#[target_feature(enable = "avx2")]
pub(crate) fn torso_scales_8(
    g: &[f32],
    k: usize,
    (a, b, floor): (usize, usize, f64),
    out: &mut [f64],
) -> bool {
    use std::arch::x86_64::{
        __m256d, _mm_castpd_ps, _mm_setr_pd, _mm256_cvtps_pd, _mm256_hadd_pd, _mm256_max_pd,
        _mm256_mul_pd, _mm256_set1_pd, _mm256_sqrt_pd, _mm256_storeu_pd, _mm256_sub_pd,
    };
    if g.len() < 16 * k || out.len() < 8 || a >= k || b >= k {
        return false;
    }
    let base = g.as_ptr();
    for half in 0..2 {
        // SAFETY: pair (row, joint) starts at float 2 (row k + joint) < 16 k - 1
        // for rows below 8 and joints below k; `out` holds 8 values.
        unsafe {
            // x y of rows 4 half + 0, 1 and + 2, 3 of joint j, as float64.
            let pairs = |j: usize| {
                // One unaligned 64-bit read per pair: a float32 slice is only
                // sure to be 4-byte aligned (`_mm_load_sd` reads an aligned f64).
                let pair = |r: usize| {
                    let at = base.add(2 * ((4 * half + r) * k + j)).cast::<u64>();
                    f64::from_bits(std::ptr::read_unaligned(at))
                };
                let two =
                    |r: usize| _mm256_cvtps_pd(_mm_castpd_ps(_mm_setr_pd(pair(r), pair(r + 1))));
                (two(0), two(2))
            };
            let ((a0, a1), (b0, b1)) = (pairs(a), pairs(b));
            let square = |x: __m256d, y: __m256d| {
                let d = _mm256_sub_pd(x, y);
                _mm256_mul_pd(d, d)
            };
            // dx^2 + dy^2 of rows 0 2 1 3, put in order.
            let q = in_order(_mm256_hadd_pd(square(a0, b0), square(a1, b1)));
            // max(NaN, floor) is floor, as f64::max.
            let s = _mm256_max_pd(_mm256_sqrt_pd(q), _mm256_set1_pd(floor));
            _mm256_storeu_pd(out.as_mut_ptr().add(4 * half), s);
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::super::simd::{Isa, isa};
    use super::*;

    #[test]
    fn lanes_cover_each_entry_of_a_group_once() {
        for k in [1, 2, 3, 8, 15, 17, 133] {
            let lanes = Lanes::new(k);
            let mut seen = vec![0; 8 * k];
            for run in 0..k {
                for (l, order) in ORDER.iter().enumerate() {
                    let (row, j) = (lanes.row[run][l] as usize, lanes.joint[run][l] as usize);
                    assert_eq!(row * k + j, 8 * run + order);
                    seen[row * k + j] += 1;
                }
            }
            assert!(seen.iter().all(|&s| s == 1), "k = {k}");
        }
    }

    /// The histogram of the flat loops' cells of the same entries: squares,
    /// a factor per entry, [`Grid32::cells`], open entries by `open`.
    fn flat_histogram(
        (p, g): (&[f32], &[f32]),
        scale: &[f64],
        grid: &Grid32,
        k: usize,
        open: impl Fn(usize) -> u32,
        hist: &mut [u64],
    ) -> bool {
        let m = scale.len() * k;
        let mut q = vec![0.0f32; m];
        let finite = Grid32::squares::<2>(&p[..2 * m], &g[..2 * m], &mut q);
        let a: Vec<f32> = (0..m).map(|e| grid.row_factor(scale[e / k])).collect();
        let joint: Vec<u32> = (0..m).map(|e| (e % k) as u32).collect();
        let mut idx = vec![0u32; m];
        grid.cells((&q, &a, &joint), k as u32, &mut idx);
        let last = hist.len() - 1;
        for (e, &c) in idx.iter().enumerate() {
            let c = if c == super::super::curve_grid::UNSURE {
                open(e)
            } else {
                c
            };
            hist[(c as usize).min(last)] += 1;
        }
        finite
    }

    #[test]
    fn the_same_cells_as_the_flat_loops() {
        if isa() < Isa::Avx2 {
            return;
        }
        let t = 101;
        let sorted: Vec<f64> = (0..t).map(|i| i as f64 * 0.5 / (t - 1) as f64).collect();
        let grid = super::super::curve_grid::Grid::new(&sorted)
            .and_then(|g| g.single())
            .unwrap();
        let mut state = 12345u64;
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32) / (1u64 << 24) as f32
        };
        for k in [1, 3, 15, 17] {
            let rows = 64;
            let m = rows * k;
            let g: Vec<f32> = (0..2 * m).map(|_| next()).collect();
            let mut p: Vec<f32> = g.iter().map(|&x| x + (next() - 0.5) * 0.4).collect();
            // Edge cases: a NaN, an infinity, an exact tie, a zero distance.
            p[3] = f32::NAN;
            p[2 * k + 1] = f32::INFINITY;
            p[4 * k] = g[4 * k] + 0.25;
            p[4 * k + 1] = g[4 * k + 1];
            p[6 * k] = g[6 * k];
            p[6 * k + 1] = g[6 * k + 1];
            let mut scale: Vec<f64> = (0..rows).map(|_| f64::from(0.2 + next())).collect();
            scale[5] = f64::NAN;
            scale[2] = 1.0;
            // The open entries' cells, past the index cells: a wrong entry shows.
            let base = (t + 1) * k;
            let open = |e: usize| (base + e) as u32;
            let mut want = vec![0u64; base + m];
            let finite_want = flat_histogram((&p, &g), &scale, &grid, k, open, &mut want);
            // The scales filled group by group, from a copy.
            let mut filled = vec![0.0; rows];
            let fill = |r: Range<usize>, out: &mut [f64]| out.copy_from_slice(&scale[r]);
            let mut cells = vec![u32::MAX; m];
            // SAFETY: the CPU has AVX2 (checked above).
            let finite = unsafe {
                let lanes = Lanes::new(k);
                cells_2d::<false>(
                    (&p, &g),
                    (&mut filled, fill),
                    (&grid, &lanes),
                    |e, _| open(e),
                    &mut cells,
                    (&mut 0.0, 0),
                )
            };
            let mut got = vec![0u64; want.len()];
            for c in cells {
                got[c as usize] += 1;
            }
            assert!(
                filled
                    .iter()
                    .zip(&scale)
                    .all(|(a, b)| a.to_bits() == b.to_bits())
            );
            assert_eq!(finite, finite_want, "k = {k}");
            assert!(!finite);
            assert_eq!(got, want, "k = {k}");
            assert!(
                want[base..].iter().sum::<u64>() >= k as u64,
                "open entries were tested"
            );
        }
    }

    #[test]
    fn torso_scales_8_are_the_scalar_ones() {
        if isa() < Isa::Avx2 {
            return;
        }
        let k = 17;
        let mut g: Vec<f32> = (0..16 * k)
            .map(|i| ((i * 37 % 101) as f32) * 0.013 - 0.4)
            .collect();
        // A NaN, an infinity, a coincident pair (the floor), a huge coordinate.
        g[2 * 2] = f32::NAN;
        g[2 * (k + 12) + 1] = f32::INFINITY;
        g[2 * (2 * k + 2)..2 * (2 * k + 2) + 2].copy_from_slice(&[0.5, 0.5]);
        g[2 * (2 * k + 12)..2 * (2 * k + 12) + 2].copy_from_slice(&[0.5, 0.5]);
        g[2 * (5 * k + 12)] = 3e38;
        for (a, b, floor) in [(2, 12, 0.01), (0, 16, 0.0), (5, 5, 1e-3)] {
            let mut want = vec![0.0; 8];
            for (row, w) in want.iter_mut().enumerate() {
                let r = &g[2 * k * row..2 * k * (row + 1)];
                let x = f64::from(r[2 * a]) - f64::from(r[2 * b]);
                let y = f64::from(r[2 * a + 1]) - f64::from(r[2 * b + 1]);
                *w = (0.0 + x * x + y * y).sqrt().max(floor);
            }
            // Also from a float32 slice 4 bytes past an 8-byte boundary (a
            // numpy view can start there): the 64-bit pair loads are unaligned.
            let mut shifted = vec![0.0f32; g.len() + 2];
            let at = (shifted.as_ptr().align_offset(8) / 4 + 1) % 2;
            shifted[at..at + g.len()].copy_from_slice(&g);
            let odd = &shifted[at..at + g.len()];
            assert_eq!(odd.as_ptr() as usize % 8, 4);
            for gs in [&g[..], odd] {
                let mut got = vec![-1.0; 8];
                // SAFETY: the CPU has AVX2 (checked above).
                assert!(unsafe { torso_scales_8(gs, k, (a, b, floor), &mut got) });
                for (w, x) in want.iter().zip(&got) {
                    assert_eq!(w.to_bits(), x.to_bits(), "{a} {b}: {want:?} {got:?}");
                }
            }
        }
    }

    #[test]
    fn distance_sums_are_masked_sums_block_by_block() {
        use super::super::simd::{distances, masked_sum};
        if isa() < Isa::Avx2 {
            return;
        }
        let sorted: Vec<f64> = (0..21).map(|i| f64::from(i) * 0.05).collect();
        let grid = super::super::curve_grid::Grid::new(&sorted)
            .and_then(|g| g.single())
            .unwrap();
        for (k, rows, block_rows) in [(17, 64, 30), (3, 40, 5), (15, 48, 34), (1, 200, 13)] {
            let m = rows * k;
            let g: Vec<f32> = (0..2 * m)
                .map(|i| ((i * 7919 % 1000) as f32) * 1e-3)
                .collect();
            let mut p: Vec<f32> = g
                .iter()
                .enumerate()
                .map(|(i, x)| x + (i as f32).sin())
                .collect();
            // fast_block's sums (masked_sum of each block in turn), and the pass's.
            let sums = |p: &[f32]| {
                let (mut q, mut dist) = (vec![0.0; m], vec![0.0; m]);
                distances(p, &g, 2, &mut q, &mut dist);
                let mut want = 0.0f64;
                for b in dist.chunks(block_rows * k) {
                    want += masked_sum(b, None).0;
                }
                let mut got = 0.0f64;
                let (mut scale, mut cells) = (vec![1.0; rows], vec![0u32; m]);
                // SAFETY: the CPU has AVX2 (checked above).
                unsafe {
                    cells_2d::<true>(
                        (p, &g),
                        (&mut scale, |_: Range<usize>, _: &mut [f64]| {}),
                        (&grid, &Lanes::new(k)),
                        |_, _| 0,
                        &mut cells,
                        (&mut got, block_rows * k),
                    )
                };
                (want, got)
            };
            let (want, got) = sums(&p);
            assert_eq!(
                want.to_bits(),
                got.to_bits(),
                "k {k}, blocks of {block_rows} rows"
            );
            p[7] = f32::NAN;
            let (want, got) = sums(&p);
            assert!(want.is_nan() && got.is_nan(), "NaN reaches the sum");
        }
    }
}
