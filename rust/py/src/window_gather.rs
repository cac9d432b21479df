//! `WindowGather`: a store's gather prepared once (the window -> first frame
//! table, the label frames, each CSI array's transform), so that
//! `Store.gather` with `out=` is one native call per batch. The checks and
//! messages are those `Store.gather` made in Python.

use std::borrow::Cow;
use std::collections::BTreeMap;

use numpy::{
    PyArrayDescr, PyArrayDescrMethods, PyArrayDyn, PyArrayMethods, PyReadonlyArray1,
    PyUntypedArray, PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyKeyError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyString;

use csipose_core::Error;
use csipose_core::store::{WindowGather as Prepared, Windows, gather_rows};

use crate::data::{MapArgs, MappedStore, ZArgs, csi_transform};
use crate::errors::to_py;

/// A CSI array's prepared gather and its output frame `[antennas, t, packets]`.
type Csi = std::result::Result<(Prepared, [usize; 3]), Error>;

/// A store's gather, prepared once per window spec and transforms.
#[pyclass(frozen, module = "csipose._native")]
#[derive(Debug)]
pub struct WindowGather {
    store: Py<MappedStore>,
    windows: Windows,
    length: usize,
    /// Label arrays come out `[batch, length, ...]` (label "all"), else `[batch, ...]`.
    label_all: bool,
    /// Every array, in the manifest's order (for messages).
    fields: Vec<String>,
    /// The arrays' dtypes, as numpy descriptors.
    dtypes: BTreeMap<String, Py<PyArrayDescr>>,
    /// The CSI arrays (a preparation error is raised when the array is gathered).
    csi: BTreeMap<String, Csi>,
}

fn repr(py: Python<'_>, name: &str) -> PyResult<String> {
    Ok(PyString::new(py, name).repr()?.to_string())
}

impl WindowGather {
    /// The error of a wrong `out` array (or the repr's own error, should it fail).
    fn bad_out(py: Python<'_>, name: &str, dtype: &str, shape: &[usize]) -> PyErr {
        repr(py, name).map_or_else(
            |e| e,
            |r| {
                PyValueError::new_err(format!(
                    "out[{r}] must be a {dtype} array of shape {shape:?}"
                ))
            },
        )
    }

    fn not_writeable(py: Python<'_>, name: &str) -> PyErr {
        repr(py, name).map_or_else(
            |e| e,
            |r| PyValueError::new_err(format!("out[{r}] must be C-contiguous and writeable")),
        )
    }
}

#[pymethods]
impl WindowGather {
    /// `starts`: first frame of each window; `label_offsets`: the labelling
    /// frames inside a window; `fields`: every array in manifest order;
    /// `transforms`: `(name, minmax, map, zscore)` of each CSI array.
    #[new]
    #[pyo3(signature = (store, starts, length, label_offsets, label_all, fields, transforms))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        store: Py<MappedStore>,
        starts: PyReadonlyArray1<'_, i64>,
        length: usize,
        label_offsets: PyReadonlyArray1<'_, i64>,
        label_all: bool,
        fields: Vec<String>,
        transforms: Vec<(String, bool, Option<MapArgs<'_>>, Option<ZArgs<'_>>)>,
    ) -> PyResult<Self> {
        let arrays = store.get();
        let mut dtypes = BTreeMap::new();
        for f in &fields {
            let d = PyArrayDescr::new(py, arrays.get(f)?.dtype().name())?;
            dtypes.insert(f.clone(), d.unbind());
        }
        let mut csi = BTreeMap::new();
        for (name, minmax, map, zscore) in &transforms {
            let array = arrays.get(name)?;
            let shape = array.shape();
            let s = shape.get(2).copied().unwrap_or(0);
            let t = csi_transform(*minmax, map.as_ref(), zscore.as_ref(), s)?;
            let frame = [
                shape.get(1).copied().unwrap_or(0),
                t.out_subcarriers(s),
                shape.get(3).copied().unwrap_or(0),
            ];
            let prepared = py.detach(|| Prepared::new(array, length, &t));
            csi.insert(name.clone(), prepared.map(|p| (p, frame)));
        }
        let windows = Windows::new(
            starts.as_array().to_vec(),
            label_offsets.as_array().to_vec(),
        )
        .map_err(to_py)?;
        Ok(Self {
            store,
            windows,
            length,
            label_all,
            fields,
            dtypes,
            csi,
        })
    }

    /// Number of windows.
    fn __len__(&self) -> usize {
        self.windows.len()
    }

    /// Fill `outs[k]` (C-contiguous, writeable, shaped as `Store.allocate`
    /// makes them) with array `names[k]` of windows `indices`.
    fn gather(
        &self,
        py: Python<'_>,
        indices: PyReadonlyArray1<'_, i64>,
        names: Vec<String>,
        outs: Vec<Option<Bound<'_, PyAny>>>,
    ) -> PyResult<()> {
        let idx = match indices.as_slice() {
            Ok(s) => Cow::Borrowed(s),
            Err(_) => Cow::Owned(indices.as_array().to_vec()),
        };
        let starts = self.windows.starts(&idx).map_err(to_py)?;
        if names.len() != outs.len() {
            return Err(PyValueError::new_err(format!(
                "{} names but {} outs",
                names.len(),
                outs.len()
            )));
        }
        for f in &names {
            if !self.dtypes.contains_key(f) {
                return Err(PyKeyError::new_err(format!(
                    "the store has no array {}; it has {}",
                    repr(py, f)?,
                    self.fields.join(", ")
                )));
            }
        }
        let arrays = self.store.get();
        let n = starts.len();
        let mut rows: Option<Vec<i64>> = None;
        for (name, out) in names.iter().zip(&outs) {
            let array = arrays.get(name)?;
            if let Some(prepared) = self.csi.get(name) {
                let (prepared, [a, t, p]) = prepared.as_ref().map_err(|e| to_py(e.clone()))?;
                array.f32().map_err(to_py)?;
                let shape = [n, self.length, *a, *t, *p];
                let buf = out
                    .as_ref()
                    .and_then(|o| o.cast::<PyArrayDyn<f32>>().ok())
                    .filter(|b| b.shape() == shape)
                    .ok_or_else(|| Self::bad_out(py, name, "float32", &shape))?;
                let mut buf = buf
                    .try_readwrite()
                    .map_err(|_| Self::not_writeable(py, name))?;
                let dst = buf
                    .as_slice_mut()
                    .map_err(|_| Self::not_writeable(py, name))?;
                py.detach(|| prepared.gather(array, &starts, dst))
                    .map_err(to_py)?;
            } else {
                let mut shape = vec![n];
                if self.label_all {
                    shape.push(self.length);
                }
                shape.extend(array.shape().iter().skip(1));
                let dtype = self
                    .dtypes
                    .get(name)
                    .ok_or_else(|| PyKeyError::new_err(name.clone()))?
                    .bind(py);
                let buf = out
                    .as_ref()
                    .and_then(|o| o.cast::<PyUntypedArray>().ok())
                    .filter(|b| b.shape() == shape && b.dtype().is_equiv_to(dtype))
                    .ok_or_else(|| Self::bad_out(py, name, array.dtype().name(), &shape))?;
                if !buf.is_c_contiguous() {
                    return Err(Self::not_writeable(py, name));
                }
                // Rows are copied as bytes: a uint8 view of the same memory.
                let view = buf.call_method1("view", (numpy::dtype::<u8>(py),))?;
                let view = view.cast::<PyArrayDyn<u8>>()?;
                let mut view = view
                    .try_readwrite()
                    .map_err(|_| Self::not_writeable(py, name))?;
                let dst = view
                    .as_slice_mut()
                    .map_err(|_| Self::not_writeable(py, name))?;
                let rows = rows.get_or_insert_with(|| self.windows.label_rows(&starts));
                let rows = &rows[..];
                py.detach(|| gather_rows(array, rows, dst)).map_err(to_py)?;
            }
        }
        Ok(())
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<WindowGather>()?;
    Ok(())
}
