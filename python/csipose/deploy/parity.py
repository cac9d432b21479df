"""``csipose parity CHECKPOINT``: the Rust runtimes against torch, same weights.

Pose checkpoints (``csipose train``): :func:`pose_parity` runs the checkpoint in
torch (``csipose.train.loop.predict``) and in ``csipose.PoseNet`` on held-out
windows of its store (the split's first test part, or ``--part``) and reports
the max / mean abs keypoint difference and the torso-PCK@20 and MPJPE of each.
Parity holds when the max abs difference is <= 1e-4 x the checkpoint's target
scale and the two PCK@20 agree to 1e-3.

CountNet checkpoints: runs one CountNet checkpoint in both runtimes on the same windows (a file of
windows, or windows drawn around the checkpoint's own z-score statistics) and
reports the largest differences of the calibrated probabilities and
confidences, and any window whose count differs where the two most probable
counts are not tied within the tolerance. Parity holds when every difference
is within ``tolerance`` (1e-5, the contract the tests hold both runtimes to).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from csipose.checkpoint import model_file
from csipose.errors import CsiposeError
from csipose.runtime.countnet import CountNet, read_metadata

TOLERANCE = 1e-5


def typical_windows(file: Path, n: int, seed: int = 0) -> np.ndarray:
    """``n`` windows [n, 56, 20] whose z-scores under the checkpoint's
    ``preprocess.mean`` / ``preprocess.std`` are N(0, 2): where its inputs live."""
    from safetensors.numpy import load_file

    t = load_file(file)
    mean, std = t["preprocess.mean"][:, None], t["preprocess.std"][:, None]
    z = np.random.default_rng(seed).normal(0, 2, (n, *mean.shape[:1], 20))
    return (mean + std * z).astype(np.float32)


@dataclass(frozen=True)
class ParityReport:
    checkpoint: Path
    windows: int
    max_probability_difference: float
    max_confidence_difference: float
    count_mismatches: int  # counts that differ although the top two are not tied
    tolerance: float

    @property
    def ok(self) -> bool:
        return (
            self.max_probability_difference <= self.tolerance
            and self.max_confidence_difference <= self.tolerance
            and self.count_mismatches == 0
        )

    def to_text(self) -> str:
        verdict = "parity holds" if self.ok else "PARITY FAILS"
        return (
            f"{self.checkpoint}: {self.windows} windows, Rust (candle) against torch\n"
            f"  max |probability difference| = {self.max_probability_difference:.3g}\n"
            f"  max |confidence difference|  = {self.max_confidence_difference:.3g}\n"
            f"  counts that differ (top two not tied within the tolerance): {self.count_mismatches}\n"
            f"{verdict} (tolerance {self.tolerance:g})"
        )


def parity(
    checkpoint: str | Path,
    windows: Any = None,
    *,
    n: int = 256,
    seed: int = 0,
    tolerance: float = TOLERANCE,
) -> ParityReport:
    """Compare ``csipose.CountNet`` (Rust) with ``csipose.models.CountNet`` (torch)
    on ``windows`` [B, 56, 20] (default: ``n`` :func:`typical_windows`)."""
    from csipose.count.evaluate import predict_torch

    file = model_file(checkpoint)
    net = CountNet.load(file)  # checks every tensor first
    x = typical_windows(file, n, seed) if windows is None else np.asarray(windows, np.float32)
    if x.ndim == 2:
        x = x[None]
    rust = net.predict(x)
    p_torch, c_torch, conf_torch = predict_torch(file, np.ascontiguousarray(x))
    top2 = np.sort(p_torch, axis=1)[:, -2:] if len(x) else np.zeros((0, 2))
    tied = (top2[:, 1] - top2[:, 0]) <= tolerance
    return ParityReport(
        checkpoint=file,
        windows=len(x),
        max_probability_difference=float(np.max(np.abs(rust.probabilities - p_torch), initial=0.0)),
        max_confidence_difference=float(np.max(np.abs(rust.confidences - conf_torch), initial=0.0)),
        count_mismatches=int(np.sum((rust.counts != c_torch) & ~tied)),
        tolerance=tolerance,
    )


POSE_TOLERANCE = 1e-4  # x target scale, max abs keypoint difference
PCK_TOLERANCE = 1e-3


@dataclass(frozen=True)
class PoseParityReport:
    checkpoint: Path
    part: str
    windows: int
    units: str
    target_scale: float
    max_abs_difference: float
    mean_abs_difference: float
    pck20: dict[str, float]  # runtime -> torso-PCK@20
    mpjpe: dict[str, float]  # runtime -> MPJPE (data units)

    @property
    def ok(self) -> bool:
        return (
            self.max_abs_difference <= POSE_TOLERANCE * self.target_scale
            and abs(self.pck20["rust"] - self.pck20["torch"]) <= PCK_TOLERANCE
        )

    def to_text(self) -> str:
        verdict = "parity holds" if self.ok else "PARITY FAILS"
        return (
            f"{self.checkpoint}: {self.windows} windows of part {self.part!r}, Rust (csipose.PoseNet) against torch\n"
            f"  max |keypoint difference|  = {self.max_abs_difference:.3g} {self.units}\n"
            f"  mean |keypoint difference| = {self.mean_abs_difference:.3g} {self.units}\n"
            f"  torso-PCK@20: torch {self.pck20['torch']:.4f}, rust {self.pck20['rust']:.4f}\n"
            f"  MPJPE ({self.units}): torch {self.mpjpe['torch']:.5g}, rust {self.mpjpe['rust']:.5g}\n"
            f"{verdict} (max abs <= {POSE_TOLERANCE:g} x target scale {self.target_scale:.4g}; "
            f"PCK@20 within {PCK_TOLERANCE:g})"
        )


def pose_parity(checkpoint: str | Path, *, part: str | None = None, n: int = 256,
                store: str | Path | None = None) -> PoseParityReport:  # fmt: skip
    """``csipose.PoseNet`` against the torch model on the first ``n`` windows of
    ``part`` (default: the config's first test part) of the checkpoint's store."""
    import torch

    from csipose import metrics
    from csipose.data import CsiTransform
    from csipose.runtime.posenet import PoseNet
    from csipose.train.evaluate import load_run
    from csipose.train.loop import _labels, input_fields, predict

    file = model_file(checkpoint)
    net = PoseNet.load(file)
    model, data, cfg, _ = load_run(file, store=store)
    part = part or (cfg.data.test_parts[0] if cfg.data.test_parts else cfg.data.val_part)
    if part not in data.parts:
        raise CsiposeError(
            f"split {cfg.data.split!r} has no part {part!r} (it has {', '.join(data.parts)})"
        )
    idx = data.parts[part][:n]
    want = predict(model, data, idx, cfg.eval.batch_size, torch.device("cpu"))
    raw = data.store.with_options(transform={"amplitude": CsiTransform()})
    b = raw.gather(idx, fields=input_fields(data))
    got = net.predict(b["amplitude"], b.get("phase"))
    gt, vis = _labels(data, idx)
    pck, mp = {}, {}
    for name, p in (("torch", want), ("rust", got)):
        curve, m = metrics.pck_and_mpjpe(p, gt, [0.2], skeleton=data.skeleton, visible=vis)
        pck[name], mp[name] = float(curve.values[0]), float(m)
    d = np.abs(got - want)
    return PoseParityReport(
        checkpoint=file, part=part, windows=len(idx), units=data.units, target_scale=float(data.target_scale),
        max_abs_difference=float(d.max(initial=0.0)), mean_abs_difference=float(d.mean()) if d.size else 0.0,
        pck20=pck, mpjpe=mp,
    )  # fmt: skip


def _cmd_parity(args: argparse.Namespace) -> int:
    file = model_file(args.checkpoint)
    if read_metadata(file).get("format") == "csipose-pose-checkpoint":
        rep: ParityReport | PoseParityReport = pose_parity(
            file, part=args.part, n=args.n, store=args.store
        )
        print(rep.to_text())
        return 0 if rep.ok else 1
    windows = None
    if args.windows:
        try:
            windows = np.load(args.windows, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise CsiposeError(f"{args.windows}: cannot read windows as .npy: {e}") from e
    report = parity(args.checkpoint, windows, n=args.n, seed=args.seed)
    print(report.to_text())
    return 0 if report.ok else 1


def add_parser(sub: Any) -> None:
    """Add ``parity`` to the main parser's subparsers."""
    p = sub.add_parser("parity", help="check a checkpoint (pose or CountNet): Rust against torch",
                       description=__doc__)  # fmt: skip
    p.add_argument("checkpoint", help="a run directory, checkpoint directory or model.safetensors")
    p.add_argument("--windows", help="CountNet: windows [B, 56, 20] as .npy (default: drawn around the "
                   "checkpoint's z-score statistics)")  # fmt: skip
    p.add_argument(
        "--part", help="pose: the part of the checkpoint's split (default: its first test part)"
    )
    p.add_argument(
        "--store", help="pose: the store (default: the one the checkpoint was trained on)"
    )
    p.add_argument("-n", type=int, default=256, help="how many windows (default 256)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_parity)


__all__ = ["POSE_TOLERANCE", "TOLERANCE", "ParityReport", "PoseParityReport", "add_parser", "parity",
           "pose_parity", "typical_windows"]  # fmt: skip
