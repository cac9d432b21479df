"""The compression report: every method beside fp32, measured the same way.

``OUT/report.json``, ``report.md`` and ``report.png`` (PCK@20 on ``test``
against file size and against batch-64 latency). Per model: ONNX file size,
parameters, torso-PCK@20 / PCK@50 / MPJPE computed by ``csipose.metrics`` as
``csipose eval`` does (same skeleton, visibility, thresholds and mean-pose
baseline) from onnxruntime's predictions on the run's validation and test parts,
and median CPU latency in onnxruntime at batch 1 and 64 (and in torch for fp32
and fp16 eager and the int8 reference graph, which computes in float32) with the
same thread count for all. The int8 method the targets are judged on is the one
with the better VALIDATION PCK@20; test parts are reported, never used to choose.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from csipose import metrics
from csipose._files import write_json_atomic, write_text_atomic
from csipose.quantize import artifact, onnx_export, ort_reference
from csipose.quantize.pipeline import METHODS, quantize
from csipose.quantize.source import Source, open_run
from csipose.train.loop import _labels

ROWS = ("fp32", *METHODS, "ort-int8")
#: The README's targets for int8 against fp32.
TARGETS = {"pck@20_drop_points": 2.0, "size_ratio": 3.0, "speedup_b64": 1.5, "qat_gap_points": 1.0}
#: The upstream's published int8 results on WiFlow-STD half (issue 15).
UPSTREAM = "PTQ -55.6 PCK@20 points, 3-epoch QAT -29.2 points, 3.2x smaller, fake-quant 16 points above converted"


def _median_ms(fn: Any, reps: int) -> float:
    fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(ts))


def _latency(
    sess: Any, torch_module: Any, x: torch.Tensor, reps: tuple[int, int]
) -> dict[str, float | None]:
    r: dict[str, float | None] = {}
    for b, n in zip((1, 64), reps, strict=True):
        xb = np.ascontiguousarray(x[:b].numpy())
        if len(xb) < b:  # too few windows: tile them
            xb = np.ascontiguousarray(np.resize(xb, (b, *xb.shape[1:])))
        r[f"ort_ms_b{b}"] = _median_ms(lambda xb=xb: sess.run(None, {onnx_export.INPUT: xb}), n)
        if torch_module is not None:
            t = torch.from_numpy(xb)
            with torch.no_grad():
                r[f"torch_ms_b{b}"] = _median_ms(lambda t=t: torch_module(t), n)
        else:
            r[f"torch_ms_b{b}"] = None
    return r


def _accuracy(src: Source, sess: Any, part: str, thresholds: list[float]) -> dict[str, Any]:
    idx = src.indices(part)
    pred = onnx_export.run(sess, src.windows(part)) * src.data.target_scale + src.data.mean_pose
    gt, vis = _labels(src.data, idx)
    rep = metrics.accuracy_report(pred.astype(np.float32), gt, skeleton=src.data.skeleton, visible=vis,
                                  thresholds=thresholds, units=src.data.units, mean_pose=src.data.mean_pose,
                                  context={"split": src.cfg.data.split, "part": part})  # fmt: skip
    return rep.to_dict()


def _torch_module(row: str, d: Path, src: Source) -> Any:
    if row == "fp32":
        return src.model.eval()
    if (d / "model.pt2").exists():
        import torchao.quantization.pt2e  # noqa: F401 -- registers the quantized_decomposed ops

        with torch.no_grad():
            return torch.export.load(d / "model.pt2").module()
    return None


def report(run: str | Path, out: str | Path, *, calibration: int = 256, reps: tuple[int, int] = (50, 10),
           threads: int | None = None, seed: int = 0, src: Source | None = None) -> dict[str, Any]:  # fmt: skip
    """Measure every method directory in ``out`` (fp32 and the onnxruntime reference
    are made when missing) and write report.json / .md / .png there."""
    if threads:
        torch.set_num_threads(threads)
    threads = torch.get_num_threads()
    src = src or open_run(run)
    root = Path(out)
    if not (root / "fp32" / "quantize.json").exists():
        quantize(run, "fp32", out=root, calibration=calibration, seed=seed, src=src)
    ref = root / "ort-int8"
    if not (ref / "model.onnx").exists():
        calib = src.windows(src.cfg.data.train_part, calibration, seed=seed)
        ort_reference.quantize_static(root / "fp32" / "model.onnx", ref / "model.onnx", calib)
        calib_meta = {"part": src.cfg.data.train_part, "windows": len(calib), "seed": seed}
        scheme = (
            "onnxruntime quantize_static: QDQ, per-channel int8 weights, uint8 activations, MinMax"
        )
        write_json_atomic(
            ref / "quantize.json",
            artifact.metadata(src, "ort-int8", calibration=calib_meta, scheme=scheme),
        )
    params = sum(p.numel() for p in src.model.parameters())
    parts = [src.cfg.data.val_part, *src.cfg.data.test_parts]
    thresholds = sorted({0.2, 0.5, *src.cfg.eval.thresholds})
    x = src.windows(src.cfg.data.val_part, 64, seed=seed + 1)
    rows: dict[str, Any] = {}
    baseline: dict[str, Any] = {}
    for row in ROWS:
        d = root / row
        if not (d / "quantize.json").exists():  # absent, or its ONNX check failed
            continue
        meta = artifact.read(d)
        sess = onnx_export.session(d / "model.onnx", threads)
        acc = {}
        for part in parts:
            if part in src.data.parts and len(src.data.parts[part]):
                a = _accuracy(src, sess, part, thresholds)
                acc[part] = {k: a["model"][k]["value"] for k in ("pck@20", "pck@50", "mpjpe")}
                baseline[part] = {
                    k: a["mean_pose_baseline"][k]["value"] for k in ("pck@20", "pck@50", "mpjpe")
                }
                baseline[part]["n_samples"] = a["n_samples"]
        rows[row] = {"file_bytes": (d / "model.onnx").stat().st_size, "parameters": params,
                     "accuracy": acc, "latency": _latency(sess, _torch_module(row, d, src), x, reps),
                     "float32_modules": meta.get("float32_modules"),
                     "fake_quant_vs_converted": meta.get("fake_quant_vs_converted"),
                     "onnx_check": meta.get("onnx_check")}  # fmt: skip
    result = {
        "run": str(Path(run)),
        "source": src.provenance() | {"config": None},
        "threads": threads,
        "split": src.cfg.data.split,
        "parts": parts,
        "units": src.data.units,
        "definitions": {
            "pck@20": "torso-PCK at 0.2 x the skeleton's torso diagonal, flat mean over samples x visible "
            "joints (csipose.metrics, as csipose eval), 0-1",
            "pck@50": "the same at 0.5",
            "mpjpe": f"mean per-joint position error, {src.data.units}",
            "file_bytes": "size of model.onnx",
            "latency": "median wall ms per batch, CPU, "
            f"{threads} threads; torch int8 rows run the reference Q/DQ graph (float32 math)",
        },
        "mean_pose_baseline": baseline,
        "rows": rows,
        "targets": _targets(rows, src),
        "upstream": UPSTREAM,
    }
    write_json_atomic(root / "report.json", result)
    write_text_atomic(root / "report.md", markdown(result))
    _plot(result, root / "report.png")
    return result


def _targets(rows: dict[str, Any], src: Source) -> dict[str, Any]:
    val, test = src.cfg.data.val_part, (src.cfg.data.test_parts or ["test"])[0]
    int8 = [r for r in ("ptq", "qat") if r in rows]
    if "fp32" not in rows or not int8:
        return {}
    best = max(int8, key=lambda r: rows[r]["accuracy"].get(val, {}).get("pck@20") or -1.0)
    f, b = rows["fp32"], rows[best]
    drop = 100 * (
        (f["accuracy"].get(test, {}).get("pck@20") or 0)
        - (b["accuracy"].get(test, {}).get("pck@20") or 0)
    )
    size = f["file_bytes"] / b["file_bytes"]
    speed = f["latency"]["ort_ms_b64"] / b["latency"]["ort_ms_b64"]
    t: dict[str, Any] = {
        "int8_method": best, "chosen_by": f"validation PCK@20 ({val})",
        "pck@20_drop_points": {"value": drop, "target": f"<= {TARGETS['pck@20_drop_points']}",
                               "met": drop <= TARGETS["pck@20_drop_points"], "part": test},
        "size_ratio": {"value": size, "target": f">= {TARGETS['size_ratio']}", "met": size >= TARGETS["size_ratio"]},
        "speedup_ort_b64": {"value": speed, "target": f">= {TARGETS['speedup_b64']}",
                            "met": speed >= TARGETS["speedup_b64"]},
    }  # fmt: skip
    gap = (rows.get("qat") or {}).get("fake_quant_vs_converted") or {}
    if test in gap:
        g = abs(gap[test]["gap_points"])
        t["qat_gap_points"] = {"value": g, "target": f"<= {TARGETS['qat_gap_points']}",
                               "met": g <= TARGETS["qat_gap_points"], "part": test}  # fmt: skip
    return t


def _f(x: Any, fmt: str = ".3f") -> str:
    return "n/a" if x is None else format(x, fmt)


def markdown(r: dict[str, Any]) -> str:
    parts = r["parts"]
    head = ["model", "ONNX bytes", "params"]
    for p in parts:
        head += [f"{p} PCK@20", f"{p} PCK@50", f"{p} MPJPE"]
    head += ["ORT ms b1", "ORT ms b64", "torch ms b1", "torch ms b64"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for name, row in r["rows"].items():
        cells = [name, f"{row['file_bytes']:,}", f"{row['parameters']:,}"]
        for p in parts:
            a = row["accuracy"].get(p, {})
            cells += [_f(a.get("pck@20")), _f(a.get("pck@50")), _f(a.get("mpjpe"), ".4f")]
        lat = row["latency"]
        cells += [_f(lat["ort_ms_b1"], ".2f"), _f(lat["ort_ms_b64"], ".2f"),
                  _f(lat["torch_ms_b1"], ".2f"), _f(lat["torch_ms_b64"], ".2f")]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    cells = ["mean-pose baseline", "", ""]
    for p in parts:
        a = r["mean_pose_baseline"].get(p, {})
        cells += [_f(a.get("pck@20")), _f(a.get("pck@50")), _f(a.get("mpjpe"), ".4f")]
    lines.append("| " + " | ".join([*cells, "", "", "", ""]) + " |")
    out = [f"# Compression report: {r['run']}", "", f"Split {r['split']!r}; {r['threads']} threads.", "",
           *lines, ""]  # fmt: skip
    out += [f"- **{k}**: {v}" for k, v in r["definitions"].items()]
    qat = r["rows"].get("qat", {}).get("fake_quant_vs_converted") or {}
    if qat:
        out += ["", "QAT fake-quant vs converted (torso-PCK@20 points, 0-100):", ""]
        out += [f"- {p}: fake-quant {g['fake_quant_pck@20']:.2f}, converted {g['converted_pck@20']:.2f}, "
                f"gap {g['gap_points']:+.2f}" for p, g in qat.items()]  # fmt: skip
    mixed = r["rows"].get("mixed", {})
    if mixed:
        out += ["", f"Mixed: float32 modules {mixed.get('float32_modules') or 'none'} (sensitivity scan on the "
                "validation part in mixed/quantize.json)."]  # fmt: skip
    t = r["targets"]
    if t:
        out += ["", f"Targets (int8 = {t['int8_method']}, chosen by {t['chosen_by']}):", ""]
        for k in ("pck@20_drop_points", "size_ratio", "speedup_ort_b64", "qat_gap_points"):
            if k in t:
                out.append(f"- {k}: {t[k]['value']:.3g} (target {t[k]['target']}): "
                           f"{'met' if t[k]['met'] else 'NOT met'}")  # fmt: skip
    out += ["", f"Upstream (WiFlow-STD half, published): {r['upstream']}.", ""]
    return "\n".join(out)


def _plot(r: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    test = next((p for p in r["parts"][1:]), r["parts"][0])
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for name, row in r["rows"].items():
        y = row["accuracy"].get(test, {}).get("pck@20")
        if y is None:
            continue
        for ax, xv in zip(
            axes, (row["file_bytes"] / 1e6, row["latency"]["ort_ms_b64"]), strict=True
        ):
            ax.scatter(xv, y)
            ax.annotate(name, (xv, y), textcoords="offset points", xytext=(4, 4))
    base = r["mean_pose_baseline"].get(test, {}).get("pck@20")
    for ax, label in zip(axes, ("ONNX file size (MB)", f"onnxruntime ms at batch 64 ({r['threads']} threads)"),
                         strict=True):  # fmt: skip
        if base is not None:
            ax.axhline(base, ls="--", c="grey", label="mean-pose baseline")
        ax.set_xlabel(label)
        ax.set_ylabel(f"torso-PCK@20 on {test}")
        ax.legend(loc="lower right")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)


def load(out: str | Path) -> dict[str, Any]:
    return json.loads((Path(out) / "report.json").read_text())
