//! Binding of `csipose_core::countnet`; `csipose/countnet.py` wraps it as
//! `csipose.CountNet`.

use std::path::PathBuf;

use numpy::{
    IntoPyArray, PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray3, PyUntypedArrayMethods,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use csipose_core::countnet::{CLASSES, CountNet as Net, FRAMES, SUBCARRIERS};

use crate::errors::to_py;

type Prediction<'py> = (
    Bound<'py, PyArray2<f32>>,
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<f32>>,
);

type TensorList = Vec<(String, Vec<usize>)>;

/// CountNet loaded from a `model.safetensors` (candle, CPU). Immutable; safe to
/// share between threads.
#[pyclass(frozen, module = "csipose._native")]
#[derive(Debug)]
pub struct CountNet {
    net: Net,
}

#[pymethods]
impl CountNet {
    /// Load a `model.safetensors` file or a checkpoint directory holding one
    /// (memory-mapped); a missing file, or a missing, mis-typed, mis-shaped or
    /// non-finite tensor, is a CheckpointError naming the tensor and the file.
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let net = py.detach(|| Net::load(&path)).map_err(to_py)?;
        Ok(Self { net })
    }

    /// (probabilities [n, 8] float32, counts [n] int64, confidences [n] float32)
    /// of windows [n, 56, 20] (C-contiguous float32).
    fn predict<'py>(
        &self,
        py: Python<'py>,
        windows: PyReadonlyArray3<'py, f32>,
    ) -> PyResult<Prediction<'py>> {
        let shape = windows.shape();
        if shape[1] != SUBCARRIERS || shape[2] != FRAMES {
            return Err(PyValueError::new_err(format!(
                "CountNet takes windows [n, {SUBCARRIERS} subcarriers, {FRAMES} frames]; got shape {shape:?}"
            )));
        }
        let n = shape[0];
        let x = windows
            .as_slice()
            .map_err(|_| PyValueError::new_err("windows must be C-contiguous"))?;
        let p = py.detach(|| self.net.predict(x, n)).map_err(to_py)?;
        let probs = p
            .probabilities
            .into_pyarray(py)
            .reshape([n, CLASSES])
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok((
            probs,
            p.counts.into_pyarray(py),
            p.confidences.into_pyarray(py),
        ))
    }

    /// The model.safetensors file the weights came from.
    #[getter]
    fn path(&self) -> PathBuf {
        self.net.path().to_path_buf()
    }

    /// Learned parameters (97,737).
    #[getter]
    fn parameters(&self) -> usize {
        self.net.parameters()
    }

    /// Temperature of the count logits.
    #[getter]
    fn temperature(&self) -> f32 {
        self.net.temperature()
    }

    /// Temperature of the confidence logit.
    #[getter]
    fn confidence_temperature(&self) -> f32 {
        self.net.confidence_temperature()
    }

    /// Tensors in the file that CountNet does not use.
    #[getter]
    fn extra_tensors(&self) -> Vec<String> {
        self.net.extra_tensors().to_vec()
    }

    fn __repr__(&self) -> String {
        format!(
            "CountNet({:?}, {} parameters, T = {}, T_conf = {})",
            self.net.path().display().to_string(),
            self.net.parameters(),
            self.net.temperature(),
            self.net.confidence_temperature()
        )
    }
}

/// (name, shape) of every tensor a CountNet checkpoint must hold: the weights, then
/// the preprocessing and calibration tensors.
#[pyfunction]
fn countnet_tensors() -> (TensorList, TensorList) {
    let list = |t: &[(&str, &[usize])]| {
        t.iter()
            .map(|(n, s)| (n.to_string(), s.to_vec()))
            .collect::<Vec<_>>()
    };
    (
        list(&csipose_core::countnet::WEIGHTS),
        list(&csipose_core::countnet::EXTRAS),
    )
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<CountNet>()?;
    m.add_function(wrap_pyfunction!(countnet_tensors, m)?)?;
    Ok(())
}
