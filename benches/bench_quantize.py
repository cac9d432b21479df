"""int8 against fp32 in onnxruntime on the ADR-175 model (WiFlow-STD half, [540, 20]), one run.

    python benches/bench_quantize.py [--threads 1,2] [--rounds 20] [--profile] [--markdown]
    python benches/bench_quantize.py --models runs/wiflow-half.quantized   # a trained run's models

Speed does not depend on trained weights, so the model has seeded random weights
(BatchNorm statistics randomised too, as bench_inference.py) and is calibrated on
random windows. Each row is one ONNX export of the same model, timed in
onnxruntime's CPU provider (graph optimisations on, as deployed) at batch 1 and
64 with the same intra-op threads for all: median of ``rounds`` calls, taken in
blocks per model in turn, each block after warm-up calls, so that machine noise
hits every model alike. Ratio = fp32's time / the row's time (> 1: faster than
fp32; the README's target is >= 1.5 at batch 64).

Rows:

* ``fp32``: the float model (the baseline: the best float32 onnxruntime graph).
* ``ptq every conv, Q after SiLU (before)``: the PT2E graph as ``csipose quantize``
  exported it before: every conv int8, its QuantizeLinear after the activation, so
  onnxruntime fuses almost no DQ -> Conv -> Q group and runs float convs on weights
  dequantized at each call.
* ``ptq every conv, Q after conv``: every conv's own output quantized too, so every
  conv becomes a QLinearConv (u8 activations, s8 per-channel weights), the conv
  stem's 1-32-channel Conv2d layers included.
* ``ptq Conv1d only (now)``: ``csipose quantize --method ptq`` now
  (``csipose.quantize.int8_scope``): the Conv1d layers (TCN, 97% of the weights,
  and the attention's q/k/v) as QLinearConv, the Conv2d stem and decoder float32.
* ``ort quantize_static``: onnxruntime's own int8 QDQ of the fp32 file (per-channel
  s8 weights, u8 activations): what onnxruntime's tooling achieves on this graph.

``--models DIR`` times the ONNX files of a ``csipose quantize`` output instead (every
``DIR/METHOD/model.onnx``, fp32 first): the same interleaved blocks, so a trained
run's report latencies, taken one model after the other, can be re-measured side
by side on an idle machine.

``--profile`` adds onnxruntime's per-op-type kernel time at batch 64 (first thread
count), i.e. where the time goes in each graph, and the op types of the optimised
graph (QLinearConv counts).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _bench import cpu_name, print_table

C, T, K, D = 540, 20, 15, 2
OLD = "ptq every conv, Q after SiLU (before)"
EVERY = "ptq every conv, Q after conv"
NOW = "ptq Conv1d only (now)"


def build(tmp: Path) -> dict[str, Path]:
    """Every row's ONNX file from one seeded random wiflow-half."""
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from csipose.quantize import onnx_export, ort_reference, ptq
    from posenet_checkpoints import random_model

    model = random_model("wiflow-half", C, T, K, D, {})
    x = torch.randn(256, C, T, generator=torch.Generator().manual_seed(0))
    calib, check = x[:128], x[128:192]
    exported = ptq.export(model, calib)
    files = {"fp32": onnx_export.export(model, x, tmp / "fp32.onnx", {})}
    for name, kw in ((OLD, {"every_layer": True, "conv_outputs": False}),
                     (EVERY, {"every_layer": True}),
                     (NOW, {})):  # fmt: skip
        q = ptq.ptq(model, calib, exported=exported, **kw)
        f = onnx_export.export(q, x, tmp / f"{len(files)}.onnx", {})
        r = onnx_export.check(q, f, check)  # the file is the fake-quant graph (raises if not)
        print(f"{name}: ONNX vs torch max abs {r['max_abs']:.2e} (bound {r['bound']:.2e}); "
              f"fused int8 session vs torch {r['optimised_session_max_abs']:.2e}", flush=True)  # fmt: skip
        files[name] = f
    files["ort quantize_static"] = ort_reference.quantize_static(
        files["fp32"], tmp / "ort.onnx", calib
    )
    return files


