"""csipose.metrics.multi_person_metrics: PCK / MPJPE over matched people, counts."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from csipose import matching, metrics
from csipose.skeleton import COCO17, H36M17

from reference import mpjpe, pck_counts


@st.composite
def frames(draw, dims: int = 2):
    """Frames of 0-4 true people; predictions near most of them, some strays,
    some people missed; coordinates in float32."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    preds, gts, vis = [], [], []
    for _ in range(draw(st.integers(0, 6))):
        g = int(rng.integers(0, 5))
        gt = rng.uniform(0, 100, (g, 17, dims)).astype(np.float32)
        keep = rng.random(g) < 0.8
        found = gt[keep] + rng.normal(0, rng.choice([0.5, 3.0]), (keep.sum(), 17, dims))
        strays = rng.uniform(0, 100, (int(rng.integers(0, 2)), 17, dims))
        pred = np.concatenate([found, strays]).astype(np.float32)[
            rng.permutation(len(found) + len(strays))
        ]
        v = rng.random((g, 17)) < 0.85
        v[:, COCO17.torso[0]] = True  # the torso pair is visible (else PCK skips the sample)
        v[:, COCO17.torso[1]] = True
        preds.append(pred)
        gts.append(gt)
        vis.append(v)
    return preds, gts, vis


@given(data=frames(), cost=st.sampled_from(["oks", "distance"]))
def test_metrics_follow_the_matching(data, cost):
    preds, gts, vis = data
    threshold = 0.3 if cost == "oks" else 10.0
    r = metrics.multi_person_metrics(preds, gts, cost=cost, threshold=threshold, gt_visible=vis)
    expect = matching.match_frames(preds, gts, cost=cost, threshold=threshold, gt_visible=vis)
    assert len(r.matches) == len(expect)
    for got, want in zip(r.matches, expect, strict=True):
        assert np.array_equal(got.pred, want.pred) and np.array_equal(got.gt, want.gt)
    # PCK and MPJPE over the matched pairs, by the numpy oracles.
    pairs = [
        (p[m.pred], g[m.gt], v[m.gt]) for p, g, v, m in zip(preds, gts, vis, r.matches, strict=True)
    ]
    p = np.concatenate([x[0] for x in pairs]) if pairs else np.empty((0, 17, 2))
    g = np.concatenate([x[1] for x in pairs]) if pairs else np.empty((0, 17, 2))
    v = np.concatenate([x[2] for x in pairs]) if pairs else np.empty((0, 17), bool)
    correct, scored, _ = pck_counts(p, g, [0.2], "torso", torso=COCO17.torso, visible=v)
    if scored.sum():
        assert r.pck.value == pytest.approx(correct.sum() / scored.sum(), abs=0)
    else:
        assert np.isnan(r.pck.value)
    want_mpjpe, _ = mpjpe(p, g, v)
    np.testing.assert_allclose(float(r.mpjpe), want_mpjpe, rtol=1e-12)
    # Counts.
    n_pred = np.array([len(x) for x in preds])
    n_gt = np.array([len(x) for x in gts])
    n_matched = np.array([m.n_matched for m in r.matches])
    assert (r.n_pred, r.n_gt, r.n_matched) == (n_pred.sum(), n_gt.sum(), n_matched.sum())
    assert r.n_missed + r.n_matched == r.n_gt and r.n_spurious + r.n_matched == r.n_pred
    if len(preds):
        assert float(r.count_accuracy) == np.mean(n_pred == n_gt)
        assert float(r.count_within_one) == np.mean(np.abs(n_pred - n_gt) <= 1)
        assert float(r.count_mae) == np.mean(np.abs(n_pred - n_gt))
        assert float(r.fully_matched) == np.mean((n_matched == n_pred) & (n_matched == n_gt))
    json.dumps(r.to_dict())  # NaN-free, serialisable


def test_a_scene_by_hand():
    rng = np.random.default_rng(0)
    a, b, c = (rng.uniform(0, 100, (17, 2)).astype(np.float32) for _ in range(3))
    preds = [np.stack([b, a]), np.stack([c, a + 200])]  # frame 1: c found, a missed, a stray
    gts = [np.stack([a, b]), np.stack([a, c])]
    r = metrics.multi_person_metrics(preds, gts, threshold=0.5, units="px")
    assert (r.n_matched, r.n_missed, r.n_spurious) == (3, 1, 1)
    assert r.pck.value == 1.0 and float(r.mpjpe) == 0.0
    assert float(r.person_precision) == 0.75 and float(r.person_recall) == 0.75
    assert float(r.count_accuracy) == 1.0 and float(r.fully_matched) == 0.5
    assert "matched (prediction, true person) pairs only" in r.pck.definition
    assert "OKS >= 0.5" in r.mpjpe.definition and "in px" in r.mpjpe.definition
    d = r.to_dict()
    assert d["pck@20"]["value"] == 1.0 and d["n_missed"] == 1


def test_no_predictions_and_no_people():
    gts = [np.zeros((2, 17, 3), np.float32) + np.arange(17)[:, None]]
    r = metrics.multi_person_metrics(
        [np.empty((0, 17, 3))], gts, cost="distance", threshold=1.0, skeleton=H36M17
    )
    assert np.isnan(r.pck.value) and np.isnan(float(r.mpjpe))
    assert float(r.person_recall) == 0.0 and np.isnan(float(r.person_precision))
    assert float(r.count_mae) == 2.0
    empty = metrics.multi_person_metrics([], [], threshold=0.5)
    assert empty.n_frames == 0 and np.isnan(float(empty.count_accuracy))
    with pytest.raises(ValueError, match="2-D"):
        metrics.multi_person_metrics(gts, gts, threshold=0.5, skeleton=H36M17)
    flat = [g[..., :2] for g in gts]
    with pytest.raises(ValueError, match="defines no OKS sigmas"):
        metrics.multi_person_metrics(flat, flat, threshold=0.5, skeleton=H36M17)
