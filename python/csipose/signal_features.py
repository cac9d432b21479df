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
from typing import Any

import numpy as np

POSE_FEATURES = ("static_removal", "temporal_diff", "conj_product", "augment")
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


def pose_input(batch: dict[str, Any], features: Sequence[str]) -> Any:
    """The model's input [B, L, C, S, P] with ``features``: the amplitude (static removed
    when asked), the antennas' relative phase when the batch has phase (as
    ``csipose.models.antenna_phase_features``), then the temporal difference and the
    conjugate products."""
    import torch

    from csipose.models import antenna_phase_features

    amp, phase = batch["amplitude"], batch.get("phase")
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
    std = x.std(axis=(0, 2))
    return x.mean(axis=(0, 2)), std + eps * max(float(std.max(initial=0.0)), 1e-30)


def capture_norm(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Windows [n, S, T] z-scored per subcarrier with their capture's statistics."""
    return ((x - mean[None, :, None]) / std[None, :, None]).astype(x.dtype)


__all__ = ["COUNT_FEATURES", "POSE_FEATURES", "augment", "capture_norm", "capture_stats", "check",
           "conj_product", "extra_channels", "pose_input", "static_removal", "static_removal_np",
           "temporal_diff"]  # fmt: skip
