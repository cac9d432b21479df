//! Bindings of `csipose_core::sim` (the CSI simulator's kernels).

use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray2, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
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

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(multipath_response, m)?)?;
    Ok(())
}
