"""``sparse_attention(q, k, v, pattern)``: the Rust kernel as a torch autograd Function.

CPU tensors run the Rust forward and backward (float32, or float64 for
gradcheck); tensors on any other device run :func:`gathered_attention`, the same
pattern in plain torch, so a model with this attention trains on a GPU too.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from csipose import _native
from csipose.nn.gathered import gathered_attention
from csipose.nn.pattern import SparsePattern


def _check(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    for name, x in (("q", q), ("k", k), ("v", v)):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 4:
            raise ValueError(f"{name} must have shape [B, T, H, D], got {tuple(x.shape)}")
        if x.dtype not in (torch.float32, torch.float64):
            raise TypeError(f"{name} must be float32 or float64, got {x.dtype}")
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(f"q, k, v must share a dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if not (q.device == k.device == v.device):
        raise ValueError("q, k, v must be on one device")
    if k.shape != v.shape:
        raise ValueError(f"k {tuple(k.shape)} and v {tuple(v.shape)} must have one shape")
    b, t, hq, d = q.shape
    if (k.shape[0], k.shape[1], k.shape[3]) != (b, t, d):
        raise ValueError(f"q {tuple(q.shape)} and k {tuple(k.shape)} must share B, T and D")
    hk = k.shape[2]
    if hk == 0 or hq == 0 or d == 0:
        raise ValueError(
            f"heads and head dim must be positive, got q {tuple(q.shape)}, k {tuple(k.shape)}"
        )
    if hq % hk:
        raise ValueError(f"q heads ({hq}) must be a multiple of kv heads ({hk})")


def _np(x: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(x.detach().numpy())


class _SparseAttention(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, pattern: SparsePattern
    ) -> torch.Tensor:
        scale = 1.0 / math.sqrt(q.shape[-1])
        out, lse = _native.sparse_attention_forward(
            _np(q), _np(k), _np(v), scale=scale, **pattern.native_args()
        )
        out_t, lse_t = torch.from_numpy(out), torch.from_numpy(lse)
        ctx.save_for_backward(q, k, v, out_t, lse_t)
        ctx.pattern = pattern
        ctx.scale = scale
        return out_t

    @staticmethod
    def backward(ctx: Any, dout: torch.Tensor) -> tuple[Any, ...]:
        q, k, v, out, lse = ctx.saved_tensors
        dq, dk, dv = _native.sparse_attention_backward(
            _np(q),
            _np(k),
            _np(v),
            _np(out),
            _np(lse),
            _np(dout.to(q.dtype)),
            scale=ctx.scale,
            **ctx.pattern.native_args(),
        )
        return torch.from_numpy(dq), torch.from_numpy(dk), torch.from_numpy(dv), None


def sparse_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, pattern: SparsePattern | None = None
) -> torch.Tensor:
    """Sparse attention of q ``[B, T, Hq, D]`` over k, v ``[B, T, Hk, D]`` -> ``[B, T, Hq, D]``.

    Query head h uses kv head ``h // (Hq // Hk)``; scores are scaled by
    ``1/sqrt(D)``. See :class:`SparsePattern` for which keys each query sees.
    """
    pattern = SparsePattern() if pattern is None else pattern
    if not isinstance(pattern, SparsePattern):
        raise TypeError(f"pattern must be a SparsePattern, got {type(pattern).__name__}")
    _check(q, k, v)
    if q.shape[0] == 0 or q.shape[1] == 0:
        return q * 0 + (k.sum() + v.sum()) * 0  # empty, but still in the autograd graph
    if q.device.type != "cpu":
        return gathered_attention(q, k, v, pattern)
    out: torch.Tensor = _SparseAttention.apply(q, k, v, pattern)
    return out
