//! Bindings of `csipose_core::sim` (the CSI simulator's kernels).

use numpy::ndarray::{Array2, Array3};
use numpy::{
    IntoPyArray, PyArray2, PyArray3, PyReadonlyArray1, PyReadonlyArray2, PyReadonlyArray3,
    PyReadonlyArrayDyn, PyUntypedArrayMethods,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::errors::to_py;

/// H[n, k] = sum_p gain[n, p] exp(-j 2 pi (fc + df index[k]) tau[n, p]), as (real, imaginary) float32.
#[pyfunction]
#[allow(clippy::type_complexity)]
fn multipath_response<'py>(
    py: Python<'py>,
    tau: PyReadonlyArray2<'py, f64>,
    gain_re: PyReadonlyArray2<'py, f64>,
    gain_im: PyReadonlyArray2<'py, f64>,
    fc: f64,
    df: f64,
    index: PyReadonlyArray1<'py, i32>,
) -> PyResult<(Bound<'py, PyArray2<f32>>, Bound<'py, PyArray2<f32>>)> {
    let shape = [tau.shape()[0], tau.shape()[1]];
    if gain_re.shape() != shape || gain_im.shape() != shape {
        return Err(PyValueError::new_err(
            "tau, gain_re and gain_im must have one shape",
        ));
    }
    let c = |name: &str| PyValueError::new_err(format!("{name} must be C-contiguous"));
    let (t, gr, gi) = (
        tau.as_slice().map_err(|_| c("tau"))?,
        gain_re.as_slice().map_err(|_| c("gain_re"))?,
        gain_im.as_slice().map_err(|_| c("gain_im"))?,
    );
    let idx = index.as_slice().map_err(|_| c("index"))?;
    let k = idx.len();
    let (mut re, mut im) = (vec![0.0f32; shape[0] * k], vec![0.0f32; shape[0] * k]);
    py.detach(|| {
        csipose_core::sim::multipath_response(t, gr, gi, shape, fc, df, idx, &mut re, &mut im)
    })
    .map_err(to_py)?;
    let to2 = |v: Vec<f32>| {
        Array2::from_shape_vec((shape[0], k), v).map_err(|e| PyValueError::new_err(e.to_string()))
    };
    Ok((to2(re)?.into_pyarray(py), to2(im)?.into_pyarray(py)))
}

/// Amplitude factor [n, links, paths] of static paths shadowed by body segments (Fresnel-zone model).
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn shadowing<'py>(
    py: Python<'py>,
    pieces: PyReadonlyArrayDyn<'py, f64>,
    offset: PyReadonlyArray3<'py, f64>,
    length: PyReadonlyArray2<'py, f64>,
    points: PyReadonlyArray3<'py, f64>,
    point_segment: PyReadonlyArray1<'py, u32>,
    radius: PyReadonlyArray1<'py, f64>,
    block: PyReadonlyArray1<'py, f64>,
    wavelength: f64,
    floor: f64,
) -> PyResult<Bound<'py, PyArray3<f64>>> {
    let (l, p) = (length.shape()[0], length.shape()[1]);
    let n = points.shape()[0];
    if pieces.shape() != [l, p, 2, 2, 3] || offset.shape() != [l, p, 2] {
        return Err(PyValueError::new_err(
            "pieces must be [links, paths, 2, 2, 3] and offset [links, paths, 2]",
        ));
    }
    if points.shape()[1] != point_segment.shape()[0] || points.shape()[2] != 3 {
        return Err(PyValueError::new_err(
            "points must be [n, len(point_segment), 3]",
        ));
    }
    let c = |name: &str| PyValueError::new_err(format!("{name} must be C-contiguous"));
    let geo = csipose_core::sim::PathGeometry {
        pieces: pieces.as_slice().map_err(|_| c("pieces"))?,
        offset: offset.as_slice().map_err(|_| c("offset"))?,
        length: length.as_slice().map_err(|_| c("length"))?,
        links: l,
        paths: p,
    };
    let body = csipose_core::sim::Bodies {
        points: points.as_slice().map_err(|_| c("points"))?,
        point_segment: point_segment.as_slice().map_err(|_| c("point_segment"))?,
        radius: radius.as_slice().map_err(|_| c("radius"))?,
        block: block.as_slice().map_err(|_| c("block"))?,
        n,
    };
    let mut out = vec![0.0f64; n * l * p];
    py.detach(|| csipose_core::sim::shadowing(&geo, &body, wavelength, floor, &mut out))
        .map_err(to_py)?;
    let out =
        Array3::from_shape_vec((n, l, p), out).map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(out.into_pyarray(py))
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(multipath_response, m)?)?;
    m.add_function(wrap_pyfunction!(shadowing, m)?)?;
    Ok(())
}
