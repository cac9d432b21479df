"""The data path, side by side in one process, at each thread count given:

1. random batches of 64 windows from a store with a warm page cache:
   csipose's Rust gather against numpy memmap fancy indexing (np.take into a
   preallocated batch, the batches split over the same threads) and against
   memcpy bandwidth (np.copyto of 1 GiB split over the same threads);
2. the full load path (gather + per-frame min-max + 114 -> 56 linear map +
   z-score): one Rust pass against the fairest numpy we could write: float32,
   in place into preallocated buffers, the linear map applied as the two-tap
   lerp it is (two indexed takes), the z-score folded into the tap weights,
   the batches split over the same threads;
3. 114 -> 56 resampling of [N_RESAMPLE, 3, 114, 10]: Rust against the numpy
   two-tap lerp (split over the threads), a numpy float32 matmul with the
   dense map (BLAS held to the same threads). (scipy's CSR product was 17x
   slower than csipose and is no longer a contender.)

    python benches/bench_data.py [--dir /tmp/csipose-bench] [--gb 1.0] [--rounds 5] [--threads 1 2] [--markdown]

The store is written once into --dir and reused; before timing, every page
is read through numpy's memmap and through csipose's own mapping (each side
warm, as in training). csipose's 1-thread rows run on the calling thread. Medians over rounds; "vs
baseline" > 1 means csipose is faster. OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE
slow numpy's BLAS on some machines: unset them in the benchmark's command
(never in tests); the header says which BLAS kernel ran.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

import csipose
from csipose import signal
from csipose.data import CsiTransform, Store, ZScore

from _bench import (
    FRAME,
    blas_info,
    cpu_name,
    limit_blas,
    memcpy,
    print_table,
    split_map,
    timed_rounds,
    write_frames_store,
)

BATCH = 64
N_RESAMPLE = 20_000


def build_store(path: Path, gb: float) -> Path:
    frame_bytes = int(np.prod(FRAME)) * 4
    n = int(gb * 1e9 / frame_bytes) + 1
    if (path / "manifest.json").exists():
        store = Store.open(path)
        if store.n_frames >= n:
            return path
    print(f"writing a {n * frame_bytes / 1e9:.2f} GB store ({n} frames) to {path} ...", flush=True)
    write_frames_store(path, n, "benches/bench_data.py")
    return path


def two_taps(m: signal.SubcarrierMap) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The map as two taps per output: (i0, w0, i1, w1); a one-tap row gets w1 = 0."""
    i0, i1 = np.zeros(m.n_out, np.intp), np.zeros(m.n_out, np.intp)
    w0, w1 = np.zeros(m.n_out), np.zeros(m.n_out)
    for t in range(m.n_out):
        s, e = int(m.start[t]), int(m.start[t + 1])
        assert 1 <= e - s <= 2, "not a two-tap map"
        i0[t], w0[t] = m.index[s], m.weight[s]
        i1[t], w1[t] = (m.index[e - 1], m.weight[e - 1]) if e - s == 2 else (m.index[s], 0.0)
    return i0, w0, i1, w1


