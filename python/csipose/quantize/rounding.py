"""Affine int8 quantization as ONNX QuantizeLinear and torch define it.

``q = clamp(round_half_even(x / scale) + zero_point, qmin, qmax)``. Ties go to
the even integer (numpy's ``rint``), as in torch's ``quantize_per_tensor`` and
ONNX ``QuantizeLinear``; rounding ties away from zero (Python's ``round`` on
floats does not, but C's ``roundf`` and Rust's ``f32::round`` do) would make a
reimplementation disagree with the exported graph on exact halves.
"""

from __future__ import annotations

import numpy as np


def quantize(
    x: np.ndarray, scale: float, zero_point: int, qmin: int = 0, qmax: int = 255
) -> np.ndarray:
    """Integer codes of ``x`` (int32 so any range fits)."""
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    q = np.rint(np.asarray(x, dtype=np.float32) / np.float32(scale)) + zero_point
    return np.clip(q, qmin, qmax).astype(np.int32)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return ((np.asarray(q, dtype=np.int32) - zero_point) * np.float32(scale)).astype(np.float32)


def fake_quantize(
    x: np.ndarray, scale: float, zero_point: int, qmin: int = 0, qmax: int = 255
) -> np.ndarray:
    return dequantize(quantize(x, scale, zero_point, qmin, qmax), scale, zero_point)
