"""Inference latency of both Rust models against torch eager and onnxruntime, one run.

    python benches/bench_inference.py [--threads 1,2] [--rounds 60] [--models countnet,wiflow-tiny,...] [--markdown]

Each model gets seeded random weights (BatchNorm statistics randomised too),
is written as a checkpoint, loaded by each runtime and timed on the same random
inputs at batch 1 and 64: median of ``rounds`` calls, taken in blocks per
runtime in turn, each block after warm-up calls, so that machine noise hits
every runtime alike.

* pose models (WiFlow-STD presets at the WiFlow profile [540, 20] -> [15, 2];
  the MM-Fi variant at [342, 10] -> [17, 3]): ``csipose.PoseNet.forward``
  (Rust, model only) against the torch module under no_grad and its ONNX
  export (dynamo, opset 18) under onnxruntime's CPU provider;
* CountNet: ``csipose.CountNet.predict`` (Rust) against
  ``CountNet.predict`` in torch and the ``csipose export`` graph.

Threads: for each count in ``--threads``, ``csipose.set_num_threads``,
``torch.set_num_threads`` and onnxruntime's intra-op pool all get it (a new
session per count); RAYON_NUM_THREADS is set to the largest before csipose is
imported. Ratios are time / Rust's time (> 1: slower than Rust). Outputs are
compared before timing (max abs difference against torch).

A second table checks issue 12's targets per model and thread count: Rust
batch-1 latency <= torch eager's and <= 1.5 x onnxruntime's; Rust batch-64
throughput >= torch eager's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from _bench import cpu_name, print_table

POSE = {
    "wiflow-full": (540, 20, 15, 2, {}),
    "wiflow-half": (540, 20, 15, 2, {}),
    "wiflow-quarter": (540, 20, 15, 2, {}),
    "wiflow-tiny": (540, 20, 15, 2, {"input_pw_groups": 4}),
    "wiflow-mmfi": (342, 10, 17, 3, {}),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("--rounds", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--block", type=int, default=10)
    ap.add_argument("--models", default=",".join(["countnet", *POSE]))
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    counts = [int(v) for v in args.threads.split(",")]
    os.environ["RAYON_NUM_THREADS"] = str(max(counts))

    import onnxruntime as ort
    import torch

    import csipose

    print(f"torch {torch.__version__}, onnxruntime {ort.__version__}, csipose {csipose.__version__}; "
          f"{cpu_name()}, {os.cpu_count()} CPUs; threads {counts} (same for every runtime); "
          f"median of {args.rounds}")  # fmt: skip
    rows = []
    for threads in counts:
        rows += run(args, threads)
    print()
    print_table(("model", "threads", "batch", "runtime", "median ms / call", "us / window", "time / Rust's"),
                [(m, th, b, k, f"{ms:.3f}", f"{us:.1f}", f"{ratio:.2f}x")
                 for m, th, b, k, ms, us, ratio, _ in rows],
                markdown=args.markdown, align="lrrlrrr")  # fmt: skip
    print()
    print_targets(rows, args.markdown)


def run(args, threads: int) -> list[tuple]:
    import numpy as np
    import onnxruntime as ort
    import torch
    from safetensors.torch import save_file

    import csipose

    torch.set_num_threads(threads)
    csipose.set_num_threads(threads)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    rows = []
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            if name == "countnet":
                runtimes, make_x, diff_of = countnet_runtimes(Path(tmp), so, save_file)
            else:
                runtimes, make_x, diff_of = pose_runtimes(name, Path(tmp), so)
            for batch in (1, 64):
                x = make_x(rng, batch)
                diff = diff_of(x)
                times: dict[str, list[float]] = {k: [] for k in runtimes}
                for _ in range(-(-args.rounds // args.block)):
                    for k, fn in runtimes.items():
                        for r in range(args.warmup + args.block):
                            t0 = time.perf_counter()
                            fn(x)
                            if r >= args.warmup:
                                times[k].append(time.perf_counter() - t0)
                base = statistics.median(times[next(iter(runtimes))])
                for k, ts in times.items():
                    med = statistics.median(ts)
                    rows.append(
                        (name, threads, batch, k, med * 1e3, med * 1e6 / batch, med / base, diff)
                    )
                print(f"{name} {threads} thread(s) batch {batch}: done "
                      f"(max |rust - torch| = {diff:.2e})", flush=True)  # fmt: skip
    return rows


def print_targets(rows: list[tuple], markdown: bool) -> None:
    """Issue 12's targets from the measured rows: runtimes in the order Rust, torch, onnxruntime."""
    by: dict[tuple, list[float]] = {}
    for m, th, b, _, ms, *_ in rows:
        by.setdefault((m, th, b), []).append(ms)
    out = []
    for (m, th, b), (rust, torch_ms, ort_ms) in by.items():
        if b == 1:
            out.append((m, th, "batch-1 latency: Rust / torch eager <= 1", f"{rust / torch_ms:.2f}",
                        "met" if rust <= torch_ms else "MISSED"))  # fmt: skip
            out.append((m, th, "batch-1 latency: Rust / onnxruntime <= 1.5", f"{rust / ort_ms:.2f}",
                        "met" if rust <= 1.5 * ort_ms else "MISSED"))  # fmt: skip
        else:
            out.append((m, th, f"batch-{b} throughput: Rust / torch eager >= 1",
                        f"{torch_ms / rust:.2f}", "met" if rust <= torch_ms else "MISSED"))  # fmt: skip
    print_table(("model", "threads", "target", "ratio", "status"), out, markdown=markdown,
                align="lrlrl")  # fmt: skip


