"""WiFlow's MM-Fi variant: MM-Fi CSI ``[B, 3, 114, 10]`` to 3-D joints ``[B, 17, 3]``.

As published in ``cross_dataset_test/WiFlow/wiflow.py``
(with ``cross_dataset_test/config.yaml``), 1,060,597 parameters:

1. The frame ``[B, 3, 114, 10]`` flattens to ``[B, 342, 10]`` (antenna-major
   channels, packets as time; :func:`csipose.models.to_channels_time` gives the
   same layout for windows of several frames).
2. TCN 342 -> [342, 306, 288], every grouped conv in 18 groups, dilations 1/2/4
   (the same blocks as WiFlow-STD).
3. 1x1 Conv1d 288 -> 272 (no bias), BN, SiLU.
4. ConvBlock1 (1 -> 8) and four stride-2 asymmetric conv blocks [8, 16, 32, 64]:
   width 272 -> 136 -> 68 -> 34 -> 17, one row per joint.
5. DualAxialAttention(64 channels, 8 groups).
6. Head on the last time step only: 1x1 conv 64 -> 32, BN, SiLU, 1x1 conv
   32 -> 3 (no BN or SiLU on the output, so coordinates may be negative).

Generalised where the structure allows: the projection has 16 x K channels, so
the four halvings end at exactly K rows; D output channels; any window; any
``in_channels`` divisible by the 18 groups. Module names equal upstream's
(``tcn_proj``, ``att``, ``final_conv``), so its checkpoint loads as it is.
Initialisation: as WiFlow-STD (:func:`csipose.models.wiflow.init_weights`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from csipose.models.wiflow import (
    ConvBlock,
    DualAxialAttention,
    TemporalConvNet,
    check_divisible,
    check_input,
    check_plan,
    check_positive,
    conv_stack,
    init_weights,
)

__all__ = ["WiFlowMMFi", "WiFlowMMFiConfig"]


@dataclass(frozen=True)
class WiFlowMMFiConfig:
    """Hyper-parameters of :class:`WiFlowMMFi`; the defaults are the published model."""

    in_channels: int = 342
    window: int = 10
    keypoints: int = 17
    dims: int = 3
    tcn_channels: tuple[int, ...] = (342, 306, 288)
    tcn_groups: int = 18
    conv_channels: tuple[int, ...] = (8, 16, 32, 64)
    attention_groups: int = 8
    head_channels: int = 32
    dropout: float = 0.3

    def __post_init__(self) -> None:
        check_plan(self)
        check_positive(head_channels=self.head_channels)
        check_divisible(
            self.in_channels,
            self.tcn_channels,
            self.tcn_groups,
            "WiFlow's MM-Fi variant groups every grouped conv alike; choose tcn_groups "
            "dividing in_channels and every tcn channel count",
        )

    @property
    def projection_channels(self) -> int:
        """K x 2**blocks (272 for K = 17): each conv block halves the width, ending at K rows."""
        return self.keypoints * 2 ** len(self.conv_channels)


class WiFlowMMFi(nn.Module):
    """WiFlow's MM-Fi model: ``[B, in_channels, window]`` (or an MM-Fi frame
    ``[B, A, S, P]``, flattened to ``[B, A*S, P]``) -> ``[B, keypoints, dims]``."""

    def __init__(self, config: WiFlowMMFiConfig | None = None) -> None:
        super().__init__()
        cfg = config or WiFlowMMFiConfig()
        self.config = cfg
        g = cfg.tcn_groups
        self.tcn = TemporalConvNet(cfg.in_channels, cfg.tcn_channels, lambda _: g, cfg.dropout)
        p = cfg.projection_channels
        self.tcn_proj = nn.Sequential(
            nn.Conv1d(cfg.tcn_channels[-1], p, kernel_size=1, bias=False),
            nn.BatchNorm1d(p),
            nn.SiLU(),
        )
        c0, c_last = cfg.conv_channels[0], cfg.conv_channels[-1]
        self.up = ConvBlock(1, c0)
        self.residual_blocks = conv_stack(c0, cfg.conv_channels, [2] * len(cfg.conv_channels))
        self.att = DualAxialAttention(c_last, cfg.attention_groups)
        h = cfg.head_channels
        self.final_conv = nn.Sequential(
            nn.Conv2d(c_last, h, kernel_size=1),
            nn.BatchNorm2d(h),
            nn.SiLU(),
            nn.Conv2d(h, cfg.dims, kernel_size=1),
        )
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            x = x.reshape(x.shape[0], -1, x.shape[-1])
        check_input(x, self.config.in_channels, self.config.window)
        x = self.tcn_proj(self.tcn(x))  # [B, 16K, T]
        x = self.up(x.transpose(1, 2).unsqueeze(1))  # [B, c0, T, 16K]
        for block in self.residual_blocks:
            x = block(x)  # [B, c, T, K] after the last
        x = self.att(x.permute(0, 1, 3, 2))  # [B, c, K, T]
        # Upstream decodes the last time step only.
        x = self.final_conv(x[..., -1:])  # [B, D, K, 1]
        return x.squeeze(-1).transpose(1, 2)
