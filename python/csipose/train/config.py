"""Training configuration: typed sections loaded from TOML with dotted overrides.

    csipose train [CONFIG.toml] [section.key=value ...]

Values of overrides are TOML literals (``optim.lr=3e-4``,
``eval.thresholds=[0.1,0.2]``, ``data.source="store"``; a bare word is taken
as a string). Unknown sections or keys are errors, and so are values of the
wrong type. ``--print-config`` prints the resolved configuration as TOML.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A configuration file or override is wrong; the message names the key."""


@dataclass
class DataConfig:
    #: "simulate" (the built-in dataset, generated once into cache_dir) or "store" (``store``).
    source: str = "simulate"
    store: str = ""
    cache_dir: str = "runs/cache"
    #: Simulator options (source = "simulate").
    profile: str = "mmfi"
    #: 10 rooms: the leave-rooms-out protocol's 5 training rooms, 1 validation room and 4
    #: unseen rooms (csipose.data.protocol); 12 people each keep the training part at the
    #: size of the former 4 rooms x 20 people (3 training rooms x 18).
    environments: int = 10
    subjects: int = 12
    frames: int = 32
    sim_seed: int = 0
    #: Where each person stands (m) and faces (degrees) varies by these standard deviations
    #: per sequence; 0 and 0: everyone acts on the room's marked spot, facing the camera.
    spot_jitter: float = 0.0
    heading_jitter: float = 0.0
    #: "fixed" rooms, or "per_sequence": every training sequence in a drawn room of its own
    #: (domain randomisation, docs/simulator.md; needs environments >= 6).
    room_draw: str = "fixed"
    #: The split and its parts. "auto": the leave-rooms-out protocol ("rooms") where the
    #: store has it, else "default"; val_part "auto": the held-out people of the training
    #: rooms ("val_people") where the split has them, else "val"; test_parts ["auto"]:
    #: every other part (rooms: the validation room, the in-room test, the unseen rooms).
    split: str = "auto"
    train_part: str = "train"
    val_part: str = "auto"
    test_parts: list[str] = field(default_factory=lambda: ["auto"])
    #: Windows (0 = the store's default).
    window_length: int = 0
    window_stride: int = 0
    window_label: str = ""
    #: Load-time transforms of the amplitude: per-frame min-max, a subcarrier map
    #: ("" none, "linear:N", "gaussian:N"), z-score from the training part.
    minmax: bool = True
    subcarriers: str = ""
    zscore: bool = True
    #: Model input: "amplitude", or "amplitude+phase" (adds cos and sin of each antenna's
    #: phase relative to antenna 0, csipose.models.antenna_phase_features).
    inputs: str = "amplitude+phase"
    #: Environment-robust input features (csipose.signal_features.POSE_FEATURES); [] = none.
    features: list[str] = field(default_factory=list)
    workers: int = 0


@dataclass
class ModelConfig:
    name: str = "wiflow-quarter"
    dropout: float = 0.1
    #: Further fields of the model's config, e.g. {groups_mode = "gcd"}. WiFlow-STD is built
    #: with output_activation = false unless set here: targets are standardised (zero is
    #: the mean pose), which the published final SiLU (outputs >= -0.28) cannot reach.
    options: dict[str, Any] = field(default_factory=dict)
    #: "none" (one window -> one pose) or "sparse": the frame model followed by a causal
    #: sparse-attention block over ``sequence`` consecutive windows of one sequence
    #: (csipose.models.temporal, docs/models.md).
    temporal: str = "none"
    #: The temporal block: dim, q_heads, kv_heads, head_dim and the attention pattern's
    #: window, block, landmarks, globals, log_stride (csipose.nn.SparsePattern; causal).
    temporal_options: dict[str, Any] = field(default_factory=dict)
    #: Windows per training sequence of the temporal model (the simulator's 32 frames).
    sequence: int = 32


@dataclass
class OptimConfig:
    lr: float = 2e-3
    weight_decay: float = 5e-5
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    #: "plateau" (ReduceLROnPlateau on validation MPJPE) or "cosine".
    scheduler: str = "cosine"
    plateau_factor: float = 0.5
    plateau_patience: int = 3
    plateau_cooldown: int = 1
    min_lr_ratio: float = 1e-3
    clip: float = 1.0


