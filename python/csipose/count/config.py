"""Configuration of ``csipose count train``: typed sections from TOML with dotted
overrides, the same machinery (and rules) as ``csipose train``: values are TOML
literals, unknown sections or keys and values of the wrong type are errors
naming the key, ``--print-config`` prints the resolved configuration."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from csipose.train.config import ConfigError, _apply, to_toml, update


@dataclass
class CountDataConfig:
    #: "simulate" (the built-in ESP32 counting data, simulated once into cache_dir) or
    #: "store" (``store``, e.g. from ``csipose convert jsonl``).
    source: str = "simulate"
    store: str = ""
    cache_dir: str = "runs/cache"
    #: Simulator options (source = "simulate"; profile esp32, 0..5 people).
    #: 10 rooms: the leave-rooms-out protocol's 5 training rooms, 1 validation room
    #: (early stopping, calibration) and 4 unseen rooms (csipose.data.protocol).
    environments: int = 10
    subjects: int = 6
    frames: int = 200
    sequences: int = 8
    sim_seed: int = 0
    spot_jitter: float = 0.15
    heading_jitter: float = 15.0
    #: "fixed" rooms, or "per_sequence": domain randomisation (docs/simulator.md; >= 6 rooms).
    room_draw: str = "fixed"
    #: The split and its parts. "random" splits a store without splits (e.g. paired
    #: JSONL) by window, stratified by count, with val_fraction and test_fraction.
    #: "auto": the leave-rooms-out protocol ("rooms") where the store has it, else
    #: "default"; test_parts ["auto"]: every part but train and val.
    split: str = "auto"
    train_part: str = "train"
    val_part: str = "val"
    test_parts: list[str] = field(default_factory=lambda: ["auto"])
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    #: The declared map from the store's subcarriers to CountNet's 56: "auto" (ESP32
    #: LLTF 64 -> esp32 map, 56 -> none, else an error), "esp32", "none", "linear:56".
    subcarriers: str = "auto"
    #: Training windows start every train_stride frames (0 = the store's stride);
    #: evaluation always uses the store's windows.
    train_stride: int = 5
    #: Environment-robust input features (csipose.signal_features.COUNT_FEATURES); [] = none.
    #: static_removal (each window's temporal mean removed) was the best input on the
    #: validation room (docs/generalisation.md).
    features: list[str] = field(default_factory=lambda: ["static_removal"])


@dataclass
class CountOptimConfig:
    lr: float = 1e-3
    weight_decay: float = 0.01
    clip: float = 1.0
    #: Cosine decay to lr x min_lr_ratio over train.epochs.
    min_lr_ratio: float = 0.01


@dataclass
class CountLossConfig:
    #: Loss = CE(count) + conf_weight x BCE(conf, correct) + brier_weight x Brier(conf, correct).
    conf_weight: float = 0.3
    brier_weight: float = 0.1
    label_smoothing: float = 0.0
    #: "weights" (CE weights 1 / class frequency, normalised), "sampler" (class-balanced
    #: sampling with replacement) or "none".
    balance: str = "weights"


@dataclass
class CountTrainConfig:
    run_dir: str = "runs/count"
    seed: int = 0
    epochs: int = 30
    batch_size: int = 64
    #: Stop when the best epoch (highest validation accuracy, then lowest validation NLL)
    #: has not changed for this many epochs (0 = never).
    early_stop: int = 8
    #: Wall-clock budget in minutes (0 = none, the default: the result must not depend on
    #: the machine's load), checked before every epoch.
    time_budget_min: float = 0.0
    #: Abort after this many non-finite losses (they are skipped until then).
    max_nonfinite: int = 20
    #: --resume refuses a configuration that changes the arithmetic (threads, device,
    #: batch size, ...); true continues anyway, and says so.
    allow_resume_changes: bool = False
    #: torch threads (0 = torch's default). One by default: CountNet is small enough that
    #: more threads barely help, and on a shared machine an OpenMP pool wider than the
    #: free cores slowed an epoch from 0.3 s to 30 s.
    threads: int = 1
    device: str = "cpu"
    #: Stop after this many optimiser steps in total (0 = no limit).
    max_steps: int = 0


@dataclass
class CountEvalConfig:
    #: Equal-width confidence bins of the ECE and the reliability diagram.
    bins: int = 10
    batch_size: int = 512


@dataclass
class CountConfig:
    data: CountDataConfig = field(default_factory=CountDataConfig)
    optim: CountOptimConfig = field(default_factory=CountOptimConfig)
    loss: CountLossConfig = field(default_factory=CountLossConfig)
    train: CountTrainConfig = field(default_factory=CountTrainConfig)
    eval: CountEvalConfig = field(default_factory=CountEvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_toml(self) -> str:
        return to_toml(self.to_dict())


def load(path: str | Path | None = None, overrides: list[str] | None = None) -> CountConfig:
    """The default configuration, updated by the TOML file ``path`` and then by ``overrides``."""
    cfg = update(CountConfig(), path, overrides)
    check(cfg)
    return cfg


def from_dict(data: dict[str, Any]) -> CountConfig:
    """A configuration saved with :meth:`CountConfig.to_dict` (e.g. in a checkpoint)."""
    cfg = CountConfig()
    _apply(cfg, data, "saved configuration")
    return cfg


def from_json(text: str) -> CountConfig:
    return from_dict(json.loads(text))


def check(cfg: CountConfig) -> None:
    """Values that are well typed but make no sense."""
    d, t = cfg.data, cfg.train
    if d.source not in ("simulate", "store"):
        raise ConfigError(f"data.source must be 'simulate' or 'store', got {d.source!r}")
    if d.source == "store" and not d.store:
        raise ConfigError("data.store must name a store when data.source = 'store'")
    if cfg.loss.balance not in ("weights", "sampler", "none"):
        raise ConfigError(
            f"loss.balance must be 'weights', 'sampler' or 'none', got {cfg.loss.balance!r}"
        )
    if not (d.subcarriers in ("auto", "esp32", "none") or d.subcarriers.startswith("linear:")):
        raise ConfigError(
            f"data.subcarriers must be 'auto', 'esp32', 'none' or 'linear:56', got {d.subcarriers!r}"
        )
    for key, value in (("train.epochs", t.epochs), ("train.batch_size", t.batch_size),
                       ("eval.bins", cfg.eval.bins), ("eval.batch_size", cfg.eval.batch_size)):  # fmt: skip
        if value < 1:
            raise ConfigError(f"{key} must be >= 1, got {value}")
    if d.train_stride < 0:
        raise ConfigError(f"data.train_stride must be >= 0, got {d.train_stride}")
    if not (0 < d.val_fraction < 1 and 0 <= d.test_fraction < 1 and d.val_fraction + d.test_fraction < 1):
        raise ConfigError("data.val_fraction and data.test_fraction must lie in (0, 1) and sum to < 1")
    try:
        from csipose.signal_features import COUNT_FEATURES
        from csipose.signal_features import check as check_features

        check_features(d.features, COUNT_FEATURES)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if cfg.optim.lr <= 0:
        raise ConfigError(f"optim.lr must be > 0, got {cfg.optim.lr}")
    for key, value in (("loss.conf_weight", cfg.loss.conf_weight), ("loss.brier_weight", cfg.loss.brier_weight)):
        if value < 0:
            raise ConfigError(f"{key} must be >= 0, got {value}")
    if not 0 <= cfg.loss.label_smoothing < 1:
        raise ConfigError(f"loss.label_smoothing must lie in [0, 1), got {cfg.loss.label_smoothing}")


__all__ = ["ConfigError", "CountConfig", "check", "from_dict", "from_json", "load"]
