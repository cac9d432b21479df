"""Sparse temporal attention: the Rust kernel against torch, forward and forward+backward.

Rows (B = 4, 8 query heads on 2 kv heads, head dim 32, the default pattern:
window 32, blocks of 16 with landmarks, token 0 global, log-stride, causal):

* ``rust sparse``: csipose.nn.functional.sparse_attention on CPU tensors;
* ``sdpa dense``: torch scaled_dot_product_attention, no mask (kv heads repeated
  to 8) -- the full T x T attention the sparse one replaces;
* ``sdpa masked``: SDPA over ``[real tokens | block means]`` with the pattern's
  boolean mask -- the same result as the kernel, computed densely; skipped
  where the T x (T + T/16) scores of one call would pass ``--mask-limit-gb``;
* ``torch gathered``: csipose.nn.gathered.gathered_attention, each query's keys
  gathered into [B, T, K, H, D] (the CUDA path; the best blocked/local torch
  formulation written here).

Times are the median of ``--repeat`` runs after a warm-up, torch and csipose on
the same thread count. Peak memory (``--memory``) is measured in a fresh
subprocess per cell: the Linux peak-RSS counter (VmHWM) is reset after the
inputs are built and read after the call, so it covers torch's and Rust's
allocations alike.

Streaming (``--stream`` prints only this table): median latency of one
``StreamState.step`` (batch 1, dim 64, 4 query heads on 1 kv head, head dim 32)
after T frames, Rust (``_native.SparseAttentionStream``) against the torch step
(``stream(rust=False)``: gathered keys, einsum softmax) in the same process,
for the default pattern with ``horizon=512`` and without a horizon; and the
rows the cache holds (tokens + globals + block means, each [B, Hk, D] of keys
and of values) in KiB. With the horizon both columns are flat in T; without it
the cache grows with T (log-stride links reach every past token).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import torch

import csipose
from csipose.nn import SparsePattern, SparseTemporalAttention
from csipose.nn.functional import sparse_attention
from csipose.nn.gathered import gathered_attention
from csipose.nn.reference import block_means

B, HQ, HK, D = 4, 8, 2, 32
PATTERN = SparsePattern()


def inputs(t: int, grad: bool) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    q = torch.randn(B, t, HQ, D, generator=g, requires_grad=grad)
    k = torch.randn(B, t, HK, D, generator=g, requires_grad=grad)
    v = torch.randn(B, t, HK, D, generator=g, requires_grad=grad)
    return q, k, v


def rust(q, k, v):
    return sparse_attention(q, k, v, PATTERN)


def sdpa_dense(q, k, v):
    g = HQ // HK
    kk = k.repeat_interleave(g, 2).transpose(1, 2)
    vv = v.repeat_interleave(g, 2).transpose(1, 2)
    return torch.nn.functional.scaled_dot_product_attention(q.transpose(1, 2), kk, vv)


def sdpa_masked(q, k, v):
    t, g = q.shape[1], HQ // HK
    kk = torch.cat([k, block_means(k, PATTERN)], 1).repeat_interleave(g, 2).transpose(1, 2)
    vv = torch.cat([v, block_means(v, PATTERN)], 1).repeat_interleave(g, 2).transpose(1, 2)
    mask = torch.cat(
        [torch.from_numpy(PATTERN.mask(t)), torch.from_numpy(PATTERN.landmark_mask(t))], 1
    )
    return torch.nn.functional.scaled_dot_product_attention(
        q.transpose(1, 2), kk, vv, attn_mask=mask
    )


def gathered(q, k, v):
    return gathered_attention(q, k, v, PATTERN)


METHODS = {
    "rust sparse": rust,
    "sdpa dense": sdpa_dense,
    "sdpa masked": sdpa_masked,
    "torch gathered": gathered,
}


def run_once(fn, t: int, backward: bool, tensors=None) -> float:
    q, k, v = tensors if tensors is not None else inputs(t, backward)
    start = time.perf_counter()
    out = fn(q, k, v)
    if backward:
        out.sum().backward()
    return time.perf_counter() - start


def median_time(fn, t: int, backward: bool, repeat: int) -> float:
    tensors = inputs(t, backward)
    run_once(fn, t, backward, tensors)  # warm-up (pattern tables, allocator)
    times = []
    for _ in range(repeat):
        for x in tensors:
            x.grad = None
        times.append(run_once(fn, t, backward, tensors))
    return statistics.median(times)


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def measure_peak(name: str, t: int, backward: bool) -> float:
    """Peak RSS growth (MiB) of one call in this process: the kernel's peak
    counter is reset (``/proc/self/clear_refs`` = 5, Linux) after the inputs
    exist, so the growth covers torch's and Rust's allocations alike."""
    x = inputs(t, backward)
    PATTERN.mask(1)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    base = _status_kib("VmRSS")
    out = METHODS[name](*x)
    if backward:
        out.sum().backward()
    return (_status_kib("VmHWM") - base) / 1024


def peak_mib(name: str, t: int, backward: bool, threads: int) -> float | None:
    """``measure_peak`` in a fresh subprocess (nothing cached from earlier cells)."""
    code = (
        "import sys, json; sys.path.insert(0, 'benches');"
        "import bench_attention as b, torch, csipose;"
        f"torch.set_num_threads({threads}); csipose.set_num_threads({threads});"
        f"print(json.dumps(b.measure_peak({name!r}, {t}, {backward})))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if r.returncode != 0:
        return None
    return float(json.loads(r.stdout.strip().splitlines()[-1]))


STREAM_PATTERNS = {"horizon 512": SparsePattern(horizon=512), "no horizon": PATTERN}


def stream_rows(ts: list[int], repeat: int) -> list[list[object]]:
    """One stream per (pattern, backend) run to max(ts); latency and cache at each T."""
    rows: list[list[object]] = []
    x = torch.randn(1, 64, generator=torch.Generator().manual_seed(0))
    for label, pattern in STREAM_PATTERNS.items():
        torch.manual_seed(0)
        m = SparseTemporalAttention(64, 4, 1, pattern)
        states = {"rust": m.stream(batch=1), "torch": m.stream(batch=1, rust=False)}
        lat: dict[str, dict[int, float]] = {name: {} for name in states}
        cache: dict[int, float] = {}
        for name, state in states.items():
            for t in sorted(ts):
                while state.t < t:
                    state.step(x)
                times = []
                for _ in range(repeat):
                    start = time.perf_counter()
                    state.step(x)
                    times.append(time.perf_counter() - start)
                lat[name][t] = statistics.median(times)
                if name == "rust":
                    tok, glob, blk = state.cache_rows()
                    cache[t] = (tok + glob + blk) * 2 * m.kv_heads * m.head_dim * 4 / 1024
        for t in sorted(ts):
            r, b = lat["rust"][t], lat["torch"][t]
            rows.append(
                [label, t, f"{r * 1e6:.0f}", f"{b * 1e6:.0f}", f"{b / r:.2f}x", f"{cache[t]:.0f}"]
            )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--t", type=int, nargs="+", default=[256, 1024, 4096, 16384])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dense-max-t", type=int, default=4096, help="skip dense SDPA above this T")
    ap.add_argument("--gathered-max-t", type=int, default=4096, help="skip gathered above this T")
    ap.add_argument("--mask-limit-gb", type=float, default=4.0)
    ap.add_argument("--memory", action="store_true", help="also measure peak RSS per cell")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--stream", action="store_true", help="only the streaming table")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    csipose.set_num_threads(a.threads)
    shapes = "" if a.stream else f"{B=} Hq={HQ} Hk={HK} {D=}, {PATTERN}; "
    print(f"# {shapes}threads={a.threads}; {csipose.simd_level()}")
    rows = []
    for t in [] if a.stream else a.t:
        for backward in (False, True):
            res: dict[str, float | None] = {}
            mem: dict[str, float | None] = {}
            for name, fn in METHODS.items():
                skip = False
                if name.startswith("sdpa") and t > a.dense_max_t:
                    skip = True
                if name == "torch gathered" and t > a.gathered_max_t:
                    skip = True
                scores_gb = B * HQ * t * (t + t // 16) * 4 * (3 if backward else 1) / 2**30
                if name == "sdpa masked" and scores_gb > a.mask_limit_gb:
                    skip = True
                if skip:
                    res[name] = mem[name] = None
                    continue
                res[name] = median_time(fn, t, backward, a.repeat)
                mem[name] = peak_mib(name, t, backward, a.threads) if a.memory else None
            r = res["rust sparse"]
            for name in METHODS:
                s = res[name]
                rows.append(
                    [
                        t,
                        "fwd+bwd" if backward else "fwd",
                        name,
                        "skipped" if s is None else f"{s * 1e3:.2f}",
                        "-" if s is None or r is None else f"{s / r:.2f}x",
                        "-" if mem[name] is None else f"{mem[name]:.0f}",
                    ]
                )
            sys.stdout.flush()
    if rows:
        _bench_table(rows, a.markdown)
        print()
    _print(
        [
            "pattern",
            "T (frames seen)",
            "rust step (us)",
            "torch step (us)",
            "torch / rust",
            "cache (KiB)",
        ],
        stream_rows(a.t, 50),
        a.markdown,
        "lrrrrr",
    )


def _bench_table(rows, markdown: bool) -> None:
    _print(
        ["T", "pass", "method", "ms (median)", "time / rust", "peak RSS growth (MiB)"],
        rows,
        markdown,
        "rllrrr",
    )


def _print(header, rows, markdown: bool, align: str) -> None:
    from _bench import print_table

    print_table(header, rows, markdown=markdown, align=align)


if __name__ == "__main__":
    main()
