"""Pose inference in Rust: ``csipose.PoseNet`` (no torch needed).

    net = csipose.PoseNet.load("runs/wiflow")        # run, checkpoint dir or model.safetensors
    b = store.gather(idx, fields=["amplitude"])      # raw windows [B, L, A, S, P]
    keypoints = net.predict(b["amplitude"])          # [B, K, D] in the data's units

A checkpoint of ``csipose train`` is the whole deployable artifact: its
metadata says which model it is (``model``, ``config``: name and options) and
how its inputs were made (``data``: the store's window length, the load-time
transform with its z-score statistics, amplitude or amplitude+phase, the mean
pose and target scale). :meth:`PoseNet.predict` applies that preprocessing with
the store's own Rust transform code (per-frame min-max, subcarrier map, z-score),
adds the antennas' relative phase (cos, sin) when the model reads phase, lays
windows out as ``csipose.models.to_channels_time`` does, runs the model and
returns ``output * target_scale + mean_pose``: what ``csipose.train.loop.predict``
returns with torch. Weights are memory-mapped and every tensor checked;
problems are :class:`csipose.CheckpointError` naming the tensor and the file.
Inference releases the GIL and runs on ``csipose.set_num_threads`` threads.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from csipose import _arrays, _native
from csipose.checkpoint import model_file
from csipose.errors import CheckpointError
from csipose.runtime.countnet import read_metadata

FORMAT = "csipose-pose-checkpoint"
# Defaults the trainer applies when config.model.options leaves them out:
# csipose.train.loop.build_model turns WiFlow-STD's output SiLU off, and
# WiFlowSTDConfig.min_feature_width is 15 (tests/test_posenet.py checks both
# against the torch side). Every other structural choice is in the tensor shapes.
OUTPUT_ACTIVATION = False
MIN_FEATURE_WIDTH = 15


def _json(meta: dict[str, str], key: str, file: Path) -> Any:
    try:
        return json.loads(meta[key])
    except KeyError:
        raise CheckpointError(
            f"{file}: the metadata has no {key!r} (not a csipose pose checkpoint)"
        ) from None
    except ValueError as e:
        raise CheckpointError(f"{file}: metadata {key!r} is not JSON: {e}") from None


def load_args(file: Path) -> dict[str, Any]:
    """The keyword arguments of ``_native.PoseNet.load`` from a checkpoint's metadata."""
    meta = read_metadata(file)
    if meta.get("format") != FORMAT:
        raise CheckpointError(
            f"{file}: format {meta.get('format')!r}, expected {FORMAT!r} (a `csipose train` checkpoint)"
        )
    cfg = _json(meta, "config", file)
    data = _json(meta, "data", file)
    try:
        name = cfg["model"]["name"]
        options = dict(cfg["model"].get("options") or {})
        mean_pose = np.asarray(data["mean_pose"], np.float32)
        window = int(data["time_steps"])
        frames = int(data["window"]["length"])
        tf = data["transform"]
        target_scale = float(data["target_scale"])
        phase = data["inputs"] == "amplitude+phase"
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{file}: incomplete metadata ({type(e).__name__}: {e})") from None
    if mean_pose.ndim != 2:
        raise CheckpointError(
            f"{file}: metadata data.mean_pose must be [K, D], got shape {list(mean_pose.shape)}"
        )
    features = (cfg.get("data") or {}).get("features") or []
    if features:  # the runtime computes the plain input only: it would predict from the wrong one
        raise CheckpointError(
            f"{file}: trained with data.features {features}, which the Rust runtime does not "
            "compute; evaluate it with `csipose eval`, or export it and feed the ONNX model "
            "csipose.signal_features' input"
        )
    if name == "wiflow-mmfi":
        kind = "wiflow-mmfi"
    elif name in ("wiflow-full", "wiflow-half", "wiflow-quarter", "wiflow-tiny"):
        kind = "wiflow"
    else:
        raise CheckpointError(f"{file}: model {name!r} has no Rust runtime")
    args: dict[str, Any] = dict(
        kind=kind, window=window, keypoints=mean_pose.shape[0], dims=mean_pose.shape[1],
        output_activation=bool(options.get("output_activation", OUTPUT_ACTIVATION)),
        min_feature_width=int(options.get("min_feature_width", MIN_FEATURE_WIDTH)),
        frames=frames, phase=phase, mean_pose=np.ascontiguousarray(mean_pose.reshape(-1)),
        target_scale=target_scale, minmax=bool(tf.get("minmax", False)),
    )  # fmt: skip
    m = tf.get("subcarriers")
    if m is not None:
        args["map"] = (np.asarray(m["start"], np.uint32), np.asarray(m["index"], np.uint32),
                       np.asarray(m["weight"], np.float64), int(m["n_src"]))  # fmt: skip
    z = tf.get("zscore")
    if z is not None:
        mean = np.asarray(z["mean"], np.float64).reshape(-1)
        scale = np.asarray(z["std"], np.float64).reshape(-1) + float(z["eps"])
        args["zscore"] = (mean, scale)
    return args


