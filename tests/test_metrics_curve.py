"""PCK curves at many thresholds (the kernel's binary-search path, from 8
thresholds on) against the numpy oracle, boundary cases included."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from csipose import metrics
from test_metrics_properties import check_pck, skeleton_for

import reference as ref
from strategies import batches

MANY = st.lists(st.floats(0, 1, allow_nan=False), min_size=8, max_size=40)


@given(b=batches(), t=MANY, data=st.data())
def test_torso_curve_matches_oracle(b, t, data):
    k = b.gt.shape[1]
    torso = (data.draw(st.integers(0, k - 1)), data.draw(st.integers(0, k - 1)))
    curve = metrics.pck_curve(
        b.pred, b.gt, t, norm="torso", skeleton=skeleton_for(k, torso), visible=b.visible
    )
    check_pck(curve, *ref.pck_counts(b.pred, b.gt, t, "torso", torso=torso, visible=b.visible))


@given(b=batches(), t=MANY)
def test_bbox_curve_matches_oracle(b, t):
    curve = metrics.pck_curve(b.pred, b.gt, t, norm="bbox", visible=b.visible)
    check_pck(curve, *ref.pck_counts(b.pred, b.gt, t, "bbox", visible=b.visible))


@given(b=batches(nan_pred=False, min_n=1), data=st.data())
def test_curve_thresholds_exactly_on_the_boundary(b, data):
    """Thresholds equal to the data's own float64 distances and torso ratios,
    padded to many thresholds: only the exact test decides them."""
    p, g = ref.f64(b.pred), ref.f64(b.gt)
    dist = ref.norm_last(p - g)
    pad = np.linspace(0, 1, 10).tolist()
    picks = data.draw(st.lists(st.sampled_from(dist.ravel().tolist()), min_size=1, max_size=8))
    curve = metrics.pck_curve(b.pred, b.gt, picks + pad, norm="absolute", visible=b.visible)
    check_pck(curve, *ref.pck_counts(b.pred, b.gt, picks + pad, "absolute", visible=b.visible))
    k = b.gt.shape[1]
    torso = (0, k - 1)
    ratios = (dist / np.maximum(ref.norm_last(g[:, 0] - g[:, k - 1]), 0.01)[:, None]).ravel()
    ratios = [r for r in ratios.tolist() if r <= 1] or [0.5]
    picks = data.draw(st.lists(st.sampled_from(ratios), min_size=1, max_size=8))
    t = picks + pad
    curve = metrics.pck_curve(b.pred, b.gt, t, skeleton=skeleton_for(k, torso), visible=b.visible)
    check_pck(curve, *ref.pck_counts(b.pred, b.gt, t, "torso", torso=torso, visible=b.visible))


def test_many_and_few_thresholds_agree():
    rng = np.random.default_rng(3)
    gt = rng.uniform(0, 1, (2000, 17, 2)).astype(np.float32)
    pred = (gt + rng.normal(0, 0.1, gt.shape)).astype(np.float32)
    t = np.linspace(0, 1, 21)
    many = metrics.pck_curve(pred, gt, t, skeleton="coco17")
    for i in (0, 7, 20):
        one = metrics.pck_curve(pred, gt, t[i : i + 1], skeleton="coco17")
        np.testing.assert_array_equal(many.per_joint[i], one.per_joint[0])
