"""The one-thread data path in CPU time, for a shared, loaded machine.

bench_data.py times wall clock, which other jobs on the machine inflate. This
script times the same one-thread cases by CPU time of the process
(time.process_time; every case runs on the calling thread at one thread, and
csipose's pool is held to one thread), the minimum over rounds, side by side:

- memcpy of 256 MiB (np.copyto), the floor;
- a sequential read of the whole store (np.maximum.reduce over its mapping):
  what one core reads when the prefetchers can stream, against which the
  random frames of a gather are read;
- plain gather: numpy memmap np.take vs csipose Store.gather;
- load path (min-max + 114 -> 56 linear map + z-score): csipose one pass
  (bench_data.py has the float32 numpy baseline);
- "hot": the same batch 200 times (source in cache): the compute and call cost alone.

Cache sharing with other jobs still slows it; only ratios mean anything.
Run bench_data.py first (it writes the store):

    python benches/bench_data_cpu.py [--dir /tmp/csipose-bench] [--rounds 5]
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
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(1)
    store, full = load_path_store(args.dir, rng, eps=0.0)
    mm = store.array("amplitude")
    csipose.set_num_threads(1)
    float(np.add.reduce(mm.reshape(-1), dtype=np.float64))  # the page cache, through numpy too
    batches = [np.sort(rng.integers(0, len(store), BATCH)) for _ in range(N_BATCHES)]
    frames = [store.windows[b] for b in batches]
    hot = [np.arange(BATCH)] * N_BATCHES
    out, fout = store.allocate(BATCH, ["amplitude"]), full.allocate(BATCH, ["amplitude"])
    buf = np.empty((BATCH, *mm.shape[1:]), np.float32)
    src = np.ones(2**26, np.float32)
    dst = np.empty_like(src)
    nbytes = N_BATCHES * BATCH * mm[0].nbytes
    flat = mm.reshape(-1)

    cases = {
        "memcpy 256 MiB (np.copyto)": (lambda: np.copyto(dst, src), src.nbytes),
        "sequential read of the store (np.maximum.reduce)": (
            lambda: np.maximum.reduce(flat),
            flat.nbytes,
        ),
        "plain gather: numpy memmap np.take": (
            lambda: [np.take(mm, f, axis=0, out=buf) for f in frames],
            nbytes,
        ),
        "plain gather: csipose Store.gather": (
            lambda: [store.gather(b, fields=["amplitude"], out=out) for b in batches],
            nbytes,
        ),
        "plain gather, hot: csipose Store.gather": (
            lambda: [store.gather(b, fields=["amplitude"], out=out) for b in hot],
            nbytes,
        ),
        "load path: csipose one pass": (
            lambda: [full.gather(b, fields=["amplitude"], out=fout) for b in batches],
            nbytes,
        ),
        "load path, hot: csipose one pass": (
            lambda: [full.gather(b, fields=["amplitude"], out=fout) for b in hot],
            nbytes,
        ),
    }
    best = {}
    for fn, _ in cases.values():
        fn()
    for _ in range(args.rounds):
        for name, (fn, _) in cases.items():
            t0 = time.process_time()
            fn()
            best[name] = min(best.get(name, np.inf), time.process_time() - t0)
    floor = cases["memcpy 256 MiB (np.copyto)"][1] / best["memcpy 256 MiB (np.copyto)"]
    rows = []
    for name, (_, b) in cases.items():
        rate = b / best[name]
        note = "" if name.startswith("memcpy") else f"{rate / floor:.0%} of memcpy"
        if name == "plain gather: csipose Store.gather":
            note += f"; {best['plain gather: numpy memmap np.take'] / best[name]:.1f}x numpy"
        rows.append((name, f"{best[name] * 1e3:.1f}", f"{rate / 1e9:.1f}", note))
    print(
        f"1 thread, CPU time (min of {args.rounds}), {N_BATCHES} batches of {BATCH} frames "
        f"{list(mm.shape[1:])} from a {mm.nbytes / 1e9:.2f} GB store"
    )
    print_table(("case", "CPU ms", "GB/s", "vs memcpy"), rows, markdown=True, align="lrrl")


if __name__ == "__main__":
    main()
