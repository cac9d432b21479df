//! A fixed-buffer solver for small problems whose costs are all finite: the
//! algorithm of `lsap.rs` (Jonker-Volgenant's column and augmenting row
//! reductions, then shortest augmenting paths), but on `N x N` stack arrays
//! padded with `+inf` columns, so every scan is a fixed-length loop the
//! compiler unrolls and vectorises, nothing is allocated, and the
//! minimum searches are tree reductions plus a bit mask (no dependency chain
//! through the running minimum). Anything it does not cover (a non-finite
//! or huge cost, a larger problem) is left to the general solver.

use super::exhaustive;

/// Marks an unmatched row or column.
const NONE: usize = usize::MAX;
const INF: f64 = f64::INFINITY;

/// `if c { a } else { b }` kept branch-free: the conditions here are
/// data-dependent (see `select` in `lsap.rs`).
#[inline(always)]
pub(super) fn pick<T>(c: bool, a: T, b: T) -> T {
    std::hint::select_unpredictable(c, a, b)
}

/// The smallest of `x`, as a pairwise tree (independent compares, no chain).
/// Costs here are never NaN.
fn min_lanes<const N: usize>(x: &[f64; N]) -> f64 {
    let mut m = *x;
    let mut width = N;
    while width > 1 {
        width /= 2;
        for j in 0..width {
            let (a, b) = (m[j], m[j + width]);
            m[j] = if b < a { b } else { a };
        }
    }
    m[0]
}

/// The two smallest of `x` (the second equals the first on a tie), as a
/// pairwise tree of (smallest, second) pairs: independent compares, no chain.
fn two_smallest<const N: usize>(x: &[f64; N]) -> (f64, f64) {
    let mut lo = *x;
    let mut hi = [INF; N];
    let mut width = N;
    while width > 1 {
        width /= 2;
        for j in 0..width {
            let (a1, a2, b1, b2) = (lo[j], hi[j], lo[j + width], hi[j + width]);
            let (small, large) = pick(b1 < a1, (b1, a1), (a1, b1));
            let second = if a2 < b2 { a2 } else { b2 };
            lo[j] = small;
            hi[j] = if second < large { second } else { large };
        }
    }
    (lo[0], hi[0])
}

/// Bit `j` set where `x[j] == value` and `allowed[j]`.
fn lanes_equal<const N: usize>(x: &[f64; N], value: f64, allowed: &[bool; N]) -> u32 {
    let mut mask = 0u32;
    for j in 0..N {
        mask |= u32::from(allowed[j] & (x[j] == value)) << j;
    }
    mask
}

