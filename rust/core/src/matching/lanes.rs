//! Four problems of one shape at once, one in each lane of AVX2 vectors.
//!
//! The fixed-buffer solve of an 8x8 problem (`small.rs`) is a chain of
//! dependent steps: each augmenting row reduction step waits on the last
//! one's duals, and the minimum searches run across one problem's columns.
//! Here lane `l` of every vector belongs to problem `l`, so the column
//! minima, the reductions and every bookkeeping write are vertical, branch-
//! free vector operations over four independent chains.
//!
//! It runs the same algorithm, step for step, as the scalar solvers: for a
//! square problem the column reduction with its reduction transfer, then the
//! two passes of the augmenting row reduction, ties included; a rectangular
//! one (rows on the shorter side, as they solve it) starts the row reduction
//! from zero duals. Each value comes from the same float64 operations, so
//! every comparison decides alike (a minimum may return the other of two
//! equal zeros, which no comparison can tell apart) and a lane's pairs are
//! exactly those `assign` gives the problem (the fixed buffers', or for a
//! wide problem the general solver's, whose row reduction is the same). A
//! lane that needs more (rows still free after both passes, which the
//! shortest augmenting paths would take; its step budget spent; an entry out
//! of range; non-finite duals) is left to the scalar path, which solves that
//! problem again from the start: in the test below, 3.6% of uniform problems
//! of sides 4 to 8, 21% of small-integer ones (many ties).
//!
//! [`answers`] gathers a batch's problems four of one shape at a time, in
//! any order, so that batches of mixed shapes fill the lanes too.

// Rows and columns index several parallel arrays of vectors at once.
#![allow(clippy::needless_range_loop)]

use super::lsap::overflow_limit;
use std::arch::x86_64::{
    __m256d, __m256i, _CMP_EQ_OQ, _CMP_LE_OQ, _CMP_LT_OQ, _mm256_add_epi64, _mm256_and_pd,
    _mm256_and_si256, _mm256_andnot_pd, _mm256_andnot_si256, _mm256_blendv_pd, _mm256_castpd_si256,
    _mm256_castsi256_pd, _mm256_cmp_pd, _mm256_cmpeq_epi64, _mm256_cmpgt_epi64,
    _mm256_i64gather_pd, _mm256_min_pd, _mm256_movemask_pd, _mm256_or_si256, _mm256_set_pd,
    _mm256_set1_epi64x, _mm256_set1_pd, _mm256_setr_epi64x, _mm256_setzero_si256,
    _mm256_slli_epi64, _mm256_storeu_si256, _mm256_sub_epi64, _mm256_sub_pd,
};

/// The problems solved together.
pub(super) const LANES: usize = 4;

/// A lane's answer: the column of each row of the solved problem (`[..n]`,
/// `n` its shorter side).
pub(super) type Columns = [u8; 8];

/// Select `a` where the lanes of `m` are set, else `b` (integer lanes).
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn pick_i(m: __m256i, a: __m256i, b: __m256i) -> __m256i {
    _mm256_castpd_si256(_mm256_blendv_pd(
        _mm256_castsi256_pd(b),
        _mm256_castsi256_pd(a),
        _mm256_castsi256_pd(m),
    ))
}

/// Select `a` where the lanes of `m` are set, else `b` (float lanes).
#[inline]
#[target_feature(enable = "avx2")]
fn pick_f(m: __m256i, a: __m256d, b: __m256d) -> __m256d {
    _mm256_blendv_pd(b, a, _mm256_castsi256_pd(m))
}

/// The lanes of `x` where `m` is set, +0.0 elsewhere.
#[inline]
#[target_feature(enable = "avx2")]
fn keep(m: __m256i, x: __m256d) -> __m256d {
    _mm256_and_pd(_mm256_castsi256_pd(m), x)
}

#[inline]
#[target_feature(enable = "avx2")]
fn eq(a: __m256i, b: __m256i) -> __m256i {
    _mm256_cmpeq_epi64(a, b)
}

#[inline]
#[target_feature(enable = "avx2")]
fn not(a: __m256i) -> __m256i {
    _mm256_andnot_si256(a, _mm256_set1_epi64x(-1))
}

#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn float_mask(m: __m256d) -> __m256i {
    _mm256_castpd_si256(m)
}

