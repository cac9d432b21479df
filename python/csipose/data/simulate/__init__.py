"""A physically based CSI simulator: the built-in dataset for training, tests and the main job.

People (H36M-17 skeletons with per-subject proportions) perform parametric
actions in box-shaped rooms; the channel between transmitter and receiver
antennas is a sum of static paths (line of sight, wall reflections,
furniture) shadowed by the body, and of paths scattered by body segments,
with the impairments of real receivers. The output is a csipose store
(and, for the MM-Fi profile, optionally the official MM-Fi tree).

    simulate("runs/data/sim-mmfi", profile="mmfi", environments=4, subjects=10)

The model, its equations, parameters and limits: docs/simulator.md.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from csipose.data import protocol
from csipose.data.repair import RepairTally
from csipose.data.simulate import channel
from csipose.data.simulate.actions import ACTIONS, perform
from csipose.data.simulate.body import Subject, forward_kinematics
from csipose.data.simulate.channel import (
    SEG_RADIUS,
    StaticPaths,
    body_paths,
    impair,
    shadowing,
    static_paths,
    synthesize,
)
from csipose.data.simulate.profiles import PROFILES, Profile
from csipose.data.simulate.randomize import draw_environment, gain
from csipose.data.simulate.room import Environment, make_environment, to_camera, to_image
from csipose.data.writer import StoreWriter
from csipose.runtime import get_num_threads

__all__ = ["ACTIONS", "PROFILES", "VERSION", "simulate", "simulate_once"]

#: Changes whenever the simulated data would change (cached datasets are keyed by it).
#: 2: the receiver impairments are drawn and applied in Rust (docs/simulator.md,
#: "Versions"); 1 had numpy's draws (``channel.NUMPY_IMPAIRMENTS`` still gives it).
VERSION = "2"

#: BODY25-15 joints taken from H36M-17 joints (nose ~ neck/nose, neck ~ thorax, mid-hip ~ pelvis).
BODY25_FROM_H36M = (9, 8, 14, 15, 16, 11, 12, 13, 0, 1, 2, 3, 4, 5, 6)


@dataclass(frozen=True)
class _Seq:
    env: int
    people: tuple[int, ...]  # subject indices within the environment
    actions: tuple[str, ...]
    name: str
    key: tuple[int, ...]  # seeds this sequence's random stream
    group: int  # subject index, or repeat index for counting scenes


def _subject_name(env: int, s: int, subjects: int) -> str:
    """MM-Fi's numbering (E01 = S01-S10, E02 = S11-S20, ...) when a room has at most 10 people."""
    return f"S{env * max(subjects, 10) + s + 1:02d}"


def _plan(
    p: Profile, environments: int, subjects: int, actions: Sequence[str], sequences: int
) -> list[_Seq]:
    out = []
    for e in range(environments):
        if p.max_people == 1:
            for s in range(subjects):
                for a, act in enumerate(actions):
                    name = f"E{e + 1:02d}/{_subject_name(e, s, subjects)}/{act}"
                    out.append(_Seq(e, (s,), (act,), name, (e, 0, s, a), s))
        else:
            for count in range(p.max_people + 1):
                for r in range(sequences):
                    rng = np.random.default_rng([e, 1, count, r])
                    people = tuple(
                        int(x) for x in rng.choice(subjects, count, replace=count > subjects)
                    )
                    acts = tuple(str(x) for x in rng.choice(list(actions), count))
                    out.append(
                        _Seq(
                            e,
                            people,
                            acts,
                            f"E{e + 1:02d}/count{count}/r{r + 1:02d}",
                            (e, 1, count, r),
                            r,
                        )
                    )
    return out


