"""The data path, side by side in one process:

1. random batches of 64 windows from a >= 2 GB store with a warm page cache:
   csipose's Rust gather against numpy memmap fancy indexing (np.take into a
   preallocated batch) and against memcpy bandwidth (np.copyto of 1 GB);
2. the full load path (gather + per-frame min-max + 114 -> 56 resampling +
   z-score): one Rust pass against the same steps in numpy;
3. 114 -> 56 resampling of [100000, 3, 114, 10]: Rust against a numpy matmul
   and scipy (CSR matrix product).

    python benches/bench_data.py [--dir /tmp/csipose-bench] [--gb 2.0] [--rounds 5] [--threads 2] [--markdown]

The store is written once into --dir and reused. Medians over rounds; ratios
> 1 mean csipose is faster.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import csipose
from csipose import signal
from csipose.data import CsiTransform, Store, StoreWriter, ZScore

from _bench import cpu_name, print_table

FRAME = (3, 114, 10)
BATCH = 64


def build_store(path: Path, gb: float) -> Path:
    frame_bytes = int(np.prod(FRAME)) * 4
    n = int(gb * 1e9 / frame_bytes) + 1
    if (path / "manifest.json").exists():
        store = Store.open(path)
        if store.n_frames >= n:
            return path
    print(f"writing a {n * frame_bytes / 1e9:.2f} GB store ({n} frames) to {path} ...", flush=True)
    rng = np.random.default_rng(0)
    csi = {
        "layout": ["frame", "antenna", "subcarrier", "packet"],
        "antennas": {"n_tx": 1, "n_rx": 3, "order": "tx-major"},
        "subcarrier_indices": signal.SUBCARRIERS["atheros-ht40"],
        "packets_per_frame": 10,
        "units": {"amplitude": "arbitrary"},
        "hardware_profile": {"name": "benchmark"},
    }
    with StoreWriter(
        path,
        csi=csi,
        default_window={"length": 1, "stride": 1, "label": "first"},
        provenance={"converter": "benches/bench_data.py"},
        overwrite=True,
    ) as w:
        seq = w.code("sequence", "all")
        for start in range(0, n, 10_000):
            k = min(10_000, n - start)
            w.add_frames(
                amplitude=rng.uniform(0, 40, (k, *FRAME)).astype(np.float32),
                sequence=seq,
                frame_index=np.arange(start, start + k),
                environment=w.code("environment", "E"),
                subject=w.code("subject", "S"),
                action=w.code("action", "A"),
            )
    return path


def median_ms(fn: Callable[[], object], rounds: int) -> float:
    fn()
    ts = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts)) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--dir", default="/tmp/csipose-bench")
    ap.add_argument("--gb", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", type=int, default=200, help="random batches per timed round")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    csipose.set_num_threads(args.threads)

    path = build_store(Path(args.dir) / "store", args.gb)
    store = Store.open(path, window={"length": 1, "stride": 1})
    mm = store.array("amplitude")
    frame_bytes = int(np.prod(FRAME)) * 4
    t0 = time.perf_counter()
    float(np.add.reduce(mm.reshape(-1), dtype=np.float64))  # warm the page cache
    print(
        f"store: {store.n_frames} frames, {store.n_frames * frame_bytes / 1e9:.2f} GB; "
        f"warm-up read {time.perf_counter() - t0:.1f} s"
    )

    rng = np.random.default_rng(1)
    batches = [np.sort(rng.integers(0, len(store), BATCH)) for _ in range(args.batches)]
    out = store.allocate(BATCH, ["amplitude"])
    buf = np.empty((BATCH, *FRAME), np.float32)
    batch_gb = args.batches * BATCH * frame_bytes / 1e9

    def rust_gather():
        for b in batches:
            store.gather(b, fields=["amplitude"], out=out)

    def numpy_gather():
        for b in batches:
            np.take(mm, store.windows[b], axis=0, out=buf)

    src = np.ones(2**28, np.float32)  # 1 GiB
    dst = np.empty_like(src)

    def memcpy():
        np.copyto(dst, src)

    # Full load path: min-max per frame, 114 -> 56, z-score.
    lin = signal.linear_map(114, 56)
    mean = rng.uniform(0.3, 0.6, (3, 56))
    std = rng.uniform(0.1, 0.3, (3, 56))
    t = CsiTransform(
        minmax=True, subcarriers=lin, zscore=ZScore(mean, std, eps=0.0, source="bench")
    )
    full = store.with_options(transform={"amplitude": t})
    fout = full.allocate(BATCH, ["amplitude"])
    w = lin.dense()

    def rust_full():
        for b in batches:
            full.gather(b, fields=["amplitude"], out=fout)

    def numpy_full():
        for b in batches:
            x = np.take(mm, b, axis=0).astype(np.float64)
            lo = x.min(axis=(1, 2, 3), keepdims=True)
            hi = x.max(axis=(1, 2, 3), keepdims=True)
            x = (x - lo) / (hi - lo)
            y = np.matmul(w, x)  # [56, 114] @ [B, 3, 114, 10]
            ((y - mean[None, :, :, None]) / std[None, :, :, None]).astype(np.float32)

    # Check the two full paths agree before timing them.
    b = batches[0]
    rust_full()
    x = np.take(mm, b, axis=0).astype(np.float64)
    x = (x - x.min(axis=(1, 2, 3), keepdims=True)) / np.ptp(x, axis=(1, 2, 3), keepdims=True)
    ref = ((np.matmul(w, x) - mean[None, :, :, None]) / std[None, :, :, None]).astype(np.float32)
    full.gather(b, fields=["amplitude"], out=fout)
    assert np.allclose(fout["amplitude"][:, 0], ref, atol=1e-5), "full load paths disagree"

    rows = {}
    rows["memcpy 1 GiB (np.copyto)"] = (median_ms(memcpy, args.rounds), 2**30 / 1e9)
    rows["plain gather: numpy memmap np.take"] = (median_ms(numpy_gather, args.rounds), batch_gb)
    rows["plain gather: csipose Store.gather"] = (median_ms(rust_gather, args.rounds), batch_gb)
    rows["full load path: numpy steps"] = (median_ms(numpy_full, args.rounds), batch_gb)
    rows["full load path: csipose one pass"] = (median_ms(rust_full, args.rounds), batch_gb)

    # Resampling [100000, 3, 114, 10].
    xr = rng.uniform(0, 1, (100_000, *FRAME)).astype(np.float32)
    yr = np.empty((100_000, 3, 56, 10), np.float32)
    w32 = w.astype(np.float32)
    import scipy.sparse

    csr = scipy.sparse.csr_matrix(w32)

    def numpy_resample():
        np.matmul(w32, xr, out=yr)

    def scipy_resample():
        # CSR [56, 114] times the subcarrier axis, as a [114, rest] matrix.
        moved = np.ascontiguousarray(np.moveaxis(xr, 2, 0)).reshape(114, -1)
        np.moveaxis((csr @ moved).reshape(56, 100_000, 3, 10), 0, 2)

    def rust_resample():
        signal.resample(xr, lin, out=yr)

    rust_resample()
    assert np.allclose(yr, np.matmul(w32, xr), atol=1e-5), "resampling disagrees"
    gb = xr.nbytes / 1e9
    rows["resample 114->56: numpy matmul"] = (median_ms(numpy_resample, args.rounds), gb)
    rows["resample 114->56: scipy CSR"] = (median_ms(scipy_resample, args.rounds), gb)
    rows["resample 114->56: csipose"] = (median_ms(rust_resample, args.rounds), gb)

    def rate(name: str) -> float:
        ms, gbytes = rows[name]
        return gbytes / (ms / 1e3)

    def faster(baseline: str, ours: str) -> float:
        return rows[baseline][0] / rows[ours][0]

    ours = "plain gather: csipose Store.gather"
    ratios = {
        ours: (
            f"{rate(ours) / rate('memcpy 1 GiB (np.copyto)'):.0%} of memcpy; "
            f"{faster('plain gather: numpy memmap np.take', ours):.1f}x numpy"
        ),
        "full load path: csipose one pass": (
            f"{rows['full load path: numpy steps'][0] / rows['full load path: csipose one pass'][0]:.1f}x numpy"
        ),
        "resample 114->56: csipose": (
            f"{rows['resample 114->56: numpy matmul'][0] / rows['resample 114->56: csipose'][0]:.1f}x numpy matmul, "
            f"{rows['resample 114->56: scipy CSR'][0] / rows['resample 114->56: csipose'][0]:.1f}x scipy"
        ),
    }
    machine = (
        f"{cpu_name()}, {os.cpu_count()} CPUs, {args.threads} threads, kernels: {csipose.simd_level()}; "
        f"{args.batches} random batches of {BATCH} windows [{', '.join(map(str, FRAME))}] per round, "
        f"median of {args.rounds} rounds"
    )
    header = ("case", "median ms", "GB/s (input read)", "ratio")
    table = [
        (k, f"{ms:.1f}", f"{gbytes / (ms / 1e3):.1f}", ratios.get(k, ""))
        for k, (ms, gbytes) in rows.items()
    ]
    print(f"\n{machine}\n" if args.markdown else machine)
    print_table(header, table, markdown=args.markdown, align="lrrl")


if __name__ == "__main__":
    main()
