"""Linear assignment: csipose.matching against scipy.optimize.linear_sum_assignment,
side by side in one process.

    python benches/bench_matching.py [--rounds 7] [--threads 2] [--markdown]

Single problems: 4x4, 16x16 and 64x64, each a set of distinct uniform random
float64 matrices solved one call at a time. The batch: 10,000 problems of 8x8
in one assign_batch call, against a Python loop over scipy (and over
csipose.matching.assign). Frames of 2-8 people: 10,000 matrices of mixed
shapes in one assign_batch call (as a list, and padded to [B, 8, 8] with
sizes), and 2,000 frames through match_frames (costs
and assignments), each against a loop over scipy (with numpy costs), for
frames of 2-8 people and of 1-3 people. The
per-call overhead: one 2x2 problem per call. Every implementation runs once per round, in the same
order; the table shows the median over rounds. Before timing, every solver's
total costs must agree with scipy's. Ratios > 1 mean csipose is faster.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import numpy as np
import scipy
from scipy.optimize import linear_sum_assignment

import csipose
from csipose import matching

from _bench import cpu_name, print_table


def totals_loop(solve: Callable, mats: np.ndarray) -> np.ndarray:
    return np.array([m[solve(m)].sum() for m in mats])


def totals_batch(mats: np.ndarray) -> np.ndarray:
    out = matching.assign_batch(mats)
    return np.bincount(out.problem, mats[out.problem, out.rows, out.cols], minlength=len(mats))


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2, help="csipose threads for assign_batch")
    ap.add_argument("--markdown", action="store_true", help="print the table as markdown")
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    sizes = {4: 2048, 16: 512, 64: 64}  # distinct matrices per size
    singles = {n: rng.random((count, n, n)) for n, count in sizes.items()}
    batch = rng.random((10_000, 8, 8))

    def run_batch(threads: int) -> Callable[[], object]:
        def go() -> object:
            csipose.set_num_threads(threads)
            return matching.assign_batch(batch)

        return go

    # case -> (group, problems per call of fn, fn)
    cases: dict[str, tuple[str, int, Callable[[], object]]] = {}
    for n, mats in singles.items():
        cases[f"{n}x{n} scipy"] = (
            f"{n}",
            len(mats),
            lambda m=mats: [linear_sum_assignment(x) for x in m],
        )
        cases[f"{n}x{n} csipose assign"] = (
            f"{n}",
            len(mats),
            lambda m=mats: [matching.assign(x) for x in m],
        )
    cases["10,000 x 8x8 scipy loop"] = (
        "batch",
        len(batch),
        lambda: [linear_sum_assignment(x) for x in batch],
    )
    cases["10,000 x 8x8 csipose assign loop"] = (
        "batch",
        len(batch),
        lambda: [matching.assign(x) for x in batch],
    )
    cases["10,000 x 8x8 csipose assign_batch, 1 thread"] = ("batch", len(batch), run_batch(1))
    if args.threads != 1:
        cases[f"10,000 x 8x8 csipose assign_batch, {args.threads} threads"] = (
            "batch", len(batch), run_batch(args.threads),
        )  # fmt: skip

    # Frames of 2-8 people: a list of matrices of mixed shapes in one call.
    mixed = [rng.random(tuple(rng.integers(2, 9, 2))) for _ in range(10_000)]
    cases["10,000 mixed 2-8 x 2-8 scipy loop"] = (
        "mixed", len(mixed), lambda: [linear_sum_assignment(x) for x in mixed],
    )  # fmt: skip
    for t in sorted({1, args.threads}):
        cases[f"10,000 mixed 2-8 x 2-8 csipose assign_batch(list), {t} thr"] = (
            "mixed", len(mixed), lambda t=t: (csipose.set_num_threads(t), matching.assign_batch(mixed)),
        )  # fmt: skip

    # The same problems padded to [B, 8, 8] with their sizes: no Python object per problem.
    sizes = np.array([m.shape for m in mixed])
    padded = np.zeros((len(mixed), 8, 8))
    for b, m in enumerate(mixed):
        padded[b, : m.shape[0], : m.shape[1]] = m
    for t in sorted({1, args.threads}):
        cases[f"10,000 mixed 2-8 x 2-8 csipose assign_batch(padded, sizes), {t} thr"] = (
            "mixed", len(mixed),
            lambda t=t: (csipose.set_num_threads(t), matching.assign_batch(padded, sizes=sizes)),
        )  # fmt: skip

    # match_frames: 2,000 frames of 2-8 people, mean-joint-distance costs.
    n_people = rng.integers(2, 9, (2000, 2))
    preds = [rng.random((p, 17, 2)) for p, _ in n_people]
    gts = [rng.random((g, 17, 2)) for _, g in n_people]

    def scipy_frames(preds: list = preds, gts: list = gts) -> list:
        out = []
        for p, g in zip(preds, gts, strict=True):
            d = np.linalg.norm(p[:, None] - g[None], axis=-1).mean(-1)
            out.append(linear_sum_assignment(d))
        return out

    cases["2,000 frames of 2-8 people: numpy costs + scipy loop"] = (
        "frames", len(preds), scipy_frames,
    )  # fmt: skip
    for t in sorted({1, args.threads}):
        cases[f"2,000 frames of 2-8 people: csipose match_frames, {t} thr"] = (
            "frames", len(preds),
            lambda t=t: (csipose.set_num_threads(t),
                         matching.match_frames(preds, gts, cost="distance", threshold=None)),
        )  # fmt: skip

    # The same frames given and returned flat: one call, no per-frame Python objects.
    flat_in = (np.concatenate(preds), np.concatenate(gts), n_people[:, 0], n_people[:, 1])
    for t in sorted({1, args.threads}):
        cases[f"2,000 frames of 2-8 people: csipose match_frames_flat, {t} thr"] = (
            "frames", len(preds),
            lambda t=t: (csipose.set_num_threads(t),
                         matching.match_frames_flat(*flat_in, cost="distance", threshold=None)),
        )  # fmt: skip

    # Frames of 1-3 people (single-person data has one on a side): numpy costs
    # + scipy loop against match_frames.
    few = rng.integers(1, 4, (2000, 2))
    preds13 = [rng.random((p, 17, 2)) for p, _ in few]
    gts13 = [rng.random((g, 17, 2)) for _, g in few]
    cases["2,000 frames of 1-3 people: numpy costs + scipy loop"] = (
        "few", len(preds13), lambda: scipy_frames(preds13, gts13),
    )  # fmt: skip
    for t in sorted({1, args.threads}):
        cases[f"2,000 frames of 1-3 people: csipose match_frames, {t} thr"] = (
            "few", len(preds13),
            lambda t=t: (csipose.set_num_threads(t),
                         matching.match_frames(preds13, gts13, cost="distance", threshold=None)),
        )  # fmt: skip

    # The per-call overhead: one 2x2 problem per call.
    tiny = rng.random((1, 2, 2))
    cases["per call: scipy 2x2"] = ("call", 1, lambda: linear_sum_assignment(tiny[0]))
    cases["per call: csipose assign 2x2"] = ("call", 1, lambda: matching.assign(tiny[0]))
    cases["per call: csipose assign_batch of one 2x2"] = (
        "call", 1, lambda: matching.assign_batch(tiny),
    )  # fmt: skip
    cases["per call: csipose assign_batch of a list of one 2x2"] = (
        "call", 1, lambda: matching.assign_batch([tiny[0]]),
    )  # fmt: skip

    # The solvers must agree on every total cost before their speed means anything.
    for mats in [*singles.values(), batch]:
        ref = totals_loop(linear_sum_assignment, mats)
        np.testing.assert_allclose(totals_loop(matching.assign, mats), ref, rtol=1e-12)
        np.testing.assert_allclose(totals_batch(mats), ref, rtol=1e-12)
    ref = totals_loop(linear_sum_assignment, mixed)
    res = matching.assign_batch(mixed)
    got = [mixed[b][res[b]].sum() for b in range(len(mixed))]
    np.testing.assert_allclose(got, ref, rtol=1e-12)
    res = matching.assign_batch(padded, sizes=sizes)
    got = [mixed[b][res[b]].sum() for b in range(len(mixed))]
    np.testing.assert_allclose(got, ref, rtol=1e-12)
    ours = matching.match_frames(preds, gts, cost="distance", threshold=None)
    for m, (r, c), p, g in zip(ours, scipy_frames(), preds, gts, strict=True):
        d = np.linalg.norm(p[:, None] - g[None], axis=-1).mean(-1)
        np.testing.assert_allclose(d[m.pred, m.gt].sum(), d[r, c].sum(), rtol=1e-9)
    few_ours = matching.match_frames(preds13, gts13, cost="distance", threshold=None)
    for m, (r, c), p, g in zip(few_ours, scipy_frames(preds13, gts13), preds13, gts13, strict=True):
        d = np.linalg.norm(p[:, None] - g[None], axis=-1).mean(-1)
        np.testing.assert_allclose(d[m.pred, m.gt].sum(), d[r, c].sum(), rtol=1e-9)
    flat = matching.match_frames_flat(*flat_in, cost="distance", threshold=None)
    np.testing.assert_allclose(
        np.add.reduceat(flat.values, flat.offsets[:-1]), [m.values.sum() for m in ours], rtol=1e-12
    )

    for _, _, fn in cases.values():
        fn()  # warm-up
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name, (group, _, fn) in cases.items():
            reps = 2000 if group == "call" else 1  # one call is too short to time alone
            t0 = time.perf_counter()
            for _ in range(reps):
                fn()
            times[name].append((time.perf_counter() - t0) / reps)
    csipose.set_num_threads(0)

    rows = []
    for name, (group, count, _) in cases.items():
        sec = float(np.median(times[name]))
        base = next(k for k, (g, _, _) in cases.items() if g == group and "scipy" in k)
        ratio = float(np.median(times[base])) / sec
        rows.append((name, f"{sec / count * 1e6:.3f}", f"{count / sec:,.0f}", f"{ratio:.2f}x"))
    header = ("case", "us / problem", "problems / s", "vs scipy")
    machine = (
        f"{cpu_name()}, {os.cpu_count()} CPUs, scipy {scipy.__version__}, numpy {np.__version__}, "
        f"csipose {csipose.__version__}, median of {args.rounds} rounds, uniform [0, 1) float64 costs"
    )
    print(f"\n{machine}\n" if args.markdown else machine)
    print_table(header, rows, markdown=args.markdown, align="lrrr")


if __name__ == "__main__":
    main()
