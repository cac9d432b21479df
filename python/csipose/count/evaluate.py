"""``csipose count eval RUN --split PART``: CountNet on a part of the run's split.

Writes ``RUN/count_eval/PART/report.json`` (``model`` and ``majority_baseline``
sections, every number with its definition), ``report.md`` and
``reliability.png`` (the reliability diagram of the confidence, model and
baseline). Predictions come from the Rust runtime (``csipose.CountNet``, what is
deployed) or, with ``runtime="torch"``, from ``csipose.models.CountNet``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from csipose._files import write_text_atomic
from csipose.checkpoint import model_file
from csipose.count import metrics
from csipose.count.config import from_json
from csipose.count.data import prepare
from csipose.errors import CheckpointError
from csipose.metrics import by_group
from csipose.metrics.report import json_safe
from csipose.runtime.countnet import CountNet, read_metadata


def predict_torch(
    file: Path, x: np.ndarray, batch_size: int = 512
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(probabilities, counts, confidences) from the torch model of a checkpoint file."""
    import torch
    from safetensors.torch import load_file

    from csipose.models.countnet import CountNet as TorchCountNet

    model = TorchCountNet()
    model.load_state_dict(load_file(file))
    model.eval()
    outs = [
        model.predict(torch.from_numpy(x[s : s + batch_size])) for s in range(0, len(x), batch_size)
    ]
    if not outs:
        return np.zeros((0, 8), np.float32), np.zeros(0, np.int64), np.zeros(0, np.float32)
    return tuple(np.concatenate([o[i].numpy() for o in outs]) for i in range(3))  # type: ignore[return-value]


def _rooms(store: Any, idx: np.ndarray) -> np.ndarray:
    """The environment (room) name of each window."""
    names = np.array(store.manifest["metadata"]["environment"])
    return names[store.gather(np.asarray(idx, np.int64), fields=["environment"])["environment"]]


def evaluate(run: str | Path, part: str = "test", *, out: str | Path | None = None,
             store: str | Path | None = None, runtime: str = "rust") -> dict[str, Any]:  # fmt: skip
    """Evaluate the run's best (calibrated) checkpoint on ``part``; returns the report dict."""
    if runtime not in ("rust", "torch"):
        raise ValueError(f"runtime must be 'rust' or 'torch', got {runtime!r}")
    file = model_file(run)
    meta = read_metadata(file)
    if meta.get("format") != "csipose-countnet-checkpoint":
        raise CheckpointError(f"{file}: not a CountNet checkpoint of csipose count train (format "
                              f"{meta.get('format')!r})")  # fmt: skip
    cfg = from_json(meta["config"])
    saved = json.loads(meta["data"])
    if store is not None:
        cfg.data.source, cfg.data.store = "store", str(store)
    else:
        cfg.data.source, cfg.data.store = "store", saved["store"]
    data = prepare(cfg, Path(cfg.data.store))
    if part not in data.parts:
        raise ValueError(
            f"split {cfg.data.split!r} has no part {part!r} (it has {', '.join(data.parts)})"
        )
    x, y = data.windows(part)
    if runtime == "rust":
        pred = CountNet.load(file).predict(x)
        probs, conf = pred.probabilities, pred.confidences
    else:
        probs, _, conf = predict_torch(file, x, cfg.eval.batch_size)
    train_counts = np.asarray(json.loads(meta["train_label_counts"]), np.int64)
    train_labels = np.repeat(np.arange(len(train_counts)), train_counts)
    cal = json.loads(meta.get("calibration", "{}"))
    context = {"part": part, "split": cfg.data.split, "store": str(data.store.path), "checkpoint": str(file),
               "runtime": "csipose.CountNet (Rust, candle)" if runtime == "rust" else "torch",
               "temperatures": f"T = {cal.get('temperature', 1.0):.4g}, T_conf = "
                               f"{cal.get('confidence_temperature', 1.0):.4g} (fitted on {cal.get('part', 'n/a')})",
               "windows": data.store.window.definition(),
               "subcarriers": saved.get("subcarrier_definition", "")}  # fmt: skip
    report = metrics.count_report(probs, y, conf, train_labels, bins=cfg.eval.bins, context=context)
    rooms = _rooms(data.store, data.parts[part])
    report["by_environment"] = {
        str(r): metrics.count_report(probs[rooms == r], y[rooms == r], conf[rooms == r], train_labels,
                                     bins=cfg.eval.bins, context={**context, "environment": str(r)})
        for r in np.unique(rooms)
    }  # fmt: skip
    report["by_room"] = by_group.from_count_reports(report["by_environment"])
    ckpt_dir = file.parent
    base = ckpt_dir.parent.parent if ckpt_dir.parent.name == "checkpoints" else ckpt_dir
    out_dir = Path(out) if out is not None else base / "count_eval" / part
    out_dir.mkdir(parents=True, exist_ok=True)
    # Strict JSON: undefined values (e.g. a rank correlation of constant confidences) are null.
    write_text_atomic(
        out_dir / "report.json", json.dumps(json_safe(report), indent=1, allow_nan=False)
    )
    write_text_atomic(
        out_dir / "report.md",
        metrics.to_markdown(report)
        + "\n"
        + by_group.to_markdown(report["by_room"], "by room", "majority baseline")
        + "\n![reliability](reliability.png)\n",
    )
    from csipose.count.plots import reliability_diagram

    _, base_conf, base_class, _ = metrics.majority_baseline(train_labels, len(y))
    series = {
        "CountNet": (conf, probs.argmax(axis=1) == y),
        "majority baseline": (base_conf, y == base_class),
    }
    reliability_diagram(
        series, cfg.eval.bins, f"{cfg.data.split} / {part}", out_dir / "reliability.png"
    )
    report["out_dir"] = str(out_dir)
    return report


__all__ = ["evaluate", "predict_torch"]
