"""Hypothesis strategies for pose batches."""

from __future__ import annotations

from dataclasses import dataclass

import hypothesis.extra.numpy as hnp
import numpy as np
from hypothesis import strategies as st


@dataclass
class Batch:
    pred: np.ndarray
    gt: np.ndarray
    visible: np.ndarray | None


def coords(lo: float = -100.0, hi: float = 100.0):
    return st.floats(lo, hi, width=32, allow_nan=False, allow_infinity=False)


@st.composite
def batches(
    draw,
    dims=(2, 3),
    max_n: int = 12,
    max_k: int = 18,
    nan_pred: bool = True,
    mask: bool = True,
    min_n: int = 0,
) -> Batch:
    """Ground truth plus a prediction near it (so that PCK is not trivially 0),
    sometimes with NaN predictions and a visibility mask."""
    n = draw(st.integers(min_n, max_n))
    k = draw(st.integers(1, max_k))
    d = draw(st.sampled_from(dims))
    gt = draw(hnp.arrays(np.float32, (n, k, d), elements=coords()))
    scale = draw(st.sampled_from([0.0, 0.1, 3.0, 50.0]))
    noise = draw(hnp.arrays(np.float32, (n, k, d), elements=coords(-1, 1)))
    pred = (gt + scale * noise).astype(np.float32)
    if nan_pred and draw(st.booleans()):
        holes = draw(hnp.arrays(np.bool_, (n, k, d)))
        pred[holes] = np.nan
    visible = draw(hnp.arrays(np.bool_, (n, k))) if mask and draw(st.booleans()) else None
    return Batch(pred, gt, visible)
