//! Kernels of the CSI simulator (`csipose.data.simulate`).

mod multipath;
mod shadow;

pub use multipath::multipath_response;
pub use shadow::{Bodies, PathGeometry, shadowing};