/// The solve on `N x N` buffers (`N` a power of two up to 32): `c` holds the
/// `nr x nc` problem (`1 <= nr <= nc <= N`, all finite) in its top-left
/// corner and `+inf` elsewhere. Returns `row4col` (the row matched to each
/// column, or `NONE`), or None if the duals left the finite range (the
/// general solver then reports it).
fn solve<const N: usize>(c: &[[f64; N]; N], nr: usize, nc: usize) -> Option<[usize; N]> {
    let mut u = [0.0f64; N];
    let mut v = [0.0f64; N];
    let mut col4row = [NONE; N];
    let mut row4col = [NONE; N];
    if nc >= 2 {
        if nr == nc {
            column_reduction(c, nc, &mut u, &mut v, &mut col4row, &mut row4col);
        }
        row_reduction(c, nr, &mut u, &mut v, &mut col4row, &mut row4col);
    }
    // Padding columns count as scanned: the search never reaches them.
    let mut padding = [false; N];
    for (j, p) in padding.iter_mut().enumerate() {
        *p = j >= nc;
    }
    for cur in 0..nr {
        if col4row[cur] != NONE {
            continue;
        }
        // Dijkstra over reduced costs from row `cur` to the nearest free column.
        let mut shortest = [INF; N];
        let mut path = [NONE; N];
        let mut seen_row = [false; N];
        let mut seen_col = padding;
        let (mut i, mut min_val) = (cur, 0.0f64);
        let sink = loop {
            seen_row[i] = true;
            let (row, ui) = (&c[i], u[i]);
            for j in 0..N {
                let r = min_val + row[j] - ui - v[j];
                let closer = !seen_col[j] & (r < shortest[j]);
                path[j] = pick(closer, i, path[j]);
                shortest[j] = pick(closer, r, shortest[j]);
            }
            let mut open = [INF; N];
            let mut unseen = [false; N];
            for j in 0..N {
                open[j] = if seen_col[j] { INF } else { shortest[j] };
                unseen[j] = !seen_col[j];
            }
            min_val = min_lanes(&open);
            if min_val >= INF {
                return None;
            }
            let nearest = lanes_equal(&open, min_val, &unseen);
            let mut free = [false; N];
            for j in 0..N {
                free[j] = row4col[j] == NONE;
            }
            // Among equal distances prefer a free column: it ends the search.
            let free_nearest = nearest & lanes_equal(&open, min_val, &free);
            let index = if free_nearest != 0 {
                free_nearest.trailing_zeros()
            } else {
                nearest.trailing_zeros()
            } as usize;
            seen_col[index] = true;
            match row4col[index] {
                NONE => break index,
                r => i = r,
            }
        };
        // Update the duals along the search tree.
        u[cur] += min_val;
        for i in 0..nr {
            if seen_row[i] && i != cur {
                u[i] = u[i] + min_val - shortest[col4row[i]];
            }
        }
        for j in 0..nc {
            if seen_col[j] {
                v[j] -= min_val - shortest[j];
            }
        }
        // Flip the augmenting path.
        let mut j = sink;
        loop {
            let i = path[j];
            row4col[j] = i;
            std::mem::swap(&mut col4row[i], &mut j);
            if i == cur {
                break;
            }
        }
    }
    let finite = u[..nr].iter().chain(&v[..nc]).all(|x| x.is_finite());
    finite.then_some(row4col)
}

/// Jonker-Volgenant's column reduction and reduction transfer (square
/// problems, `n >= 2`), as `State::column_reduction` in `lsap.rs`.
fn column_reduction<const N: usize>(
    c: &[[f64; N]; N],
    n: usize,
    u: &mut [f64; N],
    v: &mut [f64; N],
    col4row: &mut [usize; N],
    row4col: &mut [usize; N],
) {
    let mut best_row = [0usize; N];
    *v = [INF; N];
    for (i, row) in c.iter().enumerate().take(n) {
        for j in 0..N {
            let below = row[j] < v[j];
            best_row[j] = pick(below, i, best_row[j]);
            v[j] = pick(below, row[j], v[j]);
        }
    }
    // Padding columns keep a zero dual (they are never matched).
    for x in v.iter_mut().skip(n) {
        *x = 0.0;
    }
    let mut shared = [false; N];
    for j in (0..n).rev() {
        let i = best_row[j];
        if col4row[i] == NONE {
            col4row[i] = j;
            row4col[j] = i;
        } else {
            shared[i] = true;
        }
    }
    for i in 0..n {
        let j = col4row[i];
        if j == NONE {
            continue;
        }
        let row = &c[i];
        if !shared[i] {
            let mut h = [INF; N];
            for k in 0..N {
                h[k] = if k == j { INF } else { row[k] - v[k] };
            }
            let slack = min_lanes(&h);
            for (k, x) in v.iter_mut().enumerate() {
                *x = if k == j { *x - slack } else { *x };
            }
        }
        u[i] = row[j] - v[j];
    }
}