def _spots(env: Environment, n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Where ``n`` people act: the environment's spot for one person; for more,
    random places in the room at least 0.7 m apart."""
    if n <= 1:
        return [env.spot][:n]
    spots: list[np.ndarray] = []
    while len(spots) < n:
        c = rng.uniform([0.6, 0.6], env.size[:2] - 0.6)
        if all(np.linalg.norm(c - s) >= 0.7 for s in spots):
            spots.append(c)
    return spots


def _sequence(seq: _Seq, env: Environment, static: StaticPaths, subjects: list[Subject], phases: np.ndarray,
              p: Profile, frames: int, seed: int, jitter: tuple[float, float]) -> dict[str, np.ndarray]:  # fmt: skip
    rng = np.random.default_rng([seed, *seq.key])
    pk = p.packets_per_frame
    t = (
        np.arange(frames)[:, None] / p.frame_rate_hz + np.arange(pk)[None, :] / p.packet_rate_hz
    ).reshape(-1)
    m = len(seq.people)
    joints = np.zeros((frames * pk, max(m, 1), 17, 3))
    heights = np.zeros(max(m, 1))
    for i, (s, spot) in enumerate(zip(seq.people, _spots(env, m, rng), strict=True)):
        heading = env.heading if m == 1 else rng.uniform(-np.pi, np.pi)
        joints[:, i] = forward_kinematics(
            subjects[s], perform(seq.actions[i], t, rng, spot, heading, *jitter)
        )
        heights[i] = subjects[s].height
    lam = p.wavelength
    if m:
        # Only paths that pass near someone during the sequence are shadowed per frame.
        centres = joints.mean(axis=(0, 2))  # [M, 3]
        extents = np.linalg.norm(joints - centres[None, :, None], axis=-1).max(axis=(0, 2))
        near = static.near(centres, extents, lam, float(SEG_RADIUS.max() * heights.max()))
        shadow = shadowing(static.subset(near), joints[::pk], float(heights.mean()), lam)
        tau, gain = body_paths(env, joints, heights, phases[list(seq.people)], lam)
    else:
        near = np.zeros(static.length.shape[1], bool)
        shadow = np.ones((frames, len(static.length), 0))
        tau = np.zeros((frames * pk, len(static.length), 0))
        gain = np.zeros_like(tau, dtype=complex)
    h = impair(synthesize(p, static, near, shadow, tau, gain), env, p, rng)
    label = joints[::pk]  # the pose at each frame's first packet
    cam = to_camera(env, label)
    px, inside = to_image(env, cam, p.image_size)
    if m == 0:
        inside[:] = False
    out = {
        "complex": h.transpose(0, 2, 3, 1),  # [F, L, K, packets]
        "camera": cam[:, :m] if p.max_people > 1 else cam[:, 0],
        "world": label[:, :m] if p.max_people > 1 else label[:, 0],
        "pixels": px[:, :m] if p.max_people > 1 else px[:, 0],
        "inside": inside[:, :m] if p.max_people > 1 else inside[:, 0],
    }
    return out


def _labels(p: Profile) -> dict[str, Any]:
    if p.labels == "body25_15-2d":
        return {"skeleton": "body25_15", "dims": 2, "units": "px/1000", "max_people": 1,
                "coordinate_frame": f"image of a virtual {p.image_size[0]}x{p.image_size[1]} camera"}  # fmt: skip
    return {
        "skeleton": "h36m17",
        "dims": 3,
        "units": "m",
        "max_people": p.max_people,
        "coordinate_frame": "camera (x right, y down, z forward = depth), as MM-Fi's ground truth",
    }


def simulate(
    out: str | Path,
    *,
    profile: str = "mmfi",
    environments: int = 4,
    subjects: int = 10,
    actions: Sequence[str] | None = None,
    frames: int | None = None,
    sequences: int = 8,
    seed: int = 0,
    spot_jitter: float = 0.15,
    heading_jitter: float = 15.0,
    mmfi_tree: str | Path | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
    room_draw: str = "fixed",
) -> Path:
    """Simulate a dataset into a store at ``out`` (atomically) and return its path.

    * ``profile``: "mmfi", "esp32" or "wiflow" (see ``PROFILES``).
    * ``environments`` rooms, each with ``subjects`` people of its own
      (single-person profiles record every subject doing every action).
    * ``actions``: names from ``ACTIONS`` (default all 10).
    * ``frames`` per sequence (default 64 for mmfi, 200 otherwise).
    * ``sequences``: counting scenes per room and person count (esp32 profile).
    * ``spot_jitter`` (m) and ``heading_jitter`` (degrees): standard deviations of
      where a single person stands and faces in each sequence, around the room's
      spot and heading (0 and 0: everyone on the marked spot, facing the camera).
    * ``mmfi_tree``: also write the official MM-Fi layout there (mmfi profile).
    * ``room_draw``: "fixed" (every sequence of a room in that room) or
      "per_sequence" (domain randomisation: every sequence of the leave-rooms-out
      protocol's training rooms in a room of its own, drawn by
      :func:`csipose.data.simulate.randomize.draw_environment`; the validation and
      unseen rooms stay fixed rooms). Needs at least 6 rooms.

    Deterministic in ``seed``. Writes the splits ``default`` (train / val / test
    on held-out subjects of the first rooms, ``test_unseen_env`` on the last
    room), ``cross-environment`` and, with 6 or more rooms, ``rooms`` (the
    leave-rooms-out protocol, :mod:`csipose.data.protocol`).
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}")
    p = PROFILES[profile]
    acts = list(ACTIONS) if actions is None else list(actions)
    unknown = [a for a in acts if a not in ACTIONS]
    if unknown or not acts:
        raise ValueError(f"unknown actions {unknown}; known: {', '.join(ACTIONS)}")
    frames = frames or (64 if profile == "mmfi" else 200)
    if environments < 1 or subjects < 1 or frames < 1 or sequences < 1:
        raise ValueError("environments, subjects, frames and sequences must be >= 1")
    if not (spot_jitter >= 0 and heading_jitter >= 0):
        raise ValueError("spot_jitter and heading_jitter must be >= 0")
    if room_draw not in ("fixed", "per_sequence"):
        raise ValueError(f"room_draw must be 'fixed' or 'per_sequence', got {room_draw!r}")
    roles = protocol.room_roles(environments) if room_draw == "per_sequence" else []
    if mmfi_tree is not None and (
        profile != "mmfi" or environments > 4 or subjects > 10 or len(acts) > 27 or frames > 999
    ):
        raise ValueError(
            "the MM-Fi tree needs profile mmfi, <= 4 environments, <= 10 subjects, <= 999 frames"
        )
    envs = [make_environment(p, e, seed) for e in range(environments)]
    statics = [
        static_paths(env, p, np.random.default_rng([seed, 2000 + e])) for e, env in enumerate(envs)
    ]
    people = [
        [
            Subject.random(
                f"S{e * subjects + s + 1:02d}", np.random.default_rng([seed, 3000 + e, s])
            )
            for s in range(subjects)
        ]
        for e in range(environments)
    ]
    phases = [
        np.random.default_rng([seed, 4000 + e]).uniform(0, 2 * np.pi, (subjects, 16))
        for e in range(environments)
    ]
    plan = _plan(p, environments, subjects, acts, sequences)
    csi = {
        "layout": ["frame", "antenna", "subcarrier", "packet"],
        "antennas": {"n_tx": p.n_tx, "n_rx": p.n_rx, "order": "tx-major"},
        "subcarrier_indices": list(p.subcarriers),
        "null_subcarriers": list(p.null_subcarriers),
        "packets_per_frame": p.packets_per_frame,
        "units": {"amplitude": "linear |H| (simulated; free-space scale times receiver gain)", "phase": "rad, wrapped"},
        "hardware_profile": {"name": f"sim-{p.name}", "description": p.description, "carrier_hz": p.carrier_hz,
                             "spacing_hz": p.spacing_hz, "frame_rate_hz": p.frame_rate_hz, **p.hardware},
    }  # fmt: skip
    provenance = {
        "converter": "simulate",
        "source": f"csipose.data.simulate version {'1' if channel.NUMPY_IMPAIRMENTS else VERSION} "
                  "(docs/simulator.md)",
        "options": {"profile": profile, "environments": environments, "subjects": subjects, "actions": acts,
                    "frames": frames, "sequences": sequences, "seed": seed, "spot_jitter_m": spot_jitter,
                    "heading_jitter_deg": heading_jitter, **({"room_draw": room_draw} if roles else {})},
        "environments": [e.describe() for e in envs],
        "subjects": [s.to_dict() for grp in people for s in grp],
    }  # fmt: skip
    show = sys.stderr.isatty() if progress is None else progress
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm comes with the data extra
        show = False
    items = tqdm(plan, desc=f"simulate {profile}", unit="seq", disable=not show) if show else plan
    tree = Path(mmfi_tree) if mmfi_tree is not None else None
    tally = RepairTally()
    with StoreWriter(out, csi=csi, labels=_labels(p), default_window=p.default_window,
                     provenance=provenance, overwrite=overwrite) as w:  # fmt: skip
        drawn: list[dict[str, Any]] = []

        def start(
            seq: _Seq,
        ) -> tuple[_Seq, Environment, float, Callable[[], dict[str, np.ndarray]]]:
            env, static, amp_gain = envs[seq.env], statics[seq.env], 1.0
            if roles and roles[seq.env] == "train":
                # Domain randomisation: this sequence's own room, keyed by the sequence.
                rng = np.random.default_rng([seed, 5000, *seq.key])
                env = draw_environment(p, f"{env.name}-r{len(drawn) + 1:04d}", rng)
                static = static_paths(env, p, rng)
                amp_gain = gain(rng)
                drawn.append(_summary(env, amp_gain))
                w.provenance["drawn_rooms"] = drawn
            args = (seq, env, static, people[seq.env], phases[seq.env], p, frames, seed,
                    (spot_jitter, heading_jitter))  # fmt: skip
            if pool is None:
                r = _sequence(*args)
                return seq, env, amp_gain, lambda: r
            return seq, env, amp_gain, pool.submit(_sequence, *args).result

        def write(seq: _Seq, env: Environment, amp_gain: float, r: dict[str, np.ndarray]) -> None:
            if tree is not None:
                _write_mmfi(tree, seq, acts, r)
            h = r["complex"]
            if amp_gain != 1.0:  # real and imaginary parts apart: an infinite value stays (inf, 0)
                h.real *= np.float32(amp_gain)
                h.imag *= np.float32(amp_gain)
            amp, phase, valid = tally.add(np.abs(h), np.angle(h))
            w.repair = tally.to_dict()
            kp, vis, extra = _keypoints(p, r)
            w.add_frames(
                amplitude=amp,
                phase=phase,
                keypoints=kp,
                visibility=vis,
                sequence=w.code("sequence", seq.name),
                frame_index=np.arange(frames),
                environment=w.code("environment", env.name),
                subject=w.code(
                    "subject", "+".join(people[seq.env][s].name for s in seq.people) or "none"
                ),
                action=w.code("action", "+".join(seq.actions) or "empty"),
                person_count=len(seq.people),
                valid=valid,
                extra=extra,
            )

        # With n > 1 threads, n sequences are simulated at once (each on its own
        # random stream) while the one before is written: the Python between the
        # Rust kernels (impairments, body paths, writes) no longer holds the cores
        # in turn. Writes keep plan order, so the bytes do not depend on the
        # threads (tests/test_simulate_speed.py).
        threads = 1 if channel.PER_PACKET else get_num_threads()  # the old path: one at a time
        pool = ThreadPoolExecutor(threads) if threads > 1 else None
        try:
            jobs = (start(seq) for seq in items)
            ahead = deque(islice(jobs, max(threads, 1)))
            while ahead:
                seq, env, amp_gain, result = ahead.popleft()
                ahead.extend(islice(jobs, 1))  # submitted before this one is awaited and written
                write(seq, env, amp_gain, result())
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
        _splits(w, plan, environments, subjects if p.max_people == 1 else sequences,
                people_val=p.max_people == 1)  # fmt: skip
    return Path(out)


