//! Bindings of `csipose_core::signal`; `csipose/signal.py` builds the maps.

use numpy::{IntoPyArray, PyArray1};
use numpy::{PyReadonlyArray1, PyReadonlyArray4, PyReadwriteArray4, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use csipose_core::signal::{SubcarrierMap, apply_map, sanitize_mmfi as sanitize};

use crate::errors::to_py;

fn shape4(s: &[usize]) -> [usize; 4] {
    [s[0], s[1], s[2], s[3]]
}

/// Repair non-finite values of frames [n, a, s, p] in place (MM-Fi toolkit rule);
/// returns (repaired values per frame, status per frame: 0 ok, 1 all-NaN slice, 2 constant).
#[pyfunction]
#[allow(clippy::type_complexity)]
fn sanitize_mmfi<'py>(
    py: Python<'py>,
    mut frames: PyReadwriteArray4<'py, f32>,
) -> PyResult<(Bound<'py, PyArray1<u32>>, Bound<'py, PyArray1<u8>>)> {
    let shape = shape4(frames.shape());
    let x = frames
        .as_slice_mut()
        .map_err(|_| PyValueError::new_err("frames must be a C-contiguous array"))?;
    let (mut repaired, mut status) = (vec![0u32; shape[0]], vec![0u8; shape[0]]);
    py.detach(|| sanitize(x, shape, &mut repaired, &mut status))
        .map_err(to_py)?;
    Ok((repaired.into_pyarray(py), status.into_pyarray(py)))
}

/// out[n, a, t, p] = sum_k weight[k] x[n, a, index[k], p] over k in start[t]..start[t + 1].
#[pyfunction]
fn apply_subcarrier_map<'py>(
    py: Python<'py>,
    x: PyReadonlyArray4<'py, f32>,
    start: PyReadonlyArray1<'py, u32>,
    index: PyReadonlyArray1<'py, u32>,
    weight: PyReadonlyArray1<'py, f64>,
    mut out: PyReadwriteArray4<'py, f32>,
) -> PyResult<()> {
    let shape = shape4(x.shape());
    let (o, s) = (out.shape(), shape);
    if o[0] != s[0] || o[1] != s[1] || o[3] != s[3] {
        return Err(PyValueError::new_err(format!(
            "out has shape {o:?}, expected [{}, {}, t, {}]",
            s[0], s[1], s[3]
        )));
    }
    let not_contiguous = |name: &str| PyValueError::new_err(format!("{name} must be C-contiguous"));
    let map = SubcarrierMap::new(
        start.as_slice().map_err(|_| not_contiguous("start"))?,
        index.as_slice().map_err(|_| not_contiguous("index"))?,
        weight.as_slice().map_err(|_| not_contiguous("weight"))?,
        shape[2],
    )
    .map_err(to_py)?;
    if o[2] != map.n_out() {
        return Err(PyValueError::new_err(format!(
            "out has {} subcarriers, the map gives {}",
            o[2],
            map.n_out()
        )));
    }
    let xs = x.as_slice().map_err(|_| not_contiguous("x"))?;
    let os = out.as_slice_mut().map_err(|_| not_contiguous("out"))?;
    py.detach(|| apply_map(xs, shape, &map, os)).map_err(to_py)
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(sanitize_mmfi, m)?)?;
    m.add_function(wrap_pyfunction!(apply_subcarrier_map, m)?)?;
    Ok(())
}
