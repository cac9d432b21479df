"""Environment-robust input features: what a model sees of the CSI so that a
new room looks less new. Chosen by ``data.features = [...]`` (``csipose
train``: pose; ``csipose count train``: counting); the default ``[]`` is the
plain input, bit for bit.

Pose (torch, on windows ``[batch, frames, antennas, subcarriers, packets]``
after the store's transforms; time = frames x packets):

* ``static_removal``: subtract each window's temporal mean of the amplitude
  per antenna and subcarrier: the static channel (walls, furniture: the room)
  is constant over a window, a moving person is not.
* ``temporal_diff``: append the first difference of the amplitude over time
  (zero at the first step): a Doppler-like view of what moves.
* ``conj_product``: append the real and imaginary parts of
  A_a A_0 e^{j(phi_a - phi_0)} for antennas a >= 1: the conjugate product with
  antenna 0, free of the receiver's common phase (CFO, timing offset).
* ``capture_norm``: per-capture (per-room) normalisation of the amplitude: each
  window z-scored per antenna and subcarrier with the statistics of all windows
  of its own room (:class:`RoomStats`, amplitude only, never labels), before
  the other features. In a new room those windows are a short unlabelled
  calibration capture recorded after installing.
* ``augment``: while training only (gradients on; never under
  ``torch.no_grad``, so never in validation or evaluation), scale the amplitude
  input per antenna (log-normal, 10 %) and per subcarrier (log-normal, 10 %),
  and turn each antenna's phase by N(0, 0.5 rad): rooms and receivers differ
  in gain and antenna phase.

Counting (numpy, on windows ``[n, 56 subcarriers, 20 frames]`` of amplitude):

* ``static_removal``: as above, per window and subcarrier.
* ``capture_norm``: per-capture normalisation: each room's windows are
  z-scored per subcarrier with statistics of that room's own windows
  (amplitude only). In a new room this is a short unlabelled calibration
  capture the user records after installing: it uses the room's CSI, never its
  labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

POSE_FEATURES = ("static_removal", "temporal_diff", "conj_product", "augment", "capture_norm")
COUNT_FEATURES = ("static_removal", "capture_norm")
#: Augmentation strengths (standard deviations).
GAIN_SD, SUBCARRIER_SD, PHASE_SD = 0.1, 0.1, 0.5


def check(features: Sequence[str], known: Sequence[str], key: str = "data.features") -> None:
    bad = [f for f in features if f not in known]
    if bad or len(set(features)) != len(features):
        raise ValueError(
            f"{key}: unknown or repeated features {bad or list(features)}; known: {', '.join(known)}"
        )


def extra_channels(features: Sequence[str], antennas: int, subcarriers: int) -> int:
    """Channels (antenna-like rows of ``subcarriers``) the pose features add, times subcarriers."""
    n = 0
    if "temporal_diff" in features:
        n += antennas
    if "conj_product" in features:
        n += 2 * (antennas - 1)
    return n * subcarriers


# --- pose (torch) -----------------------------------------------------------------------------


def _time_last(x: Any) -> Any:
    b, frames, a, s, p = x.shape
    return x.permute(0, 2, 3, 1, 4).reshape(b, a, s, frames * p)


def _time_back(y: Any, shape: Sequence[int]) -> Any:
    b, frames, a, s, p = shape
    return y.reshape(b, a, s, frames, p).permute(0, 3, 1, 2, 4)


def static_removal(x: Any) -> Any:
    """``x`` [B, L, A, S, P] minus its mean over time (L and P) per window, antenna, subcarrier."""
    return x - x.mean(dim=(1, 4), keepdim=True)


def temporal_diff(x: Any) -> Any:
    """First difference over time (frames x packets, in order) of ``x`` [B, L, A, S, P]; 0 at t = 0."""
    import torch

    t = _time_last(x)
    d = torch.cat([torch.zeros_like(t[..., :1]), t[..., 1:] - t[..., :-1]], dim=-1)
    return _time_back(d, x.shape).contiguous()


def conj_product(amplitude: Any, phase: Any) -> Any:
    """[B, L, 2 (A-1), S, P]: real parts of A_a A_0 e^{j(phi_a - phi_0)} for a = 1.., then imaginary."""
    import torch

    rel = phase[:, :, 1:] - phase[:, :, :1]
    mag = amplitude[:, :, 1:] * amplitude[:, :, :1]
    return torch.cat([mag * torch.cos(rel), mag * torch.sin(rel)], dim=2)


def augment(amplitude: Any, phase: Any | None) -> tuple[Any, Any | None]:
    """Random per-window gains (antenna, subcarrier) and antenna phase turns (torch's RNG)."""
    import torch

    b, _, a, s, _ = amplitude.shape
    g = torch.exp(GAIN_SD * torch.randn(b, 1, a, 1, 1)) * torch.exp(
        SUBCARRIER_SD * torch.randn(b, 1, 1, s, 1)
    )
    amplitude = amplitude * g.to(amplitude.dtype)
    if phase is not None:
        phase = phase + (PHASE_SD * torch.randn(b, 1, a, 1, 1)).to(phase.dtype)
    return amplitude, phase


@dataclass(frozen=True)
class RoomStats:
    """Per-room amplitude statistics of a pose store (``capture_norm``): for each room
    code, the mean and the divisor (std + eps x the room's largest std, as
    :func:`capture_stats`) per antenna and subcarrier over all of the room's windows
    (frames and packets), float64."""

    codes: np.ndarray  # [R] int64, sorted
    mean: np.ndarray  # [R, A, S]
    std: np.ndarray  # [R, A, S]

    def normalise(self, amplitude: Any, rooms: Any) -> Any:
        """``amplitude`` [B, L, A, S, P] (torch) z-scored with the statistics of each
        window's room ``rooms`` ([B] or [B, L] room codes, torch or numpy)."""
        import torch

        r = np.asarray(rooms).reshape(len(amplitude), -1)[:, 0].astype(np.int64)
        at = np.minimum(np.searchsorted(self.codes, r), len(self.codes) - 1)
        missing = r[self.codes[at] != r]
        if len(missing):
            raise ValueError(f"data.features 'capture_norm': room code {int(missing[0])} has no "
                             f"capture statistics (rooms with statistics: {self.codes.tolist()})")  # fmt: skip
        mean = torch.from_numpy(self.mean[at]).to(amplitude.dtype)[:, None, :, :, None]
        std = torch.from_numpy(self.std[at]).to(amplitude.dtype)[:, None, :, :, None]
        return (amplitude - mean) / std


def room_stats(store: Any, chunk: int = 4096, eps: float = 1e-6) -> RoomStats:
    """:class:`RoomStats` of every room of ``store`` (its ``environment`` codes) over the
    amplitude of all of its windows, after the store's load-time transforms."""
    # Per room: a shift (its first chunk's mean, so that the sums do not cancel), the sums
    # of the shifted values and of their squares [A, S], and the number of values (float64).
    acc: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, int]] = {}
    for start in range(0, len(store), chunk):
        idx = np.arange(start, min(len(store), start + chunk), dtype=np.int64)
        b = store.gather(idx, fields=["amplitude", "environment"])
        x = b["amplitude"].astype(np.float64)
        env = b["environment"].reshape(len(idx), -1)[:, 0].astype(np.int64)
        for r in np.unique(env).tolist():
            w = x[env == r]
            axes = (0, 1, 4)
            shift, s1, s2, count = acc.get(r) or (w.mean(axis=axes), 0.0, 0.0, 0)
            d = w - shift[None, None, :, :, None]
            acc[r] = (shift, s1 + d.sum(axis=axes), s2 + (d * d).sum(axis=axes),
                      count + w.shape[0] * w.shape[1] * w.shape[4])  # fmt: skip
    if not acc:
        raise ValueError(f"{store.path}: no windows to compute capture statistics from")
    rooms = np.array(sorted(acc), np.int64)
    mean, std = [], []
    for r in rooms.tolist():
        shift, s1, s2, count = acc[r]
        m = s1 / count
        sd = np.sqrt(np.maximum(s2 / count - m * m, 0.0))
        mean.append(shift + m)
        std.append(_divisor(sd, eps))
    return RoomStats(codes=rooms, mean=np.stack(mean), std=np.stack(std))


