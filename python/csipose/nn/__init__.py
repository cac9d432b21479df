"""Neural-network building blocks: sparse temporal attention (Rust kernel, autograd, streaming)."""

from csipose.nn import functional
from csipose.nn.attention import SparseTemporalAttention, StreamState
from csipose.nn.pattern import SparsePattern
from csipose.nn.reference import dense_reference

__all__ = [
    "SparsePattern",
    "SparseTemporalAttention",
    "StreamState",
    "dense_reference",
    "functional",
]
