"""One method's deployable directory: ``OUT/METHOD/``.

    model.onnx      opset 18, dynamic batch, input csi [B, C, T] float32, output keypoints
    model.pt2       the torch.export program (where torch can save it)
    quantize.json   method, calibration, source checkpoint (+ sha256 of its weights),
                    the preprocessing, and the ONNX-vs-torch check

The same metadata rides in the ONNX file's metadata_props.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import torch

import csipose
from csipose._files import write_json_atomic
from csipose.quantize import onnx_export
from csipose.quantize.source import Source


def metadata(src: Source, method: str, **details: Any) -> dict[str, Any]:
    return {
        "format": "csipose-quantized-pose-model",
        "method": method,
        "csipose_version": csipose.__version__,
        "torch_version": torch.__version__,
        "source": src.provenance(),
        "output": "keypoints [batch, K, D] standardised: multiply by source.data.target_scale "
        "and add source.data.mean_pose for the data's units",
        **details,
    }


def write(src: Source, out: Path, module: torch.nn.Module, meta: dict[str, Any],
          check_windows: torch.Tensor, *, float_tol: float = 1e-4) -> dict[str, Any]:  # fmt: skip
    """Export ``module`` into ``out`` and check it; returns the written metadata."""
    out.mkdir(parents=True, exist_ok=True)
    example = check_windows[:2]
    onnx_export.export(module, example, out / "model.onnx", meta)
    meta["onnx_check"] = onnx_export.check(
        module, out / "model.onnx", check_windows, float_tol=float_tol
    )
    meta["pt2"] = _save_program(module, example, out / "model.pt2")
    write_json_atomic(out / "quantize.json", meta)
    return meta


def _save_program(module: torch.nn.Module, example: torch.Tensor, path: Path) -> str:
    """torch.export.save of the module; returns "" or why it could not be saved."""
    import os

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            batch = torch.export.Dim("batch", min=1, max=4096)
            ep = torch.export.export(module, (example,), dynamic_shapes=({0: batch},))
            torch.export.save(ep, tmp)
        os.replace(tmp, path)
        return "model.pt2"
    except Exception as e:
        return f"not saved: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
    finally:
        if tmp.exists():
            tmp.unlink()


def read(out: Path) -> dict[str, Any]:
    return json.loads((out / "quantize.json").read_text())
