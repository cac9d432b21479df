"""Sequences of consecutive windows of one recording, for the temporal pose model.

A *run* is the windows of one part that belong to one sequence of the store
(one recording of one person), in order. Windows the store leaves out (invalid
frames, gaps in ``frame_index``) are skipped, as a live stream skips dropped
frames: the window after a dropped one follows the window before it. A part is
split by sequence, so a run never leaves its part, and no run mixes people.

* Training draws sequences of exactly T windows: every T consecutive windows of
  a run (all start positions). A run shorter than T is **padded** at the end by
  repeating its last window, and the padded positions are masked out of the
  loss; the model is causal, so they never change a real window's output (only
  BatchNorm's batch statistics in training mode see them). Skipping short runs
  would drop every recording with one dropped frame when T is its length.
* Evaluation runs each run causally from its first window (what streaming does),
  so every window of the part gets exactly one prediction.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from csipose.data.loader import EpochSampler
from csipose.data.store import Store


def runs(store: Store, indices: np.ndarray) -> list[np.ndarray]:
    """``indices`` (window indices, strictly ascending) cut where the sequence changes."""
    idx = np.asarray(indices, np.int64)
    if len(idx) == 0:
        return []
    if np.any(np.diff(idx) <= 0):
        raise ValueError("window indices must be strictly ascending")
    seq = np.asarray(store.array("sequence"))[store.windows[idx]]
    return np.split(idx, np.flatnonzero(seq[1:] != seq[:-1]) + 1)


def training_sequences(
    store: Store, indices: np.ndarray, length: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(table [N, length] of window indices, real [N, length] bool)``: every
    ``length`` consecutive windows of each run of ``indices``; a shorter run once,
    padded with its last window (``real`` False there)."""
    tables, reals = [], []
    for r in runs(store, indices):
        if len(r) >= length:
            tables.append(np.lib.stride_tricks.sliding_window_view(r, length))
            reals.append(np.ones((len(r) - length + 1, length), bool))
        else:
            tables.append(np.concatenate([r, np.full(length - len(r), r[-1])])[None])
            reals.append((np.arange(length) < len(r))[None])
    if not tables:
        return np.zeros((0, length), np.int64), np.zeros((0, length), bool)
    return np.concatenate(tables).astype(np.int64), np.concatenate(reals)


def per_epoch(store: Store, indices: np.ndarray, length: int) -> int:
    """Sequences an epoch draws: one per run, or enough to show each window about once
    when runs are longer than ``length``."""
    return max(len(runs(store, indices)), math.ceil(len(indices) / length))


class SequenceDataset(Dataset):
    """Rows of a ``[N, T]`` table of window indices as batches ``[B, T, ...]``
    (one Rust gather of the B*T windows), with ``real [B, T]`` marking the
    windows that are not padding."""

    def __init__(self, store: Store, table: np.ndarray, real: np.ndarray, fields: Sequence[str]):
        self.store, self.table, self.fields = store, np.asarray(table, np.int64), list(fields)
        self.real = np.asarray(real, bool)

    def __len__(self) -> int:
        return len(self.table)

    def __getitems__(self, positions: Sequence[int]) -> dict[str, torch.Tensor]:
        rows = self.table[np.asarray(positions, np.int64)]
        b, t = rows.shape
        batch = self.store.gather(rows.reshape(-1), fields=self.fields)
        out = {k: torch.from_numpy(v.reshape(b, t, *v.shape[1:])) for k, v in batch.items()}
        out["real"] = torch.from_numpy(self.real[np.asarray(positions, np.int64)])
        return out

    def __getitem__(self, position: int) -> dict[str, torch.Tensor]:
        return {k: v[0] for k, v in self.__getitems__([position]).items()}


class SequenceSampler(EpochSampler):
    """The seeded shuffle of :class:`~csipose.data.loader.EpochSampler`, cut to
    ``per_epoch`` sequences: an epoch shows about as many windows as a
    single-frame epoch, however much the sequences overlap."""

    def __init__(self, n: int, per_epoch: int, **kwargs: Any):
        super().__init__(n, **kwargs)
        self.per_epoch = min(per_epoch, n)
        self.num_samples = math.ceil(self.per_epoch / self.world_size)

    def __iter__(self) -> Iterator[int]:
        order = self.order()[: self.per_epoch]
        total = self.num_samples * self.world_size
        if total > len(order) and len(order):
            order = np.resize(order, total)
        return iter(order[:total][self.rank :: self.world_size].tolist())
