"""The simulator's throughput: windows (and frames) per second of
``csipose.data.simulate.simulate`` for each profile, at each thread count
given, with where the time goes (the top functions by own time, from
cProfile, at the first thread count).

    python benches/bench_simulate.py [--profiles mmfi esp32] [--rounds 3] [--threads 1 2] [--markdown]

The baseline is simulator VERSION 1 as it was before the one-pass channel
kernel, run side by side in the same process: ``channel.PER_PACKET = True``
synthesizes every packet's row of paths with ``multipath_response``, shadows one
point at a time and simulates one sequence at a time (the same bytes as the
one-pass kernel: tests/test_simulate_speed.py), and ``channel.NUMPY_IMPAIRMENTS
= True`` draws and applies the receiver impairments in numpy (VERSION 1's
bytes, pinned: tests/test_simulate_impair.py). The other side is the current
simulator (VERSION 2: Rust impairments). Both sides use the same csipose
threads; at more than one thread the current simulator keeps that many
sequences in flight.
Each round simulates a small dataset into a temporary directory with each side
in turn; medians over rounds; "vs VERSION 1 per-packet" > 1 means faster.
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
from csipose.data.simulate import channel

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


def version1(on: bool) -> None:
    """The baseline (VERSION 1 as it was) or the current simulator."""
    channel.PER_PACKET = channel.NUMPY_IMPAIRMENTS = on


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
            sides: dict[bool, list[tuple[float, int, int]]] = {True: [], False: []}
            for per_packet in sides:  # warm-up (imports, page cache)
                version1(per_packet)
                one(profile, 0)
            for seed in range(args.rounds):
                for per_packet, runs in sides.items():
                    version1(per_packet)
                    runs.append(one(profile, seed))
            version1(False)
            base = float(np.median([r[0] for r in sides[True]]))
            for per_packet, runs in sides.items():
                sec = float(np.median([r[0] for r in runs]))
                _, windows, frames = runs[0]
                name = "VERSION 1 per-packet (before)" if per_packet else "now"
                rows.append(
                    (
                        f"simulate {profile} {SMALL[profile]}, {name} ({threads} thr)",
                        f"{sec:.2f}",
                        f"{windows / sec:,.1f}",
                        f"{frames / sec:,.0f}",
                        f"{base / sec:.2f}x",
                    )
                )
    csipose.set_num_threads(0)
    machine = (
        f"{cpu_name()}, {os.cpu_count()} CPUs, simulator VERSION {sim.VERSION} against 1, "
        f"numpy {np.__version__}, median of {args.rounds} rounds"
    )
    header = ("case", "median s", "windows / s", "frames / s", "vs VERSION 1 per-packet")
    print(f"\n{machine}\n" if args.markdown else machine)
    print_table(header, rows, markdown=args.markdown, align="lrrrr")
    if args.top:
        csipose.set_num_threads(args.threads[0])
        for profile in args.profiles:
            print(f"\nwhere the time goes ({profile}, {args.threads[0]} thr):")
            print(hot_spots(profile, args.top))


if __name__ == "__main__":
    main()
