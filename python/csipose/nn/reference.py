"""Dense masked softmax attention over real tokens and landmark columns: the oracle.

O(T^2) memory; for tests and for reading, never for training.
"""

from __future__ import annotations

import math

import torch

from csipose.nn.pattern import SparsePattern


def block_means(x: torch.Tensor, pattern: SparsePattern) -> torch.Tensor:
    """``[B, T, H, D]`` -> ``[B, n_blocks(T), H, D]``: the mean of each complete block."""
    b, t, h, d = x.shape
    nb = pattern.n_blocks(t)
    if nb == 0:
        return x.new_zeros(b, 0, h, d)
    return x[:, : nb * pattern.block].reshape(b, nb, pattern.block, h, d).mean(dim=2)


def dense_reference(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, pattern: SparsePattern
) -> torch.Tensor:
    """Masked softmax attention, q ``[B, T, Hq, D]``, k and v ``[B, T, Hk, D]``.

    Keys are the T real tokens followed by the block means; the mask is
    ``[pattern.mask(T) | pattern.landmark_mask(T)]``; query head h uses kv head
    ``h // (Hq // Hk)``.
    """
    _, t, hq, d = q.shape
    hk = k.shape[2]
    kk = torch.cat([k, block_means(k, pattern)], dim=1)
    vv = torch.cat([v, block_means(v, pattern)], dim=1)
    mask = torch.cat(
        [
            torch.from_numpy(pattern.mask(t)),
            torch.from_numpy(pattern.landmark_mask(t)),
        ],
        dim=1,
    ).to(q.device)
    g = hq // hk
    kk = kk.repeat_interleave(g, dim=2).transpose(1, 2)  # [B, Hq, T + nb, D]
    vv = vv.repeat_interleave(g, dim=2).transpose(1, 2)
    scores = q.transpose(1, 2) @ kk.transpose(-1, -2) / math.sqrt(d)
    scores = scores.masked_fill(~mask, float("-inf"))
    return (torch.softmax(scores, dim=-1) @ vv).transpose(1, 2)
