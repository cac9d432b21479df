"""An independent int8 reference: onnxruntime's own static quantization.

``onnxruntime.quantization.quantize_static`` of the fp32 ONNX file, QDQ format,
per-channel int8 weights, uint8 activations (MinMax calibration on the same
training windows as PTQ). It shares nothing with the PT2E path but the fp32
graph, so it tells whether a PT2E result is a recipe problem or int8's cost.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch


def quantize_static(
    fp32_onnx: Path, out: Path, calibration: torch.Tensor, *, reduce_range: bool = False
) -> Path:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType
    from onnxruntime.quantization import quantize_static as ort_quantize_static

    from csipose.quantize.onnx_export import INPUT

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(
                [{INPUT: np.ascontiguousarray(b.numpy())} for b in calibration.split(64)]
            )

        def get_next(self):
            return next(self.batches, None)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp.onnx")
    try:
        ort_quantize_static(str(fp32_onnx), str(tmp), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            reduce_range=reduce_range, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8)  # fmt: skip
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out
