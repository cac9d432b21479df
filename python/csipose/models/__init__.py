"""Pose models (torch): the WiFlow-STD family, WiFlow's MM-Fi variant, the
input adapter from the store's windows, and WiFlow's loss.

Needs torch (the ``train`` extra); ``import csipose`` alone does not import it.
"""

from csipose.models.losses import PoseLossTerms, bone_lengths, pose_loss, pose_loss_terms

__all__ = [
    "PoseLossTerms",
    "bone_lengths",
    "pose_loss",
    "pose_loss_terms",
]
