//! Problems whose smaller side is 2 or 3 (two or three people on one side of
//! a frame), solved by search instead of dual updates. Some optimum pairs
//! every line of the smaller side with one of that line's `k` smallest
//! entries (`k` = 2 or 3 lines): if a line took another lane, one of its `k`
//! smallest is left free by the other `k - 1` lines, and moving there costs
//! nothing more; doing so line by line moves no other line. So the search
//! needs each line's `k` smallest (independent passes, no chain between
//! lines) and then at most `k^(k-1)` candidate totals, not the dual updates
//! and path searches of `small.rs`, whose dependent steps made a 2 x 2 take
//! 61 ns. Where several assignments are optimal the pairs may differ from
//! the dual solver's; the total is the same (`tests/test_matching_small.py`).

use super::small::pick;

const INF: f64 = f64::INFINITY;

/// `a < b ? a : b` and `a > b ? a : b`: one minsd / maxsd (no NaN here).
fn lo(a: f64, b: f64) -> f64 {
    if a < b { a } else { b }
}
fn hi(a: f64, b: f64) -> f64 {
    if a > b { a } else { b }
}

/// The `K` smallest of `line(0..m)` and their lanes, smallest first; ties
/// keep the earlier lane first; missing ones (`m < K`) are `+inf`. Values by
/// min / max and lanes by selects: nested selects of (value, lane) pairs
/// were compiled to branches, which random costs mispredict (a 3 x 8 took
/// 190 ns that way, 75 ns this way).
#[inline(always)]
fn smallest<const K: usize>(m: usize, line: impl Fn(usize) -> f64) -> ([f64; K], [usize; K]) {
    let (mut v, mut at) = ([INF; K], [usize::MAX; K]);
    for j in 0..m {
        let x = line(j);
        let below = v.map(|y| x < y);
        // Slot s takes slot s - 1's entry if x goes above it, else x if x goes there.
        for s in (1..K).rev() {
            at[s] = pick(below[s - 1], at[s - 1], pick(below[s], j, at[s]));
            v[s] = lo(v[s], hi(v[s - 1], x));
        }
        at[0] = pick(below[0], j, at[0]);
        v[0] = lo(v[0], x);
    }
    (v, at)
}

/// The lane of each of two lines from each line's two smallest values `v`
/// and their lanes `at` ([`smallest`]): different first choices are
/// optimal; else one line takes its second.
#[inline(always)]
pub(super) fn choose2(v: [[f64; 2]; 2], at: [[usize; 2]; 2]) -> [usize; 2] {
    let ([va, vb], [ja, jb]) = (v, at);
    let second_b = va[0] + vb[1] <= va[1] + vb[0];
    let (j, l) = pick(
        ja[0] != jb[0],
        (ja[0], jb[0]),
        pick(second_b, (ja[0], jb[1]), (ja[1], jb[0])),
    );
    [j, l]
}

/// The lane of each of three lines from each line's three smallest:
/// each of the first two lines' three at distinct lanes, then the third
/// line's first free one; nine totals, their minimum, the first lane at it.
#[inline(always)]
pub(super) fn choose3(v: [[f64; 3]; 3], at: [[usize; 3]; 3]) -> [usize; 3] {
    let ([va, vb, vc], [ja, jb, jc]) = (v, at);
    let mut t = [INF; 9];
    let mut third = [0usize; 9];
    for (s, (slot, q)) in t.iter_mut().zip(&mut third).enumerate() {
        let (j, l) = (ja[s / 3], jb[s % 3]);
        let used = |q: usize| usize::from((q == j) | (q == l));
        let free = used(jc[0]) * (1 + used(jc[1]));
        *q = jc[free];
        *slot = if j == l {
            INF
        } else {
            va[s / 3] + vb[s % 3] + vc[free]
        };
    }
    let best = t.iter().fold(INF, |m, &x| lo(m, x));
    let s = t.iter().position(|&x| x == best).unwrap_or(0);
    [ja[s / 3], jb[s % 3], third[s]]
}

