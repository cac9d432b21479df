"""Property tests: every metric kernel against its numpy oracle in tests/reference.py."""

from __future__ import annotations

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from csipose import metrics
from csipose.skeleton import Skeleton

import reference as ref
from strategies import batches, coords

THRESHOLDS = st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=5)


def skeleton_for(k: int, torso: tuple[int, int]) -> Skeleton:
    return Skeleton(name=f"test{k}", joints=tuple(f"j{i}" for i in range(k)), bones=(), torso=torso)


def check_pck(curve, correct, scored, skipped, macro=False):
    correct = correct.astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_joint = np.where(scored > 0, correct / np.where(scored > 0, scored, 1), np.nan)
    np.testing.assert_array_equal(curve.per_joint, per_joint)
    assert curve.scored == scored.sum()
    assert curve.skipped_samples == skipped
    if macro:
        seen = scored > 0
        expect = per_joint[:, seen].mean(axis=1) if seen.any() else np.full(len(correct), np.nan)
    else:
        expect = (
            correct.sum(axis=1) / scored.sum() if scored.sum() else np.full(len(correct), np.nan)
        )
    np.testing.assert_array_equal(curve.values, expect)


@given(b=batches(), t=THRESHOLDS, data=st.data())
def test_torso_pck_matches_oracle(b, t, data):
    k = b.gt.shape[1]
    torso = (data.draw(st.integers(0, k - 1)), data.draw(st.integers(0, k - 1)))
    curve = metrics.pck_curve(
        b.pred, b.gt, t, norm="torso", skeleton=skeleton_for(k, torso), visible=b.visible
    )
    check_pck(curve, *ref.pck_counts(b.pred, b.gt, t, "torso", torso=torso, visible=b.visible))


@given(b=batches(), t=THRESHOLDS)
def test_bbox_pck_matches_oracle(b, t):
    curve = metrics.pck_curve(b.pred, b.gt, t, norm="bbox", visible=b.visible)
    check_pck(curve, *ref.pck_counts(b.pred, b.gt, t, "bbox", visible=b.visible))


@given(b=batches(), t=st.lists(st.floats(0, 1e4, allow_nan=False), min_size=1, max_size=5))
def test_absolute_pck_matches_oracle(b, t):
    curve = metrics.pck_curve(b.pred, b.gt, t, norm="absolute", visible=b.visible)
    check_pck(curve, *ref.pck_counts(b.pred, b.gt, t, "absolute", visible=b.visible))


@given(b=batches(), t=THRESHOLDS, data=st.data())
def test_mmpose_pck_matches_oracle(b, t, data):
    n, _, d = b.gt.shape
    factors = None
    if data.draw(st.booleans()):
        factors = data.draw(
            hnp.arrays(np.float64, (n, d), elements=st.sampled_from([0.0, -1.0, 0.5, 2.0, 30.0]))
        )
    curve = metrics.pck_curve(
        b.pred, b.gt, t, norm="mmpose", visible=b.visible, norm_factor=factors
    )
    counts = ref.pck_counts(b.pred, b.gt, t, "mmpose", visible=b.visible, factors=factors)
    check_pck(curve, *counts, macro=True)


@given(b=batches(nan_pred=False, min_n=1), thr=st.floats(0.01, 1), data=st.data())
def test_mmpose_preset_is_mmposes_keypoint_pck_accuracy(b, thr, data):
    n, _, d = b.gt.shape
    factors = data.draw(
        hnp.arrays(np.float64, (n, d), elements=st.sampled_from([0.0, -3.0, 1.5, 40.0]))
    )
    mask = np.ones(b.gt.shape[:2], bool) if b.visible is None else b.visible
    acc, avg, _ = ref.mmpose_keypoint_pck_accuracy(b.pred, b.gt, mask, thr, factors)
    r = metrics.pck(b.pred, b.gt, threshold=thr, norm="mmpose", visible=mask, norm_factor=factors)
    np.testing.assert_array_equal(r.per_joint, np.where(acc < 0, np.nan, acc))
    np.testing.assert_array_equal(r.value, avg)


@given(n=st.integers(1, 40), data=st.data())
def test_torso_on_body25_15_is_the_wiflow_harness(n, data):
    gt = data.draw(hnp.arrays(np.float32, (n, 15, 2), elements=coords(0, 2)))
    offset = data.draw(hnp.arrays(np.float32, (n, 15, 2), elements=coords(-0.25, 0.25)))
    pred = (gt + offset).astype(np.float32)
    for t, value in ref.wiflow_calculate_pck(pred, gt).items():
        assert metrics.pck(pred, gt, threshold=t, skeleton="body25_15").value == value
    assert metrics.mpjpe(pred, gt) == pytest.approx(ref.wiflow_calculate_mpjpe(pred, gt), rel=1e-12)


