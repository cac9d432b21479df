"""The sparse pattern in plain torch: gather each query's keys, softmax over them.

Runs on any device (the CUDA path of :func:`csipose.nn.functional.sparse_attention`)
and autograd differentiates it. Memory is O(T x keys per query), not T x T;
the index table is built once per (pattern, T) and cached.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

from csipose.nn.pattern import SparsePattern, _landmark_rows, _rows
from csipose.nn.reference import block_means

_ROWS = 1024  # mask rows built at a time, so T x T never exists at once


@lru_cache(maxsize=8)
def key_table(pattern: SparsePattern, t: int) -> tuple[np.ndarray, np.ndarray]:
    """(index [T, K] into ``[real tokens | block means]``, valid [T, K])."""
    idx_rows: list[np.ndarray] = []
    for start in range(0, t, _ROWS):
        rows = np.arange(start, min(t, start + _ROWS))
        m = np.concatenate([_rows(pattern, rows, t), _landmark_rows(pattern, rows, t)], axis=1)
        idx_rows.extend(np.flatnonzero(r) for r in m)
    width = max((len(r) for r in idx_rows), default=0)
    index = np.zeros((t, width), dtype=np.int64)
    valid = np.zeros((t, width), dtype=bool)
    for i, r in enumerate(idx_rows):
        index[i, : len(r)] = r
        valid[i, : len(r)] = True
    return index, valid


def gathered_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, pattern: SparsePattern
) -> torch.Tensor:
    """Sparse attention of q ``[B, T, Hq, D]`` over k, v ``[B, T, Hk, D]`` by gathering."""
    b, t, hq, d = q.shape
    hk = k.shape[2]
    index_np, valid_np = key_table(pattern, t)
    index = torch.from_numpy(index_np).to(q.device)
    valid = torch.from_numpy(valid_np).to(q.device)
    kk = torch.cat([k, block_means(k, pattern)], dim=1)[:, index]  # [B, T, K, Hk, D]
    vv = torch.cat([v, block_means(v, pattern)], dim=1)[:, index]
    qg = q.reshape(b, t, hk, hq // hk, d)
    scores = torch.einsum("bthgd,btkhd->bthgk", qg, kk) / math.sqrt(d)
    scores = scores.masked_fill(~valid[None, :, None, None, :], float("-inf"))
    p = torch.softmax(scores, dim=-1)
    return torch.einsum("bthgk,btkhd->bthgd", p, vv).reshape(b, t, hq, d)