/// Solve the `n_rows x n_cols` block (rows `stride` apart; smaller side 2
/// or 3) if every entry's magnitude is at most `limit` (which NaN and
/// infinities fail), appending the pairs sorted by row. False, with `pairs`
/// untouched, otherwise. The entries are read in place.
pub(super) fn try_solve(
    cost: &[f64],
    [n_rows, n_cols, stride]: [usize; 3],
    limit: f64,
    pairs: &mut Vec<(usize, usize)>,
) -> bool {
    let transpose = n_cols < n_rows;
    let (k, m) = if transpose {
        (n_cols, n_rows)
    } else {
        (n_rows, n_cols)
    };
    // k >= 2 also keeps n_rows - 1 from wrapping.
    if !(2..=3).contains(&k) {
        return false;
    }
    let Some(block) = cost.get(..(n_rows - 1) * stride + n_cols) else {
        return false;
    };
    let mut ok = true;
    for i in 0..n_rows {
        for &x in &block[i * stride..i * stride + n_cols] {
            ok &= x.abs() <= limit;
        }
    }
    if !ok {
        return false;
    }
    // Entry `lane` of line `line` (a row, or a column when transposed).
    let (line_step, lane_step) = if transpose { (1, stride) } else { (stride, 1) };
    let at = |line: usize| move |lane: usize| block[line * line_step + lane * lane_step];
    let mut found = [(0, 0); 3];
    if k == 2 {
        let (va, ja) = smallest::<2>(m, at(0));
        let (vb, jb) = smallest::<2>(m, at(1));
        let [j, l] = choose2([va, vb], [ja, jb]);
        found[..2].copy_from_slice(&[(0, j), (1, l)]);
    } else {
        let (va, ja) = smallest::<3>(m, at(0));
        let (vb, jb) = smallest::<3>(m, at(1));
        let (vc, jc) = smallest::<3>(m, at(2));
        let [j, l, q] = choose3([va, vb, vc], [ja, jb, jc]);
        found = [(0, j), (1, l), (2, q)];
    }
    let found = &mut found[..k];
    if transpose {
        // Lines are columns: pairs (row, column), sorted by row with the
        // compare-exchanges of a three-element network (the library sort's
        // call showed in profiles).
        for p in found.iter_mut() {
            *p = (p.1, p.0);
        }
        for (x, y) in [(0, 1), (1, 2), (0, 1)] {
            if y < found.len() && found[y] < found[x] {
                found.swap(x, y);
            }
        }
    }
    pairs.extend_from_slice(found);
    true
}

#[cfg(test)]
mod tests {
    use crate::sim::Draws;

    /// The least total over every injective map of the `k` lines into `m`
    /// lanes, summed in line order as `try_solve` sums.
    fn brute(line: &dyn Fn(usize, usize) -> f64, k: usize, m: usize) -> f64 {
        let mut best = f64::INFINITY;
        for code in 0..m.pow(k as u32) {
            let lanes: Vec<usize> = (0..k).map(|i| code / m.pow(i as u32) % m).collect();
            if (0..k).any(|i| lanes[..i].contains(&lanes[i])) {
                continue;
            }
            let t = (0..k).fold(0.0, |s, i| s + line(i, lanes[i]));
            best = best.min(t);
        }
        best
    }

    /// Every 2 x m and 3 x m shape (m up to 8) in both orientations, read at
    /// a stride: a valid assignment whose total is the exhaustive minimum,
    /// with ties (small integers, signed zeros) and without.
    #[test]
    fn equals_brute_force() {
        let mut draws = Draws::new(3);
        for trial in 0..6000 {
            let (k, m) = (2 + trial % 2, 2 + (trial / 2) % 7);
            if m < k {
                continue;
            }
            let transpose = trial % 3 == 0;
            let (r, c) = if transpose { (m, k) } else { (k, m) };
            let stride = c + trial % 4;
            let ties = trial % 5 < 2;
            let cost: Vec<f64> = (0..r * stride)
                .map(|_| {
                    let x = draws.uniform();
                    if ties {
                        [-0.0, 0.0, 1.0, -1.0, 2.0][(x * 5.0) as usize]
                    } else {
                        x * 10.0 - 5.0
                    }
                })
                .collect();
            let mut pairs = Vec::new();
            assert!(super::try_solve(&cost, [r, c, stride], 1e300, &mut pairs));
            assert_eq!(pairs.len(), k);
            assert!(pairs.windows(2).all(|w| w[0].0 < w[1].0));
            let mut cols: Vec<usize> = pairs.iter().map(|p| p.1).collect();
            cols.sort_unstable();
            cols.dedup();
            assert_eq!(cols.len(), k);
            assert!(pairs.iter().all(|&(i, j)| i < r && j < c));
            let entry = |i: usize, j: usize| cost[i * stride + j];
            let line = |i: usize, lane: usize| {
                if transpose {
                    entry(lane, i)
                } else {
                    entry(i, lane)
                }
            };
            // Summed in line order, as `brute` sums.
            let mut by_line: Vec<(usize, usize)> = pairs
                .iter()
                .map(|&(i, j)| if transpose { (j, i) } else { (i, j) })
                .collect();
            by_line.sort_unstable();
            let total = by_line.iter().fold(0.0, |s, &(i, lane)| s + line(i, lane));
            assert_eq!(total, brute(&line, k, m), "{r}x{c} {cost:?} {pairs:?}");
        }
    }

    /// Entries over the limit, NaN and infinities leave the problem to the
    /// other solvers, with `pairs` untouched.
    #[test]
    fn declines_what_it_does_not_cover() {
        let mut pairs = Vec::new();
        for bad in [f64::NAN, f64::INFINITY, -f64::INFINITY, 2e300] {
            let cost = [1.0, 2.0, bad, 4.0, 5.0, 6.0];
            assert!(!super::try_solve(&cost, [2, 3, 3], 1e300, &mut pairs));
            assert!(!super::try_solve(&cost, [3, 2, 2], 1e300, &mut pairs));
        }
        assert!(!super::try_solve(&[1.0; 16], [4, 4, 4], 1e300, &mut pairs));
        assert!(!super::try_solve(&[1.0; 5], [2, 3, 3], 1e300, &mut pairs));
        assert!(!super::try_solve(&[], [0, 3, 3], 1e300, &mut pairs));
        assert!(!super::try_solve(&[1.0; 3], [1, 3, 3], 1e300, &mut pairs));
        assert!(pairs.is_empty());
    }
}
