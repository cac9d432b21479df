//! Bindings of `csipose_core::matching`; `csipose/matching.py` coerces the
//! inputs and builds the results.

use numpy::{
    IntoPyArray, PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2,
    PyReadonlyArray3, PyUntypedArrayMethods,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyList, PySlice, PyTuple};

use csipose_core::matching::{self as m, Mode};

use crate::errors::to_py;
use crate::metrics::contiguous;

type Ints<'py> = Bound<'py, PyArray1<i64>>;

/// A small vector is copied into a numpy-owned array: that is cheaper to
/// create and to free than an array that keeps the Rust vector alive (which
/// costs a Python object of its own), and the copy of a large one is avoided.
fn ints(py: Python<'_>, v: Vec<i64>) -> Ints<'_> {
    if v.len() <= 4096 {
        PyArray1::from_slice(py, &v)
    } else {
        v.into_pyarray(py)
    }
}

/// A batch's (rows, cols, offsets): rows and cols two views of its one array
/// of pairs (the core keeps them in one allocation; see
/// `BatchAssignment::pairs`), or for a small batch two numpy-owned copies (two
/// slicing calls cost more than that).
fn batch_result<'py>(
    py: Python<'py>,
    out: m::BatchAssignment,
) -> PyResult<(Ints<'py>, Ints<'py>, Ints<'py>)> {
    let (pairs, offsets) = (out.pairs, ints(py, out.offsets));
    let (rows, cols) = pairs.split_at(pairs.len() / 2);
    if pairs.len() <= 4096 {
        return Ok((
            PyArray1::from_slice(py, rows),
            PyArray1::from_slice(py, cols),
            offsets,
        ));
    }
    let n = (pairs.len() / 2) as isize;
    let all = ints(py, pairs);
    let half = |lo: isize, hi: isize| -> PyResult<Ints<'py>> {
        let view = all.as_any().get_item(PySlice::new(py, lo, hi, 1))?;
        Ok(view.cast_into::<PyArray1<i64>>()?)
    };
    Ok((half(0, n)?, half(n, 2 * n)?, offsets))
}

fn mode(partial: bool) -> Mode {
    if partial { Mode::Partial } else { Mode::Strict }
}

/// Optimal assignment of one float64 cost matrix: (rows, cols) sorted by row.
#[pyfunction]
#[pyo3(signature = (cost, partial=false))]
fn assign<'py>(
    py: Python<'py>,
    cost: PyReadonlyArray2<'py, f64>,
    partial: bool,
) -> PyResult<(Ints<'py>, Ints<'py>)> {
    solve_one(py, cost, partial, m::assign)
}

/// [`assign`] by the general solver only (no fixed-buffer path for small
/// problems): for tests that compare the two.
#[pyfunction]
#[pyo3(signature = (cost, partial=false))]
fn assign_general<'py>(
    py: Python<'py>,
    cost: PyReadonlyArray2<'py, f64>,
    partial: bool,
) -> PyResult<(Ints<'py>, Ints<'py>)> {
    solve_one(py, cost, partial, m::assign_general)
}

type Solve = fn(&[f64], usize, usize, Mode) -> csipose_core::Result<Vec<(usize, usize)>>;

fn solve_one<'py>(
    py: Python<'py>,
    cost: PyReadonlyArray2<'py, f64>,
    partial: bool,
    solve: Solve,
) -> PyResult<(Ints<'py>, Ints<'py>)> {
    let [r, c] = [cost.shape()[0], cost.shape()[1]];
    // Any strides: a transposed or sliced matrix is copied here, row-major.
    let copy: Vec<f64>;
    let x = match cost.as_slice() {
        Ok(x) => x,
        Err(_) => {
            copy = cost.as_array().iter().copied().collect();
            &copy
        }
    };
    let pairs = py.detach(|| solve(x, r, c, mode(partial))).map_err(to_py)?;
    let rows: Vec<i64> = pairs.iter().map(|&(i, _)| i as i64).collect();
    let cols: Vec<i64> = pairs.iter().map(|&(_, j)| j as i64).collect();
    Ok((
        PyArray1::from_slice(py, &rows),
        PyArray1::from_slice(py, &cols),
    ))
}

