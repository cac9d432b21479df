//! Four problems of one shape whose smaller side is 2 or 3 (and the longer
//! from 4 to 8), one in each lane of AVX2 vectors: the search of
//! `exhaustive.rs` with each line's smallest entries kept for the four
//! problems at once. The running minima are most of a search (a 3 x 8 took
//! 75 ns alone): compares and selects, each one here for four problems. They are the same operations as
//! `exhaustive::smallest` (`minpd` / `maxpd` pick as its `lo` / `hi` do,
//! ties and signed zeros included), so every lane finds the same values and
//! lanes, and `exhaustive::choose2` / `choose3` then make the same choice.

use std::arch::x86_64::{
    __m256d, _CMP_LE_OQ, _CMP_LT_OQ, _mm256_and_pd, _mm256_andnot_pd, _mm256_castsi256_pd,
    _mm256_cmp_pd, _mm256_max_pd, _mm256_min_pd, _mm256_movemask_pd, _mm256_set1_epi64x,
    _mm256_set1_pd, _mm256_setr_pd, _mm256_storeu_pd, _mm256_storeu_si256,
};

use super::exhaustive::{choose2, choose3};
use super::lanes::{Columns, LANES, float_mask, pick_i};

/// The four problems `costs` (`rows x cols`, rows `stride` apart; the
/// smaller side 2 or 3, the longer up to 8; the caller checked that each
/// slice holds its block) solved as `exhaustive::try_solve` solves each:
/// per lane, the lane of each line of the smaller side (a row, or a column
/// of a problem taller than wide, as the lanes of `lanes.rs` hold a
/// transposed answer), or None where an entry's magnitude is above `limit`
/// or NaN, for the scalar path.
#[target_feature(enable = "avx2")]
pub(super) fn search4(
    costs: [&[f64]; LANES],
    [rows, cols, stride]: [usize; 3],
    limit: f64,
) -> [Option<Columns>; LANES] {
    if rows.min(cols) == 2 {
        search::<2>(costs, [rows, cols, stride], limit)
    } else {
        search::<3>(costs, [rows, cols, stride], limit)
    }
}

/// [`search4`] for `K = rows.min(cols)` lines.
#[target_feature(enable = "avx2")]
fn search<const K: usize>(
    costs: [&[f64]; LANES],
    [rows, cols, stride]: [usize; 3],
    limit: f64,
) -> [Option<Columns>; LANES] {
    let m = rows.max(cols);
    // Entry `lane` of line `line` at `line * line_step + lane * lane_step`.
    let (line_step, lane_step) = if cols < rows {
        (1, stride)
    } else {
        (stride, 1)
    };
    let mut v = [[_mm256_set1_pd(f64::INFINITY); K]; K];
    let mut at = [[_mm256_set1_epi64x(-1); K]; K];
    let (lim, sign) = (_mm256_set1_pd(limit), _mm256_set1_pd(-0.0));
    let mut ok = _mm256_castsi256_pd(_mm256_set1_epi64x(-1));
    for j in 0..m {
        let jv = _mm256_set1_epi64x(j as i64);
        for line in 0..K {
            let e = line * line_step + j * lane_step;
            let x = _mm256_setr_pd(costs[0][e], costs[1][e], costs[2][e], costs[3][e]);
            // |x| <= limit, false for NaN, as the scalar check.
            ok = _mm256_and_pd(
                ok,
                _mm256_cmp_pd::<_CMP_LE_OQ>(_mm256_andnot_pd(sign, x), lim),
            );
            let (vl, al) = (&mut v[line], &mut at[line]);
            let below: [__m256d; K] =
                std::array::from_fn(|s| _mm256_cmp_pd::<_CMP_LT_OQ>(x, vl[s]));
            for s in (1..K).rev() {
                let (up, here) = (float_mask(below[s - 1]), float_mask(below[s]));
                al[s] = pick_i(up, al[s - 1], pick_i(here, jv, al[s]));
                vl[s] = _mm256_min_pd(vl[s], _mm256_max_pd(vl[s - 1], x));
            }
            al[0] = pick_i(float_mask(below[0]), jv, al[0]);
            vl[0] = _mm256_min_pd(vl[0], x);
        }
    }
    let ok = _mm256_movemask_pd(ok);
    let (mut values, mut lanes) = ([[[0.0; LANES]; K]; K], [[[0i64; LANES]; K]; K]);
    for line in 0..K {
        for s in 0..K {
            // SAFETY: each array holds LANES = 4 values.
            unsafe {
                _mm256_storeu_pd(values[line][s].as_mut_ptr(), v[line][s]);
                _mm256_storeu_si256(lanes[line][s].as_mut_ptr().cast(), at[line][s]);
            }
        }
    }
    std::array::from_fn(|p| {
        if ok & (1 << p) == 0 {
            return None;
        }
        // Every slot holds an entry (m >= K): lanes 0..m.
        let vp: [[f64; K]; K] = std::array::from_fn(|line| values[line].map(|x| x[p]));
        let ap: [[usize; K]; K] =
            std::array::from_fn(|line| lanes[line].map(|x| usize::try_from(x[p]).unwrap_or(0)));
        let mut columns: Columns = [0; 8];
        let chosen: &[usize] = &match K {
            2 => {
                let [j, l] = choose2(
                    [first(&vp[0]), first(&vp[1])],
                    [first(&ap[0]), first(&ap[1])],
                );
                [j, l, 0]
            }
            _ => choose3(
                [first(&vp[0]), first(&vp[1]), first(&vp[2])],
                [first(&ap[0]), first(&ap[1]), first(&ap[2])],
            ),
        }[..K];
        for (c, &lane) in columns.iter_mut().zip(chosen) {
            *c = lane as u8;
        }
        Some(columns)
    })
}

