"""Results by group (room, subject): each group's numbers, and their mean and
spread across groups, beside the baseline's and as model / baseline ratios.

A model that works in a new room has to work in *each* new room: the mean
over rooms (every room weighs the same, however many windows it has) comes
with the standard deviation (population, ddof = 0), the minimum and the
maximum across rooms, so one easy room cannot hide a failing one.

    s = summarise({"E07": {"mpjpe": (0.21, 0.30)}, "E08": {"mpjpe": (0.35, 0.31)}})
    s["summary"]["mpjpe"]["ratio"]["mean"]    # mean over rooms of model / baseline
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

#: What "mean" and "spread" mean in every summary.
DEFINITION = (
    "over groups (each group weighs the same): mean, std (population, ddof=0), min, max; "
    "ratio = model / baseline within each group, then summarised the same way; "
    "groups whose value is undefined (null) are left out and counted in n"
)


def _num(v: Any) -> float:
    return math.nan if v is None else float(v)


def spread(values: Sequence[float]) -> dict[str, Any]:
    """mean, std (ddof=0), min, max of the finite ``values``; n = how many were finite."""
    a = np.asarray([_num(v) for v in values], np.float64)
    a = a[np.isfinite(a)]
    if not len(a):
        return {"mean": None, "std": None, "min": None, "max": None, "n": 0}
    return {"mean": float(a.mean()), "std": float(a.std()), "min": float(a.min()),
            "max": float(a.max()), "n": len(a)}  # fmt: skip


def summarise(groups: Mapping[str, Mapping[str, tuple[Any, Any]]]) -> dict[str, Any]:
    """``groups``: name -> metric -> (model value, baseline value). Returns each group's
    values with their ratio, and per metric the spread of model, baseline and ratio."""
    per: dict[str, dict[str, dict[str, Any]]] = {}
    for name, metrics in groups.items():
        per[str(name)] = {}
        for key, (m, b) in metrics.items():
            m, b = _num(m), _num(b)
            ratio = m / b if math.isfinite(m) and math.isfinite(b) and b != 0 else math.nan
            per[str(name)][key] = {k: (v if math.isfinite(v) else None)
                                   for k, v in (("model", m), ("baseline", b), ("ratio", ratio))}  # fmt: skip
    keys = list(dict.fromkeys(k for metrics in per.values() for k in metrics))
    summary = {
        key: {
            what: spread([g[key][what] for g in per.values() if key in g])
            for what in ("model", "baseline", "ratio")
        }
        for key in keys
    }
    return {"groups": per, "summary": summary, "definition": DEFINITION}


#: Pose metrics summarised by room.
POSE_KEYS = ("mpjpe", "pck@20", "pa_mpjpe")
#: Counting metrics summarised by room.
COUNT_KEYS = ("accuracy", "within_1", "mae", "spearman_conf_correct", "ece")


def from_pose_reports(
    reports: Mapping[str, Mapping[str, Any]], keys: Sequence[str] = POSE_KEYS
) -> dict[str, Any]:
    """The summary of per-group pose reports (``AccuracyReport.to_dict()``: a
    ``model`` and a ``mean_pose_baseline`` section)."""
    return summarise({
        name: {k: (r["model"][k]["value"], r["mean_pose_baseline"][k]["value"])
               for k in keys if k in r["model"]}
        for name, r in reports.items()
    })  # fmt: skip


def from_count_reports(
    reports: Mapping[str, Mapping[str, Any]], keys: Sequence[str] = COUNT_KEYS
) -> dict[str, Any]:
    """The summary of per-group counting reports (``count_report``: a ``model`` and a
    ``majority_baseline`` section)."""
    return summarise({
        name: {k: (r["model"][k]["value"], r["majority_baseline"][k]["value"]) for k in keys}
        for name, r in reports.items()
    })  # fmt: skip


def _fmt(v: Any) -> str:
    return "n/a" if v is None else f"{v:.4g}"


def to_markdown(s: Mapping[str, Any], title: str = "by room", baseline: str = "baseline") -> str:
    """Per-group rows and the mean / std / min / max rows of every metric."""
    keys = list(s["summary"])
    head = "| group | " + " | ".join(f"{k} model | {k} {baseline} | {k} ratio" for k in keys) + " |"
    lines = [f"{title}:", "", head, "|---|" + "---:|" * (3 * len(keys))]
    for name, g in s["groups"].items():
        cells = [f"{_fmt(g[k]['model'])} | {_fmt(g[k]['baseline'])} | {_fmt(g[k]['ratio'])}"
                 if k in g else "n/a | n/a | n/a" for k in keys]  # fmt: skip
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for stat in ("mean", "std", "min", "max"):
        cells = [" | ".join(_fmt(s["summary"][k][w][stat]) for w in ("model", "baseline", "ratio"))
                 for k in keys]  # fmt: skip
        lines.append(f"| **{stat}** | " + " | ".join(cells) + " |")
    lines += ["", f"Summary {s['definition']}.", ""]
    return "\n".join(lines)


__all__ = ["COUNT_KEYS", "DEFINITION", "POSE_KEYS", "from_count_reports", "from_pose_reports",
           "spread", "summarise", "to_markdown"]  # fmt: skip
