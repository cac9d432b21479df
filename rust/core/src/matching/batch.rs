//! Many small assignment problems in one call, spread over the thread pool.

use super::lsap::{Mode, Solver, with_solver};
use crate::threads::{map_chunks, split_in_place};
use crate::{Error, Result};

/// The solutions of a batch: problem `b` owns pairs `offsets[b]..offsets[b + 1]`
/// of [`Self::rows`] and [`Self::cols`], sorted by row.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BatchAssignment {
    /// Every pair's row, then every pair's column, in one allocation: two
    /// outputs of a few hundred KiB each, freed together, made glibc's malloc
    /// give their pages back and fault them in again on every call (a fifth
    /// of a dense 8x8 batch's time); one block of twice the size is kept.
    pub pairs: Vec<i64>,
    pub offsets: Vec<i64>,
}

impl BatchAssignment {
    /// The pairs' rows.
    pub fn rows(&self) -> &[i64] {
        &self.pairs[..self.pairs.len() / 2]
    }

    /// The pairs' columns.
    pub fn cols(&self) -> &[i64] {
        &self.pairs[self.pairs.len() / 2..]
    }
}

/// One chunk's pairs and per-problem counts (the general path).
struct Part {
    rows: Vec<i64>,
    cols: Vec<i64>,
    counts: Vec<i64>,
}

/// Cost entries per parallel chunk: enough to amortise scheduling. Chunks
/// depend only on the shapes, and problems are independent, so the answer
/// (and which error is reported first) never depends on the thread count.
const ENTRIES_PER_CHUNK: usize = 32_768;

/// Solve problem `b` of shape `shapes[b]` (rows, cols) for every `b`; `costs`
/// holds the row-major matrices one after another. Errors name the problem.
pub fn assign_batch(costs: &[f64], shapes: &[[usize; 2]], mode: Mode) -> Result<BatchAssignment> {
    let mut starts = Vec::with_capacity(shapes.len() + 1);
    let mut end = 0usize;
    for (b, &[r, c]) in shapes.iter().enumerate() {
        starts.push(end);
        end = r
            .checked_mul(c)
            .and_then(|n| end.checked_add(n))
            .ok_or_else(|| Error::Shape(format!("problem {b}: the costs are too large")))?;
    }
    starts.push(end);
    if end != costs.len() {
        return Err(Error::Shape(format!(
            "the shapes need {end} cost values, got {}",
            costs.len()
        )));
    }
    let n = shapes.len();
    solve_each(n, end / n.max(1), mode, |b| {
        let [r, c] = shapes[b];
        (&costs[starts[b]..starts[b + 1]], r, c, c)
    })
}

/// Solve the `n` problems of a padded `[n, rows, cols]` array (row-major):
/// problem `b` is the top-left `sizes[b]` block of matrix `b`, read in place
/// (the padding is never read), or the whole matrix when `sizes` is None.
pub fn assign_padded(
    costs: &[f64],
    [n, rows, cols]: [usize; 3],
    sizes: Option<&[[usize; 2]]>,
    mode: Mode,
) -> Result<BatchAssignment> {
    let per = rows
        .checked_mul(cols)
        .filter(|&m| m.checked_mul(n) == Some(costs.len()))
        .ok_or_else(|| {
            Error::Shape(format!(
                "costs hold {} values, expected {n} x {rows} x {cols}",
                costs.len()
            ))
        })?;
    if let Some(sizes) = sizes {
        if sizes.len() != n {
            return Err(Error::Shape(format!(
                "sizes has {} rows for {n} problems",
                sizes.len()
            )));
        }
        if let Some(b) = sizes.iter().position(|&[r, c]| r > rows || c > cols) {
            return Err(Error::Shape(format!(
                "problem {b}: size {:?} is not within the padded shape [{rows}, {cols}]",
                sizes[b]
            )));
        }
    }
    // Chunks sized by the entries solved, not the padding: as many problems
    // per chunk as the same batch as a list, and as many of a shape for the
    // vector lanes to group.
    let entries = sizes.map_or(per, |s| {
        s.iter().map(|&[r, c]| r * c).sum::<usize>() / n.max(1)
    });
    solve_each(n, entries, mode, |b| {
        let [r, c] = sizes.map_or([rows, cols], |s| s[b]);
        (&costs[b * per..(b + 1) * per], r, c, cols)
    })
}

