"""PCK + MPJPE for the joint counts the kernels specialise at compile time
(COCO-17 / H36M-17: 17, BODY25-15: 15) against the float64 oracle, with
thresholds placed exactly on the data's own distances and torso ratios, so
the float64 boundary test alone decides them."""

from __future__ import annotations

import hypothesis.extra.numpy as hnp
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from csipose import metrics
from test_metrics_properties import check_pck, skeleton_for

import reference as ref
from strategies import coords


@st.composite
def fixed_k_batches(draw):
    k = draw(st.sampled_from([15, 17]))
    n = draw(st.integers(1, 40))
    d = draw(st.sampled_from([2, 3]))
    gt = draw(hnp.arrays(np.float32, (n, k, d), elements=coords()))
    noise = draw(hnp.arrays(np.float32, (n, k, d), elements=coords(-1, 1)))
    pred = (gt + draw(st.sampled_from([0.0, 0.1, 3.0])) * noise).astype(np.float32)
    visible = draw(hnp.arrays(np.bool_, (n, k))) if draw(st.booleans()) else None
    return pred, gt, visible


@given(b=fixed_k_batches(), data=st.data())
def test_fixed_joint_counts_decide_boundaries_as_float64(b, data):
    pred, gt, vis = b
    k = gt.shape[1]
    p, g = ref.f64(pred), ref.f64(gt)
    dist = ref.norm_last(p - g)
    torso = (data.draw(st.integers(0, k - 1)), data.draw(st.integers(0, k - 1)))
    scale = np.maximum(ref.norm_last(g[:, torso[0]] - g[:, torso[1]]), 0.01)
    # Fractions of the normaliser above 1 are refused as a likely unit mistake.
    ratios = [r for r in (dist / scale[:, None]).ravel().tolist() if r <= 1] or [0.5]
    # Fewer than 8 thresholds: the per-threshold bracket path, not the curve search.
    t = data.draw(st.lists(st.sampled_from(ratios), min_size=1, max_size=7))
    curve, mp = metrics.pck_and_mpjpe(pred, gt, t, skeleton=skeleton_for(k, torso), visible=vis)
    check_pck(curve, *ref.pck_counts(pred, gt, t, "torso", torso=torso, visible=vis))
    flat, _ = ref.mpjpe(pred, gt, vis, None)
    np.testing.assert_allclose(float(mp), flat, rtol=1e-12, equal_nan=True)
    t = data.draw(st.lists(st.sampled_from(dist.ravel().tolist()), min_size=1, max_size=7))
    curve = metrics.pck_curve(pred, gt, t, norm="absolute", visible=vis)
    check_pck(curve, *ref.pck_counts(pred, gt, t, "absolute", visible=vis))