/// The smallest of `x` in each lane (a tree: independent minima).
#[inline]
#[target_feature(enable = "avx2")]
fn min_tree<const N: usize>(x: &[__m256d; N]) -> __m256d {
    let mut m = *x;
    let mut width = N;
    while width > 1 {
        let half = width.div_ceil(2);
        for j in 0..width - half {
            m[j] = _mm256_min_pd(m[j], m[j + half]);
        }
        width = half;
    }
    m[0]
}

/// `x[j]` in each lane where the mask `at[j]` is set, at most one per lane
/// (0 where none is).
#[inline]
#[target_feature(enable = "avx2")]
fn select_i<const N: usize>(x: &[__m256i; N], at: &[__m256i; N]) -> __m256i {
    let mut out = _mm256_setzero_si256();
    for j in 0..N {
        out = pick_i(at[j], x[j], out);
    }
    out
}

/// [`select_i`] of float lanes.
#[inline]
#[target_feature(enable = "avx2")]
fn select_f<const N: usize>(x: &[__m256d; N], at: &[__m256i; N]) -> __m256d {
    let xi: [__m256i; N] = std::array::from_fn(|j| _mm256_castpd_si256(x[j]));
    _mm256_castsi256_pd(select_i(&xi, at))
}

/// Solve the four `R x N` problems `costs[l]` (`4 <= R <= N <= 8`; entry
/// `(i, j)` at `i * stride + j`, or with `transposed`, a taller problem
/// stored `N x R`, at `j * stride + i`) whose entries all have a magnitude
/// of at most `limit`.
/// Returns each lane's columns, or None for a lane the scalar path must
/// solve.
///
/// Each `costs[l]` must hold every entry it reads (else a panic).
#[target_feature(enable = "avx2")]
pub(super) fn solve4<const R: usize, const N: usize>(
    costs: [&[f64]; LANES],
    stride: usize,
    transposed: bool,
    limit: f64,
) -> [Option<Columns>; LANES] {
    const ROW: usize = 8; // vectors per row of `ct`: a row index shifts by 5
    let none = _mm256_set1_epi64x(-1);
    let zero_i = _mm256_setzero_si256();
    let inf = _mm256_set1_pd(f64::INFINITY);
    let index = |j: usize| _mm256_set1_epi64x(j as i64);

    // The costs transposed: ct[i][j] holds entry (i, j) of the four problems,
    // checked against the limit on the way (NaN fails it).
    let mut ct = [[inf; ROW]; N];
    let (lim, sign) = (_mm256_set1_pd(limit), _mm256_set1_pd(-0.0));
    let mut ok = _mm256_castsi256_pd(none);
    // Entry (i, j) of the solved problem lies at `i * a + j * b`.
    let (a, b) = if transposed { (1, stride) } else { (stride, 1) };
    for (i, row) in ct.iter_mut().enumerate().take(R) {
        for (j, x) in row.iter_mut().take(N).enumerate() {
            let at = i * a + j * b;
            // Checked indexing: `solve_group` checked the lengths.
            *x = _mm256_set_pd(costs[3][at], costs[2][at], costs[1][at], costs[0][at]);
            let size = _mm256_andnot_pd(sign, *x);
            ok = _mm256_and_pd(ok, _mm256_cmp_pd::<_CMP_LE_OQ>(size, lim));
        }
    }
    let mut col4row = [none; N];
    let mut row4col = [none; N];
    let mut u = [_mm256_set1_pd(0.0); N];
    let mut v = [_mm256_set1_pd(0.0); N];
    if R == N {
        column_reduction(&ct, &mut u, &mut v, &mut col4row, &mut row4col);
    }

    // The free rows, in order.
    let mut free = [zero_i; N];
    let mut count = zero_i;
    for r in 0..R {
        let is_free = eq(col4row[r], none);
        for (s, f) in free.iter_mut().enumerate().take(r + 1) {
            *f = pick_i(_mm256_and_si256(is_free, eq(count, index(s))), index(r), *f);
        }
        count = _mm256_sub_epi64(count, is_free);
    }

    // The augmenting row reduction's two passes, in lockstep. A lane is
    // active while its position `k` is below its count of free rows; a lane
    // that runs out of steps, or keeps rows free after the second pass (the
    // shortest augmenting paths' business), goes to the scalar path.
    let lane = _mm256_setr_epi64x(0, 1, 2, 3);
    let mut fallback = zero_i;
    let mut budget = index(4 * R + 16);
    for _pass in 0..2 {
        let (mut k, mut next) = (zero_i, zero_i);
        loop {
            let pending = _mm256_andnot_si256(fallback, _mm256_cmpgt_epi64(count, k));
            let spent = _mm256_cmpeq_epi64(budget, zero_i);
            fallback = _mm256_or_si256(fallback, _mm256_and_si256(pending, spent));
            let active = _mm256_andnot_si256(spent, pending);
            if _mm256_movemask_pd(_mm256_castsi256_pd(active)) == 0 {
                break;
            }
            budget = _mm256_add_epi64(budget, active); // - 1 where active
            let at_k: [__m256i; N] = std::array::from_fn(|s| eq(k, index(s)));
            let i = select_i(&free, &at_k);
            k = _mm256_sub_epi64(k, active); // + 1 where active
            // Row i of each lane, gathered from `ct` (an inactive lane reads
            // a valid row and commits nothing).
            let offset = _mm256_add_epi64(_mm256_slli_epi64::<5>(i), lane);
            let base = ct.as_ptr().cast::<f64>();
            let row: [__m256d; N] = std::array::from_fn(|j| {
                // SAFETY: `i < N`, so the offset lies inside `ct`.
                unsafe { _mm256_i64gather_pd::<8>(base.add(4 * j), offset) }
            });
            let h: [__m256d; N] = std::array::from_fn(|j| _mm256_sub_pd(row[j], v[j]));
            let u1 = min_tree(&h);
            // The first and second columns at the minimum (j2 is read on a
            // tie only, when there are two).
            let (mut j1, mut j2) = (zero_i, zero_i);
            for j in (0..N).rev() {
                let at_min = float_mask(_mm256_cmp_pd::<_CMP_EQ_OQ>(h[j], u1));
                j2 = pick_i(at_min, j1, j2);
                j1 = pick_i(at_min, index(j), j1);
            }
            let at1: [__m256i; N] = std::array::from_fn(|j| eq(j1, index(j)));
            let rest: [__m256d; N] = std::array::from_fn(|j| pick_f(at1[j], inf, h[j]));
            let u2 = min_tree(&rest);
            let strict = float_mask(_mm256_cmp_pd::<_CMP_LT_OQ>(u1, u2));
            let first_owner = select_i(&row4col, &at1);
            // A tie whose first column is taken takes the other one instead.
            let swap = _mm256_andnot_si256(strict, not(eq(first_owner, none)));
            let j1 = pick_i(swap, j2, j1);
            let at: [__m256i; N] = std::array::from_fn(|j| eq(j1, index(j)));
            let evicted = select_i(&row4col, &at);
            // `u2 - u1` is 0.0 on a tie, and `x - 0.0` is `x`.
            let drop = _mm256_sub_pd(u2, u1);
            for j in 0..N {
                let m = _mm256_and_si256(at[j], active);
                v[j] = _mm256_sub_pd(v[j], keep(m, drop));
                row4col[j] = pick_i(m, i, row4col[j]);
            }
            let uij = _mm256_sub_pd(select_f(&row, &at), select_f(&v, &at));
            let evict = _mm256_and_si256(active, not(eq(evicted, none)));
            for r in 0..N {
                let here = _mm256_and_si256(active, eq(i, index(r)));
                col4row[r] = pick_i(here, j1, col4row[r]);
                u[r] = pick_f(here, uij, u[r]);
                col4row[r] = pick_i(
                    _mm256_and_si256(evict, eq(evicted, index(r))),
                    none,
                    col4row[r],
                );
            }
            // An evicted row is re-run at once from the slot just read, or,
            // after a tie, queued for the next pass.
            let rerun = _mm256_and_si256(evict, strict);
            let queue = _mm256_andnot_si256(strict, evict);
            k = _mm256_add_epi64(k, rerun);
            for (s, f) in free.iter_mut().enumerate() {
                let at_k = _mm256_and_si256(rerun, eq(k, index(s)));
                let at_next = _mm256_and_si256(queue, eq(next, index(s)));
                *f = pick_i(_mm256_or_si256(at_k, at_next), evicted, *f);
            }
            next = _mm256_sub_epi64(next, queue);
        }
        count = next;
    }
    fallback = _mm256_or_si256(fallback, _mm256_cmpgt_epi64(count, zero_i));

    // Finite duals (the scalar path reports the others), then the columns.
    let mut finite = ok;
    let big = _mm256_set1_pd(f64::MAX);
    for x in u.iter().chain(&v) {
        let size = _mm256_andnot_pd(sign, *x);
        finite = _mm256_and_pd(finite, _mm256_cmp_pd::<_CMP_LE_OQ>(size, big));
    }
    let good = _mm256_andnot_si256(fallback, float_mask(finite));
    let mut good_lanes = [0i64; LANES];
    // SAFETY: four i64 lanes into four i64.
    unsafe { _mm256_storeu_si256(good_lanes.as_mut_ptr().cast(), good) };
    let mut cols = [[0i64; LANES]; N];
    for (out, &x) in cols.iter_mut().zip(&col4row) {
        // SAFETY: as above.
        unsafe { _mm256_storeu_si256(out.as_mut_ptr().cast(), x) };
    }
    std::array::from_fn(|l| {
        (good_lanes[l] != 0).then(|| {
            let mut out = [0u8; 8];
            for (o, col) in out.iter_mut().zip(&cols) {
                *o = col[l] as u8; // a column index below 8
            }
            out
        })
    })
}

