"""CountNet inference latency: Rust (candle) against torch eager and onnxruntime, one run.

    python benches/bench_countnet.py [--threads 2] [--rounds 200] [--markdown]

One CountNet with seeded weights, z-score and temperatures is written as a
checkpoint, loaded by each runtime, and timed on the same random windows
[B, 56, 20] at B = 1 and B = 64 (median of ``rounds`` calls, taken in blocks of
20 per runtime in turn, each block after warm-up calls, so that machine noise hits
every runtime alike and no runtime is timed while another's threads still spin):

* csipose.CountNet (Rust, candle-core CPU): windows -> calibrated
  probabilities, counts, confidences (numpy in and out, GIL released);
* torch eager: ``CountNet.predict`` under no_grad (the same outputs);
* onnxruntime: the ``csipose export`` graph, CPU provider, windows -> the
  calibrated logits (softmax / sigmoid not included; they are 9 numbers a window).

Before timing, the outputs are compared (max abs difference of the
probabilities, Rust vs torch). Ratios are time / candle's time (> 1: slower
than candle). Threads: torch.set_num_threads and onnxruntime's intra-op pool
are set to ``--threads``; candle sizes its own pool from RAYON_NUM_THREADS
(set here to ``--threads`` before csipose is imported).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from _bench import cpu_name, print_table

BLOCK = 20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    os.environ["RAYON_NUM_THREADS"] = str(args.threads)

    import numpy as np
    import onnxruntime as ort
    import torch
    from safetensors.torch import save_file

    import csipose
    from csipose.deploy.export import export_onnx
    from csipose.models import CountNet

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = CountNet()
    g = torch.Generator().manual_seed(1)
    model.set_preprocess(torch.randn(56, generator=g), torch.rand(56, generator=g) + 0.5)
    model.set_temperatures(1.3, 0.8)
    model.eval()
    with tempfile.TemporaryDirectory() as tmp:
        ck = Path(tmp) / "ck"
        ck.mkdir()
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, ck / "model.safetensors",
                  metadata={"format": "csipose-countnet-checkpoint"})  # fmt: skip
        net = csipose.CountNet.load(ck)
        onnx_path = export_onnx(ck, Path(tmp) / "countnet.onnx")
        so = ort.SessionOptions()
        so.intra_op_num_threads = args.threads
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])

        rng = np.random.default_rng(0)
        runtimes = {
            "csipose.CountNet (Rust, candle)": lambda x: net.predict(x),
            "torch eager (CountNet.predict)": lambda x: model.predict(torch.from_numpy(x)),
            "onnxruntime (calibrated logits)": lambda x: sess.run(None, {"csi_window": x}),
        }
        print(f"torch {torch.__version__}, onnxruntime {ort.__version__}, csipose {csipose.__version__}; "
              f"{cpu_name()}, {os.cpu_count()} CPUs; {args.threads} threads each; median of {args.rounds}")  # fmt: skip
        rows = []
        for batch in (1, 64):
            x = rng.normal(0, 2, (batch, 56, 20)).astype(np.float32)
            diff = float(
                np.max(
                    np.abs(
                        net.predict(x).probabilities - model.predict(torch.from_numpy(x))[0].numpy()
                    )
                )
            )
            times: dict[str, list[float]] = {name: [] for name in runtimes}
            # Blocks of BLOCK calls per runtime, round-robin, each after `warmup` untimed
            # calls: calls interleaved one by one would time each runtime while the
            # previous one's thread pool (torch's OpenMP, candle's barrier pool) still spins.
            for _ in range(-(-args.rounds // BLOCK)):
                for name, fn in runtimes.items():
                    for r in range(args.warmup + BLOCK):
                        t0 = time.perf_counter()
                        fn(x)
                        if r >= args.warmup:
                            times[name].append(time.perf_counter() - t0)
            base = statistics.median(times[next(iter(runtimes))])
            for name, ts in times.items():
                med = statistics.median(ts)
                rows.append((batch, name, med * 1e3, med * 1e6 / batch, med / base, diff))
    print()
    print_table(("batch", "runtime", "median ms / call", "us / window", "time / candle's"),
                [(b, name, f"{ms:.3f}", f"{us:.1f}", f"{ratio:.2f}x") for b, name, ms, us, ratio, _ in rows],
                markdown=args.markdown, align="rlrrr")  # fmt: skip
    for b in (1, 64):
        d = next(r[5] for r in rows if r[0] == b)
        print(f"batch {b}: max |p_rust - p_torch| = {d:.2e}")


if __name__ == "__main__":
    main()