/// Optimal assignments of many matrices: `costs` holds the row-major matrices
/// of `shapes` [B, 2] one after another. Returns (rows, cols, offsets [B + 1]).
#[pyfunction]
#[pyo3(signature = (costs, shapes, partial=false))]
fn assign_batch<'py>(
    py: Python<'py>,
    costs: PyReadonlyArray1<'py, f64>,
    shapes: PyReadonlyArray2<'py, u64>,
    partial: bool,
) -> PyResult<(Ints<'py>, Ints<'py>, Ints<'py>)> {
    if shapes.shape()[1] != 2 {
        return Err(PyValueError::new_err(format!(
            "shapes must have shape [B, 2], got {:?}",
            shapes.shape()
        )));
    }
    let too_big = |_| PyValueError::new_err("a shape does not fit in memory");
    let shapes = shapes
        .as_array()
        .rows()
        .into_iter()
        .map(|s| {
            Ok([
                usize::try_from(s[0]).map_err(too_big)?,
                usize::try_from(s[1]).map_err(too_big)?,
            ])
        })
        .collect::<PyResult<Vec<[usize; 2]>>>()?;
    let x = contiguous(&costs, "costs")?;
    let out = py
        .detach(|| m::assign_batch(x, &shapes, mode(partial)))
        .map_err(to_py)?;
    batch_result(py, out)
}

/// [`assign_batch`] of a list or tuple of matrices, gathered here in one
/// call: every item an exact `numpy.ndarray`, float64, 2-D and C-contiguous,
/// its values copied into one flat buffer. Returns None when an item is
/// anything else (or `costs` is not a list or tuple), for the caller's
/// checked path, which names `costs[b]` in its errors.
#[pyfunction]
#[pyo3(signature = (costs, partial=false))]
fn assign_list<'py>(
    py: Python<'py>,
    costs: &Bound<'py, PyAny>,
    partial: bool,
) -> PyResult<Option<(Ints<'py>, Ints<'py>, Ints<'py>)>> {
    let gathered = if let Ok(list) = costs.cast_exact::<PyList>() {
        gather(list.len(), list.iter())
    } else if let Ok(tuple) = costs.cast_exact::<PyTuple>() {
        gather(tuple.len(), tuple.iter())
    } else {
        None
    };
    let Some((flat, shapes)) = gathered else {
        return Ok(None);
    };
    let out = py
        .detach(|| m::assign_batch(&flat, &shapes, mode(partial)))
        .map_err(to_py)?;
    batch_result(py, out).map(Some)
}

/// The values and shapes of `n` matrices, or None at the first item that is
/// not an exact float64 2-D C-contiguous aligned ndarray.
///
/// Each item is copied through `to_vec`, one short-lived allocation: about
/// 0.03 us an item over the solve, where a numpy borrow (`try_readonly`,
/// whose bookkeeping registers and releases every array) cost 0.11 us
/// (10,000 mixed 2-8 x 2-8 problems, 1 thread, CPU time).
fn gather<'py>(
    n: usize,
    items: impl Iterator<Item = Bound<'py, PyAny>>,
) -> Option<(Vec<f64>, Vec<[usize; 2]>)> {
    let mut shapes = Vec::with_capacity(n);
    // Room for 8x8 problems; larger ones regrow it a few times.
    let mut flat = Vec::with_capacity(n.saturating_mul(64));
    for item in items {
        let a = item.cast_exact::<PyArray2<f64>>().ok()?;
        if !a.is_c_contiguous() {
            return None; // to_vec would take a Fortran-ordered matrix as it lies
        }
        flat.extend_from_slice(&a.to_vec().ok()?);
        let s = a.shape();
        shapes.push([s[0], s[1]]);
    }
    Some((flat, shapes))
}

