"""Input coercion shared by the public wrappers: numpy or torch in, the
C-contiguous arrays the Rust kernels take out, with errors that name the
argument."""

from __future__ import annotations

from typing import Any

import numpy as np


def as_numpy(x: Any) -> np.ndarray:
    """``x`` as a numpy array; torch tensors are detached and moved to the CPU."""
    if type(x).__module__.startswith("torch") and hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def poses(x: Any, name: str) -> np.ndarray:
    """A float32 C-contiguous ``[N, K, D]`` array with D in {2, 3}."""
    a = as_numpy(x)
    if a.dtype.kind not in "fiu":
        raise TypeError(f"{name} must hold real numbers, got dtype {a.dtype}")
    if a.ndim != 3 or a.shape[2] not in (2, 3) or a.shape[1] == 0:
        raise ValueError(
            f"{name} must have shape [N, K, D] with K >= 1 joints and D = 2 or 3, got {a.shape}"
        )
    return np.ascontiguousarray(a, dtype=np.float32)


def pose_pair(pred: Any, gt: Any, visible: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Predictions, ground truth and an optional visibility mask, checked against each other.

    ``visible`` may be boolean or COCO-style flags (``v > 0`` is labelled).
    """
    p, g = poses(pred, "pred"), poses(gt, "gt")
    if p.shape != g.shape:
        raise ValueError(f"pred has shape {p.shape} but gt has shape {g.shape}")
    return p, g, mask(visible, p.shape[:2], "visible")


def mask(x: Any, shape: tuple[int, ...], name: str) -> np.ndarray | None:
    if x is None:
        return None
    m = as_numpy(x)
    if m.shape != shape:
        raise ValueError(f"{name} must have shape {list(shape)}, got {list(m.shape)}")
    if m.dtype != np.bool_:
        if m.dtype.kind not in "fiu":
            raise TypeError(f"{name} must be boolean or numeric flags, got dtype {m.dtype}")
        m = m > 0
    return np.ascontiguousarray(m)


def float64(x: Any, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """A float64 C-contiguous array of exactly ``shape``."""
    a = as_numpy(x)
    if a.dtype.kind not in "fiu":
        raise TypeError(f"{name} must hold real numbers, got dtype {a.dtype}")
    if a.shape != shape:
        raise ValueError(f"{name} must have shape {list(shape)}, got {list(a.shape)}")
    return np.ascontiguousarray(a, dtype=np.float64)


def offsets(counts: Any) -> np.ndarray:
    """Where each of a ragged batch's parts starts, and the total: ``[len(counts) + 1]`` uint64."""
    return np.concatenate([[0], np.cumsum(counts, dtype=np.uint64)]).astype(np.uint64)