/// Solve problems `0..n`, each `problem(b) = (costs, rows, cols, row stride)`,
/// on the pool in chunks of about [`ENTRIES_PER_CHUNK`] entries (`entries`
/// per problem on average); batches of one chunk run inline on the caller.
fn solve_each<'a, F>(n: usize, entries: usize, mode: Mode, problem: F) -> Result<BatchAssignment>
where
    F: Fn(usize) -> (&'a [f64], usize, usize, usize) + Sync + Send,
{
    let chunk = (ENTRIES_PER_CHUNK / entries.max(1)).max(1);
    if mode == Mode::Strict {
        return solve_strict(n, chunk, problem);
    }
    let solve_range = |range: std::ops::Range<usize>| {
        with_solver(|solver| {
            // Room for the usual number of pairs, so the outputs rarely regrow.
            let guess = range.len() * (entries as f64).sqrt() as usize;
            let mut part = Part {
                rows: Vec::with_capacity(guess),
                cols: Vec::with_capacity(guess),
                counts: Vec::with_capacity(range.len()),
            };
            each_solution(solver, range, &problem, mode, |_, pairs| {
                part.rows.extend(pairs.iter().map(|&(i, _)| i as i64));
                part.cols.extend(pairs.iter().map(|&(_, j)| j as i64));
                part.counts.push(pairs.len() as i64);
                Ok(())
            })?;
            Ok(part)
        })
    };
    // map_chunks: the caller solves chunks itself and pool threads help as
    // they wake (2-thread batches were slower than 1 thread when every chunk
    // went to the pool).
    let parts = map_chunks(n, chunk, solve_range)?
        .into_iter()
        .collect::<Result<Vec<_>>>()?;
    // Sized once: growing the outputs part by part reallocated and faulted in
    // fresh pages several times per call.
    let pairs: usize = parts.iter().map(|p| p.rows.len()).sum();
    let mut out = BatchAssignment {
        pairs: Vec::with_capacity(2 * pairs),
        offsets: Vec::with_capacity(n + 1),
    };
    out.offsets.push(0);
    for part in &parts {
        out.pairs.extend(&part.rows);
        // Per-problem counts become running offsets.
        for count in &part.counts {
            let last = out.offsets.last().copied().unwrap_or(0);
            out.offsets.push(last + count);
        }
    }
    for part in &parts {
        out.pairs.extend(&part.cols);
    }
    Ok(out)
}

/// [`solve_each`] for strict problems, which have exactly `min(rows, cols)`
/// pairs each (or an error): the outputs are sized once and every chunk
/// solves into its own slices of them. (Per-chunk parts concatenated at the
/// end cost a copy and twice the fresh pages: with the page faults, a fifth
/// of a dense 8x8 batch's time.)
fn solve_strict<'a, F>(n: usize, chunk: usize, problem: F) -> Result<BatchAssignment>
where
    F: Fn(usize) -> (&'a [f64], usize, usize, usize) + Sync + Send,
{
    let mut offsets = Vec::with_capacity(n + 1);
    offsets.push(0i64);
    let mut total = 0usize;
    for b in 0..n {
        let (_, r, c, _) = problem(b);
        total += r.min(c);
        offsets.push(total as i64);
    }
    let mut pairs = vec![0i64; 2 * total];
    // Each chunk's slices of the outputs, cut at its first problem's offset.
    let mut cells: Vec<ChunkOut<'_>> = Vec::new();
    let (mut rest_r, mut rest_c) = pairs.split_at_mut(total);
    for start in (0..n).step_by(chunk) {
        let end = n.min(start + chunk);
        let len = (offsets[end] - offsets[start]) as usize;
        let cut = std::mem::take(&mut rest_r)
            .split_at_mut_checked(len)
            .zip(std::mem::take(&mut rest_c).split_at_mut_checked(len));
        let Some(((r, tail_r), (c, tail_c))) = cut else {
            return Err(Error::Shape("the pair counts exceed the outputs".into()));
        };
        (rest_r, rest_c) = (tail_r, tail_c);
        cells.push((None, r, c));
    }
    let solve_range = |range: std::ops::Range<usize>, out_r: &mut [i64], out_c: &mut [i64]| {
        with_solver(|solver| {
            let mut at = 0;
            each_solution(solver, range, &problem, Mode::Strict, |b, pairs| {
                let (Some(dr), Some(dc)) = (
                    out_r.get_mut(at..at + pairs.len()),
                    out_c.get_mut(at..at + pairs.len()),
                ) else {
                    let (_, r, c, _) = problem(b);
                    return Err(Error::Value(format!(
                        "problem {b}: {} pairs where {} were expected",
                        pairs.len(),
                        r.min(c)
                    )));
                };
                for ((x, y), &(i, j)) in dr.iter_mut().zip(dc.iter_mut()).zip(pairs) {
                    (*x, *y) = (i as i64, j as i64);
                }
                at += pairs.len();
                Ok(())
            })
        })
    };
    // As map_chunks: the caller solves chunks itself and pool threads help.
    split_in_place(cells.len(), 1, 2, 1, &mut cells, |cs, part, _| {
        for (ci, (slot, r, c)) in cs.zip(part.iter_mut()) {
            *slot = Some(solve_range(ci * chunk..n.min((ci + 1) * chunk), r, c));
        }
    })?;
    // The first error in problem order, whatever the thread count.
    for (slot, _, _) in cells {
        slot.ok_or_else(|| Error::Threads("a block was not run".into()))??;
    }
    Ok(BatchAssignment { pairs, offsets })
}

/// Solve problems `range` in order and hand each one's pairs (sorted by row)
/// to `emit(b, pairs)`: those the vector path answers (`lanes.rs`: four
/// problems of one shape at a time) from its answers, the rest through
/// `solver`. Stops at the first error, which names its problem.
fn each_solution<'a, F>(
    solver: &mut Solver,
    range: std::ops::Range<usize>,
    problem: &F,
    mode: Mode,
    mut emit: impl FnMut(usize, &[(usize, usize)]) -> Result<()>,
) -> Result<()>
where
    F: Fn(usize) -> (&'a [f64], usize, usize, usize),
{
    #[cfg(target_arch = "x86_64")]
    let (answered, mut lane_pairs) = (super::lanes::answers(problem, range.clone()), [(0, 0); 8]);
    for b in range.clone() {
        let (cost, r, c, stride) = problem(b);
        #[cfg(target_arch = "x86_64")]
        if let Some(solved) = &answered[b - range.start] {
            // An answered lane is all finite: the same pairs in either mode.
            let n = super::lanes::pairs(solved, [r, c], &mut lane_pairs);
            emit(b, &lane_pairs[..n])?;
            continue;
        }
        let pairs = solver
            .solve_strided(cost, r, c, stride, mode)
            .map_err(|e| name_problem(b, e))?;
        emit(b, pairs)?;
    }
    Ok(())
}

/// A chunk's result and its slices of `rows` and `cols`.
type ChunkOut<'s> = (Option<Result<()>>, &'s mut [i64], &'s mut [i64]);

/// An error of problem `b`, with its number.
fn name_problem(b: usize, e: Error) -> Error {
    match e {
        Error::Value(m) => Error::Value(format!("problem {b}: {m}")),
        Error::Shape(m) => Error::Shape(format!("problem {b}: {m}")),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matching::assign;

    #[test]
    fn batch_equals_one_by_one_and_keeps_order() {
        let shapes: Vec<[usize; 2]> = (0..300).map(|b| [1 + b % 4, 1 + b % 3]).collect();
        let mut costs = Vec::new();
        for (b, &[r, c]) in shapes.iter().enumerate() {
            costs.extend((0..r * c).map(|x| ((x * 7 + b * 13) % 11) as f64));
        }
        let out = assign_batch(&costs, &shapes, Mode::Strict).unwrap();
        assert_eq!(out.offsets.len(), shapes.len() + 1);
        let mut at = 0;
        for (b, &[r, c]) in shapes.iter().enumerate() {
            let one = assign(&costs[at..at + r * c], r, c, Mode::Strict).unwrap();
            at += r * c;
            let (lo, hi) = (out.offsets[b] as usize, out.offsets[b + 1] as usize);
            let got: Vec<(usize, usize)> = (lo..hi)
                .map(|k| (out.rows()[k] as usize, out.cols()[k] as usize))
                .collect();
            assert_eq!(got, one);
        }
    }

    #[test]
    fn padded_equals_the_gathered_blocks() {
        let (n, rows, cols) = (50, 4, 5);
        let costs: Vec<f64> = (0..n * rows * cols)
            .map(|x| ((x * 7919) % 13) as f64)
            .collect();
        let sizes: Vec<[usize; 2]> = (0..n).map(|b| [b % 5, (b / 5) % 6]).collect();
        let mut flat = Vec::new();
        for (b, &[r, c]) in sizes.iter().enumerate() {
            for i in 0..r {
                let at = b * rows * cols + i * cols;
                flat.extend_from_slice(&costs[at..at + c]);
            }
        }
        for mode in [Mode::Strict, Mode::Partial] {
            let got = assign_padded(&costs, [n, rows, cols], Some(&sizes), mode).unwrap();
            assert_eq!(got, assign_batch(&flat, &sizes, mode).unwrap());
        }
        let whole = vec![[rows, cols]; n];
        assert_eq!(
            assign_padded(&costs, [n, rows, cols], None, Mode::Strict).unwrap(),
            assign_batch(&costs, &whole, Mode::Strict).unwrap()
        );
        assert!(assign_padded(&costs, [n, rows, cols + 1], None, Mode::Strict).is_err());
        let mut big = sizes.clone();
        big[3] = [rows + 1, 1];
        let e = assign_padded(&costs, [n, rows, cols], Some(&big), Mode::Strict).unwrap_err();
        assert!(e.to_string().starts_with("problem 3:"), "{e}");
        assert!(assign_padded(&costs, [n, rows, cols], Some(&big[1..]), Mode::Strict).is_err());
    }

    #[test]
    fn strict_batches_over_several_chunks_report_the_first_failure() {
        // 1x1 problems: 32,768 to a chunk, so three chunks, and two infeasible
        // problems in different chunks; whatever the threads, the first is named.
        let mut costs = vec![1.0; 70_000];
        costs[40_000] = f64::INFINITY;
        costs[66_000] = f64::INFINITY;
        let shapes = vec![[1, 1]; costs.len()];
        for threads in [1, 2] {
            crate::threads::set_num_threads(threads).unwrap();
            let e = assign_batch(&costs, &shapes, Mode::Strict).unwrap_err();
            assert!(e.to_string().starts_with("problem 40000:"), "{e}");
        }
        costs[40_000] = 2.0;
        costs[66_000] = 3.0;
        let out = assign_batch(&costs, &shapes, Mode::Strict).unwrap();
        assert_eq!(out.offsets.len(), 70_001);
        assert!(out.pairs.iter().all(|&x| x == 0));
        assert_eq!(out.pairs.len(), 140_000);
        assert_eq!(out.offsets[70_000], 70_000);
    }

    #[test]
    fn errors_name_the_problem() {
        let costs = [1.0, 2.0, f64::NAN, 3.0];
        let e = assign_batch(&costs, &[[1, 2], [1, 2]], Mode::Strict).unwrap_err();
        assert!(e.to_string().starts_with("problem 1: cost[0, 0]"), "{e}");
        assert!(assign_batch(&costs, &[[1, 2]], Mode::Strict).is_err());
        assert!(assign_batch(&[], &[[usize::MAX, 2]], Mode::Strict).is_err());
        let empty = assign_batch(&[], &[], Mode::Strict).unwrap();
        assert_eq!(empty.offsets, vec![0]);
    }
}
