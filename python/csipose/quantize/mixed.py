"""Mixed precision: int8 everywhere except the modules that int8 hurts most.

The sensitivity scan quantizes one module at a time (everything else float32),
calibrated like PTQ on training windows, and measures torso-PCK@20 and MPJPE on
the run's VALIDATION part against the fp32 model on the same windows. The
modules whose PCK@20 drop exceeds ``max_drop`` (at most ``max_kept``, the worst
first) stay float32 in the mixed model. Test parts are never looked at.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from csipose import metrics
from csipose.quantize import int8_scope, ptq
from csipose.quantize.source import Source
from csipose.train.loop import _labels

#: Keep a module float32 when quantizing it alone costs more than this many PCK@20 points.
MAX_DROP = 0.5
MAX_KEPT = 2


def candidates(model: torch.nn.Module) -> list[str]:
    """The scan's units: each temporal block, the conv stem and blocks, each attention
    axis and the decoder of a WiFlow model; else the model's top-level children."""
    names = []
    for name, child in model.named_children():
        subs = list(child.named_children())
        if name in ("tcn",) and subs:  # tcn.network.i
            (inner, net), *_ = subs
            names += [f"{name}.{inner}.{i}" for i, _ in net.named_children()]
        elif name in ("residual_blocks", "attention") and subs:
            names += [f"{name}.{s}" for s, _ in subs]
        else:
            names.append(name)
    return names


def score(src: Source, pred: np.ndarray, idx: np.ndarray) -> tuple[float, float]:
    """(torso-PCK@20 in points, MPJPE in the data's units) of normalised predictions."""
    p = (pred * src.data.target_scale + src.data.mean_pose).astype(np.float32)
    gt, vis = _labels(src.data, idx)
    curve, mp = metrics.pck_and_mpjpe(p, gt, [0.2], skeleton=src.data.skeleton, visible=vis)
    return 100.0 * float(curve.values[0]), float(mp)


def _predict(module: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return torch.cat([module(b) for b in x.split(256)]).float().numpy()


def scan(src: Source, calibration: torch.Tensor, *, val_windows: int | None = 512, seed: int = 0,
         reduce_range: bool = False, modules: Sequence[str] | None = None) -> dict[str, Any]:  # fmt: skip
    """Per-module sensitivity on the validation part (see the module docstring)."""
    part = src.cfg.data.val_part
    idx = src.indices(part, val_windows, seed=seed)
    x = src.windows(part, val_windows, seed=seed)
    fp32 = score(src, _predict(src.model, x), idx)
    exported = ptq.export(src.model.eval(), calibration)
    rows = []
    scope = int8_scope.fast_int8_modules(src.model)
    for name in modules or candidates(src.model):
        if not int8_scope.within(scope, name):
            continue  # float32 in every int8 model anyway
        q = ptq.ptq(src.model, calibration, reduce_range=reduce_range,
                    only=int8_scope.within(scope, name), exported=exported)  # fmt: skip
        pck, mpjpe = score(src, _predict(q, x), idx)
        rows.append({"module": name, "pck@20": pck, "mpjpe": mpjpe,
                     "pck@20_drop": fp32[0] - pck, "mpjpe_rise": mpjpe - fp32[1]})  # fmt: skip
    return {"part": part, "windows": len(idx), "units": src.data.units,
            "fp32": {"pck@20": fp32[0], "mpjpe": fp32[1]}, "modules": rows,
            "definition": "torso-PCK@20 (points, 0-100) and MPJPE of the model with only this module "
                          "int8 (PT2E PTQ, same calibration), on the validation part; modules "
                          "without int8 layers (int8_scope) are not scanned"}  # fmt: skip


def choose(
    result: dict[str, Any], *, max_drop: float = MAX_DROP, max_kept: int = MAX_KEPT
) -> list[str]:
    """Modules to keep float32: the worst ones whose PCK@20 drop exceeds ``max_drop``
    (ties broken by MPJPE rise)."""
    rows = sorted(result["modules"], key=lambda r: (-r["pck@20_drop"], -r["mpjpe_rise"]))
    return [r["module"] for r in rows if r["pck@20_drop"] > max_drop][:max_kept]
