//! Bindings of `csipose_core::metrics`. The Python wrappers in
//! `csipose/metrics.py` coerce dtypes and build the user-facing results.

use numpy::ndarray::Array2;
use numpy::{
    IntoPyArray, PyReadonlyArray1, PyReadonlyArray2, PyReadonlyArray3, PyUntypedArrayMethods,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use csipose_core::metrics::{self as m, Alignment, OksArea, PckNorm, PoseBatch};

use crate::errors::to_py;

/// The data of a C-contiguous array, or an error naming it.
pub(crate) fn contiguous<'a, T: numpy::Element, D: numpy::ndarray::Dimension>(
    a: &'a numpy::PyReadonlyArray<'_, T, D>,
    name: &str,
) -> PyResult<&'a [T]> {
    a.as_slice()
        .map_err(|_| PyValueError::new_err(format!("{name} must be a C-contiguous array")))
}

fn expect_shape(actual: &[usize], expected: &[usize], name: &str) -> PyResult<()> {
    if actual == expected {
        Ok(())
    } else {
        Err(PyValueError::new_err(format!(
            "{name} has shape {actual:?}, expected {expected:?}"
        )))
    }
}

/// Borrow pred, gt and visible as one validated batch.
fn batch<'a>(
    pred: &'a PyReadonlyArray3<'_, f32>,
    gt: &'a PyReadonlyArray3<'_, f32>,
    visible: Option<&'a PyReadonlyArray2<'_, bool>>,
) -> PyResult<PoseBatch<'a>> {
    let shape = pred.shape();
    if gt.shape() != shape {
        return Err(PyValueError::new_err(format!(
            "pred has shape {:?} but gt has shape {:?}",
            shape,
            gt.shape()
        )));
    }
    if let Some(v) = visible {
        expect_shape(v.shape(), &shape[..2], "visible")?;
    }
    let vis = visible.map(|v| contiguous(v, "visible")).transpose()?;
    PoseBatch::new(
        contiguous(pred, "pred")?,
        contiguous(gt, "gt")?,
        vis,
        [shape[0], shape[1], shape[2]],
    )
    .map_err(to_py)
}

/// PCK counts at each threshold and MPJPE sums in one pass (see csipose_core::metrics::joint_errors);
/// `distances=False`: the PCK counts alone (`pck_counts`; dist_sum and dist_count are 0).
#[pyfunction]
#[pyo3(signature = (pred, gt, visible=None, *, norm=None, torso=None, floor=0.01, factors=None, thresholds=None, root=None, per_sample=false, distances=true))]
#[allow(clippy::too_many_arguments)]
fn joint_errors<'py>(
    py: Python<'py>,
    pred: PyReadonlyArray3<'py, f32>,
    gt: PyReadonlyArray3<'py, f32>,
    visible: Option<PyReadonlyArray2<'py, bool>>,
    norm: Option<&str>,
    torso: Option<(usize, usize)>,
    floor: f64,
    factors: Option<PyReadonlyArray2<'py, f64>>,
    thresholds: Option<PyReadonlyArray1<'py, f64>>,
    root: Option<usize>,
    per_sample: bool,
    distances: bool,
) -> PyResult<Bound<'py, PyDict>> {
    if !distances && (norm.is_none() || root.is_some() || per_sample) {
        return Err(PyValueError::new_err(
            "distances=False counts the PCK alone: it needs norm and takes no root or per_sample",
        ));
    }
    let b = batch(&pred, &gt, visible.as_ref())?;
    let factors = factors
        .as_ref()
        .map(|f| contiguous(f, "factors"))
        .transpose()?;
    let kind = norm
        .map(str::parse::<m::NormKind>)
        .transpose()
        .map_err(to_py)?;
    let norm = match kind {
        None => None,
        Some(m::NormKind::Torso) => {
            let (a, b) =
                torso.ok_or_else(|| PyValueError::new_err("norm 'torso' needs torso=(a, b)"))?;
            Some(PckNorm::Torso { a, b, floor })
        }
        Some(m::NormKind::BBox) => Some(PckNorm::BBox),
        Some(m::NormKind::MmPose) => Some(PckNorm::MmPose { factors }),
        Some(m::NormKind::Absolute) => Some(PckNorm::Absolute),
    };
    let thresholds = thresholds
        .as_ref()
        .map(|t| contiguous(t, "thresholds"))
        .transpose()?
        .unwrap_or(&[]);
    let mut samples = if per_sample {
        vec![0.0; b.n()]
    } else {
        Vec::new()
    };
    let out = if per_sample {
        Some(samples.as_mut_slice())
    } else {
        None
    };
    let r = py
        .detach(|| match (&norm, distances) {
            (Some(nm), false) => m::pck_counts(&b, nm, thresholds),
            _ => m::joint_errors(&b, norm.as_ref(), thresholds, root, out),
        })
        .map_err(to_py)?;
    let t = if norm.is_some() { thresholds.len() } else { 0 };
    let correct = Array2::from_shape_vec((t, b.k()), r.correct)
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    let d = PyDict::new(py);
    d.set_item("correct", correct.into_pyarray(py))?;
    d.set_item("scored", r.scored.into_pyarray(py))?;
    d.set_item("pck_skipped", r.pck_skipped)?;
    d.set_item("dist_sum", r.dist_sum)?;
    d.set_item("dist_count", r.dist_count)?;
    d.set_item("root_skipped", r.root_skipped)?;
    d.set_item("per_sample", per_sample.then(|| samples.into_pyarray(py)))?;
    Ok(d)
}

