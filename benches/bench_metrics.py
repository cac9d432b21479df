"""PCK@0.2 + MPJPE and COCO OKS on [N, 17, 2] float32: csipose's Rust kernels
against the best vectorised numpy and torch CPU code we could write, and
against the time it takes to read the inputs once, side by side in one process.

    python benches/bench_metrics.py [--n 1000000] [--rounds 7] [--threads 2] [--markdown]

Every implementation runs once per round, in the same order, and the table
shows the median over rounds. Ratios > 1 mean csipose is faster.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import numpy as np

import csipose
from csipose import metrics
from csipose.skeleton import COCO17

from _bench import cpu_name, print_table

A, B = COCO17.torso  # right shoulder, left hip
T = 0.2


def numpy_pck_mpjpe(pred: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    """Best numpy we found: hypot on x/y views, float32 throughout."""
    px, py, gx, gy = pred[..., 0], pred[..., 1], gt[..., 0], gt[..., 1]
    d = np.hypot(px - gx, py - gy)
    torso = np.maximum(np.hypot(gx[:, A] - gx[:, B], gy[:, A] - gy[:, B]), 0.01)
    return float(np.mean(d / torso[:, None] <= T)), float(d.mean(dtype=np.float64))


def torch_pck_mpjpe(pred, gt) -> tuple[float, float]:
    import torch

    d = torch.linalg.vector_norm(pred - gt, dim=-1)
    torso = torch.linalg.vector_norm(gt[:, A] - gt[:, B], dim=-1).clamp_min(0.01)
    return float((d / torso[:, None] <= T).float().mean()), float(d.double().mean())


def numpy_oks(pred: np.ndarray, gt: np.ndarray, var: np.ndarray) -> float:
    """COCO OKS with area = the keypoints' bbox, on x/y views (float32)."""
    px, py, gx, gy = pred[..., 0], pred[..., 1], gt[..., 0], gt[..., 1]
    area = (gx.max(1) - gx.min(1)) * (gy.max(1) - gy.min(1))
    e = ((px - gx) ** 2 + (py - gy) ** 2) / var / (area[:, None] + np.spacing(1)) / 2
    return float(np.exp(-e).mean(axis=1).mean())


def torch_oks(pred, gt, var) -> float:
    import torch

    gx, gy = gt[..., 0], gt[..., 1]
    area = (gx.amax(1) - gx.amin(1)) * (gy.amax(1) - gy.amin(1))
    e = ((pred - gt) ** 2).sum(-1) / var / (area[:, None] + 2.220446049250313e-16) / 2
    return float(torch.exp(-e).mean(1).double().mean())


def csipose_fused(pred, gt) -> tuple[float, float]:
    curve, mp = metrics.pck_and_mpjpe(pred, gt, [T], skeleton=COCO17)
    return float(curve.values[0]), float(mp)


def csipose_two_calls(pred, gt) -> tuple[float, float]:
    return metrics.pck(pred, gt, threshold=T, skeleton=COCO17).value, float(metrics.mpjpe(pred, gt))


def csipose_oks(pred, gt, vis) -> float:
    return float(metrics.oks(pred, gt, visible=vis, area="keypoint_bbox").mean())


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--markdown", action="store_true", help="print the table as markdown")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    csipose.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    gt = rng.uniform(0, 1, (args.n, 17, 2)).astype(np.float32)
    pred = (gt + rng.normal(0, 0.05, gt.shape)).astype(np.float32)
    vis = np.ones(gt.shape[:2], bool)
    var = ((2 * np.array(COCO17.sigmas)) ** 2).astype(np.float32)
    tp, tg, tv = torch.from_numpy(pred), torch.from_numpy(gt), torch.from_numpy(var)
    # The mask's bytes read as float32: reading memory does not depend on the dtype.
    flat = vis.reshape(-1)
    tvis = torch.from_numpy(flat[: len(flat) // 4 * 4].view(np.float32))

    cases: dict[str, tuple[str, Callable[[], object]]] = {
        "read pred+gt once: torch sum": ("read", lambda: (tp.sum(), tg.sum())),
        "read pred+gt+visible once: torch sum": (
            "read_oks",
            lambda: (tp.sum(), tg.sum(), tvis.sum()),
        ),
        "read pred+gt once: numpy sum": ("read", lambda: (pred.sum(), gt.sum())),
        "PCK@0.2+MPJPE numpy (x/y views, f32)": ("pck", lambda: numpy_pck_mpjpe(pred, gt)),
        "PCK@0.2+MPJPE torch": ("pck", lambda: torch_pck_mpjpe(tp, tg)),
        "PCK@0.2+MPJPE csipose pck_and_mpjpe (one pass)": ("pck", lambda: csipose_fused(pred, gt)),
        "PCK@0.2+MPJPE csipose pck() + mpjpe()": ("pck", lambda: csipose_two_calls(pred, gt)),
        "OKS numpy (x/y views, f32)": ("oks", lambda: numpy_oks(pred, gt, var)),
        "OKS torch": ("oks", lambda: torch_oks(tp, tg, tv)),
        "OKS csipose": ("oks", lambda: csipose_oks(pred, gt, vis)),
    }
    results = {name: fn() for name, (_, fn) in cases.items()}  # warm-up, and the values
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name, (_, fn) in cases.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    med = {name: float(np.median(ts)) * 1e3 for name, ts in times.items()}

    # The implementations must agree before their speed means anything.
    pck_vals = [v for k, v in results.items() if cases[k][0] == "pck"]
    p0, m0 = pck_vals[0]
    for p, m in pck_vals:
        assert abs(p - p0) < 1e-4 and abs(m - m0) < 1e-5 * m0, pck_vals
    oks_vals = [v for k, v in results.items() if cases[k][0] == "oks"]
    assert max(oks_vals) - min(oks_vals) < 1e-5, oks_vals

    # The floor: the fastest way we have to read each kernel's inputs once.
    read = {
        "pck": min(ms for k, ms in med.items() if cases[k][0] == "read"),
        "oks": med["read pred+gt+visible once: torch sum"],
    }
    numpy_ms = {
        kind: next(ms for k, ms in med.items() if cases[k][0] == kind and "numpy" in k)
        for kind in ("pck", "oks")
    }
    rows = []
    for name, ms in med.items():
        kind = cases[name][0]
        if kind.startswith("read"):
            rows.append((name, f"{ms:.1f}", "", ""))
        else:
            speedup, vs_read = numpy_ms[kind] / ms, ms / read[kind]
            rows.append((name, f"{ms:.1f}", f"{speedup:.1f}x", f"{vs_read:.2f}"))
    header = ("case", "median ms", "speed-up vs numpy", "time / read-once time")
    isa = csipose.simd_level()
    machine = (
        f"{cpu_name()}, {os.cpu_count()} CPUs, {args.threads} threads, csipose kernels: {isa}, "
        f"N = {args.n:,} x 17 x 2 float32, median of {args.rounds} rounds"
    )
    print(f"values: PCK@0.2 {p0:.5f}, MPJPE {m0:.6f}, mean OKS {oks_vals[-1]:.6f}")
    print(f"\n{machine}\n" if args.markdown else machine)
    print_table(header, rows, markdown=args.markdown, align="lrrr")


if __name__ == "__main__":
    main()
