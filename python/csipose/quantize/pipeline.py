"""``quantize``: one method from a trained run to its deployable directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from csipose.errors import CsiposeError
from csipose.quantize import artifact, fp16, mixed, ptq, qat
from csipose.quantize.source import Source, open_run

METHODS = ("ptq", "fp16", "mixed", "qat")
#: Held-out (validation-part) windows the ONNX files are checked on.
CHECK_WINDOWS = 64


def default_out(run: str | Path) -> Path:
    """``RUN.quantized`` beside the run (never inside it)."""
    p = Path(run).resolve()
    return p.with_name(p.name + ".quantized")


def _check_args(method: str, calibration: int, qat_epochs: int) -> None:
    if method not in (*METHODS, "fp32", "all"):
        raise ValueError(f"unknown method {method!r}; known: {', '.join(METHODS)}, all")
    if not isinstance(calibration, int) or calibration < 1:
        raise ValueError(f"calibration must be a positive number of windows, got {calibration!r}")
    if not isinstance(qat_epochs, int) or qat_epochs < 1:
        raise ValueError(f"qat_epochs must be >= 1, got {qat_epochs!r}")


def quantize(run: str | Path, method: str, *, out: str | Path | None = None, calibration: int = 256,
             qat_epochs: int = 2, reduce_range: bool = False, resume: str | None = None, seed: int = 0,
             src: Source | None = None) -> list[Path]:  # fmt: skip
    """Quantize the run's best checkpoint with ``method`` (or ``"all"``) into
    ``out/METHOD``; returns the directories written."""
    _check_args(method, calibration, qat_epochs)
    src = src or open_run(run)
    root = Path(out) if out is not None else default_out(run)
    if _inside_run(root, src):
        raise CsiposeError(f"{root}: the output must not be inside the fp32 run")
    part = src.cfg.data.train_part
    calib = src.windows(part, calibration, seed=seed)
    check = src.windows(src.cfg.data.val_part, CHECK_WINDOWS, seed=seed + 1)
    if len(check) == 0:
        raise CsiposeError(f"the run's validation part {src.cfg.data.val_part!r} is empty")
    calib_meta = {"part": part, "split": src.cfg.data.split, "windows": len(calib), "seed": seed}
    todo = METHODS if method == "all" else (method,)
    written, failed = [], []
    for m in todo:
        try:
            written.append(_one(src, m, root, calib, check, calib_meta, qat_epochs=qat_epochs,
                                reduce_range=reduce_range, resume=resume, seed=seed))  # fmt: skip
        except CsiposeError as e:
            if method != "all":
                raise
            failed.append(f"{m}: {e}")  # one failing method does not cost the others
            print(f"{m} failed: {e}", flush=True)
    if failed:
        raise QuantizeFailed(written, failed)
    return written


class QuantizeFailed(CsiposeError):
    """Some methods of ``--method all`` failed; the others were written."""

    def __init__(self, written: list[Path], failed: list[str]) -> None:
        super().__init__("; ".join(failed))
        self.written, self.failed = written, failed


def _one(src: Source, m: str, root: Path, calib: torch.Tensor, check: torch.Tensor, calib_meta: dict[str, Any],
         *, qat_epochs: int, reduce_range: bool, resume: str | None, seed: int) -> Path:  # fmt: skip
    d = root / m
    meta = artifact.metadata(src, m, reduce_range=reduce_range)
    if m == "fp32":
        module: torch.nn.Module = src.model.eval()
    elif m == "fp16":
        module = fp16.HalfPrecision(src.model, torch.float16)
        meta["dtype"] = "float16 weights and activations; float32 input and output"
    elif m == "ptq":
        module = ptq.ptq(src.model, calib, reduce_range=reduce_range)
        meta["calibration"] = calib_meta
        meta["scheme"] = _scheme(reduce_range)
    elif m == "mixed":
        scan = mixed.scan(src, calib, seed=seed, reduce_range=reduce_range)
        kept = mixed.choose(scan)
        module = ptq.ptq(src.model, calib, reduce_range=reduce_range, skip=kept)
        meta.update(calibration=calib_meta, scheme=_scheme(reduce_range), float32_modules=kept,
                    sensitivity=scan, rule=f"keep float32 the modules (at most {mixed.MAX_KEPT}) whose "
                    f"PCK@20 drop alone exceeds {mixed.MAX_DROP} points on the validation part")  # fmt: skip
    else:
        fq, state = qat.train(src, d, epochs=qat_epochs, calibration=calib, seed=seed,
                              reduce_range=reduce_range, resume=resume,
                              metadata={"format": "csipose-qat-checkpoint"})  # fmt: skip
        module = qat.convert(fq)
        meta.update(calibration=calib_meta, scheme=_scheme(reduce_range), qat_epochs=qat_epochs,
                    freeze_epoch=state["freeze_epoch"], lr_ratio=qat.LR_RATIO, history=state["history"],
                    fake_quant_vs_converted=_gap(src, fq, module))  # fmt: skip
    # fp16: both sides round to half precision in different orders; allow a few
    # half-precision ulps of the output's magnitude.
    tol = FP16_ULPS * 2.0**-11 * _magnitude(module, check) if m == "fp16" else 1e-4
    artifact.write(src, d, module, meta, check, float_tol=tol)
    print(f"wrote {d} ({m})", flush=True)
    return d


FP16_ULPS = 8


def _magnitude(module: torch.nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        return max(1.0, float(module(x).abs().max()))


def _inside_run(root: Path, src: Source) -> bool:
    run_dir = src.checkpoint.resolve().parent.parent  # RUN/checkpoints/NAME
    r = root.resolve()
    return r == run_dir or run_dir in r.parents


def _scheme(reduce_range: bool) -> str:
    bits = "7-bit (reduce_range)" if reduce_range else "8-bit"
    return (f"int8 per-channel symmetric weights; {bits} per-tensor affine uint8 activations "
            "(histogram observer); X86InductorQuantizer, PT2E (torchao); int8 layers: every Conv1d "
            "with its output quantized (QLinearConv in onnxruntime), the rest float32 "
            "(csipose.quantize.int8_scope)")  # fmt: skip


def _gap(src: Source, fake: torch.nn.Module, converted: torch.nn.Module) -> dict[str, Any]:
    """torso-PCK@20 (points) of the fake-quant and the converted model on the validation
    and test parts (reported, never used to choose anything)."""
    out: dict[str, Any] = {}
    for part in (src.cfg.data.val_part, *src.cfg.data.test_parts):
        if part not in src.data.parts or len(src.data.parts[part]) == 0:
            continue
        idx = src.indices(part)
        x = src.windows(part)
        pf = mixed.score(src, mixed._predict(fake, x), idx)
        pc = mixed.score(src, mixed._predict(converted, x), idx)
        out[part] = {"fake_quant_pck@20": pf[0], "converted_pck@20": pc[0], "gap_points": pf[0] - pc[0],
                     "fake_quant_mpjpe": pf[1], "converted_mpjpe": pc[1]}  # fmt: skip
    return out
