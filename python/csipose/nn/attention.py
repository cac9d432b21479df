"""``SparseTemporalAttention``: projections around the sparse kernel, and its
streaming form that emits one frame at a time from a KV cache."""

from __future__ import annotations

import math

import torch
from torch import nn

from csipose.nn.functional import sparse_attention
from csipose.nn.pattern import SparsePattern, causal_keys


class SparseTemporalAttention(nn.Module):
    """Multi-head sparse attention over time, ``[B, T, dim] -> [B, T, dim]``.

    ``q_heads`` query heads share ``kv_heads`` key/value heads (grouped-query
    attention; upstream used 4 and 1), each of size ``head_dim``.
    """

    def __init__(
        self,
        dim: int,
        q_heads: int = 4,
        kv_heads: int = 1,
        pattern: SparsePattern | None = None,
        head_dim: int = 32,
    ) -> None:
        super().__init__()
        if min(dim, q_heads, kv_heads, head_dim) <= 0:
            raise ValueError("dim, q_heads, kv_heads and head_dim must be positive")
        if q_heads % kv_heads:
            raise ValueError(f"q_heads ({q_heads}) must be a multiple of kv_heads ({kv_heads})")
        self.q_heads, self.kv_heads, self.head_dim = q_heads, kv_heads, head_dim
        self.pattern = SparsePattern() if pattern is None else pattern
        self.q_proj = nn.Linear(dim, q_heads * head_dim)
        self.k_proj = nn.Linear(dim, kv_heads * head_dim)
        self.v_proj = nn.Linear(dim, kv_heads * head_dim)
        self.o_proj = nn.Linear(q_heads * head_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3:
            raise ValueError(f"x must have shape [B, T, dim], got {tuple(x.shape)}")
        b, t, _ = x.shape
        q = self.q_proj(x).reshape(b, t, self.q_heads, self.head_dim)
        k = self.k_proj(x).reshape(b, t, self.kv_heads, self.head_dim)
        v = self.v_proj(x).reshape(b, t, self.kv_heads, self.head_dim)
        y = sparse_attention(q.contiguous(), k.contiguous(), v.contiguous(), self.pattern)
        out: torch.Tensor = self.o_proj(y.reshape(b, t, self.q_heads * self.head_dim))
        return out

    def stream(self, batch: int = 1) -> StreamState:
        """A streaming state: ``state.step(x_t)`` returns the causal output of frame t."""
        return StreamState(self, batch)


class StreamState:
    """KV cache and landmark block means of one streaming run (torch, no grad).

    Each step costs O(window + log t) dot products (flat in t). The cache keeps
    every past key and value when log-stride links are on, because any past
    token is some future query's log-stride key (t' - 2^m); block means are
    kept for every complete block.
    """

    def __init__(self, module: SparseTemporalAttention, batch: int) -> None:
        if not module.pattern.causal:
            raise ValueError("streaming needs a causal pattern")
        self.m = module
        self.t = 0
        p = next(module.parameters())
        shape = (batch, 64, module.kv_heads, module.head_dim)
        self.k = torch.zeros(shape, dtype=p.dtype, device=p.device)
        self.v = torch.zeros_like(self.k)
        self.kbar = torch.zeros_like(self.k)
        self.vbar = torch.zeros_like(self.k)
        self.n_blocks = 0

    @staticmethod
    def _grow(x: torch.Tensor, n: int) -> torch.Tensor:
        if n <= x.shape[1]:
            return x
        return torch.cat([x, torch.zeros_like(x)], dim=1)

    @torch.no_grad()
    def step(self, x_t: torch.Tensor) -> torch.Tensor:
        """One frame ``[B, dim]`` -> its output ``[B, dim]``."""
        m, p, i = self.m, self.m.pattern, self.t
        b = x_t.shape[0]
        if x_t.dim() != 2 or b != self.k.shape[0]:
            raise ValueError(
                f"x_t must have shape [{self.k.shape[0]}, dim], got {tuple(x_t.shape)}"
            )
        q = m.q_proj(x_t).reshape(b, m.q_heads, m.head_dim)
        self.k = self._grow(self.k, i + 1)
        self.v = self._grow(self.v, i + 1)
        self.k[:, i] = m.k_proj(x_t).reshape(b, m.kv_heads, m.head_dim)
        self.v[:, i] = m.v_proj(x_t).reshape(b, m.kv_heads, m.head_dim)
        if p.landmarks and (i + 1) % p.block == 0:
            j = self.n_blocks
            self.kbar = self._grow(self.kbar, j + 1)
            self.vbar = self._grow(self.vbar, j + 1)
            self.kbar[:, j] = self.k[:, i + 1 - p.block : i + 1].mean(dim=1)
            self.vbar[:, j] = self.v[:, i + 1 - p.block : i + 1].mean(dim=1)
            self.n_blocks += 1
        self.t += 1
        real, land = causal_keys(p, i)
        ri = torch.tensor(real, device=q.device)
        li = torch.tensor(land, device=q.device, dtype=torch.long)
        keys = torch.cat([self.k[:, ri], self.kbar[:, li]], dim=1)  # [B, n, Hk, Dh]
        vals = torch.cat([self.v[:, ri], self.vbar[:, li]], dim=1)
        g = m.q_heads // m.kv_heads
        qg = q.reshape(b, m.kv_heads, g, m.head_dim)
        scores = torch.einsum("bhgd,bnhd->bhgn", qg, keys) / math.sqrt(m.head_dim)
        y = torch.einsum("bhgn,bnhd->bhgd", torch.softmax(scores, dim=-1), vals)
        out: torch.Tensor = m.o_proj(y.reshape(b, m.q_heads * m.head_dim))
        return out
