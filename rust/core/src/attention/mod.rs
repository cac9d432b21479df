//! Sparse temporal attention over [B, T, H, D] sequences (issue 14).
//!
//! Each query attends to a few real keys (a local window, global tokens,
//! log-stride links) and to the mean key/value ("landmark") of a few complete
//! blocks of earlier (or, bidirectionally, later) tokens. The kernels never
//! build a T x T matrix: memory is O(T x (window + log T)) per head. A
//! [`Stream`] emits one frame at a time from a KV cache bounded by the
//! pattern's horizon.
//! `csipose.nn.SparsePattern` documents the links; its `mask` and
//! `dense_reference` are the test oracle.

mod backward;
mod forward;
mod pattern;
mod real;
mod stream;

pub use backward::backward;
pub use forward::forward;
pub use pattern::{Key, KeySet, Pattern, Shape};
pub use real::Real;
pub(crate) use real::dot;
pub use stream::Stream;
