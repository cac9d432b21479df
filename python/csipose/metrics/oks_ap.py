"""COCO keypoint AP and AR over OKS thresholds, as pycocotools' ``COCOeval(iouType='keypoints')``.

Per image: the detections sorted by score (stable) and cut at ``max_dets``;
the OKS of each against each ground truth (``computeOks``, Rust, float64);
at each OKS threshold 0.50:0.05:0.95, each detection in score order takes the
free ground truth of highest OKS >= the threshold, preferring ground truth that
counts over ignored ground truth (``evaluateImg``, Rust). Ground truth is
ignored when it is a crowd, has no labelled keypoint, or its area lies outside
the area range; an unmatched detection whose keypoint-box area lies outside
the range is ignored too. Over all images (``accumulate``): detections sorted
by score, cumulative true and false positives, precision made monotone and
read at 101 recall points. AP averages that precision over thresholds and
recall points, AR the final recall over thresholds (``summarize``).

The one deliberate difference: where COCOeval reports -1 (no ground truth
counts in the area range), the value here is NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from csipose import _arrays, _native
from csipose import skeleton as _skeleton
from csipose.metrics.results import MetricValue

__all__ = [
    "AREA_RANGES",
    "OKS_THRESHOLDS",
    "RECALL_THRESHOLDS",
    "Detections",
    "GroundTruth",
    "OKSAPResult",
    "oks_ap",
]


def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


# COCOeval's Params.setKpParams, written the same way so the floats are identical.
#: OKS thresholds 0.50:0.05:0.95.
OKS_THRESHOLDS = _frozen(np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1))
#: Recall points 0:0.01:1 at which precision is read.
RECALL_THRESHOLDS = _frozen(np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1))
#: (label, lowest area, highest area), both inclusive; COCO has no "small" range for keypoints.
AREA_RANGES = (("all", 0.0**2, 1e5**2), ("medium", 32.0**2, 96.0**2), ("large", 96.0**2, 1e5**2))

#: COCOeval's summary, in its ``stats`` order: (name, AP or AR, OKS threshold, area range).
_STATS = (
    ("AP", "AP", None, "all"),
    ("AP50", "AP", 0.5, "all"),
    ("AP75", "AP", 0.75, "all"),
    ("APm", "AP", None, "medium"),
    ("APl", "AP", None, "large"),
    ("AR", "AR", None, "all"),
    ("AR50", "AR", 0.5, "all"),
    ("AR75", "AR", 0.75, "all"),
    ("ARm", "AR", None, "medium"),
    ("ARl", "AR", None, "large"),
)


class Detections(NamedTuple):
    """The detections of one image: ``keypoints`` ``[P, K, 2]`` and ``scores`` ``[P]``."""

    keypoints: Any
    scores: Any


class GroundTruth(NamedTuple):
    """The ground truth of one image.

    ``keypoints`` ``[G, K, 2]``; ``visibility`` ``[G, K]`` (COCO flags, ``v > 0``
    is labelled, or bool); ``areas`` ``[G]`` (the object scale s^2 and the
    area-range key; COCO uses the segment area); ``bboxes`` ``[G, 4]`` (x, y, w, h),
    needed only for ground truth without a labelled keypoint; ``iscrowd`` ``[G]``.
    """

    keypoints: Any
    visibility: Any
    areas: Any
    bboxes: Any = None
    iscrowd: Any = None


@dataclass(frozen=True, eq=False)
class OKSAPResult:
    """COCO keypoint AP / AR with their definitions.

    ``values`` maps COCO's names (``AP``, ``AP50``, ``AP75``, ``APm``, ``APl``,
    ``AR``, ``AR50``, ``AR75``, ``ARm``, ``ARl``) to :class:`MetricValue`; each
    ``count`` is the number of ground truths that count in its area range and
    ``excluded`` the number ignored. ``precision`` ``[T, R, A]`` and ``recall``
    ``[T, A]`` are COCOeval's ``eval['precision'|'recall']`` for the one
    category and ``max_dets``, with NaN for -1.
    """

    values: dict[str, MetricValue]
    precision: np.ndarray
    recall: np.ndarray
    max_dets: int
    n_images: int
    n_detections: int
    n_ground_truth: int
    oks_thresholds: np.ndarray = field(default_factory=lambda: OKS_THRESHOLDS)
    recall_thresholds: np.ndarray = field(default_factory=lambda: RECALL_THRESHOLDS)
    area_ranges: tuple[tuple[str, float, float], ...] = AREA_RANGES

    def __post_init__(self) -> None:
        for name in ("precision", "recall"):
            _frozen(getattr(self, name))

    def __getitem__(self, name: str) -> MetricValue:
        return self.values[name]

    @property
    def stats(self) -> np.ndarray:
        """The 10 numbers of ``COCOeval.stats``, in its order (NaN where it has -1)."""
        return np.array([float(self.values[name]) for name, *_ in _STATS])

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_dets": self.max_dets,
            "n_images": self.n_images,
            "n_detections": self.n_detections,
            "n_ground_truth": self.n_ground_truth,
            **{
                name: {
                    "value": None if np.isnan(v) else float(v),
                    "definition": v.definition,
                    "count": v.count,
                    "excluded": v.excluded,
                }
                for name, v in self.values.items()
            },
        }


def _definition(kind: str, thr: float | None, area: str, max_dets: int, sigmas: str) -> str:
    lo, hi = next((lo, hi) for label, lo, hi in AREA_RANGES if label == area)
    oks = "OKS thresholds 0.50:0.05:0.95" if thr is None else f"OKS threshold {thr:.2f}"
    what = (
        "101-point interpolated precision (recall 0:0.01:1)"
        if kind == "AP"
        else "recall (matched / counted ground truth)"
    )
    mean = "mean over " if thr is None else "at "
    return (
        f"COCO keypoint {kind} (pycocotools COCOeval, iouType 'keypoints'): {mean}{oks} of the "
        f"{what}; at most {max_dets} detections per image by score, greedy matching in score "
        f"order; area range '{area}' [{lo:g}, {hi:g}]: ground truth counts unless crowd, "
        "without labelled keypoints or outside the range, unmatched detections whose "
        "keypoint-box area lies outside it are ignored; OKS = COCO computeOks with "
        f"{sigmas} and s^2 = the ground-truth area; NaN when no ground truth counts"
    )


def oks_ap(
    detections: Sequence[Any],
    ground_truth: Sequence[Any],
    *,
    sigmas: Any = _skeleton.COCO17,
    max_dets: int = 20,
) -> OKSAPResult:
    """COCO keypoint AP / AR of ``detections`` against ``ground_truth``, one entry per image.

    Each detection entry is ``(keypoints [P, K, 2], scores [P])`` (a
    :class:`Detections` or plain tuple), each ground-truth entry
    ``(keypoints [G, K, 2], visibility [G, K], areas [G][, bboxes [G, 4][, iscrowd [G]]])``
    (a :class:`GroundTruth` or plain tuple; ``visibility=None``: all labelled).
    Images may have no detections or no ground truth (``[]`` or arrays with a
    zero first axis). Coordinates are float64. ``sigmas``: a skeleton with sigmas (default COCO-17) or ``[K]`` values.

    Agrees with ``COCOeval(..., 'keypoints')`` after ``evaluate()``,
    ``accumulate()``, ``summarize()`` (tested against pycocotools to 1e-12).
    """
    if len(detections) != len(ground_truth):
        raise ValueError(f"{len(detections)} detection entries but {len(ground_truth)} images")
    if isinstance(max_dets, bool) or not isinstance(max_dets, int | np.integer) or max_dets < 1:
        raise ValueError(f"max_dets must be a positive integer, got {max_dets!r}")
    sig = _skeleton.oks_sigmas(sigmas)
    k = len(sig)
    per_image = zip(detections, ground_truth, strict=True)
    images = [_image(i, d, g, k) for i, (d, g) in enumerate(per_image)]
    im, dt_start = _concat(images, k)
    n_dt = np.diff(dt_start)

    # Sort each image's detections by score (stable) and keep the first max_dets.
    order = np.lexsort((-im.scores, np.repeat(np.arange(len(n_dt)), n_dt)))
    rank = np.arange(len(order)) - np.repeat(dt_start[:-1], n_dt)
    keep = order[rank < max_dets]
    dt, scores = np.ascontiguousarray(im.dt[keep]), im.scores[keep]
    dt_off = _arrays.offsets(np.minimum(n_dt, max_dets))
    gt_off = _arrays.offsets([len(x.area) for x in images])

    no_label = ~im.labelled.any(axis=1)
    bbox = im.bbox if no_label.any() else None
    oks = _native.oks_matrices(dt, im.gt, im.labelled, im.area, sig, dt_off, gt_off, bbox)
    dt_area = np.ptp(dt[..., 0], axis=1) * np.ptp(dt[..., 1], axis=1)
    ranges = np.array([(lo, hi) for _, lo, hi in AREA_RANGES])
    gt_ignore = np.ascontiguousarray((im.crowd | no_label)[None, :] | _outside(im.area, ranges))
    dt_ignore = _outside(dt_area, ranges)
    codes = _native.greedy_match(oks, dt_off, gt_off, gt_ignore, im.crowd, OKS_THRESHOLDS)
    codes = codes.reshape(len(scores), len(AREA_RANGES), len(OKS_THRESHOLDS))

    precision, recall = _accumulate(codes, scores, gt_ignore, dt_ignore)
    values = {}
    for name, kind, thr, area_label in _STATS:
        a = [r[0] for r in AREA_RANGES].index(area_label)
        t = slice(None) if thr is None else np.flatnonzero(OKS_THRESHOLDS == thr)
        s = precision[t, :, a] if kind == "AP" else recall[t, a]
        s = s[~np.isnan(s)]
        counted = int((~gt_ignore[a]).sum())
        values[name] = MetricValue(
            np.mean(s) if len(s) else np.nan,
            _definition(kind, thr, area_label, max_dets, _skeleton.sigmas_label(sigmas)),
            counted,
            len(im.area) - counted,
        )
    return OKSAPResult(
        values=values,
        precision=precision,
        recall=recall,
        max_dets=int(max_dets),
        n_images=len(n_dt),
        n_detections=len(im.scores),
        n_ground_truth=len(im.area),
    )


def _outside(x: np.ndarray, ranges: np.ndarray) -> np.ndarray:
    """[A, N]: x outside each inclusive range."""
    return (x[None, :] < ranges[:, :1]) | (x[None, :] > ranges[:, 1:])


def _accumulate(
    codes: np.ndarray, scores: np.ndarray, gt_ignore: np.ndarray, dt_ignore: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """COCOeval.accumulate for one category and one maxDets: precision [T, R, A], recall [T, A]."""
    n_t, n_r, n_a = len(OKS_THRESHOLDS), len(RECALL_THRESHOLDS), len(AREA_RANGES)
    precision = np.full((n_t, n_r, n_a), np.nan)
    recall = np.full((n_t, n_a), np.nan)
    order = np.argsort(-scores, kind="mergesort")
    nd = len(order)
    for a in range(n_a):
        counted = np.count_nonzero(~gt_ignore[a])
        if counted == 0:
            continue
        c = codes[order, a, :].T
        matched = c > 0
        ignored = (c == 2) | (~matched & dt_ignore[a][order])
        tp = np.cumsum(matched & ~ignored, axis=1).astype(float)
        fp = np.cumsum(~matched & ~ignored, axis=1).astype(float)
        rc = tp / counted
        pr = tp / (fp + tp + np.spacing(1))
        recall[:, a] = rc[:, -1] if nd else 0.0
        # Precision at recall r: the best precision at any recall >= r.
        pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]
        for t in range(n_t):
            at = np.searchsorted(rc[t], RECALL_THRESHOLDS, side="left")
            found = at < nd
            precision[t, :, a] = 0.0
            precision[t, found, a] = pr[t, at[found]]
    return precision, recall


class _Image(NamedTuple):
    """One image's arrays (or, from :func:`_concat`, all images' concatenated)."""

    dt: np.ndarray  # [P, K, 2]
    scores: np.ndarray  # [P]
    gt: np.ndarray  # [G, K, 2]
    labelled: np.ndarray  # [G, K] bool
    area: np.ndarray  # [G]
    bbox: np.ndarray  # [G, 4], NaN where not given
    crowd: np.ndarray  # [G] bool


def _concat(images: list[_Image], k: int) -> tuple[_Image, np.ndarray]:
    """All images' arrays concatenated, and where each image's detections start ``[I + 1]``."""
    empty = _Image(
        np.empty((0, k, 2)), np.empty(0), np.empty((0, k, 2)), np.empty((0, k), bool),
        np.empty(0), np.empty((0, 4)), np.empty(0, bool),
    )  # fmt: skip
    fields = [
        np.ascontiguousarray(np.concatenate([e, *(im[f] for im in images)]))
        for f, e in enumerate(empty)
    ]
    return _Image(*fields), np.cumsum([0, *(len(im.scores) for im in images)])


def _real(x: Any, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """float64 of ``shape``; with no rows, an empty input of any shape (e.g. ``[]``) will do."""
    a = _arrays.as_numpy(x)
    if a.size == 0 and shape[0] == 0:
        return np.empty(shape)
    return _arrays.float64(a, name, shape)


def _rows(x: Any) -> int:
    a = _arrays.as_numpy(x)
    return a.shape[0] if a.ndim else -1


def _image(i: int, det: Any, gt: Any, k: int) -> _Image:
    if len(det) != 2:
        raise ValueError(f"image {i}: detections must be (keypoints, scores)")
    if not 3 <= len(gt) <= 5:
        raise ValueError(
            f"image {i}: ground truth must be (keypoints, visibility, areas[, bboxes[, iscrowd]])"
        )
    gt = GroundTruth(*gt)
    p, g = _rows(det[1]), _rows(gt.areas)
    dk = _real(det[0], f"image {i} detection keypoints", (p, k, 2))
    sc = _real(det[1], f"image {i} scores", (p,))
    if not (np.isfinite(dk).all() and np.isfinite(sc).all()):
        raise ValueError(f"image {i}: detection keypoints and scores must be finite")
    gk = _real(gt.keypoints, f"image {i} ground-truth keypoints", (g, k, 2))
    labelled = _arrays.mask(gt.visibility, (g, k), f"image {i} visibility")
    if labelled is None:
        labelled = np.ones((g, k), bool)
    area = _real(gt.areas, f"image {i} areas", (g,))
    if not np.all(np.isfinite(area) & (area >= 0)):
        raise ValueError(f"image {i}: areas must be finite and >= 0, got {area.tolist()}")
    if not np.isfinite(gk[labelled]).all():
        raise ValueError(f"image {i}: labelled ground-truth keypoints must be finite")
    bbox = np.full((g, 4), np.nan)
    if gt.bboxes is not None:
        bbox = _real(gt.bboxes, f"image {i} bboxes", (g, 4))
    unscored = np.flatnonzero(~labelled.any(axis=1) & ~np.isfinite(bbox).all(axis=1))
    if len(unscored):
        raise ValueError(
            f"image {i}: ground truth {unscored[0]} has no labelled keypoint; COCO then scores "
            "detections against its bounding box, so pass finite bboxes"
        )
    crowd = _arrays.mask(gt.iscrowd, (g,), f"image {i} iscrowd")
    if crowd is None:
        crowd = np.zeros(g, bool)
    return _Image(dk, sc, gk, labelled, area, bbox, crowd)
