//! Bindings of `csipose_core::attention`; `csipose/nn/functional.py` wraps them
//! in a torch autograd Function.

use numpy::{
    Element, IntoPyArray, PyArray3, PyArray4, PyArrayMethods, PyReadonlyArrayDyn,
    PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use csipose_core::attention::{self, Pattern, Real, Shape, Stream};

use crate::errors::to_py;

fn shape(q: &[usize], k: &[usize], v: &[usize]) -> PyResult<Shape> {
    let (q, k, v) = (
        <[usize; 4]>::try_from(q),
        <[usize; 4]>::try_from(k),
        <[usize; 4]>::try_from(v),
    );
    let (Ok(q), Ok(k), Ok(v)) = (q, k, v) else {
        return Err(PyValueError::new_err("q, k and v must be 4-d [B, T, H, D]"));
    };
    if k != v || q[0] != k[0] || q[1] != k[1] || q[3] != k[3] {
        return Err(PyValueError::new_err(format!(
            "q {q:?}, k {k:?} and v {v:?} must share B, T and D, and k must match v"
        )));
    }
    Ok(Shape {
        b: q[0],
        t: q[1],
        hq: q[2],
        hk: k[2],
        d: q[3],
    })
}

fn contiguous<'a, F: Element>(x: &'a PyReadonlyArrayDyn<'_, F>, name: &str) -> PyResult<&'a [F]> {
    x.as_slice()
        .map_err(|_| PyValueError::new_err(format!("{name} must be C-contiguous")))
}

type Fwd<'py, F> = (Bound<'py, PyArray4<F>>, Bound<'py, PyArray3<F>>);

fn forward_typed<'py, F: Real + Element>(
    py: Python<'py>,
    q: PyReadonlyArrayDyn<'py, F>,
    k: PyReadonlyArrayDyn<'py, F>,
    v: PyReadonlyArrayDyn<'py, F>,
    pattern: &Pattern,
    scale: f64,
) -> PyResult<Fwd<'py, F>> {
    let s = shape(q.shape(), k.shape(), v.shape())?;
    s.validate().map_err(to_py)?;
    let (qs, ks, vs) = (
        contiguous(&q, "q")?,
        contiguous(&k, "k")?,
        contiguous(&v, "v")?,
    );
    let mut out = vec![F::ZERO; s.q_len()];
    let mut lse = vec![F::ZERO; s.b * s.t * s.hq];
    py.detach(|| {
        attention::forward(
            qs,
            ks,
            vs,
            s,
            pattern,
            F::from_f64(scale),
            &mut out,
            &mut lse,
        )
    })
    .map_err(to_py)?;
    Ok((
        out.into_pyarray(py).reshape([s.b, s.t, s.hq, s.d])?,
        lse.into_pyarray(py).reshape([s.b, s.t, s.hq])?,
    ))
}

type Bwd<'py, F> = (
    Bound<'py, PyArray4<F>>,
    Bound<'py, PyArray4<F>>,
    Bound<'py, PyArray4<F>>,
);

