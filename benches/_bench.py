"""What the benchmark scripts share: the machine's name and the printed table.

The scripts run as ``python benches/bench_*.py``, so this directory is on
``sys.path`` and they import it as ``_bench``.
"""

from __future__ import annotations

import itertools
import os
import platform
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def print_table(
    header: Sequence[str], rows: Sequence[Sequence[object]], *, markdown: bool, align: str
) -> None:
    """``rows`` under ``header`` as a markdown table or as aligned plain text;
    ``align`` holds one ``l`` or ``r`` per column."""
    cells = [[str(c) for c in r] for r in rows]
    if markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "".join("---|" if a == "l" else "---:|" for a in align))
        for r in cells:
            print("| " + " | ".join(r) + " |")
        return
    widths = [max(len(c) for c in col) for col in zip(header, *cells, strict=True)]
    for r in [list(header), *cells]:
        print(
            "  ".join(
                c.ljust(w) if a == "l" else c.rjust(w)
                for c, w, a in zip(r, widths, align, strict=True)
            )
        )


# What the benchmarks need to be fair to their baselines. numpy's elementwise
# kernels run on one thread but release the GIL on large arrays, so the fair
# "same threads" numpy baseline splits its work into contiguous parts over a
# thread pool (what a skilled user would do); the memory floor is a read (or
# copy) of the inputs split the same way.

T = TypeVar("T")

_POOLS: dict[int, ThreadPoolExecutor] = {}


def pool(threads: int) -> ThreadPoolExecutor:
    """One long-lived pool per thread count, so thread start-up is not timed."""
    if threads not in _POOLS:
        _POOLS[threads] = ThreadPoolExecutor(threads)
    return _POOLS[threads]


def parts(n: int, threads: int) -> list[slice]:
    """``threads`` contiguous slices covering ``range(n)``."""
    edges = np.linspace(0, n, threads + 1).astype(int)
    return [slice(int(a), int(b)) for a, b in itertools.pairwise(edges)]


def split_map(fn: Callable[[slice], T], n: int, threads: int) -> list[T]:
    """``fn`` over ``threads`` contiguous slices of ``range(n)``, in parallel."""
    if threads == 1:
        return [fn(slice(0, n))]
    return list(pool(threads).map(fn, parts(n, threads)))


def read_once(arrays: Sequence[np.ndarray], threads: int) -> Callable[[], Any]:
    """The memory floor: read every byte of ``arrays`` once, split over
    ``threads``: a float32 (or float64) sum per part, whose arithmetic hides
    under the loads, and for other types (a boolean mask) an OR over the bytes
    as 64-bit words. (A sum of the booleans themselves counts them through
    int64, about 6 ms for 17 MB on one core: it made the floor of OKS, whose
    visibility mask is such an array, a third too long.)"""
    flats = [_words(a.reshape(-1)) for a in arrays]

    def reduce(f: np.ndarray, s: slice) -> Any:
        if f.dtype.kind == "f":
            return np.add.reduce(f[s])
        return np.bitwise_or.reduce(f[s])

    def go() -> Any:
        return [split_map(lambda s, f=f: reduce(f, s), len(f), threads) for f in flats]

    return go


def _words(a: np.ndarray) -> np.ndarray:
    """``a``'s bytes as float32 or float64 values, or else as uint64 words
    (the last few bytes dropped: under one word)."""
    if a.dtype.kind == "f" and a.dtype.itemsize in (4, 8):
        return a
    if a.dtype.itemsize == 4:
        return a.view(np.float32)
    b = a.view(np.uint8)
    return b[: len(b) // 8 * 8].view(np.uint64)


def memcpy(src: np.ndarray, dst: np.ndarray, threads: int) -> Callable[[], Any]:
    """np.copyto of ``src`` into ``dst``, halves on ``threads`` threads."""
    s, d = src.reshape(-1), dst.reshape(-1)

    def go() -> Any:
        return split_map(lambda sl: np.copyto(d[sl], s[sl]), len(s), threads)

    return go


def blas_info() -> str:
    """Which BLAS kernel numpy runs, for the table's header (threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    infos = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    env = ",".join(
        f"{k}={os.environ[k]}" for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ
    )
    desc = "; ".join(f"{i.get('internal_api')} {i.get('architecture')}" for i in infos) or "none"
    return desc + (f" ({env})" if env else "")


def limit_blas(threads: int) -> Any:
    """A context that holds numpy's BLAS to ``threads`` threads (a no-op
    without threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(threads, user_api="blas")


def timed_rounds(cases: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Median ms of each case, every case once per round in the same order
    (after one warm-up call each)."""
    for fn in cases.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: float(np.median(ts)) * 1e3 for name, ts in times.items()}


#: MM-Fi-shaped CSI frames [antennas, subcarriers, packets], the data benchmarks' unit.
FRAME = (3, 114, 10)


def write_frames_store(path: Any, n: int, converter: str) -> None:
    """A store of ``n`` random amplitude frames of ``FRAME`` (uniform 0-40, seed 0) in one
    sequence, written 10,000 frames at a time (overwriting ``path``)."""
    from csipose import signal
    from csipose.data import StoreWriter

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
        provenance={"converter": converter},
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


def load_path_store(directory: str, rng: np.random.Generator, eps: float = 1e-6) -> tuple[Any, Any]:
    """The store bench_data.py wrote (windows of one frame) and the same store with the
    load path's transform (min-max, 114 -> 56 linear map, a z-score drawn from ``rng``),
    every page warmed through csipose's mapping first."""
    from pathlib import Path

    from csipose import signal
    from csipose.data import CsiTransform, Store, ZScore

    store = Store.open(Path(directory) / "store", window={"length": 1, "stride": 1})
    mean, std = rng.uniform(0.3, 0.6, (3, 56)), rng.uniform(0.1, 0.3, (3, 56))
    t = CsiTransform(minmax=True, subcarriers=signal.linear_map(114, 56),
                     zscore=ZScore(mean, std, eps=eps, source="bench"))  # fmt: skip
    for s0 in range(0, len(store), 4096):
        store.gather(np.arange(s0, min(s0 + 4096, len(store))), fields=["amplitude"])
    return store, store.with_options(transform={"amplitude": t})
