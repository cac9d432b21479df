//! The list form of `csipose.matching.match_frames` in two native calls: the
//! frames' poses stacked into one array, and the flat result split into one
//! `PersonMatch` per frame. Both only move data between Python objects (the
//! matching itself is `match_frames_flat`), and both return None where an
//! input is not the plain case, for the Python path that names the problem.

use numpy::ndarray::{Array3, ArrayView2};
use numpy::{
    IntoPyArray, PyArray1, PyArray2, PyArray3, PyArrayMethods, PyReadonlyArray1,
    PyUntypedArrayMethods,
};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyType};

/// The stacked poses and the count of each frame.
type Stacked<'py> = (Bound<'py, PyArray3<f32>>, Bound<'py, PyArray1<i64>>);

/// The people of every frame of `frames` (a list of `[n, K, D]` arrays) one
/// after another as float32 `[sum n, K, D]`, and each frame's `n`. None
/// unless every item is an exact, C-contiguous float32 or float64 ndarray of
/// one shape `[*, K, D]` with `K >= 1` and `D` 2 or 3, and there is one.
/// float64 values are rounded to float32 as numpy's `astype` rounds them
/// (to nearest; beyond float32's range, infinity).
#[pyfunction]
fn stack_people<'py>(
    py: Python<'py>,
    frames: &Bound<'py, PyList>,
) -> PyResult<Option<Stacked<'py>>> {
    Ok(stack(frames)
        .map(|(poses, counts)| (poses.into_pyarray(py), PyArray1::from_slice(py, &counts))))
}

/// [`stack_people`]'s work, None where it returns None.
fn stack(frames: &Bound<'_, PyList>) -> Option<(Array3<f32>, Vec<i64>)> {
    let mut counts = Vec::with_capacity(frames.len());
    let mut poses: Vec<f32> = Vec::new();
    let mut kd = None;
    for item in frames.iter() {
        let [n, k, d] = if let Ok(a) = item.cast_exact::<PyArray3<f32>>() {
            poses.extend_from_slice(&c_order(a)?.to_vec().ok()?);
            shape3(a.shape())
        } else {
            let a = item.cast_exact::<PyArray3<f64>>().ok()?;
            // `as` rounds to nearest and overflows to infinity, as numpy's cast.
            poses.extend(c_order(a)?.to_vec().ok()?.iter().map(|&x| x as f32));
            shape3(a.shape())
        };
        // One shape throughout; anything else is for the Python checks.
        if *kd.get_or_insert((k, d)) != (k, d) || k == 0 || !(d == 2 || d == 3) {
            return None;
        }
        counts.push(i64::try_from(n).ok()?);
    }
    let (k, d) = kd?;
    let people = poses.len() / (k * d);
    let stacked = Array3::from_shape_vec((people, k, d), poses).ok()?;
    Some((stacked, counts))
}

/// A 3-D array's shape (`shape` has three entries: the cast checked the rank).
fn shape3(shape: &[usize]) -> [usize; 3] {
    match shape {
        &[n, k, d] => [n, k, d],
        _ => [0, 0, 0],
    }
}

/// `a` if C-contiguous; `to_vec` would take a Fortran-ordered array as it lies.
fn c_order<'a, 'py, T: numpy::Element>(
    a: &'a Bound<'py, PyArray3<T>>,
) -> Option<&'a Bound<'py, PyArray3<T>>> {
    a.is_c_contiguous().then_some(a)
}

/// Every frame of `flat` (a `FrameMatches`) as an instance of `cls`
/// (`PersonMatch`), made as `object.__new__(cls)` with its `__dict__` filled
/// (the fields of `FrameMatches._frame`, in its order): one array per field,
/// a numpy-owned copy of the frame's part. None where a field is not the
/// contiguous int64 / float64 array `match_frames_flat` makes, or the offsets
/// and counts do not fit the arrays, for `FrameMatches._frame`.
#[pyfunction]
fn person_matches<'py>(
    py: Python<'py>,
    flat: &Bound<'py, PyAny>,
    cls: &Bound<'py, PyType>,
) -> PyResult<Option<Bound<'py, PyList>>> {
    let Some(f) = Fields::read(flat) else {
        return Ok(None);
    };
    let Some(p) = f.plain() else {
        return Ok(None);
    };
    let new = py
        .import(intern!(py, "builtins"))?
        .getattr(intern!(py, "object"))?
        .getattr(intern!(py, "__new__"))?;
    let keys = [
        intern!(py, "pred"),
        intern!(py, "gt"),
        intern!(py, "values"),
        intern!(py, "false_positives"),
        intern!(py, "missed"),
        intern!(py, "matrix"),
        intern!(py, "measure"),
        intern!(py, "threshold"),
        intern!(py, "definition"),
    ];
    let out = PyList::empty(py);
    for i in 0..p.n_pred.len() {
        let Some(part) = p.frame(i) else {
            return Ok(None);
        };
        let values: [Bound<'py, PyAny>; 9] = [
            PyArray1::from_slice(py, part.pred).into_any(),
            PyArray1::from_slice(py, part.gt).into_any(),
            PyArray1::from_slice(py, part.values).into_any(),
            PyArray1::from_slice(py, part.false_positives).into_any(),
            PyArray1::from_slice(py, part.missed).into_any(),
            PyArray2::from_array(py, &part.matrix).into_any(),
            f.measure.clone(),
            f.threshold.clone(),
            f.definition.clone(),
        ];
        let obj = new.call1((cls,))?;
        let dict = obj
            .getattr(intern!(py, "__dict__"))?
            .cast_into::<PyDict>()?;
        for (key, value) in keys.iter().zip(values) {
            dict.set_item(key, value)?;
        }
        out.append(obj)?;
    }
    Ok(Some(out))
}