def pose_runtimes(name: str, tmp: Path, so):
    import numpy as np
    import onnxruntime as ort
    import torch

    import csipose

    sys_path = Path(__file__).resolve().parents[1] / "tests"
    import sys

    sys.path.insert(0, str(sys_path))
    from posenet_checkpoints import metadata, random_model, write

    c, t, k, d, options = POSE[name]
    model = random_model(name, c, t, k, d, options)
    file = write(
        model, tmp / name, metadata(name, options, np.zeros((k, d)), time_steps=t, frames=t)
    )
    net = csipose.PoseNet.load(file)
    onnx_file = tmp / f"{name}.onnx"
    batch = torch.export.Dim("batch", min=1)
    torch.onnx.export(model, (torch.zeros(2, c, t),), onnx_file, input_names=["x"], output_names=["y"],
                      opset_version=18, dynamo=True, external_data=False, verbose=False,
                      dynamic_shapes={"x": {0: batch}})  # fmt: skip
    sess = ort.InferenceSession(str(onnx_file), so, providers=["CPUExecutionProvider"])

    def torch_fn(x):
        with torch.no_grad():
            return model(torch.from_numpy(x))

    runtimes = {
        "csipose.PoseNet.forward (Rust)": lambda x: net.forward(x),
        "torch eager (no_grad)": torch_fn,
        "onnxruntime (model graph)": lambda x: sess.run(None, {"x": x}),
    }

    def diff(x):
        return float(np.max(np.abs(net.forward(x) - torch_fn(x).numpy())))

    return runtimes, lambda rng, b: rng.normal(0, 1, (b, c, t)).astype(np.float32), diff


def countnet_runtimes(tmp: Path, so, save_file):
    import numpy as np
    import onnxruntime as ort
    import torch

    import csipose
    from csipose.deploy.export import export_onnx
    from csipose.models import CountNet

    torch.manual_seed(0)
    model = CountNet()
    g = torch.Generator().manual_seed(1)
    model.set_preprocess(torch.randn(56, generator=g), torch.rand(56, generator=g) + 0.5)
    model.set_temperatures(1.3, 0.8)
    model.eval()
    ck = tmp / "countnet"
    ck.mkdir()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, ck / "model.safetensors",
              metadata={"format": "csipose-countnet-checkpoint"})  # fmt: skip
    net = csipose.CountNet.load(ck)
    sess = ort.InferenceSession(
        str(export_onnx(ck, tmp / "countnet.onnx")), so, providers=["CPUExecutionProvider"]
    )
    runtimes = {
        "csipose.CountNet (Rust)": lambda x: net.predict(x),
        "torch eager (CountNet.predict)": lambda x: model.predict(torch.from_numpy(x)),
        "onnxruntime (calibrated logits)": lambda x: sess.run(None, {"csi_window": x}),
    }

    def diff(x):
        return float(
            np.max(
                np.abs(net.predict(x).probabilities - model.predict(torch.from_numpy(x))[0].numpy())
            )
        )

    return runtimes, lambda rng, b: rng.normal(0, 2, (b, 56, 20)).astype(np.float32), diff


if __name__ == "__main__":
    main()
