"""The one-thread metric kernels in CPU time, for a shared, loaded machine.

bench_metrics.py times wall clock, which other jobs on the machine inflate.
This script times the same csipose calls (PCK@0.2 + MPJPE, the 101-threshold
PCK curve with and without its MPJPE, COCO OKS on [N, 17, 2] float32) by CPU
time of the process (time.process_time; csipose's pool and numpy's reads are
held to one thread), the minimum over rounds, every case once per round in
turn, against the read-once floor (a numpy float32 sum of the inputs, the
same floor bench_metrics.py uses). bench_metrics.py has the numpy and torch
baselines; only the "/ read once" ratios here are meant to be compared.

    python benches/bench_metrics_cpu.py [--n 1000000] [--rounds 9]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import csipose
from bench_metrics import csipose_curve, csipose_curve_mpjpe, csipose_fused, csipose_oks

from _bench import print_table, read_once


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=9)
    args = ap.parse_args()

    csipose.set_num_threads(1)
    rng = np.random.default_rng(0)
    gt = rng.uniform(0, 1, (args.n, 17, 2)).astype(np.float32)
    pred = (gt + rng.normal(0, 0.05, gt.shape)).astype(np.float32)
    vis = np.ones(gt.shape[:2], bool)
    # name -> (call, its floor's name)
    cases = {
        "read pred+gt once": (read_once([pred, gt], 1), ""),
        "read pred+gt+visible once": (read_once([pred, gt, vis], 1), ""),
        "PCK@0.2+MPJPE pck_and_mpjpe": (lambda: csipose_fused(pred, gt), "read pred+gt once"),
        "PCK curve 101 thr. pck_curve": (lambda: csipose_curve(pred, gt), "read pred+gt once"),
        "PCK curve 101 thr. + MPJPE pck_and_mpjpe": (
            lambda: csipose_curve_mpjpe(pred, gt),
            "read pred+gt once",
        ),
        "OKS oks": (lambda: csipose_oks(pred, gt, vis), "read pred+gt+visible once"),
    }
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(args.rounds):
        for name, (fn, _) in cases.items():
            t = time.process_time()
            fn()
            best[name] = min(best[name], time.process_time() - t)
    rows = [
        (name, f"{best[name] * 1e3:.1f}", f"{best[name] / best[floor]:.2f}" if floor else "1.00")
        for name, (_, floor) in cases.items()
    ]
    print(
        f"csipose {csipose.simd_level()}, 1 thread, N = {args.n:,} x 17 x 2 float32, "
        f"CPU ms, minimum of {args.rounds} rounds"
    )
    print_table(("case", "CPU ms", "/ read once"), rows, markdown=True, align="lrr")


if __name__ == "__main__":
    main()