/// The first `N` of a line's `K` values (`N == K` where it is called).
fn first<const N: usize, T: Copy + Default>(x: &[T]) -> [T; N] {
    std::array::from_fn(|i| x.get(i).copied().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::super::exhaustive::try_solve;
    use super::super::lanes::tests::four_problems;
    use super::super::lanes::{pairs, solve_group};
    use super::super::lsap::overflow_limit;
    use super::*;

    /// Every lane has the pairs of `exhaustive::try_solve`, and a lane goes
    /// back exactly where it returns false: every shape with a smaller side
    /// of 2 or 3 and a longer one from 4 to 8, both orientations, rows at a
    /// stride, uniform, small-integer with signed zeros (ties) and rounded
    /// costs, a NaN, an infinity or an entry above the limit in one lane; through
    /// `lanes::solve_group` as batches reach it.
    #[test]
    fn lanes_equal_the_scalar_search() {
        if crate::metrics::simd::isa() < crate::metrics::simd::Isa::Avx2 {
            eprintln!("skipped: this CPU has no AVX2");
            return;
        }
        let mut seed = 11;
        let (mut answered, mut total) = (0, 0);
        for trial in 0..12_000 {
            let (k, m) = (2 + trial % 2, 2 + (trial / 2) % 7);
            if m < k {
                continue;
            }
            let (r, c) = if trial % 3 == 0 { (m, k) } else { (k, m) };
            let stride = c + trial % 3;
            let problems = four_problems(&mut seed, [r, c, stride], trial / 14 % 3, trial);
            let group: [(&[f64], usize, usize, usize); LANES] =
                std::array::from_fn(|l| (&problems[l][..], r, c, stride));
            let got = solve_group(&group);
            if m < 4 {
                // 2 x 2 to 3 x 3 stay with the scalar search.
                assert!(got.is_none(), "{r}x{c}");
                continue;
            }
            let got = got.expect("an AVX2 CPU and alike problems");
            for (l, lane) in got.iter().enumerate() {
                total += 1;
                let mut want = Vec::new();
                let solved = try_solve(&problems[l], [r, c, stride], overflow_limit(k), &mut want);
                assert_eq!(
                    lane.is_some(),
                    solved,
                    "{r}x{c} lane {l}: {:?}",
                    problems[l]
                );
                let Some(columns) = lane else { continue };
                answered += 1;
                let mut mine = [(0, 0); 8];
                let n = pairs(columns, [r, c], &mut mine);
                assert_eq!(&mine[..n], &want[..], "{r}x{c} lane {l}: {:?}", problems[l]);
            }
        }
        // Not vacuous: all but the lanes given a bad entry are answered.
        assert!(answered * 100 > total * 95, "{answered} of {total}");
        eprintln!("{answered} of {total} lanes answered");
    }
}
