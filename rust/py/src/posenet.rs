//! Binding of `csipose_core::posenet`; `csipose/runtime/posenet.py` reads the
//! checkpoint metadata and wraps it as `csipose.PoseNet`.

use std::path::PathBuf;

use numpy::{
    IntoPyArray, PyArray3, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray3, PyReadonlyArrayDyn,
    PyUntypedArrayMethods,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use csipose_core::posenet::{Arch, Kind, MapSpec, PoseNet as Net, Preprocess};

use crate::errors::to_py;

type MapArgs<'py> = (
    PyReadonlyArray1<'py, u32>,
    PyReadonlyArray1<'py, u32>,
    PyReadonlyArray1<'py, f64>,
    usize,
);
type ZArgs<'py> = (PyReadonlyArray1<'py, f64>, PyReadonlyArray1<'py, f64>);

fn vec1<T: numpy::Element + Copy>(a: &PyReadonlyArray1<'_, T>) -> Vec<T> {
    a.as_array().iter().copied().collect()
}

fn shaped<'py>(
    py: Python<'py>,
    v: Vec<f32>,
    [n, k, d]: [usize; 3],
) -> PyResult<Bound<'py, PyArray3<f32>>> {
    v.into_pyarray(py)
        .reshape([n, k, d])
        .map_err(|e| PyValueError::new_err(e.to_string()))
}

/// A WiFlow pose model loaded from a `model.safetensors`. Immutable; safe to
/// share between threads.
#[pyclass(frozen, module = "csipose._native")]
#[derive(Debug)]
pub struct PoseNet {
    net: Net,
}

#[pymethods]
impl PoseNet {
    /// Load the model `kind` ("wiflow" or "wiflow-mmfi") from `path` with the
    /// metadata's description; any problem with the file is a CheckpointError
    /// naming the tensor and the file.
    #[staticmethod]
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (path, *, kind, window, keypoints, dims, output_activation, min_feature_width,
                        frames, phase, mean_pose, target_scale, minmax=false, map=None, zscore=None,
                        prefix=None))]
    fn load(
        py: Python<'_>,
        path: PathBuf,
        kind: &str,
        window: usize,
        keypoints: usize,
        dims: usize,
        output_activation: bool,
        min_feature_width: usize,
        frames: usize,
        phase: bool,
        mean_pose: PyReadonlyArray1<'_, f32>,
        target_scale: f32,
        minmax: bool,
        map: Option<MapArgs<'_>>,
        zscore: Option<ZArgs<'_>>,
        prefix: Option<String>,
    ) -> PyResult<Self> {
        // A temporal checkpoint's frame model is stored under `frame.`.
        let prefix = prefix.unwrap_or_default();
        let kind = match kind {
            "wiflow" => Kind::WiFlowStd,
            "wiflow-mmfi" => Kind::WiFlowMmfi,
            other => {
                return Err(PyValueError::new_err(format!(
                    "kind must be 'wiflow' or 'wiflow-mmfi', got {other:?}"
                )));
            }
        };
        let arch = Arch {
            kind,
            window,
            keypoints,
            dims,
            output_activation,
            min_feature_width,
        };
        let pre = Preprocess {
            minmax,
            map: map.map(|(s, i, w, n)| MapSpec {
                start: vec1(&s),
                index: vec1(&i),
                weight: vec1(&w),
                n_src: n,
            }),
            zscore: zscore.map(|(m, s)| (vec1(&m), vec1(&s))),
            frames,
            phase,
        };
        let mean = vec1(&mean_pose);
        let net = py
            .detach(|| Net::load_prefixed(&path, arch, pre, mean, target_scale, &prefix))
            .map_err(to_py)?;
        Ok(Self { net })
    }

    /// Keypoints [n, K, D] (data units) of raw windows `amplitude` (and `phase`)
    /// [n, frames, antennas, subcarriers, packets], C-contiguous float32.
    #[pyo3(signature = (amplitude, phase=None))]
    fn predict<'py>(
        &self,
        py: Python<'py>,
        amplitude: PyReadonlyArrayDyn<'py, f32>,
        phase: Option<PyReadonlyArrayDyn<'py, f32>>,
    ) -> PyResult<Bound<'py, PyArray3<f32>>> {
        let shape: [usize; 5] = amplitude.shape().try_into().map_err(|_| {
            PyValueError::new_err(format!(
                "amplitude must be [n, frames, antennas, subcarriers, packets], got shape {:?}",
                amplitude.shape()
            ))
        })?;
        if let Some(ph) = &phase
            && ph.shape() != amplitude.shape()
        {
            return Err(PyValueError::new_err(format!(
                "phase has shape {:?}, amplitude {:?}; they must match",
                ph.shape(),
                amplitude.shape()
            )));
        }
        let a = amplitude
            .as_slice()
            .map_err(|_| PyValueError::new_err("amplitude must be C-contiguous"))?;
        let p = phase
            .as_ref()
            .map(|ph| {
                ph.as_slice()
                    .map_err(|_| PyValueError::new_err("phase must be C-contiguous"))
            })
            .transpose()?;
        let out = py.detach(|| self.net.predict(a, p, shape)).map_err(to_py)?;
        let [k, d] = self.net.output_shape();
        shaped(py, out, [shape[0], k, d])
    }

    /// The model alone on inputs [n, C, T]: outputs [n, K, D] in standardised
    /// units, as torch's module returns them.
    fn forward<'py>(
        &self,
        py: Python<'py>,
        x: PyReadonlyArray3<'py, f32>,
    ) -> PyResult<Bound<'py, PyArray3<f32>>> {
        let n = x.shape()[0];
        let xs = x
            .as_slice()
            .map_err(|_| PyValueError::new_err("x must be C-contiguous"))?;
        let out = py.detach(|| self.net.forward(xs, n)).map_err(to_py)?;
        let [k, d] = self.net.output_shape();
        shaped(py, out, [n, k, d])
    }

    #[getter]
    fn path(&self) -> PathBuf {
        self.net.path().to_path_buf()
    }

    /// Learned parameters (BatchNorm affine included, running statistics not).
    #[getter]
    fn parameters(&self) -> usize {
        self.net.parameters()
    }

    /// Model input (channels, time steps).
    #[getter]
    fn input_shape(&self) -> (usize, usize) {
        let [c, t] = self.net.input_shape();
        (c, t)
    }

    /// Output (keypoints, dims).
    #[getter]
    fn output_shape(&self) -> (usize, usize) {
        let [k, d] = self.net.output_shape();
        (k, d)
    }

    fn __repr__(&self) -> String {
        let [c, t] = self.net.input_shape();
        let [k, d] = self.net.output_shape();
        format!(
            "PoseNet({:?}, {} parameters, [{c}, {t}] -> [{k}, {d}])",
            self.net.path().display().to_string(),
            self.net.parameters()
        )
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PoseNet>()
}
