//! Binding of `csipose_core::posenet::TemporalHead`: the temporal pose model's
//! attention block over the frame model's outputs. `csipose/runtime/temporal.py`
//! composes it with the frame model (`_native.PoseNet`, prefix `frame.`).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use numpy::{
    IntoPyArray, PyArray2, PyArray3, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use csipose_core::attention::Pattern;
use csipose_core::posenet::{TemporalHead as Head, TemporalOptions, TemporalStream};

use crate::errors::to_py;

fn slice<'a>(x: &'a PyReadonlyArrayDyn<'_, f32>, name: &str) -> PyResult<&'a [f32]> {
    x.as_slice()
        .map_err(|_| PyValueError::new_err(format!("{name} must be C-contiguous")))
}

/// The temporal block of a `model.temporal = "sparse"` checkpoint. Immutable.
#[pyclass(frozen, module = "csipose._native")]
struct TemporalHead {
    head: Arc<Head>,
}

#[pymethods]
impl TemporalHead {
    /// Read the temporal block's tensors from `path`; problems are
    /// CheckpointError naming the tensor and the file.
    #[staticmethod]
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (path, *, keypoints, dims, dim, q_heads, kv_heads, head_dim, window, block,
                        landmarks, globals, log_stride, causal, horizon=None))]
    fn load(
        py: Python<'_>,
        path: PathBuf,
        keypoints: usize,
        dims: usize,
        dim: usize,
        q_heads: usize,
        kv_heads: usize,
        head_dim: usize,
        window: usize,
        block: usize,
        landmarks: bool,
        globals: Vec<usize>,
        log_stride: bool,
        causal: bool,
        horizon: Option<usize>,
    ) -> PyResult<Self> {
        let kd = keypoints
            .checked_mul(dims)
            .ok_or_else(|| PyValueError::new_err("keypoints x dims is too large"))?;
        let opts = TemporalOptions {
            dim,
            q_heads,
            kv_heads,
            head_dim,
            pattern: Pattern {
                window,
                block,
                landmarks,
                globals,
                log_stride,
                causal,
                horizon,
            },
        };
        let head = py.detach(|| Head::load(&path, kd, opts)).map_err(to_py)?;
        Ok(Self {
            head: Arc::new(head),
        })
    }

    /// Frame outputs f [B, T, K*D] (standardised) -> model outputs [B, T, K*D], causal.
    fn forward<'py>(
        &self,
        py: Python<'py>,
        f: PyReadonlyArrayDyn<'py, f32>,
    ) -> PyResult<Bound<'py, PyArray3<f32>>> {
        let kd = self.head.kd();
        let [b, t, k] = <[usize; 3]>::try_from(f.shape()).map_err(|_| {
            PyValueError::new_err(format!("f must be [B, T, {kd}], got shape {:?}", f.shape()))
        })?;
        if k != kd {
            return Err(PyValueError::new_err(format!(
                "f must be [B, T, {kd}], got shape {:?}",
                f.shape()
            )));
        }
        let fs = slice(&f, "f")?;
        let head = &self.head;
        let out = py.detach(|| head.forward(fs, b, t)).map_err(to_py)?;
        out.into_pyarray(py).reshape([b, t, kd])
    }

    /// A stream of `batch` sequences: `step(f [batch, K*D])`.
    fn stream(&self, batch: usize) -> PyResult<TemporalHeadStream> {
        let st = self.head.stream(batch).map_err(to_py)?;
        Ok(TemporalHeadStream {
            head: Arc::clone(&self.head),
            st: Mutex::new(st),
        })
    }

    /// Learned parameters of the temporal block.
    #[getter]
    fn parameters(&self) -> usize {
        self.head.parameters()
    }

    #[getter]
    fn path(&self) -> PathBuf {
        self.head.path().to_path_buf()
    }
}

/// One streaming run of a [`TemporalHead`].
#[pyclass(frozen, module = "csipose._native")]
struct TemporalHeadStream {
    head: Arc<Head>,
    st: Mutex<TemporalStream>,
}

#[pymethods]
impl TemporalHeadStream {
    /// One frame's outputs f [batch, K*D] -> model outputs [batch, K*D].
    fn step<'py>(
        &self,
        py: Python<'py>,
        f: PyReadonlyArrayDyn<'py, f32>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let kd = self.head.kd();
        // try_lock: blocking here while holding the GIL could deadlock with a
        // step that holds the lock and waits for the GIL to return.
        let mut st = self.st.try_lock().map_err(|_| {
            PyValueError::new_err("the stream is stepping in another thread (one step at a time)")
        })?;
        let b = st.batch();
        if f.shape() != [b, kd] {
            return Err(PyValueError::new_err(format!(
                "f must be [{b}, {kd}], got shape {:?}",
                f.shape()
            )));
        }
        let fs = slice(&f, "f")?;
        let head = &self.head;
        let st = &mut *st;
        let out = py.detach(|| head.step(st, fs)).map_err(to_py)?;
        out.into_pyarray(py).reshape([b, kd])
    }

    /// Frames seen so far.
    #[getter]
    fn t(&self) -> usize {
        self.st.try_lock().map_or(0, |s| s.len())
    }

    /// The attention cache's rows (tokens, global tokens, block means).
    fn cache_rows(&self) -> (usize, usize, usize) {
        self.st.try_lock().map_or((0, 0, 0), |s| s.cache_rows())
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<TemporalHead>()?;
    m.add_class::<TemporalHeadStream>()?;
    Ok(())
}
