"""WiFlow's pose loss: joint positions plus bone lengths, both SmoothL1.

    L = w_pos * SmoothL1_{beta=0.1}(pred, gt) + w_bone * SmoothL1_{beta=0.05}(l(pred), l(gt))

with w_pos = 1.0, w_bone = 0.2, l(x) the length sqrt(sum_d (x_b - x_a)^2 + 1e-8)
of each bone (a, b) of the skeleton, and SmoothL1_beta(u) = 0.5 u^2 / beta if
|u| < beta else |u| - 0.5 beta (WiFlow's ``losses/pose_loss.py``; WiFlow uses
BODY25_15's 14 bones, its MM-Fi variant 16 H36M-17 bones).

Without a mask both terms are plain means over all elements. With a visibility
mask ``visible [..., K]`` (nonzero = visible):

* position = sum of SmoothL1 over the coordinates of visible joints / (D x the
  number of visible joints in the batch);
* bone = sum of SmoothL1 over bones with both ends visible / their number;
* a term with nothing to average is 0;
* masked target joints may hold anything (NaN included): they are replaced by
  the detached prediction before any arithmetic, so they add neither value
  nor gradient.

The means are flat over the whole batch (every visible coordinate, every
usable bone weighs the same), not per sample.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from csipose import skeleton as skeletons
from csipose.skeleton import Skeleton

__all__ = ["PoseLossTerms", "bone_lengths", "pose_loss", "pose_loss_terms"]

BONE_EPS = 1e-8


class PoseLossTerms(NamedTuple):
    """The two unweighted terms of :func:`pose_loss`."""

    position: torch.Tensor
    bone: torch.Tensor


def _bone_index(skel: Skeleton, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    a = torch.tensor([i for i, _ in skel.bones], dtype=torch.long, device=device)
    b = torch.tensor([j for _, j in skel.bones], dtype=torch.long, device=device)
    return a, b


def bone_lengths(x: torch.Tensor, skeleton: Skeleton | str) -> torch.Tensor:
    """``[..., K, D]`` -> ``[..., bones]``: sqrt(sum_d (x_b - x_a)^2 + 1e-8) per bone."""
    a, b = _bone_index(skeletons.get(skeleton), x.device)
    return torch.sqrt(((x[..., b, :] - x[..., a, :]) ** 2).sum(-1) + BONE_EPS)


def _mean(values: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    if weight is None:
        return values.mean() if values.numel() else values.sum()
    return (values * weight).sum() / weight.sum().clamp_min(1.0)


def pose_loss_terms(
    pred: torch.Tensor,
    target: torch.Tensor,
    skeleton: Skeleton | str,
    *,
    visible: torch.Tensor | None = None,
    position_beta: float = 0.1,
    bone_beta: float = 0.05,
) -> PoseLossTerms:
    """Position and bone-length SmoothL1 terms of ``pred`` against ``target``
    (``[..., K, D]``), masked by ``visible [..., K]`` (module docstring)."""
    skel = skeletons.get(skeleton)
    if pred.shape != target.shape or pred.dim() < 2:
        raise ValueError(
            f"pred and target must share a shape [..., K, D], got {list(pred.shape)} "
            f"and {list(target.shape)}"
        )
    if pred.shape[-2] != skel.num_joints:
        raise ValueError(
            f"{pred.shape[-2]} joints given, skeleton {skel.name} has {skel.num_joints}"
        )
    joint_w = bone_w = None
    if visible is not None:
        if visible.shape != pred.shape[:-1]:
            raise ValueError(
                f"visible must have shape {list(pred.shape[:-1])}, got {list(visible.shape)}"
            )
        mask = (visible != 0).to(pred.device)
        target = torch.where(mask[..., None], target, pred.detach())
        joint_w = mask.to(pred.dtype)[..., None].expand(pred.shape)
        a, b = _bone_index(skel, pred.device)
        bone_w = joint_w[..., a, 0] * joint_w[..., b, 0]
    position = F.smooth_l1_loss(pred, target, reduction="none", beta=position_beta)
    bone = F.smooth_l1_loss(
        bone_lengths(pred, skel), bone_lengths(target, skel), reduction="none", beta=bone_beta
    )
    return PoseLossTerms(_mean(position, joint_w), _mean(bone, bone_w))


def pose_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    skeleton: Skeleton | str,
    *,
    visible: torch.Tensor | None = None,
    position_weight: float = 1.0,
    bone_weight: float = 0.2,
    position_beta: float = 0.1,
    bone_beta: float = 0.05,
) -> torch.Tensor:
    """WiFlow's loss ``position_weight * position + bone_weight * bone`` (a scalar)."""
    terms = pose_loss_terms(
        pred, target, skeleton, visible=visible, position_beta=position_beta, bone_beta=bone_beta
    )
    return position_weight * terms.position + bone_weight * terms.bone
