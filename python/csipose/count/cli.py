"""``csipose count train | eval | predict | health``."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from csipose.errors import CsiposeError

#: The acceptance gate upstream set itself (ADR-103, v0.1.0).
GATE = {"spearman_conf_correct": 0.5, "mae": 0.6}


def summary(reports: dict[str, dict[str, Any]]) -> str:
    """One table over several parts, the model beside the majority-class baseline."""
    keys = ("accuracy", "within_1", "mae", "spearman_conf_correct", "ece")
    lines = ["| part | windows | " + " | ".join(f"{k} model | {k} baseline" for k in keys) + " |",
             "|---|---:|" + "---:|---:|" * len(keys)]  # fmt: skip

    def f(v: Any) -> str:
        return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"

    for part, r in reports.items():
        m, b = r["model"], r["majority_baseline"]
        cells = " | ".join(f"{f(m[k]['value'])} | {f(b[k]['value'])}" for k in keys)
        lines.append(f"| {part} | {m['n_windows']} | {cells} |")
    lines.append("")
    for part, r in reports.items():
        m = r["model"]
        zero = m["zero_accuracy_classes"]["value"]
        if zero:
            lines.append(f"- {part}: counts never predicted right (0 % accuracy): {', '.join(map(str, zero))}")
        s, mae = m["spearman_conf_correct"]["value"], m["mae"]["value"]
        ok = s is not None and not math.isnan(s) and s >= GATE["spearman_conf_correct"] and mae <= GATE["mae"]
        lines.append(f"- {part}: upstream gate (Spearman >= 0.5 and MAE <= 0.6): {'met' if ok else 'NOT met'} "
                     f"(Spearman {f(s)}, MAE {f(mae)})")  # fmt: skip
    first = next(iter(reports.values()))
    lines.append(f"- baseline: {first['baseline_definition']}")
    return "\n".join(lines) + "\n"


def _cmd_train(args: argparse.Namespace) -> int:
    from csipose.count import config
    from csipose.count.evaluate import evaluate
    from csipose.count.train import train

    items = list(args.items)
    files = [i for i in items if "=" not in i]
    if len(files) > 1:
        raise CsiposeError(f"one configuration file at most, got {', '.join(files)}")
    overrides = [i for i in items if "=" in i]
    if args.device:
        overrides.append(f'train.device="{args.device}"')
    cfg = config.load(files[0] if files else None, overrides)
    if args.print_config:
        print(cfg.to_toml(), end="")
        return 0
    run = train(cfg, resume=args.resume)
    if args.no_eval:
        return 0
    reports = {part: evaluate(run, part) for part in cfg.data.test_parts}
    text = summary(reports)
    out = run / "count_eval" / "summary.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"\nCountNet on split {cfg.data.split!r} (Rust runtime; full reports: {run / 'count_eval'}/PART/)\n\n{text}",
          end="")  # fmt: skip
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from csipose.count.evaluate import evaluate
    from csipose.count.metrics import to_markdown

    rep = evaluate(args.run, args.split, out=args.out, store=args.store, runtime=args.runtime)
    print(to_markdown(rep), end="")
    print(f"\nwrote {rep['out_dir']}/report.json, report.md, reliability.png")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    if args.model:
        if len(args.inputs) != 1:
            raise CsiposeError("count predict CAPTURE --model RUN takes one capture (a file, a store or '-')")
        from csipose.count.predict_capture import predict_capture

        return predict_capture(args.inputs[0], args)
    if len(args.inputs) != 2:
        raise CsiposeError("count predict takes CAPTURE --model RUN, or (the older form) RUN WINDOWS.npy")
    args.checkpoint, args.windows = args.inputs
    return _predict_windows(args)


def _predict_windows(args: argparse.Namespace) -> int:
    from csipose.runtime.countnet import CountNet

    net = CountNet.load(args.checkpoint)
    try:
        x = np.load(args.windows, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise CsiposeError(f"{args.windows}: cannot read windows as .npy: {e}") from e
    from csipose.count.capture import features_input, run_features

    p = net.predict(features_input(x, run_features(net.metadata())))
    if args.out:
        out = Path(args.out)
        tmp = out.with_name(f".{out.name}.tmp.npz")
        np.savez(tmp, probabilities=p.probabilities, counts=p.counts, confidences=p.confidences)
        tmp.replace(out)
        print(f"wrote {out} (probabilities [n, 8], counts [n], confidences [n])")
    n = len(p.counts)
    for i in range(min(n, args.show)):
        print(json.dumps({"window": i, "count": int(p.counts[i]), "confidence": round(float(p.confidences[i]), 4),
                          "probabilities": [round(float(v), 4) for v in p.probabilities[i]]}))  # fmt: skip
    if n > args.show:
        print(f"... {n - args.show} more windows (--out writes them all)")
    if n:
        hist = np.bincount(p.counts, minlength=8).tolist()
        print(f"{n} windows; counts 0..7: {hist}; mean confidence {float(p.confidences.mean()):.3f}")
    return 0


def _cmd_health(args: argparse.Namespace) -> int:
    from csipose.runtime.countnet import CountNet, tensor_contract

    net = CountNet.load(args.checkpoint)
    p = net.predict(np.zeros((1, 56, 20), np.float32))
    weights, extras = tensor_contract()
    meta = net.metadata()
    checks = [
        f"{len(weights)} weight tensors and {len(extras)} preprocessing/calibration tensors present, F32, "
        "shapes as the contract, finite",
        f"temperatures T = {net.temperature:.4g}, T_conf = {net.confidence_temperature:.4g}",
        f"dummy window (zeros): count {int(p.counts[0])}, confidence {float(p.confidences[0]):.3f}, "
        f"probabilities sum {float(p.probabilities.sum()):.6f}",
        f"metadata format: {meta.get('format', 'none')}",
    ]
    if net.extra_tensors:
        checks.append(f"tensors not used by CountNet: {', '.join(net.extra_tensors)}")
    ok = bool(np.isfinite(p.probabilities).all() and abs(float(p.probabilities.sum()) - 1) < 1e-4
              and np.isfinite(p.confidences).all())  # fmt: skip
    for c in checks:
        print(f"  {c}")
    if not ok:
        raise CsiposeError(f"{net.path}: the dummy window gave non-finite or unnormalised output")
    print(f"OK {net.path}: CountNet, {net.parameters:,} parameters")
    return 0


def add_parser(sub: Any) -> None:
    """Add ``count`` and its subcommands to the main parser's subparsers."""
    count = sub.add_parser("count", help="person counting with CountNet: train, eval, predict, health",
                           description="Person counting (0..7) with CountNet (docs/counting.md).")  # fmt: skip
    cs = count.add_subparsers(dest="count_command", required=True)

    tr = cs.add_parser("train", help="train CountNet (no arguments: simulated ESP32 counting scenes)",
                       description="Train CountNet from a TOML configuration with dotted overrides, fit the "
                       "temperatures on validation, evaluate on data.test_parts.")  # fmt: skip
    tr.add_argument("items", nargs="*", metavar="CONFIG.toml | section.key=value",
                    help="an optional configuration file, then overrides such as train.epochs=10")  # fmt: skip
    tr.add_argument("--resume", help="'auto' (the run's latest checkpoint, if any) or a checkpoint directory")
    tr.add_argument("--device", help="cpu or cuda (same as train.device=...)")
    tr.add_argument("--print-config", action="store_true", help="print the resolved configuration and exit")
    tr.add_argument("--no-eval", action="store_true", help="skip the evaluation on data.test_parts")
    tr.set_defaults(func=_cmd_train)

    ev = cs.add_parser("eval", help="evaluate a counting run beside the majority-class baseline")
    ev.add_argument("run", help="a run directory, a checkpoint directory or a model.safetensors file")
    ev.add_argument("--split", default="test", help="the part of the run's split (default test)")
    ev.add_argument("--store", help="evaluate on this store instead of the one the run trained on")
    ev.add_argument("--out", help="write the report here (default RUN/count_eval/PART)")
    ev.add_argument("--runtime", default="rust", choices=("rust", "torch"), help="which runtime predicts")
    ev.set_defaults(func=_cmd_eval)

    pr = cs.add_parser("predict", help="count people over time in a capture (CAPTURE --model RUN), or in "
                       "windows [n, 56, 20] (RUN WINDOWS.npy)",
                       description="CAPTURE --model RUN: an ESP32 CSI log (any format convert esp32 reads), "
                       "a store, or '-' (a live stream on stdin, one output line per window). "
                       "RUN WINDOWS.npy: windows [n, 56, 20] or one [56, 20] (raw amplitude after the "
                       "checkpoint's subcarrier map).")  # fmt: skip
    pr.add_argument("inputs", nargs="+", metavar="CAPTURE | RUN WINDOWS.npy")
    pr.add_argument("--model", help="the counting run / checkpoint (the CAPTURE form)")
    pr.add_argument("--out", help="CAPTURE form: counts per window as CSV; WINDOWS form: an .npz")
    pr.add_argument("--plot", help="CAPTURE form: a timeline plot (PNG) of the counts and confidences")
    pr.add_argument("--show", type=int, default=10, help="windows to print (default 10; a stream prints all)")
    pr.add_argument("--clock", default="timestamp", help="the per-packet time of each window (default "
                    "timestamp, the board's clock; e.g. real_timestamp, before_0)")  # fmt: skip
    pr.add_argument("--train-rate", type=float, help="packets/s of the training data, when the checkpoint's "
                    "training store is not at hand")  # fmt: skip
    pr.add_argument("--stride", type=int, default=20, help="a window every STRIDE packets (default 20)")
    for flag in ("--format", "--chip", "--secondary", "--segments", "--mac"):
        pr.add_argument(flag, default="lltf" if flag == "--segments" else "auto",
                        help=f"as in csipose convert esp32 {flag}")  # fmt: skip
    pr.add_argument("--allow-truncated", action="store_true", help="as in csipose convert esp32")
    pr.set_defaults(func=_cmd_predict)

    he = cs.add_parser("health", help="load a checkpoint in the Rust runtime, check it, run a dummy window")
    he.add_argument("checkpoint", help="a checkpoint directory, run directory or model.safetensors")
    he.set_defaults(func=_cmd_health)


__all__ = ["GATE", "add_parser", "summary"]
