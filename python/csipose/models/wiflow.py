"""WiFlow-STD: CSI windows ``[B, C, T]`` to keypoints ``[B, K, D]``.

The model of DY2434/WiFlow (arXiv 2602.08661) as published, with the compact
presets of the WiFlow-STD port (WiFlow's ``models/pose_model.py`` and the
upstream wifi-densepose training crate's WiFlow-STD presets; docs/models.md):

1. TCN: one inner grouped temporal block per entry of ``tcn_channels``, dilation
   2**level, kernel 3, causal (output t sees inputs <= t only).
2. The TCN output ``[B, C', T]`` becomes an image ``[B, 1, T, C']`` (H = time,
   W = feature).
3. ConvBlock1 (1 -> conv_channels[0]) and one asymmetric (1 x 3) conv block per
   entry of ``conv_channels``; they never mix time. A block halves the width
   (stride 2) while the halved width stays >= ``min_feature_width``.
4. Permute to ``[B, C, W', T]``; DualAxialAttention (time axis, then the W'
   axis): no 1/sqrt(d), BN on the similarity maps, no residual, no positional
   encoding.
5. Decoder: 3x3 conv, BN, SiLU, 1x1 conv to D channels, BN, SiLU; then
   AdaptiveAvgPool2d((K, 1)), so K is free and costs no parameters.

Module names equal upstream's (``tcn.network.0.conv1_group.weight``, ...), so a
state_dict of the published model loads as it is.

Initialisation as published: Conv1d Kaiming-normal (fan_out, relu), bias 0;
BatchNorm weight 1, bias 0; Conv2d PyTorch's default. The attention's qkv
Conv1d first draws its own N(0, 1/C) init and the Kaiming init then overwrites
it, as upstream does; the draw is kept so that a seeded model consumes the
random stream in upstream's order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "PRESETS",
    "DualAxialAttention",
    "TemporalConvNet",
    "WiFlowSTD",
    "WiFlowSTDConfig",
    "conv_strides",
    "init_weights",
    "preset",
]

GroupsMode = Literal["fixed", "gcd", "depthwise"]
GROUPS_MODES = ("fixed", "gcd", "depthwise")
TCN_KERNEL = 3
CONV_BLOCK_DROPOUT = 0.3  # fixed in upstream's conv blocks, whatever the model dropout


def check_positive(**values: int) -> None:
    for name, v in values.items():
        if not (isinstance(v, int) and v >= 1):
            raise ValueError(f"{name} must be a positive integer, got {v!r}")


def check_plan(cfg: Any) -> None:
    """Checks the fields both WiFlow configs share (channel plans become tuples)."""
    object.__setattr__(cfg, "tcn_channels", tuple(cfg.tcn_channels))
    object.__setattr__(cfg, "conv_channels", tuple(cfg.conv_channels))
    check_positive(
        in_channels=cfg.in_channels,
        window=cfg.window,
        keypoints=cfg.keypoints,
        dims=cfg.dims,
        tcn_groups=cfg.tcn_groups,
        attention_groups=cfg.attention_groups,
    )
    if not cfg.tcn_channels or not cfg.conv_channels:
        raise ValueError("tcn_channels and conv_channels must not be empty")
    check_positive(**{f"tcn_channels[{i}]": c for i, c in enumerate(cfg.tcn_channels)})
    check_positive(**{f"conv_channels[{i}]": c for i, c in enumerate(cfg.conv_channels)})
    if cfg.conv_channels[-1] % cfg.attention_groups:
        raise ValueError(
            f"attention_groups {cfg.attention_groups} must divide the last conv "
            f"channels {cfg.conv_channels[-1]}"
        )
    if not 0.0 <= cfg.dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {cfg.dropout}")


def check_divisible(in_channels: int, tcn_channels: Sequence[int], groups: int, hint: str) -> None:
    """Every grouped temporal conv has ``groups`` groups, so each channel count must divide."""
    for name, c in [("in_channels", in_channels), *(("tcn channels", c) for c in tcn_channels)]:
        if c % groups:
            raise ValueError(f"{name} {c} are not divisible by the TCN's groups {groups} ({hint})")


def conv_strides(width: int, blocks: int, min_width: int) -> tuple[tuple[int, ...], int]:
    """Width strides of ``blocks`` conv blocks and the final width.

    A (1 x 3) conv with stride 2 and padding 1 maps w to ceil(w / 2); a block
    halves only while that stays >= ``min_width``, so stride-2 blocks come
    first (240 -> 120 -> 60 -> 30 -> 15 in the full model).
    """
    strides = []
    for _ in range(blocks):
        half = (width + 1) // 2
        if half >= min_width:
            strides.append(2)
            width = half
        else:
            strides.append(1)
    return tuple(strides), width


@dataclass(frozen=True)
class WiFlowSTDConfig:
    """Hyper-parameters of :class:`WiFlowSTD`; the defaults are the published model.

    ``groups_mode`` sets the group count of each grouped temporal conv over c
    channels: ``"fixed"`` uses ``tcn_groups`` (upstream's hard-coded 20),
    ``"gcd"`` gcd(c, tcn_groups), ``"depthwise"`` c. ``input_pw_groups`` groups
    the first TCN block's pointwise conv and residual projection (the only
    convs whose cost scales with ``in_channels`` x ``tcn_channels[0]``).
    ``output_activation=False`` drops the final SiLU (published: on), whose
    outputs cannot go below -0.2785: keep it for WiFlow's non-negative pixel
    coordinates, drop it for targets that can be negative (3-D metres,
    standardised targets). The parameter count is the same either way.
    """

    in_channels: int = 540
    window: int = 20
    keypoints: int = 15
    dims: int = 2
    tcn_channels: tuple[int, ...] = (540, 440, 340, 240)
    groups_mode: GroupsMode = "fixed"
    tcn_groups: int = 20
    input_pw_groups: int = 1
    conv_channels: tuple[int, ...] = (8, 16, 32, 64)
    attention_groups: int = 8
    min_feature_width: int = 15
    dropout: float = 0.5
    output_activation: bool = True

    def __post_init__(self) -> None:
        check_plan(self)
        check_positive(
            input_pw_groups=self.input_pw_groups, min_feature_width=self.min_feature_width
        )
        if self.groups_mode not in GROUPS_MODES:
            raise ValueError(f"groups_mode must be one of {GROUPS_MODES}, got {self.groups_mode!r}")
        if self.groups_mode == "fixed":
            check_divisible(
                self.in_channels,
                self.tcn_channels,
                self.tcn_groups,
                "groups_mode 'fixed'; groups_mode 'gcd' or 'depthwise' fit any channel count",
            )
        p, c0 = self.input_pw_groups, self.tcn_channels[0]
        if self.in_channels % p or c0 % p:
            raise ValueError(
                f"input_pw_groups {p} must divide both in_channels {self.in_channels} "
                f"and tcn_channels[0] {c0}"
            )

    def groups(self, channels: int) -> int:
        """Group count of a grouped temporal conv over ``channels`` channels."""
        if self.groups_mode == "fixed":
            return self.tcn_groups
        if self.groups_mode == "gcd":
            return math.gcd(channels, self.tcn_groups)
        return channels

    @property
    def strides(self) -> tuple[int, ...]:
        """Width stride of each asymmetric conv block (see :func:`conv_strides`)."""
        return self._width_plan()[0]

    @property
    def final_width(self) -> int:
        """Rows the attention and decoder see (15 in the full model)."""
        return self._width_plan()[1]

    def _width_plan(self) -> tuple[tuple[int, ...], int]:
        return conv_strides(self.tcn_channels[-1], len(self.conv_channels), self.min_feature_width)

    @property
    def decoder_channels(self) -> int:
        return max(self.conv_channels[-1] // 2, 4)


# Section 1.10's preset table (parameter counts at 540 x 20, K = 15, D = 2).
PRESETS: dict[str, WiFlowSTDConfig] = {
    "full": WiFlowSTDConfig(),  # 2,225,042
    "half": WiFlowSTDConfig(  # 843,834
        tcn_channels=(270, 220, 170, 120),
        conv_channels=(4, 8, 16, 32),
        attention_groups=4,
        groups_mode="gcd",
    ),
    "quarter": WiFlowSTDConfig(  # 338,600
        tcn_channels=(135, 110, 85, 60),
        conv_channels=(2, 4, 8, 16),
        attention_groups=2,
        groups_mode="gcd",
    ),
    "tiny": WiFlowSTDConfig(  # 56,290
        tcn_channels=(68, 56, 44, 32),
        conv_channels=(2, 4, 8, 16),
        attention_groups=2,
        groups_mode="depthwise",
        input_pw_groups=4,
    ),
}


def preset(name: str, **overrides: Any) -> WiFlowSTDConfig:
    """The preset ``name`` ("full", "half", "quarter", "tiny") with fields replaced."""
    if name not in PRESETS:
        raise ValueError(f"unknown WiFlow-STD preset {name!r}; known: {', '.join(PRESETS)}")
    return replace(PRESETS[name], **overrides)


class TemporalBlock(nn.Module):
    """Upstream's InnerGroupedTemporalBlock: two rounds of (causal grouped conv,
    BN, SiLU, pointwise conv, BN, SiLU, dropout), plus a residual; all convs
    without bias.

    Upstream pads (k-1)*d on both sides and cuts the trailing (k-1)*d outputs
    (Chomp1d); padding the left side only gives the same outputs without
    computing the discarded ones.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        dilation: int,
        groups_in: int,
        groups_out: int,
        pw_groups: int,
        dropout: float,
    ) -> None:
        super().__init__()
        k = TCN_KERNEL
        self.pad = (k - 1) * dilation
        # Attribute order is upstream's: a seeded model draws the same initial weights.
        self.conv1_group = nn.Conv1d(c_in, c_in, k, dilation=dilation, groups=groups_in, bias=False)
        self.bn1_group = nn.BatchNorm1d(c_in)
        self.conv1_pw = nn.Conv1d(c_in, c_out, 1, groups=pw_groups, bias=False)
        self.bn1_pw = nn.BatchNorm1d(c_out)
        self.dropout1 = nn.Dropout(dropout)
        self.conv2_group = nn.Conv1d(
            c_out, c_out, k, dilation=dilation, groups=groups_out, bias=False
        )
        self.bn2_group = nn.BatchNorm1d(c_out)
        self.conv2_pw = nn.Conv1d(c_out, c_out, 1, bias=False)
        self.bn2_pw = nn.BatchNorm1d(c_out)
        self.dropout2 = nn.Dropout(dropout)
        self.downsample: nn.Module = (
            nn.Sequential(
                nn.Conv1d(c_in, c_out, 1, groups=pw_groups, bias=False), nn.BatchNorm1d(c_out)
            )
            if c_in != c_out
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.silu(self.bn1_group(self.conv1_group(F.pad(x, (self.pad, 0)))))
        out = self.dropout1(F.silu(self.bn1_pw(self.conv1_pw(out))))
        out = F.silu(self.bn2_group(self.conv2_group(F.pad(out, (self.pad, 0)))))
        out = self.dropout2(F.silu(self.bn2_pw(self.conv2_pw(out))))
        return F.silu(out + self.downsample(x))


class TemporalConvNet(nn.Module):
    """Temporal blocks ``in_channels -> channels[0] -> ...``, dilation 2**level.

    ``groups(c)`` gives the group count of a grouped conv over c channels;
    ``input_pw_groups`` groups block 0's pointwise conv and residual projection.
    Causal in eval mode; in training mode BatchNorm's batch statistics pool all
    time steps.
    """

    def __init__(
        self,
        in_channels: int,
        channels: Sequence[int],
        groups: Callable[[int], int],
        dropout: float,
        input_pw_groups: int = 1,
    ) -> None:
        super().__init__()
        blocks = []
        c_in = in_channels
        for level, c_out in enumerate(channels):
            pw = input_pw_groups if level == 0 else 1
            blocks.append(
                TemporalBlock(c_in, c_out, 2**level, groups(c_in), groups(c_out), pw, dropout)
            )
            c_in = c_out
        self.network = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)