/// N-MPJPE ('scale') or PA-MPJPE ('similarity') sums (see csipose_core::metrics::aligned_errors).
#[pyfunction]
#[pyo3(signature = (pred, gt, visible=None, *, alignment, per_sample=false))]
fn aligned_errors<'py>(
    py: Python<'py>,
    pred: PyReadonlyArray3<'py, f32>,
    gt: PyReadonlyArray3<'py, f32>,
    visible: Option<PyReadonlyArray2<'py, bool>>,
    alignment: &str,
    per_sample: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let b = batch(&pred, &gt, visible.as_ref())?;
    let alignment: Alignment = alignment.parse().map_err(to_py)?;
    let mut samples = if per_sample {
        vec![0.0; b.n()]
    } else {
        Vec::new()
    };
    let out = if per_sample {
        Some(samples.as_mut_slice())
    } else {
        None
    };
    let r = py
        .detach(|| m::aligned_errors(&b, alignment, out))
        .map_err(to_py)?;
    let d = PyDict::new(py);
    d.set_item("dist_sum", r.dist_sum)?;
    d.set_item("dist_count", r.dist_count)?;
    d.set_item("degenerate", r.degenerate)?;
    d.set_item("per_sample", per_sample.then(|| samples.into_pyarray(py)))?;
    Ok(d)
}

/// COCO OKS per sample (see csipose_core::metrics::oks); `area=None` uses the keypoint bounding box.
#[pyfunction]
#[pyo3(signature = (pred, gt, visible=None, *, sigmas, area=None, bbox=None))]
fn oks<'py>(
    py: Python<'py>,
    pred: PyReadonlyArray3<'py, f32>,
    gt: PyReadonlyArray3<'py, f32>,
    visible: Option<PyReadonlyArray2<'py, bool>>,
    sigmas: PyReadonlyArray1<'py, f64>,
    area: Option<PyReadonlyArray1<'py, f64>>,
    bbox: Option<PyReadonlyArray2<'py, f64>>,
) -> PyResult<Bound<'py, numpy::PyArray1<f64>>> {
    let b = batch(&pred, &gt, visible.as_ref())?;
    let sigmas = contiguous(&sigmas, "sigmas")?;
    let area = match area.as_ref() {
        Some(a) => OksArea::Given(contiguous(a, "area")?),
        None => OksArea::KeypointBBox,
    };
    if let Some(x) = &bbox {
        expect_shape(x.shape(), &[b.n(), 4], "bbox")?;
    }
    let bbox = bbox.as_ref().map(|x| contiguous(x, "bbox")).transpose()?;
    let mut out = vec![0.0; b.n()];
    py.detach(|| m::oks(&b, sigmas, area, bbox, &mut out))
        .map_err(to_py)?;
    Ok(out.into_pyarray(py))
}

pub(crate) fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(joint_errors, module)?)?;
    module.add_function(wrap_pyfunction!(aligned_errors, module)?)?;
    module.add_function(wrap_pyfunction!(oks, module)?)?;
    Ok(())
}
