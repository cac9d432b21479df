"""The temporal pose model: a single-frame pose model followed by one causal
sparse-attention block over a sequence of consecutive windows.

``[B, T, C, W]`` (T consecutive windows of one person) -> ``[B, T, K, D]``.
Frame t's output depends on windows 0..t only, so the same weights serve
training on whole sequences and streaming one window at a time
(:meth:`TemporalPoseModel.stream`).

The head is zero-initialised, so at initialisation the model is exactly the
frame model: the temporal block learns a residual correction of each frame's
pose from the frames before it. The state_dict names (``frame.*``, ``embed``,
``norm1``, ``attn.{q,k,v,o}_proj``, ``norm2``, ``mlp.0``, ``mlp.2``, ``head``)
are the contract with the Rust loader.
"""

from __future__ import annotations

import torch
from torch import nn

from csipose.nn.attention import SparseTemporalAttention, StreamState
from csipose.nn.pattern import SparsePattern

__all__ = ["TemporalPoseModel", "TemporalStream"]


class TemporalPoseModel(nn.Module):
    """[B, T, C, W] sequences of T consecutive windows -> [B, T, K, D] (causal over T)."""

    def __init__(
        self,
        frame: nn.Module,
        keypoints: int,
        dims: int,
        dim: int = 64,
        q_heads: int = 4,
        kv_heads: int = 1,
        head_dim: int = 32,
        pattern: SparsePattern | None = None,
    ) -> None:
        super().__init__()
        if min(keypoints, dims, dim) <= 0:
            raise ValueError("keypoints, dims and dim must be positive")
        pattern = SparsePattern() if pattern is None else pattern
        if not pattern.causal:
            # A bidirectional pattern would let frame t see later frames: it
            # could not stream, and its training would not match deployment.
            raise ValueError("the temporal pose model needs a causal pattern (causal=True)")
        self.keypoints, self.dims = keypoints, dims
        kd = keypoints * dims
        self.frame = frame
        self.embed = nn.Linear(kd, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SparseTemporalAttention(dim, q_heads, kv_heads, pattern, head_dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.SiLU(), nn.Linear(2 * dim, dim))
        self.head = nn.Linear(dim, kd)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    @property
    def pattern(self) -> SparsePattern:
        return self.attn.pattern

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != 4:
            raise ValueError(f"x must have shape [B, T, C, W], got {tuple(x.shape)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        b, t = x.shape[:2]
        kd = self.keypoints * self.dims
        f = self.frame(x.flatten(0, 1)).reshape(b, t, kd)
        h = self.embed(f)
        h = h + self.attn(self.norm1(h))
        h = h + self.mlp(self.norm2(h))
        out: torch.Tensor = (f + self.head(h)).reshape(b, t, self.keypoints, self.dims)
        return out

    def stream(self, batch: int = 1) -> TemporalStream:
        """A streaming state: ``step(window [B, C, W])`` returns ``[B, K, D]``,
        exactly row t of :meth:`forward` on the windows seen so far."""
        return TemporalStream(self, batch)


class TemporalStream:
    """One streaming run of a :class:`TemporalPoseModel` (no grad).

    Everything but the attention is per frame, so a step runs the frame model
    and the per-frame layers on the new window and the attention's KV cache
    (:class:`csipose.nn.StreamState`) supplies the past. Put the model in eval
    mode first (BatchNorm running statistics), as for any evaluation.
    """

    def __init__(self, model: TemporalPoseModel, batch: int) -> None:
        self.model = model
        self.batch = batch
        self.attn: StreamState = model.attn.stream(batch)

    @property
    def t(self) -> int:
        """Windows seen so far."""
        return self.attn.t

    @torch.no_grad()
    def step(self, window: torch.Tensor) -> torch.Tensor:
        m = self.model
        if window.dim() != 3 or window.shape[0] != self.batch:
            raise ValueError(
                f"window must have shape [{self.batch}, C, W], got {tuple(window.shape)}"
            )
        b = window.shape[0]
        f = m.frame(window).reshape(b, m.keypoints * m.dims)
        h = m.embed(f)
        h = h + self.attn.step(m.norm1(h))
        h = h + m.mlp(m.norm2(h))
        out: torch.Tensor = (f + m.head(h)).reshape(b, m.keypoints, m.dims)
        return out
