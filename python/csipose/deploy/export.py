"""``csipose export CHECKPOINT OUT.onnx``: a trained model as ONNX.

For now CountNet checkpoints (``csipose count train``): opset 18, input
``csi_window`` [batch, 56, 20] float32 (the same raw windows the Rust runtime
takes; the z-score is in the graph), dynamic batch axis, outputs
``count_logits`` [batch, 8] and ``conf_logits`` [batch] -- the logits divided by
the checkpoint's calibration temperatures, so ``softmax(count_logits)`` and
``sigmoid(conf_logits)`` are the calibrated probabilities and confidence.
Exported with torch's dynamo exporter (needs ``onnxscript``) and, when
``onnxruntime`` is installed, checked against torch on random windows.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from csipose.countnet import checkpoint_file, read_metadata
from csipose.errors import CheckpointError, CsiposeError
from csipose.parity import typical_windows

OPSET = 18
INPUT = "csi_window"
OUTPUTS = ("count_logits", "conf_logits")


def _countnet_module(file: Path) -> Any:
    import torch
    from safetensors.torch import load_file

    from csipose.models.countnet import CountNet

    class Calibrated(torch.nn.Module):
        def __init__(self, net: CountNet):
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            out = self.net.calibrated(x)
            return out.count, out.confidence

    net = CountNet()
    try:
        net.load_state_dict(load_file(file))
    except (RuntimeError, OSError) as e:
        raise CheckpointError(f"{file}: not a CountNet checkpoint: {e}") from e
    return Calibrated(net).eval()


def export_onnx(checkpoint: str | os.PathLike[str], out: str | os.PathLike[str], *, check: bool = True) -> Path:
    """Write the ONNX graph of a CountNet checkpoint to ``out`` (atomically); with
    ``check``, compare it with torch under onnxruntime (max abs difference of the
    logits, raises CsiposeError above 1e-4). Returns ``out``."""
    import torch

    file = checkpoint_file(checkpoint)
    fmt = read_metadata(file).get("format")
    if fmt not in (None, "csipose-countnet-checkpoint"):
        raise CheckpointError(f"{file}: csipose export handles CountNet checkpoints so far, this is {fmt!r}")
    module = _countnet_module(file)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp.onnx")
    x = torch.zeros(2, 56, 20)
    batch = torch.export.Dim("batch", min=1)
    try:
        torch.onnx.export(module, (x,), tmp, input_names=[INPUT], output_names=list(OUTPUTS),
                          opset_version=OPSET, dynamo=True, external_data=False, verbose=False,
                          dynamic_shapes={"x": {0: batch}})  # fmt: skip
        if check:
            diff = onnx_difference(module, tmp, typical_windows(file, 64))
            if diff > 1e-4:
                raise CsiposeError(f"the ONNX graph differs from torch by {diff:.3g} (max abs, logits)")
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out


def onnx_difference(module: Any, path: str | os.PathLike[str], windows: np.ndarray,
                    batches: tuple[int, ...] = (1, 7, 64)) -> float:  # fmt: skip
    """Max abs difference of the logits between ``module`` (torch) and the ONNX file
    under onnxruntime, on the first 1, 7 and 64 of ``windows`` (dynamic batch).

    Use windows where the model's inputs live (``csipose.parity.typical_windows``):
    far outside the checkpoint's z-score statistics (e.g. N(0, 3) raw values against
    amplitudes of 2e-3) the logits reach thousands, and float32 rounding alone
    exceeds any useful absolute tolerance."""
    import onnxruntime as ort
    import torch

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for b in batches:
        x = np.ascontiguousarray(windows[:b], dtype=np.float32)
        got = sess.run(list(OUTPUTS), {INPUT: x})
        with torch.no_grad():
            want = [t.numpy() for t in module(torch.from_numpy(x))]
        for g, w in zip(got, want, strict=True):
            if g.shape != w.shape:
                raise CsiposeError(f"ONNX output shape {g.shape} differs from torch's {w.shape}")
            worst = max(worst, float(np.max(np.abs(g - w))))
    return worst


__all__ = ["INPUT", "OPSET", "OUTPUTS", "add_parser", "export_onnx", "onnx_difference"]


def _cmd_export(args: Any) -> int:
    out = export_onnx(args.checkpoint, args.out, check=not args.no_check)
    print(f"wrote {out} (opset {OPSET}, input {INPUT} [batch, 56, 20], outputs {', '.join(OUTPUTS)})")
    return 0


def add_parser(sub: Any) -> None:
    """Add ``export`` to the main parser's subparsers."""
    ex = sub.add_parser("export", help="export a trained model as ONNX (CountNet checkpoints so far)",
                        description=__doc__)  # fmt: skip
    ex.add_argument("checkpoint", help="a checkpoint directory, run directory or model.safetensors")
    ex.add_argument("out", help="the .onnx file to write")
    ex.add_argument("--no-check", action="store_true", help="skip the onnxruntime comparison with torch")
    ex.set_defaults(func=_cmd_export)
