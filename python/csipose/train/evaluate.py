"""Evaluation of a trained run: ``csipose eval RUN --split PART``.

Writes ``RUN/eval/PART/report.json`` (a ``model`` and a ``mean_pose_baseline``
section keyed by metric name, every number with its definition, plus the same
per environment and per subject), ``report.md`` and ``pck_curve.png``. The
baseline predicts the training part's mean pose for every window.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from csipose import metrics, skeleton
from csipose._files import write_text_atomic
from csipose.data import Store
from csipose.metrics import AccuracyReport, by_group
from csipose.train import checkpoint
from csipose.train.config import from_dict
from csipose.train.data import PoseData, from_metadata
from csipose.train.loop import _labels, build_model, predict


def load_run(
    path: str | Path, *, store: str | Path | None = None, device: str = "cpu"
) -> tuple[Any, ...]:
    """(model, data, config, checkpoint) of a run, a checkpoint or a model.safetensors file."""
    ck = checkpoint.load(path)
    cfg = from_dict(json.loads(ck["metadata"]["config"]))
    meta = from_metadata(ck["metadata"])
    s = Store.open(
        store or meta["store"], window=meta["window"], transform={"amplitude": meta["transform"]}
    )
    data = PoseData(
        store=s,
        parts=s.split(cfg.data.split),
        skeleton=skeleton.get(meta["skeleton"]),
        units=meta["units"],
        inputs=meta["inputs"],
        in_channels=meta["in_channels"],
        time_steps=meta["time_steps"],
        mean_pose=meta["mean_pose"],
        target_scale=meta["target_scale"],
        features=list(cfg.data.features),
    )
    model = build_model(data, cfg)
    model.load_state_dict(ck["tensors"])
    return model.to(device).eval(), data, cfg, ck


def evaluate(
    run: str | Path,
    part: str = "test",
    *,
    out: str | Path | None = None,
    store: str | Path | None = None,
    device: str = "cpu",
) -> AccuracyReport:
    """Evaluate the run's best checkpoint on ``part`` of its split and write the report files."""
    model, data, cfg, ck = load_run(run, store=store, device=device)
    if part not in data.parts:
        raise ValueError(
            f"split {cfg.data.split!r} has no part {part!r} (it has {', '.join(data.parts)})"
        )
    idx = data.parts[part]
    pred = predict(model, data, idx, cfg.eval.batch_size, torch.device(device))
    gt, vis = _labels(data, idx)
    context = {"split": cfg.data.split, "part": part, "checkpoint": str(ck["path"])}
    from csipose.train.temporal import describe

    context["model_kind"] = describe(cfg)

    def report(mask: np.ndarray, extra: dict[str, str]) -> AccuracyReport:
        return metrics.accuracy_report(
            pred[mask], gt[mask], skeleton=data.skeleton, visible=vis[mask], thresholds=cfg.eval.thresholds,
            units=data.units, mean_pose=data.mean_pose, context={**context, **extra},
        )  # fmt: skip

    everything = np.ones(len(idx), bool)
    rep = report(everything, {})
    groups: dict[str, dict[str, Any]] = {}
    m = data.store.manifest["metadata"]
    codes = data.store.gather(idx, fields=["environment", "subject"])
    for kind in ("environment", "subject"):
        names = np.array(m[kind])[codes[kind]]
        groups[f"by_{kind}"] = {
            str(name): report(names == name, {kind: str(name)}).to_dict()
            for name in np.unique(names)
        }
    by_room = by_group.from_pose_reports(groups["by_environment"])
    base = Path(run) if (Path(run) / "checkpoints").is_dir() else ck["path"].parent.parent
    out_dir = Path(out) if out is not None else base / "eval" / part
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(
        out_dir / "report.json",
        json.dumps({**rep.to_dict(), **groups, "by_room": by_room}, indent=2),
    )
    md = rep.to_markdown() + "\n" + by_group.to_markdown(by_room, "by room", "mean-pose baseline")
    md += "\n" + _group_table(groups)
    write_text_atomic(out_dir / "report.md", md)
    t = np.linspace(0, 0.5, 26)
    baseline = np.broadcast_to(data.mean_pose.astype(np.float32), gt.shape)
    curves = {
        "model": metrics.pck_curve(pred, gt, t, skeleton=data.skeleton, visible=vis).values,
        "mean-pose baseline": metrics.pck_curve(
            baseline, gt, t, skeleton=data.skeleton, visible=vis
        ).values,
    }
    from csipose.train.plots import pck_curves

    pck_curves(t, curves, f"{cfg.data.split} / {part}", out_dir / "pck_curve.png")
    from csipose.metrics.plots import pose_pictures  # skeletons.png, joint_errors.png

    pose_pictures(pred, gt, skeleton=data.skeleton, visible=vis, units=data.units,
                  title=f"{cfg.data.split} / {part}", out_dir=out_dir)  # fmt: skip
    return rep


def summary(reports: dict[str, AccuracyReport]) -> str:
    """One table over several parts: the headline metrics, model against baseline."""
    keys = [
        k
        for k in ("pck@20", "pck@50", "mpjpe", "pa_mpjpe")
        if k in next(iter(reports.values())).model
    ]
    head = (
        "| part | samples | " + " | ".join(f"{k} model | {k} baseline | ratio" for k in keys) + " |"
    )
    lines = [head, "|---|---:|" + "---:|---:|---:|" * len(keys)]
    for part, rep in reports.items():
        cells = []
        for k in keys:
            m, b = rep.model[k].value, rep.mean_pose_baseline[k].value
            cells.append(f"{m:.4g} | {b:.4g} | {m / b:.3g}x" if b else f"{m:.4g} | {b:.4g} | n/a")
        lines.append(f"| {part} | {rep.n_samples} | " + " | ".join(cells) + " |")
    first = next(iter(reports.values()))
    defs = [f"- **{k}**: {first.model[k].definition}" for k in keys]
    defs.append(f"- **baseline**: {first.baseline_source}; ratio = model / baseline")
    return "\n".join([*lines, "", *defs]) + "\n"


def _group_table(groups: dict[str, dict[str, Any]]) -> str:
    lines = []
    for kind, reports in groups.items():
        lines += [f"{kind.replace('_', ' ')}:", "", "| group | samples | pck@20 model | pck@20 baseline | "
                  "mpjpe model | mpjpe baseline |", "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
        for name, r in reports.items():
            mo, ba = r["model"], r["mean_pose_baseline"]

            def v(section: dict[str, Any], key: str) -> str:
                x = section.get(key, {}).get("value")
                return "n/a" if x is None else f"{x:.4g}"

            lines.append(f"| {name} | {r['n_samples']} | {v(mo, 'pck@20')} | {v(ba, 'pck@20')} | "
                         f"{v(mo, 'mpjpe')} | {v(ba, 'mpjpe')} |")  # fmt: skip
        lines.append("")
    return "\n".join(lines)