/// One frame's part of each field.
struct Frame<'a> {
    pred: &'a [i64],
    gt: &'a [i64],
    values: &'a [f64],
    false_positives: &'a [i64],
    missed: &'a [i64],
    matrix: ArrayView2<'a, f64>,
}

/// The fields of a `FrameMatches`, borrowed.
struct Fields<'py> {
    ints: [PyReadonlyArray1<'py, i64>; 10],
    floats: [PyReadonlyArray1<'py, f64>; 2],
    measure: Bound<'py, PyAny>,
    threshold: Bound<'py, PyAny>,
    definition: Bound<'py, PyAny>,
}

/// [`Fields`]' arrays as slices.
struct Plain<'a> {
    pred: &'a [i64],
    gt: &'a [i64],
    offsets: &'a [i64],
    false_positives: &'a [i64],
    fp_offsets: &'a [i64],
    missed: &'a [i64],
    missed_offsets: &'a [i64],
    matrix_offsets: &'a [i64],
    n_pred: &'a [i64],
    n_gt: &'a [i64],
    values: &'a [f64],
    matrices: &'a [f64],
}

impl<'a> Plain<'a> {
    /// Frame `i`'s parts, as `FrameMatches._frame` slices them; None where an
    /// offset or count does not fit (negative, decreasing, past the end, or
    /// a matrix block that is not `n_pred x n_gt`), for `_frame` to handle.
    fn frame(&self, i: usize) -> Option<Frame<'a>> {
        let span = |o: &[i64]| {
            let lo = usize::try_from(*o.get(i)?).ok()?;
            let hi = usize::try_from(*o.get(i + 1)?).ok()?;
            (lo <= hi).then_some(lo..hi)
        };
        let pairs = span(self.offsets)?;
        let block = self.matrices.get(span(self.matrix_offsets)?)?;
        let shape = (
            usize::try_from(*self.n_pred.get(i)?).ok()?,
            usize::try_from(*self.n_gt.get(i)?).ok()?,
        );
        if shape.0.checked_mul(shape.1) != Some(block.len()) {
            return None;
        }
        Some(Frame {
            pred: self.pred.get(pairs.clone())?,
            gt: self.gt.get(pairs.clone())?,
            values: self.values.get(pairs)?,
            false_positives: self.false_positives.get(span(self.fp_offsets)?)?,
            missed: self.missed.get(span(self.missed_offsets)?)?,
            matrix: ArrayView2::from_shape(shape, block).ok()?,
        })
    }
}

impl<'py> Fields<'py> {
    /// None where a field is missing or not a 1-D int64 / float64 array.
    fn read(flat: &Bound<'py, PyAny>) -> Option<Self> {
        let py = flat.py();
        let get = |name: &str| flat.getattr(PyString::intern(py, name)).ok();
        let int = |name: &str| get(name)?.extract::<PyReadonlyArray1<'py, i64>>().ok();
        let float = |name: &str| get(name)?.extract::<PyReadonlyArray1<'py, f64>>().ok();
        Some(Self {
            ints: [
                int("pred")?,
                int("gt")?,
                int("offsets")?,
                int("false_positives")?,
                int("fp_offsets")?,
                int("missed")?,
                int("missed_offsets")?,
                int("matrix_offsets")?,
                int("n_pred")?,
                int("n_gt")?,
            ],
            floats: [float("values")?, float("matrices")?],
            measure: get("measure")?,
            threshold: get("threshold")?,
            definition: get("definition")?,
        })
    }

    /// None where an array is not contiguous.
    fn plain(&self) -> Option<Plain<'_>> {
        let [
            pred,
            gt,
            offsets,
            fp,
            fp_offsets,
            missed,
            missed_offsets,
            matrix_offsets,
            n_pred,
            n_gt,
        ] = &self.ints;
        let [values, matrices] = &self.floats;
        Some(Plain {
            pred: pred.as_slice().ok()?,
            gt: gt.as_slice().ok()?,
            offsets: offsets.as_slice().ok()?,
            false_positives: fp.as_slice().ok()?,
            fp_offsets: fp_offsets.as_slice().ok()?,
            missed: missed.as_slice().ok()?,
            missed_offsets: missed_offsets.as_slice().ok()?,
            matrix_offsets: matrix_offsets.as_slice().ok()?,
            n_pred: n_pred.as_slice().ok()?,
            n_gt: n_gt.as_slice().ok()?,
            values: values.as_slice().ok()?,
            matrices: matrices.as_slice().ok()?,
        })
    }
}

pub(crate) fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(stack_people, module)?)?;
    module.add_function(wrap_pyfunction!(person_matches, module)?)?;
    Ok(())
}