/// Jonker-Volgenant's augmenting row reduction (two passes, `nc >= 2`), as
/// `State::row_reduction` in `lsap.rs`; the two smallest reduced costs of a
/// row come from two tree reductions instead of one chained scan.
fn row_reduction<const N: usize>(
    c: &[[f64; N]; N],
    nr: usize,
    u: &mut [f64; N],
    v: &mut [f64; N],
    col4row: &mut [usize; N],
    row4col: &mut [usize; N],
) {
    let mut free = [0usize; N];
    let mut n_free = 0;
    for (i, &j) in col4row.iter().enumerate().take(nr) {
        if j == NONE {
            free[n_free] = i;
            n_free += 1;
        }
    }
    let every = [true; N];
    let mut budget = 4 * nr + 16;
    for _pass in 0..2 {
        let (mut k, previous, mut next) = (0, n_free, 0);
        while k < previous && budget > 0 {
            budget -= 1;
            let i = free[k];
            k += 1;
            let row = &c[i];
            let mut h = [0.0f64; N];
            for j in 0..N {
                h[j] = row[j] - v[j];
            }
            let (u1, u2) = two_smallest(&h);
            let at_u1 = lanes_equal(&h, u1, &every);
            let j1_first = at_u1.trailing_zeros() as usize;
            // The second smallest: another lane at u1 on a tie, else a lane at u2.
            let rest = at_u1 & !(1 << j1_first);
            let j2 = if rest != 0 {
                rest.trailing_zeros()
            } else {
                lanes_equal(&h, u2, &every).trailing_zeros()
            } as usize;
            let mut j1 = j1_first;
            let mut evicted = row4col[j1];
            if u1 < u2 {
                for (j, x) in v.iter_mut().enumerate() {
                    *x = if j == j1 { *x - (u2 - u1) } else { *x };
                }
            } else if evicted != NONE {
                // A tie: take the other cheapest column instead.
                j1 = j2;
                evicted = row4col[j1];
            }
            col4row[i] = j1;
            row4col[j1] = i;
            u[i] = row[j1] - v[j1];
            if evicted != NONE {
                col4row[evicted] = NONE;
                if u1 < u2 {
                    // Re-run the evicted row at once.
                    k -= 1;
                    free[k] = evicted;
                } else {
                    free[next] = evicted;
                    next += 1;
                }
            }
        }
        n_free = next;
    }
}

/// Copy the `n_rows x n_cols` block (rows `stride` apart) into `N x N`
/// buffers, rows on the smaller side, checking in the same pass that every
/// entry's magnitude is at most `limit` (which NaN and infinities fail);
/// then solve and append the pairs, sorted by row, to `pairs`. Returns false,
/// with `pairs` untouched, when the problem is not for this solver.
pub(super) fn copy_and_solve<const N: usize>(
    cost: &[f64],
    [n_rows, n_cols, stride]: [usize; 3],
    limit: f64,
    pairs: &mut Vec<(usize, usize)>,
) -> bool {
    let transpose = n_cols < n_rows;
    let mut c = [[INF; N]; N];
    let mut ok = true;
    // Indexed: a transposed copy writes `c` column-wise.
    #[allow(clippy::needless_range_loop)]
    for i in 0..n_rows {
        let Some(row) = cost.get(i * stride..i * stride + n_cols) else {
            return false;
        };
        for (j, &x) in row.iter().enumerate() {
            ok &= x.abs() <= limit;
            if transpose {
                c[j][i] = x;
            } else {
                c[i][j] = x;
            }
        }
    }
    if !ok {
        return false;
    }
    let (nr, nc) = if transpose {
        (n_cols, n_rows)
    } else {
        (n_rows, n_cols)
    };
    let Some(row4col) = solve(&c, nr, nc) else {
        return false;
    };
    if transpose {
        // Columns of the solved problem are the original rows, in order.
        pairs.extend(
            row4col[..nc]
                .iter()
                .enumerate()
                .filter(|&(_, &j)| j != NONE)
                .map(|(i, &j)| (i, j)),
        );
    } else {
        let mut col4row = [NONE; N];
        for (j, &i) in row4col[..nc].iter().enumerate() {
            if i != NONE {
                col4row[i] = j;
            }
        }
        pairs.extend(col4row[..nr].iter().enumerate().map(|(i, &j)| (i, j)));
    }
    true
}