#[allow(clippy::too_many_arguments)]
fn backward_typed<'py, F: Real + Element>(
    py: Python<'py>,
    q: PyReadonlyArrayDyn<'py, F>,
    k: PyReadonlyArrayDyn<'py, F>,
    v: PyReadonlyArrayDyn<'py, F>,
    out: PyReadonlyArrayDyn<'py, F>,
    lse: PyReadonlyArrayDyn<'py, F>,
    dout: PyReadonlyArrayDyn<'py, F>,
    pattern: &Pattern,
    scale: f64,
) -> PyResult<Bwd<'py, F>> {
    let s = shape(q.shape(), k.shape(), v.shape())?;
    s.validate().map_err(to_py)?;
    if out.shape() != q.shape() || dout.shape() != q.shape() {
        return Err(PyValueError::new_err(
            "out and dout must have the shape of q",
        ));
    }
    if lse.shape() != [s.b, s.t, s.hq] {
        return Err(PyValueError::new_err("lse must have shape [B, T, Hq]"));
    }
    let (qs, ks, vs) = (
        contiguous(&q, "q")?,
        contiguous(&k, "k")?,
        contiguous(&v, "v")?,
    );
    let (os, ds) = (contiguous(&out, "out")?, contiguous(&dout, "dout")?);
    let ls = lse
        .as_slice()
        .map_err(|_| PyValueError::new_err("lse must be C-contiguous"))?;
    let mut dq = vec![F::ZERO; s.q_len()];
    let mut dk = vec![F::ZERO; s.kv_len()];
    let mut dv = vec![F::ZERO; s.kv_len()];
    py.detach(|| {
        attention::backward(
            qs,
            ks,
            vs,
            os,
            ls,
            ds,
            s,
            pattern,
            F::from_f64(scale),
            &mut dq,
            &mut dk,
            &mut dv,
        )
    })
    .map_err(to_py)?;
    Ok((
        dq.into_pyarray(py).reshape([s.b, s.t, s.hq, s.d])?,
        dk.into_pyarray(py).reshape([s.b, s.t, s.hk, s.d])?,
        dv.into_pyarray(py).reshape([s.b, s.t, s.hk, s.d])?,
    ))
}

fn dtype_error() -> PyErr {
    PyTypeError::new_err("q, k, v (and out, lse, dout) must all be float32 or all float64 arrays")
}

/// Sparse attention forward: (out [B, T, Hq, D], lse [B, T, Hq]); float32 or float64.
#[pyfunction]
#[pyo3(signature = (q, k, v, *, window, block, landmarks, globals, log_stride, causal, scale, horizon=None))]
#[allow(clippy::too_many_arguments)]
fn sparse_attention_forward<'py>(
    py: Python<'py>,
    q: &Bound<'py, PyAny>,
    k: &Bound<'py, PyAny>,
    v: &Bound<'py, PyAny>,
    window: usize,
    block: usize,
    landmarks: bool,
    globals: Vec<usize>,
    log_stride: bool,
    causal: bool,
    scale: f64,
    horizon: Option<usize>,
) -> PyResult<Bound<'py, PyTuple>> {
    let p = Pattern {
        window,
        block,
        landmarks,
        globals,
        log_stride,
        causal,
        horizon,
    };
    if let (Ok(q), Ok(k), Ok(v)) = (q.extract(), k.extract(), v.extract()) {
        let (o, l) = forward_typed::<f32>(py, q, k, v, &p, scale)?;
        return PyTuple::new(py, [o.into_any(), l.into_any()]);
    }
    if let (Ok(q), Ok(k), Ok(v)) = (q.extract(), k.extract(), v.extract()) {
        let (o, l) = forward_typed::<f64>(py, q, k, v, &p, scale)?;
        return PyTuple::new(py, [o.into_any(), l.into_any()]);
    }
    Err(dtype_error())
}

/// Sparse attention backward: (dq, dk, dv) from the forward's out and lse.
#[pyfunction]
#[pyo3(signature = (q, k, v, out, lse, dout, *, window, block, landmarks, globals, log_stride, causal, scale, horizon=None))]
#[allow(clippy::too_many_arguments)]
fn sparse_attention_backward<'py>(
    py: Python<'py>,
    q: &Bound<'py, PyAny>,
    k: &Bound<'py, PyAny>,
    v: &Bound<'py, PyAny>,
    out: &Bound<'py, PyAny>,
    lse: &Bound<'py, PyAny>,
    dout: &Bound<'py, PyAny>,
    window: usize,
    block: usize,
    landmarks: bool,
    globals: Vec<usize>,
    log_stride: bool,
    causal: bool,
    scale: f64,
    horizon: Option<usize>,
) -> PyResult<Bound<'py, PyTuple>> {
    let p = Pattern {
        window,
        block,
        landmarks,
        globals,
        log_stride,
        causal,
        horizon,
    };
    if let (Ok(q), Ok(k), Ok(v), Ok(o), Ok(l), Ok(d)) = (
        q.extract(),
        k.extract(),
        v.extract(),
        out.extract(),
        lse.extract(),
        dout.extract(),
    ) {
        let (a, b, c) = backward_typed::<f32>(py, q, k, v, o, l, d, &p, scale)?;
        return PyTuple::new(py, [a.into_any(), b.into_any(), c.into_any()]);
    }
    if let (Ok(q), Ok(k), Ok(v), Ok(o), Ok(l), Ok(d)) = (
        q.extract(),
        k.extract(),
        v.extract(),
        out.extract(),
        lse.extract(),
        dout.extract(),
    ) {
        let (a, b, c) = backward_typed::<f64>(py, q, k, v, o, l, d, &p, scale)?;
        return PyTuple::new(py, [a.into_any(), b.into_any(), c.into_any()]);
    }
    Err(dtype_error())
}

