"""The accuracy report: every metric of csipose.metrics with its definition,
beside the mean-pose baseline (docs/architecture.md: a constant model must never pass
as a good one)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from csipose import _arrays
from csipose import skeleton as _skeleton
from csipose.metrics import pose

__all__ = ["DEFAULT_THRESHOLDS", "AccuracyReport", "Measurement", "accuracy_report"]

#: torso-PCK@10 .. @50.
DEFAULT_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5)


@dataclass(frozen=True)
class Measurement:
    """One reported number and what it means."""

    value: float
    definition: str
    per_joint: tuple[float, ...] | None = None
    count: int | None = None
    excluded: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"value": _json_float(self.value), "definition": self.definition}
        if self.per_joint is not None:
            d["per_joint"] = [_json_float(x) for x in self.per_joint]
        if self.count is not None:
            d["count"] = self.count
        if self.excluded is not None:
            d["excluded"] = self.excluded
        return d


def _json_float(x: float) -> float | None:
    # JSON has no NaN or infinity: an undefined or non-finite value is written as null.
    return float(x) if math.isfinite(x) else None


def json_safe(obj: Any) -> Any:
    """``obj`` with every non-finite float (NaN, +-inf) replaced by ``None`` in its
    dicts, lists and tuples, so ``json.dumps(..., allow_nan=False)`` accepts it."""
    if isinstance(obj, float):
        return _json_float(obj)
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    return obj


@dataclass(frozen=True)
class AccuracyReport:
    """Metrics of a model and of the mean-pose baseline, keyed by metric name
    (``pck@20``, ``mpjpe``, ``pa_mpjpe``, ...)."""

    skeleton: str
    units: str | None
    n_samples: int
    dims: int
    model: dict[str, Measurement]
    mean_pose_baseline: dict[str, Measurement]
    baseline_source: str
    context: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Measurement:
        return self.model[key]

    def to_dict(self) -> dict[str, Any]:
        return {
            "skeleton": self.skeleton,
            "units": self.units,
            "n_samples": self.n_samples,
            "dims": self.dims,
            **self.context,
            "model": {k: m.to_dict() for k, m in self.model.items()},
            "mean_pose_baseline": {
                "source": self.baseline_source,
                **{k: m.to_dict() for k, m in self.mean_pose_baseline.items()},
            },
        }

    def to_json(self) -> str:
        # allow_nan=False: a NaN that slipped past to_dict is an error, not invalid JSON.
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    def to_markdown(self) -> str:
        head = [
            f"Accuracy report: {self.n_samples} samples, skeleton {self.skeleton}, "
            f"{self.dims}-D, units {self.units or 'as given'}"
            + "".join(f", {k} {v}" for k, v in self.context.items()),
            "",
            "| metric | model | mean-pose baseline |",
            "|---|---|---|",
        ]
        rows = [
            f"| {k} | {_fmt(m.value)} | {_fmt(self.mean_pose_baseline[k].value)} |"
            if k in self.mean_pose_baseline
            else f"| {k} | {_fmt(m.value)} | |"
            for k, m in self.model.items()
        ]
        defs = ["", "Definitions:", ""] + [
            f"- **{k}**: {m.definition}" for k, m in self.model.items()
        ]
        defs.append(f"- **mean-pose baseline**: {self.baseline_source}")
        return "\n".join(head + rows + defs) + "\n"


def _fmt(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.4g}"


def _measure(
    p: np.ndarray,
    g: np.ndarray,
    v: np.ndarray | None,
    skel: _skeleton.Skeleton,
    thresholds: np.ndarray,
    units: str | None,
) -> dict[str, Measurement]:
    out: dict[str, Measurement] = {}
    curve, mp = pose.pck_and_mpjpe(p, g, thresholds, skeleton=skel, visible=v, units=units)
    for i, t in enumerate(curve.thresholds):
        out[pose.pck_key(t)] = Measurement(
            value=float(curve.values[i]),
            definition=curve.definitions[i],
            per_joint=tuple(float(x) for x in curve.per_joint[i]),
            count=curve.scored,
            excluded=curve.skipped_samples,
        )
    out["mpjpe"] = Measurement(float(mp), mp.definition, count=mp.count, excluded=mp.excluded)
    metrics = {"n_mpjpe": pose.n_mpjpe, "pa_mpjpe": pose.pa_mpjpe}
    for name, fn in metrics.items():
        m = fn(p, g, visible=v, units=units)
        out[name] = Measurement(float(m), m.definition, count=m.count, excluded=m.excluded)
    if skel.root is not None:
        m = pose.mpjpe(p, g, visible=v, root=skel.root, units=units)
        out["mpjpe_root_relative"] = Measurement(
            float(m), m.definition, count=m.count, excluded=m.excluded
        )
    if skel.sigmas is not None and p.shape[2] == 2:
        labelled = np.ones(p.shape[:2], bool) if v is None else v
        keep = labelled.any(axis=1)
        vals = pose.oks(p[keep], g[keep], visible=labelled[keep], area="keypoint_bbox", sigmas=skel)
        out["oks"] = Measurement(
            value=float(vals.mean()) if len(vals) else math.nan,
            definition=(
                "mean COCO OKS over samples (COCOeval.computeOks, kappa = 2 sigma with "
                f"{skel.name} sigmas), with s^2 = the area of the labelled ground-truth joints' "
                "bounding box; samples without a labelled joint are excluded"
            ),
            count=int(keep.sum()),
            excluded=int((~keep).sum()),
        )
    spread = _spread_ratio(p, g, v)
    out["pred_std_ratio"] = Measurement(
        value=spread,
        definition=(
            "sqrt(total variance of the predictions / total variance of the ground truth) "
            "across samples, over visible joints and all axes; near 0 means the model predicts "
            "about the same pose for every input"
        ),
    )
    return out


def _spread_ratio(p: np.ndarray, g: np.ndarray, v: np.ndarray | None) -> float:
    """sqrt(total variance of the predictions / total variance of the ground truth)."""
    if len(p) < 2:
        return math.nan
    w = (np.ones(p.shape[:2]) if v is None else v.astype(np.float64))[..., None]
    cnt = w.sum(axis=0)

    def total_var(x: np.ndarray) -> float:
        x = x.astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = (x * w).sum(axis=0) / cnt
            var = (((x - mean) ** 2) * w).sum(axis=0) / cnt
        return float(np.nansum(var))

    gv = total_var(g)
    return math.sqrt(total_var(p) / gv) if gv > 0 else math.nan


def accuracy_report(
    pred: Any,
    gt: Any,
    *,
    skeleton: _skeleton.Skeleton | str,
    visible: Any = None,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    units: str | None = None,
    mean_pose: Any = None,
    context: dict[str, str] | None = None,
) -> AccuracyReport:
    """Every metric with its definition, for the model and for the mean-pose baseline.

    Reports torso-PCK at ``thresholds`` (flat and per joint), MPJPE,
    root-relative MPJPE (when the skeleton has a root), N-MPJPE, PA-MPJPE,
    mean OKS (2-D skeletons with sigmas) and the prediction spread.

    ``mean_pose`` ``[K, D]`` should be the training set's mean pose; without
    it the baseline uses the mean of the evaluated ground truth, which is an
    optimistic baseline (it has seen the test set) and is labelled so.
    ``context`` adds labels such as ``{"split": "test"}``.
    """
    skel = _skeleton.get(skeleton)
    p, g, v = _arrays.pose_pair(pred, gt, visible)
    n, k, d = p.shape
    if skel.num_joints != k:
        raise ValueError(
            f"skeleton {skel.name} has {skel.num_joints} joints but the poses have {k}"
        )
    t = np.ascontiguousarray(np.asarray(thresholds, dtype=np.float64).reshape(-1))
    if mean_pose is None:
        w = np.ones((n, k, 1)) if v is None else v[..., None].astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            mp = (g.astype(np.float64) * w).sum(axis=0) / w.sum(axis=0)
        source = (
            "the mean pose of the evaluated ground truth (optimistic: it has seen the "
            "evaluated data; pass the training set's mean pose instead)"
        )
    else:
        mp = _arrays.as_numpy(mean_pose)
        if mp.shape != (k, d):
            raise ValueError(f"mean_pose must have shape [{k}, {d}], got {list(mp.shape)}")
        source = "the mean pose of the training set, predicted for every sample"
    baseline = np.ascontiguousarray(np.broadcast_to(np.nan_to_num(mp), p.shape), dtype=np.float32)
    return AccuracyReport(
        skeleton=skel.name,
        units=units,
        n_samples=n,
        dims=d,
        model=_measure(p, g, v, skel, t, units),
        mean_pose_baseline=_measure(baseline, g, v, skel, t, units),
        baseline_source=source,
        context=dict(context or {}),
    )