@given(b=batches(), root=st.booleans(), data=st.data())
def test_mpjpe_matches_oracle(b, root, data):
    r = data.draw(st.integers(0, b.gt.shape[1] - 1)) if root else None
    flat, per = ref.mpjpe(b.pred, b.gt, b.visible, r)
    got = metrics.mpjpe(b.pred, b.gt, visible=b.visible, root=r)
    np.testing.assert_allclose(float(got), flat, rtol=1e-12, equal_nan=True)
    got_per = metrics.mpjpe(b.pred, b.gt, visible=b.visible, root=r, reduce=False)
    np.testing.assert_allclose(got_per, per, rtol=1e-12, equal_nan=True)


@given(b=batches(nan_pred=False))
def test_n_mpjpe_matches_oracle(b):
    flat, per, degenerate = ref.n_mpjpe(b.pred, b.gt, b.visible)
    got = metrics.n_mpjpe(b.pred, b.gt, visible=b.visible)
    scale = float(np.abs(b.gt).max(initial=1.0))
    np.testing.assert_allclose(float(got), flat, rtol=1e-9, atol=1e-12 * scale, equal_nan=True)
    assert got.excluded == degenerate
    got_per = metrics.n_mpjpe(b.pred, b.gt, visible=b.visible, reduce=False)
    np.testing.assert_allclose(got_per, per, rtol=1e-9, atol=1e-12 * scale, equal_nan=True)


def alignment_is_unique(x: np.ndarray, y: np.ndarray) -> bool:
    """True when the optimal rotation of y onto x is well separated from the others."""
    x0, y0 = x - x.mean(0), y - y.mean(0)
    m = (x0 / np.linalg.norm(x0)).T @ (y0 / np.linalg.norm(y0))
    u, s, vt = np.linalg.svd(m)
    sign = np.sign(np.linalg.det(vt.T @ u.T))
    return s[-2] + sign * s[-1] > 1e-5 if len(s) == 3 else s[0] + sign * s[1] > 1e-5


@given(b=batches(nan_pred=False))
def test_pa_mpjpe_matches_oracle(b):
    flat, per, degenerate = ref.pa_mpjpe(b.pred, b.gt, b.visible)
    got = metrics.pa_mpjpe(b.pred, b.gt, visible=b.visible)
    got_per = metrics.pa_mpjpe(b.pred, b.gt, visible=b.visible, reduce=False)
    assert got.excluded == degenerate
    np.testing.assert_array_equal(np.isnan(got_per), np.isnan(per))
    vis = np.ones(b.gt.shape[:2], bool) if b.visible is None else b.visible
    p, g = ref.f64(b.pred), ref.f64(b.gt)
    all_unique, tol = True, 0.0
    for i in np.flatnonzero(~np.isnan(per)):
        x, y = g[i][vis[i]], p[i][vis[i]]
        scale = np.abs(x - x.mean(0)).max() + 1e-300
        tol = max(tol, 1e-9 * scale)
        if alignment_is_unique(x, y):
            assert got_per[i] == pytest.approx(per[i], rel=1e-7, abs=1e-9 * scale)
        else:
            all_unique = False
            # Several rotations are optimal: each leaves the same squared error,
            # which bounds the mean distance (Jensen).
            aligned = ref.similarity_transform(x, y)
            sse = ((aligned - x) ** 2).sum()
            assert got_per[i] <= np.sqrt(sse / len(x)) * (1 + 1e-7) + 1e-9 * scale
    if np.isnan(flat):
        assert np.isnan(got)
        return
    # The reduced value: the oracle's flat mean over every aligned joint when each
    # frame's alignment is unique, and in any case the joint-weighted mean of the
    # per-frame values (so the reduction itself is checked).
    ok = ~np.isnan(got_per)
    joints = vis.sum(axis=1)[ok]
    assert float(got) == pytest.approx(
        float((got_per[ok] * joints).sum() / joints.sum()), rel=1e-9, abs=tol
    )
    if all_unique:
        assert float(got) == pytest.approx(flat, rel=1e-7, abs=tol)


@given(b=batches(dims=(2,), nan_pred=False, min_n=1), data=st.data())
def test_oks_matches_coco_compute_oks(b, data):
    n, k, _ = b.gt.shape
    flags = data.draw(hnp.arrays(np.int64, (n, k), elements=st.sampled_from([0, 1, 2])))
    sigmas = data.draw(hnp.arrays(np.float64, (k,), elements=st.floats(0.01, 0.2)))
    bbox = data.draw(hnp.arrays(np.float64, (n, 4), elements=st.floats(0, 100)))
    if data.draw(st.booleans()):
        area = data.draw(hnp.arrays(np.float64, (n,), elements=st.floats(0, 1e4)))
        got = metrics.oks(b.pred, b.gt, visible=flags, area=area, sigmas=sigmas, bbox=bbox)
    else:
        area = ref.keypoint_bbox_area(b.gt, flags > 0)
        got = metrics.oks(
            b.pred, b.gt, visible=flags, area="keypoint_bbox", sigmas=sigmas, bbox=bbox
        )
    expect = ref.coco_oks(b.pred, b.gt, flags, area, sigmas, bbox)
    np.testing.assert_allclose(got, expect, rtol=1e-12, atol=1e-300)


