"""``SparseTemporalAttention``: projections around the sparse kernel, and its
streaming form that emits one frame at a time from a KV cache."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from csipose import _native
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

    def stream(self, batch: int = 1, *, rust: bool = True) -> StreamState:
        """A streaming state: ``state.step(x_t)`` returns the causal output of frame t.

        ``rust=False`` forces the torch step on CPU float32 too (the benchmark's
        baseline); other devices and dtypes always step in torch.
        """
        return StreamState(self, batch, rust=rust)


class _Rows:
    """Rows ``[B, Hk, D]`` stored by position: a ring of ``slots`` rows, or
    (``slots=None``) a buffer that grows with every new position."""

    def __init__(self, slots: int | None, like: torch.Tensor) -> None:
        self.slots = slots
        self.x = like.new_zeros((like.shape[0], 0, *like.shape[1:]))
        self.n = 0  # positions written

    def put(self, pos: int, row: torch.Tensor) -> None:
        slot = pos if self.slots is None else pos % self.slots
        if slot == self.x.shape[1]:
            grow = max(1, self.x.shape[1]) if self.slots is None else 1
            if self.slots is not None:
                grow = min(grow, self.slots - self.x.shape[1])
            self.x = torch.cat([self.x, self.x.new_zeros(row.shape[0], grow, *row.shape[1:])], 1)
        self.x[:, slot] = row
        self.n = max(self.n, pos + 1)

    def rows(self, positions: list[int]) -> torch.Tensor:
        idx = positions if self.slots is None else [p % self.slots for p in positions]
        return self.x[:, torch.tensor(idx, dtype=torch.long, device=self.x.device)]

    def held(self) -> int:
        return min(self.n, self.x.shape[1])


class StreamState:
    """KV cache and landmark block means of one streaming run (no grad).

    Each step costs O(window + log t) dot products (flat in t). Memory is
    bounded by the pattern's ``horizon``: a ring of ``horizon + 1`` tokens, the
    global tokens and the block means inside the horizon. Without a horizon
    the cache grows with t when log-stride links are on, because any past
    token is some future query's log-stride key (``t' - 2^m``).

    CPU float32 modules step in Rust (``_native.SparseAttentionStream``, the
    full pass's row arithmetic); other devices and dtypes step in torch.
    """

    def __init__(self, module: SparseTemporalAttention, batch: int, *, rust: bool = True) -> None:
        p = module.pattern
        if not p.causal:
            raise ValueError("streaming needs a causal pattern")
        self.m = module
        self.batch = batch
        self.t = 0
        prm = next(module.parameters())
        self.native: _native.SparseAttentionStream | None = None
        if rust and prm.device.type == "cpu" and prm.dtype == torch.float32:
            self.native = _native.SparseAttentionStream(
                batch,
                module.q_heads,
                module.kv_heads,
                module.head_dim,
                scale=1.0 / math.sqrt(module.head_dim),
                **p.native_args(),
            )
            return
        like = torch.zeros(
            batch, module.kv_heads, module.head_dim, dtype=prm.dtype, device=prm.device
        )
        h = p.horizon
        self.k, self.v = (
            _Rows(None if h is None else h + 1, like),
            _Rows(None if h is None else h + 1, like),
        )
        block_slots = None if h is None or not p.landmarks else (h + 1) // p.block + 2
        self.kbar, self.vbar = _Rows(block_slots, like), _Rows(block_slots, like)
        self.gk, self.gv = _Rows(None, like), _Rows(None, like)
        self.globals: list[int] = []
        self.ksum, self.vsum = torch.zeros_like(like), torch.zeros_like(like)
        self.n_blocks = 0

    def cache_rows(self) -> tuple[int, int, int]:
        """Cached rows (tokens, global tokens, block means), each ``[B, Hk, D]``
        of keys and again of values: flat in t when the pattern has a horizon."""
        if self.native is not None:
            return self.native.cache_rows()
        return self.k.held(), self.gk.held(), self.kbar.held()

    @torch.no_grad()
    def step(self, x_t: torch.Tensor) -> torch.Tensor:
        """One frame ``[B, dim]`` -> its output ``[B, dim]``."""
        m, i = self.m, self.t
        if x_t.dim() != 2 or x_t.shape[0] != self.batch:
            raise ValueError(f"x_t must have shape [{self.batch}, dim], got {tuple(x_t.shape)}")
        b = self.batch
        q = m.q_proj(x_t).reshape(b, m.q_heads, m.head_dim)
        k = m.k_proj(x_t).reshape(b, m.kv_heads, m.head_dim)
        v = m.v_proj(x_t).reshape(b, m.kv_heads, m.head_dim)
        if self.native is not None:
            y = torch.from_numpy(
                self.native.step(*(np.ascontiguousarray(z.numpy()) for z in (q, k, v)))
            )
        else:
            y = self._torch_step(i, q, k, v)
        self.t += 1
        out: torch.Tensor = m.o_proj(y.reshape(b, m.q_heads * m.head_dim))
        return out

    def _torch_step(
        self, i: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor
    ) -> torch.Tensor:
        m, p, b = self.m, self.m.pattern, self.batch
        self.k.put(i, k)
        self.v.put(i, v)
        if i in p.globals:
            self.globals.append(i)
            self.gk.put(len(self.globals) - 1, k)
            self.gv.put(len(self.globals) - 1, v)
        if p.landmarks:
            self.ksum += k
            self.vsum += v
            if (i + 1) % p.block == 0:
                self.kbar.put(self.n_blocks, self.ksum / p.block)
                self.vbar.put(self.n_blocks, self.vsum / p.block)
                self.ksum.zero_()
                self.vsum.zero_()
                self.n_blocks += 1
        real, land = causal_keys(p, i)
        reach = i + 1 if p.horizon is None else p.horizon + 1
        near = [j for j in real if i - j < reach]
        far = [self.globals.index(j) for j in real if i - j >= reach]
        parts_k = [self.gk.rows(far), self.k.rows(near), self.kbar.rows(land)]
        parts_v = [self.gv.rows(far), self.v.rows(near), self.vbar.rows(land)]
        keys = torch.cat(parts_k, dim=1)  # [B, n, Hk, Dh]
        vals = torch.cat(parts_v, dim=1)
        g = m.q_heads // m.kv_heads
        qg = q.reshape(b, m.kv_heads, g, m.head_dim)
        scores = torch.einsum("bhgd,bnhd->bhgn", qg, keys) / math.sqrt(m.head_dim)
        return torch.einsum("bhgn,bnhd->bhgd", torch.softmax(scores, dim=-1), vals)