/// A problem of one row or one column, every entry's magnitude at most
/// `limit`: its first smallest entry, the pair [`solve`] picks (the row
/// reduction takes the first lane at the minimum, -0.0 equal to 0.0, and
/// leaves nothing to augment), without the buffers (a 1 x 5 problem took 80
/// ns that way, most of it the copy and the setup). False, with `pairs`
/// untouched, when an entry fails the check.
fn one_line(
    cost: &[f64],
    [n_rows, n_cols, stride]: [usize; 3],
    limit: f64,
    pairs: &mut Vec<(usize, usize)>,
) -> bool {
    let (n, step) = if n_rows == 1 {
        (n_cols, 1)
    } else {
        (n_rows, stride)
    };
    let (mut best, mut arg, mut ok) = (INF, 0, true);
    for k in 0..n {
        let Some(&x) = cost.get(k * step) else {
            return false;
        };
        ok &= x.abs() <= limit;
        (best, arg) = pick(x < best, (x, k), (best, arg));
    }
    if ok {
        pairs.push(if n_rows == 1 { (0, arg) } else { (arg, 0) });
    }
    ok
}

/// The largest side this solver takes.
/// (A 16-wide instance measured no faster than the general solver at 12x12
/// and 16x16.)
pub(super) const MAX_SIDE: usize = 8;

