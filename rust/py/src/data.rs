//! Bindings of `csipose_core::store` and `shuffle`; `csipose/data/store.py`
//! reads the manifest and wraps `MappedStore`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1, PyReadwriteArray2, PyReadwriteArrayDyn};
use pyo3::exceptions::{PyKeyError, PyValueError};
use pyo3::prelude::*;

use csipose_core::signal::SubcarrierMap;
use csipose_core::store::{CsiTransform, MappedArray, csi_moments, gather_rows, gather_windows};

use crate::errors::to_py;

pub(crate) type MapArgs<'py> = (
    PyReadonlyArray1<'py, u32>,
    PyReadonlyArray1<'py, u32>,
    PyReadonlyArray1<'py, f64>,
);
pub(crate) type ZArgs<'py> = (PyReadonlyArray1<'py, f64>, PyReadonlyArray1<'py, f64>);

fn slice<'a, T: numpy::Element>(a: &'a PyReadonlyArray1<'_, T>, name: &str) -> PyResult<&'a [T]> {
    a.as_slice()
        .map_err(|_| PyValueError::new_err(format!("{name} must be C-contiguous")))
}

fn subcarrier_map<'a>(
    map: Option<&'a MapArgs<'_>>,
    n_src: usize,
) -> PyResult<Option<SubcarrierMap<'a>>> {
    map.map(|(st, ix, w)| {
        SubcarrierMap::new(
            slice(st, "start")?,
            slice(ix, "index")?,
            slice(w, "weight")?,
            n_src,
        )
        .map_err(to_py)
    })
    .transpose()
}

/// The transform of a CSI array of `n_src` subcarriers from the binding's
/// arguments (the map checked first, then the z-score's contiguity).
pub(crate) fn csi_transform<'a>(
    minmax: bool,
    map: Option<&'a MapArgs<'_>>,
    zscore: Option<&'a ZArgs<'_>>,
    n_src: usize,
) -> PyResult<CsiTransform<'a>> {
    let map = subcarrier_map(map, n_src)?;
    let zscore = match zscore {
        Some((m, sd)) => Some((slice(m, "mean")?, slice(sd, "std")?)),
        None => None,
    };
    Ok(CsiTransform {
        minmax,
        map,
        zscore,
    })
}

/// The arrays of one store, memory-mapped (read-only). Safe to share between threads.
#[pyclass(frozen, module = "csipose._native")]
#[derive(Debug)]
pub struct MappedStore {
    arrays: BTreeMap<String, MappedArray>,
}

impl MappedStore {
    pub(crate) fn get(&self, name: &str) -> PyResult<&MappedArray> {
        self.arrays
            .get(name)
            .ok_or_else(|| PyKeyError::new_err(format!("the store has no array {name:?}")))
    }
}

#[pymethods]
impl MappedStore {
    /// Map each `(name, path)`; a missing, truncated or foreign file is a DataFormatError.
    #[new]
    fn new(py: Python<'_>, files: Vec<(String, PathBuf)>) -> PyResult<Self> {
        let arrays = py
            .detach(|| {
                files
                    .iter()
                    .map(|(name, path)| MappedArray::open(path).map(|a| (name.clone(), a)))
                    .collect::<csipose_core::Result<BTreeMap<_, _>>>()
            })
            .map_err(to_py)?;
        Ok(Self { arrays })
    }

    /// Names of the mapped arrays.
    fn names(&self) -> Vec<String> {
        self.arrays.keys().cloned().collect()
    }

    /// Shape of array `name` as stored.
    fn shape(&self, name: &str) -> PyResult<Vec<usize>> {
        Ok(self.get(name)?.shape().to_vec())
    }

    /// numpy dtype name of array `name` as stored.
    fn dtype(&self, name: &str) -> PyResult<&'static str> {
        Ok(self.get(name)?.dtype().name())
    }

    /// Fill `out` [batch, length, antennas, t, packets] with the windows of
    /// CSI array `name` starting at `starts`, transformed (min-max, map, z-score).
    #[pyo3(signature = (name, starts, length, out, *, minmax=false, map=None, zscore=None))]
    #[allow(clippy::too_many_arguments)]
    fn gather_windows(
        &self,
        py: Python<'_>,
        name: &str,
        starts: PyReadonlyArray1<'_, i64>,
        length: usize,
        mut out: PyReadwriteArrayDyn<'_, f32>,
        minmax: bool,
        map: Option<MapArgs<'_>>,
        zscore: Option<ZArgs<'_>>,
    ) -> PyResult<()> {
        let csi = self.get(name)?;
        let s = csi.shape().get(2).copied().unwrap_or(0);
        let transform = csi_transform(minmax, map.as_ref(), zscore.as_ref(), s)?;
        let starts = slice(&starts, "starts")?;
        let out = out
            .as_slice_mut()
            .map_err(|_| PyValueError::new_err("out must be C-contiguous"))?;
        py.detach(|| gather_windows(csi, starts, length, &transform, out))
            .map_err(to_py)
    }

    /// Copy rows `rows` of array `name` into `out`, a [len(rows), row bytes] uint8 view.
    fn gather_rows(
        &self,
        py: Python<'_>,
        name: &str,
        rows: PyReadonlyArray1<'_, i64>,
        mut out: PyReadwriteArray2<'_, u8>,
    ) -> PyResult<()> {
        let array = self.get(name)?;
        let rows = slice(&rows, "rows")?;
        let out = out
            .as_slice_mut()
            .map_err(|_| PyValueError::new_err("out must be C-contiguous"))?;
        py.detach(|| gather_rows(array, rows, out)).map_err(to_py)
    }

    /// Per (antenna, output subcarrier) mean, population std and count over the
    /// packets of `frames` of CSI array `name`, after min-max and the map.
    #[pyo3(signature = (name, frames, *, minmax=false, map=None))]
    #[allow(clippy::type_complexity)]
    fn moments<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        frames: PyReadonlyArray1<'py, i64>,
        minmax: bool,
        map: Option<MapArgs<'py>>,
    ) -> PyResult<(Bound<'py, PyArray1<f64>>, Bound<'py, PyArray1<f64>>, u64)> {
        let csi = self.get(name)?;
        let s = csi.shape().get(2).copied().unwrap_or(0);
        let transform = csi_transform(minmax, map.as_ref(), None, s)?;
        let frames = slice(&frames, "frames")?;
        let (mean, std, count) = py
            .detach(|| csi_moments(csi, frames, &transform))
            .map_err(to_py)?;
        Ok((mean.into_pyarray(py), std.into_pyarray(py), count))
    }
}

/// A permutation of 0..n drawn from `seed` (the same on every machine and thread count).
/// `n` above 2^32 is a ValueError; the shuffle runs with the GIL released.
#[pyfunction]
fn permutation(py: Python<'_>, n: usize, seed: u64) -> PyResult<Bound<'_, PyArray1<u64>>> {
    let p = py
        .detach(|| csipose_core::shuffle::permutation(n, seed))
        .map_err(to_py)?;
    Ok(p.into_pyarray(py))
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<MappedStore>()?;
    m.add_function(wrap_pyfunction!(permutation, m)?)?;
    Ok(())
}
