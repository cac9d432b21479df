"""Optimal person matching.

* :func:`assign` / :func:`assign_batch`: the linear assignment problem (minimum
  total cost, one row per column) on rectangular float64 cost matrices, solved
  exactly in Rust; equal in total cost to ``scipy.optimize.linear_sum_assignment``.
* :func:`match_people` / :func:`match_frames`: predicted people to ground-truth
  people by OKS or distance, with a gate; unmatched predictions are false
  positives, unmatched ground truths missed people. :func:`match_frames_flat`
  does the same for many frames given and returned as flat arrays with
  per-frame counts (no per-frame Python objects).

Cost conventions: ``+inf`` forbids a pair; NaN and ``-inf`` are errors. By
default a problem whose forbidden pairs leave no complete matching of the
smaller side is an error (as in SciPy); ``partial=True`` instead returns the
matching with the most allowed pairs and, among those, the least total cost.
Both are exact: the solver never trades a pair for cost through a large
finite stand-in for infinity.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from csipose import _arrays, _native
from csipose import skeleton as _skeleton

__all__ = [
    "MEASURES",
    "Assignments",
    "FrameMatches",
    "PersonMatch",
    "assign",
    "assign_batch",
    "match_frames",
    "match_frames_flat",
    "match_people",
    "matching_definition",
]

#: How :func:`match_people` compares a predicted and a true person.
MEASURES = ("oks", "distance")


def _matrix(x: Any, name: str = "cost") -> np.ndarray:
    a = _arrays.as_numpy(x)
    if a.dtype.kind not in "fiu":
        raise TypeError(f"{name} must hold real numbers, got dtype {a.dtype}")
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D matrix, got shape {a.shape}")
    return np.ascontiguousarray(a, dtype=np.float64)


def assign(cost: Any, *, partial: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Optimal assignment of the rows of ``cost`` ``[R, C]`` to its columns.

    Returns ``(rows, cols)`` (int64, sorted by row, ``min(R, C)`` pairs) with the
    least total ``cost[rows, cols].sum()``, like ``scipy.optimize.linear_sum_assignment``
    (its total cost is equal; where several assignments tie, the pairs may differ).
    ``+inf`` forbids a pair; a problem with no complete matching avoiding them
    raises ``ValueError``, unless ``partial=True``: then the result is the matching
    with the most allowed pairs and, among those, the least total cost. NaN and
    ``-inf`` raise ``ValueError``. Accepts numpy arrays, nested lists and torch tensors.
    """
    try:  # a 2-D float64 array and a bool go straight in: small solves cost ~0.5 us a call
        return _native.assign(cost, partial)
    except TypeError:
        return _native.assign(_matrix(cost), bool(partial))


@dataclass(frozen=True, eq=False)
class Assignments:
    """The solutions of :func:`assign_batch`, stored flat.

    Problem ``b`` owns pairs ``offsets[b]:offsets[b + 1]`` of ``rows`` and ``cols``
    (int64, sorted by row); ``result[b]`` returns them as ``(rows, cols)``. For a
    dense ``[B, R, C]`` batch without ``partial`` every problem has ``min(R, C)``
    pairs, so ``rows.reshape(B, -1)`` is ``[B, min(R, C)]``.
    """

    rows: np.ndarray
    cols: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, b: int) -> tuple[np.ndarray, np.ndarray]:
        b = range(len(self))[b]
        lo, hi = self.offsets[b], self.offsets[b + 1]
        return self.rows[lo:hi], self.cols[lo:hi]

    @property
    def problem(self) -> np.ndarray:
        """The problem index of each pair, ``[len(rows)]``."""
        return np.repeat(np.arange(len(self)), np.diff(self.offsets))


def _assignments(rows: np.ndarray, cols: np.ndarray, offsets: np.ndarray) -> Assignments:
    """An :class:`Assignments` filled without the frozen dataclass's ``__init__``
    (one ``object.__setattr__`` per field, a fifth of a one-problem call); the
    same fields, as frozen as any."""
    out = object.__new__(Assignments)
    vars(out).update(rows=rows, cols=cols, offsets=offsets)
    return out


