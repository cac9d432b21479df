"""``csipose quantize RUN --method ptq|qat|fp16|mixed|all``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

METHODS = ("ptq", "qat", "fp16", "mixed")


def _cmd(args: Any) -> int:
    import torch

    from csipose.quantize.pipeline import QuantizeFailed, default_out, quantize
    from csipose.quantize.report import report

    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out) if args.out else default_out(args.run)
    failed = None
    try:
        quantize(args.run, args.method, out=out, calibration=args.calibration, qat_epochs=args.qat_epochs,
                 reduce_range=args.reduce_range, resume=args.resume, seed=args.seed)  # fmt: skip
    except QuantizeFailed as e:
        failed = e  # report what was written, then fail
    if not args.no_report:
        report(args.run, out, calibration=args.calibration, seed=args.seed)
        print((out / "report.md").read_text())
        print(f"wrote {out / 'report.json'}, {out / 'report.md'}, {out / 'report.png'}")
    if failed is not None:
        raise failed
    return 0


def add_parser(sub: Any) -> None:
    q = sub.add_parser("quantize", help="compress a trained pose run (int8 PTQ/QAT, fp16, mixed) with a report",
                       description="Quantize a trained pose run into deployable ONNX models and measure "
                       "accuracy, size and latency against fp32 (docs/quantize.md).")  # fmt: skip
    q.add_argument("run", help="a run directory (its best checkpoint) or a checkpoint directory")
    q.add_argument("--method", default="all", choices=[*METHODS, "all"], help="default all")
    q.add_argument(
        "--calibration",
        type=int,
        default=256,
        help="training windows to calibrate on (default 256)",
    )
    q.add_argument("--qat-epochs", type=int, default=2, help="QAT epochs (default 2)")
    q.add_argument("--reduce-range", action="store_true", help="7-bit activations (off by default)")
    q.add_argument("--out", help="output directory (default RUN.quantized beside the run)")
    q.add_argument("--resume", help="QAT: 'auto' or a QAT checkpoint directory")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument(
        "--threads", type=int, default=0, help="torch and onnxruntime threads (default torch's)"
    )
    q.add_argument("--no-report", action="store_true", help="only write the models")
    q.set_defaults(func=_cmd)
