//! `csipose._native`: the PyO3 layer over csipose-core.
//!
//! Only argument checks, GIL release and error mapping live here; users
//! import `csipose`, never this module.

// The bindings need no unsafe code of their own (pyo3 and numpy hold it).
#![forbid(unsafe_code)]

use pyo3::prelude::*;

mod attention;
mod coco_eval;
#[cfg(feature = "countnet")]
mod countnet;
mod data;
mod errors;
mod match_frames;
mod matching;
mod metrics;
#[cfg(feature = "posenet")]
mod posenet;
mod signal;
mod sim;
#[cfg(feature = "posenet")]
mod temporal;
mod window_gather;

use errors::to_py;

/// Set the number of threads csipose kernels use (0 = one per CPU, or RAYON_NUM_THREADS).
#[pyfunction]
fn set_num_threads(n: usize) -> PyResult<()> {
    csipose_core::threads::set_num_threads(n).map_err(to_py)
}

/// The number of threads csipose kernels use.
#[pyfunction]
fn get_num_threads() -> PyResult<usize> {
    csipose_core::threads::num_threads().map_err(to_py)
}

/// The instruction set the kernels run with: "avx512", "avx2" or "base".
#[pyfunction]
fn simd_level() -> &'static str {
    use csipose_core::metrics::simd::{Isa, isa};
    match isa() {
        Isa::Avx512 => "avx512",
        Isa::Avx2 => "avx2",
        Isa::Base => "base",
    }
}

#[pymodule]
#[pyo3(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    errors::register(m)?;
    m.add_function(wrap_pyfunction!(set_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(get_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(simd_level, m)?)?;
    attention::register(m)?;
    metrics::register(m)?;
    matching::register(m)?;
    match_frames::register(m)?;
    coco_eval::register(m)?;
    signal::register(m)?;
    data::register(m)?;
    window_gather::register(m)?;
    sim::register(m)?;
    #[cfg(feature = "countnet")]
    countnet::register(m)?;
    #[cfg(feature = "posenet")]
    posenet::register(m)?;
    #[cfg(feature = "posenet")]
    temporal::register(m)?;
    Ok(())
}
