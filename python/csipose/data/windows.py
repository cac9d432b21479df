"""Windows: which frames form a training example, and which frame labels it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from csipose.data.manifest import LABELS


@dataclass(frozen=True)
class WindowSpec:
    """``length`` consecutive frames, a new window every ``stride`` frames
    within a sequence, labelled by its ``first``, ``centre`` (frame
    ``(length - 1) // 2``), ``last`` or ``all`` frames."""

    length: int = 1
    stride: int = 1
    label: str = "last"

    def __post_init__(self) -> None:
        for name in ("length", "stride"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
                raise ValueError(f"window {name} must be an integer >= 1, got {v!r}")
        if self.label not in LABELS:
            raise ValueError(f"window label must be one of {', '.join(LABELS)}, got {self.label!r}")

    @classmethod
    def of(cls, spec: WindowSpec | dict[str, Any] | None, default: dict[str, Any]) -> WindowSpec:
        if isinstance(spec, WindowSpec):
            return spec
        return cls(**{**default, **(spec or {})})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def label_offsets(self) -> np.ndarray:
        """Offsets of the labelling frames inside a window."""
        if self.label == "all":
            return np.arange(self.length)
        return np.array(
            [{"first": 0, "centre": (self.length - 1) // 2, "last": self.length - 1}[self.label]]
        )

    def definition(self) -> str:
        return (
            f"windows of {self.length} consecutive frames, one every {self.stride} frames within a "
            f"sequence, labelled by the {self.label} frame{'s' if self.label == 'all' else ''}; "
            "windows never cross sequences, gaps in frame_index or excluded frames"
        )


def window_starts(
    sequence: np.ndarray, frame_index: np.ndarray, valid: np.ndarray, spec: WindowSpec
) -> np.ndarray:
    """First frame of every window of ``spec`` (int64, ascending).

    A sequence must occupy consecutive frames of the store. A window is kept
    when its frames belong to one sequence, have consecutive ``frame_index``
    values (no skipped frame inside) and are all valid.
    """
    n = len(sequence)
    if n == 0:
        return np.zeros(0, np.int64)
    seq = np.asarray(sequence)
    bounds = np.flatnonzero(np.diff(seq)) + 1
    first = np.concatenate([[0], bounds])
    last = np.concatenate([bounds, [n]])
    if len(np.unique(seq[first])) != len(first):
        raise ValueError("a sequence occupies frames that are not consecutive in the store")
    starts = [
        np.arange(a, b - spec.length + 1, spec.stride) for a, b in zip(first, last, strict=True)
    ]
    s = np.concatenate(starts).astype(np.int64) if starts else np.zeros(0, np.int64)
    e = s + spec.length - 1
    bad = np.concatenate([[0], np.cumsum(~np.asarray(valid, bool))])
    fi = np.asarray(frame_index, np.int64)
    keep = (bad[e + 1] - bad[s] == 0) & (fi[e] - fi[s] == spec.length - 1)
    return s[keep]
