//! Kernels of the CSI simulator (`csipose.data.simulate`).

mod draws;
mod impair;
mod multipath;
mod shadow;
mod synthesis;

pub use draws::Draws;
pub use impair::{
    BAD_VALUE, LOST_PACKET, MAX_DRAWS, NAN_VALUE, Receivers, impair, impairment_draws,
};
pub use multipath::multipath_response;
pub use shadow::{Bodies, PathGeometry, shadowing, shadowing_pointwise};
pub use synthesis::{Channel, synthesize};