/// Jonker-Volgenant's column reduction and reduction transfer of four square
/// problems (`ct` as in [`solve4`]), as `column_reduction` in `small.rs`.
#[inline]
#[target_feature(enable = "avx2")]
fn column_reduction<const N: usize>(
    ct: &[[__m256d; 8]; N],
    u: &mut [__m256d; N],
    v: &mut [__m256d; N],
    col4row: &mut [__m256i; N],
    row4col: &mut [__m256i; N],
) {
    let none = _mm256_set1_epi64x(-1);
    let zero_i = _mm256_setzero_si256();
    let inf = _mm256_set1_pd(f64::INFINITY);
    let index = |j: usize| _mm256_set1_epi64x(j as i64);
    let c = |i: usize, j: usize| ct[i][j];
    // Each column's smallest entry and its first row.
    *v = [inf; N];
    let mut best = [zero_i; N];
    for i in 0..N {
        for j in 0..N {
            let below = float_mask(_mm256_cmp_pd::<_CMP_LT_OQ>(c(i, j), v[j]));
            best[j] = pick_i(below, index(i), best[j]);
            v[j] = pick_f(below, c(i, j), v[j]);
        }
    }
    // Columns from the last: a row takes the first column it is best for,
    // and is "shared" if it is best for another too.
    let mut shared = [zero_i; N];
    for j in (0..N).rev() {
        let i = best[j];
        let mut taken = zero_i;
        for r in 0..N {
            taken = _mm256_or_si256(
                taken,
                _mm256_and_si256(eq(i, index(r)), not(eq(col4row[r], none))),
            );
        }
        for r in 0..N {
            let is = eq(i, index(r));
            col4row[r] = pick_i(_mm256_andnot_si256(taken, is), index(j), col4row[r]);
            shared[r] = _mm256_or_si256(shared[r], _mm256_and_si256(is, taken));
        }
        row4col[j] = pick_i(taken, none, i);
    }
    // Reduction transfer, row by row (each row sees the transfers before it).
    for i in 0..N {
        let j = col4row[i];
        let matched = not(eq(j, none));
        let at: [__m256i; N] = std::array::from_fn(|k| eq(j, index(k)));
        let h: [__m256d; N] =
            std::array::from_fn(|k| pick_f(at[k], inf, _mm256_sub_pd(c(i, k), v[k])));
        let slack = keep(_mm256_andnot_si256(shared[i], matched), min_tree(&h));
        for k in 0..N {
            // `x - 0.0` is `x`, -0.0 included.
            v[k] = _mm256_sub_pd(v[k], keep(at[k], slack));
        }
        let row: [__m256d; N] = std::array::from_fn(|k| c(i, k));
        let cij = select_f(&row, &at);
        u[i] = pick_f(matched, _mm256_sub_pd(cij, select_f(&*v, &at)), u[i]);
    }
}

