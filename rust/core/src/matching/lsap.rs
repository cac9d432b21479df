//! Rectangular linear sum assignment by shortest augmenting paths with dual
//! potentials: Crouse, "On implementing 2D rectangular assignment algorithms"
//! (IEEE TAES 2016), the algorithm of SciPy's `linear_sum_assignment`, started
//! from Jonker and Volgenant's column reduction (square problems) and
//! augmenting row reduction (Computing 38, 1987), which match most rows
//! cheaply when every cost is finite. Where several assignments are optimal
//! it may return a different one than SciPy, of the same total cost.
//!
//! `+inf` marks a forbidden pair. `Mode::Strict` asks for a complete matching
//! of the smaller side and reports an infeasible problem as an error;
//! `Mode::Partial` returns, among the matchings that avoid forbidden pairs and
//! have the most pairs, one of minimum total cost. Partial is solved exactly
//! by running the same algorithm on lexicographic costs (forbidden count,
//! cost): every pair becomes allowed, a forbidden one costs (1, 0), and the
//! optimum first minimises the number of forbidden pairs used, then the cost
//! of the others; the forbidden pairs are dropped from the answer.

use std::cmp::Ordering;
use std::ops::{Add, Sub};

use super::small;
use crate::{Error, Result};

/// What to do when `+inf` entries leave no complete matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every row of the smaller side is matched; otherwise an error.
    Strict,
    /// The most pairs that avoid `+inf`, of minimum total cost among those.
    Partial,
}

/// A cost the algorithm can run on: an ordered additive group with an infinity.
trait Cost: Copy + PartialOrd + Add<Output = Self> + Sub<Output = Self> {
    const ZERO: Self;
    const INF: Self;
    fn is_finite(self) -> bool;
    /// The smaller (either when equal). Written as a compare-and-select, which
    /// compiles to one `minsd` for f64 (`f64::min` adds NaN handling; costs
    /// here are never NaN).
    fn min(self, o: Self) -> Self {
        if o < self { o } else { self }
    }
    /// The larger (either when equal).
    fn max(self, o: Self) -> Self {
        if o > self { o } else { self }
    }
}

impl Cost for f64 {
    const ZERO: Self = 0.0;
    const INF: Self = f64::INFINITY;
    fn is_finite(self) -> bool {
        f64::is_finite(self)
    }
}

/// `if c { a } else { b }`, marked unpredictable: which of a row's entries
/// are the smallest is data-dependent, and a mispredicted branch costs more
/// than the few entries of a small problem. Without the mark, LLVM's x86
/// cmov-to-branch pass turned some of these selects into branches in some
/// builds and not others (same source; 16x16 solves 1.8x slower).
fn select<T>(c: bool, a: T, b: T) -> T {
    std::hint::select_unpredictable(c, a, b)
}

/// (number of forbidden pairs, cost), ordered lexicographically (derived
/// `PartialOrd` compares fields in order). Counts are small integers, exact in f64.
#[derive(Debug, Default, Clone, Copy, PartialEq, PartialOrd)]
struct Lex {
    forbidden: f64,
    cost: f64,
}

impl Add for Lex {
    type Output = Self;
    fn add(self, o: Self) -> Self {
        Lex {
            forbidden: self.forbidden + o.forbidden,
            cost: self.cost + o.cost,
        }
    }
}

impl Sub for Lex {
    type Output = Self;
    fn sub(self, o: Self) -> Self {
        Lex {
            forbidden: self.forbidden - o.forbidden,
            cost: self.cost - o.cost,
        }
    }
}

impl Cost for Lex {
    const ZERO: Self = Lex {
        forbidden: 0.0,
        cost: 0.0,
    };
    const INF: Self = Lex {
        forbidden: f64::INFINITY,
        cost: f64::INFINITY,
    };
    fn is_finite(self) -> bool {
        self.forbidden.is_finite() && self.cost.is_finite()
    }
}

const NONE: usize = usize::MAX;

