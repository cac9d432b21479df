//! csipose-core: the pure-Rust kernels behind csipose.
//!
//! No Python here. Every entry point validates its input and returns [`Error`]
//! instead of panicking; the binding crate (`rust/py`) maps errors to Python
//! exceptions and releases the GIL around the calls.

pub mod attention;
pub mod checkpoint;
#[cfg(feature = "countnet")]
pub mod countnet;
pub mod error;
pub mod matching;
pub mod metrics;
#[cfg(feature = "posenet")]
pub mod posenet;
pub mod shuffle;
pub mod signal;
pub mod sim;
pub mod store;
pub mod threads;

pub use error::{Error, Result};
