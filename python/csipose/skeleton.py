"""Skeleton tables: joint names, bones, the torso pair, the root and OKS sigmas.

Three skeletons are first-class (docs/architecture.md, "Skeletons and the torso"):

* ``COCO17``: COCO keypoints (OKS sigmas defined).
* ``H36M17``: Human3.6M order, MM-Fi's ground truth (3-D, metres), 0 = pelvis.
* ``BODY25_15``: the first 15 OpenPose BODY_25 joints, WiFlow's labels.

The torso pair is the right-shoulder / left-hip diagonal in every skeleton.
Joints are addressed by index: left/right names differ between codebases
(``alt_joint_names`` keeps the other convention where one is in use).
Every function that takes a skeleton accepts the object or its name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from csipose import _arrays

__all__ = [
    "BODY25_15",
    "COCO17",
    "H36M17",
    "SKELETONS",
    "Skeleton",
    "get",
    "oks_sigmas",
    "sigmas_label",
]


@dataclass(frozen=True)
class Skeleton:
    """A keypoint layout. Build your own for other datasets."""

    name: str
    joints: tuple[str, ...]
    bones: tuple[tuple[int, int], ...]
    torso: tuple[int, int]
    root: int | None = None
    sigmas: tuple[float, ...] | None = None
    description: str = ""
    alt_joint_names: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        k = len(self.joints)
        if k == 0:
            raise ValueError(f"skeleton {self.name!r} has no joints")
        used = [*self.torso, *(j for bone in self.bones for j in bone)]
        if self.root is not None:
            used.append(self.root)
        bad = [j for j in used if not 0 <= j < k]
        if bad:
            raise ValueError(f"skeleton {self.name!r}: joint indices {bad} out of range 0..{k - 1}")
        if self.sigmas is not None and len(self.sigmas) != k:
            raise ValueError(f"skeleton {self.name!r}: {len(self.sigmas)} sigmas for {k} joints")
        for names in self.alt_joint_names.values():
            if len(names) != k:
                raise ValueError(
                    f"skeleton {self.name!r}: an alternative name table has the wrong length"
                )

    @property
    def num_joints(self) -> int:
        return len(self.joints)

    def torso_label(self) -> str:
        a, b = self.torso
        return f"joints {a} ({self.joints[a]}) and {b} ({self.joints[b]})"


# fmt: off
COCO17 = Skeleton(
    name="coco17",
    joints=(
        "nose", "left_eye", "right_eye", "left_ear", "right_ear",
        "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
        "left_wrist", "right_wrist", "left_hip", "right_hip",
        "left_knee", "right_knee", "left_ankle", "right_ankle",
    ),
    bones=(
        (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
        (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
    ),
    torso=(6, 11),
    sigmas=(
        0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072,
        0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089,
    ),
    description="COCO keypoints (pycocotools order and skeleton, OKS sigmas from COCOeval)",
)

H36M17 = Skeleton(
    name="h36m17",
    joints=(
        "pelvis", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee",
        "left_ankle", "spine", "thorax", "neck_nose", "head", "left_shoulder",
        "left_elbow", "left_wrist", "right_shoulder", "right_elbow", "right_wrist",
    ),
    bones=(
        (0, 1), (1, 2), (2, 3), (0, 4), (4, 5), (5, 6), (0, 7), (7, 8),
        (8, 9), (9, 10), (8, 11), (11, 12), (12, 13), (8, 14), (14, 15), (15, 16),
    ),
    torso=(14, 4),
    root=0,
    description="Human3.6M 17-joint order as in MM-Fi ground_truth.npy (3-D, metres)",
    alt_joint_names={
        # GraphPose-Fi's table and WiFlow's comments swap left and right.
        "graphpose-fi": (
            "bot_torso", "l_hip", "l_knee", "l_foot", "r_hip", "r_knee", "r_foot",
            "center_torso", "upper_torso", "neck_base", "center_head", "r_shoulder",
            "r_elbow", "r_hand", "l_shoulder", "l_elbow", "l_hand",
        ),
    },
)

BODY25_15 = Skeleton(
    name="body25_15",
    joints=(
        "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder",
        "left_elbow", "left_wrist", "mid_hip", "right_hip", "right_knee", "right_ankle",
        "left_hip", "left_knee", "left_ankle",
    ),
    bones=(
        (0, 1), (1, 8), (1, 2), (2, 3), (3, 4), (1, 5), (5, 6), (6, 7),
        (8, 9), (8, 12), (9, 10), (10, 11), (12, 13), (13, 14),
    ),
    torso=(2, 12),
    root=8,
    description="first 15 OpenPose BODY_25 joints, WiFlow's labels (pixels / 1000)",
    alt_joint_names={
        # WiFlow config.py KEYPOINT_NAMES: shifted by one and left/right swapped.
        "wiflow-config": (
            "neck", "chest", "l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow",
            "r_wrist", "pelvis", "l_hip", "l_knee", "l_ankle", "r_hip", "r_knee", "r_ankle",
        ),
    },
)

# fmt: on

SKELETONS: dict[str, Skeleton] = {s.name: s for s in (COCO17, H36M17, BODY25_15)}


def get(skeleton: Skeleton | str) -> Skeleton:
    """The skeleton object for ``skeleton`` (an object or one of the names in ``SKELETONS``)."""
    if isinstance(skeleton, Skeleton):
        return skeleton
    if isinstance(skeleton, str):
        key = skeleton.lower().replace("-", "_")
        if key in SKELETONS:
            return SKELETONS[key]
        raise ValueError(f"unknown skeleton {skeleton!r}; known: {', '.join(SKELETONS)}")
    raise TypeError(f"skeleton must be a Skeleton or a name, got {type(skeleton).__name__}")


def oks_sigmas(sigmas: Any, num_joints: int | None = None) -> np.ndarray:
    """OKS sigmas (float64) from a skeleton that defines them, its name, or values;
    ``num_joints`` checks their number."""
    if isinstance(sigmas, Skeleton | str):
        skel = get(sigmas)
        if skel.sigmas is None:
            raise ValueError(
                f"skeleton {skel.name} defines no OKS sigmas (COCO's apply to COCO-17 only); "
                "pass sigmas=[...] explicitly"
            )
        sigmas = skel.sigmas
    if num_joints is None:
        num_joints = len(np.atleast_1d(_arrays.as_numpy(sigmas)))
    return _arrays.float64(sigmas, "sigmas", (num_joints,))


def sigmas_label(sigmas: Any) -> str:
    """How a definition names the sigmas :func:`oks_sigmas` takes."""
    if isinstance(sigmas, Skeleton | str):
        return f"sigmas of {get(sigmas).name}"
    return "the given sigmas"
