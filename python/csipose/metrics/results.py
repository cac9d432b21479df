"""Result types: every number carries its definition."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class MetricValue(float):
    """A float that carries its definition.

    ``count`` is how many (sample, joint) entries it averages; ``excluded`` how
    many samples were left out and why is stated in ``definition``.
    """

    definition: str
    count: int
    excluded: int

    def __new__(cls, value: float, definition: str, count: int = 0, excluded: int = 0):
        self = super().__new__(cls, value)
        self.definition = definition
        self.count = int(count)
        self.excluded = int(excluded)
        return self


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=np.float64)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class PCKResult:
    """A PCK at one threshold.

    ``value`` is the overall PCK, ``per_joint`` the PCK of each joint (NaN for
    a joint that was never scored), ``definition`` says exactly what was
    computed. ``scored`` counts the (sample, joint) entries scored and
    ``skipped_samples`` the samples that had no usable normaliser.
    """

    value: float
    per_joint: np.ndarray
    definition: str
    threshold: float
    norm: str
    scored: int
    skipped_samples: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "per_joint", _frozen(self.per_joint))

    def __float__(self) -> float:
        return float(self.value)


@dataclass(frozen=True, eq=False)
class PCKCurve:
    """PCK at several thresholds: ``values[t]`` and ``per_joint[t, k]``;
    ``definitions[t]`` is the definition at threshold ``t``."""

    thresholds: np.ndarray
    values: np.ndarray
    per_joint: np.ndarray
    definition: str
    definitions: tuple[str, ...]
    norm: str
    scored: int
    skipped_samples: int

    def __post_init__(self) -> None:
        for name in ("thresholds", "values", "per_joint"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))

    @property
    def auc(self) -> float:
        """Mean PCK over the thresholds (mmpose ``keypoint_auc``; meaningful on an even grid)."""
        return float(np.mean(self.values)) if len(self.values) else float("nan")
