"""Load-time transforms of CSI: declared, applied by the Rust gather, never stored.

Order (fixed): per-frame min-max to [0, 1] (MM-Fi toolkit), a subcarrier map
(:mod:`csipose.signal`), then a z-score per (antenna, output subcarrier) with
statistics from a split's training part only.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from csipose.signal import SubcarrierMap


@dataclass(frozen=True, eq=False)
class ZScore:
    """Per (antenna, subcarrier) statistics: values become (x - mean) / (std + eps)."""

    mean: np.ndarray  # float64 [antennas, subcarriers]
    std: np.ndarray  # float64 [antennas, subcarriers], population std
    eps: float = 1e-6
    source: str = ""

    @property
    def scale(self) -> np.ndarray:
        return self.std + self.eps

    def to_dict(self) -> dict[str, Any]:
        return {
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "eps": self.eps,
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ZScore:
        return cls(
            np.asarray(d["mean"], np.float64),
            np.asarray(d["std"], np.float64),
            d["eps"],
            d["source"],
        )


@dataclass(frozen=True, eq=False)
class CsiTransform:
    """What happens to each CSI frame while it is gathered. The default is the identity."""

    minmax: bool = False
    subcarriers: SubcarrierMap | None = None
    zscore: ZScore | None = field(default=None)

    def out_subcarriers(self, s: int) -> int:
        return s if self.subcarriers is None else self.subcarriers.n_out

    def without_zscore(self) -> CsiTransform:
        return replace(self, zscore=None)

    def native_args(self) -> dict[str, Any]:
        m = self.subcarriers
        z = self.zscore
        return {
            "minmax": self.minmax,
            "map": None if m is None else (m.start, m.index, m.weight),
            "zscore": None if z is None else (z.mean.reshape(-1), z.scale.reshape(-1)),
        }

    def definition(self) -> str:
        steps = []
        if self.minmax:
            steps.append("per-frame min-max to [0, 1] (MM-Fi toolkit; a constant frame becomes 0)")
        if self.subcarriers is not None:
            steps.append(self.subcarriers.definition)
        if self.zscore is not None:
            steps.append(
                f"z-score per (antenna, subcarrier), std + {self.zscore.eps:g}, {self.zscore.source}"
            )
        return "; then ".join(steps) if steps else "none (values as stored)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "minmax": self.minmax,
            "subcarriers": None if self.subcarriers is None else self.subcarriers.to_dict(),
            "zscore": None if self.zscore is None else self.zscore.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CsiTransform:
        return cls(
            minmax=bool(d.get("minmax", False)),
            subcarriers=None
            if d.get("subcarriers") is None
            else SubcarrierMap.from_dict(d["subcarriers"]),
            zscore=None if d.get("zscore") is None else ZScore.from_dict(d["zscore"]),
        )
