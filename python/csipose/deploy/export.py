"""``csipose export CHECKPOINT OUT.onnx``: a trained model as ONNX (opset 18,
dynamic batch axis, torch's dynamo exporter, which needs ``onnxscript``).

Pose checkpoints (``csipose train``): inputs ``amplitude`` (and ``phase`` for
amplitude+phase checkpoints), raw store windows [batch, frames, antennas,
subcarriers, packets] float32 as ``Store.gather`` returns them; output
``keypoints`` [batch, K, D] in the data's units. The graph holds everything that
is a function of the window: per-frame min-max, the subcarrier map, the
z-score, the antennas' relative phase (cos, sin), the channel/time layout, the
model and the de-standardisation (x target scale + mean pose). It is computed
in float32 (the store's transform uses float64), so the check below bounds that
rounding too.

CountNet checkpoints (``csipose count train``): input
``csi_window`` [batch, 56, 20] float32 (the same raw windows the Rust runtime
takes; the z-score is in the graph), dynamic batch axis, outputs
``count_logits`` [batch, 8] and ``conf_logits`` [batch] -- the logits divided by
the checkpoint's calibration temperatures, so ``softmax(count_logits)`` and
``sigmoid(conf_logits)`` are the calibrated probabilities and confidence.

With ``check`` (the default) the file is run under onnxruntime and compared
with the torch module on the same windows -- for CountNet windows drawn around
the checkpoint's z-score statistics (:func:`csipose.deploy.parity.typical_windows`),
for pose checkpoints windows of the checkpoint's store -- at batch 1, 7 and 64;
the export fails above 1e-4 (CountNet logits; pose keypoints: 1e-4 x target
scale). Without onnxruntime the check is a clear error naming the ``export``
extra; ``--no-check`` skips it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from csipose.checkpoint import model_file
from csipose.deploy.parity import typical_windows
from csipose.errors import CheckpointError, CsiposeError
from csipose.runtime.countnet import read_metadata

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


def export_onnx(
    checkpoint: str | os.PathLike[str], out: str | os.PathLike[str], *, check: bool = True
) -> Path:
    """Write the ONNX graph of a CountNet checkpoint to ``out`` (atomically); with
    ``check``, compare it with torch under onnxruntime (max abs difference of the
    logits, raises CsiposeError above 1e-4). Returns ``out``."""
    import torch

    file = model_file(checkpoint)
    fmt = read_metadata(file).get("format")
    if fmt == "csipose-pose-checkpoint":
        return export_pose_onnx(file, out, check=check)
    if fmt not in (None, "csipose-countnet-checkpoint"):
        raise CheckpointError(
            f"{file}: csipose export handles pose and CountNet checkpoints, this is {fmt!r}"
        )
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
                raise CsiposeError(
                    f"the ONNX graph differs from torch by {diff:.3g} (max abs, logits)"
                )
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out


def onnx_difference(module: Any, path: str | os.PathLike[str], windows: np.ndarray,
                    batches: tuple[int, ...] = (1, 7, 64)) -> float:  # fmt: skip
    """Max abs difference of the logits between ``module`` (torch) and the ONNX file
    under onnxruntime, on the first 1, 7 and 64 of ``windows`` (dynamic batch).

    Use windows where the model's inputs live (``csipose.deploy.parity.typical_windows``):
    far outside the checkpoint's z-score statistics (e.g. N(0, 3) raw values against
    amplitudes of 2e-3) the logits reach thousands, and float32 rounding alone
    exceeds any useful absolute tolerance."""
    ort = _onnxruntime()
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


def _onnxruntime() -> Any:
    try:
        import onnxruntime
    except ModuleNotFoundError:
        raise CsiposeError(
            "checking the ONNX graph needs onnxruntime: pip install 'csipose[export]' "
            "(or pass --no-check / check=False)"
        ) from None
    return onnxruntime


POSE_OUTPUT = "keypoints"


def _pose_module(file: Path) -> tuple[Any, list[str], Any]:
    """(the torch module raw windows -> keypoints, its input names, the PoseData)."""
    import torch

    from csipose.train.evaluate import load_run

    model, data, _, _ = load_run(file)
    tf = data.store.transform["amplitude"]
    phase = data.inputs == "amplitude+phase"

    class Graph(torch.nn.Module):
        z_mean: torch.Tensor | None
        z_scale: torch.Tensor | None
        def __init__(self) -> None:
            super().__init__()
            self.model = model
            self.minmax = tf.minmax
            m = tf.subcarriers
            self.register_buffer(
                "map", None if m is None else torch.tensor(m.dense(), dtype=torch.float32)
            )
            z = tf.zscore
            self.register_buffer(
                "z_mean", None if z is None else torch.tensor(z.mean, dtype=torch.float32)
            )
            self.register_buffer(
                "z_scale", None if z is None else torch.tensor(z.scale, dtype=torch.float32)
            )
            self.register_buffer("mean_pose", torch.tensor(data.mean_pose, dtype=torch.float32))
            self.scale = float(data.target_scale)

        def forward(
            self, amplitude: torch.Tensor, phase: torch.Tensor | None = None
        ) -> torch.Tensor:
            x = amplitude
            if self.minmax:  # per frame: over antennas, subcarriers, packets
                lo = x.amin(dim=(2, 3, 4), keepdim=True)
                rng = x.amax(dim=(2, 3, 4), keepdim=True) - lo
                x = torch.where(rng > 0, (x - lo) / torch.where(rng > 0, rng, 1.0), 0.0)
            if self.map is not None:
                x = torch.einsum("blasp,ts->blatp", x, self.map)
            if self.z_mean is not None and self.z_scale is not None:
                x = (x - self.z_mean[:, :, None]) / self.z_scale[:, :, None]
            if phase is not None:
                rel = phase[:, :, 1:] - phase[:, :, :1]
                x = torch.cat([x, torch.cos(rel), torch.sin(rel)], dim=2)
            b, frames, a, s, p = x.shape
            x = x.permute(0, 2, 3, 1, 4).reshape(b, a * s, frames * p)
            return self.model(x) * self.scale + self.mean_pose

    names = ["amplitude", "phase"] if phase else ["amplitude"]
    return Graph().eval(), names, data


def export_pose_onnx(file: Path, out: str | os.PathLike[str], *, check: bool = True) -> Path:
    """Write the ONNX graph of a pose checkpoint (raw windows -> keypoints) to ``out``,
    atomically; with ``check``, compare it with torch under onnxruntime."""
    import torch

    module, names, data = _pose_module(file)
    fields = ["amplitude", "phase"][: len(names)]
    raw = data.store.with_options(
        transform={"amplitude": type(data.store.transform["amplitude"])()}
    )
    idx = np.concatenate(list(data.parts.values()))[:64]
    if len(idx) == 0:
        raise CsiposeError(f"{data.store.path}: no windows to export and check with")
    windows = raw.gather(idx, fields=fields)
    example = tuple(torch.from_numpy(windows[f][:2]) for f in fields)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp.onnx")
    batch = torch.export.Dim("batch", min=1)
    dyn = (
        {"amplitude": {0: batch}}
        if len(names) == 1
        else {"amplitude": {0: batch}, "phase": {0: batch}}
    )
    try:
        with torch.no_grad():
            torch.onnx.export(module, example, tmp, input_names=names, output_names=[POSE_OUTPUT],
                              opset_version=OPSET, dynamo=True, external_data=False, verbose=False,
                              dynamic_shapes=dyn)  # fmt: skip
        if check:
            ort = _onnxruntime()
            sess = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
            worst = 0.0
            for b in (1, 7, 64):
                feed = {
                    n: np.ascontiguousarray(windows[f][:b])
                    for n, f in zip(names, fields, strict=True)
                }
                (got,) = sess.run([POSE_OUTPUT], feed)
                with torch.no_grad():
                    want = module(*(torch.from_numpy(v) for v in feed.values())).numpy()
                worst = max(worst, float(np.max(np.abs(got - want))))
            if worst > 1e-4 * data.target_scale:
                raise CsiposeError(
                    f"the ONNX graph differs from torch by {worst:.3g} (max abs, keypoints; "
                    f"tolerance 1e-4 x target scale {data.target_scale:.4g})"
                )
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out


__all__ = ["INPUT", "OPSET", "OUTPUTS", "POSE_OUTPUT", "add_parser", "export_onnx", "export_pose_onnx",
           "onnx_difference"]  # fmt: skip


def _cmd_export(args: Any) -> int:
    fmt = read_metadata(model_file(args.checkpoint)).get("format")
    out = export_onnx(args.checkpoint, args.out, check=not args.no_check)
    if fmt == "csipose-pose-checkpoint":
        print(
            f"wrote {out} (opset {OPSET}, raw windows -> {POSE_OUTPUT} [batch, K, D], data units)"
        )
    else:
        print(
            f"wrote {out} (opset {OPSET}, input {INPUT} [batch, 56, 20], outputs {', '.join(OUTPUTS)})"
        )
    return 0


def add_parser(sub: Any) -> None:
    """Add ``export`` to the main parser's subparsers."""
    ex = sub.add_parser("export", help="export a trained model (pose or CountNet) as ONNX",
                        description=__doc__)  # fmt: skip
    ex.add_argument("checkpoint", help="a checkpoint directory, run directory or model.safetensors")
    ex.add_argument("out", help="the .onnx file to write")
    ex.add_argument(
        "--no-check",
        action="store_true",
        help="skip the onnxruntime comparison with torch (no onnxruntime needed)",
    )
    ex.set_defaults(func=_cmd_export)
