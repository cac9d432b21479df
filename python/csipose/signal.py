"""CSI signal processing: subcarrier maps (resampling, selection) and repair of
non-finite values.

A :class:`SubcarrierMap` is a fixed sparse matrix ``W [t, s]`` applied along
the subcarrier axis of ``[frames, antennas, subcarriers, packets]`` arrays by
a Rust kernel (float64 arithmetic, float32 out). Builders:

* :func:`linear_map` -- linear interpolation with aligned end points
  (align-corners), the upstream 114 -> 56: position ``k (s - 1) / (t - 1)``.
* :func:`index_map` -- linear interpolation from a hardware's subcarrier
  indices (ESP32 with its null subcarriers, Intel 5300's 30 groups, Atheros
  56 / 114) to any target grid, in subcarrier-index units.
* :func:`select_map` -- keep some subcarriers (e.g. drop null ones).
* :func:`gaussian_map` -- the Gaussian-basis regularised least-squares fit
  (sigma 0.15, lambda 0.1), solved once into a fixed operator.

:func:`sanitize` applies the MM-Fi toolkit's NaN/Inf repair and reports what
it did; the toolkit's per-frame min-max is a load-time transform (see
:mod:`csipose.data`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from csipose import _arrays, _native

__all__ = [
    "SUBCARRIERS",
    "SanitizeReport",
    "SubcarrierMap",
    "gaussian_map",
    "identity_map",
    "index_map",
    "linear_map",
    "resample",
    "sanitize",
    "select_map",
]


def _idx(bw: int, ng: int) -> list[int]:
    """IEEE 802.11n subcarrier indices of grouping ``ng`` (Table 9-54 of 802.11-2016):
    -a, -a+ng, ..., -b, b, b+ng, ..., a; the same as csiread's ``scidx(bw, ng)``."""
    a, b = {20: (28, 1), 40: (58, 2)}[bw]
    return [*range(-a, -b, ng), -b, *range(b, a, ng), a]


#: Subcarrier indices of the hardware profiles csipose knows, in the order the tools store them.
SUBCARRIERS: dict[str, list[int]] = {
    # Atheros CSI Tool (MM-Fi's hardware): HT20 56 tones, HT40 114 tones.
    "atheros-ht20": _idx(20, 1),
    "atheros-ht40": _idx(40, 1),
    # Intel 5300 (Linux 802.11n CSI Tool): 30 groups, Ng = 2 at 20 MHz (-28, -26, ..., -2,
    # -1, 1, 3, ..., 27, 28: not symmetric), Ng = 4 at 40 MHz.
    "intel5300-ht20": _idx(20, 2),
    "intel5300-ht40": _idx(40, 4),
    # ESP32 LLTF, 64 entries in buffer order (ESP-IDF "Wi-Fi Channel State Information"
    # table, which ESP32-CSI-Tool prints unchanged). Without a secondary channel: 0..31
    # then -32..-1. With a secondary channel (HT40 above or below) the buffer holds the
    # 64 subcarriers of the primary 20 MHz channel in ascending order (ESP-IDF's -64..-1
    # or 0..63 of the 40 MHz grid); here numbered -32..31 about the primary's centre.
    "esp32-lltf": list(range(0, 32)) + list(range(-32, 0)),
    "esp32-lltf-ht40": list(range(-32, 32)),
}
#: Null (unused) subcarriers of the ESP32 LLTF (legacy 802.11a/g: -26..-1, 1..26 carry
#: data or pilots): DC and the guard bands, the same in both layouts above.
ESP32_NULL = [0, *range(27, 32), *range(-32, -26)]