@dataclass
class TrainConfig:
    run_dir: str = "runs/default"
    seed: int = 0
    epochs: int = 16
    batch_size: int = 64
    #: Stop when validation MPJPE has not improved for this many epochs (0 = never).
    early_stop: int = 6
    #: Wall-clock budget in minutes (0 = none, the default: a run's result must not
    #: depend on the machine's load); training stops after the epoch that crosses it.
    time_budget_min: float = 0.0
    #: Abort after this many non-finite losses (they are skipped until then).
    max_nonfinite: int = 20
    device: str = "cpu"
    threads: int = 0
    #: Stop after this many optimiser steps in total (0 = no limit).
    max_steps: int = 0
    #: CUDA only: "bf16" runs the forward pass and loss under bfloat16 autocast; "none" on CPU.
    amp: str = "none"
    #: Wrap the model in torch.compile (the first epoch is slower; numbers may differ in the last bits).
    compile: bool = False
    #: Train with batch_size x batch_scale and optim.lr x batch_scale (the linear scaling
    #: rule, for a larger device); 1 = as configured.
    batch_scale: int = 1
    #: --resume refuses a configuration that changes the arithmetic (threads, device,
    #: amp, batch size, ...); true continues anyway, and says so.
    allow_resume_changes: bool = False


@dataclass
class EvalConfig:
    thresholds: list[float] = field(default_factory=lambda: [0.1, 0.2, 0.3, 0.4, 0.5])
    batch_size: int = 256


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_toml(self) -> str:
        return to_toml(self.to_dict())

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


