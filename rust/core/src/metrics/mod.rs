//! Pose metrics over batches of N samples x K joints x D (2 or 3) coordinates.
//!
//! Inputs are float32; every distance, comparison and sum is computed in
//! float64 so that boundary cases are decided as a float64 reference decides
//! them. Formulas: docs/architecture.md, "Metric definitions".

mod aligned;
mod batch;
pub mod coco_eval;
#[cfg(target_arch = "x86_64")]
mod curve_avx2;
mod curve_grid;
#[cfg(target_arch = "x86_64")]
mod distances_avx2;
#[cfg(target_arch = "x86_64")]
mod exp_avx2;
mod joint_errors;
mod oks;
#[cfg(target_arch = "x86_64")]
mod pck_avx2;
mod procrustes;
pub mod simd;

pub use aligned::{AlignedErrors, Alignment, aligned_errors};
pub use batch::PoseBatch;
pub use joint_errors::{JointErrors, NormKind, PckNorm, joint_errors, pck_counts};
pub use oks::{OksArea, oks};

/// Samples per parallel chunk: enough work to amortise scheduling, small
/// enough to balance two cores. Depends only on the joint count, so results do
/// not depend on the number of threads.
fn samples_per_chunk(k: usize) -> usize {
    (16_384 / k.max(1)).max(1)
}