def pose_input(
    batch: dict[str, Any], features: Sequence[str], rooms: RoomStats | None = None
) -> Any:
    """The model's input [B, L, C, S, P] with ``features``: the amplitude (normalised by
    its room's statistics ``rooms`` and static removed when asked), the antennas'
    relative phase when the batch has phase (as ``csipose.models.antenna_phase_features``),
    then the temporal difference and the conjugate products."""
    import torch

    from csipose.models import antenna_phase_features

    amp, phase = batch["amplitude"], batch.get("phase")
    if "capture_norm" in features:
        if rooms is None or "environment" not in batch:
            raise ValueError("data.features 'capture_norm' needs the room statistics and each "
                             "window's room (batch field 'environment')")  # fmt: skip
        amp = rooms.normalise(amp, batch["environment"])
    if "augment" in features and torch.is_grad_enabled():
        amp, phase = augment(amp, phase)
    base = static_removal(amp) if "static_removal" in features else amp
    parts = [base]
    if phase is not None:
        parts.append(antenna_phase_features(phase))
    if "temporal_diff" in features:
        parts.append(temporal_diff(amp))
    if "conj_product" in features:
        if phase is None:
            raise ValueError(
                "data.features 'conj_product' needs the phase (data.inputs = 'amplitude+phase')"
            )
        parts.append(conj_product(amp, phase))
    return torch.cat(parts, dim=2) if len(parts) > 1 else parts[0]


# --- counting (numpy) -------------------------------------------------------------------------


def static_removal_np(x: np.ndarray) -> np.ndarray:
    """Windows [n, S, T] minus their temporal mean per subcarrier."""
    return (x - x.mean(axis=-1, keepdims=True)).astype(x.dtype)


def capture_stats(x: np.ndarray, eps: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """(mean [S], std + eps x the largest std [S]) over the windows [n, S, T] of one
    capture (float64); eps is relative because amplitudes have no fixed scale."""
    x = np.asarray(x, np.float64)
    return x.mean(axis=(0, 2)), _divisor(x.std(axis=(0, 2)), eps)


def _divisor(std: np.ndarray, eps: float) -> np.ndarray:
    """``std`` + eps x its largest value: the z-score's divisor, never 0 (pose and counting)."""
    return std + eps * max(float(std.max(initial=0.0)), 1e-30)


def capture_norm(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Windows [n, S, T] z-scored per subcarrier with their capture's statistics."""
    return ((x - mean[None, :, None]) / std[None, :, None]).astype(x.dtype)


__all__ = ["COUNT_FEATURES", "POSE_FEATURES", "RoomStats", "augment", "capture_norm", "capture_stats",
           "check", "conj_product", "extra_channels", "pose_input", "room_stats", "static_removal",
           "static_removal_np", "temporal_diff"]  # fmt: skip
