//! The one error type of the core. The binding crate maps each variant to a
//! Python exception (docs/architecture.md: ValueError for bad arguments, the
//! `CsiposeError` family for data and checkpoint problems).

/// Everything that can go wrong in the core.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// An argument has the wrong shape or size (Python: `ValueError`).
    #[error("{0}")]
    Shape(String),
    /// An argument holds a value outside its domain (Python: `ValueError`).
    #[error("{0}")]
    Value(String),
    /// An index is outside its sequence (Python: `IndexError`).
    #[error("{0}")]
    Index(String),
    /// A file does not follow the format it claims (Python: `DataFormatError`).
    /// The message names the file and the problem.
    #[error("{0}")]
    DataFormat(String),
    /// A checkpoint is missing, incomplete or does not fit the model (Python:
    /// `CheckpointError`). The message names the file and the tensor.
    #[error("{0}")]
    Checkpoint(String),
    /// The thread pool could not be built (Python: `CsiposeError`).
    #[error("thread pool: {0}")]
    Threads(String),
}

/// Result alias used throughout the core.
pub type Result<T> = std::result::Result<T, Error>;
