"""People: H36M-17 skeletons with per-subject body proportions, posed by
joint angles through forward kinematics.

World frame: z up, the floor at z = 0. A pose is the pelvis position on the
floor plane, a heading (yaw), a forward torso bend, and per side (right, left)
hip flexion and abduction, knee flexion, shoulder flexion and abduction and
elbow flexion, all in radians. Joint order is H36M-17 (``csipose.skeleton.H36M17``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

#: Segment lengths as fractions of body height (after Drillis and Contini).
PROPORTIONS = {
    "hip_half_width": 0.055,
    "thigh": 0.245,
    "shank": 0.246,
    "ankle_height": 0.039,
    "pelvis_spine": 0.10,
    "spine_thorax": 0.14,
    "thorax_neck": 0.075,
    "neck_head": 0.065,
    "shoulder_half_width": 0.11,
    "shoulder_drop": 0.02,
    "upper_arm": 0.186,
    "forearm": 0.146,
}
#: Segment groups that vary together between subjects.
_GROUPS = {
    "legs": ("thigh", "shank"),
    "trunk": ("pelvis_spine", "spine_thorax", "thorax_neck", "neck_head"),
    "arms": ("upper_arm", "forearm"),
    "width": ("hip_half_width", "shoulder_half_width"),
}


@dataclass(frozen=True)
class Subject:
    """A person: height and segment lengths in metres."""

    name: str
    height: float
    hip_half_width: float
    thigh: float
    shank: float
    ankle_height: float
    pelvis_spine: float
    spine_thorax: float
    thorax_neck: float
    neck_head: float
    shoulder_half_width: float
    shoulder_drop: float
    upper_arm: float
    forearm: float

    @classmethod
    def random(cls, name: str, rng: np.random.Generator) -> Subject:
        """Height U(1.55, 1.95) m; each segment group scaled by N(1, 0.04) (widths N(1, 0.06))."""
        height = float(rng.uniform(1.55, 1.95))
        scale = {k: 1.0 for k in PROPORTIONS}
        for group, names in _GROUPS.items():
            f = rng.normal(1.0, 0.06 if group == "width" else 0.04)
            for k in names:
                scale[k] = float(np.clip(f, 0.85, 1.15))
        return cls(name, height, **{k: v * height * scale[k] for k, v in PROPORTIONS.items()})

    def to_dict(self) -> dict[str, float | str]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class Pose:
    """Joint angles over N time steps (arrays of length N; per-side arrays [N, 2] as (right, left))."""

    position: np.ndarray  # [N, 2] pelvis x, y on the floor plane
    yaw: np.ndarray  # [N] heading, radians from +x
    bend: np.ndarray  # [N] forward torso bend
    hip_flex: np.ndarray  # [N, 2]
    hip_abd: np.ndarray  # [N, 2]
    knee: np.ndarray  # [N, 2]
    shoulder_flex: np.ndarray  # [N, 2]
    shoulder_abd: np.ndarray  # [N, 2]
    elbow: np.ndarray  # [N, 2]
    lift: np.ndarray  # [N] extra height of the feet over the floor (jumps)

    @classmethod
    def neutral(cls, n: int) -> Pose:
        z1, z2 = np.zeros(n), np.zeros((n, 2))
        return cls(np.zeros((n, 2)), z1.copy(), z1.copy(), z2.copy(), z2.copy(), z2.copy(),
                   z2.copy(), np.full((n, 2), 0.12), np.full((n, 2), 0.2), z1.copy())  # fmt: skip


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def _perp(v: np.ndarray, toward: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Unit vector perpendicular to unit ``v``, in the plane of ``v`` and ``toward``."""
    p = toward - np.sum(toward * v, axis=-1, keepdims=True) * v
    bad = np.linalg.norm(p, axis=-1, keepdims=True) < 1e-6
    q = fallback - np.sum(fallback * v, axis=-1, keepdims=True) * v
    return _unit(np.where(bad, q, p))


