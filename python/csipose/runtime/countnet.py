"""CountNet inference in Rust (candle, CPU): ``csipose.CountNet``.

    net = csipose.CountNet.load("runs/count/checkpoints/best")   # or the model.safetensors
    pred = net.predict(windows)        # windows [B, 56, 20] (or one [56, 20])
    pred.probabilities  # [B, 8] float32, calibrated
    pred.counts         # [B] int64, the most probable count (first maximum); -1 if the
                        # window holds NaN or inf (its probabilities and confidence are NaN)
    pred.confidences    # [B] float32, calibrated P(the count is right)

No torch needed. The checkpoint's ``model.safetensors`` is memory-mapped and
every tensor checked (names, F32, shapes, finite values, positive
temperatures and std); anything wrong is a :class:`csipose.CheckpointError`
naming the tensor and the file. The z-score and the temperatures stored in
the file are applied exactly as ``csipose.models.CountNet.predict`` applies
them (tested to 1e-5 on the probabilities). Inference releases the GIL.
Windows are the raw amplitude ``[56 subcarriers, 20 frames]`` after the
subcarrier map the checkpoint declares (metadata ``input``; for ESP32 data
``csipose.count.data.esp32_map``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from csipose import _arrays, _native
from csipose.checkpoint import model_file
from csipose.errors import CheckpointError

# The one home of CountNet's fixed shapes (torch-free; the torch model, the
# counting data pipeline and its metrics import them from here).
SUBCARRIERS = 56
FRAMES = 20
CLASSES = 8


class CountPrediction(NamedTuple):
    probabilities: np.ndarray  # [B, 8] float32
    counts: np.ndarray  # [B] int64
    confidences: np.ndarray  # [B] float32


def tensor_contract() -> tuple[list[tuple[str, list[int]]], list[tuple[str, list[int]]]]:
    """(name, shape) of the weight tensors and of the preprocessing/calibration tensors."""
    return _native.countnet_tensors()


class CountNet:
    """A CountNet checkpoint loaded into the Rust runtime. Use :meth:`load`."""

    def __init__(self, native: _native.CountNet):
        self._net = native

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> CountNet:
        """Load a ``model.safetensors``, a checkpoint directory or a run directory."""
        return cls(_native.CountNet.load(model_file(path)))

    @property
    def path(self) -> Path:
        return Path(self._net.path)

    @property
    def parameters(self) -> int:
        return self._net.parameters

    @property
    def temperature(self) -> float:
        return self._net.temperature

    @property
    def confidence_temperature(self) -> float:
        return self._net.confidence_temperature

    @property
    def extra_tensors(self) -> list[str]:
        return self._net.extra_tensors

    def metadata(self) -> dict[str, str]:
        """The string metadata in the safetensors header (empty if none)."""
        return read_metadata(self.path)

    def predict(self, windows: Any) -> CountPrediction:
        """Probabilities [B, 8], counts [B] and confidences [B] of windows [B, 56, 20]
        (a single [56, 20] window is taken as B = 1). Any real dtype is converted to float32."""
        x = _arrays.as_numpy(windows)
        if x.dtype.kind not in "fiu":
            raise TypeError(f"windows must hold real numbers, got dtype {x.dtype}")
        if x.ndim == 2:
            x = x[None]
        if x.ndim != 3 or x.shape[1:] != (SUBCARRIERS, FRAMES):
            raise ValueError(
                f"CountNet takes windows [batch, {SUBCARRIERS} subcarriers, {FRAMES} frames] "
                f"(or one [{SUBCARRIERS}, {FRAMES}] window); got shape {list(x.shape)}"
            )
        x = np.ascontiguousarray(x, dtype=np.float32)
        return CountPrediction(*self._net.predict(x))

    def __repr__(self) -> str:
        return repr(self._net)


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors header, read without loading tensors."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if n > 100_000_000:
                raise ValueError(f"header of {n} bytes")
            header = json.loads(f.read(n))
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{p}: cannot read the safetensors header: {e}") from None
    meta = header.get("__metadata__") or {}
    return {str(k): str(v) for k, v in meta.items()}


__all__ = ["CLASSES", "FRAMES", "SUBCARRIERS", "CountNet", "CountPrediction", "read_metadata",
           "tensor_contract"]  # fmt: skip
