"""Does a second thread help one Store.gather call? 1 and 2 threads interleaved.

bench_data.py gives the fair ratios; this script answers why a 2-thread gather
is (or is not) faster than a 1-thread one. It times the same 200 random
batches of 64 windows [3, 114, 10] (plain gather, and the full load path) at
1 and 2 threads, alternating the thread count round by round in one process,
and prints per case:

- wall ms, median of rounds;
- CPU ms of the process (all threads), median: more CPU than wall at 2 threads
  means both threads worked; CPU above the 1-thread CPU is the split's cost;
- "best wall": the sum over batches of each batch's fastest call. On an idle
  machine it shows what a woken helper gives; on a loaded one the helper
  rarely gets a core within a call (~60-110 us), and it equals 1 thread.

Run bench_data.py first (it writes the store):

    python benches/bench_data_threads.py [--dir /tmp/csipose-bench] [--rounds 9]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # no BLAS threads spinning on CPU time

import numpy as np

import csipose

from _bench import load_path_store, print_table

BATCH, N_BATCHES = 64, 200


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--dir", default="/tmp/csipose-bench")
    ap.add_argument("--rounds", type=int, default=9)
    args = ap.parse_args()

    rng = np.random.default_rng(1)
    store, full = load_path_store(args.dir, rng)
    batches = [np.sort(rng.integers(0, len(store), BATCH)) for _ in range(N_BATCHES)]
    out, fout = store.allocate(BATCH, ["amplitude"]), full.allocate(BATCH, ["amplitude"])
    cases = {
        "plain gather": lambda b: store.gather(b, fields=["amplitude"], out=out),
        "load path": lambda b: full.gather(b, fields=["amplitude"], out=fout),
    }

    wall: dict[tuple[str, int], list[float]] = {}
    cpu: dict[tuple[str, int], list[float]] = {}
    best = {(k, th): np.full(N_BATCHES, np.inf) for k in cases for th in (1, 2)}
    for _ in range(args.rounds):
        for th in (1, 2):
            csipose.set_num_threads(th)
            for k, fn in cases.items():
                m = best[k, th]
                w0, c0 = time.perf_counter(), time.process_time()
                for i, b in enumerate(batches):
                    t0 = time.perf_counter()
                    fn(b)
                    m[i] = min(m[i], time.perf_counter() - t0)
                wall.setdefault((k, th), []).append(time.perf_counter() - w0)
                cpu.setdefault((k, th), []).append(time.process_time() - c0)
    csipose.set_num_threads(0)
    rows = []
    for k in cases:
        for th in (1, 2):
            w, c, b = np.median(wall[k, th]), np.median(cpu[k, th]), best[k, th].sum()
            note = "" if th == 1 else f"best wall {best[k, 1].sum() / b:.2f}x 1 thread"
            rows.append(
                (f"{k} ({th} thr)", f"{w * 1e3:.1f}", f"{c * 1e3:.1f}", f"{b * 1e3:.1f}", note)
            )
    print(
        f"{os.cpu_count()} CPUs; {N_BATCHES} random batches of {BATCH} windows [3, 114, 10], "
        f"{args.rounds} rounds, threads interleaved"
    )
    header = ("case", "wall ms", "CPU ms", "best wall ms", "")
    print_table(header, rows, markdown=True, align="lrrrl")


if __name__ == "__main__":
    main()
