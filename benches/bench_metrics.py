"""PCK@0.2 + MPJPE, the PCK curve at 101 thresholds, and COCO OKS on
[N, 17, 2] float32: csipose's Rust kernels against the fairest numpy we could
write (float32, in place into preallocated buffers, vectorised, split over the
same number of threads as csipose) and torch on the same threads, and against
the memory floor (the time to read the inputs once on those threads), side by
side in one process, at each thread count given.

    python benches/bench_metrics.py [--n 1000000] [--rounds 7] [--threads 1 2] [--markdown]

Every implementation runs once per round, in the same order; the table shows
the median over rounds. "vs numpy" > 1 means csipose is faster; "/ read" is
time over the read-once time (1.0 is the memory floor).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

import numpy as np

import csipose
from csipose import metrics
from csipose.skeleton import COCO17

from _bench import cpu_name, print_table, read_once, split_map, timed_rounds

A, B = COCO17.torso  # right shoulder, left hip
T = 0.2
CURVE = np.linspace(0.0, 0.5, 101)


class NumpyFair:
    """In-place float32 numpy over preallocated scratch, one contiguous part
    of the samples per thread."""

    def __init__(self, pred: np.ndarray, gt: np.ndarray, var: np.ndarray, threads: int):
        n, k, _ = gt.shape
        self.pred, self.gt, self.threads = pred, gt, threads
        self.diff = np.empty_like(gt)
        self.q = np.empty((n, k), np.float32)
        self.hit = np.empty((n, k), bool)
        self.tv = np.empty((n, 2), np.float32)
        self.tor = np.empty(n, np.float32)
        self.inv2var = (1.0 / (2.0 * var)).astype(np.float32)

    def _dist(self, s: slice) -> np.ndarray:
        p, g, dd, q = self.pred[s], self.gt[s], self.diff[s], self.q[s]
        np.subtract(p, g, out=dd)
        np.multiply(dd, dd, out=dd)
        np.add(dd[..., 0], dd[..., 1], out=q)
        return q

    def _torso(self, s: slice) -> np.ndarray:
        g, tv, tor = self.gt[s], self.tv[s], self.tor[s]
        np.subtract(g[:, A], g[:, B], out=tv)
        np.multiply(tv, tv, out=tv)
        np.add(tv[:, 0], tv[:, 1], out=tor)
        np.sqrt(tor, out=tor)
        np.maximum(tor, np.float32(0.01), out=tor)
        return tor

    def pck_mpjpe(self) -> tuple[float, float]:
        def part(s: slice) -> tuple[int, float]:
            q = self._dist(s)
            np.sqrt(q, out=q)
            tor = self._torso(s)
            np.multiply(tor, np.float32(T), out=tor)
            np.less_equal(q, tor[:, None], out=self.hit[s])
            return int(np.count_nonzero(self.hit[s])), float(q.sum(dtype=np.float64))

        r = split_map(part, len(self.gt), self.threads)
        m = self.q.size
        return sum(c for c, _ in r) / m, sum(x for _, x in r) / m

    def curve(self) -> np.ndarray:
        def part(s: slice) -> np.ndarray:
            q = self._dist(s)
            np.sqrt(q, out=q)
            np.divide(q, self._torso(s)[:, None], out=q)
            # First threshold >= the ratio: correct at every threshold from there on.
            idx = np.searchsorted(CURVE, q.reshape(-1), side="left")
            return np.bincount(idx, minlength=len(CURVE) + 1)

        r = split_map(part, len(self.gt), self.threads)
        return np.cumsum(sum(r)[: len(CURVE)]) / self.q.size

    def oks(self) -> float:
        def part(s: slice) -> float:
            g = self.gt[s]
            gx, gy = g[..., 0], g[..., 1]
            area = self.tor[s]
            np.multiply(gx.max(1) - gx.min(1), gy.max(1) - gy.min(1), out=area)
            np.add(area, np.float32(np.spacing(1)), out=area)
            np.reciprocal(area, out=area)
            q = self._dist(s)
            np.multiply(q, self.inv2var[None, :], out=q)
            np.multiply(q, area[:, None], out=q)
            np.negative(q, out=q)
            np.exp(q, out=q)
            return float(q.sum(dtype=np.float64))

        r = split_map(part, len(self.gt), self.threads)
        return sum(r) / self.q.size


def torch_pck_mpjpe(pred, gt) -> tuple[float, float]:
    import torch

    d = torch.linalg.vector_norm(pred - gt, dim=-1)
    torso = torch.linalg.vector_norm(gt[:, A] - gt[:, B], dim=-1).clamp_min(0.01)
    return float((d <= T * torso[:, None]).float().mean()), float(d.double().mean())


def torch_oks(pred, gt, var) -> float:
    import torch

    gx, gy = gt[..., 0], gt[..., 1]
    area = (gx.amax(1) - gx.amin(1)) * (gy.amax(1) - gy.amin(1))
    e = ((pred - gt) ** 2).sum(-1) / var / (area[:, None] + 2.220446049250313e-16) / 2
    return float(torch.exp(-e).mean(1).double().mean())


def csipose_fused(pred, gt) -> tuple[float, float]:
    curve, mp = metrics.pck_and_mpjpe(pred, gt, [T], skeleton=COCO17)
    return float(curve.values[0]), float(mp)


def csipose_curve(pred, gt) -> np.ndarray:
    return np.asarray(metrics.pck_curve(pred, gt, CURVE, skeleton=COCO17).values)


def csipose_curve_mpjpe(pred, gt) -> np.ndarray:
    # The same curve with the MPJPE: float64 distances, so the float64 direct index.
    return np.asarray(metrics.pck_and_mpjpe(pred, gt, CURVE, skeleton=COCO17)[0].values)


def csipose_oks(pred, gt, vis) -> float:
    return float(metrics.oks(pred, gt, visible=vis, area="keypoint_bbox").mean())


def run(pred, gt, vis, var, threads: int, rounds: int) -> tuple[list[tuple], dict[str, object]]:
    import torch

    torch.set_num_threads(threads)
    csipose.set_num_threads(threads)
    tp, tg, tv = torch.from_numpy(pred), torch.from_numpy(gt), torch.from_numpy(var)
    fair = NumpyFair(pred, gt, var, threads)
    th = f"{threads} thr"
    # kind -> cases; the first case of a kind is its baseline, "read" rows are floors.
    cases: dict[str, tuple[str, Callable[[], object]]] = {
        f"read pred+gt once (numpy sum, {th})": ("read", read_once([pred, gt], threads)),
        f"read pred+gt+visible once (numpy sum, {th})": (
            "read_oks",
            read_once([pred, gt, vis], threads),
        ),
        f"PCK@0.2+MPJPE numpy f32 in-place ({th})": ("pck", fair.pck_mpjpe),
        f"PCK@0.2+MPJPE torch ({th})": ("pck", lambda: torch_pck_mpjpe(tp, tg)),
        f"PCK@0.2+MPJPE csipose pck_and_mpjpe ({th})": ("pck", lambda: csipose_fused(pred, gt)),
        f"PCK curve 101 thr. numpy f32 searchsorted ({th})": ("curve", fair.curve),
        f"PCK curve 101 thr. csipose pck_curve ({th})": ("curve", lambda: csipose_curve(pred, gt)),
        f"PCK curve 101 thr. + MPJPE csipose pck_and_mpjpe ({th})": (
            "curve",
            lambda: csipose_curve_mpjpe(pred, gt),
        ),
        f"OKS numpy f32 in-place ({th})": ("oks", fair.oks),
        f"OKS torch ({th})": ("oks", lambda: torch_oks(tp, tg, tv)),
        f"OKS csipose ({th})": ("oks", lambda: csipose_oks(pred, gt, vis)),
    }
    values = {name: fn() for name, (_, fn) in cases.items()}
    # The implementations must agree before their speed means anything.
    for kind in ("pck", "curve", "oks"):
        vals = [
            np.atleast_1d(np.asarray(v, float)) for k, v in values.items() if cases[k][0] == kind
        ]
        for v in vals:
            np.testing.assert_allclose(v, vals[0], rtol=1e-4, atol=1e-4, err_msg=kind)
    med = timed_rounds({k: fn for k, (_, fn) in cases.items()}, rounds)
    floor = {
        "read": next(ms for k, ms in med.items() if cases[k][0] == "read"),
        "read_oks": next(ms for k, ms in med.items() if cases[k][0] == "read_oks"),
    }
    rows = []
    for name, ms in med.items():
        kind = cases[name][0]
        if kind.startswith("read"):
            rows.append((name, f"{ms:.1f}", "", "1.00"))
            continue
        base = next(k for k in med if cases[k][0] == kind)
        read = floor["read_oks" if kind == "oks" else "read"]
        rows.append((name, f"{ms:.1f}", f"{med[base] / ms:.1f}x", f"{ms / read:.2f}"))
    return rows, values


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--markdown", action="store_true", help="print the table as markdown")
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    gt = rng.uniform(0, 1, (args.n, 17, 2)).astype(np.float32)
    pred = (gt + rng.normal(0, 0.05, gt.shape)).astype(np.float32)
    vis = np.ones(gt.shape[:2], bool)
    var = ((2 * np.array(COCO17.sigmas)) ** 2).astype(np.float32)

    rows: list[tuple] = []
    for threads in args.threads:
        r, _ = run(pred, gt, vis, var, threads, args.rounds)
        rows += r
    header = ("case", "median ms", "vs numpy f32", "/ read once")
    machine = (
        f"{cpu_name()}, {os.cpu_count()} CPUs, csipose kernels: {csipose.simd_level()}, "
        f"numpy {np.__version__} (elementwise: one thread per part), "
        f"N = {args.n:,} x 17 x 2 float32, median of {args.rounds} rounds"
    )
    print(f"\n{machine}\n" if args.markdown else machine)
    print_table(header, rows, markdown=args.markdown, align="lrrr")


if __name__ == "__main__":
    main()