def assign_batch(costs: Any, *, partial: bool = False, sizes: Any = None) -> Assignments:
    """Solve many assignment problems in one call (Rust, GIL released, on the thread pool).

    ``costs`` is a ``[B, R, C]`` array or a sequence of 2-D matrices of any
    shapes. With ``sizes`` ``[B, 2]`` (rows, cols per problem), ``costs`` is a
    padded ``[B, R, C]`` array and problem ``b`` is its top-left
    ``costs[b, :sizes[b, 0], :sizes[b, 1]]`` (the padding is never read): many
    small problems of different shapes without a Python object per problem.
    Each problem is solved as by :func:`assign`; errors name the problem.
    """
    if sizes is not None:
        return _assign_padded(costs, sizes, partial)
    # Exact types first: the Sequence ABC check alone cost a third of a small call.
    if type(costs) in (list, tuple) or (
        type(costs) is not np.ndarray
        and isinstance(costs, Sequence)
        and not isinstance(costs, str | bytes)
    ):
        # A list or tuple of C-contiguous float64 2-D arrays (the common case) is
        # read and solved by one native call: per-matrix work in Python cost
        # twice a small problem's solve. Anything else: None, and the checked path.
        out = _native.assign_list(costs, bool(partial))
        if out is not None:
            return _assignments(*out)
        mats = [_matrix(c, f"costs[{b}]") for b, c in enumerate(costs)]
        shapes = np.array([m.shape for m in mats], dtype=np.uint64).reshape(-1, 2)
        flat = np.concatenate([m.ravel() for m in mats]) if len(mats) else np.empty(0)
        return _assignments(*_native.assign_batch(flat, shapes, bool(partial)))
    # A dense batch, read in place by Rust; a plain ndarray skips the conversion.
    a = costs if type(costs) is np.ndarray else _arrays.as_numpy(costs)
    if a.dtype is _FLOAT64 and a.ndim == 3 and a.flags.c_contiguous:
        flat = a  # (ascontiguousarray would return it too, at a fifth of a small call)
    else:
        if a.dtype.kind not in "fiu":
            raise TypeError(f"costs must hold real numbers, got dtype {a.dtype}")
        if a.ndim != 3:
            raise ValueError(
                f"costs must be a [B, R, C] array or a sequence of matrices, got shape {a.shape}"
            )
        flat = np.ascontiguousarray(a, dtype=np.float64)
    return _assignments(*_native.assign_padded(flat, None, bool(partial)))


#: numpy's native float64 descriptor (one object: an identity check is enough).
_FLOAT64 = np.dtype(np.float64)


def _assign_padded(costs: Any, sizes: Any, partial: bool) -> Assignments:
    a = _arrays.as_numpy(costs)
    if a.dtype.kind not in "fiu":
        raise TypeError(f"costs must hold real numbers, got dtype {a.dtype}")
    if a.ndim != 3:
        raise ValueError(f"with sizes, costs must be a padded [B, R, C] array, got shape {a.shape}")
    n = _arrays.as_numpy(sizes)
    if n.dtype.kind not in "iu" or n.shape != (a.shape[0], 2):
        raise ValueError(f"sizes must be [{a.shape[0]}, 2] integers, got {n.dtype} {n.shape}")
    if n.dtype == np.uint64 and (n > np.iinfo(np.int64).max).any():
        raise ValueError(f"sizes must lie within the padded shape {a.shape[1:]}")
    # Rust reads each top-left block in place (no gather) and checks the sizes
    # against the padding, naming the problem.
    flat = np.ascontiguousarray(a, dtype=np.float64)
    sizes64 = np.ascontiguousarray(n, dtype=np.int64)
    return _assignments(*_native.assign_padded(flat, sizes64, bool(partial)))


@dataclass(frozen=True, eq=False)
class PersonMatch:
    """Predicted people matched to ground-truth people in one frame.

    ``pred[m]`` is matched to ``gt[m]`` (ascending ``pred``) with ``values[m]``
    their OKS (``measure="oks"``) or distance (``"distance"``); ``matrix``
    ``[P, G]`` holds the value of every pair. Unmatched predictions are
    ``false_positives``, unmatched ground truths ``missed``.
    """

    pred: np.ndarray
    gt: np.ndarray
    values: np.ndarray
    false_positives: np.ndarray
    missed: np.ndarray
    matrix: np.ndarray
    measure: str
    threshold: float | None
    definition: str

    @property
    def n_pred(self) -> int:
        return self.matrix.shape[0]

    @property
    def n_gt(self) -> int:
        return self.matrix.shape[1]

    @property
    def n_matched(self) -> int:
        return len(self.pred)


