//! Bindings of `csipose_core::sim` (the CSI simulator's kernels).

use numpy::ndarray::{Array2, Array3, Array5};
use numpy::{
    IntoPyArray, PyArray1, PyArray2, PyArray3, PyArray5, PyReadonlyArray1, PyReadonlyArray2,
    PyReadonlyArray3, PyReadonlyArrayDyn, PyReadwriteArray4, PyUntypedArrayMethods,
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
/// With `point_index`, `points` holds each frame's distinct points and sample i is point `point_index[i]`.
#[pyo3(signature = (pieces, offset, length, points, point_segment, radius, block, wavelength, floor, pointwise = false, point_index = None))]
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
    pointwise: bool,
    point_index: Option<PyReadonlyArray1<'py, u32>>,
) -> PyResult<Bound<'py, PyArray3<f64>>> {
    let (l, p) = (length.shape()[0], length.shape()[1]);
    let n = points.shape()[0];
    if pieces.shape() != [l, p, 2, 2, 3] || offset.shape() != [l, p, 2] {
        return Err(PyValueError::new_err(
            "pieces must be [links, paths, 2, 2, 3] and offset [links, paths, 2]",
        ));
    }
    let samples = point_index
        .as_ref()
        .map_or(points.shape()[1], |i| i.shape()[0]);
    if samples != point_segment.shape()[0] || points.shape()[2] != 3 {
        return Err(PyValueError::new_err(
            "points must be [n, len(point_segment), 3] (or [n, distinct points, 3] with point_index of len(point_segment))",
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
        point_index: match &point_index {
            Some(i) => Some(i.as_slice().map_err(|_| c("point_index"))?),
            None => None,
        },
        radius: radius.as_slice().map_err(|_| c("radius"))?,
        block: block.as_slice().map_err(|_| c("block"))?,
        n,
    };
    let mut out = vec![0.0f64; n * l * p];
    // The pointwise form is the old one, kept as the benchmark's baseline.
    let kernel = if pointwise {
        csipose_core::sim::shadowing_pointwise
    } else {
        csipose_core::sim::shadowing
    };
    py.detach(|| kernel(&geo, &body, wavelength, floor, &mut out))
        .map_err(to_py)?;
    let out =
        Array3::from_shape_vec((n, l, p), out).map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(out.into_pyarray(py))
}

/// The clean channel [frames, packets, links, subcarriers, 2] (float32 real, imaginary):
/// near static paths shadowed per frame, body paths per packet, plus the far paths' response.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn synthesize_channel<'py>(
    py: Python<'py>,
    static_tau: PyReadonlyArray2<'py, f64>,
    static_re: PyReadonlyArray2<'py, f64>,
    static_im: PyReadonlyArray2<'py, f64>,
    shadow: PyReadonlyArray3<'py, f64>,
    body_tau: PyReadonlyArray3<'py, f64>,
    body_re: PyReadonlyArray3<'py, f64>,
    body_im: PyReadonlyArray3<'py, f64>,
    fixed_re: PyReadonlyArray2<'py, f32>,
    fixed_im: PyReadonlyArray2<'py, f32>,
    packets: usize,
    fc: f64,
    df: f64,
    index: PyReadonlyArray1<'py, i32>,
) -> PyResult<Bound<'py, PyArray5<f32>>> {
    let (links, statics) = (static_tau.shape()[0], static_tau.shape()[1]);
    let frames = shadow.shape()[0];
    let bodies = body_tau.shape()[2];
    let k = index.shape()[0];
    if static_re.shape() != [links, statics] || static_im.shape() != [links, statics] {
        return Err(PyValueError::new_err(
            "static_tau, static_re and static_im must have one shape",
        ));
    }
    if shadow.shape() != [frames, links, statics] {
        return Err(PyValueError::new_err(
            "shadow must be [frames, links, statics]",
        ));
    }
    let rows = frames
        .checked_mul(packets)
        .ok_or_else(|| PyValueError::new_err("too many packets"))?;
    let body_shape = [rows, links, bodies];
    if body_tau.shape() != body_shape
        || body_re.shape() != body_shape
        || body_im.shape() != body_shape
    {
        return Err(PyValueError::new_err(
            "body_tau, body_re and body_im must be [frames * packets, links, bodies]",
        ));
    }
    if fixed_re.shape() != [links, k] || fixed_im.shape() != [links, k] {
        return Err(PyValueError::new_err(
            "fixed_re and fixed_im must be [links, len(index)]",
        ));
    }
    let c = |name: &str| PyValueError::new_err(format!("{name} must be C-contiguous"));
    let ch = csipose_core::sim::Channel {
        static_tau: static_tau.as_slice().map_err(|_| c("static_tau"))?,
        static_re: static_re.as_slice().map_err(|_| c("static_re"))?,
        static_im: static_im.as_slice().map_err(|_| c("static_im"))?,
        shadow: shadow.as_slice().map_err(|_| c("shadow"))?,
        body_tau: body_tau.as_slice().map_err(|_| c("body_tau"))?,
        body_re: body_re.as_slice().map_err(|_| c("body_re"))?,
        body_im: body_im.as_slice().map_err(|_| c("body_im"))?,
        fixed_re: fixed_re.as_slice().map_err(|_| c("fixed_re"))?,
        fixed_im: fixed_im.as_slice().map_err(|_| c("fixed_im"))?,
        dims: [frames, packets, links, statics, bodies],
        fc,
        df,
        index: index.as_slice().map_err(|_| c("index"))?,
    };
    let n = [frames, packets, links, k, 2]
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| PyValueError::new_err("the channel is too large"))?;
    let mut out = vec![0.0f32; n];
    py.detach(|| csipose_core::sim::synthesize(&ch, &mut out))
        .map_err(to_py)?;
    let out = Array5::from_shape_vec((frames, packets, links, k, 2), out)
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(out.into_pyarray(py))
}

