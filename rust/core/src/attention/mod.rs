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

/// Deterministic values in [-1, 1) (a 64-bit LCG) for the kernels' unit tests.
#[cfg(test)]
fn test_values(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect()
}

pub use backward::backward;
pub use forward::forward;
pub use pattern::{Key, KeySet, Pattern, Shape};
pub use real::Real;
pub(crate) use real::dot;
pub use stream::Stream;
