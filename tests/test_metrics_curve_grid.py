"""PCK curves at evenly spaced thresholds (the direct-index path of
rust/core/src/metrics/curve_grid.rs: float32 in pck_curve and in
pck_and_mpjpe, which sums its float64 distances from the same loads; float64
where per-sample distances are wanted) against the numpy oracle, with
thresholds placed exactly on the data's own float64 distances and torso ratios."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import csipose
from csipose import _native, metrics
from test_metrics_properties import check_pck, skeleton_for

import reference as ref
from strategies import batches


def both_paths(pred, gt, t, norm, visible, torso=None):
    """pck_curve and pck_and_mpjpe (float32 index), each checked, and the
    float64 index of a pass with per-sample distances, counted the same."""
    kw = {"skeleton": skeleton_for(gt.shape[1], torso)} if torso else {}
    want = ref.pck_counts(pred, gt, t, norm, torso=torso, visible=visible)
    check_pck(metrics.pck_curve(pred, gt, t, norm=norm, visible=visible, **kw), *want)
    curve, m = metrics.pck_and_mpjpe(pred, gt, t, norm=norm, visible=visible, **kw)
    check_pck(curve, *want)
    # Its MPJPE, summed beside the float32 index, keeps mpjpe()'s bits.
    single = metrics.mpjpe(pred, gt, visible=visible)
    assert (np.isnan(m) and np.isnan(single)) or m == single
    args = {"norm": norm, "thresholds": np.ascontiguousarray(t, np.float64)}
    if torso:
        args.update(torso=torso, floor=0.01)
    p, g = np.ascontiguousarray(pred, np.float32), np.ascontiguousarray(gt, np.float32)
    v = None if visible is None else np.ascontiguousarray(visible, bool)
    per_sample = _native.joint_errors(p, g, v, per_sample=True, **args)
    counts = _native.joint_errors(p, g, v, distances=False, **args)
    np.testing.assert_array_equal(per_sample["correct"], counts["correct"])


def grids_through(values: list[float], data) -> list[np.ndarray]:
    """Even grids (PCK thresholds are >= 0) whose ends are exactly data values."""
    a, b = data.draw(st.sampled_from(values)), data.draw(st.sampled_from(values))
    lo, hi = min(a, b), max(a, b)
    if hi - lo < 1e-9 * max(abs(hi), 1e-300) or hi - lo < 1e-300:
        hi = lo + 0.25
    m = data.draw(st.integers(8, 120))
    j = data.draw(st.integers(1, 30))
    step = (hi - lo) / j
    inner = np.concatenate([np.linspace(lo, hi, j + 1), hi + step * np.arange(1, m)])
    return [np.linspace(lo, hi, m), inner, np.linspace(0.0, hi, 2 * m - 1)]


@given(b=batches(nan_pred=False, min_n=1), data=st.data())
def test_even_grids_through_the_data_match_the_oracle(b, data):
    p, g = ref.f64(b.pred), ref.f64(b.gt)
    dist = ref.norm_last(p - g)
    for t in grids_through(dist.ravel().tolist(), data):
        both_paths(b.pred, b.gt, t, "absolute", b.visible)
    k = b.gt.shape[1]
    torso = (0, k - 1)
    ratios = (dist / np.maximum(ref.norm_last(g[:, 0] - g[:, k - 1]), 0.01)[:, None]).ravel()
    ratios = [r for r in ratios.tolist() if r <= 1] or [0.5]
    # Normalised thresholds are fractions (<= 1): the grids are cut there.
    for t in (t[t <= 1] for t in grids_through(ratios, data)):
        if len(t) < 8:
            continue
        both_paths(b.pred, b.gt, t, "torso", b.visible, torso)


@given(b=batches(min_n=1), t0=st.floats(0, 1), span=st.floats(1e-3, 10), m=st.integers(8, 200))
def test_even_grids_with_nan_predictions_and_masks(b, t0, span, m):
    t = np.linspace(t0, t0 + span, m)
    both_paths(b.pred, b.gt, t, "absolute", b.visible)
    t = t / t[-1]  # fractions for the normalised presets
    both_paths(b.pred, b.gt, t, "bbox", b.visible)
    k = b.gt.shape[1]
    both_paths(b.pred, b.gt, t, "torso", b.visible, (0, k - 1))


def test_distances_on_and_one_float32_ulp_beside_each_threshold():
    # Thresholds i / 128 are exact; distances sit on them and one float32 ulp
    # to either side, so nearly every joint is inside the float32 margin.
    t = np.linspace(0.0, 1.0, 129)
    x = np.float32(t)
    xs = np.concatenate([x, np.nextafter(x, np.float32(2)), np.nextafter(x, np.float32(-1))])
    n = len(xs)
    gt = np.zeros((n, 3, 2), np.float32)
    gt[:, 1, 0] = 1.0  # torso pair (0, 1) is exactly 1 apart
    pred = gt.copy()
    pred[:, 2, 0] += xs
    pred[:, 2, 1] = 0.0
    for norm, torso in (("absolute", None), ("torso", (0, 1))):
        both_paths(pred, gt, t, norm, None, torso)
    # Perfect predictions (zero distances) and a huge outlier.
    pred[:5, 2] = gt[:5, 2]
    pred[5, 2, 0] = 3e38
    both_paths(pred, gt, t, "absolute", None)


def test_curve_mpjpe_keeps_the_bits_of_mpjpe_across_blocks_and_chunks():
    # 20,000 samples of 17 joints span many float32 curve blocks and several
    # of its chunks, each eight of mpjpe's (summed apart); 2-D unmasked takes
    # the explicit AVX2 sums, the rest the portable ones; at 1 and 2 threads.
    rng = np.random.default_rng(8)
    t = np.linspace(0.0, 0.5, 101)
    try:
        for threads in (1, 2):
            csipose.set_num_threads(threads)
            for d in (2, 3):
                gt = rng.uniform(0, 3, (20_000, 17, d)).astype(np.float32)
                pred = (gt + rng.normal(0, 0.2, gt.shape)).astype(np.float32)
                vis = rng.random((20_000, 17)) > 0.2
                for v in (None, vis):
                    _, m = metrics.pck_and_mpjpe(pred, gt, t, skeleton="coco17", visible=v)
                    assert m == metrics.mpjpe(pred, gt, visible=v), (threads, d, v is None)
    finally:
        csipose.set_num_threads(0)


def test_uneven_thresholds_fall_back_to_the_search():
    rng = np.random.default_rng(5)
    gt = rng.uniform(0, 1, (500, 17, 2)).astype(np.float32)
    pred = (gt + rng.normal(0, 0.1, gt.shape)).astype(np.float32)
    t = np.sort(rng.uniform(0, 1, 40))
    both_paths(pred, gt, t, "torso", None, (6, 11))


def test_curve_without_distances_reports_no_mpjpe_but_the_same_counts():
    rng = np.random.default_rng(6)
    gt = rng.uniform(0, 1, (3000, 17, 2)).astype(np.float32)
    pred = (gt + rng.normal(0, 0.05, gt.shape)).astype(np.float32)
    kw = {"norm": "torso", "torso": (6, 11), "thresholds": np.linspace(0, 0.5, 101)}
    full = _native.joint_errors(pred, gt, None, **kw)
    counts = _native.joint_errors(pred, gt, None, distances=False, **kw)
    np.testing.assert_array_equal(full["correct"], counts["correct"])
    assert (counts["dist_sum"], counts["dist_count"]) == (0.0, 0)
    assert full["dist_count"] == 3000 * 17
    with pytest.raises(ValueError, match="distances=False"):
        _native.joint_errors(pred, gt, None, distances=False, root=0, **kw)


@given(
    b=batches(dims=(2,), min_n=8, max_n=40, mask=False),
    t0=st.floats(0, 1),
    span=st.floats(1e-3, 10),
    m=st.integers(8, 200),
)
def test_whole_groups_of_eight_2d_rows_match_the_oracle(b, t0, span, m):
    # Unmasked 2-D joints: pck_curve counts whole groups of eight rows in one
    # pass (rust/core/src/metrics/curve_avx2.rs where the CPU has AVX2) and
    # the rest of a block in the flat loops.
    t = np.linspace(t0, t0 + span, m)
    both_paths(b.pred, b.gt, t, "absolute", None)
    t = t / t[-1]
    both_paths(b.pred, b.gt, t, "bbox", None)
    both_paths(b.pred, b.gt, t, "torso", None, (0, b.gt.shape[1] - 1))


def test_large_2d_curves_match_the_oracle_at_any_thread_count():
    # Many blocks and chunks with a tail, zero distances, NaN and infinite
    # predictions, and an all-true mask (dropped, so the one-pass kernel runs).
    rng = np.random.default_rng(11)
    n = 4003
    gt = rng.uniform(0, 1, (n, 17, 2)).astype(np.float32)
    pred = (gt + rng.normal(0, 0.05, gt.shape)).astype(np.float32)
    pred[100:110] = gt[100:110]
    pred[17, 3] = np.nan
    pred[2000, 16, 1] = np.inf
    t = np.linspace(0.0, 0.5, 101)
    want = ref.pck_counts(pred, gt, t, "torso", torso=(5, 12), visible=None)
    before = csipose.get_num_threads()
    try:
        for threads in (1, 2):
            csipose.set_num_threads(threads)
            for v in (None, np.ones((n, 17), bool)):
                curve = metrics.pck_curve(pred, gt, t, visible=v, skeleton=skeleton_for(17, (5, 12)))
                check_pck(curve, *want)
    finally:
        csipose.set_num_threads(before)


def test_non_finite_ground_truth_deep_in_a_curve_is_named():
    rng = np.random.default_rng(12)
    gt = rng.uniform(0, 1, (3000, 17, 2)).astype(np.float32)
    t = np.linspace(0.0, 0.5, 101)
    for bad in (np.nan, np.inf):
        g = gt.copy()
        g[2345, 7, 1] = bad
        with pytest.raises(ValueError, match="sample 2345, joint 7"):
            metrics.pck_curve(gt, g, t, skeleton="coco17")
