"""Store.gather's per-call cost for small batches, before and after preparing it.

A training loop calls Store.gather once per batch; what is spent around the
copy (index checks, the window -> frame table, the out checks, the transform's
arguments, the label rows) is paid on every call. This script measures it per
call, in CPU time of the process at one thread (steady on a loaded machine),
the minimum over rounds, every case interleaved round by round in one process:

- "Store.gather": the public call, into preallocated ``out`` arrays (one native
  call, prepared once per store: window table, label offsets, transforms);
- "former Store.gather": the Python this replaced (per call: index checks in
  numpy, per-field out checks, the transform's arguments, one binding call per
  field that rebuilt the float32 kernel), kept here as the "before";
- "native alone": the prepared native call with its arguments ready, i.e.
  Store.gather less its Python; and "copy alone": the former per-field binding
  calls with every argument prepared outside the loop. (In the "no out=" rows
  both include no allocation, so the "Python" columns there include it.)

Cases: 1 and 64 windows; the CSI array alone (plain, and with the load-path
transform: min-max, 114 -> 56 map, z-score), and every field (CSI plus the
label arrays). The store is small (in cache), so the copy is compute.

With ``--store DIR`` (the store bench_data.py writes, e.g. /tmp/csipose-bench)
it also times bench_data.py's 200 random batches of 64 windows from that store,
former against current Store.gather, plain and load path, beside a memcpy of
256 MiB (CPU time, one thread, interleaved): what the Python per call costs a
benchmark round.

    python benches/bench_gather_overhead.py [--calls 2000] [--rounds 7] [--store DIR]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

import csipose
from csipose import signal
from csipose.data import CsiTransform, Store, ZScore

from _bench import FRAME, print_table, write_frames_store

N_FRAMES = 4000


def former_gather(store: Store, indices, fields, out=None) -> dict[str, np.ndarray]:
    """Store.gather's body before it was prepared, for the "before" rows."""
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    if len(idx) and idx.view(np.uint64).max() >= len(store):
        raise IndexError("out of range")
    names = store.fields if fields is None else list(fields)
    for f in names:
        if f not in store.manifest["arrays"]:
            raise KeyError(f)
    if out is None:
        out = store.allocate(len(idx), names)
    starts = store.windows[idx]
    rows = None
    for f in names:
        buf = out.get(f)
        want_shape, want_dtype = store.out_shape(f, len(idx)), store.manifest["arrays"][f]["dtype"]
        if buf is None or buf.shape != want_shape or buf.dtype != np.dtype(want_dtype):
            raise ValueError(f)
        if not (buf.flags.c_contiguous and buf.flags.writeable):
            raise ValueError(f)
        if f in store.transform:
            args = store.transform[f].native_args()
            store._native.gather_windows(f, starts, store.window.length, buf, **args)
        else:
            if rows is None:
                rows = np.ascontiguousarray(store._label_rows(starts).reshape(-1))
            if len(rows):
                store._native.gather_rows(f, rows, buf.reshape(len(rows), -1).view(np.uint8))
    return {f: out[f] for f in names}


