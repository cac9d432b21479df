"""The data of a training run: the store (simulated once into a cache, or
given), its split, load-time transforms with statistics from the training
part, and the normalisation of targets."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from csipose import signal, skeleton
from csipose.data import CsiTransform, Store, ZScore, protocol
from csipose.data import simulate as sim
from csipose.signal_features import RoomStats, extra_channels, room_stats
from csipose.train.config import Config, ConfigError


@dataclass
class PoseData:
    """Everything the model and the metrics need to know about the data."""

    store: Store
    parts: dict[str, np.ndarray]
    skeleton: skeleton.Skeleton
    units: str
    #: "amplitude" or "amplitude+phase" (DataConfig.inputs).
    inputs: str
    in_channels: int
    time_steps: int
    #: The training part's mean pose [K, D], in the data's units (the baseline).
    mean_pose: np.ndarray
    #: Targets are trained as (y - mean_pose) / target_scale, the scale being the RMS
    #: deviation from the mean pose (one scale for every axis, so bones keep their
    #: proportions); a zero output is the mean-pose baseline.
    target_scale: float
    #: Environment-robust input features (DataConfig.features, csipose.signal_features).
    features: list[str] = field(default_factory=list)

    @cached_property
    def rooms(self) -> RoomStats | None:
        """``capture_norm``: each room's amplitude statistics over all of its windows in
        this store (its unlabelled CSI; computed once, on first use); else None."""
        return room_stats(self.store) if "capture_norm" in self.features else None

    @property
    def keypoints(self) -> int:
        return self.skeleton.num_joints

    @property
    def dims(self) -> int:
        return int(self.mean_pose.shape[1])

    def metadata(self) -> dict[str, Any]:
        """What a checkpoint must carry to use the model on new data."""
        return {
            "skeleton": self.skeleton.name,
            "units": self.units,
            "inputs": self.inputs,
            "in_channels": self.in_channels,
            "time_steps": self.time_steps,
            "window": self.store.window.to_dict(),
            "transform": self.store.transform["amplitude"].to_dict(),
            "target_scale": self.target_scale,
            "mean_pose": self.mean_pose.tolist(),
            "store": str(Path(self.store.path).resolve()),
        }


def dataset_path(cfg: Config, is_main: bool = True, wait: Any = None) -> Path:
    """The store to train on; the built-in dataset is simulated once into ``cache_dir``."""
    d = cfg.data
    if d.source == "store":
        return Path(d.store)
    name = (f"sim{sim.VERSION}-{d.profile}-e{d.environments}-s{d.subjects}-f{d.frames}"
            f"-j{d.spot_jitter:g}-{d.heading_jitter:g}-seed{d.sim_seed}")  # fmt: skip
    if d.room_draw != "fixed":
        name += f"-{d.room_draw}"
    path = Path(d.cache_dir) / name
    if is_main:
        sim.simulate_once(path, f"the {d.profile} dataset", profile=d.profile,
                          environments=d.environments, subjects=d.subjects, frames=d.frames,
                          seed=d.sim_seed, spot_jitter=d.spot_jitter, heading_jitter=d.heading_jitter,
                          room_draw=d.room_draw)  # fmt: skip
    if wait is not None:
        wait()  # other processes wait until the main one has written it
    return path


def _subcarrier_map(spec: str, n_src: int) -> signal.SubcarrierMap | None:
    if not spec:
        return None
    kind, _, n = spec.partition(":")
    if kind not in ("linear", "gaussian") or not n.isdigit():
        raise ConfigError(f"data.subcarriers must be '', 'linear:N' or 'gaussian:N', got {spec!r}")
    return (signal.linear_map if kind == "linear" else signal.gaussian_map)(n_src, int(n))


def prepare(cfg: Config, path: Path) -> PoseData:
    """Open the store with the configured windows and transforms."""
    d = cfg.data
    base = Store.open(path)
    labels = base.manifest.get("labels") or {}
    if not labels.get("skeleton"):
        raise ConfigError(f"{path}: the store has no pose labels (labels.skeleton)")
    skel = skeleton.get(labels["skeleton"])
    if labels.get("max_people", 1) != 1:
        raise ConfigError(
            f"{path}: pose training needs single-person labels, the store has up to {labels['max_people']}"
        )
    window = {
        k: v
        for k, v in (
            ("length", d.window_length),
            ("stride", d.window_stride),
            ("label", d.window_label),
        )
        if v
    }
    s = base.manifest["arrays"]["amplitude"]["shape"][2]
    transform = CsiTransform(minmax=d.minmax, subcarriers=_subcarrier_map(d.subcarriers, s))
    store = base.with_options(
        window={**base.window.to_dict(), **window}, transform={"amplitude": transform}
    )
    splits = store.manifest.get("splits") or {}
    # "auto" defaults: the leave-rooms-out protocol where the store has it; written back so
    # that the checkpoint, the evaluation and a resume see the resolved names.
    d.split = protocol.resolve_split(d.split, splits)
    if d.split not in splits:
        raise ConfigError(
            f"data.split: the store has no split {d.split!r} (it has {', '.join(splits) or 'none'})"
        )
    parts = store.split(d.split)
    d.val_part, d.test_parts = protocol.resolve_parts(d.val_part, d.test_parts, list(parts))
    for part in (d.train_part, d.val_part, *d.test_parts):
        if part not in parts:
            raise ConfigError(f"split {d.split!r} has no part {part!r} (it has {', '.join(parts)})")
    train = parts[d.train_part]
    if len(train) == 0:
        raise ConfigError(f"split {d.split!r}: the part {d.train_part!r} is empty")
    if d.zscore:
        z = store.zscore(windows=train, source=f"split {d.split}, part {d.train_part}")
        transform = CsiTransform(
            minmax=transform.minmax, subcarriers=transform.subcarriers, zscore=z
        )
        store = store.with_options(transform={"amplitude": transform})
    kp = store.gather(train, fields=["keypoints", "visibility"])
    y, vis = kp["keypoints"].astype(np.float64), kp["visibility"]
    if store.window.label == "all":
        y, vis = y.reshape(-1, *y.shape[2:]), vis.reshape(-1, vis.shape[-1])
    w = vis[..., None].astype(np.float64)
    mean_pose = (y * w).sum(axis=0) / np.maximum(w.sum(axis=0), 1)
    spread = float(np.sqrt((((y - mean_pose) ** 2) * w).sum() / max(w.sum() * y.shape[-1], 1)))
    _, a, _, p = store.manifest["arrays"]["amplitude"]["shape"]
    channels = a * transform.out_subcarriers(s)
    if d.inputs == "amplitude+phase":
        if "phase" not in store.fields or a < 2:
            have = "no phase" if "phase" not in store.fields else f"{a} antenna"
            raise ConfigError(
                f"data.inputs = 'amplitude+phase' needs CSI phase from 2 or more antennas; {path} has {have}"
            )
        if d.subcarriers:
            raise ConfigError(
                "data.subcarriers maps the amplitude only; use data.inputs = 'amplitude' with it"
            )
        channels += 2 * (a - 1) * s
    channels += extra_channels(d.features, a, transform.out_subcarriers(s))
    return PoseData(
        store=store,
        parts=parts,
        skeleton=skel,
        units=labels.get("units", ""),
        inputs=d.inputs,
        in_channels=channels,
        time_steps=store.window.length * p,
        mean_pose=mean_pose,
        target_scale=spread or 1.0,
        features=list(d.features),
    )


def from_metadata(meta: dict[str, str]) -> dict[str, Any]:
    """The data description stored in a checkpoint's metadata."""
    data = json.loads(meta["data"])
    data["transform"] = CsiTransform.from_dict(data["transform"])
    data["mean_pose"] = np.asarray(data["mean_pose"])
    return data


__all__ = ["PoseData", "ZScore", "dataset_path", "from_metadata", "prepare"]