@dataclass(frozen=True, eq=False)
class SubcarrierMap:
    """A sparse ``[n_out, n_src]`` matrix in compressed rows, and what it does."""

    start: np.ndarray  # uint32 [n_out + 1]
    index: np.ndarray  # uint32 [nnz]
    weight: np.ndarray  # float64 [nnz]
    n_src: int
    definition: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def n_out(self) -> int:
        return len(self.start) - 1

    @classmethod
    def from_dense(
        cls, w: np.ndarray, definition: str, tol: float = 0.0, **params: Any
    ) -> SubcarrierMap:
        """Keep the entries of ``w`` with ``|w| > tol``."""
        w = np.asarray(w, dtype=np.float64)
        keep = np.abs(w) > tol
        start = np.concatenate([[0], np.cumsum(keep.sum(axis=1))]).astype(np.uint32)
        rows, cols = np.nonzero(keep)
        return cls(start, cols.astype(np.uint32), w[rows, cols], w.shape[1], definition, params)

    def dense(self) -> np.ndarray:
        w = np.zeros((self.n_out, self.n_src))
        for t in range(self.n_out):
            s, e = self.start[t], self.start[t + 1]
            np.add.at(w[t], self.index[s:e], self.weight[s:e])
        return w

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description that :meth:`from_dict` turns back into the same map."""
        return {
            "definition": self.definition,
            "n_src": self.n_src,
            "start": self.start.tolist(),
            "index": self.index.tolist(),
            "weight": self.weight.tolist(),
            "params": self.params,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SubcarrierMap:
        return cls(
            np.asarray(d["start"], np.uint32),
            np.asarray(d["index"], np.uint32),
            np.asarray(d["weight"], np.float64),
            int(d["n_src"]),
            d["definition"],
            d.get("params", {}),
        )


def identity_map(n: int) -> SubcarrierMap:
    return SubcarrierMap.from_dense(np.eye(n), f"identity on {n} subcarriers", kind="identity")


def linear_map(n_src: int, n_out: int) -> SubcarrierMap:
    """Linear interpolation with aligned end points: output k sits at source
    position k (n_src - 1) / (n_out - 1) (0 when n_out = 1), blending its two
    neighbours; the upstream 114 -> 56 decimation has no anti-alias filter."""
    if n_src < 1 or n_out < 1:
        raise ValueError(f"need at least one subcarrier, got {n_src} -> {n_out}")
    pos = np.arange(n_out) * ((n_src - 1) / (n_out - 1)) if n_out > 1 else np.zeros(1)
    i0 = np.minimum(np.floor(pos).astype(np.int64), n_src - 1)
    i1 = np.minimum(i0 + 1, n_src - 1)
    frac = pos - i0
    w = np.zeros((n_out, n_src))
    np.add.at(w, (np.arange(n_out), i0), 1 - frac)
    np.add.at(w, (np.arange(n_out), i1), frac)
    return SubcarrierMap.from_dense(
        w,
        f"linear interpolation {n_src} -> {n_out}, aligned end points",
        kind="linear",
        n_out=n_out,
    )


def index_map(src: Any, target: Any) -> SubcarrierMap:
    """Linear interpolation in subcarrier-index units from the source indices
    (any order, e.g. a hardware's) to ``target``; targets outside the source
    range take the nearest end value."""
    s = np.asarray(src, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    if s.ndim != 1 or t.ndim != 1 or len(s) == 0 or len(t) == 0:
        raise ValueError("source and target indices must be non-empty 1-D lists")
    if len(np.unique(s)) != len(s):
        raise ValueError("source subcarrier indices must be distinct")
    order = np.argsort(s)
    ss = s[order]
    w = np.zeros((len(t), len(s)))
    for k, x in enumerate(t):
        j = np.searchsorted(ss, x)
        if j == 0 or len(ss) == 1:
            w[k, order[0 if j == 0 else -1]] = 1.0
        elif j == len(ss):
            w[k, order[-1]] = 1.0
        else:
            f = (x - ss[j - 1]) / (ss[j] - ss[j - 1])
            w[k, order[j - 1]] += 1 - f
            w[k, order[j]] += f
    return SubcarrierMap.from_dense(
        w,
        f"linear interpolation in subcarrier-index units from {len(s)} source to {len(t)} "
        "target subcarriers; targets outside the source range take the nearest end value",
        kind="index",
        src=s.tolist(),
        target=t.tolist(),
    )


def select_map(n_src: int, keep: Any) -> SubcarrierMap:
    """Keep the subcarriers at positions ``keep`` (in that order)."""
    keep = np.asarray(keep, dtype=np.int64)
    if keep.ndim != 1 or np.any((keep < 0) | (keep >= n_src)):
        raise ValueError(f"keep must list positions in 0..{n_src - 1}")
    w = np.zeros((len(keep), n_src))
    w[np.arange(len(keep)), keep] = 1.0
    return SubcarrierMap.from_dense(
        w, f"select {len(keep)} of {n_src} subcarriers", kind="select", keep=keep.tolist()
    )


def gaussian_map(
    n_src: int, n_out: int, sigma: float = 0.15, lam: float = 0.1, tol: float = 1e-10
) -> SubcarrierMap:
    """The Gaussian-basis regularised least-squares resampling, as one fixed operator.

    Source values b at positions p_j = j / (n_src - 1) are modelled as
    ``b ~ A x`` with ``A[j, k] = exp(-(p_j - q_k)^2 / sigma^2)`` over target
    positions q_k = k / (n_out - 1) (sigma^2, not 2 sigma^2, as upstream); the
    target values are ``x = (A^T A + lam I)^-1 A^T b``. That matrix is computed
    once and entries with ``|w| <= tol * max|w|`` are dropped. (Upstream solved
    it per lane with a Neumann series that may not converge.)
    """
    if n_src < 2 or n_out < 2:
        raise ValueError("the Gaussian map needs at least two source and target subcarriers")
    p = np.arange(n_src) / (n_src - 1)
    q = np.arange(n_out) / (n_out - 1)
    a = np.exp(-((p[:, None] - q[None, :]) ** 2) / sigma**2)
    w = np.linalg.solve(a.T @ a + lam * np.eye(n_out), a.T)
    return SubcarrierMap.from_dense(
        w,
        f"Gaussian-basis regularised least squares {n_src} -> {n_out} "
        f"(sigma {sigma:g}, lambda {lam:g}, entries below {tol:g} x max dropped)",
        tol=tol * np.abs(w).max(),
        kind="gaussian",
        sigma=sigma,
        lam=lam,
        n_out=n_out,
    )


def resample(x: Any, m: SubcarrierMap, out: np.ndarray | None = None) -> np.ndarray:
    """Apply ``m`` along axis 2 of ``x`` ``[n, antennas, subcarriers, packets]`` (float32 out)."""
    a = np.ascontiguousarray(_arrays.as_numpy(x), dtype=np.float32)
    if a.ndim != 4:
        raise ValueError(f"x must be [n, antennas, subcarriers, packets], got shape {a.shape}")
    if a.shape[2] != m.n_src:
        raise ValueError(f"the map takes {m.n_src} subcarriers, x has {a.shape[2]}")
    shape = (a.shape[0], a.shape[1], m.n_out, a.shape[3])
    if out is None:
        out = np.empty(shape, np.float32)
    elif out.shape != shape or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous float32 array of shape {list(shape)}")
    _native.apply_subcarrier_map(a, m.start, m.index, m.weight, out)
    return out


@dataclass(frozen=True)
class SanitizeReport:
    """What :func:`sanitize` repaired and which frames must be excluded."""

    rule: str
    repaired_values: int
    repaired_frames: int
    all_nan_frames: np.ndarray
    constant_frames: np.ndarray
    n_frames: int

    @property
    def valid(self) -> np.ndarray:
        """Frames that may be used (not all-NaN in a packet slice, not constant)."""
        v = np.ones(self.n_frames, bool)
        v[self.all_nan_frames] = False
        v[self.constant_frames] = False
        return v

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "repaired_values": self.repaired_values,
            "repaired_frames": self.repaired_frames,
            "all_nan_frames": len(self.all_nan_frames),
            "constant_frames": len(self.constant_frames),
        }


MMFI_RULE = (
    "MM-Fi toolkit: +-Inf -> NaN, NaN -> mean of the finite values of its packet slice "
    "(antennas x subcarriers of one packet); frames with an all-NaN slice (set to 0) or a "
    "single value everywhere are excluded; per-frame min-max is a load-time transform"
)


def sanitize(frames: Any, rule: str = "mmfi") -> tuple[np.ndarray, SanitizeReport]:
    """Repair a copy of ``frames`` ``[n, antennas, subcarriers, packets]``; return it and a report."""
    if rule != "mmfi":
        raise ValueError(f"unknown sanitising rule {rule!r}; csipose has 'mmfi'")
    x = np.array(_arrays.as_numpy(frames), dtype=np.float32, order="C", copy=True)
    if x.ndim != 4:
        raise ValueError(f"frames must be [n, antennas, subcarriers, packets], got shape {x.shape}")
    repaired, status = _native.sanitize_mmfi(x)
    report = SanitizeReport(
        rule=MMFI_RULE,
        repaired_values=int(repaired.sum()),
        repaired_frames=int((repaired > 0).sum()),
        all_nan_frames=np.flatnonzero(status == 1),
        constant_frames=np.flatnonzero(status == 2),
        n_frames=len(x),
    )
    return x, report
