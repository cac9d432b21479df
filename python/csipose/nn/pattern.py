"""The sparse temporal attention pattern: which keys each query sees.

For query ``i`` of a sequence of ``T`` tokens, with window ``w`` and block size ``s``:

* **window**: real tokens ``j`` with ``i - w <= j <= i`` (causal) or ``|i - j| <= w``;
* **global tokens**: every listed ``g < T`` (causal: only ``g <= i``). Globals are
  keys only; a global query sees what any other query sees;
* **log-stride**: ``j = i - 2^m`` for ``m >= 0`` (bidirectional also ``i + 2^m``);
* **landmarks**: the *mean* key and *mean* value of a complete block
  ``[b*s, (b+1)*s)``. Causal (and the left side bidirectionally): the newest block
  lying entirely before the window (``(P+1)*s <= i - w``) and blocks ``P-1, P-2,
  P-4, ...``; bidirectionally also the oldest block entirely after the window
  (``Q*s > i + w``) and ``Q+1, Q+2, Q+4, ...``. A trailing partial block is never
  a landmark. Landmarks never overlap the window, so no token is counted twice
  through its own block while it is also a window key.

* **horizon** (optional, ``h``): no real token farther than ``h`` steps from the
  query (window and log-stride alike; global tokens stay) and no landmark block
  with a token farther than ``h`` away. It is what bounds a stream's memory:
  with ``horizon=None`` a log-stride link makes every past token some future
  query's key (``i - 2^m``), so a stream must keep all of them and its cache
  grows with T; with a horizon the cache is a ring of ``h + 1`` tokens, the
  global tokens and the block means inside the horizon.

Real keys are deduplicated; the query itself is always a key, so no softmax is
empty. Scores are ``scale * q . k`` with ``scale = 1/sqrt(D)``.

Landmark keys are not real tokens, so ``mask(T)`` (``[T, T]``) covers the real
keys only and ``landmark_mask(T)`` (``[T, T // s]``) the landmark columns;
:func:`dense_reference` is masked softmax over ``[real tokens | block means]``,
the oracle the kernel is tested against. With ``landmarks=False`` the kernel is
exactly dense attention with ``mask(T)``.

The masks are written from the definition with numpy broadcasting; the Rust
kernel builds its index lists separately (``rust/core/src/attention/pattern.rs``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np


def _power_of_two(x: np.ndarray) -> np.ndarray:
    return (x > 0) & ((x & (x - 1)) == 0)


@dataclass(frozen=True)
class SparsePattern:
    """Window, landmark blocks, global tokens, log-stride links, direction.

    The defaults are the upstream AETHER temporal head (window 32, blocks of 16
    with landmark means, token 0 global, log-stride links, causal).
    """

    window: int = 32
    block: int = 16
    landmarks: bool = True
    globals: tuple[int, ...] = (0,)
    log_stride: bool = True
    causal: bool = True
    horizon: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.window, int) or self.window < 0:
            raise ValueError(f"window must be a non-negative int, got {self.window!r}")
        if not isinstance(self.block, int) or self.block < 0:
            raise ValueError(f"block must be a non-negative int, got {self.block!r}")
        if self.landmarks and self.block == 0:
            raise ValueError("block must be positive when landmarks are on")
        if self.horizon is not None and (
            isinstance(self.horizon, bool) or not isinstance(self.horizon, int) or self.horizon < 0
        ):
            raise ValueError(f"horizon must be None or a non-negative int, got {self.horizon!r}")
        g = tuple(int(x) for x in self.globals)
        if any(x < 0 for x in g):
            raise ValueError(f"global tokens must be >= 0, got {g}")
        object.__setattr__(self, "globals", tuple(sorted(set(g))))

    def n_blocks(self, t: int) -> int:
        """Complete landmark blocks in a sequence of ``t`` tokens."""
        return t // self.block if self.landmarks else 0

    def mask(self, t: int) -> np.ndarray:
        """``[t, t]`` bool: ``mask[i, j]`` is True when query i attends to real token j."""
        return _mask(self, t).copy()

    def landmark_mask(self, t: int) -> np.ndarray:
        """``[t, n_blocks(t)]`` bool: query i attends to the mean of block b."""
        return _landmark_mask(self, t).copy()

    def keys_for(self, i: int, t: int) -> tuple[list[int], list[int]]:
        """(real tokens, landmark blocks) of query ``i``: one row of the masks."""
        return (
            np.flatnonzero(self.mask_row(i, t)).tolist(),
            np.flatnonzero(self.landmark_row(i, t)).tolist(),
        )

    def mask_row(self, i: int, t: int) -> np.ndarray:
        """Row ``i`` of ``mask(t)`` without building the whole mask (streaming)."""
        return _rows(self, np.array([i]), t)[0]

    def landmark_row(self, i: int, t: int) -> np.ndarray:
        """Row ``i`` of ``landmark_mask(t)``."""
        return _landmark_rows(self, np.array([i]), t)[0]

    def native_args(self) -> dict[str, Any]:
        """The keyword arguments the Rust kernel takes for this pattern."""
        return {
            "window": self.window,
            "block": self.block,
            "landmarks": self.landmarks,
            "globals": list(self.globals),
            "log_stride": self.log_stride,
            "causal": self.causal,
            "horizon": self.horizon,
        }


def _rows(p: SparsePattern, i: np.ndarray, t: int) -> np.ndarray:
    i = i[:, None].astype(np.int64)
    j = np.arange(t, dtype=np.int64)[None, :]
    d = i - j
    if p.causal:
        m = (d >= 0) & (d <= p.window)
    else:
        m = np.abs(d) <= p.window
    if p.log_stride:
        m |= _power_of_two(d) if p.causal else _power_of_two(np.abs(d))
    if p.horizon is not None:
        m &= np.abs(d) <= p.horizon
    if p.globals:
        g = np.isin(j, np.array(p.globals))
        m |= g & (j <= i) if p.causal else g
    return m


def _landmark_rows(p: SparsePattern, i: np.ndarray, t: int) -> np.ndarray:
    nb = p.n_blocks(t)
    i = i[:, None].astype(np.int64)
    b = np.arange(nb, dtype=np.int64)[None, :]
    if nb == 0:
        return np.zeros((i.shape[0], 0), dtype=bool)
    s, w = p.block, p.window
    # Newest block ending before the window; -1 when there is none.
    newest = np.where(i - w >= s, (i - w) // s - 1, -1)
    back = newest - b
    m = (newest >= 0) & (b <= newest) & ((back == 0) | _power_of_two(back))
    if not p.causal:
        oldest = (i + w) // s + 1
        ahead = b - oldest
        m |= (b >= oldest) & ((ahead == 0) | _power_of_two(ahead))
    if p.horizon is not None:  # every token of the block within h of the query
        m &= (i - b * s <= p.horizon) & ((b + 1) * s - 1 - i <= p.horizon)
    return m


@lru_cache(maxsize=16)
def _mask(p: SparsePattern, t: int) -> np.ndarray:
    return _rows(p, np.arange(t), t)


@lru_cache(maxsize=16)
def _landmark_mask(p: SparsePattern, t: int) -> np.ndarray:
    return _landmark_rows(p, np.arange(t), t)


def causal_keys(p: SparsePattern, i: int) -> tuple[list[int], list[int]]:
    """(real tokens, landmark blocks) of causal query ``i`` in O(window + log i).

    Causal keys never depend on the sequence length, so a streaming step can
    ask for them without a mask. Equal to ``keys_for(i, T)`` for any T > i
    (tested).
    """
    if not p.causal:
        raise ValueError("causal_keys needs a causal pattern")
    h = i if p.horizon is None else p.horizon
    lo = max(0, i - min(p.window, h))
    extra = {g for g in p.globals if g <= i and g < lo}
    if p.log_stride:
        step = 1
        while step <= min(i, h):
            if i - step < lo:
                extra.add(i - step)
            step *= 2
    real = sorted(extra) + list(range(lo, i + 1))
    land: list[int] = []
    if p.landmarks and i - p.window >= p.block:
        newest = (i - p.window) // p.block - 1
        land.append(newest)
        d = 1
        while d <= newest:
            land.append(newest - d)
            d *= 2
        land = [b for b in land if i - b * p.block <= h]
    return real, sorted(land)
