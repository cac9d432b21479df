"""Models (torch): the WiFlow-STD pose family, WiFlow's MM-Fi variant, the
input adapter from the store's windows, WiFlow's loss, and CountNet (person
counting).

Needs torch (the ``train`` extra); ``import csipose`` alone does not import it.
"""

from csipose.models.adapters import (
    MODEL_NAMES,
    antenna_phase_features,
    build_pose_model,
    channels_time_shape,
    to_channels_time,
)
from csipose.models.countnet import CountNet
from csipose.models.losses import PoseLossTerms, bone_lengths, pose_loss, pose_loss_terms
from csipose.models.wiflow import PRESETS, WiFlowSTD, WiFlowSTDConfig, conv_strides, preset
from csipose.models.wiflow_mmfi import WiFlowMMFi, WiFlowMMFiConfig

__all__ = [
    "MODEL_NAMES",
    "PRESETS",
    "CountNet",
    "PoseLossTerms",
    "WiFlowMMFi",
    "WiFlowMMFiConfig",
    "WiFlowSTD",
    "WiFlowSTDConfig",
    "antenna_phase_features",
    "bone_lengths",
    "build_pose_model",
    "channels_time_shape",
    "conv_strides",
    "pose_loss",
    "pose_loss_terms",
    "preset",
    "to_channels_time",
]
