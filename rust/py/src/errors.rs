//! The exception hierarchy (docs/architecture.md, "Error model") and the
//! mapping from core errors.

use pyo3::exceptions::{PyException, PyIndexError, PyValueError};
use pyo3::prelude::*;

pyo3::create_exception!(
    csipose,
    CsiposeError,
    PyException,
    "Base class of every error csipose raises for a problem with data, checkpoints or its runtime."
);
pyo3::create_exception!(
    csipose,
    DataFormatError,
    CsiposeError,
    "A file or array does not follow the format it claims (names the file, the field and the problem)."
);
pyo3::create_exception!(
    csipose,
    CheckpointError,
    CsiposeError,
    "A checkpoint is missing, incomplete or does not match the model it is loaded into."
);

/// Map a core error to its Python exception.
pub(crate) fn to_py(e: csipose_core::Error) -> PyErr {
    use csipose_core::Error as E;
    match e {
        E::Shape(m) | E::Value(m) => PyValueError::new_err(m),
        E::Index(m) => PyIndexError::new_err(m),
        E::DataFormat(m) => DataFormatError::new_err(m),
        E::Checkpoint(m) => CheckpointError::new_err(m),
        E::Threads(_) => CsiposeError::new_err(e.to_string()),
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("CsiposeError", py.get_type::<CsiposeError>())?;
    m.add("DataFormatError", py.get_type::<DataFormatError>())?;
    m.add("CheckpointError", py.get_type::<CheckpointError>())?;
    Ok(())
}