def test_large_batches_take_the_parallel_path_and_agree():
    rng = np.random.default_rng(0)
    gt = rng.uniform(0, 2, (20_000, 17, 3)).astype(np.float32)
    pred = (gt + rng.normal(0, 0.1, gt.shape)).astype(np.float32)
    vis = rng.random((20_000, 17)) > 0.1
    flat, per = ref.mpjpe(pred, gt, vis)
    assert metrics.mpjpe(pred, gt, visible=vis) == pytest.approx(flat, rel=1e-12)
    np.testing.assert_allclose(metrics.mpjpe(pred, gt, visible=vis, reduce=False), per, rtol=1e-12)
    sk = skeleton_for(17, (6, 11))
    curve = metrics.pck_curve(pred, gt, [0.1, 0.2], skeleton=sk, visible=vis)
    check_pck(curve, *ref.pck_counts(pred, gt, [0.1, 0.2], "torso", torso=(6, 11), visible=vis))
    pa, _, _ = ref.pa_mpjpe(pred[:2000], gt[:2000], vis[:2000])
    assert metrics.pa_mpjpe(pred[:2000], gt[:2000], visible=vis[:2000]) == pytest.approx(
        pa, rel=1e-9
    )


def test_results_do_not_depend_on_thread_count():
    import csipose

    rng = np.random.default_rng(1)
    gt = rng.uniform(0, 2, (50_000, 17, 3)).astype(np.float32)
    pred = (gt + rng.normal(0, 0.1, gt.shape)).astype(np.float32)
    results = []
    try:
        for threads in (1, 2, 3):
            csipose.set_num_threads(threads)
            results.append(
                (
                    float(metrics.mpjpe(pred, gt)),
                    float(metrics.pa_mpjpe(pred, gt)),
                    float(metrics.n_mpjpe(pred, gt)),
                    metrics.pck(pred, gt, threshold=0.5, norm="bbox").value,
                )
            )
    finally:
        csipose.set_num_threads(0)
    assert results[0] == results[1] == results[2]


@given(b=batches(nan_pred=False, min_n=1), data=st.data())
def test_thresholds_exactly_on_the_boundary(b, data):
    """Thresholds equal to the data's own float64 distances (and torso ratios)
    put entries exactly on the boundary, where only the exact test decides."""
    p, g = ref.f64(b.pred), ref.f64(b.gt)
    dist = ref.norm_last(p - g)
    picks = data.draw(st.lists(st.sampled_from(dist.ravel().tolist()), min_size=1, max_size=4))
    curve = metrics.pck_curve(b.pred, b.gt, picks, norm="absolute", visible=b.visible)
    check_pck(curve, *ref.pck_counts(b.pred, b.gt, picks, "absolute", visible=b.visible))
    k = b.gt.shape[1]
    torso = (0, k - 1)
    ratios = (dist / np.maximum(ref.norm_last(g[:, 0] - g[:, k - 1]), 0.01)[:, None]).ravel()
    ratios = [r for r in ratios.tolist() if r <= 1]
    if ratios:
        picks = data.draw(st.lists(st.sampled_from(ratios), min_size=1, max_size=4))
        sk = skeleton_for(k, torso)
        curve = metrics.pck_curve(b.pred, b.gt, picks, skeleton=sk, visible=b.visible)
        check_pck(
            curve, *ref.pck_counts(b.pred, b.gt, picks, "torso", torso=torso, visible=b.visible)
        )


@given(b=batches(min_n=1), t=THRESHOLDS)
def test_pck_and_mpjpe_is_pck_curve_plus_mpjpe(b, t):
    curve, m = metrics.pck_and_mpjpe(b.pred, b.gt, t, norm="bbox", visible=b.visible, units="m")
    alone = metrics.pck_curve(b.pred, b.gt, t, norm="bbox", visible=b.visible)
    np.testing.assert_array_equal(curve.values, alone.values)
    np.testing.assert_array_equal(curve.per_joint, alone.per_joint)
    single = metrics.mpjpe(b.pred, b.gt, visible=b.visible, units="m")
    assert (np.isnan(m) and np.isnan(single)) or m == single
    assert m.definition == single.definition
