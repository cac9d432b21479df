//! Bindings of `csipose_core::metrics::coco_eval`: the per-image half of a COCO
//! keypoint evaluation. `csipose/metrics/oks_ap.py` sorts, flattens and
//! accumulates; `csipose/matching.py` uses the OKS matrices as match costs.

use numpy::{
    IntoPyArray, PyArray1, PyReadonlyArray1, PyReadonlyArray2, PyReadonlyArray3,
    PyUntypedArrayMethods,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use csipose_core::metrics::coco_eval::{self as ce, Images, OksGt};

use crate::errors::to_py;
use crate::metrics::contiguous;

fn offsets(a: &PyReadonlyArray1<'_, u64>, name: &str) -> PyResult<Vec<usize>> {
    contiguous(a, name)?
        .iter()
        .map(|&x| {
            usize::try_from(x)
                .map_err(|_| PyValueError::new_err(format!("{name}: {x} is too large")))
        })
        .collect()
}

/// OKS blocks D_i x G_i of every image, concatenated (COCOeval.computeOks).
#[pyfunction]
#[pyo3(signature = (dt, gt, labelled, area, sigmas, dt_offsets, gt_offsets, bbox=None))]
#[allow(clippy::too_many_arguments)]
fn oks_matrices<'py>(
    py: Python<'py>,
    dt: PyReadonlyArray3<'py, f64>,
    gt: PyReadonlyArray3<'py, f64>,
    labelled: PyReadonlyArray2<'py, bool>,
    area: PyReadonlyArray1<'py, f64>,
    sigmas: PyReadonlyArray1<'py, f64>,
    dt_offsets: PyReadonlyArray1<'py, u64>,
    gt_offsets: PyReadonlyArray1<'py, u64>,
    bbox: Option<PyReadonlyArray2<'py, f64>>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let k = sigmas.len();
    for (name, shape, want) in [
        ("dt", dt.shape(), [dt.shape()[0], k, 2]),
        ("gt", gt.shape(), [gt.shape()[0], k, 2]),
    ] {
        if shape != want {
            return Err(PyValueError::new_err(format!(
                "{name} has shape {shape:?}, expected [n, {k}, 2] (one sigma per keypoint)"
            )));
        }
    }
    let (dto, gto) = (
        offsets(&dt_offsets, "dt_offsets")?,
        offsets(&gt_offsets, "gt_offsets")?,
    );
    let images = Images::new(&dto, &gto, dt.shape()[0], gt.shape()[0]).map_err(to_py)?;
    let g = OksGt {
        keypoints: contiguous(&gt, "gt")?,
        labelled: contiguous(&labelled, "labelled")?,
        area: contiguous(&area, "area")?,
        bbox: bbox.as_ref().map(|b| contiguous(b, "bbox")).transpose()?,
        sigmas: contiguous(&sigmas, "sigmas")?,
    };
    let d = contiguous(&dt, "dt")?;
    let out = py
        .detach(|| ce::oks_matrices(d, &g, &images))
        .map_err(to_py)?;
    Ok(out.into_pyarray(py))
}

/// COCOeval.evaluateImg's greedy matching: codes [D, A, T] (0 unmatched,
/// 1 matched, 2 matched to an ignored ground truth).
#[pyfunction]
fn greedy_match<'py>(
    py: Python<'py>,
    oks: PyReadonlyArray1<'py, f64>,
    dt_offsets: PyReadonlyArray1<'py, u64>,
    gt_offsets: PyReadonlyArray1<'py, u64>,
    gt_ignore: PyReadonlyArray2<'py, bool>,
    crowd: PyReadonlyArray1<'py, bool>,
    thresholds: PyReadonlyArray1<'py, f64>,
) -> PyResult<Bound<'py, PyArray1<u8>>> {
    let [n_area, n_gt] = [gt_ignore.shape()[0], gt_ignore.shape()[1]];
    let (dto, gto) = (
        offsets(&dt_offsets, "dt_offsets")?,
        offsets(&gt_offsets, "gt_offsets")?,
    );
    let n_dt = dto.last().copied().unwrap_or(0);
    let images = Images::new(&dto, &gto, n_dt, n_gt).map_err(to_py)?;
    let (o, ig, cr, th) = (
        contiguous(&oks, "oks")?,
        contiguous(&gt_ignore, "gt_ignore")?,
        contiguous(&crowd, "crowd")?,
        contiguous(&thresholds, "thresholds")?,
    );
    let out = py
        .detach(|| ce::greedy_match(o, &images, ig, n_area, cr, th))
        .map_err(to_py)?;
    Ok(out.into_pyarray(py))
}

pub(crate) fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(oks_matrices, module)?)?;
    module.add_function(wrap_pyfunction!(greedy_match, module)?)?;
    Ok(())
}
