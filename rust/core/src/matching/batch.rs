//! Many small assignment problems in one call, spread over the thread pool.

use super::lsap::{Mode, Solver};
use crate::threads::map_chunks;
use crate::{Error, Result};

/// The solutions of a batch: problem `b` owns pairs `offsets[b]..offsets[b + 1]`
/// of `rows` and `cols`, sorted by row.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BatchAssignment {
    pub rows: Vec<i64>,
    pub cols: Vec<i64>,
    pub offsets: Vec<i64>,
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
    let chunk = (ENTRIES_PER_CHUNK / (end / n.max(1)).max(1)).max(1);
    let parts = map_chunks(n, chunk, |range| {
        let mut solver = Solver::new();
        let mut part = BatchAssignment::default();
        for b in range {
            let [r, c] = shapes[b];
            let pairs = solver
                .solve(&costs[starts[b]..starts[b + 1]], r, c, mode)
                .map_err(|e| match e {
                    Error::Value(m) => Error::Value(format!("problem {b}: {m}")),
                    Error::Shape(m) => Error::Shape(format!("problem {b}: {m}")),
                    other => other,
                })?;
            part.rows.extend(pairs.iter().map(|&(i, _)| i as i64));
            part.cols.extend(pairs.iter().map(|&(_, j)| j as i64));
            part.offsets.push(pairs.len() as i64);
        }
        Ok(part)
    })?;
    let mut out = BatchAssignment {
        offsets: Vec::with_capacity(n + 1),
        ..Default::default()
    };
    out.offsets.push(0);
    for part in parts {
        let part = part?;
        out.rows.extend(part.rows);
        out.cols.extend(part.cols);
        // Per-problem counts become running offsets.
        for count in part.offsets {
            let last = out.offsets.last().copied().unwrap_or(0);
            out.offsets.push(last + count);
        }
    }
    Ok(out)
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
                .map(|k| (out.rows[k] as usize, out.cols[k] as usize))
                .collect();
            assert_eq!(got, one);
        }
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
