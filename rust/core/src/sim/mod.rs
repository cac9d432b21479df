//! Kernels of the CSI simulator (`csipose.data.simulate`).

mod multipath;
mod shadow;
mod synthesis;

pub use multipath::multipath_response;
pub use shadow::{Bodies, PathGeometry, shadowing, shadowing_pointwise};
pub use synthesis::{Channel, synthesize};