/// Solve the non-empty `n_rows x n_cols` block of `cost` (rows `stride`
/// apart) if both sides are at most [`MAX_SIDE`] and every entry is finite
/// with a magnitude of at most `limit`, appending the pairs to `pairs`
/// (sorted by row); false (nothing appended) otherwise, and for problems of
/// 4 or more rows that are wider than tall. One row or column takes its
/// smallest entry, a smaller side of 2 or 3 the search of `exhaustive.rs`,
/// the rest the fixed buffers.
pub(super) fn try_solve(
    cost: &[f64],
    shape: [usize; 3],
    limit: f64,
    pairs: &mut Vec<(usize, usize)>,
) -> bool {
    let side = shape[0].max(shape[1]);
    if shape[0] == 0 || shape[1] == 0 || side > MAX_SIDE {
        false
    } else if shape[0] == 1 || shape[1] == 1 {
        one_line(cost, shape, limit, pairs)
    } else if shape[0].min(shape[1]) <= 3 {
        exhaustive::try_solve(cost, shape, limit, pairs)
    } else if shape[0] < shape[1] {
        // Wider than tall, 4 or more rows: the general solver measured 20%
        // faster (4 x 8 146 against 186 ns, 7 x 8 315 against 375 ns, the
        // `assign_timing` example, AVX-512 VM); taller than wide and square
        // ones stay here (8 x 5 230 against 314, 8 x 8 405 against 435).
        false
    } else if side <= 4 {
        copy_and_solve::<4>(cost, shape, limit, pairs)
    } else if side <= MAX_SIDE {
        copy_and_solve::<8>(cost, shape, limit, pairs)
    } else {
        false
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::lsap::{Mode, Solver};

    /// splitmix64 in [0, 1): tests need no dependency.
    pub(in super::super) fn rng(seed: &mut u64) -> f64 {
        *seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) as f64 / (u64::MAX as f64 + 1.0)
    }

    fn total(cost: &[f64], stride: usize, pairs: &[(usize, usize)]) -> f64 {
        pairs.iter().map(|&(i, j)| cost[i * stride + j]).sum()
    }

    /// Every shape from 1x1 to 9x9 (9 leaves the fixed path), read at a
    /// stride, with ties (small integers) and without (uniform floats): the
    /// fixed-buffer path and the general solver reach the same total, and
    /// the same pairs where the optimum is unique (uniform costs).
    #[test]
    fn fixed_path_equals_the_general_solver() {
        let mut seed = 17;
        let (mut fast, mut general) = (Solver::new(), Solver::new());
        for trial in 0..4000 {
            let (r, c) = (1 + trial % 9, 1 + (trial / 9) % 9);
            let stride = c + trial % 3;
            let ties = trial % 2 == 0;
            let cost: Vec<f64> = (0..r * stride)
                .map(|_| {
                    let x = rng(&mut seed);
                    if ties {
                        (x * 4.0).floor() - 1.0
                    } else {
                        x * 100.0 - 50.0
                    }
                })
                .collect();
            let a = fast
                .solve_strided(&cost, r, c, stride, Mode::Strict)
                .unwrap()
                .to_vec();
            let b = general
                .solve_general(&cost, r, c, stride, Mode::Strict)
                .unwrap()
                .to_vec();
            assert_eq!(a.len(), r.min(c));
            assert!(a.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 != w[1].1));
            let mut cols: Vec<usize> = a.iter().map(|p| p.1).collect();
            cols.sort_unstable();
            cols.dedup();
            assert_eq!(cols.len(), a.len());
            if ties {
                assert_eq!(
                    total(&cost, stride, &a),
                    total(&cost, stride, &b),
                    "{cost:?}"
                );
            } else {
                assert_eq!(a, b, "{r}x{c} {cost:?}");
            }
        }
    }

    /// One row or one column (the first smallest entry) gives the pair the
    /// buffered solve gives, ties (small integers, signed zeros) included.
    #[test]
    fn one_line_equals_the_buffered_solve() {
        let mut seed = 5;
        for trial in 0..3000 {
            let n = 1 + trial % 8;
            let (r, c) = if trial % 2 == 0 { (1, n) } else { (n, 1) };
            let stride = c + trial % 3;
            let cost: Vec<f64> = (0..r * stride)
                .map(|_| match (rng(&mut seed) * 5.0) as u32 {
                    0 => -0.0,
                    1 => 0.0,
                    k => k as f64 - 3.0,
                })
                .collect();
            let shape = [r, c, stride];
            let (mut direct, mut buffered) = (Vec::new(), Vec::new());
            assert!(super::one_line(&cost, shape, 1e300, &mut direct));
            let done = if n <= 4 {
                super::copy_and_solve::<4>(&cost, shape, 1e300, &mut buffered)
            } else {
                super::copy_and_solve::<8>(&cost, shape, 1e300, &mut buffered)
            };
            assert!(done);
            assert_eq!(direct, buffered, "{r}x{c} {cost:?}");
        }
        let mut pairs = Vec::new();
        assert!(!super::one_line(
            &[1.0, f64::NAN],
            [1, 2, 2],
            1e300,
            &mut pairs
        ));
        assert!(!super::one_line(
            &[1.0, 2e300],
            [2, 1, 1],
            1e300,
            &mut pairs
        ));
        assert!(!super::one_line(&[1.0], [2, 1, 1], 1e300, &mut pairs));
        assert!(pairs.is_empty());
    }

    /// What the fixed path does not take (NaN, -inf, +inf, huge values) gives
    /// exactly the general solver's answer or error.
    #[test]
    fn other_inputs_fall_back() {
        let (mut fast, mut general) = (Solver::new(), Solver::new());
        let base = [1.0, 2.0, 3.0, 4.0, 0.5, 7.0];
        for bad in [f64::NAN, -f64::INFINITY, f64::INFINITY, f64::MAX, -1e306] {
            for at in 0..base.len() {
                let mut cost = base;
                cost[at] = bad;
                for mode in [Mode::Strict, Mode::Partial] {
                    let a = fast.solve_strided(&cost, 2, 3, 3, mode).map(<[_]>::to_vec);
                    let b = general
                        .solve_general(&cost, 2, 3, 3, mode)
                        .map(<[_]>::to_vec);
                    assert_eq!(format!("{a:?}"), format!("{b:?}"));
                }
            }
        }
    }
}