def matching_definition(
    cost: str, threshold: float | None, sigmas: Any = _skeleton.COCO17, areas_given: bool = False
) -> str:
    """What :func:`match_people` / :func:`match_frames` compute, in words."""
    if cost == "oks":
        label = _skeleton.sigmas_label(sigmas)
        area = (
            "the given area"
            if areas_given
            else "the area of the bounding box of the person's visible ground-truth joints"
        )
        value = f"COCO OKS ({label}; s^2 = {area})"
        gate = "all pairs" if threshold is None else f"pairs with OKS >= {threshold:g}"
        best = "the largest total OKS"
    else:
        value = (
            "distance = mean Euclidean distance over the person's visible ground-truth joints "
            "(a prediction with a NaN joint cannot be matched)"
        )
        gate = "all pairs" if threshold is None else f"pairs with distance <= {threshold:g}"
        best = "the smallest total distance"
    return (
        f"person matching by {value}: {gate} are admissible; the matching has the most "
        f"admissible pairs and, among those, {best} (optimal assignment, exact); unmatched "
        "predictions are false positives, unmatched ground-truth people are missed"
    )


def match_people(
    pred_people: Any,
    gt_people: Any,
    *,
    cost: str = "oks",
    threshold: float | None,
    gt_visible: Any = None,
    areas: Any = None,
    sigmas: Any = _skeleton.COCO17,
) -> PersonMatch:
    """Match the predicted people ``[P, K, D]`` of one frame to the true people ``[G, K, D]``.

    * ``cost="oks"``: COCO OKS (2-D only) with ``sigmas`` (a skeleton or ``[K]``
      values) and s^2 = ``areas`` ``[G]``, or the area of the bounding box of
      each true person's visible joints when ``areas`` is None. A pair is
      admissible when OKS >= ``threshold``.
    * ``cost="distance"``: the mean distance over the true person's visible
      joints (2-D or 3-D, data units); admissible when distance <= ``threshold``.

    ``threshold=None`` admits every pair (a prediction with a NaN joint is
    never admissible by distance). ``gt_visible`` ``[G, K]``: labelled joints
    (bool or COCO flags; default all); every true person needs one.

    The result has the most admissible pairs and, among those, the largest
    total OKS or the smallest total distance: optimal among gated pairs, not
    an unconstrained optimum filtered afterwards.
    """
    return match_frames(
        [pred_people], [gt_people], cost=cost, threshold=threshold,
        gt_visible=None if gt_visible is None else [gt_visible],
        areas=None if areas is None else [areas], sigmas=sigmas,
    )[0]  # fmt: skip


def _frame_list(frames: Any, name: str) -> list[Any]:
    if isinstance(frames, np.ndarray) and frames.ndim == 4:
        return list(frames)
    if isinstance(frames, Sequence) and not isinstance(frames, str | bytes):
        return list(frames)
    raise TypeError(f"{name} must be a sequence of [P, K, D] arrays, one per frame")