/// Optimal assignments of a padded batch `costs` [B, R, C]: problem `b` is
/// the top-left `sizes[b]` (rows, cols) block, or the whole matrix when
/// `sizes` is None; read in place. Returns (rows, cols, offsets [B + 1]).
#[pyfunction]
#[pyo3(signature = (costs, sizes=None, partial=false))]
fn assign_padded<'py>(
    py: Python<'py>,
    costs: PyReadonlyArray3<'py, f64>,
    sizes: Option<PyReadonlyArray2<'py, i64>>,
    partial: bool,
) -> PyResult<(Ints<'py>, Ints<'py>, Ints<'py>)> {
    let [b, r, c] = [costs.shape()[0], costs.shape()[1], costs.shape()[2]];
    let sizes = match &sizes {
        None => None,
        Some(s) => {
            if s.shape() != [b, 2] {
                return Err(PyValueError::new_err(format!(
                    "sizes must have shape [{b}, 2], got {:?}",
                    s.shape()
                )));
            }
            let size = |x: i64| {
                usize::try_from(x)
                    .map_err(|_| PyValueError::new_err(format!("sizes must be >= 0, got {x}")))
            };
            Some(
                s.as_array()
                    .rows()
                    .into_iter()
                    .map(|s| Ok([size(s[0])?, size(s[1])?]))
                    .collect::<PyResult<Vec<[usize; 2]>>>()?,
            )
        }
    };
    let x = contiguous(&costs, "costs")?;
    let out = py
        .detach(|| m::assign_padded(x, [b, r, c], sizes.as_deref(), mode(partial)))
        .map_err(to_py)?;
    batch_result(py, out)
}

/// Mean distance over visible joints of every (prediction, true person) pair
/// of each frame: the frames' [P_f, G_f] blocks concatenated.
#[pyfunction]
fn pair_distances<'py>(
    py: Python<'py>,
    pred: PyReadonlyArray3<'py, f32>,
    gt: PyReadonlyArray3<'py, f32>,
    visible: PyReadonlyArray2<'py, bool>,
    pred_offsets: PyReadonlyArray1<'py, u64>,
    gt_offsets: PyReadonlyArray1<'py, u64>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let [k, d] = [pred.shape()[1], pred.shape()[2]];
    if gt.shape()[1..] != [k, d] || visible.shape() != [gt.shape()[0], k] {
        return Err(PyValueError::new_err(
            "pred [P, K, D], gt [G, K, D] and visible [G, K] must agree",
        ));
    }
    let offsets = |a: &PyReadonlyArray1<'py, u64>, name: &str| -> PyResult<Vec<usize>> {
        contiguous(a, name)?
            .iter()
            .map(|&x| {
                usize::try_from(x)
                    .map_err(|_| PyValueError::new_err(format!("{name}: {x} is too large")))
            })
            .collect()
    };
    let (po, go) = (
        offsets(&pred_offsets, "pred_offsets")?,
        offsets(&gt_offsets, "gt_offsets")?,
    );
    let p = m::People {
        poses: contiguous(&pred, "pred")?,
        offsets: &po,
    };
    let g = m::People {
        poses: contiguous(&gt, "gt")?,
        offsets: &go,
    };
    let vis = contiguous(&visible, "visible")?;
    let out = py
        .detach(|| m::pair_distances(&p, &g, vis, k, d))
        .map_err(to_py)?;
    Ok(out.into_pyarray(py))
}

pub(crate) fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(assign, module)?)?;
    module.add_function(wrap_pyfunction!(assign_general, module)?)?;
    module.add_function(wrap_pyfunction!(assign_batch, module)?)?;
    module.add_function(wrap_pyfunction!(assign_padded, module)?)?;
    module.add_function(wrap_pyfunction!(assign_list, module)?)?;
    module.add_function(wrap_pyfunction!(pair_distances, module)?)?;
    Ok(())
}