/// The dual potentials and search state of one solve, `nr <= nc`.
#[derive(Debug, Default)]
struct State<C> {
    u: Vec<C>,
    v: Vec<C>,
    shortest: Vec<C>,
    path: Vec<usize>,
    col4row: Vec<usize>,
    row4col: Vec<usize>,
    seen_row: Vec<bool>,
    seen_col: Vec<bool>,
    free: Vec<usize>,
}

impl<C: Cost> State<C> {
    fn reset(&mut self, nr: usize, nc: usize) {
        let fill = |v: &mut Vec<C>, n| {
            v.clear();
            v.resize(n, C::ZERO);
        };
        fill(&mut self.u, nr);
        fill(&mut self.v, nc);
        fill(&mut self.shortest, nc);
        for (x, n) in [
            (&mut self.path, nc),
            (&mut self.col4row, nr),
            (&mut self.row4col, nc),
        ] {
            x.clear();
            x.resize(n, NONE);
        }
        self.seen_row.resize(nr, false);
        self.seen_col.resize(nc, false);
    }

    /// Dijkstra over reduced costs from free row `i` to the nearest free
    /// column; returns (sink, its distance), or None if every path is forbidden.
    fn augmenting_path(&mut self, cost: &[C], nc: usize, mut i: usize) -> Option<(usize, C)> {
        let mut min_val = C::ZERO;
        self.seen_row.fill(false);
        self.seen_col.fill(false);
        self.shortest.fill(C::INF);
        loop {
            self.seen_row[i] = true;
            let row = &cost[i * nc..(i + 1) * nc];
            let (ui, mut lowest, mut index) = (self.u[i], C::INF, NONE);
            // One pass over the columns not yet scanned, zipped so that no
            // access needs a bounds check.
            let columns = row
                .iter()
                .zip(&self.v)
                .zip(self.shortest.iter_mut().zip(self.path.iter_mut()))
                .zip(self.seen_col.iter().zip(&self.row4col))
                .enumerate();
            // Selects rather than branches (see `select`).
            for (j, (((&c, &v), (sp, p)), (&seen, &owner))) in columns {
                let r = min_val + c - ui - v;
                let closer = !seen & (r < *sp);
                *p = select(closer, i, *p);
                *sp = select(closer, r, *sp);
                // Among equal distances prefer a free column: it ends the search.
                let s = *sp;
                let take = !seen & ((s < lowest) | ((s == lowest) & (owner == NONE)));
                lowest = select(take, s, lowest);
                index = select(take, j, index);
            }
            min_val = lowest;
            // Infinite (every path forbidden) or NaN (an overflow) ends the search.
            if index == NONE || min_val.partial_cmp(&C::INF) != Some(Ordering::Less) {
                return None;
            }
            self.seen_col[index] = true;
            match self.row4col[index] {
                NONE => return Some((index, min_val)),
                r => i = r,
            }
        }
    }

    /// Jonker-Volgenant's column reduction and reduction transfer, for finite
    /// square problems: each column's dual becomes its smallest cost and the
    /// column goes to that row if the row is still free; a row that got
    /// exactly one column moves its slack onto that column's dual. (Not for
    /// rectangular problems: a column left unmatched must keep a zero dual.)
    fn column_reduction(&mut self, cost: &[C], n: usize) {
        self.v.fill(C::INF);
        let best_row = &mut self.path;
        for (i, row) in cost.chunks_exact(n).enumerate() {
            for ((&c, v), r) in row.iter().zip(self.v.iter_mut()).zip(best_row.iter_mut()) {
                *r = select(c < *v, i, *r);
                *v = v.min(c);
            }
        }
        let shared = &mut self.seen_row;
        shared.fill(false);
        for j in (0..n).rev() {
            let i = best_row[j];
            if self.col4row[i] == NONE {
                self.col4row[i] = j;
                self.row4col[j] = i;
            } else {
                shared[i] = true;
            }
        }
        for (i, row) in cost.chunks_exact(n).enumerate() {
            let j = self.col4row[i];
            if j == NONE {
                continue;
            }
            if !shared[i] {
                let slack = row
                    .iter()
                    .zip(&self.v)
                    .enumerate()
                    .filter(|&(j2, _)| j2 != j)
                    .map(|(_, (&c, &v))| c - v)
                    .fold(C::INF, |m, x| if x < m { x } else { m });
                self.v[j] = self.v[j] - slack;
            }
            self.u[i] = row[j] - self.v[j];
        }
    }