def _check_type(value: Any, hint: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a table such as {{name = value}}, got {value!r}")
        return value
    if origin is list:
        (inner,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        return [_check_type(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is bool and not isinstance(value, bool):
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    if hint is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{key} must be an integer, got {value!r}")
    if hint in (float, str) and not isinstance(value, hint):
        raise ConfigError(f"{key} must be a {hint.__name__}, got {value!r}")
    return value


def _apply(cfg: Any, data: dict[str, Any], where: str) -> None:
    sections = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
    for name, values in data.items():
        if name not in sections:
            raise ConfigError(
                f"{where}: unknown section {name!r} (sections: {', '.join(sections)})"
            )
        if not isinstance(values, dict):
            raise ConfigError(f"{where}: [{name}] must be a table")
        section = sections[name]
        hints = typing.get_type_hints(type(section))
        for key, value in values.items():
            if key not in hints:
                known = ", ".join(f.name for f in dataclasses.fields(section))
                raise ConfigError(f"{where}: unknown key {name}.{key} (known: {known})")
            setattr(section, key, _check_type(value, hints[key], f"{where}: {name}.{key}"))


def _literal(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # a bare word is a string


def load(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """The default configuration, updated by the TOML file ``path`` and then by ``overrides``."""
    cfg = update(Config(), path, overrides)
    check(cfg)
    return cfg


def update(cfg: Any, path: str | Path | None, overrides: list[str] | None) -> Any:
    """``cfg`` (a dataclass of section dataclasses) updated in place by the TOML file
    ``path`` and then by ``section.key=value`` overrides; the shared reader of
    ``csipose train`` and ``csipose count train``."""
    if path is not None:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{p}: no such configuration file") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{p}: not valid TOML: {e}") from None
        _apply(cfg, data, str(p))
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep or "." not in key:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        section, _, name = key.partition(".")
        _apply(cfg, {section.strip(): {name.strip(): _literal(value.strip())}}, "override")
    return cfg


def check(cfg: Config) -> None:
    """Values that are well typed but make no sense."""
    if cfg.data.source not in ("simulate", "store"):
        raise ConfigError(f"data.source must be 'simulate' or 'store', got {cfg.data.source!r}")
    if cfg.data.source == "store" and not cfg.data.store:
        raise ConfigError("data.store must name a store when data.source = 'store'")
    if cfg.data.inputs not in ("amplitude", "amplitude+phase"):
        raise ConfigError(
            f"data.inputs must be 'amplitude' or 'amplitude+phase', got {cfg.data.inputs!r}"
        )
    try:
        from csipose.signal_features import POSE_FEATURES
        from csipose.signal_features import check as check_features

        check_features(cfg.data.features, POSE_FEATURES)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if "conj_product" in cfg.data.features and cfg.data.inputs != "amplitude+phase":
        raise ConfigError("data.features 'conj_product' needs data.inputs = 'amplitude+phase'")
    if cfg.optim.scheduler not in ("plateau", "cosine"):
        raise ConfigError(
            f"optim.scheduler must be 'plateau' or 'cosine', got {cfg.optim.scheduler!r}"
        )
    if cfg.train.amp not in ("none", "bf16"):
        raise ConfigError(f"train.amp must be 'none' or 'bf16', got {cfg.train.amp!r}")
    for key, value in (
        ("train.epochs", cfg.train.epochs),
        ("train.batch_size", cfg.train.batch_size),
        ("train.batch_scale", cfg.train.batch_scale),
    ):
        if value < 1:
            raise ConfigError(f"{key} must be >= 1, got {value}")
    if cfg.optim.lr <= 0:
        raise ConfigError(f"optim.lr must be > 0, got {cfg.optim.lr}")
    check_temporal(cfg.model)


#: model.temporal_options keys: integers >= 1, integers >= 0, booleans. ``horizon``
#: left out means no horizon (TOML has no null); set, it bounds a stream's cache.
TEMPORAL_POSITIVE = ("dim", "q_heads", "kv_heads", "head_dim")
TEMPORAL_COUNTS = ("window", "block", "horizon")
TEMPORAL_FLAGS = ("landmarks", "log_stride", "causal")


def check_temporal(m: ModelConfig) -> None:
    """model.temporal, model.sequence and model.temporal_options, each error naming its key."""
    if m.temporal not in ("none", "sparse"):
        raise ConfigError(f"model.temporal must be 'none' or 'sparse', got {m.temporal!r}")
    if m.sequence < 1:
        raise ConfigError(f"model.sequence must be >= 1, got {m.sequence}")
    known = (*TEMPORAL_POSITIVE, *TEMPORAL_COUNTS, *TEMPORAL_FLAGS, "globals")
    for key, v in m.temporal_options.items():
        name = f"model.temporal_options.{key}"
        if key not in known:
            raise ConfigError(f"unknown key {name} (known: {', '.join(known)})")
        is_int = isinstance(v, int) and not isinstance(v, bool)
        if key in TEMPORAL_POSITIVE and not (is_int and v >= 1):
            raise ConfigError(f"{name} must be an integer >= 1, got {v!r}")
        if key in TEMPORAL_COUNTS and not (is_int and v >= 0):
            raise ConfigError(f"{name} must be an integer >= 0, got {v!r}")
        if key in TEMPORAL_FLAGS and not isinstance(v, bool):
            raise ConfigError(f"{name} must be true or false, got {v!r}")
        if key == "globals" and not (
            isinstance(v, list)
            and all(isinstance(g, int) and not isinstance(g, bool) and g >= 0 for g in v)
        ):
            raise ConfigError(f"{name} must be a list of integers >= 0, got {v!r}")
    o = m.temporal_options
    if o.get("causal") is False:
        raise ConfigError(
            "model.temporal_options.causal must be true: the temporal model predicts each window "
            "from it and the windows before it, so that it can stream"
        )
    if o.get("q_heads", 4) % o.get("kv_heads", 1):
        raise ConfigError(
            f"model.temporal_options.q_heads ({o.get('q_heads', 4)}) must be a multiple of "
            f"model.temporal_options.kv_heads ({o.get('kv_heads', 1)})"
        )
    if o.get("landmarks", True) and o.get("block", 16) == 0:
        raise ConfigError("model.temporal_options.block must be >= 1 when landmarks are on")


def from_dict(data: dict[str, Any]) -> Config:
    """A configuration saved with :meth:`Config.to_dict` (e.g. in a checkpoint)."""
    cfg = Config()
    _apply(cfg, data, "saved configuration")
    return cfg


def to_toml(d: dict[str, Any]) -> str:
    """A two-level dict of scalars and lists as TOML."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + "}"
        return repr(v)

    lines = []
    for section, values in d.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {value(v)}" for k, v in values.items()]
        lines.append("")
    return "\n".join(lines)
