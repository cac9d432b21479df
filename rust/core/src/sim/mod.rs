//! Kernels of the CSI simulator (`csipose.data.simulate`).

mod multipath;

pub use multipath::multipath_response;
