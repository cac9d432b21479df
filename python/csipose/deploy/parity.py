"""``csipose parity CHECKPOINT [--windows W.npy]``: the Rust runtime against torch.

Runs one CountNet checkpoint in both runtimes on the same windows (a file of
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

from csipose.countnet import CountNet, checkpoint_file
from csipose.errors import CsiposeError

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

    file = checkpoint_file(checkpoint)
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


def _cmd_parity(args: argparse.Namespace) -> int:
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
    p = sub.add_parser("parity", help="check a CountNet checkpoint: Rust (candle) against torch",
                       description=__doc__)  # fmt: skip
    p.add_argument("checkpoint", help="a run directory, checkpoint directory or model.safetensors")
    p.add_argument("--windows", help="windows [B, 56, 20] as .npy (default: drawn around the "
                   "checkpoint's z-score statistics)")  # fmt: skip
    p.add_argument("-n", type=int, default=256, help="how many windows to draw (default 256)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_parity)


__all__ = ["TOLERANCE", "ParityReport", "add_parser", "parity", "typical_windows"]
