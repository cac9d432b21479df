//! The memory-mapped dataset store: `.npy` arrays with a leading frame axis
//! (the manifest is read in Python), gathered into batches with rayon.

mod fused;
mod fused_lanes;
mod gather;
mod mapped;
mod npy;
mod transform;
mod windows;

pub use fused::{FusedTransform, error_bound_ulps};
pub use gather::{WindowGather, csi_moments, gather_rows, gather_windows};
pub use mapped::MappedArray;
pub use npy::{Dtype, NpyHeader, parse_header};
pub use transform::CsiTransform;
pub use windows::Windows;
