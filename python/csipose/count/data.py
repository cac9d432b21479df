"""The data of a counting run: the store (simulated ESP32 counting scenes, cached,
or a given store such as one from the paired-JSONL converter), the declared
subcarrier map to CountNet's 56, windows of 20 frames, count labels, the
split, and the z-score statistics of the training part.

CountNet's input is ``[56 subcarriers, 20 frames]`` of raw amplitude after the
subcarrier map (one antenna, one packet per frame); the z-score is applied
inside the model, from statistics stored in the checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from csipose import signal_features as sf
from csipose.count.config import ConfigError, CountConfig
from csipose.data import CsiTransform, Store, protocol
from csipose.data import simulate as sim
from csipose.runtime.countnet import CLASSES as N_CLASSES  # one home, torch-free
from csipose.runtime.countnet import FRAMES as N_FRAMES
from csipose.runtime.countnet import SUBCARRIERS as N_SUBCARRIERS
from csipose.signal import ESP32_NULL, SUBCARRIERS, SubcarrierMap, index_map, linear_map


def esp32_map(table: str = "esp32-lltf") -> SubcarrierMap:
    """ESP32 LLTF (64 entries in ``table``'s buffer order, nulls included) -> 56:
    the 52 non-null subcarriers (-26..-1, 1..26) linearly interpolated, in
    subcarrier-index units, onto 56 points evenly spaced over [-26, 26] (aligned
    ends; DC is bridged between -1 and 1). Null subcarriers get weight 0."""
    idx = SUBCARRIERS[table]
    null = set(ESP32_NULL)
    keep = [i for i, s in enumerate(idx) if s not in null]
    inner = index_map([idx[i] for i in keep], np.linspace(-26.0, 26.0, N_SUBCARRIERS))
    w = np.zeros((N_SUBCARRIERS, len(idx)))
    w[:, keep] = inner.dense()
    return SubcarrierMap.from_dense(
        w,
        f"ESP32 LLTF ({table} buffer order, 64 entries) -> 56: the 52 non-null subcarriers "
        "-26..-1, 1..26 linearly interpolated in subcarrier-index units onto 56 points evenly "
        "spaced over [-26, 26] (aligned ends; DC bridged between -1 and 1)",
        kind="esp32",
        table=table,
    )


def subcarrier_map(spec: str, manifest: dict[str, Any], where: Path) -> SubcarrierMap | None:
    """The declared map from the store's subcarriers to 56 (None: already 56)."""
    s = manifest["arrays"]["amplitude"]["shape"][2]
    indices = list(manifest.get("csi", {}).get("subcarrier_indices") or [])
    esp32 = [t for t in ("esp32-lltf", "esp32-lltf-ht40") if indices == SUBCARRIERS[t]]
    if spec in ("auto", "esp32") and not esp32 and (manifest.get("csi", {}).get("capture") or {}).get("segments"):
        from csipose.count.capture import capture_map  # an ESP32 capture store: its declared layout

        return capture_map(manifest)
    if spec == "auto":
        if esp32:
            return esp32_map(esp32[0])
        if s == N_SUBCARRIERS:
            return None
        raise ConfigError(
            f"{where}: {s} subcarriers that are not ESP32 LLTF; declare the map to 56 with "
            "data.subcarriers = 'linear:56' (or 'esp32' for 64 ESP32 entries in buffer order)"
        )
    if spec == "esp32":
        if s != 64:
            raise ConfigError(f"data.subcarriers = 'esp32' needs 64 subcarriers; {where} has {s}")
        return esp32_map(esp32[0] if esp32 else "esp32-lltf")
    if spec == "none":
        if s != N_SUBCARRIERS:
            raise ConfigError(
                f"data.subcarriers = 'none' needs {N_SUBCARRIERS} subcarriers; {where} has {s}"
            )
        return None
    kind, _, n = spec.partition(":")
    if kind != "linear" or n != str(N_SUBCARRIERS):
        raise ConfigError(f"data.subcarriers: CountNet takes 56 subcarriers, got {spec!r}")
    return linear_map(s, N_SUBCARRIERS)


def dataset_path(cfg: CountConfig) -> Path:
    """The store to train on; the built-in ESP32 counting data is simulated once into
    ``data.cache_dir`` (keyed by the simulator's VERSION and its options)."""
    d = cfg.data
    if d.source == "store":
        return Path(d.store)
    name = (f"sim{sim.VERSION}-esp32-count-e{d.environments}-s{d.subjects}-q{d.sequences}"
            f"-f{d.frames}-j{d.spot_jitter:g}-{d.heading_jitter:g}-seed{d.sim_seed}")  # fmt: skip
    if d.room_draw != "fixed":
        name += f"-{d.room_draw}"
    return sim.simulate_once(Path(d.cache_dir) / name, "the ESP32 counting data", profile="esp32",
                             environments=d.environments, subjects=d.subjects, frames=d.frames,
                             sequences=d.sequences, seed=d.sim_seed, spot_jitter=d.spot_jitter,
                             heading_jitter=d.heading_jitter, room_draw=d.room_draw)  # fmt: skip


@dataclass
class CountData:
    """Windows and labels of every part, and what a checkpoint must record about them."""

    store: Store  # evaluation windows (the store's stride)
    train_store: Store  # training windows (data.train_stride)
    parts: dict[str, np.ndarray]  # part -> window indices of ``store``
    train_windows: np.ndarray  # window indices of ``train_store``
    subcarriers: SubcarrierMap | None
    mean: np.ndarray  # [56] float64
    std: np.ndarray  # [56] float64, the divisor (population std + eps)
    zscore_source: str
    dropped_unlabelled: int
    #: Environment-robust input features (csipose.signal_features.COUNT_FEATURES).
    features: list[str] = field(default_factory=list)
    #: capture_norm: each room's (mean, std) over its own windows' amplitude (no labels).
    room_stats: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def windows(self, part: str) -> tuple[np.ndarray, np.ndarray]:
        """(windows [n, 56, 20] float32, counts [n] int64) of ``part``."""
        return self.featurise(self.store, self.parts[part], *gather(self.store, self.parts[part]))

    def train_set(self) -> tuple[np.ndarray, np.ndarray]:
        """The training windows (``data.train_stride``) and their counts."""
        x, y = gather(self.train_store, self.train_windows)
        return self.featurise(self.train_store, self.train_windows, x, y)

    def featurise(self, store: Store, idx: np.ndarray, x: np.ndarray,
                  y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """``x`` with the configured features (unchanged when there are none)."""
        if "static_removal" in self.features:
            x = sf.static_removal_np(x)
        if "capture_norm" in self.features:
            rooms = store.gather(np.asarray(idx, np.int64), fields=["environment"])["environment"]
            x = x.copy()
            for r in np.unique(rooms):
                if int(r) not in self.room_stats:
                    raise ValueError(f"{store.path}: room code {int(r)} has no capture statistics "
                                     "(no evaluation window of that room)")  # fmt: skip
                x[rooms == r] = sf.capture_norm(x[rooms == r], *self.room_stats[int(r)])
        return x, y

    def metadata(self) -> dict[str, Any]:
        return {
            "store": str(Path(self.store.path).resolve()),
            "window": self.store.window.to_dict(),
            "train_window": self.train_store.window.to_dict(),
            "subcarriers": None if self.subcarriers is None else self.subcarriers.to_dict(),
            "subcarrier_definition": "none (the store has 56 subcarriers)"
            if self.subcarriers is None
            else self.subcarriers.definition,
            "zscore_source": self.zscore_source,
            "features": list(self.features),
        }


def gather(store: Store, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Windows [n, 56, 20] (subcarrier-major) and their counts at the labelling frame."""
    b = store.gather(np.asarray(idx, np.int64), fields=["amplitude", "person_count"])
    x = np.ascontiguousarray(b["amplitude"][:, :, 0, :, 0].transpose(0, 2, 1))
    return x, b["person_count"].astype(np.int64)


def _window(store: Store, stride: int) -> dict[str, Any]:
    default = store.manifest["default_window"]
    same = default.get("length") == N_FRAMES
    return {"length": N_FRAMES, "stride": stride or (default.get("stride", N_FRAMES) if same else N_FRAMES),
            "label": default.get("label", "last")}  # fmt: skip


def _random_split(labels: np.ndarray, cfg: CountConfig) -> dict[str, np.ndarray]:
    """Per count, a seeded shuffle cut into test, val and train windows."""
    d = cfg.data
    rng = np.random.default_rng([cfg.train.seed, 7])
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        n_test, n_val = round(len(idx) * d.test_fraction), round(len(idx) * d.val_fraction)
        parts["test"].append(idx[:n_test])
        parts["val"].append(idx[n_test : n_test + n_val])
        parts["train"].append(idx[n_test + n_val :])
    return {k: np.sort(np.concatenate(v)).astype(np.int64) for k, v in parts.items()}


def prepare(cfg: CountConfig, path: Path) -> CountData:
    """Open the store with CountNet's windows and the declared subcarrier map, split it,
    and compute the training part's z-score statistics."""
    d = cfg.data
    base = Store.open(path)
    shape = base.manifest["arrays"]["amplitude"]["shape"]
    if shape[1] != 1 or shape[3] != 1:
        raise ConfigError(
            f"{path}: CountNet takes one antenna and one packet per frame; the store has "
            f"{shape[1]} antennas x {shape[3]} packets"
        )
    m = subcarrier_map(d.subcarriers, base.manifest, path)
    transform = {"amplitude": CsiTransform(subcarriers=m)}
    store = base.with_options(window=_window(base, 0), transform=transform)
    labels = store.gather(np.arange(len(store)), fields=["person_count"])["person_count"]
    if len(labels) and labels.max() >= N_CLASSES:
        raise ConfigError(f"{path}: counts up to {labels.max()}; CountNet counts 0..{N_CLASSES - 1}")
    known = labels >= 0
    # "auto" defaults: the leave-rooms-out protocol where the store has it (written back for
    # the checkpoint and the evaluation).
    d.split = protocol.resolve_split(d.split, store.manifest.get("splits") or {})
    if d.split == "random":
        d.val_part, d.test_parts = protocol.resolve_parts(
            d.val_part, d.test_parts, ["train", "val", "test"]
        )
        parts = {k: np.flatnonzero(known)[v] for k, v in _random_split(labels[known], cfg).items()}
        train_store = store  # overlapping training windows would leak into val / test
        train_windows = parts[d.train_part] if d.train_part in parts else np.zeros(0, np.int64)
    else:
        splits = store.manifest.get("splits") or {}
        if d.split not in splits:
            raise ConfigError(
                f"data.split: the store has no split {d.split!r} (it has "
                f"{', '.join(splits) or 'none'}; 'random' splits by window)"
            )
        parts = {k: v[known[v]] for k, v in store.split(d.split).items()}
        d.val_part, d.test_parts = protocol.resolve_parts(d.val_part, d.test_parts, list(parts))
        train_store = base.with_options(window=_window(base, d.train_stride), transform=transform)
        t_parts = train_store.split(d.split)
        tl = train_store.gather(np.arange(len(train_store)), fields=["person_count"])["person_count"]
        train_windows = t_parts.get(d.train_part, np.zeros(0, np.int64))
        train_windows = train_windows[tl[train_windows] >= 0]
    for part in (d.train_part, d.val_part, *d.test_parts):
        if part not in parts:
            raise ConfigError(f"split {d.split!r} has no part {part!r} (it has {', '.join(parts)})")
    for part in (d.train_part, d.val_part):
        if len(parts[part]) == 0:
            raise ConfigError(f"split {d.split!r}: the part {part!r} has no labelled window")
    source = f"split {d.split}, part {d.train_part} of {path}"
    z = store.zscore(windows=parts[d.train_part], source=source)
    if d.features:
        return _with_features(
            cfg, store, train_store, parts, train_windows, m, source, int((~known).sum())
        )
    return CountData(
        store=store,
        train_store=train_store,
        parts=parts,
        train_windows=train_windows,
        subcarriers=m,
        mean=np.asarray(z.mean, np.float64).reshape(-1),
        std=np.asarray(z.scale, np.float64).reshape(-1),
        zscore_source=z.source,
        dropped_unlabelled=int((~known).sum()),
    )


def _with_features(cfg: CountConfig, store: Store, train_store: Store, parts: dict[str, np.ndarray],
                   train_windows: np.ndarray, m: SubcarrierMap | None, source: str,
                   dropped: int) -> CountData:  # fmt: skip
    """CountData whose windows carry ``data.features``; the in-model z-score statistics
    are those of the featurised training windows."""
    data = CountData(store=store, train_store=train_store, parts=parts, train_windows=train_windows,
                     subcarriers=m, mean=np.zeros(N_SUBCARRIERS), std=np.ones(N_SUBCARRIERS),
                     zscore_source="", dropped_unlabelled=dropped, features=list(cfg.data.features))  # fmt: skip
    if "capture_norm" in data.features:
        # Each room's statistics from all of its windows' amplitude (its unlabelled CSI).
        every = np.arange(len(store), dtype=np.int64)
        x, _ = gather(store, every)
        if "static_removal" in data.features:
            x = sf.static_removal_np(x)
        rooms = store.gather(every, fields=["environment"])["environment"]
        data.room_stats = {int(r): sf.capture_stats(x[rooms == r]) for r in np.unique(rooms)}
    x, _ = data.featurise(
        store, parts[cfg.data.train_part], *gather(store, parts[cfg.data.train_part])
    )
    data.mean, data.std = sf.capture_stats(x)
    data.zscore_source = f"{source}, after data.features {data.features}"
    return data


__all__ = ["CountData", "dataset_path", "esp32_map", "gather", "prepare", "subcarrier_map"]
