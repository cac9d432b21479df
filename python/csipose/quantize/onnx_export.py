"""A quantized (or fp16) pose model as ONNX, checked against torch.

Opset 18, input ``csi`` [batch, C, T] float32, output ``keypoints`` [batch, K, D]
float32 in the model's standardised target units (multiply by the metadata's
``target_scale`` and add ``mean_pose`` for the data's units), dynamic batch.
A PT2E-converted graph exports as QDQ (QuantizeLinear / DequantizeLinear
around float Conv/MatMul), which onnxruntime may fuse into int8 kernels.

The check (:func:`check`): onnxruntime with its graph optimisations off executes
the Q/DQ graph op by op in float32, i.e. exactly the torch reference graph, so
the two agree to float32 noise (the torch side must be deterministic: two
identical calls must give identical outputs, or the check refuses to compare).
The only legitimate larger difference is a one-code flip: an activation that
lands within rounding error of a half-step boundary (different accumulation
order, e.g. threads) quantizes one code apart.
The bound asserted per element is therefore one quantization step of the
largest activation scale in the graph (or 1e-4 when larger); measured on the
tiny test model and the default run it is 0.0 on one thread. With optimisations
on (the deployed session) onnxruntime fuses Q/DQ into int8 kernels (int32 bias,
integer requantisation), which is real int8 arithmetic and not the reference;
that difference is measured and reported, not bounded.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from csipose.errors import CsiposeError

OPSET = 18
INPUT = "csi"
OUTPUT = "keypoints"


def export(
    module: torch.nn.Module, example: torch.Tensor, out: Path, metadata: dict[str, Any]
) -> Path:
    """Write ``module`` as ONNX to ``out`` (atomically) with ``metadata`` in
    metadata_props (values JSON-encoded unless already strings)."""
    import onnx

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp.onnx")
    batch = torch.export.Dim("batch", min=1, max=4096)
    try:
        torch.onnx.export(module, (example[:2],), tmp, input_names=[INPUT], output_names=[OUTPUT],
                          opset_version=OPSET, dynamo=True, external_data=False, verbose=False,
                          dynamic_shapes=({0: batch},))  # fmt: skip
        model = onnx.load(tmp)
        for node in model.graph.node:  # the exporter's per-node debug records (stack traces,
            del node.metadata_props[:]  # module paths) are about half the file; not deployed
            node.doc_string = ""
        del model.metadata_props[:]
        for k, v in metadata.items():
            p = model.metadata_props.add()
            p.key, p.value = k, v if isinstance(v, str) else json.dumps(v, sort_keys=True)
        onnx.save(model, tmp)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out


def session(
    path: str | os.PathLike[str], threads: int | None = None, *, optimise: bool = True
) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or torch.get_num_threads()
    opts.inter_op_num_threads = 1
    if not optimise:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def run(sess: Any, x: np.ndarray | torch.Tensor, batch_size: int = 256) -> np.ndarray:
    x = x.numpy() if isinstance(x, torch.Tensor) else x
    out = [sess.run([OUTPUT], {INPUT: np.ascontiguousarray(x[i : i + batch_size], dtype=np.float32)})[0]
           for i in range(0, len(x), batch_size)]  # fmt: skip
    return np.concatenate(out)


def activation_steps(path: str | os.PathLike[str]) -> list[float]:
    """Scales of the activation QuantizeLinear nodes of a QDQ model."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(path))
    init = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    consts = {
        n.output[0]: numpy_helper.to_array(n.attribute[0].t)
        for n in m.graph.node
        if n.op_type == "Constant" and n.attribute and n.attribute[0].HasField("t")
    }
    steps = []
    for n in m.graph.node:
        if n.op_type == "QuantizeLinear":
            s = init.get(n.input[1], consts.get(n.input[1]))
            if s is not None and np.size(s) == 1:
                steps.append(float(np.asarray(s).reshape(())))
    return steps


def check(module: torch.nn.Module, path: str | os.PathLike[str], windows: torch.Tensor,
          *, float_tol: float = 1e-4, batches: tuple[int, ...] = (1, 7, 64)) -> dict[str, Any]:  # fmt: skip
    """Compare the ONNX file with ``module`` on ``windows`` (and the dynamic batch
    axis at several sizes); raise CsiposeError beyond the bound (module docstring).

    ``float_tol``: the float noise allowed (fp16 models need more)."""
    with torch.no_grad():
        want = module(windows).float().numpy()
        again = module(windows).float().numpy()
    if not np.array_equal(want, again, equal_nan=True):
        # A reference that is still random (dropout, or BatchNorm on batch statistics,
        # left in training mode) makes any comparison meaningless: say so, not "beyond
        # the bound" (the QAT graphs' nn.Dropout2d once stayed on: qat._set_training).
        raise CsiposeError(f"{path}: the torch model is not deterministic (two identical calls "
                           f"differ by {float(np.abs(want - again).max()):.3g}); is a dropout or "
                           "BatchNorm still in training mode?")  # fmt: skip
    got = run(session(path, optimise=False), windows)
    if got.shape != want.shape:
        raise CsiposeError(
            f"{path}: ONNX output shape {got.shape} differs from torch's {want.shape}"
        )
    fused = run(session(path), windows)
    for b in batches:
        if b <= len(windows):
            g = run(session(path), windows[:b])
            if g.shape != want[:b].shape:
                raise CsiposeError(
                    f"{path}: batch {b} gives shape {g.shape}, expected {want[:b].shape}"
                )
    diff = np.abs(got - want)
    steps = activation_steps(path)
    bound = max(float_tol, max(steps)) if steps else float_tol
    worst = float(diff.max()) if diff.size else 0.0
    result = {
        "max_abs": worst,
        "bound": bound,
        "share_beyond_float_tol": float((diff > float_tol).mean()) if diff.size else 0.0,
        "windows": len(windows),
        "activation_quantizers": len(steps),
        "largest_activation_step": max(steps) if steps else None,
        "optimised_session_max_abs": float(np.abs(fused - want).max()) if diff.size else 0.0,
        "definition": "max |onnxruntime (graph optimisations off) - torch| over held-out validation "
                      "windows; bound = max(float_tol, largest activation quantization step); "
                      "optimised_session_max_abs: the same against onnxruntime's fused int8 kernels",
    }  # fmt: skip
    if not (np.isfinite(got).all() and np.isfinite(fused).all()) or worst > bound:
        raise CsiposeError(f"{path}: onnxruntime differs from the torch model by {worst:.3g} "
                           f"(max abs), beyond the bound {bound:.3g}")  # fmt: skip
    return result
