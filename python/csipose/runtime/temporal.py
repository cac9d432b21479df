"""Temporal pose inference in Rust: a ``model.temporal = "sparse"`` checkpoint.

    net = csipose.PoseNet.load("runs/temporal")      # the same call as single-frame runs
    poses = net.predict(amplitude)                   # [B, T, frames, A, S, P] -> [B, T, K, D]
    state = net.stream(batch=1)
    pose = state.step(window)                        # [B, frames, A, S, P] -> [B, K, D]

The frame model (tensors ``frame.*``) runs in ``_native.PoseNet``; the
attention block (``embed``, ``norm1``, ``attn.*``, ``norm2``, ``mlp.*``,
``head``) in ``_native.TemporalHead`` over the frame model's standardised
outputs f; the sum ``f + head(h)`` is de-standardised once, at the end, as
:func:`csipose.train.temporal.predict` does. Sequences run causally from
their first window; a stream's ``step`` returns exactly the sequence's row t
(the Rust stream and the full pass share their row arithmetic).

``predict`` and ``step`` start from raw windows, and the frame runtime
returns de-standardised poses, so f is recovered as ``(pose - mean) / scale``
(a float32 rounding, far below the 1e-4 parity the tests hold);
``forward`` and ``state.forward`` start from model inputs and use f directly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from csipose import _arrays, _native
from csipose.errors import CheckpointError
from csipose.runtime.posenet import PoseNet, _window, load_args


def temporal_options(meta: dict[str, str], file: Path) -> dict[str, Any]:
    """The ``_native.TemporalHead.load`` keywords from the metadata's ``temporal``."""
    try:
        o = json.loads(meta["temporal"])
        p = dict(o["pattern"])
        args: dict[str, Any] = {k: int(o[k]) for k in ("dim", "q_heads", "kv_heads", "head_dim")}
        args.update(
            window=int(p["window"]), block=int(p["block"]), landmarks=bool(p["landmarks"]),
            globals=[int(g) for g in p["globals"]], log_stride=bool(p["log_stride"]),
            causal=bool(p["causal"]), horizon=None if p.get("horizon") is None else int(p["horizon"]),
        )  # fmt: skip
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(
            f"{file}: incomplete metadata 'temporal' ({type(e).__name__}: {e})"
        ) from None
    return args