def _people(
    preds: list[Any], gts: list[Any]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The people of every frame one after another, predicted ``[sum(n_pred), K, D]``
    and true ``[sum(n_gt), K, D]`` (float32), and ``n_pred``, ``n_gt``; one K and D
    throughout (an empty frame may be ``[]``)."""
    arrays, n = [*preds, *gts], len(preds)
    # C-contiguous float32 / float64 frames of one valid K, D (the common case)
    # are stacked by one native call: per-array work in Python cost about as
    # much as the matching. Else None, and the numpy paths below.
    stacked = _native.stack_people(arrays)
    if stacked is not None:
        everyone, counts = stacked
    else:
        everyone, counts = _numpy_people(arrays, n)
    split = int(counts[:n].sum())
    return everyone[:split], everyone[split:], counts[:n], counts[n:]


def _numpy_people(arrays: list[Any], n: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_people`'s frames stacked by numpy: float32 ``[sum(counts), K, D]``
    and every frame's count."""
    # numpy [n, K, D] arrays of one valid K, D skip the per-array conversion and checks.
    kinds = {(a.shape[1:], a.dtype.kind) if type(a) is np.ndarray and a.ndim == 3 else None
             for a in arrays}  # fmt: skip
    only = kinds.pop() if len(kinds) == 1 else None
    if only is not None and only[1] in "fiu" and only[0][0] >= 1 and only[0][1] in (2, 3):
        kd, people = only[0], arrays
        counts = np.array([len(a) for a in arrays], np.int64)
    else:
        kd, people, counts = _checked_people(arrays, n)
    everyone = (
        np.concatenate(people, dtype=np.float32, casting="unsafe")
        if people
        else np.empty((0, *kd), np.float32)
    )
    return everyone, counts


def _checked_people(
    frames: list[Any], n: int
) -> tuple[tuple[int, ...], list[np.ndarray], np.ndarray]:
    """:func:`_people`'s general path: every frame converted and checked
    (errors name ``pred_frames[i]`` / ``gt_frames[i]``, the first ``n`` being
    predictions); returns (K, D), the frames with people, and every frame's count."""
    arrays = [_arrays.as_numpy(x) for x in frames]

    def name(i: int) -> str:
        return f"pred_frames[{i}]" if i < n else f"gt_frames[{i - n}]"

    # The joint count and dimension: from the first frame with people, else
    # from an empty [0, K, D] frame, else nobody anywhere and any will do.
    first = next((i for i, a in enumerate(arrays) if a.size), None)
    if first is None:
        first = next((i for i, a in enumerate(arrays) if a.ndim == 3), None)
    kd = (1, 2) if first is None else _arrays.poses(arrays[first], name(first)).shape[1:]
    for i, a in enumerate(arrays):
        if a.size and (a.ndim != 3 or a.shape[1:] != kd or a.dtype.kind not in "fiu"):
            a = _arrays.poses(a, name(i))  # a wrong dtype, rank or dimension: its own error
            raise ValueError(f"{name(i)} has shape {a.shape}, expected [n, {kd[0]}, {kd[1]}]")
    counts = np.array([len(a) if a.size else 0 for a in arrays], np.int64)
    return kd, [a for a in arrays if a.size], counts


def match_frames(
    pred_frames: Sequence[Any],
    gt_frames: Sequence[Any],
    *,
    cost: str = "oks",
    threshold: float | None,
    gt_visible: Sequence[Any] | None = None,
    areas: Sequence[Any] | None = None,
    sigmas: Any = _skeleton.COCO17,
) -> list[PersonMatch]:
    """:func:`match_people` for every frame, with one Rust call for the costs
    and one for the assignments. Frames may hold any number of people (also
    none); the joint count and dimension are the same in every frame."""
    preds, gts = _frame_list(pred_frames, "pred_frames"), _frame_list(gt_frames, "gt_frames")
    if len(preds) != len(gts):
        raise ValueError(f"{len(preds)} predicted frames but {len(gts)} ground-truth frames")
    vis_list = None if gt_visible is None else _frame_list(gt_visible, "gt_visible")
    area_list = None if areas is None else _frame_list(areas, "areas")
    for name, lst in (("gt_visible", vis_list), ("areas", area_list)):
        if lst is not None and len(lst) != len(gts):
            raise ValueError(f"{name} has {len(lst)} frames, expected {len(gts)}")

    pred, gt, n_pred, n_gt = _people(preds, gts)
    k = pred.shape[1]
    # Flat as match_frames_flat takes them, which checks visibility and
    # finiteness for every frame at once, naming the frame.
    vis = area = None
    if vis_list is not None:
        masks = [np.empty((0, k), bool)]
        for f, (v, n) in enumerate(zip(vis_list, n_gt.tolist(), strict=True)):
            m = _arrays.mask(v, (n, k), f"gt_visible[{f}]")
            masks.append(np.ones((n, k), bool) if m is None else m)  # None: all visible
        vis = np.concatenate(masks)
    if area_list is not None:
        per_frame = enumerate(zip(area_list, n_gt.tolist(), strict=True))
        area = np.concatenate(
            [np.empty(0), *(_arrays.float64(a, f"areas[{f}]", (n,)) for f, (a, n) in per_frame)]
        )
    flat = match_frames_flat(
        pred, gt, n_pred, n_gt, cost=cost, threshold=threshold, gt_visible=vis, areas=area,
        sigmas=sigmas,
    )  # fmt: skip
    return flat.frames()


@dataclass(frozen=True, eq=False)
class FrameMatches:
    """The person matches of many frames, stored flat (:func:`match_frames_flat`).

    Frame ``f`` has ``n_pred[f]`` predicted and ``n_gt[f]`` true people; its
    matched pairs are ``offsets[f]:offsets[f + 1]`` of ``pred``, ``gt`` (indices
    within the frame, ascending ``pred``) and ``values`` (OKS or distance). Its
    unmatched predictions are ``false_positives[fp_offsets[f]:fp_offsets[f + 1]]``,
    its missed people ``missed[missed_offsets[f]:missed_offsets[f + 1]]``, and
    the values of all its pairs ``matrices[matrix_offsets[f]:matrix_offsets[f + 1]]``
    (row-major ``[n_pred[f], n_gt[f]]``). ``frame(f)`` is frame ``f`` as a
    :class:`PersonMatch`.
    """

    pred: np.ndarray
    gt: np.ndarray
    values: np.ndarray
    offsets: np.ndarray
    false_positives: np.ndarray
    fp_offsets: np.ndarray
    missed: np.ndarray
    missed_offsets: np.ndarray
    matrices: np.ndarray
    matrix_offsets: np.ndarray
    n_pred: np.ndarray
    n_gt: np.ndarray
    measure: str
    threshold: float | None
    definition: str

    def __len__(self) -> int:
        return len(self.n_pred)

    @property
    def n_matched(self) -> np.ndarray:
        """Matched pairs per frame."""
        return np.diff(self.offsets)

    def frame(self, f: int) -> PersonMatch:
        f = range(len(self))[f]
        return self._frame(0, self._bounds(f, f + 1))

    def frames(self) -> list[PersonMatch]:
        """Every frame as a :class:`PersonMatch` (one Python object per frame)."""
        # One native call makes them (the objects of _frame, each array a copy
        # of the frame's part): per frame in Python, slicing and filling each
        # object cost more than the matching. None: fields made by hand that
        # are not match_frames_flat's arrays, for _frame.
        listed = _native.person_matches(self, PersonMatch)
        if listed is not None:
            return listed
        bounds = self._bounds(0, len(self))
        return [self._frame(f, bounds) for f in range(len(self))]

    def _bounds(self, lo: int, hi: int) -> tuple[list[int], ...]:
        """Frames ``lo:hi``'s offsets and counts as Python ints (slicing with
        numpy integers costs twice as much per frame)."""
        offsets = (self.offsets, self.fp_offsets, self.missed_offsets, self.matrix_offsets)
        counts = (self.n_pred, self.n_gt)
        return tuple(a[lo : hi + 1].tolist() for a in offsets) + tuple(
            a[lo:hi].tolist() for a in counts
        )

    def _frame(self, f: int, bounds: tuple[list[int], ...]) -> PersonMatch:
        off, fp, missed, mat, n_pred, n_gt = bounds
        lo, hi = off[f], off[f + 1]
        # Filled without the frozen dataclass's __init__ (one object.__setattr__
        # per field): 1.7 of the 3.7 µs each frame's object cost. The fields
        # are the same, and the object as frozen as any PersonMatch.
        match = object.__new__(PersonMatch)
        vars(match).update(
            pred=self.pred[lo:hi], gt=self.gt[lo:hi], values=self.values[lo:hi],
            false_positives=self.false_positives[fp[f] : fp[f + 1]],
            missed=self.missed[missed[f] : missed[f + 1]],
            matrix=self.matrices[mat[f] : mat[f + 1]].reshape(n_pred[f], n_gt[f]),
            measure=self.measure, threshold=self.threshold, definition=self.definition,
        )  # fmt: skip
        return match


def match_frames_flat(
    pred: Any,
    gt: Any,
    n_pred: Any,
    n_gt: Any,
    *,
    cost: str = "oks",
    threshold: float | None,
    gt_visible: Any = None,
    areas: Any = None,
    sigmas: Any = _skeleton.COCO17,
) -> FrameMatches:
    """:func:`match_frames` on flat arrays: the predicted people of every frame
    one after another, ``pred`` ``[sum(n_pred), K, D]``, and the true people
    ``gt`` ``[sum(n_gt), K, D]`` with ``gt_visible`` ``[sum(n_gt), K]`` and
    ``areas`` ``[sum(n_gt)]``; ``n_pred``, ``n_gt`` ``[F]`` count the people of
    each frame. The same matching as :func:`match_frames`, returned flat
    (:class:`FrameMatches`): one Rust call for the costs, one for the
    assignments, and array operations for the rest."""
    n_pred = _counts(n_pred, "n_pred")
    n_gt = _counts(n_gt, "n_gt")
    if len(n_pred) != len(n_gt):
        raise ValueError(f"n_pred has {len(n_pred)} frames but n_gt has {len(n_gt)}")
    p, g = _arrays.as_numpy(pred), _arrays.as_numpy(gt)
    kd = next((a.shape[1:] for a in (p, g) if a.ndim == 3), (1, 2))
    # float32, the pose type: the distance kernel widens each coordinate as it
    # reads it, and the OKS path widens the arrays (the same values either way).
    p = np.empty((0, *kd), np.float32) if p.size == 0 else _arrays.poses(p, "pred")
    g = np.empty((0, *kd), np.float32) if g.size == 0 else _arrays.poses(g, "gt")
    for name, a, n in (("pred", p, n_pred), ("gt", g, n_gt)):
        if a.shape[1:] != kd:
            raise ValueError(f"{name} has shape {a.shape}, expected [n, {kd[0]}, {kd[1]}]")
        if len(a) != n.sum():
            raise ValueError(f"{name} holds {len(a)} people but its counts sum to {n.sum()}")
    given = _arrays.mask(gt_visible, g.shape[:2], "gt_visible")
    vis = np.ones(g.shape[:2], bool) if given is None else given
    bad = np.flatnonzero(~vis.any(axis=1))
    if len(bad):
        f = int(np.searchsorted(np.cumsum(n_gt), bad[0], side="right"))
        raise ValueError(
            f"frame {f}: ground-truth person {bad[0] - (n_gt[:f].sum())} has no visible joint, so "
            "no prediction can be compared with it; drop it or mark its joints visible"
        )
    # (Not np.isfinite(g[vis]): a boolean gather over [G, K] of [G, K, D] took 30 ms per 2,000 frames.)
    if not np.isfinite(g).all() and not (np.isfinite(g).all(axis=2) | ~vis).all():
        bad = int(np.flatnonzero(~(np.isfinite(g).all(axis=2) | ~vis).all(axis=1))[0])
        f = int(np.searchsorted(np.cumsum(n_gt), bad, side="right"))
        raise ValueError(f"frame {f}: ground truth must be finite where visible")
    area = None if areas is None else _arrays.float64(areas, "areas", (len(g),))
    return _match(p, g, vis, n_pred, n_gt, cost, threshold, area, sigmas)


def _counts(x: Any, name: str) -> np.ndarray:
    a = _arrays.as_numpy(x)
    if a.ndim == 1 and a.size == 0:  # np.array([]) is float64
        return np.empty(0, np.int64)
    if a.ndim != 1 or a.dtype.kind not in "iu":
        raise TypeError(f"{name} must be a 1-D integer array of people per frame")
    if (a < 0).any():
        raise ValueError(f"{name} must not be negative")
    return a.astype(np.int64)


def _match(
    pred: np.ndarray,
    gt: np.ndarray,
    vis: np.ndarray,
    n_pred: np.ndarray,
    n_gt: np.ndarray,
    cost: str,
    threshold: float | None,
    area: np.ndarray | None,
    sigmas: Any,
) -> FrameMatches:
    """The matching of checked, concatenated frames (``area`` None: box areas)."""
    if cost not in MEASURES:
        raise ValueError(f"unknown cost {cost!r}; expected one of {', '.join(MEASURES)}")
    if threshold is not None and not np.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number or None, got {threshold!r}")
    k, d = pred.shape[1:]
    if not len(pred) + len(gt):
        values = costs = np.empty(0)
    elif cost == "oks":
        if d != 2:
            raise ValueError(f"OKS is defined for 2-D keypoints, got {d}-D; use cost='distance'")
        s = _skeleton.oks_sigmas(sigmas, k)
        pred, gt = pred.astype(np.float64), gt.astype(np.float64)
        values = _native.oks_matrices(
            pred, gt, np.ascontiguousarray(vis),
            np.ascontiguousarray(_visible_box_area(gt, vis) if area is None else area), s,
            _arrays.offsets(n_pred), _arrays.offsets(n_gt),
        )  # fmt: skip
        admissible = np.ones(values.shape, bool) if threshold is None else values >= threshold
        costs = np.where(admissible, 1.0 - values, np.inf)
    else:
        if area is not None:
            raise ValueError("areas apply to cost='oks' only")
        values = _pair_distances(pred, gt, vis, n_pred, n_gt)
        with np.errstate(invalid="ignore"):
            admissible = ~np.isnan(values)
            if threshold is not None:
                admissible &= values <= threshold
        costs = np.where(admissible, values, np.inf)
    shapes = np.stack([n_pred, n_gt], axis=1).astype(np.uint64)
    rows, cols, offsets = _native.assign_batch(np.ascontiguousarray(costs), shapes, True)
    frames = len(n_pred)
    # Each pair's frame, and where its frame's people and values start.
    frame = np.repeat(np.arange(frames), np.diff(offsets))
    p_start, g_start = np.cumsum(n_pred) - n_pred, np.cumsum(n_gt) - n_gt
    m_start = np.cumsum(n_pred * n_gt) - n_pred * n_gt
    fp, fp_offsets = _free(n_pred, p_start[frame] + rows, p_start)
    missed, missed_offsets = _free(n_gt, g_start[frame] + cols, g_start)
    return FrameMatches(
        pred=rows, gt=cols, values=values[m_start[frame] + rows * n_gt[frame] + cols],
        offsets=offsets.astype(np.int64), false_positives=fp, fp_offsets=fp_offsets,
        missed=missed, missed_offsets=missed_offsets, matrices=values,
        matrix_offsets=np.concatenate([[0], np.cumsum(n_pred * n_gt)]).astype(np.int64),
        n_pred=n_pred, n_gt=n_gt, measure=cost,
        threshold=None if threshold is None else float(threshold),
        definition=matching_definition(cost, threshold, sigmas, area is not None),
    )  # fmt: skip


def _free(
    counts: np.ndarray, taken: np.ndarray, start: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The people of each frame not in ``taken`` (global indices): their indices
    within the frame, ascending, and per-frame offsets."""
    free = np.ones(int(counts.sum()), bool)
    free[taken] = False
    idx = np.flatnonzero(free)
    owner = np.repeat(np.arange(len(counts)), counts)[idx]
    per = np.bincount(owner, minlength=len(counts))
    return idx - start[owner], np.concatenate([[0], np.cumsum(per)]).astype(np.int64)


def _visible_box_area(gt: np.ndarray, vis: np.ndarray) -> np.ndarray:
    """Width x height of the bounding box of each person's visible joints."""
    lo = np.where(vis[..., None], gt, np.inf).min(axis=1)
    hi = np.where(vis[..., None], gt, -np.inf).max(axis=1)
    return np.ascontiguousarray((hi - lo).prod(axis=1))


def _pair_distances(
    pred: np.ndarray, gt: np.ndarray, vis: np.ndarray, n_pred: np.ndarray, n_gt: np.ndarray
) -> np.ndarray:
    """Mean distance over visible joints of every (prediction, person) pair of each
    frame, the frames' ``[P, G]`` blocks concatenated (Rust, one call)."""
    c = np.ascontiguousarray
    return _native.pair_distances(
        c(pred, dtype=np.float32), c(gt, dtype=np.float32), c(vis, dtype=bool),
        _arrays.offsets(n_pred), _arrays.offsets(n_gt),
    )  # fmt: skip