/// Impair the clean channel `h` [packets, links, subcarriers, 2] (float32) in place:
/// receiver offsets, AGC, noise at `snr_db`, bad values, nulls, lost packets (VERSION 2).
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn impair_channel(
    py: Python<'_>,
    mut h: PyReadwriteArray4<'_, f32>,
    nic_of_link: PyReadonlyArray1<'_, u32>,
    nics: usize,
    subcarriers: PyReadonlyArray1<'_, f64>,
    null: PyReadonlyArray1<'_, bool>,
    n_fft: f64,
    snr_db: f64,
    seed: u64,
) -> PyResult<()> {
    let [packets, links, k, two] = [h.shape()[0], h.shape()[1], h.shape()[2], h.shape()[3]];
    if two != 2 || links != nic_of_link.shape()[0] || k != subcarriers.shape()[0] {
        return Err(PyValueError::new_err(format!(
            "h must be [packets, len(nic_of_link), len(subcarriers), 2], got {:?}",
            h.shape()
        )));
    }
    let c = |name: &str| PyValueError::new_err(format!("{name} must be C-contiguous"));
    let rx = csipose_core::sim::Receivers {
        nic_of_link: nic_of_link.as_slice().map_err(|_| c("nic_of_link"))?,
        nics,
        subcarriers: subcarriers.as_slice().map_err(|_| c("subcarriers"))?,
        null: null.as_slice().map_err(|_| c("null"))?,
        n_fft,
        snr_db,
    };
    let h = h.as_slice_mut().map_err(|_| c("h"))?;
    py.detach(|| csipose_core::sim::impair(h, packets, &rx, seed))
        .map_err(to_py)
}

/// The draws `impair_channel` takes: per packet [nics, 3] (phase, offset, AGC),
/// the lost-packet uniform, and [values, 3] (real noise, imaginary noise, bad value).
#[pyfunction]
#[allow(clippy::type_complexity)]
fn impairment_draws<'py>(
    py: Python<'py>,
    seed: u64,
    packets: usize,
    nics: usize,
    values: usize,
) -> PyResult<(
    Bound<'py, PyArray3<f64>>,
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray3<f64>>,
)> {
    let (per_nic, lost, per_value) = py
        .detach(|| csipose_core::sim::impairment_draws(seed, packets, nics, values))
        .map_err(to_py)?;
    let to3 = |v: Vec<f64>, n: usize| {
        Array3::from_shape_vec((packets, n, 3), v).map_err(|e| PyValueError::new_err(e.to_string()))
    };
    Ok((
        to3(per_nic, nics)?.into_pyarray(py),
        lost.into_pyarray(py),
        to3(per_value, values)?.into_pyarray(py),
    ))
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(multipath_response, m)?)?;
    m.add_function(wrap_pyfunction!(shadowing, m)?)?;
    m.add_function(wrap_pyfunction!(synthesize_channel, m)?)?;
    m.add_function(wrap_pyfunction!(impair_channel, m)?)?;
    m.add_function(wrap_pyfunction!(impairment_draws, m)?)?;
    Ok(())
}
