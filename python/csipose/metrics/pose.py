"""Single-person pose metrics: PCK presets, MPJPE, N-MPJPE, PA-MPJPE and COCO OKS.

Inputs are ``[N, K, D]`` arrays (numpy or torch; D = 2 or 3), cast to
float32; the Rust kernels compute every distance, comparison and sum in
float64. An optional ``visible`` mask ``[N, K]`` (bool, or COCO flags where
``v > 0`` is labelled) restricts every metric to labelled ground-truth joints.
Ground truth must be finite wherever it is visible (else ``ValueError``); a
NaN prediction counts as wrong in PCK, as 0 similarity in OKS, and makes an
MPJPE NaN, because such an error cannot be measured.

Definitions: docs/architecture.md, "Metric definitions".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from csipose import _arrays, _native
from csipose import skeleton as _skeleton
from csipose.metrics.results import MetricValue, PCKCurve, PCKResult

__all__ = [
    "NORMS",
    "TORSO_FLOOR",
    "mpjpe",
    "n_mpjpe",
    "oks",
    "pa_mpjpe",
    "pck",
    "pck_and_mpjpe",
    "pck_curve",
    "pck_definition",
    "pck_key",
]

#: The PCK presets.
NORMS = ("torso", "bbox", "mmpose", "absolute")
#: The WiFlow harness clamps the per-sample torso at this value (data units).
TORSO_FLOOR = 0.01


def pck_key(threshold: float) -> str:
    """The name of a PCK threshold: 0.2 -> ``"pck@20"`` (PCK@20 = 0.20 x the normaliser)."""
    pct = threshold * 100
    return f"pck@{round(pct)}" if math.isclose(pct, round(pct), abs_tol=1e-9) else f"pck@{pct:g}"


def _units(units: str | None) -> str:
    return f"in {units}" if units else "in the input's units"


def pck_definition(
    norm: str,
    t: str,
    skel: _skeleton.Skeleton | None,
    masked: bool = False,
    given_factor: bool = False,
    units: str | None = None,
) -> str:
    """The definition of a PCK preset at threshold ``t`` (a number, or ``"t"`` for a curve)."""
    return f"{norm}-PCK@{t}: {_norm_rule(norm, t, skel, masked, given_factor, units)}"


def _norm_rule(
    norm: str,
    t: str,
    skel: _skeleton.Skeleton | None,
    masked: bool,
    given_factor: bool,
    units: str | None,
) -> str:
    if norm == "torso":
        assert skel is not None
        a, b = skel.torso
        rule = (
            f"correct when |pred - gt| / max(|gt[{a}] - gt[{b}]|, {TORSO_FLOOR:g}) <= {t} "
            f"({skel.name} {skel.torso_label()}, per sample); flat mean over "
            "(sample, joint) pairs (WiFlow harness rule)"
        )
        if masked:
            rule += "; samples whose torso joints are not visible are skipped"
        return rule
    if norm == "bbox":
        return (
            f"correct when |pred - gt| / L <= {t}, L = longest side of the bounding box of the "
            "sample's visible ground-truth joints; samples with L = 0 are skipped; flat mean "
            "over (sample, joint) pairs"
        )
    if norm == "mmpose":
        factor = (
            "the given per-axis norm_factor"
            if given_factor
            else "the longest side of the visible ground-truth joints' bounding box, on every axis"
        )
        return (
            f"mmpose keypoint_pck_accuracy: correct when |(pred - gt) / f| < {t} (strict), f = "
            f"{factor}; samples with a zero factor are skipped, negative factors become 1e6; "
            "macro mean over joints"
        )
    return f"correct when |pred - gt| <= {t} {_units(units)}; flat mean over (sample, joint) pairs"


def _pck_setup(
    norm: str,
    skeleton: _skeleton.Skeleton | str | None,
    k: int,
    d: int,
    n: int,
    thresholds: np.ndarray,
    norm_factor: Any,
) -> tuple[dict[str, Any], _skeleton.Skeleton | None]:
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; expected one of {', '.join(NORMS)}")
    skel = None if skeleton is None else _skeleton.get(skeleton)
    if skel is not None and skel.num_joints != k:
        raise ValueError(
            f"skeleton {skel.name} has {skel.num_joints} joints but the poses have {k}"
        )
    if not np.all(np.isfinite(thresholds)) or np.any(thresholds < 0):
        raise ValueError(f"PCK thresholds must be finite and >= 0, got {thresholds.tolist()}")
    if norm != "absolute" and np.any(thresholds > 1):
        raise ValueError(
            f"threshold {thresholds.max():g} is a fraction of the normaliser: PCK@20 is "
            "threshold=0.2 (use norm='absolute' for a distance in data units)"
        )
    if norm_factor is not None and norm != "mmpose":
        raise ValueError("norm_factor applies to norm='mmpose' only")
    args: dict[str, Any] = {"norm": norm, "thresholds": thresholds}
    if norm == "torso":
        if skel is None:
            raise ValueError("norm='torso' needs skeleton= (its torso pair defines the scale)")
        args.update(torso=skel.torso, floor=TORSO_FLOOR)
    if norm_factor is not None:
        f = _arrays.as_numpy(norm_factor)
        if f.ndim == 1:
            f = np.repeat(f[:, None], d, axis=1)
        args["factors"] = _arrays.float64(f, "norm_factor", (n, d))
    return args, skel


def pck_curve(
    pred: Any,
    gt: Any,
    thresholds: Sequence[float] | np.ndarray,
    *,
    norm: str = "torso",
    skeleton: _skeleton.Skeleton | str | None = None,
    visible: Any = None,
    norm_factor: Any = None,
    units: str | None = None,
) -> PCKCurve:
    """PCK at each of ``thresholds`` in one pass over the data.

    Presets (``norm``):

    * ``"torso"``: the WiFlow harness: per-sample scale max(|gt[a] - gt[b]|, 0.01)
      over the skeleton's torso pair, inclusive ``<=``, flat mean. Needs ``skeleton``.
    * ``"bbox"``: scale = the longest side of the visible ground truth's bounding box.
    * ``"mmpose"``: mmpose ``keypoint_pck_accuracy``: per-axis ``norm_factor``
      (``[N]`` or ``[N, D]``; default the bbox side), strict ``<``, macro mean over joints.
    * ``"absolute"``: ``|pred - gt| <= t`` in data units.

    Thresholds of the normalised presets are fractions: PCK@20 is 0.2.
    """
    # No MPJPE here, so the kernel may skip the float64 distances.
    return _pck_pass(
        pred, gt, thresholds, norm, skeleton, visible, norm_factor, units, distances=False
    )[0]


def pck_and_mpjpe(
    pred: Any,
    gt: Any,
    thresholds: Sequence[float] | np.ndarray,
    *,
    norm: str = "torso",
    skeleton: _skeleton.Skeleton | str | None = None,
    visible: Any = None,
    norm_factor: Any = None,
    units: str | None = None,
) -> tuple[PCKCurve, MetricValue]:
    """PCK at each of ``thresholds`` and the MPJPE, from one pass over the data.

    See :func:`pck_curve` for the presets; the MPJPE is :func:`mpjpe`'s.
    """
    curve, r = _pck_pass(
        pred, gt, thresholds, norm, skeleton, visible, norm_factor, units, distances=True
    )
    m = MetricValue(
        _mean(r["dist_sum"], r["dist_count"]), _mpjpe_definition(None, units), r["dist_count"]
    )
    return curve, m


def _pck_pass(
    pred: Any,
    gt: Any,
    thresholds: Sequence[float] | np.ndarray,
    norm: str,
    skeleton: _skeleton.Skeleton | str | None,
    visible: Any,
    norm_factor: Any,
    units: str | None,
    *,
    distances: bool,
) -> tuple[PCKCurve, dict[str, Any]]:
    """One ``_native.joint_errors`` pass: the curve and the raw result."""
    p, g, v = _arrays.pose_pair(pred, gt, visible)
    n, k, d = p.shape
    t = np.atleast_1d(_arrays.as_numpy(thresholds))
    if t.dtype.kind not in "fiu":
        raise TypeError(f"thresholds must be real numbers, got dtype {t.dtype}")
    if t.ndim != 1:
        raise ValueError(f"thresholds must be a 1-D sequence, got shape {t.shape}")
    t = np.ascontiguousarray(t, dtype=np.float64)
    args, skel = _pck_setup(norm, skeleton, k, d, n, t, norm_factor)
    r = _native.joint_errors(p, g, v, distances=distances, **args)
    return _curve(r, t, norm, skel, v is not None, norm_factor is not None, units), r


def _curve(
    r: dict[str, Any],
    t: np.ndarray,
    norm: str,
    skel: _skeleton.Skeleton | None,
    masked: bool,
    given_factor: bool,
    units: str | None,
) -> PCKCurve:
    """A PCK curve from the counts of one ``_native.joint_errors`` pass."""
    correct = r["correct"].astype(np.float64)
    scored = r["scored"].astype(np.float64)
    seen = scored > 0
    per_joint = np.full(correct.shape, np.nan)
    per_joint[:, seen] = correct[:, seen] / scored[seen]
    if norm == "mmpose":
        values = per_joint[:, seen].mean(axis=1) if seen.any() else np.full(len(t), np.nan)
    else:
        total = scored.sum()
        values = correct.sum(axis=1) / total if total else np.full(len(t), np.nan)
    return PCKCurve(
        thresholds=t,
        values=values,
        per_joint=per_joint,
        definition=pck_definition(norm, "t", skel, masked, given_factor, units),
        definitions=tuple(
            pck_definition(norm, f"{x:g}", skel, masked, given_factor, units) for x in t
        ),
        norm=norm,
        scored=int(scored.sum()),
        skipped_samples=int(r["pck_skipped"]),
    )


def pck(
    pred: Any,
    gt: Any,
    *,
    threshold: float,
    norm: str = "torso",
    skeleton: _skeleton.Skeleton | str | None = None,
    visible: Any = None,
    norm_factor: Any = None,
    units: str | None = None,
) -> PCKResult:
    """PCK at one threshold; see :func:`pck_curve` for the presets.

    ``torso`` on ``BODY25_15`` reproduces WiFlow's ``calculate_pck`` exactly.
    """
    c = pck_curve(
        pred, gt, [threshold], norm=norm, skeleton=skeleton, visible=visible,
        norm_factor=norm_factor, units=units,
    )  # fmt: skip
    return PCKResult(
        value=float(c.values[0]),
        per_joint=c.per_joint[0],
        definition=c.definitions[0],
        threshold=float(c.thresholds[0]),
        norm=norm,
        scored=c.scored,
        skipped_samples=c.skipped_samples,
    )


def _root(root: int | None, k: int) -> int | None:
    if root is None:
        return None
    if isinstance(root, bool) or not isinstance(root, int | np.integer):
        raise TypeError(f"root must be a joint index, got {root!r}")
    if not 0 <= root < k:
        raise ValueError(f"root joint {root} is out of range for {k} joints")
    return int(root)


def _mean(total: float, count: int) -> float:
    return total / count if count else float("nan")


def mpjpe(
    pred: Any,
    gt: Any,
    *,
    visible: Any = None,
    root: int | None = None,
    reduce: bool = True,
    units: str | None = None,
) -> MetricValue | np.ndarray:
    """Mean per-joint position error: the flat mean of |pred - gt| over visible pairs.

    ``root``: measure root-relative, subtracting joint ``root`` of prediction
    and ground truth in each sample first (a sample whose root is not visible
    is skipped). ``reduce=False`` returns each sample's mean ``[N]`` (NaN for a
    sample with nothing visible).
    """
    p, g, v = _arrays.pose_pair(pred, gt, visible)
    root = _root(root, p.shape[1])
    r = _native.joint_errors(p, g, v, root=root, per_sample=not reduce)
    if not reduce:
        return r["per_sample"]
    definition = _mpjpe_definition(root, units)
    return MetricValue(
        _mean(r["dist_sum"], r["dist_count"]), definition, r["dist_count"], r["root_skipped"]
    )


def _mpjpe_definition(root: int | None, units: str | None) -> str:
    kind = "MPJPE" if root is None else f"root-relative MPJPE (joint {root} subtracted first)"
    definition = (
        f"{kind}: mean Euclidean distance |pred - gt| over visible (sample, joint) pairs, "
        f"flat mean, {_units(units)}"
    )
    if root is not None:
        definition += "; samples whose root joint is not visible are skipped"
    return definition


_ALIGNED = {
    "scale": (
        "N-MPJPE: MPJPE after scaling each prediction by s = <P, G> / <P, P> over its visible "
        "joints (mmpose alignment='scale')"
    ),
    "similarity": (
        "PA-MPJPE: MPJPE after a per-sample similarity Procrustes alignment (rotation with the "
        "reflection fix, isotropic scale, translation) of the prediction onto the ground truth "
        "over its visible joints (MM-Fi compute_similarity_transform)"
    ),
}


def _aligned(pred, gt, visible, alignment, reduce, units):
    p, g, v = _arrays.pose_pair(pred, gt, visible)
    r = _native.aligned_errors(p, g, v, alignment=alignment, per_sample=not reduce)
    if not reduce:
        return r["per_sample"]
    definition = (
        f"{_ALIGNED[alignment]}; flat mean over (sample, joint) pairs, {_units(units)}; "
        "degenerate samples (zero-extent prediction or ground truth) are excluded and counted"
    )
    return MetricValue(
        _mean(r["dist_sum"], r["dist_count"]), definition, r["dist_count"], r["degenerate"]
    )


def n_mpjpe(
    pred: Any, gt: Any, *, visible: Any = None, reduce: bool = True, units: str | None = None
) -> MetricValue | np.ndarray:
    """MPJPE after the optimal per-sample scale.

    ``.excluded`` counts samples whose prediction is all zeros (no scale exists).
    """
    return _aligned(pred, gt, visible, "scale", reduce, units)


def pa_mpjpe(
    pred: Any, gt: Any, *, visible: Any = None, reduce: bool = True, units: str | None = None
) -> MetricValue | np.ndarray:
    """MPJPE after per-sample similarity Procrustes alignment.

    A degenerate sample (zero-extent prediction or ground truth) is left out of
    the mean and counted in ``.excluded``; with ``reduce=False`` its entry is NaN.
    """
    return _aligned(pred, gt, visible, "similarity", reduce, units)


def oks(
    pred: Any,
    gt: Any,
    *,
    visible: Any,
    area: Any,
    sigmas: Any = _skeleton.COCO17,
    bbox: Any = None,
) -> np.ndarray:
    """COCO object keypoint similarity of each sample, ``[N]``, exactly as ``COCOeval.computeOks``.

    * ``visible``: ``[N, K]`` labels (bool, or COCO flags: ``v > 0`` is labelled).
    * ``area``: ``[N]`` object areas (s^2; COCO uses the segment area), a scalar, or
      ``"keypoint_bbox"`` for width x height of the labelled ground-truth joints'
      bounding box (a convention; say so when reporting).
    * ``sigmas``: a skeleton with sigmas (default COCO-17) or ``[K]`` values; kappa = 2 sigma.
    * ``bbox``: ``[N, 4]`` (x, y, w, h); needed only for ground truth without a labelled
      joint, which COCO scores against an ignore box twice the bbox.

    2-D only. A NaN predicted joint contributes 0.
    """
    p, g, v = _arrays.pose_pair(pred, gt, visible)
    if v is None:
        raise ValueError("oks needs visible= (COCO ignores unlabelled joints)")
    n, k, _ = p.shape
    s = _skeleton.oks_sigmas(sigmas, k)
    if isinstance(area, str):
        if area != "keypoint_bbox":
            raise ValueError(f"area must be an array or 'keypoint_bbox', got {area!r}")
        a = None
    else:
        arr = _arrays.as_numpy(area)
        a = _arrays.float64(np.broadcast_to(arr, (n,)) if arr.ndim == 0 else arr, "area", (n,))
    b = None if bbox is None else _arrays.float64(bbox, "bbox", (n, 4))
    return _native.oks(p, g, v, sigmas=s, area=a, bbox=b)
