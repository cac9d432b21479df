"""accuracy_report: every metric with its definition, beside the mean-pose baseline."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from csipose import metrics


@pytest.fixture
def poses3d():
    rng = np.random.default_rng(0)
    gt = rng.normal(size=(300, 17, 3)).astype(np.float32)
    pred = (gt + rng.normal(0, 0.1, gt.shape)).astype(np.float32)
    return pred, gt


def test_report_has_every_metric_with_its_definition(poses3d):
    pred, gt = poses3d
    rep = metrics.accuracy_report(pred, gt, skeleton="h36m17", units="m", context={"split": "test"})
    expected = {f"pck@{t}" for t in (10, 20, 30, 40, 50)} | {
        "mpjpe", "n_mpjpe", "pa_mpjpe", "mpjpe_root_relative", "pred_std_ratio",
    }  # fmt: skip
    assert set(rep.model) == expected == set(rep.mean_pose_baseline)
    assert rep["pck@20"].value == metrics.pck(pred, gt, threshold=0.2, skeleton="h36m17").value
    assert rep["mpjpe"].value == pytest.approx(float(metrics.mpjpe(pred, gt)), rel=1e-12)
    assert rep["pa_mpjpe"].value == pytest.approx(float(metrics.pa_mpjpe(pred, gt)), rel=1e-12)
    assert len(rep["pck@20"].per_joint) == 17
    for m in rep.model.values():
        assert m.definition
    d = json.loads(rep.to_json())
    assert d["split"] == "test" and d["units"] == "m"
    assert set(d["model"]["pck@20"]) >= {"value", "definition", "per_joint"}
    assert "source" in d["mean_pose_baseline"]
    md = rep.to_markdown()
    assert "| pck@20 |" in md and "mean-pose baseline" in md


def test_a_constant_model_scores_exactly_as_the_baseline(poses3d):
    _, gt = poses3d
    mean_pose = gt.mean(axis=0)
    const = np.broadcast_to(mean_pose, gt.shape).astype(np.float32)
    rep = metrics.accuracy_report(const, gt, skeleton="h36m17", mean_pose=mean_pose)
    for key, m in rep.model.items():
        assert m.value == rep.mean_pose_baseline[key].value or (
            math.isnan(m.value) and math.isnan(rep.mean_pose_baseline[key].value)
        ), key
    assert rep.model["pred_std_ratio"].value == 0.0
    assert "training set" in rep.baseline_source


def test_good_model_beats_the_default_baseline(poses3d):
    pred, gt = poses3d
    rep = metrics.accuracy_report(pred, gt, skeleton="h36m17")
    assert rep["mpjpe"].value < rep.mean_pose_baseline["mpjpe"].value
    assert "optimistic" in rep.baseline_source


def test_2d_coco_report_has_oks_and_handles_unlabelled_samples():
    rng = np.random.default_rng(1)
    gt = rng.uniform(0, 100, (20, 17, 2)).astype(np.float32)
    pred = (gt + rng.normal(0, 2, gt.shape)).astype(np.float32)
    vis = np.ones((20, 17), bool)
    vis[0] = False
    rep = metrics.accuracy_report(pred, gt, skeleton="coco17", visible=vis)
    assert rep["oks"].excluded == 1 and rep["oks"].count == 19
    expect = metrics.oks(pred[1:], gt[1:], visible=vis[1:], area="keypoint_bbox").mean()
    assert rep["oks"].value == pytest.approx(expect, rel=1e-12)
    assert "mpjpe_root_relative" not in rep.model  # COCO has no root


def test_report_checks_its_inputs(poses3d):
    pred, gt = poses3d
    with pytest.raises(ValueError, match="mean_pose must have shape"):
        metrics.accuracy_report(pred, gt, skeleton="h36m17", mean_pose=np.zeros(3))
    with pytest.raises(ValueError, match="unknown skeleton"):
        metrics.accuracy_report(pred, gt, skeleton="smpl24")