/// The vector path's answer for each problem of `range` (`problem(b) =
/// (costs, rows, cols, row stride)`), None where the scalar solver must
/// take it. Problems of one shape are grouped out of order, four at a time,
/// so that a batch of mixed shapes still fills the lanes; up to three of a
/// shape are left over at the end of the range.
pub(super) fn answers<'a, F>(problem: &F, range: std::ops::Range<usize>) -> Vec<Option<Columns>>
where
    F: Fn(usize) -> (&'a [f64], usize, usize, usize),
{
    let mut out = vec![None; range.len()];
    if crate::metrics::simd::isa() < crate::metrics::simd::Isa::Avx2 {
        return out;
    }
    // Problems waiting for three more of their shape (rows, cols from 2 to 8).
    let mut waiting = [[0usize; LANES]; 49];
    let mut count = [0usize; 49];
    for b in range.clone() {
        if b + AHEAD < range.end {
            let (cost, r, c, stride) = problem(b + AHEAD);
            if may_take((cost, r, c, stride)) {
                prefetch(&cost[..cost.len().min((r - 1) * stride + c)]);
            }
        }
        let p = problem(b);
        if !may_take(p) {
            continue;
        }
        let key = (p.1 - 2) * 7 + (p.2 - 2);
        waiting[key][count[key]] = b;
        count[key] += 1;
        if count[key] == LANES {
            count[key] = 0;
            let group = waiting[key];
            if let Some(columns) = solve_group(&group.map(problem)) {
                for (b, cols) in group.into_iter().zip(columns) {
                    out[b - range.start] = cols;
                }
            }
        }
    }
    out
}

/// How many problems ahead [`answers`] asks for the costs.
const AHEAD: usize = 16;

/// Ask for the cache lines of `x`: a group's problems are read out of order,
/// where the hardware prefetchers cannot follow (without it, a padded batch
/// of mixed shapes read from memory gained nothing from the grouping:
/// 0.23-0.24 us a problem in `benches/bench_matching.py`, 0.20-0.23 with it).
#[inline]
fn prefetch(x: &[f64]) {
    use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
    let (ptr, bytes) = (x.as_ptr().cast::<i8>(), std::mem::size_of_val(x));
    for offset in (0..bytes).step_by(64) {
        // SAFETY: `offset` is inside `x`; a prefetch never faults or writes.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(ptr.wrapping_add(offset)) };
    }
}

/// Whether problems of this shape go to [`solve_group`]: sides from 2 to 8,
/// the longer at least 4 (2 x 3 and smaller searches took longer grouped
/// than alone). `&`, not `&&`: one branch on the answer instead of one per
/// test, which batches of mixed small shapes mispredicted.
pub(super) fn may_take((_, rows, cols, _): (&[f64], usize, usize, usize)) -> bool {
    (2..=8).contains(&rows) & (2..=8).contains(&cols) & (rows.max(cols) >= 4)
}

/// Four problems `(costs, rows, cols, row stride)` for [`solve4`], or with
/// a smaller side of 2 or 3 for `search_lanes::search4`: of one shape and
/// stride, a shape [`may_take`] takes, on a CPU with AVX2 (None otherwise).
/// A problem taller than wide is solved transposed, as the scalar solvers
/// do. Each answered lane holds the column of each row of the solved
/// problem; [`pairs`] turns it into the problem's pairs.
pub(super) fn solve_group(
    problems: &[(&[f64], usize, usize, usize); LANES],
) -> Option<[Option<Columns>; LANES]> {
    let (_, r, c, stride) = problems[0];
    let alike = problems.iter().all(|&(cost, rr, cc, st)| {
        rr == r && cc == c && st == stride && stride >= c && (r - 1) * stride + c <= cost.len()
    });
    if !alike
        || !may_take(problems[0])
        || crate::metrics::simd::isa() < crate::metrics::simd::Isa::Avx2
    {
        return None;
    }
    let costs = problems.map(|p| p.0);
    let (short, long, transposed) = (r.min(c), r.max(c), c < r);
    let limit = overflow_limit(short);
    if short <= 3 {
        // SAFETY: isa() reports only features the CPU has.
        return Some(unsafe { super::search_lanes::search4(costs, [r, c, stride], limit) });
    }
    macro_rules! solve {
        ($($r:literal x $n:literal),*) => {
            match (short, long) {
                $(($r, $n) => solve4::<$r, $n>(costs, stride, transposed, limit),)*
                _ => unreachable!("sides from 4 to 8"),
            }
        };
    }
    // SAFETY: isa() reports only features the CPU has.
    Some(unsafe {
        solve!(4 x 4, 4 x 5, 4 x 6, 4 x 7, 4 x 8, 5 x 5, 5 x 6, 5 x 7, 5 x 8,
               6 x 6, 6 x 7, 6 x 8, 7 x 7, 7 x 8, 8 x 8)
    })
}

/// The pairs `(row, col)`, sorted by row, of an `rows x cols` problem whose
/// lane [`solve_group`] answered with `solved`: written to `out`, returns
/// their count.
pub(super) fn pairs(
    solved: &Columns,
    [rows, cols]: [usize; 2],
    out: &mut [(usize, usize); 8],
) -> usize {
    if cols < rows {
        // Solved transposed: original row `solved[j]` took original column `j`.
        let mut col_of = [usize::MAX; 8];
        for (j, &i) in solved.iter().enumerate().take(cols) {
            col_of[usize::from(i)] = j;
        }
        // Written at every row and kept by the count, not a branch: which
        // rows are matched is data, and the branch mispredicted.
        let mut n = 0;
        for (i, &j) in col_of.iter().enumerate().take(rows) {
            out[n.min(7)] = (i, j);
            n += usize::from(j != usize::MAX);
        }
        n
    } else {
        for (i, pair) in out.iter_mut().enumerate().take(rows) {
            *pair = (i, usize::from(solved[i]));
        }
        rows
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::lsap::{Mode, Solver};
    use super::super::small::tests::rng;
    use super::*;

    /// Every lane the vector path answers has the pairs `assign` gives (the
    /// dispatching solver: the fixed buffers for square and tall problems,
    /// the general solver for wide ones): uniform costs, small integers and
    /// signed zeros (ties), rounded costs, a NaN, an infinity or a huge entry
    /// (that lane goes back), every shape with sides 4 to 8, rows read at a
    /// stride.
    #[test]
    fn lanes_equal_the_scalar_solvers() {
        if crate::metrics::simd::isa() < crate::metrics::simd::Isa::Avx2 {
            eprintln!("skipped: this CPU has no AVX2");
            return;
        }
        let mut seed = 3;
        let mut solver = Solver::new();
        let (mut answered, mut lanes) = ([0usize; 3], [0usize; 3]);
        for trial in 0..15000 {
            let (r, c) = (4 + trial % 5, 4 + (trial / 5) % 5);
            let stride = c + trial % 3;
            let kind = (trial / 25) % 3;
            let problems = four_problems(&mut seed, [r, c, stride], kind, trial);
            let group: [(&[f64], usize, usize, usize); LANES] =
                std::array::from_fn(|l| (&problems[l][..], r, c, stride));
            let got = solve_group(&group).expect("an AVX2 CPU and alike problems");
            for (l, lane) in got.iter().enumerate() {
                lanes[kind] += 1;
                let Some(solved) = lane else { continue };
                answered[kind] += 1;
                let mut mine = [(0, 0); 8];
                let n = pairs(solved, [r, c], &mut mine);
                let scalar = solver.solve_strided(&problems[l], r, c, stride, Mode::Strict);
                let scalar = scalar.expect("a lane answered a problem the solver rejects");
                assert_eq!(&mine[..n], scalar, "{r}x{c} lane {l}: {:?}", problems[l]);
            }
        }
        // Not vacuous: most lanes are answered.
        assert!(answered[0] * 10 > lanes[0] * 9, "{answered:?} of {lanes:?}");
        assert!(
            answered[1] * 2 > lanes[1] && answered[2] * 10 > lanes[2] * 8,
            "{answered:?} of {lanes:?}"
        );
        eprintln!("{answered:?} of {lanes:?}");
    }

    /// Four `r x c` problems at row stride `stride` for one group: `kind` 0
    /// uniform, 1 small integers and signed zeros (ties), 2 rounded; when
    /// `trial` is a multiple of 7, one lane gets a NaN, an infinity or a huge
    /// entry.
    pub(in super::super) fn four_problems(
        seed: &mut u64,
        [r, c, stride]: [usize; 3],
        kind: usize,
        trial: usize,
    ) -> Vec<Vec<f64>> {
        let mut problems: Vec<Vec<f64>> = (0..LANES)
            .map(|_| {
                (0..r * stride)
                    .map(|_| {
                        let x = rng(seed);
                        match kind {
                            0 => x * 200.0 - 100.0,
                            1 => match (x * 6.0) as u32 {
                                0 => -0.0,
                                1 => 0.0,
                                k => f64::from(k) - 3.0,
                            },
                            _ => (x * 1e6).round() / 1e3,
                        }
                    })
                    .collect()
            })
            .collect();
        if trial.is_multiple_of(7) {
            let bad = [f64::NAN, f64::INFINITY, -f64::INFINITY, 1e307][trial % 4];
            let at = (trial / 7) % (r * c);
            problems[trial % LANES][(at / c) * stride + at % c] = bad;
        }
        problems
    }
}