class PoseNet:
    """A pose checkpoint loaded into the Rust runtime. Use :meth:`load`."""

    def __init__(self, native: _native.PoseNet, metadata: dict[str, str]):
        self._net = native
        self._meta = metadata

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PoseNet:
        """Load a run directory (its best checkpoint), a checkpoint directory or a
        ``model.safetensors`` written by ``csipose train``."""
        file = model_file(path)
        meta = read_metadata(file)
        if "temporal" in meta:  # model.temporal = "sparse": frame model + attention block
            from csipose.runtime.temporal import TemporalPoseNet

            return TemporalPoseNet.from_file(file, meta)
        return cls(_native.PoseNet.load(file, **load_args(file)), meta)

    @property
    def path(self) -> Path:
        return Path(self._net.path)

    @property
    def parameters(self) -> int:
        return self._net.parameters

    @property
    def input_shape(self) -> tuple[int, int]:
        """The model's input (channels, time steps)."""
        return self._net.input_shape

    @property
    def output_shape(self) -> tuple[int, int]:
        """(keypoints, dims) of each prediction."""
        return self._net.output_shape

    def metadata(self) -> dict[str, str]:
        return dict(self._meta)

    @property
    def data(self) -> dict[str, Any]:
        """The checkpoint's data description (skeleton, units, inputs, ...)."""
        return json.loads(self._meta["data"])

    def predict(self, amplitude: Any, phase: Any = None) -> np.ndarray:
        """Keypoints [B, K, D] in the data's units from raw store windows
        ``amplitude`` (and ``phase`` for amplitude+phase checkpoints), each
        ``[B, frames, antennas, subcarriers, packets]`` as ``Store.gather``
        returns them, or one window without the batch axis."""
        a = _window(amplitude, "amplitude", self._window_shape)
        p = None if phase is None else _window(phase, "phase", self._window_shape)
        if a.ndim == 4:
            a = a[None]
            p = None if p is None else p[None]
        if a.ndim != 5:
            raise ValueError(
                f"amplitude must be [batch, frames, antennas, subcarriers, packets] (or one window "
                f"without the batch axis); got shape {list(a.shape)}"
            )
        return self._net.predict(a, p)

    def forward(self, x: Any) -> np.ndarray:
        """The model alone: inputs [B, C, T] -> outputs [B, K, D] in standardised
        units (before ``* target_scale + mean_pose``), as torch's module."""
        x = _arrays.as_numpy(x)
        if x.ndim != 3 or tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(
                f"x must be [batch, {self.input_shape[0]}, {self.input_shape[1]}], got {list(x.shape)}"
            )
        return self._net.forward(_window(x, "x"))

    def _window_shape(self, shape: tuple[int, ...]) -> str:
        """Why ``shape`` cannot be a window (``""`` if it may be), checked before any copy."""
        frames, steps = int(self.data["window"]["length"]), self.input_shape[1]
        if len(shape) not in (4, 5):
            return "must be [batch, frames, antennas, subcarriers, packets] (or one window without the batch axis)"
        if shape[-4] != frames or shape[-1] * frames != steps:
            return f"must hold {frames} frames x {steps // max(frames, 1)} packets per window"
        return ""

    def __repr__(self) -> str:
        return repr(self._net)


def _window(x: Any, name: str, why: Any = None) -> np.ndarray:
    a = _arrays.as_numpy(x)
    if a.dtype.kind not in "fiu":
        raise TypeError(f"{name} must hold real numbers, got dtype {a.dtype}")
    if why is not None and (problem := why(a.shape)):
        raise ValueError(f"{name} {problem}; got shape {list(a.shape)}")
    return np.ascontiguousarray(a, dtype=np.float32)


__all__ = ["FORMAT", "PoseNet", "load_args"]