def _summary(env: Environment, amp_gain: float) -> dict[str, Any]:
    """A drawn room in a few numbers (its diffuse points would swell the manifest)."""
    return {"name": env.name, "size_m": env.size.round(2).tolist(),
            "wall_reflectivity": env.reflectivity.round(2).tolist(),
            "scatterers": len(env.furniture), "tx_centre": env.tx.mean(0).round(2).tolist(),
            "rx_centre": env.rx.mean(0).round(2).tolist(), "spot": env.spot.round(2).tolist(),
            "snr_db": round(env.snr_db, 1), "gain": round(amp_gain, 3)}  # fmt: skip


def _keypoints(
    p: Profile, r: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    if p.labels == "body25_15-2d":
        px = r["pixels"][:, BODY25_FROM_H36M] / 1000.0
        return (
            px.astype(np.float32),
            r["inside"][:, BODY25_FROM_H36M],
            {"keypoints_3d": r["camera"].astype(np.float32)},
        )
    cam, inside = r["camera"], r["inside"]
    if p.max_people > 1:
        f, m = cam.shape[:2]
        kp = np.zeros((f, p.max_people, 17, 3), np.float32)
        vis = np.zeros((f, p.max_people, 17), bool)
        kp[:, :m], vis[:, :m] = cam, inside
        return kp, vis, {}
    w, h = p.image_size
    norm = r["pixels"] / np.array([w, h])
    return (
        cam.astype(np.float32),
        inside,
        {
            "keypoints_2d": norm.astype(np.float32),
            "keypoints_world": r["world"].astype(np.float32),
        },
    )


def _splits(w: StoreWriter, plan: list[_Seq], environments: int, groups: int,
            people_val: bool = False) -> None:  # fmt: skip
    """``default``: held-out groups (subjects, or counting repeats) in the first rooms and
    the whole last room; ``cross-environment``: first rooms against the last; ``rooms``
    (with ``val_people`` for pose stores, ``people_val``)."""
    codes = {s.name: w.code("sequence", s.name) for s in plan}
    seen = environments - 1 if environments > 1 else 1
    parts: dict[str, list[int]] = {"train": [], "val": [], "test": [], "test_unseen_env": []}
    for s in plan:
        if s.env >= seen:
            parts["test_unseen_env"].append(codes[s.name])
        elif groups >= 3 and s.group == groups - 2:
            parts["val"].append(codes[s.name])
        elif groups >= 2 and s.group == groups - 1:
            parts["test"].append(codes[s.name])
        else:
            parts["train"].append(codes[s.name])
    w.add_split(
        "default",
        parts,
        definition=(
            f"train: rooms 1..{seen} without the last two subjects (or counting repeats) of each; "
            "val: the second-to-last, test: the last of each of those rooms; "
            f"test_unseen_env: every sequence of room {environments} (empty with one room)"
        ),
    )
    if environments >= protocol.UNSEEN_ROOMS + protocol.VAL_ROOMS + 1:
        masks = protocol.parts(np.array([s.env for s in plan]), np.array([s.group for s in plan]),
                               environments, groups, people_val=people_val)  # fmt: skip
        w.add_split(
            protocol.NAME,
            {
                k: [codes[s.name] for s, keep in zip(plan, m, strict=True) if keep]
                for k, m in masks.items()
            },
            definition=protocol.definition(environments, people_val=people_val),
        )
    if environments > 1:
        w.add_split(
            "cross-environment",
            {
                "train": [codes[s.name] for s in plan if s.env < seen],
                "test": parts["test_unseen_env"],
            },
            definition=f"train: rooms 1..{seen}; test: room {environments}",
        )


def _write_mmfi(root: Path, seq: _Seq, actions: list[str], r: dict[str, np.ndarray]) -> None:
    """The sequence as MM-Fi releases it: E0e/Sxx/Ayy/wifi-csi/frameNNN.mat (CSIamp,
    CSIphase (3, 114, 10), raw with their NaN/Inf) and ground_truth.npy (F, 17, 3)."""
    import scipy.io

    env, subj, act = seq.name.split("/")
    d = root / env / subj / f"A{actions.index(act) + 1:02d}"
    (d / "wifi-csi").mkdir(parents=True, exist_ok=True)
    np.save(d / "ground_truth.npy", r["camera"].astype(np.float64))
    for i, hf in enumerate(r["complex"]):
        scipy.io.savemat(
            d / "wifi-csi" / f"frame{i + 1:03d}.mat",
            {"CSIamp": np.abs(hf).astype(np.float64), "CSIphase": np.angle(hf).astype(np.float64)},
        )


def simulate_once(out: str | Path, what: str, **options: Any) -> Path:
    """The store at ``out``, simulated with ``options`` unless a complete one is
    already there (a cache: ``out`` must name the options, and :data:`VERSION`)."""
    out = Path(out)
    if not (out / "manifest.json").exists():
        t0 = time.time()
        print(f"simulating {what} once into {out} ...", flush=True)
        simulate(out, overwrite=True, **options)
        print(f"simulated in {time.time() - t0:.0f} s", flush=True)
    return out
