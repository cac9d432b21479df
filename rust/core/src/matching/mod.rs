//! Optimal linear assignment (minimum-cost matching of rows to columns) for
//! rectangular float64 cost matrices, one problem or many at once.
//!
//! A minimum cut is not an assignment: a cut of a matching graph need not
//! pair anyone one-to-one. Person matching solves the assignment problem.

mod batch;
mod distance;
mod exhaustive;
#[cfg(target_arch = "x86_64")]
mod lanes;
mod lsap;
#[cfg(target_arch = "x86_64")]
mod search_lanes;
mod small;

pub use batch::{BatchAssignment, assign_batch, assign_padded};
pub use distance::{People, pair_distances};
pub use lsap::{Mode, Solver, assign, assign_general};