def copy_alone(store: Store, idx: np.ndarray, fields: list[str], out: dict) -> object:
    """The former per-field binding calls, every argument prepared."""
    starts = np.ascontiguousarray(store.windows[idx])
    rows = np.ascontiguousarray(store._label_rows(starts).reshape(-1))
    nat, length = store._native, store.window.length
    calls = []
    for f in fields:
        buf = out[f]
        if f in store.transform:
            a = store.transform[f].native_args()
            calls.append(lambda f=f, b=buf, a=a: nat.gather_windows(f, starts, length, b, **a))
        else:
            view = buf.reshape(len(rows), -1).view(np.uint8)
            calls.append(lambda f=f, view=view: nat.gather_rows(f, rows, view))

    def run() -> None:
        for c in calls:
            c()

    return run


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--store", help="also time 200 batches of 64 from bench_data.py's store")
    args = ap.parse_args()
    csipose.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        write_frames_store(Path(tmp) / "s", N_FRAMES, "benches/bench_gather_overhead.py")
        plain = Store.open(Path(tmp) / "s")
        rng = np.random.default_rng(1)
        z = ZScore(rng.uniform(0.3, 0.6, (3, 56)), rng.uniform(0.1, 0.3, (3, 56)), source="bench")
        t = CsiTransform(minmax=True, subcarriers=signal.linear_map(114, 56), zscore=z)
        full = plain.with_options(transform={"amplitude": t})
        cases = {}
        for n in (1, 64):
            idx = np.sort(rng.integers(0, len(plain), n))
            for label, store, fields, given in (
                ("CSI, plain", plain, ["amplitude"], True),
                ("CSI, load path", full, ["amplitude"], True),
                ("every field, load path", full, full.fields, True),
                # What the training loop does: no out=, a fresh batch per call.
                ("CSI, load path, no out=", full, ["amplitude"], False),
            ):
                out = store.allocate(n, fields)
                outs = [out[f] for f in fields]
                prepared = store._prepared_gather()
                o = out if given else None
                cases[(n, label, "Store.gather")] = lambda s=store, i=idx, f=fields, o=o: s.gather(
                    i, fields=f, out=o
                )
                cases[(n, label, "former")] = lambda s=store, i=idx, f=fields, o=o: former_gather(
                    s, i, f, o
                )
                cases[(n, label, "native alone")] = lambda p=prepared, i=idx, f=fields, o=outs: (
                    p.gather(i, f, o)
                )
                cases[(n, label, "copy alone")] = copy_alone(store, idx, fields, out)
        best = dict.fromkeys(cases, np.inf)
        for fn in cases.values():
            fn()
        for _ in range(args.rounds):
            for key, fn in cases.items():
                t0 = time.process_time()
                for _ in range(args.calls):
                    fn()
                best[key] = min(best[key], (time.process_time() - t0) / args.calls)
    rows = []
    for n, label, kind in cases:
        if kind != "Store.gather":
            continue
        us = {
            k: best[(n, label, k)] * 1e6
            for k in ("Store.gather", "former", "native alone", "copy alone")
        }
        rows.append(
            (
                str(n),
                label,
                f"{us['former']:.2f}",
                f"{us['Store.gather']:.2f}",
                f"{us['former'] / us['Store.gather']:.2f}x",
                f"{us['copy alone']:.2f}",
                f"{us['native alone']:.2f}",
                f"{us['former'] - us['copy alone']:.2f}",
                f"{us['Store.gather'] - us['native alone']:.2f}",
            )
        )
    print(
        f"1 thread, CPU time per call in us (min of {args.rounds} rounds of {args.calls} "
        f"calls), frames {list(FRAME)}, store in cache"
    )
    print_table(
        (
            "windows",
            "fields",
            "former Store.gather",
            "Store.gather",
            "speed-up",
            "former copy alone",
            "native alone",
            "former Python",
            "Python now",
        ),
        rows,
        markdown=True,
        align="rlrrrrrrr",
    )

    if args.store:
        big_store(args.store, args.rounds)


def big_store(directory: str, rounds: int) -> None:
    """Former vs current Store.gather on bench_data.py's batches, against memcpy."""
    from _bench import load_path_store

    rng = np.random.default_rng(1)
    store, full = load_path_store(directory, rng, eps=0.0)
    batches = [np.sort(rng.integers(0, len(store), 64)) for _ in range(200)]
    out, fout = store.allocate(64, ["amplitude"]), full.allocate(64, ["amplitude"])
    src = np.ones(2**26, np.float32)
    dst = np.empty_like(src)
    nbytes = 200 * 64 * store.array("amplitude")[0].nbytes
    f = ["amplitude"]
    cases = {
        "memcpy 256 MiB (np.copyto)": lambda: np.copyto(dst, src),
        "plain gather, former Store.gather": lambda: [
            former_gather(store, b, f, out) for b in batches
        ],
        "plain gather, Store.gather": lambda: [store.gather(b, fields=f, out=out) for b in batches],
        "load path, former Store.gather": lambda: [
            former_gather(full, b, f, fout) for b in batches
        ],
        "load path, Store.gather": lambda: [full.gather(b, fields=f, out=fout) for b in batches],
    }
    for fn in cases.values():
        fn()
    best = dict.fromkeys(cases, np.inf)
    for _ in range(rounds):
        for name, fn in cases.items():
            t0 = time.process_time()
            fn()
            best[name] = min(best[name], time.process_time() - t0)
    floor = src.nbytes / best["memcpy 256 MiB (np.copyto)"]
    rows = [
        (name, f"{t * 1e3:.2f}", "" if name.startswith("memcpy") else f"{nbytes / t / floor:.0%}")
        for name, t in best.items()
    ]
    print(f"\n1 thread, CPU time (min of {rounds}), 200 batches of 64 windows from {directory}")
    print_table(("case", "CPU ms", "of memcpy"), rows, markdown=True, align="lrr")


if __name__ == "__main__":
    main()
