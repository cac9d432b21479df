"""Actions: parametric joint-angle motions over time.

Each action maps times (seconds) and a random style (speed, amplitude,
phase, spot and heading jitter) to a :class:`~csipose.data.simulate.body.Pose`.
Angles are in radians; motions are periodic with a per-sequence period.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from csipose.data.simulate.body import Pose

D = np.pi / 180


def _wave(t: np.ndarray, period: float, phase: float) -> np.ndarray:
    """0..1..0 over one period (raised cosine)."""
    return 0.5 - 0.5 * np.cos(2 * np.pi * t / period + phase)


def _both(x: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
    return np.stack([x, x if y is None else y], axis=-1)


def walk(t, r, amp, period, phase):
    p = Pose.neutral(len(t))
    g = 2 * np.pi * t / (period * 0.18) + phase  # gait cycle ~1 s
    p.hip_flex = _both(amp * 25 * D * np.sin(g), amp * 25 * D * np.sin(g + np.pi))
    p.knee = _both(amp * 35 * D * np.clip(np.sin(g + 1.2), 0, None) + 5 * D,
                   amp * 35 * D * np.clip(np.sin(g + np.pi + 1.2), 0, None) + 5 * D)  # fmt: skip
    p.shoulder_flex = _both(amp * 20 * D * np.sin(g + np.pi), amp * 20 * D * np.sin(g))
    p.elbow = _both(np.full(len(t), 25 * D))
    # Back and forth along the heading, 0.7 m each way.
    p.position[:, 0] = 0.7 * amp * np.sin(2 * np.pi * t / period + phase)
    p.yaw += np.where(np.cos(2 * np.pi * t / period + phase) >= 0, 0.0, np.pi)
    return p


def arm_raise(t, r, amp, period, phase):
    p = Pose.neutral(len(t))
    p.shoulder_abd = _both(0.12 + amp * 160 * D * _wave(t, period, phase))
    p.elbow = _both(np.full(len(t), 10 * D))
    return p


def squat(t, r, amp, period, phase):
    p = Pose.neutral(len(t))
    w = amp * _wave(t, period, phase)
    p.knee = _both(110 * D * w)
    p.hip_flex = _both(95 * D * w)
    p.bend = 35 * D * w
    p.shoulder_flex = _both(80 * D * w)
    return p


def sit(t, r, amp, period, phase):
    p = Pose.neutral(len(t))
    # Down, hold, up, hold: a trapezoid.
    x = (t / period + phase / (2 * np.pi)) % 1.0
    w = np.clip(np.minimum(x * 4, (1 - x) * 4), 0, 1) * amp
    p.knee = _both(90 * D * w)
    p.hip_flex = _both(90 * D * w)
    p.bend = 15 * D * w
    p.elbow = _both(25 * D + 40 * D * w)
    return p


def wave(t, r, amp, period, phase):
    p = Pose.neutral(len(t))
    p.shoulder_abd = _both(np.full(len(t), 150 * D * amp), np.full(len(t), 0.12))
    p.elbow = _both(
        45 * D + amp * 35 * D * np.sin(2 * np.pi * t / (period * 0.25) + phase),
        np.full(len(t), 0.2),
    )
    return p


def jump(t, r, amp, period, phase):
    p = Pose.neutral(len(t))
    x = (t / (period * 0.3) + phase / (2 * np.pi)) % 1.0
    air = np.clip(np.sin(np.pi * (x - 0.3) / 0.7), 0, None) * (x > 0.3)
    crouch = _wave(np.minimum(x, 0.3), 0.3, 0) * (x <= 0.3)
    p.lift = 0.3 * amp * air
    p.knee = _both(60 * D * crouch + 10 * D)
    p.hip_flex = _both(45 * D * crouch)
    p.shoulder_flex = _both(-30 * D * crouch + 60 * D * air)
    return p


def kick(t, r, amp, period, phase):
    p = Pose.neutral(len(t))
    w = amp * _wave(t, period * 0.5, phase) ** 2
    p.hip_flex[:, 0] = 80 * D * w
    p.knee[:, 0] = 40 * D * (1 - w)
    p.shoulder_abd = _both(0.12 + 30 * D * w)
    return p


def turn(t, r, amp, period, phase):
    p = Pose.neutral(len(t))
    p.yaw = 2 * np.pi * t / period + phase
    p.shoulder_abd = _both(np.full(len(t), 30 * D * amp))
    return p


def bend(t, r, amp, period, phase):
    p = Pose.neutral(len(t))
    w = amp * _wave(t, period, phase)
    p.bend = 80 * D * w
    p.hip_flex = _both(10 * D * w)
    p.shoulder_flex = _both(80 * D * w)
    return p


def punch(t, r, amp, period, phase):
    p = Pose.neutral(len(t))
    g = 2 * np.pi * t / (period * 0.25) + phase
    right, left = np.clip(np.sin(g), 0, None), np.clip(np.sin(g + np.pi), 0, None)
    p.shoulder_flex = _both(30 * D + 60 * D * amp * right, 30 * D + 60 * D * amp * left)
    p.elbow = _both(110 * D * (1 - right), 110 * D * (1 - left))
    return p


#: Action name -> (motion, typical period in seconds).
ACTIONS: dict[str, tuple[Callable[..., Pose], float]] = {
    "walk": (walk, 6.0),
    "arm_raise": (arm_raise, 3.5),
    "squat": (squat, 3.0),
    "sit": (sit, 6.0),
    "wave": (wave, 3.0),
    "jump": (jump, 4.0),
    "kick": (kick, 3.0),
    "turn": (turn, 6.0),
    "bend": (bend, 4.0),
    "punch": (punch, 3.0),
}


def perform(
    action: str,
    t: np.ndarray,
    rng: np.random.Generator,
    spot: np.ndarray,
    heading: float,
    spot_jitter: float = 0.15,
    heading_jitter: float = 15.0,
) -> Pose:
    """``action`` at times ``t`` around floor position ``spot`` facing ``heading``,
    with a random style: period x U(0.85, 1.15), amplitude x U(0.8, 1.1),
    random phase, spot jitter N(0, ``spot_jitter`` m) and heading jitter
    N(0, ``heading_jitter`` deg)."""
    motion, base = ACTIONS[action]
    period = base * rng.uniform(0.85, 1.15)
    pose = motion(t, rng, rng.uniform(0.8, 1.1), period, rng.uniform(0, 2 * np.pi))
    yaw0 = heading + rng.normal(0, heading_jitter * D)
    c, s = np.cos(yaw0), np.sin(yaw0)
    # Motions move along the body's own heading; rotate them into the room.
    x, y = pose.position[:, 0].copy(), pose.position[:, 1].copy()
    pose.position[:, 0] = c * x - s * y
    pose.position[:, 1] = s * x + c * y
    pose.position += spot + rng.normal(0, spot_jitter, 2)
    pose.yaw = pose.yaw + yaw0
    return pose
