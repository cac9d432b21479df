//! CSI signal kernels: repair of non-finite values and subcarrier resampling.

mod sanitize;
mod subcarrier;

pub use sanitize::{FrameStatus, sanitize_mmfi};
pub use subcarrier::{SubcarrierMap, apply_map};
