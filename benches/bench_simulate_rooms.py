"""Simulation throughput with fixed rooms against drawn rooms (domain randomisation).

    RAYON_NUM_THREADS=1 python benches/bench_simulate_rooms.py [--repeats 2]

Both settings side by side in one process, alternating, the same sizes;
prints windows per second (best of the repeats) and their ratio.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from csipose.data import Store
from csipose.data.simulate import simulate

OPTIONS = {"profile": "mmfi", "environments": 6, "subjects": 2, "actions": ["walk", "squat", "wave"],
           "frames": 16, "progress": False}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    rate: dict[str, list[float]] = {"fixed": [], "per_sequence": []}
    with tempfile.TemporaryDirectory() as d:
        for rep in range(args.repeats):
            for draw in rate:
                t = time.perf_counter()
                out = simulate(f"{d}/{draw}{rep}", room_draw=draw, overwrite=True, **OPTIONS)
                dt = time.perf_counter() - t
                n = len(Store.open(out))
                rate[draw].append(n / dt)
                print(
                    f"{draw} run {rep}: {n} windows in {dt:.1f} s = {n / dt:.1f} windows/s",
                    flush=True,
                )
    print("\n| rooms | windows/s (best) |\n|---|---:|")
    for k, v in rate.items():
        print(f"| {k} | {max(v):.1f} |")
    print(f"| per_sequence / fixed | {max(rate['per_sequence']) / max(rate['fixed']):.2f} |")


if __name__ == "__main__":
    main()
