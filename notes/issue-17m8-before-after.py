"""Before/after of issue 17m8's list paths, interleaved in one process, CPU time
(time.process_time) at one thread, min over rounds. "before" is the Python that
the list paths ran before this branch, rebuilt here from what the module keeps
(the flat binding, the numpy stacking, FrameMatches._frame); "after" is the
public function. scipy's loops are the fair baselines of benches/bench_matching.py.

    RAYON_NUM_THREADS=1 OMP_NUM_THREADS=1 python notes/issue-17m8-before-after.py [rounds]
"""

from __future__ import annotations

import sys
import time

import numpy as np
from scipy.optimize import linear_sum_assignment

import csipose
from csipose import _native, matching
from csipose.matching import _frame_list, _numpy_people, match_frames_flat


def old_assign_list(costs: list[np.ndarray]) -> matching.Assignments:
    """assign_batch(list) before: three set comprehensions, a shape array and a concatenation."""
    assert (
        {type(c) for c in costs} == {np.ndarray}
        and {c.ndim for c in costs} == {2}
        and {c.dtype for c in costs} == {np.dtype(np.float64)}
    )
    shapes = np.array([m.shape for m in costs], dtype=np.uint64).reshape(-1, 2)
    flat = np.concatenate([m.ravel() for m in costs]) if len(costs) else np.empty(0)
    return matching.Assignments(*_native.assign_batch(flat, shapes, False))


def old_match_frames(preds: list, gts: list) -> list:
    """match_frames before: numpy stacking, then the per-frame Python objects."""
    p, g = _frame_list(preds, "pred_frames"), _frame_list(gts, "gt_frames")
    everyone, counts = _numpy_people([*p, *g], len(p))
    split = int(counts[: len(p)].sum())
    flat = match_frames_flat(
        everyone[:split], everyone[split:], counts[: len(p)], counts[len(p) :],
        cost="distance", threshold=None,
    )  # fmt: skip
    bounds = flat._bounds(0, len(flat))
    return [flat._frame(f, bounds) for f in range(len(flat))]


def scipy_frames(preds: list, gts: list) -> list:
    out = []
    for p, g in zip(preds, gts, strict=True):
        d = np.linalg.norm(p[:, None] - g[None], axis=-1).mean(-1)
        out.append(linear_sum_assignment(d))
    return out


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    csipose.set_num_threads(1)
    rng = np.random.default_rng(0)
    mixed = [rng.random(tuple(rng.integers(2, 9, 2))) for _ in range(10_000)]
    sizes = np.array([m.shape for m in mixed])
    padded = np.zeros((len(mixed), 8, 8))
    for b, m in enumerate(mixed):
        padded[b, : m.shape[0], : m.shape[1]] = m
    tiny = [rng.random((2, 2))]
    frames = {}
    for lo, hi in ((2, 9), (1, 4)):
        n = rng.integers(lo, hi, (2000, 2))
        frames[f"{lo}-{hi - 1}"] = (
            [rng.random((p, 17, 2)) for p, _ in n],
            [rng.random((g, 17, 2)) for _, g in n],
        )

    # The same answers before timing.
    a, b = old_assign_list(mixed), matching.assign_batch(mixed)
    assert all(np.array_equal(x, y) for x, y in ((a.rows, b.rows), (a.cols, b.cols)))
    for preds, gts in frames.values():
        for x, y in zip(old_match_frames(preds, gts), matching.match_frames(
                preds, gts, cost="distance", threshold=None), strict=True):  # fmt: skip
            for field in ("pred", "gt", "values", "false_positives", "missed", "matrix"):
                assert np.array_equal(getattr(x, field), getattr(y, field))

    cases = {
        ("10,000 mixed 2-8 x 2-8", 10_000): {
            "scipy loop": lambda: [linear_sum_assignment(x) for x in mixed],
            "before: assign_batch(list)": lambda: old_assign_list(mixed),
            "after: assign_batch(list)": lambda: matching.assign_batch(mixed),
            "assign_batch(padded, sizes=)": lambda: matching.assign_batch(padded, sizes=sizes),
        },
        ("one 2x2 in a list (per call)", 1): {
            "scipy": lambda: linear_sum_assignment(tiny[0]),
            "before: assign_batch(list)": lambda: old_assign_list(tiny),
            "after: assign_batch(list)": lambda: matching.assign_batch(tiny),
        },
    }
    for name, (preds, gts) in frames.items():
        cases[(f"2,000 frames of {name} people", 2000)] = {
            "numpy costs + scipy loop": lambda p=preds, g=gts: scipy_frames(p, g),
            "before: match_frames": lambda p=preds, g=gts: old_match_frames(p, g),
            "after: match_frames": lambda p=preds, g=gts: matching.match_frames(
                p, g, cost="distance", threshold=None
            ),
        }
    best = {(c, k): np.inf for c, fns in cases.items() for k in fns}
    for _ in range(rounds):
        for c, fns in cases.items():
            reps = 2000 if c[1] == 1 else 1
            for k, fn in fns.items():
                t = time.process_time()
                for _ in range(reps):
                    fn()
                best[c, k] = min(best[c, k], (time.process_time() - t) / reps)
    print(f"1 thread, CPU time, min of {rounds} interleaved rounds; us a problem / frame / call")
    for c, fns in cases.items():
        base = best[c, next(iter(fns))]
        print(c[0])
        for k in fns:
            us = best[c, k] / c[1] * 1e6
            print(f"  {k:32s} {us:8.3f}   {base / best[c, k]:5.2f}x the baseline")


if __name__ == "__main__":
    main()