class ConvBlock(nn.Module):
    """Upstream's ConvBlock1 (stride 1) and AsymmetricConvBlock (width stride 2):
    three (1 x 3) convs with bias, each with BN, SiLU + Dropout2d(0.3) between
    them; residual 1x1 conv (no bias) + BN; SiLU of the sum."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()

        def conv(ci: int, s: int = 1) -> nn.Conv2d:
            return nn.Conv2d(ci, c_out, kernel_size=(1, 3), stride=(1, s), padding=(0, 1))

        self.block = nn.Sequential(
            conv(c_in, stride),
            nn.BatchNorm2d(c_out),
            nn.SiLU(),
            nn.Dropout2d(CONV_BLOCK_DROPOUT),
            conv(c_out),
            nn.BatchNorm2d(c_out),
            nn.SiLU(),
            nn.Dropout2d(CONV_BLOCK_DROPOUT),
            conv(c_out),
            nn.BatchNorm2d(c_out),
        )
        self.downsample = nn.Sequential(
            nn.Conv2d(c_in, c_out, kernel_size=1, stride=(1, stride), bias=False),
            nn.BatchNorm2d(c_out),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(self.block(x) + self.downsample(x))


class AxialAttention(nn.Module):
    """Grouped self-attention along one axis of ``[N, C, H, W]`` (the last axis
    when ``width``, else H); the other axis folds into the batch."""

    def __init__(self, channels: int, groups: int, width: bool) -> None:
        super().__init__()
        self.groups, self.width = groups, width
        self.qkv_transform = nn.Conv1d(channels, 3 * channels, 1, bias=False)
        self.bn_qkv = nn.BatchNorm1d(3 * channels)
        self.bn_similarity = nn.BatchNorm2d(groups)
        self.bn_output = nn.BatchNorm1d(channels)
        # Upstream's own init; init_weights overwrites it (module docstring).
        nn.init.normal_(self.qkv_transform.weight, 0.0, math.sqrt(1.0 / channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[:2]
        # [N * other, C, L] with L the attended axis.
        seq = x.permute(0, 2, 1, 3) if self.width else x.permute(0, 3, 1, 2)
        other, length = seq.shape[1], seq.shape[3]
        seq = seq.reshape(n * other, c, length)
        qkv = self.bn_qkv(self.qkv_transform(seq))
        q, k, v = qkv.reshape(n * other, 3, self.groups, c // self.groups, length).unbind(1)
        # Logits q_i . k_j per group, without 1/sqrt(d); BN over the G maps.
        similarity = self.bn_similarity(torch.einsum("bgci,bgcj->bgij", q, k)).softmax(dim=-1)
        out = torch.einsum("bgij,bgcj->bgci", similarity, v).reshape(n * other, c, length)
        out = self.bn_output(out).reshape(n, other, c, length)
        return out.permute(0, 2, 1, 3) if self.width else out.permute(0, 2, 3, 1)


class DualAxialAttention(nn.Module):
    """Width-axis attention, then height-axis attention; no residual."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.width_axis = AxialAttention(channels, groups, width=True)
        self.height_axis = AxialAttention(channels, groups, width=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.height_axis(self.width_axis(x))


def init_weights(model: nn.Module) -> None:
    """WiFlow's model-level init: Conv1d Kaiming-normal (fan_out, relu) with
    bias 0, BatchNorm weight 1 and bias 0; Conv2d keeps PyTorch's default."""
    for m in model.modules():
        if isinstance(m, nn.Conv1d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def conv_stack(c_in: int, channels: Sequence[int], strides: Sequence[int]) -> nn.ModuleList:
    """The asymmetric conv blocks after ConvBlock1 (``c_in`` = its channels)."""
    blocks = []
    for c_out, s in zip(channels, strides, strict=True):
        blocks.append(ConvBlock(c_in, c_out, s))
        c_in = c_out
    return nn.ModuleList(blocks)


def check_input(x: torch.Tensor, channels: int, window: int) -> None:
    if x.dim() != 3 or x.shape[1] != channels or x.shape[2] != window:
        raise ValueError(f"expected a CSI window [B, {channels}, {window}], got {list(x.shape)}")


class WiFlowSTD(nn.Module):
    """WiFlow-STD pose model: ``[B, in_channels, window]`` -> ``[B, keypoints, dims]``.

    Build it from a :class:`WiFlowSTDConfig` (``WiFlowSTD(preset("half"))``);
    the default is the published full model (2,225,042 parameters).
    """

    def __init__(self, config: WiFlowSTDConfig | None = None) -> None:
        super().__init__()
        cfg = config or WiFlowSTDConfig()
        self.config = cfg
        self.tcn = TemporalConvNet(
            cfg.in_channels, cfg.tcn_channels, cfg.groups, cfg.dropout, cfg.input_pw_groups
        )
        c0, c_last = cfg.conv_channels[0], cfg.conv_channels[-1]
        self.up = ConvBlock(1, c0)
        self.residual_blocks = conv_stack(c0, cfg.conv_channels, cfg.strides)
        self.attention = DualAxialAttention(c_last, cfg.attention_groups)
        m = cfg.decoder_channels
        self.decoder = nn.Sequential(
            nn.Conv2d(c_last, m, kernel_size=3, padding=1),
            nn.BatchNorm2d(m),
            nn.SiLU(),
            nn.Conv2d(m, cfg.dims, kernel_size=1),
            nn.BatchNorm2d(cfg.dims),
            nn.SiLU() if cfg.output_activation else nn.Identity(),
        )
        self.avg_pool = nn.AdaptiveAvgPool2d((cfg.keypoints, 1))
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.config.in_channels, self.config.window)
        x = self.tcn(x)  # [B, C', T]
        x = self.up(x.transpose(1, 2).unsqueeze(1))  # [B, c0, T, C']
        for block in self.residual_blocks:
            x = block(x)  # [B, c, T, W']
        x = self.attention(x.permute(0, 1, 3, 2))  # [B, c, W', T]
        x = self.avg_pool(self.decoder(x))  # [B, D, K, 1]
        return x.squeeze(-1).transpose(1, 2)