def _rotate(v: np.ndarray, axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rotate ``v`` about unit ``axis`` by ``angle`` (Rodrigues); a positive knee
    angle about the body's left axis swings the shank backwards."""
    c, s = np.cos(angle), np.sin(angle)
    return v * c + np.cross(axis, v) * s + axis * np.sum(axis * v, axis=-1, keepdims=True) * (1 - c)


def forward_kinematics(s: Subject, pose: Pose) -> np.ndarray:
    """World joint positions [N, 17, 3] (H36M-17), feet resting on the floor
    (the lower ankle at ankle height, plus ``pose.lift``)."""
    n = len(pose.yaw)
    up = np.broadcast_to([0.0, 0.0, 1.0], (n, 3))
    fwd = np.stack([np.cos(pose.yaw), np.sin(pose.yaw), np.zeros(n)], axis=-1)
    left = np.stack([-np.sin(pose.yaw), np.cos(pose.yaw), np.zeros(n)], axis=-1)
    cb, sb = np.cos(pose.bend)[:, None], np.sin(pose.bend)[:, None]
    trunk = cb * up + sb * fwd  # pelvis -> head direction
    trunk_fwd = cb * fwd - sb * up
    j = np.zeros((n, 17, 3))
    pelvis = np.zeros((n, 3))
    j[:, 0] = pelvis
    j[:, 7] = pelvis + s.pelvis_spine * trunk
    j[:, 8] = j[:, 7] + s.spine_thorax * trunk
    j[:, 9] = j[:, 8] + s.thorax_neck * trunk + 0.035 * s.height * trunk_fwd
    j[:, 10] = j[:, 9] + s.neck_head * trunk - 0.02 * s.height * trunk_fwd
    # (joint indices per side: hip, knee, ankle, shoulder, elbow, wrist; side +1 = left)
    for side, (hip, knee, ankle, sho, elb, wri), sign in (
        (0, (1, 2, 3, 14, 15, 16), -1.0),
        (1, (4, 5, 6, 11, 12, 13), 1.0),
    ):
        out = sign * left
        # Leg: flexion swings the thigh forward, abduction outward; the knee bends the shank back.
        hf, ha, kn = (
            pose.hip_flex[:, side, None],
            pose.hip_abd[:, side, None],
            pose.knee[:, side, None],
        )
        thigh = _unit(
            -np.cos(ha) * np.cos(hf) * up + np.sin(hf) * np.cos(ha) * fwd + np.sin(ha) * out
        )
        shank = _rotate(thigh, left, kn)
        j[:, hip] = pelvis + s.hip_half_width * out
        j[:, knee] = j[:, hip] + s.thigh * thigh
        j[:, ankle] = j[:, knee] + s.shank * shank
        # Arm: flexion raises the arm forward, abduction sideways (past horizontal: overhead).
        sf, sa, el = (
            pose.shoulder_flex[:, side, None],
            pose.shoulder_abd[:, side, None],
            pose.elbow[:, side, None],
        )
        upper = _unit(
            -np.cos(sa) * np.cos(sf) * trunk
            + np.sin(sf) * np.cos(sa) * trunk_fwd
            + np.sin(sa) * out
        )
        fore = np.cos(el) * upper + np.sin(el) * _perp(upper, trunk_fwd, trunk)
        j[:, sho] = j[:, 8] + s.shoulder_half_width * out - s.shoulder_drop * trunk
        j[:, elb] = j[:, sho] + s.upper_arm * upper
        j[:, wri] = j[:, elb] + s.forearm * fore
    lowest = np.minimum(j[:, 3, 2], j[:, 6, 2])
    j[:, :, 2] += (s.ankle_height + pose.lift - lowest)[:, None]
    j[:, :, :2] += pose.position[:, None, :]
    return j


#: The H36M-17 bones that scatter and shadow, with a radius (as a fraction of
#: height), a diffuse (rough-surface) radar cross-section (m^2 for a 1.75 m
#: person; the specular part follows from the geometry) and a blocking
#: strength for the shadowing model.
SEGMENTS = (
    # (a, b, radius/height, rcs m^2, blocking)
    (0, 7, 0.085, 0.030, 0.75),  # lower trunk
    (7, 8, 0.085, 0.030, 0.75),  # upper trunk
    (8, 9, 0.03, 0.003, 0.30),  # neck
    (9, 10, 0.055, 0.008, 0.55),  # head
    (0, 1, 0.05, 0.005, 0.40),  # right pelvis
    (1, 2, 0.045, 0.010, 0.55),  # right thigh
    (2, 3, 0.03, 0.005, 0.40),  # right shank
    (0, 4, 0.05, 0.005, 0.40),  # left pelvis
    (4, 5, 0.045, 0.010, 0.55),  # left thigh
    (5, 6, 0.03, 0.005, 0.40),  # left shank
    (8, 14, 0.035, 0.004, 0.35),  # right shoulder girdle
    (14, 15, 0.025, 0.005, 0.35),  # right upper arm
    (15, 16, 0.02, 0.003, 0.30),  # right forearm
    (8, 11, 0.035, 0.004, 0.35),  # left shoulder girdle
    (11, 12, 0.025, 0.005, 0.35),  # left upper arm
    (12, 13, 0.02, 0.003, 0.30),  # left forearm
)
