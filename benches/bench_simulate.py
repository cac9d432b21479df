"""The simulator's throughput: windows (and frames) per second of
``csipose.data.simulate.simulate`` for each profile, at each thread count
given, with where the time goes (the top functions by own time, from
cProfile, at the first thread count).

    python benches/bench_simulate.py [--profiles mmfi esp32] [--rounds 3] [--threads 1 2] [--markdown]

The baseline for a faster simulator is this script run on the commit before it
(the simulator VERSION is printed; the store cache key carries it). Each round
simulates a small dataset into a temporary directory; medians over rounds.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import tempfile
import time
from pathlib import Path

import numpy as np

import csipose
from csipose.data import Store
from csipose.data import simulate as sim

from _bench import cpu_name, print_table

SMALL = {
    "mmfi": {"environments": 1, "subjects": 2, "actions": ["walk", "squat"], "frames": 64},
    "esp32": {"environments": 1, "subjects": 3, "sequences": 1, "frames": 200},
    "wiflow": {"environments": 1, "subjects": 2, "actions": ["walk"], "frames": 200},
}


def one(profile: str, seed: int) -> tuple[float, int, int]:
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        out = sim.simulate(
            Path(d) / "s", profile=profile, seed=seed, progress=False, **SMALL[profile]
        )
        sec = time.perf_counter() - t0
        store = Store.open(out)
        return sec, len(store), store.n_frames


def hot_spots(profile: str, top: int) -> str:
    prof = cProfile.Profile()
    prof.enable()
    one(profile, 0)
    prof.disable()
    s = io.StringIO()
    pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(top)
    return s.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--profiles", nargs="+", default=["mmfi", "esp32"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--top", type=int, default=12, help="functions in the profile (0: none)")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()

    rows = []
    for threads in args.threads:
        csipose.set_num_threads(threads)
        for profile in args.profiles:
            one(profile, 0)  # warm-up (imports, page cache)
            runs = [one(profile, seed) for seed in range(args.rounds)]
            sec = float(np.median([r[0] for r in runs]))
            _, windows, frames = runs[0]
            rows.append(
                (
                    f"simulate {profile} {SMALL[profile]} ({threads} thr)",
                    f"{sec:.2f}",
                    f"{windows / sec:,.0f}",
                    f"{frames / sec:,.0f}",
                )
            )
    csipose.set_num_threads(0)
    machine = (
        f"{cpu_name()}, {os.cpu_count()} CPUs, simulator VERSION {sim.VERSION}, "
        f"numpy {np.__version__}, median of {args.rounds} rounds"
    )
    header = ("case", "median s", "windows / s", "frames / s")
    print(f"\n{machine}\n" if args.markdown else machine)
    print_table(header, rows, markdown=args.markdown, align="lrrr")
    if args.top:
        csipose.set_num_threads(args.threads[0])
        for profile in args.profiles:
            print(f"\nwhere the time goes ({profile}, {args.threads[0]} thr):")
            print(hot_spots(profile, args.top))


if __name__ == "__main__":
    main()