def quantized_files(out: Path) -> dict[str, Path]:
    """``csipose quantize``'s models in ``out``, fp32 (the baseline) first."""
    files = {
        d.name: d / "model.onnx" for d in sorted(out.iterdir()) if (d / "model.onnx").is_file()
    }
    if "fp32" not in files:
        raise SystemExit(f"{out}: no fp32/model.onnx; pass a csipose quantize output directory")
    return {"fp32": files.pop("fp32"), **files}


def session(path: Path, threads: int, profile: str | None = None):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    if profile:
        so.enable_profiling = True
        so.profile_file_prefix = profile
        so.optimized_model_filepath = profile + ".opt.onnx"
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def profile(files: dict[str, Path], threads: int, x, tmp: Path, reps: int = 10) -> None:
    """onnxruntime's kernel time per op type at batch 64, and the optimised graph's ops."""
    import onnx

    print(
        f"\nwhere the time goes at batch {len(x)}, {threads} thread(s), ms per call (onnxruntime profile):"
    )
    for i, (name, f) in enumerate(files.items()):
        prefix = str(tmp / f"prof{i}")
        s = session(f, threads, prefix)
        for _ in range(reps):
            s.run(None, {"csi": x})
        events = json.loads(Path(s.end_profiling()).read_text())
        per_op: collections.Counter[str] = collections.Counter()
        for e in events:
            if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
                per_op[e["args"]["op_name"]] += e["dur"] / 1e3 / reps
        ops = collections.Counter(n.op_type for n in onnx.load(prefix + ".opt.onnx").graph.node)
        total = sum(per_op.values())
        top = ", ".join(
            f"{op} {ms:.1f} ({100 * ms / total:.0f}%)" for op, ms in per_op.most_common(8)
        )
        print(f"- {name}: {total:.1f} ms: {top}")
        print(f"  optimised graph: QLinearConv {ops['QLinearConv']}, float Conv {ops['Conv'] + ops['FusedConv']}, "
              f"QuantizeLinear {ops['QuantizeLinear']}, DequantizeLinear {ops['DequantizeLinear']}")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--block", type=int, default=5)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--models", type=Path, help="a csipose quantize output directory")
    args = ap.parse_args()
    threads = [int(t) for t in args.threads.split(",")]

    import numpy as np
    import onnxruntime as ort
    import torch

    torch.set_num_threads(threads[0])
    print(f"torch {torch.__version__}, onnxruntime {ort.__version__}; {cpu_name()}, {os.cpu_count()} CPUs; "
          f"{args.models or f'wiflow-half [{C}, {T}] -> [{K}, {D}]'}; median of {args.rounds}")  # fmt: skip
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        files = quantized_files(args.models) if args.models else build(tmp)
        sizes = {k: f.stat().st_size for k, f in files.items()}
        for th in threads:
            sessions = {k: session(f, th) for k, f in files.items()}
            c, t = sessions["fp32"].get_inputs()[0].shape[1:]  # a --models run's own geometry
            for batch in (1, 64):
                x = rng.normal(0, 1, (batch, c, t)).astype(np.float32)
                times: dict[str, list[float]] = {k: [] for k in sessions}
                for _ in range(-(-args.rounds // args.block)):
                    for k, s in sessions.items():
                        for r in range(args.warmup + args.block):
                            t0 = time.perf_counter()
                            s.run(None, {"csi": x})
                            if r >= args.warmup:
                                times[k].append(time.perf_counter() - t0)
                base = statistics.median(times["fp32"])
                for k, ts in times.items():
                    med = statistics.median(ts)
                    rows.append((k, th, batch, med * 1e3, base / med, sizes["fp32"] / sizes[k]))
                print(f"{th} thread(s), batch {batch}: done", flush=True)
        if args.profile:
            profile(files, threads[0], rng.normal(0, 1, (64, c, t)).astype(np.float32), tmp)
    print()
    print_table(("model (onnxruntime CPU)", "threads", "batch", "median ms / call", "fp32 time / time",
                 "fp32 bytes / bytes"),
                [(k, th, b, f"{ms:.2f}", f"{sp:.2f}x", f"{sz:.2f}x") for k, th, b, ms, sp, sz in rows],
                markdown=args.markdown, align="lrrrrr")  # fmt: skip


if __name__ == "__main__":
    main()