class TemporalPoseNet(PoseNet):
    """A temporal pose checkpoint in the Rust runtime. Use :meth:`PoseNet.load`."""

    def __init__(
        self, native: _native.PoseNet, head: _native.TemporalHead, metadata: dict[str, str]
    ) -> None:
        super().__init__(native, metadata)
        self._head = head
        data = self.data
        self._mean = np.asarray(data["mean_pose"], np.float32).reshape(-1)
        self._scale = np.float32(data["target_scale"])

    @classmethod
    def from_file(cls, file: Path, meta: dict[str, str]) -> TemporalPoseNet:
        args = load_args(file)
        native = _native.PoseNet.load(file, **args, prefix="frame.")
        head = _native.TemporalHead.load(
            file, keypoints=args["keypoints"], dims=args["dims"], **temporal_options(meta, file)
        )
        return cls(native, head, meta)

    @property
    def parameters(self) -> int:
        return self._net.parameters + self._head.parameters

    def _frames(self, amplitude: Any, phase: Any, lead: int) -> tuple[np.ndarray, tuple[int, ...]]:
        """Raw windows with ``lead`` leading axes -> frame outputs f [n, K*D], standardised."""
        a = _window(amplitude, "amplitude", lambda s: self._window_shape(s[lead - 1 :]))
        p = (
            None
            if phase is None
            else _window(phase, "phase", lambda s: self._window_shape(s[lead - 1 :]))
        )
        if a.ndim != lead + 4:
            raise ValueError(
                f"amplitude must have {lead} leading axes before [frames, antennas, subcarriers, "
                f"packets]; got shape {list(a.shape)}"
            )
        if p is not None and p.shape != a.shape:
            raise ValueError(
                f"phase {list(p.shape)} must have the shape of amplitude {list(a.shape)}"
            )
        lead_shape = a.shape[:lead]
        n = int(np.prod(lead_shape))
        flat = a.reshape(n, *a.shape[lead:])
        pose = self._net.predict(flat, None if p is None else p.reshape(n, *p.shape[lead:]))
        f = (pose.reshape(n, -1) - self._mean) / self._scale
        return np.ascontiguousarray(f, np.float32), lead_shape

    def _out(self, y: np.ndarray) -> np.ndarray:
        k, d = self.output_shape
        return (y * self._scale + self._mean).reshape(*y.shape[:-1], k, d).astype(np.float32)

    def predict(self, amplitude: Any, phase: Any = None) -> np.ndarray:
        """Keypoints [B, T, K, D] in the data's units from raw windows
        ``[B, T, frames, antennas, subcarriers, packets]``: each of the B
        sequences runs causally from its first window."""
        f, (b, t) = self._frames(amplitude, phase, 2)
        return self._out(self._head.forward(f.reshape(b, t, -1)))

    def forward(self, x: Any) -> np.ndarray:
        """The model alone: inputs [B, T, C, W] -> outputs [B, T, K, D] in
        standardised units, as torch's ``TemporalPoseModel``."""
        x = _arrays.as_numpy(x)
        if x.ndim != 4 or tuple(x.shape[2:]) != self.input_shape:
            raise ValueError(
                f"x must be [batch, T, {self.input_shape[0]}, {self.input_shape[1]}], got {list(x.shape)}"
            )
        b, t = x.shape[:2]
        f = self._net.forward(_window(x.reshape(b * t, *x.shape[2:]), "x"))
        k, d = self.output_shape
        return self._head.forward(f.reshape(b, t, k * d)).reshape(b, t, k, d)

    def stream(self, batch: int = 1) -> PoseStream:
        """A streaming state of ``batch`` sequences: ``step(window)`` -> [B, K, D]."""
        return PoseStream(self, batch)


class PoseStream:
    """One streaming run of a :class:`TemporalPoseNet`: the attention's KV cache
    (bounded by the pattern's horizon, see ``csipose.nn.SparsePattern``)."""

    def __init__(self, net: TemporalPoseNet, batch: int) -> None:
        self._net = net
        self._st = net._head.stream(batch)
        self.batch = batch

    @property
    def t(self) -> int:
        """Windows seen so far."""
        return self._st.t

    def cache_rows(self) -> tuple[int, int, int]:
        """The attention cache's rows (tokens, global tokens, block means)."""
        return self._st.cache_rows()

    def step(self, amplitude: Any, phase: Any = None) -> np.ndarray:
        """Raw windows [B, frames, antennas, subcarriers, packets] -> keypoints
        [B, K, D] in the data's units: row t of :meth:`TemporalPoseNet.predict`."""
        f, (b,) = self._net._frames(amplitude, phase, 1)
        if b != self.batch:
            raise ValueError(f"amplitude must hold {self.batch} windows, got {b}")
        return self._net._out(self._st.step(f))

    def forward(self, x: Any) -> np.ndarray:
        """Model inputs [B, C, W] -> outputs [B, K, D], standardised: row t of
        :meth:`TemporalPoseNet.forward`."""
        x = _arrays.as_numpy(x)
        if x.ndim != 3 or x.shape[0] != self.batch or tuple(x.shape[1:]) != self._net.input_shape:
            raise ValueError(
                f"x must be [{self.batch}, {self._net.input_shape[0]}, {self._net.input_shape[1]}], "
                f"got {list(x.shape)}"
            )
        f = self._net._net.forward(_window(x, "x"))
        k, d = self._net.output_shape
        return self._st.step(f.reshape(self.batch, k * d)).reshape(self.batch, k, d)


__all__ = ["PoseStream", "TemporalPoseNet", "temporal_options"]
