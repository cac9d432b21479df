"""Multi-person pose metrics.

Per frame, predicted people are matched to true people
(:func:`csipose.matching.match_frames`: optimal among gated pairs). PCK and
MPJPE are measured over the matched pairs only; the people left out are
counted beside them (missed = unmatched true people, spurious = unmatched
predictions), so a model cannot look accurate by predicting only the easy
people. Person counts are read from the same frames.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from csipose import _arrays, matching
from csipose import skeleton as _skeleton
from csipose.metrics import pose
from csipose.metrics.report import Measurement
from csipose.metrics.results import MetricValue, PCKResult

__all__ = ["MultiPersonResult", "multi_person_metrics"]


@dataclass(frozen=True, eq=False)
class MultiPersonResult:
    """Pose accuracy over matched people, and what the matching left out.

    ``pck`` and ``mpjpe`` cover matched (prediction, true person) pairs only.
    ``person_precision`` = matched / predicted people, ``person_recall`` =
    matched / true people; ``fully_matched`` = the fraction of frames with no
    missed and no spurious person. ``count_accuracy`` / ``count_within_one`` /
    ``count_mae`` compare the number of predicted and true people per frame.
    ``matches`` holds each frame's :class:`csipose.matching.PersonMatch`.
    """

    pck: PCKResult
    mpjpe: MetricValue
    person_precision: MetricValue
    person_recall: MetricValue
    fully_matched: MetricValue
    count_accuracy: MetricValue
    count_within_one: MetricValue
    count_mae: MetricValue
    n_frames: int
    n_pred: int
    n_gt: int
    n_matched: int
    n_missed: int
    n_spurious: int
    matching: str
    matches: tuple[matching.PersonMatch, ...]

    def to_dict(self) -> dict[str, Any]:
        values = {
            name: Measurement(float(v), v.definition, count=v.count, excluded=v.excluded)
            for name, v in (
                ("mpjpe", self.mpjpe),
                ("person_precision", self.person_precision),
                ("person_recall", self.person_recall),
                ("fully_matched", self.fully_matched),
                ("count_accuracy", self.count_accuracy),
                ("count_within_one", self.count_within_one),
                ("count_mae", self.count_mae),
            )
        }
        pck = Measurement(
            self.pck.value,
            self.pck.definition,
            per_joint=tuple(float(x) for x in self.pck.per_joint),
            count=self.pck.scored,
            excluded=self.pck.skipped_samples,
        )
        counts = ("n_frames", "n_pred", "n_gt", "n_matched", "n_missed", "n_spurious")
        return {
            "matching": self.matching,
            **{name: getattr(self, name) for name in counts},
            pose.pck_key(self.pck.threshold): pck.to_dict(),
            **{name: m.to_dict() for name, m in values.items()},
        }


def _fraction(hits: np.ndarray, definition: str) -> MetricValue:
    return MetricValue(float(hits.mean()) if len(hits) else np.nan, definition, len(hits))


def multi_person_metrics(
    pred_frames: Sequence[Any],
    gt_frames: Sequence[Any],
    *,
    cost: str = "oks",
    threshold: float | None,
    gt_visible: Sequence[Any] | None = None,
    areas: Sequence[Any] | None = None,
    skeleton: _skeleton.Skeleton | str = _skeleton.COCO17,
    sigmas: Any = None,
    pck_threshold: float = 0.2,
    norm: str = "torso",
    units: str | None = None,
) -> MultiPersonResult:
    """PCK, MPJPE, person counts and match rates of multi-person predictions.

    ``pred_frames[f]`` ``[P_f, K, D]`` and ``gt_frames[f]`` ``[G_f, K, D]`` hold
    each frame's people (any number, also none). Matching: ``cost``,
    ``threshold``, ``gt_visible``, ``areas`` as in
    :func:`csipose.matching.match_frames`, with ``sigmas`` (default: the
    skeleton's) for OKS. PCK: preset ``norm`` at ``pck_threshold`` with the
    skeleton's torso (see :func:`csipose.metrics.pck`); MPJPE in ``units``.
    """
    skel = _skeleton.get(skeleton)
    sigmas = skel if sigmas is None else sigmas
    matches = matching.match_frames(
        pred_frames, gt_frames, cost=cost, threshold=threshold, gt_visible=gt_visible,
        areas=areas, sigmas=sigmas,
    )  # fmt: skip
    how = matching.matching_definition(cost, threshold, sigmas, areas is not None)
    pred_m, gt_m, vis_m = _matched_pairs(pred_frames, gt_frames, gt_visible, matches, skel)
    over = f"over matched (prediction, true person) pairs only [{how}]"
    p = pose.pck(
        pred_m, gt_m, threshold=pck_threshold, norm=norm, skeleton=skel, visible=vis_m,
        units=units,
    )  # fmt: skip
    p = dataclasses.replace(p, definition=f"multi-person {p.definition}; {over}")
    m = pose.mpjpe(pred_m, gt_m, visible=vis_m, units=units)
    m = MetricValue(float(m), f"multi-person {m.definition}; {over}", m.count, m.excluded)

    n_pred = np.array([x.n_pred for x in matches], dtype=np.int64)
    n_gt = np.array([x.n_gt for x in matches], dtype=np.int64)
    n_matched = np.array([x.n_matched for x in matches], dtype=np.int64)
    total_matched = int(n_matched.sum())
    diff = np.abs(n_pred - n_gt)
    per_frame = "per frame, the number of predicted people"
    return MultiPersonResult(
        pck=p,
        mpjpe=m,
        person_precision=MetricValue(
            total_matched / n_pred.sum() if n_pred.sum() else np.nan,
            f"matched predictions / all predicted people (1 - spurious rate) [{how}]",
            int(n_pred.sum()),
        ),
        person_recall=MetricValue(
            total_matched / n_gt.sum() if n_gt.sum() else np.nan,
            f"matched true people / all true people (1 - missed rate) [{how}]",
            int(n_gt.sum()),
        ),
        fully_matched=_fraction(
            (n_matched == n_pred) & (n_matched == n_gt),
            f"fraction of frames with no missed and no spurious person [{how}]",
        ),
        count_accuracy=_fraction(
            diff == 0, f"count accuracy: fraction of frames where {per_frame} equals the true one"
        ),
        count_within_one=_fraction(
            diff <= 1, f"fraction of frames where {per_frame} is within 1 of the true one"
        ),
        count_mae=MetricValue(
            float(diff.mean()) if len(diff) else np.nan,
            f"mean over frames of |predicted - true| number of people, {per_frame}",
            len(diff),
        ),
        n_frames=len(matches),
        n_pred=int(n_pred.sum()),
        n_gt=int(n_gt.sum()),
        n_matched=total_matched,
        n_missed=int((n_gt - n_matched).sum()),
        n_spurious=int((n_pred - n_matched).sum()),
        matching=how,
        matches=tuple(matches),
    )


def _matched_pairs(
    pred_frames: Sequence[Any],
    gt_frames: Sequence[Any],
    gt_visible: Sequence[Any] | None,
    matches: list[matching.PersonMatch],
    skel: _skeleton.Skeleton,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The matched people of every frame, stacked: pred, gt ``[M, K, D]`` and visible ``[M, K]``."""
    preds, gts, vis = [], [], []
    for f, m in enumerate(matches):
        if not m.n_matched:
            continue
        g = _arrays.as_numpy(gt_frames[f])
        preds.append(_arrays.as_numpy(pred_frames[f])[m.pred])
        gts.append(g[m.gt])
        v = np.ones(g.shape[:2], bool)
        if gt_visible is not None:
            v = _arrays.mask(gt_visible[f], g.shape[:2], f"gt_visible[{f}]")
        vis.append(v[m.gt])
    if not preds:
        d = next((_arrays.as_numpy(x).shape[2] for x in gt_frames if np.ndim(x) == 3), 2)
        empty = np.empty((0, skel.num_joints, d), np.float32)
        return empty, empty, np.empty((0, skel.num_joints), bool)
    return np.concatenate(preds), np.concatenate(gts), np.concatenate(vis)