class NumpyLoad:
    """The full load path in float32 numpy, in place; one set of buffers per thread."""

    def __init__(self, mm, lin, mean, std, threads):
        self.mm = mm
        i0, w0, i1, w1 = two_taps(lin)
        self.i0, self.i1 = i0, i1
        # z-score folded into the taps: (w0 x0 + w1 x1 - mean) / std.
        self.w0 = (w0[None, :] / std)[None, :, :, None].astype(np.float32)
        self.w1 = (w1[None, :] / std)[None, :, :, None].astype(np.float32)
        self.c = (-mean / std)[None, :, :, None].astype(np.float32)
        a, s, p = FRAME
        n_out = lin.n_out
        self.bufs = [
            {
                "x": np.empty((BATCH, a, s, p), np.float32),
                "t0": np.empty((BATCH, a, n_out, p), np.float32),
                "t1": np.empty((BATCH, a, n_out, p), np.float32),
                "out": np.empty((BATCH, a, n_out, p), np.float32),
                "lo": np.empty((BATCH, 1, 1, 1), np.float32),
                "hi": np.empty((BATCH, 1, 1, 1), np.float32),
            }
            for _ in range(threads)
        ]
        self.threads = threads

    def one(self, b: np.ndarray, buf: dict[str, np.ndarray]) -> np.ndarray:
        x, t0, t1, out, lo, hi = (buf[k] for k in ("x", "t0", "t1", "out", "lo", "hi"))
        np.take(self.mm, b, axis=0, out=x)
        np.min(x, axis=(1, 2, 3), keepdims=True, out=lo)
        np.max(x, axis=(1, 2, 3), keepdims=True, out=hi)
        np.subtract(x, lo, out=x)
        np.subtract(hi, lo, out=hi)
        np.divide(np.float32(1), hi, out=hi, where=hi > 0)  # a constant frame stays 0
        np.multiply(x, hi, out=x)
        np.take(x, self.i0, axis=2, out=t0)
        np.multiply(t0, self.w0, out=t0)
        np.take(x, self.i1, axis=2, out=t1)
        np.multiply(t1, self.w1, out=t1)
        np.add(t0, t1, out=out)
        np.add(out, self.c, out=out)
        return out

    def run(self, batches: list[np.ndarray]) -> object:
        def part(s: slice) -> None:
            buf = self.bufs[s.start * self.threads // max(len(batches), 1)]
            for b in batches[s]:
                self.one(b, buf)

        return split_map(part, len(batches), self.threads)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--dir", default="/tmp/csipose-bench")
    ap.add_argument("--gb", type=float, default=1.0)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batches", type=int, default=200, help="random batches per timed round")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()

    path = build_store(Path(args.dir) / "store", args.gb)
    store = Store.open(path, window={"length": 1, "stride": 1})
    mm = store.array("amplitude")
    frame_bytes = int(np.prod(FRAME)) * 4
    t0 = time.perf_counter()
    # Warm the page cache and each side's own mapping: numpy's memmap and
    # csipose's map are two mappings of the file, and a page first touched
    # through one still costs a minor fault in the other. Training touches
    # every page every epoch, so the steady state is a fully faulted-in map.
    float(np.add.reduce(mm.reshape(-1), dtype=np.float64))
    warm = store.allocate(4096, ["amplitude"])
    for s0 in range(0, len(store), 4096):
        part = np.arange(s0, min(s0 + 4096, len(store)))
        store.gather(part, fields=["amplitude"], out={"amplitude": warm["amplitude"][: len(part)]})
    print(
        f"store: {store.n_frames} frames, {store.n_frames * frame_bytes / 1e9:.2f} GB; "
        f"warm-up read (both mappings) {time.perf_counter() - t0:.1f} s"
    )

    rng = np.random.default_rng(1)
    batches = [np.sort(rng.integers(0, len(store), BATCH)) for _ in range(args.batches)]
    frames = [store.windows[b] for b in batches]  # window length 1: the frame of each window
    out = store.allocate(BATCH, ["amplitude"])
    batch_gb = args.batches * BATCH * frame_bytes / 1e9

    lin = signal.linear_map(114, 56)
    mean = rng.uniform(0.3, 0.6, (3, 56))
    std = rng.uniform(0.1, 0.3, (3, 56))
    t = CsiTransform(
        minmax=True, subcarriers=lin, zscore=ZScore(mean, std, eps=0.0, source="bench")
    )
    full = store.with_options(transform={"amplitude": t})
    fout = full.allocate(BATCH, ["amplitude"])

    # Check the full paths agree with a float64 oracle before timing them.
    b = batches[0]
    x = np.take(mm, b, axis=0).astype(np.float64)
    x = (x - x.min(axis=(1, 2, 3), keepdims=True)) / np.ptp(x, axis=(1, 2, 3), keepdims=True)
    ref = (np.matmul(lin.dense(), x) - mean[None, :, :, None]) / std[None, :, :, None]
    full.gather(b, fields=["amplitude"], out=fout)
    np.testing.assert_allclose(fout["amplitude"][:, 0], ref, atol=1e-5, err_msg="csipose")
    np_load = NumpyLoad(mm, lin, mean, std, 1)
    np.testing.assert_allclose(np_load.one(frames[0], np_load.bufs[0]), ref, atol=1e-4)

    src = np.ones(2**28, np.float32)  # 1 GiB
    dst = np.empty_like(src)
    xr = rng.uniform(0, 1, (N_RESAMPLE, *FRAME)).astype(np.float32)
    yr = np.empty((N_RESAMPLE, 3, 56, 10), np.float32)
    w32 = lin.dense().astype(np.float32)
    i0, w0, i1, w1 = two_taps(lin)
    w0f, w1f = w0.astype(np.float32)[:, None], w1.astype(np.float32)[:, None]
    tr = np.empty_like(yr)
    signal.resample(xr, lin, out=yr)
    np.testing.assert_allclose(yr, np.matmul(w32, xr), atol=1e-5, err_msg="resampling")
    gb_r = xr.nbytes / 1e9

    rows = []
    for threads in args.threads:
        csipose.set_num_threads(threads)
        th = f"{threads} thr"
        load = NumpyLoad(mm, lin, mean, std, threads)
        bufs = [np.empty((BATCH, *FRAME), np.float32) for _ in range(threads)]

        def numpy_gather(threads=threads, bufs=bufs):
            def part(s: slice) -> None:
                buf = bufs[s.start * threads // len(frames)]
                for f in frames[s]:
                    np.take(mm, f, axis=0, out=buf)

            split_map(part, len(frames), threads)

        def numpy_lerp(threads=threads):
            def part(s: slice) -> None:
                np.take(xr[s], i0, axis=2, out=yr[s])
                np.multiply(yr[s], w0f, out=yr[s])
                np.take(xr[s], i1, axis=2, out=tr[s])
                np.multiply(tr[s], w1f, out=tr[s])
                np.add(yr[s], tr[s], out=yr[s])

            split_map(part, len(xr), threads)

        def numpy_matmul(threads=threads):
            with limit_blas(threads):
                np.matmul(w32, xr, out=yr)

        cases = {
            f"memcpy 1 GiB (np.copyto, {th})": (memcpy(src, dst, threads), 2**30 / 1e9),
            f"plain gather: numpy memmap np.take ({th})": (numpy_gather, batch_gb),
            f"plain gather: csipose Store.gather ({th})": (
                lambda: [store.gather(b, fields=["amplitude"], out=out) for b in batches],
                batch_gb,
            ),
            f"load path: numpy f32 in-place two-tap ({th})": (
                lambda load=load: load.run(frames),
                batch_gb,
            ),
            f"load path: csipose one pass ({th})": (
                lambda: [full.gather(b, fields=["amplitude"], out=fout) for b in batches],
                batch_gb,
            ),
            f"resample 114->56: numpy f32 two-tap lerp ({th})": (numpy_lerp, gb_r),
            f"resample 114->56: numpy f32 matmul (BLAS {th})": (numpy_matmul, gb_r),
            f"resample 114->56: csipose ({th})": (lambda: signal.resample(xr, lin, out=yr), gb_r),
        }
        med = timed_rounds({k: fn for k, (fn, _) in cases.items()}, args.rounds)
        names = list(cases)
        rate = {k: cases[k][1] / (med[k] / 1e3) for k in names}
        memcpy_rate = rate[names[0]]
        for i, k in enumerate(names):
            note = ""
            if i == 2:
                note = f"{rate[k] / memcpy_rate:.0%} of memcpy; {med[names[1]] / med[k]:.1f}x numpy"
            elif i == 4:
                note = f"{rate[k] / memcpy_rate:.0%} of memcpy; {med[names[3]] / med[k]:.1f}x numpy"
            elif i == 7:
                note = f"{med[names[5]] / med[k]:.1f}x lerp, {med[names[6]] / med[k]:.1f}x matmul"
            rows.append((k, f"{med[k]:.1f}", f"{rate[k]:.1f}", note))
    csipose.set_num_threads(0)
    machine = (
        f"{cpu_name()}, {os.cpu_count()} CPUs, kernels: {csipose.simd_level()}, numpy "
        f"{np.__version__}, BLAS: {blas_info()}; {args.batches} random batches of {BATCH} "
        f"windows [{', '.join(map(str, FRAME))}] per round from a "
        f"{store.n_frames * frame_bytes / 1e9:.2f} GB store, median of {args.rounds} rounds"
    )
    header = ("case", "median ms", "GB/s (input read)", "vs baseline")
    print(f"\n{machine}\n" if args.markdown else machine)
    print_table(header, rows, markdown=args.markdown, align="lrrl")


if __name__ == "__main__":
    main()