/// Streaming sparse attention over a batch of independent float32 sequences:
/// `step(q [B, Hq, D], k [B, Hk, D], v [B, Hk, D])` appends one frame and
/// returns its output [B, Hq, D], row t of the causal full pass.
#[pyclass(module = "csipose._native")]
struct SparseAttentionStream {
    inner: Stream<f32>,
}

#[pymethods]
impl SparseAttentionStream {
    #[new]
    #[pyo3(signature = (batch, q_heads, kv_heads, head_dim, *, window, block, landmarks, globals, log_stride, causal, scale, horizon=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        batch: usize,
        q_heads: usize,
        kv_heads: usize,
        head_dim: usize,
        window: usize,
        block: usize,
        landmarks: bool,
        globals: Vec<usize>,
        log_stride: bool,
        causal: bool,
        scale: f64,
        horizon: Option<usize>,
    ) -> PyResult<Self> {
        let p = Pattern {
            window,
            block,
            landmarks,
            globals,
            log_stride,
            causal,
            horizon,
        };
        let inner =
            Stream::new(p, batch, q_heads, kv_heads, head_dim, scale as f32).map_err(to_py)?;
        Ok(Self { inner })
    }

    /// Append one frame and return its attention output [B, Hq, D].
    fn step<'py>(
        &mut self,
        py: Python<'py>,
        q: PyReadonlyArrayDyn<'py, f32>,
        k: PyReadonlyArrayDyn<'py, f32>,
        v: PyReadonlyArrayDyn<'py, f32>,
    ) -> PyResult<Bound<'py, PyArray3<f32>>> {
        let (b, hq, hk, d) = self.inner.dims();
        if q.shape() != [b, hq, d] || k.shape() != [b, hk, d] || v.shape() != [b, hk, d] {
            return Err(PyValueError::new_err(format!(
                "q must be [{b}, {hq}, {d}] and k, v [{b}, {hk}, {d}], got {:?}, {:?}, {:?}",
                q.shape(),
                k.shape(),
                v.shape()
            )));
        }
        let (qs, ks, vs) = (
            contiguous(&q, "q")?,
            contiguous(&k, "k")?,
            contiguous(&v, "v")?,
        );
        let mut out = vec![0.0f32; b * hq * d];
        let inner = &mut self.inner;
        py.detach(|| inner.step(qs, ks, vs, &mut out))
            .map_err(to_py)?;
        out.into_pyarray(py).reshape([b, hq, d])
    }

    /// Frames appended so far.
    #[getter]
    fn t(&self) -> usize {
        self.inner.len()
    }

    /// Cached rows (tokens, global tokens, block means), each [B, Hk, D] of
    /// keys and again of values: flat in t when the pattern has a horizon.
    fn cache_rows(&self) -> (usize, usize, usize) {
        self.inner.cache_rows()
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<SparseAttentionStream>()?;
    m.add_function(wrap_pyfunction!(sparse_attention_forward, m)?)?;
    m.add_function(wrap_pyfunction!(sparse_attention_backward, m)?)?;
    Ok(())
}
