"""torch glue over the Rust gather.

* :class:`WindowDataset` -- a map-style Dataset whose batches come from one
  Rust call (``__getitems__``, which torch's DataLoader uses for batched
  fetching); it pickles by path, so DataLoader workers started by ``spawn``
  re-map the store themselves.
* :class:`EpochSampler` -- a seeded shuffle (drawn in Rust, the same order for
  the same seed and epoch on every machine and thread count), optionally
  sharded over ranks as ``torch.utils.data.DistributedSampler`` does.
  ``DistributedSampler`` itself works too.
* :func:`make_loader` -- the DataLoader recipe: batch sampler, identity
  collate, ``spawn`` workers with one kernel thread each.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, Sampler

from csipose import _native
from csipose.data.store import Store


class WindowDataset(Dataset):
    """Windows ``indices`` of a store (all when None) as dicts of tensors."""

    def __init__(
        self,
        store: Store | str | Path,
        indices: Sequence[int] | np.ndarray | None = None,
        *,
        fields: Sequence[str] | None = None,
    ):
        self._store = store if isinstance(store, Store) else Store.open(store)
        n = len(self._store)
        self.indices = (
            np.arange(n, dtype=np.int64) if indices is None else np.asarray(indices, np.int64)
        )
        if len(self.indices) and (self.indices.min() < 0 or self.indices.max() >= n):
            raise IndexError(f"window indices must lie in 0..{n - 1}")
        self.fields = None if fields is None else list(fields)

    @property
    def store(self) -> Store:
        return self._store

    def __len__(self) -> int:
        return len(self.indices)

    def __getitems__(self, positions: Sequence[int]) -> dict[str, torch.Tensor]:
        batch = self._store.gather(
            self.indices[np.asarray(positions, np.int64)], fields=self.fields
        )
        return {k: torch.from_numpy(v) for k, v in batch.items()}

    def __getitem__(self, position: int) -> dict[str, torch.Tensor]:
        return {k: v[0] for k, v in self.__getitems__([position]).items()}

    def __getstate__(self) -> dict[str, Any]:
        return {"store": self._store, "indices": self.indices, "fields": self.fields}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._store, self.indices, self.fields = state["store"], state["indices"], state["fields"]


def collate(batch: Any) -> Any:
    """The dataset returns whole batches already; nothing to collate."""
    return batch


def epoch_seed(seed: int, epoch: int) -> int:
    """A 64-bit seed for (seed, epoch), mixed so nearby epochs are unrelated."""
    x = (seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9 + 1) % 2**64
    x ^= x >> 31
    return (x * 0x94D049BB133111EB) % 2**64


class EpochSampler(Sampler[int]):
    """Indices ``0..n-1`` in a seeded order that changes with :meth:`set_epoch`,
    optionally sharded over ``world_size`` ranks (padded by repetition so every
    rank gets the same number, or truncated with ``drop_last``)."""

    def __init__(
        self,
        n: int,
        *,
        seed: int = 0,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = False,
    ):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is out of range for world size {world_size}")
        self.n, self.seed, self.shuffle = n, seed, shuffle
        self.rank, self.world_size, self.drop_last = rank, world_size, drop_last
        self.epoch = 0
        per = n // world_size if drop_last else math.ceil(n / world_size)
        self.num_samples = per

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def order(self) -> np.ndarray:
        """This epoch's order of all ``n`` indices (the same on every rank)."""
        if not self.shuffle:
            return np.arange(self.n, dtype=np.int64)
        return _native.permutation(self.n, epoch_seed(self.seed, self.epoch)).astype(np.int64)

    def __iter__(self) -> Iterator[int]:
        order = self.order()
        total = self.num_samples * self.world_size
        if total > len(order) and len(order):
            order = np.resize(order, total)
        return iter(order[:total][self.rank :: self.world_size].tolist())

    def __len__(self) -> int:
        return self.num_samples


def _worker_init(_: int) -> None:
    # Workers share the machine's cores: one kernel thread each.
    import csipose

    csipose.set_num_threads(1)


def make_loader(
    dataset: WindowDataset,
    batch_size: int,
    *,
    sampler: Sampler[int] | None = None,
    seed: int = 0,
    shuffle: bool = True,
    drop_last: bool = False,
    num_workers: int = 0,
    **kwargs: Any,
) -> DataLoader:
    """A DataLoader yielding dicts of batched tensors (one Rust gather per batch).

    ``sampler`` defaults to :class:`EpochSampler`; pass a ``DistributedSampler``
    or a sharded ``EpochSampler`` for DDP. Workers start with ``spawn`` (a
    forked rayon pool can deadlock).
    """
    sampler = sampler or EpochSampler(len(dataset), seed=seed, shuffle=shuffle)
    return DataLoader(
        dataset,
        batch_sampler=BatchSampler(sampler, batch_size, drop_last),
        collate_fn=collate,
        num_workers=num_workers,
        multiprocessing_context="spawn" if num_workers > 0 else None,
        worker_init_fn=_worker_init if num_workers > 0 else None,
        **kwargs,
    )
