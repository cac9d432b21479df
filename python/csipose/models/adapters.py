"""From the store's CSI windows to the pose models' inputs, and the models by name.

``Store.gather`` returns CSI as ``[B, L, A, S, P]`` (window frames, antennas,
subcarriers, packets per frame). The WiFlow family reads ``[B, C, T]``:
:func:`to_channels_time` makes C = A*S (antenna-major, then subcarrier) and
T = L*P (frame-major, then packet), so

* an MM-Fi-profile window of L frames ``[3, 114, 10]`` gives ``[B, 342, 10 L]``
  (for L = 1 exactly WiFlow's MM-Fi flattening of ``[B, 3, 114, 10]``);
* a WiFlow-profile window, L = 20 frames ``[18, 30, 1]``, gives ``[B, 540, 20]``.

:func:`build_pose_model` builds a model for those C and T by name.
"""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from csipose.models.wiflow import PRESETS, WiFlowSTD, preset
from csipose.models.wiflow_mmfi import WiFlowMMFi, WiFlowMMFiConfig

__all__ = [
    "MODEL_NAMES",
    "antenna_phase_features",
    "build_pose_model",
    "channels_time_shape",
    "to_channels_time",
]

MODEL_NAMES = ("wiflow-full", "wiflow-half", "wiflow-quarter", "wiflow-tiny", "wiflow-mmfi")

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


def channels_time_shape(window_shape: tuple[int, ...]) -> tuple[int, int]:
    """(C, T) = (A*S, L*P) of a window ``[L, A, S, P]`` (batch axis excluded)."""
    if len(window_shape) != 4:
        raise ValueError(f"expected a window shape [L, A, S, P], got {list(window_shape)}")
    frames, antennas, subcarriers, packets = window_shape
    return antennas * subcarriers, frames * packets


def to_channels_time(x: ArrayT) -> ArrayT:
    """``[B, L, A, S, P]`` -> ``[B, A*S, L*P]``, numpy array or torch tensor.

    ``out[b, a*S + s, l*P + p] == x[b, l, a, s, p]``: channels run antenna-major
    then subcarrier, time frame-major then packet. The result is a new
    C-contiguous array (tensor: on x's device, autograd-connected).
    """
    if x.ndim != 5:
        raise ValueError(f"expected CSI windows [B, L, A, S, P], got {list(x.shape)}")
    b, frames, antennas, subcarriers, packets = x.shape
    shape = (b, antennas * subcarriers, frames * packets)
    if isinstance(x, torch.Tensor):
        return x.permute(0, 2, 3, 1, 4).reshape(shape).contiguous()
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1, 4)).reshape(shape)


def antenna_phase_features(phase: torch.Tensor) -> torch.Tensor:
    """cos and sin of each antenna's phase relative to antenna 0: ``[B, L, A, S, P]``
    -> ``[B, L, 2 (A - 1), S, P]`` (the cosines of antennas 1..A-1, then the sines).

    Raw CSI phase carries a random offset per packet (carrier frequency offset,
    sampling time offset, PLL phase) that every antenna of one receiver shares;
    the difference between antennas cancels it and keeps the angle of arrival.
    cos and sin make the feature continuous across the 2 pi wrap, so no
    unwrapping is needed. The antennas must belong to one receiver (one clock).
    """
    if phase.dim() != 5 or phase.shape[2] < 2:
        raise ValueError(f"expected CSI phase [B, L, A >= 2, S, P], got {list(phase.shape)}")
    rel = phase[:, :, 1:] - phase[:, :, :1]
    return torch.cat([torch.cos(rel), torch.sin(rel)], dim=2)


def build_pose_model(
    name: str,
    *,
    in_channels: int,
    window: int,
    keypoints: int,
    dims: int,
    dropout: float | None = None,
    **overrides: Any,
) -> nn.Module:
    """The pose model ``name`` for inputs ``[B, in_channels, window]`` and
    outputs ``[B, keypoints, dims]``.

    Names: ``wiflow-full``, ``wiflow-half``, ``wiflow-quarter``, ``wiflow-tiny``
    (:data:`csipose.models.PRESETS`) and ``wiflow-mmfi``. ``dropout=None``
    keeps the published TCN dropout (0.5 in WiFlow's training script; 0.3 in
    its MM-Fi variant). ``overrides`` replace other config fields (e.g.
    ``output_activation=False``). A channel plan that does not fit
    ``in_channels`` raises ``ValueError`` naming the constraint.
    """
    fields: dict[str, Any] = dict(
        in_channels=in_channels, window=window, keypoints=keypoints, dims=dims, **overrides
    )
    if dropout is not None:
        fields["dropout"] = dropout
    if name == "wiflow-mmfi":
        return WiFlowMMFi(WiFlowMMFiConfig(**fields))
    preset_name = name.removeprefix("wiflow-")
    if name.startswith("wiflow-") and preset_name in PRESETS:
        return WiFlowSTD(preset(preset_name, **fields))
    raise ValueError(f"unknown pose model {name!r}; known: {', '.join(MODEL_NAMES)}")