    /// Jonker-Volgenant's augmenting row reduction (two passes), for finite
    /// costs and `nc >= 2`: each free row takes its cheapest column under the
    /// current column duals, lowering that column's dual to the row's second
    /// cheapest, and evicts the previous holder. It leaves what the
    /// augmenting paths need: duals feasible, matched pairs tight, and only
    /// matched columns with a negative dual (so rectangular problems stay
    /// optimal). It usually matches most rows, leaving few paths to search.
    fn row_reduction(&mut self, cost: &[C], nr: usize, nc: usize) {
        let free = &mut self.free;
        free.clear();
        free.extend((0..nr).filter(|&i| self.col4row[i] == NONE));
        // Each step lowers a dual or moves a row; the budget bounds the
        // (rare) long exchanges, whose rows the path search then takes over.
        let mut budget = 4 * nr + 16;
        for _pass in 0..2 {
            let (mut k, previous, mut next) = (0, free.len(), 0);
            while k < previous && budget > 0 {
                budget -= 1;
                let i = free[k];
                k += 1;
                let row = &cost[i * nc..(i + 1) * nc];
                let (mut u1, mut j1) = (row[0] - self.v[0], 0);
                let (mut u2, mut j2) = (C::INF, 0);
                for (j, (&c, &v)) in row.iter().zip(&self.v).enumerate().skip(1) {
                    let h = c - v;
                    let (below1, below2) = (h < u1, h < u2);
                    j2 = select(below1, j1, select(below2, j, j2));
                    u2 = u2.min(u1.max(h));
                    j1 = select(below1, j, j1);
                    u1 = u1.min(h);
                }
                let mut evicted = self.row4col[j1];
                if u1 < u2 {
                    self.v[j1] = self.v[j1] - (u2 - u1);
                } else if evicted != NONE {
                    // A tie: take the other cheapest column instead.
                    j1 = j2;
                    evicted = self.row4col[j1];
                }
                self.col4row[i] = j1;
                self.row4col[j1] = i;
                self.u[i] = row[j1] - self.v[j1];
                if evicted != NONE {
                    self.col4row[evicted] = NONE;
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
            free.truncate(next);
        }
    }

    /// Solve `cost` (`nr x nc`, `nr <= nc`, no NaN or -inf); false if infeasible.
    /// `reduce`: start with [`Self::column_reduction`] (square problems) and
    /// [`Self::row_reduction`] (finite costs only).
    fn solve(&mut self, cost: &[C], nr: usize, nc: usize, reduce: bool) -> bool {
        self.reset(nr, nc);
        if reduce && nc >= 2 {
            if nr == nc {
                self.column_reduction(cost, nc);
            }
            self.row_reduction(cost, nr, nc);
        }
        for cur in 0..nr {
            if self.col4row[cur] != NONE {
                continue;
            }
            let Some((sink, min_val)) = self.augmenting_path(cost, nc, cur) else {
                return false;
            };
            // Update the duals along the search tree.
            self.u[cur] = self.u[cur] + min_val;
            for i in 0..nr {
                if self.seen_row[i] && i != cur {
                    let j = self.col4row[i];
                    self.u[i] = self.u[i] + min_val - self.shortest[j];
                }
            }
            for j in 0..nc {
                if self.seen_col[j] {
                    self.v[j] = self.v[j] - (min_val - self.shortest[j]);
                }
            }
            // Flip the augmenting path.
            let mut j = sink;
            loop {
                let i = self.path[j];
                self.row4col[j] = i;
                std::mem::swap(&mut self.col4row[i], &mut j);
                if i == cur {
                    break;
                }
            }
        }
        true
    }

    /// The duals stayed finite: no intermediate sum overflowed.
    fn finite(&self) -> bool {
        self.u.iter().chain(&self.v).all(|x| x.is_finite())
    }
}

/// Reusable buffers: solving many problems with one `Solver` allocates once.
#[derive(Debug, Default)]
pub struct Solver {
    plain: State<f64>,
    lex: State<Lex>,
    buf: Vec<f64>,
    lex_buf: Vec<Lex>,
    pairs: Vec<(usize, usize)>,
}

/// Entries with a larger magnitude than `f64::MAX / (8 (n + 2))` are scaled
/// down by a power of two (exact) before solving, so that sums of potentials
/// cannot overflow.
pub(super) fn overflow_limit(n: usize) -> f64 {
    f64::MAX / (8.0 * (n as f64 + 2.0))
}

impl Solver {
    /// A solver with empty buffers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Solve the `n_rows x n_cols` problem `cost` (row-major) and return the
    /// matched (row, col) pairs sorted by row.
    ///
    /// NaN and `-inf` entries are errors, `+inf` forbids a pair. The returned
    /// slice lives until the next call.
    pub fn solve(
        &mut self,
        cost: &[f64],
        n_rows: usize,
        n_cols: usize,
        mode: Mode,
    ) -> Result<&[(usize, usize)]> {
        let entries = n_rows.checked_mul(n_cols).ok_or_else(|| {
            Error::Shape(format!("a {n_rows} x {n_cols} cost matrix is too large"))
        })?;
        if cost.len() != entries {
            return Err(Error::Shape(format!(
                "cost holds {} values, expected {n_rows} x {n_cols}",
                cost.len()
            )));
        }
        self.solve_strided(cost, n_rows, n_cols, n_cols, mode)
    }

    /// [`Self::solve`] for a matrix whose rows start `stride` values apart
    /// (the top-left block of a padded matrix), so a padded batch is solved
    /// in place, without gathering its blocks first.
    pub fn solve_strided(
        &mut self,
        cost: &[f64],
        n_rows: usize,
        n_cols: usize,
        stride: usize,
        mode: Mode,
    ) -> Result<&[(usize, usize)]> {
        self.solve_with(cost, [n_rows, n_cols, stride], mode, true)
    }

    /// [`Self::solve_strided`] without the fixed-buffer path for small
    /// problems: the reference the tests compare that path with.
    pub fn solve_general(
        &mut self,
        cost: &[f64],
        n_rows: usize,
        n_cols: usize,
        stride: usize,
        mode: Mode,
    ) -> Result<&[(usize, usize)]> {
        self.solve_with(cost, [n_rows, n_cols, stride], mode, false)
    }

    fn solve_with(
        &mut self,
        cost: &[f64],
        [n_rows, n_cols, stride]: [usize; 3],
        mode: Mode,
        small_path: bool,
    ) -> Result<&[(usize, usize)]> {
        self.pairs.clear();
        if n_rows == 0 || n_cols == 0 {
            return Ok(&self.pairs);
        }
        let needed = (n_rows - 1)
            .checked_mul(stride)
            .and_then(|x| x.checked_add(n_cols));
        if stride < n_cols || needed.is_none_or(|x| x > cost.len()) {
            return Err(Error::Shape(format!(
                "cost holds {} values, too few for {n_rows} rows of {n_cols} at stride {stride}",
                cost.len()
            )));
        }
        // Small finite problems: fixed buffers, validation fused into the copy.
        let limit = overflow_limit(n_rows.min(n_cols));
        if small_path && small::try_solve(cost, [n_rows, n_cols, stride], limit, &mut self.pairs) {
            return Ok(&self.pairs);
        }
        let row_of = |i: usize| &cost[i * stride..i * stride + n_cols];
        // One branch-free pass; only an invalid matrix is scanned again.
        let (mut largest, mut any_forbidden, mut invalid) = (0.0f64, false, false);
        // Row by row (not a flat_map), so the inner loop stays a plain slice scan.
        for i in 0..n_rows {
            for &c in row_of(i) {
                invalid |= c.is_nan() | (c == f64::NEG_INFINITY);
                any_forbidden |= c == f64::INFINITY;
                let size = if c.is_finite() { c.abs() } else { 0.0 };
                largest = if size > largest { size } else { largest };
            }
        }
        if invalid {
            let at = (0..n_rows)
                .flat_map(row_of)
                .position(|c| c.is_nan() || *c == f64::NEG_INFINITY)
                .unwrap_or(0);
            return Err(Error::Value(format!(
                "cost[{}, {}] is {}; costs must be numbers or +inf (a forbidden pair)",
                at / n_cols,
                at % n_cols,
                cost[at / n_cols * stride + at % n_cols]
            )));
        }
        // Solve with rows on the smaller side, as SciPy does.
        let transpose = n_cols < n_rows;
        let (nr, nc) = if transpose {
            (n_cols, n_rows)
        } else {
            (n_rows, n_cols)
        };
        let scale = if largest > limit {
            // 2^-e with e the smallest power bringing `largest` under the limit.
            (-(largest / limit).log2().ceil()).exp2()
        } else {
            1.0
        };
        let at = |i: usize, j: usize| {
            if transpose {
                cost[j * stride + i]
            } else {
                cost[i * stride + j]
            }
        };
        let (feasible, finite) =
            if mode == Mode::Partial && any_forbidden {
                self.lex_buf.clear();
                self.lex_buf
                    .extend((0..nr).flat_map(|i| (0..nc).map(move |j| (i, j))).map(
                        |(i, j)| match at(i, j) {
                            f64::INFINITY => Lex {
                                forbidden: 1.0,
                                cost: 0.0,
                            },
                            c => Lex {
                                forbidden: 0.0,
                                cost: c * scale,
                            },
                        },
                    ));
                let ok = self.lex.solve(&self.lex_buf, nr, nc, true);
                (ok, self.lex.finite())
            } else {
                let c: &[f64] = if transpose || scale != 1.0 || stride != n_cols {
                    // Plain loops: the flat_map of index pairs this replaces
                    // cost a tall 8 x 5 problem more than its solve.
                    self.buf.clear();
                    for i in 0..nr {
                        self.buf.extend((0..nc).map(|j| at(i, j) * scale));
                    }
                    &self.buf
                } else {
                    &cost[..n_rows * n_cols]
                };
                let ok = self.plain.solve(c, nr, nc, !any_forbidden);
                (ok, self.plain.finite())
            };
        if !finite {
            return Err(Error::Value(
                "the assignment overflowed float64 while solving; rescale the costs".into(),
            ));
        }
        if !feasible {
            return Err(Error::Value(format!(
                "cost matrix is infeasible: no matching of all {nr} {} avoids the forbidden \
                 (+inf) entries (partial matching returns the largest feasible one)",
                if transpose { "columns" } else { "rows" }
            )));
        }
        let (col4row, row4col) = if mode == Mode::Partial && any_forbidden {
            (&self.lex.col4row, &self.lex.row4col)
        } else {
            (&self.plain.col4row, &self.plain.row4col)
        };
        let allowed = |&(r, c): &(usize, usize)| cost[r * stride + c] != f64::INFINITY;
        if transpose {
            // The solved problem's columns are the rows, in order: no sort.
            self.pairs.extend(
                row4col
                    .iter()
                    .enumerate()
                    .filter(|&(_, &i)| i != NONE)
                    .map(|(r, &c)| (r, c))
                    .filter(allowed),
            );
        } else {
            self.pairs.extend(
                col4row
                    .iter()
                    .enumerate()
                    .map(|(i, &j)| (i, j))
                    .filter(allowed),
            );
        }
        Ok(&self.pairs)
    }
}

/// Solve one problem with this thread's reusable [`Solver`] (one-off calls
/// then allocate nothing but the answer); see [`Solver::solve`].
pub fn assign(
    cost: &[f64],
    n_rows: usize,
    n_cols: usize,
    mode: Mode,
) -> Result<Vec<(usize, usize)>> {
    with_solver(|s| s.solve(cost, n_rows, n_cols, mode).map(<[_]>::to_vec))
}

/// [`assign`] by the general solver alone (never the fixed-buffer path for
/// small problems): the reference the tests compare that path with.
pub fn assign_general(
    cost: &[f64],
    n_rows: usize,
    n_cols: usize,
    mode: Mode,
) -> Result<Vec<(usize, usize)>> {
    if cost.len() != n_rows.saturating_mul(n_cols) {
        return Err(Error::Shape(format!(
            "cost holds {} values, expected {n_rows} x {n_cols}",
            cost.len()
        )));
    }
    with_solver(|s| {
        s.solve_general(cost, n_rows, n_cols, n_cols, mode)
            .map(<[_]>::to_vec)
    })
}

/// Run `f` with this thread's reusable [`Solver`]: its buffers outlive the
/// call, so repeated small calls allocate nothing for the solve.
pub fn with_solver<R>(f: impl FnOnce(&mut Solver) -> R) -> R {
    thread_local! {
        static SOLVER: std::cell::RefCell<Solver> = std::cell::RefCell::new(Solver::new());
    }
    SOLVER.with_borrow_mut(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INF: f64 = f64::INFINITY;

    fn total(cost: &[f64], nc: usize, pairs: &[(usize, usize)]) -> f64 {
        pairs.iter().map(|&(i, j)| cost[i * nc + j]).sum()
    }

    /// The best total over every injective map of the smaller side (tiny problems).
    fn brute_force(cost: &[f64], nr: usize, nc: usize) -> Option<f64> {
        fn rec(cost: &[f64], nr: usize, nc: usize, i: usize, used: &mut Vec<bool>) -> f64 {
            if i == nr {
                return 0.0;
            }
            let mut best = INF;
            for j in 0..nc {
                if !used[j] && cost[i * nc + j] < INF {
                    used[j] = true;
                    best = best.min(cost[i * nc + j] + rec(cost, nr, nc, i + 1, used));
                    used[j] = false;
                }
            }
            best
        }
        let t: Vec<f64>;
        let (c, r, k) = if nr <= nc {
            (cost, nr, nc)
        } else {
            t = (0..nc)
                .flat_map(|j| (0..nr).map(move |i| cost[i * nc + j]))
                .collect();
            (&t[..], nc, nr)
        };
        let best = rec(c, r, k, 0, &mut vec![false; k]);
        (best < INF).then_some(best)
    }

    /// A small deterministic generator (splitmix64) so tests need no dependency.
    fn rng(seed: &mut u64) -> f64 {
        *seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) as f64 / u64::MAX as f64
    }

    #[test]
    fn matches_brute_force_on_random_rectangles() {
        let mut seed = 7;
        for trial in 0..400 {
            let nr = 1 + trial % 5;
            let nc = 1 + (trial / 5) % 5;
            let cost: Vec<f64> = (0..nr * nc)
                .map(|_| {
                    let x = rng(&mut seed);
                    // Small integers make ties; some entries are forbidden.
                    if x < 0.15 { INF } else { (x * 6.0).floor() }
                })
                .collect();
            let expect = brute_force(&cost, nr, nc);
            match assign(&cost, nr, nc, Mode::Strict) {
                Ok(p) => {
                    assert_eq!(p.len(), nr.min(nc));
                    assert_eq!(Some(total(&cost, nc, &p)), expect, "{cost:?}");
                    assert!(p.windows(2).all(|w| w[0].0 < w[1].0));
                }
                Err(e) => {
                    assert!(expect.is_none(), "{cost:?}: {e}");
                    assert!(e.to_string().contains("infeasible"));
                }
            }
        }
    }

    /// (most allowed pairs, least cost among those) over every partial matching.
    fn brute_force_partial(cost: &[f64], nr: usize, nc: usize) -> (usize, f64) {
        fn rec(cost: &[f64], nc: usize, i: usize, used: &mut Vec<bool>) -> (usize, f64) {
            if i * nc == cost.len() {
                return (0, 0.0);
            }
            let mut best = rec(cost, nc, i + 1, used); // row i unmatched
            for j in 0..nc {
                let c = cost[i * nc + j];
                if !used[j] && c < INF {
                    used[j] = true;
                    let (n, t) = rec(cost, nc, i + 1, used);
                    used[j] = false;
                    if n + 1 > best.0 || (n + 1 == best.0 && t + c < best.1) {
                        best = (n + 1, t + c);
                    }
                }
            }
            best
        }
        if nr == 0 {
            return (0, 0.0);
        }
        rec(cost, nc, 0, &mut vec![false; nc])
    }

    #[test]
    fn partial_matches_brute_force() {
        let mut seed = 11;
        for trial in 0..400 {
            let nr = 1 + trial % 5;
            let nc = 1 + (trial / 5) % 5;
            let cost: Vec<f64> = (0..nr * nc)
                .map(|_| {
                    let x = rng(&mut seed);
                    if x < 0.5 { INF } else { (x * 8.0).floor() }
                })
                .collect();
            let p = assign(&cost, nr, nc, Mode::Partial).unwrap();
            let (n, t) = brute_force_partial(&cost, nr, nc);
            assert_eq!((p.len(), total(&cost, nc, &p)), (n, t), "{cost:?}");
        }
    }

    #[test]
    fn rejects_nan_and_minus_infinity() {
        for bad in [f64::NAN, -INF] {
            let e = assign(&[0.0, bad, 1.0, 2.0], 2, 2, Mode::Strict).unwrap_err();
            assert!(e.to_string().contains("cost[0, 1]"), "{e}");
        }
    }

    #[test]
    fn empty_and_shape_errors() {
        assert!(assign(&[], 0, 3, Mode::Strict).unwrap().is_empty());
        assert!(assign(&[], 3, 0, Mode::Partial).unwrap().is_empty());
        assert!(assign(&[1.0], 2, 2, Mode::Strict).is_err());
        assert!(assign(&[], usize::MAX, 2, Mode::Strict).is_err());
    }

    #[test]
    fn partial_prefers_more_pairs_then_lower_cost() {
        // Row 0 can only take column 0 (cost 10), row 1 takes 0 (1) or 1 (5):
        // the two-pair matching wins although (1, 0) alone is cheaper.
        let cost = [10.0, INF, 1.0, 5.0];
        assert!(assign(&cost, 2, 2, Mode::Strict).is_ok());
        assert_eq!(
            assign(&cost, 2, 2, Mode::Partial).unwrap(),
            vec![(0, 0), (1, 1)]
        );
        // Only one pair is possible: the cheaper one.
        let cost = [10.0, INF, 1.0, INF];
        assert!(assign(&cost, 2, 2, Mode::Strict).is_err());
        assert_eq!(assign(&cost, 2, 2, Mode::Partial).unwrap(), vec![(1, 0)]);
        assert!(assign(&[INF; 6], 2, 3, Mode::Partial).unwrap().is_empty());
    }

    #[test]
    fn huge_costs_are_scaled_not_overflowed() {
        let m = f64::MAX;
        let cost = [m, m, m, -m];
        assert_eq!(
            assign(&cost, 2, 2, Mode::Strict).unwrap(),
            vec![(0, 0), (1, 1)]
        );
        let cost = [1e307, -1e307, 0.0, -1e307, 1e307, 5.0];
        assert_eq!(
            assign(&cost, 2, 3, Mode::Strict).unwrap(),
            vec![(0, 1), (1, 0)]
        );
    }

    #[test]
    fn transposed_problems_report_pairs_by_row() {
        // 3 rows, 2 columns: rows 2 and 0 get matched.
        let cost = [1.0, 9.0, 9.0, 9.0, 9.0, 0.0];
        assert_eq!(
            assign(&cost, 3, 2, Mode::Strict).unwrap(),
            vec![(0, 0), (2, 1)]
        );
    }
}
