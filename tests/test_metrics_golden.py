"""Golden cases with known answers, and the edge rules of the metric suite."""

from __future__ import annotations

import math

import numpy as np
import pytest

from csipose import metrics, skeleton


def rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return q


def test_similarity_transformed_prediction_has_zero_pa_mpjpe():
    rng = np.random.default_rng(0)
    gt = rng.normal(size=(200, 17, 3)).astype(np.float32)
    pred = np.stack(
        [rng.uniform(0.2, 5) * g @ rotation(rng).T + rng.normal(size=3) * 10 for g in gt]
    ).astype(np.float32)
    assert metrics.mpjpe(pred, gt) > 1.0
    pa = metrics.pa_mpjpe(pred, gt)
    assert pa < 1e-5 and pa.excluded == 0
    # A reflection is not a rotation: a mirrored prediction keeps an error.
    assert metrics.pa_mpjpe(gt * np.float32([1, 1, -1]), gt) > 0.1


def test_scaled_prediction_has_zero_n_mpjpe():
    rng = np.random.default_rng(1)
    gt = rng.normal(size=(50, 17, 3)).astype(np.float32)
    assert metrics.n_mpjpe((gt * 2.5).astype(np.float32), gt) < 1e-6


def wiflow_frame(offset: float, torso: float) -> tuple[np.ndarray, np.ndarray]:
    gt = np.zeros((1, 15, 2), np.float32)
    gt[0, :, 0] = np.arange(15)
    gt[0, 2] = [0, 0]
    gt[0, 12] = [torso, 0]
    pred = gt.copy()
    pred[0, 0, 1] += offset
    return pred, gt


def test_torso_pck_boundary_is_inclusive_and_mmpose_is_strict():
    # Joint 0 is off by exactly 0.25 x the torso (2.0): PCK@25 counts it.
    pred, gt = wiflow_frame(offset=0.5, torso=2.0)
    r = metrics.pck(pred, gt, threshold=0.25, skeleton="body25_15")
    assert r.per_joint[0] == 1.0 and r.value == 1.0
    assert metrics.pck(pred, gt, threshold=0.2499, skeleton="body25_15").per_joint[0] == 0.0
    # mmpose compares with < against |(p - g) / f|; f = 2 makes 0.5 -> 0.25.
    m = metrics.pck(pred, gt, threshold=0.25, norm="mmpose", norm_factor=[2.0])
    assert m.per_joint[0] == 0.0
    assert metrics.pck(pred, gt, threshold=0.5, norm="absolute").per_joint[0] == 1.0


def test_torso_is_clamped_at_one_hundredth():
    # Coincident torso joints: scale max(0, 0.01) = 0.01, so 0.001 off is 0.1 of it.
    pred, gt = wiflow_frame(offset=0.0009, torso=0.0)
    assert metrics.pck(pred, gt, threshold=0.1, skeleton="body25_15").per_joint[0] == 1.0
    assert metrics.pck(pred, gt, threshold=0.05, skeleton="body25_15").per_joint[0] == 0.0


def test_zero_visible_joints_score_nothing_and_change_nothing():
    rng = np.random.default_rng(2)
    gt = rng.uniform(0, 1, (4, 17, 3)).astype(np.float32)
    pred = (gt + 0.05).astype(np.float32)
    vis = np.ones((4, 17), bool)
    vis[1] = False
    full = metrics.mpjpe(pred[[0, 2, 3]], gt[[0, 2, 3]])
    masked = metrics.mpjpe(pred, gt, visible=vis)
    assert masked == pytest.approx(full, rel=1e-12) and masked.count == 3 * 17
    assert np.isnan(metrics.mpjpe(pred, gt, visible=vis, reduce=False)[1])
    nothing = np.zeros((4, 17), bool)
    for norm in metrics.NORMS:
        r = metrics.pck(pred, gt, threshold=0.2, norm=norm, skeleton="h36m17", visible=nothing)
        assert math.isnan(r.value) and r.scored == 0 and np.isnan(r.per_joint).all()
    assert math.isnan(metrics.mpjpe(pred, gt, visible=nothing))
    assert math.isnan(metrics.pa_mpjpe(pred, gt, visible=nothing))


def test_nan_predictions_count_as_wrong_and_never_crash():
    rng = np.random.default_rng(3)
    gt = rng.uniform(0, 1, (10, 17, 2)).astype(np.float32)
    pred = gt.copy()
    pred[:, 5] = np.nan
    pred[3, :, 1] = np.inf
    for norm in metrics.NORMS:
        r = metrics.pck(pred, gt, threshold=0.2, norm=norm, skeleton="coco17")
        assert r.per_joint[5] == 0.0
        assert r.value == pytest.approx((10 * 17 - 10 - 16) / (10 * 17))
    assert math.isnan(metrics.mpjpe(pred, gt))
    assert math.isnan(metrics.pa_mpjpe(pred, gt))
    o = metrics.oks(pred, gt, visible=np.ones((10, 17)), area=1.0)
    assert np.all(np.isfinite(o)) and o[0] == pytest.approx(16 / 17)


def test_non_finite_ground_truth_is_an_error_unless_invisible():
    gt = np.zeros((2, 17, 2), np.float32)
    gt[1, 4] = np.nan
    with pytest.raises(ValueError, match="sample 1, joint 4"):
        metrics.mpjpe(gt, gt)
    vis = np.ones((2, 17), bool)
    vis[1, 4] = False
    assert metrics.mpjpe(np.nan_to_num(gt), gt, visible=vis) == 0.0
    with pytest.raises(ValueError, match="sample 1, joint 4"):
        metrics.oks(gt, gt, visible=np.ones((2, 17)), area=1.0)


def test_degenerate_frames_are_excluded_and_counted():
    rng = np.random.default_rng(4)
    gt = rng.normal(size=(5, 17, 3)).astype(np.float32)
    pred = (gt + 0.1).astype(np.float32)
    pred[1] = 3.0  # collapsed prediction
    gt[3] = -1.0  # collapsed ground truth
    pa = metrics.pa_mpjpe(pred, gt)
    assert pa.excluded == 2 and pa.count == 3 * 17 and math.isfinite(pa)
    per = metrics.pa_mpjpe(pred, gt, reduce=False)
    assert np.isnan(per[[1, 3]]).all() and np.isfinite(per[[0, 2, 4]]).all()
    assert metrics.n_mpjpe(np.zeros_like(gt), gt).excluded == 5


def test_root_relative_mpjpe_ignores_translation():
    rng = np.random.default_rng(5)
    gt = rng.normal(size=(8, 17, 3)).astype(np.float32)
    pred = (gt + np.float32([3, -2, 1])).astype(np.float32)
    assert metrics.mpjpe(pred, gt, root=0) < 1e-6
    assert metrics.mpjpe(pred, gt) == pytest.approx(np.sqrt(14), rel=1e-6)


def test_threshold_that_looks_like_a_percentage_is_refused():
    gt = np.zeros((1, 17, 2), np.float32)
    with pytest.raises(ValueError, match=r"PCK@20 is threshold=0\.2"):
        metrics.pck(gt, gt, threshold=20, skeleton="coco17")
    assert metrics.pck(gt, gt, threshold=20, norm="absolute").value == 1.0


def test_torso_needs_a_matching_skeleton():
    gt = np.zeros((1, 15, 2), np.float32)
    with pytest.raises(ValueError, match="needs skeleton"):
        metrics.pck(gt, gt, threshold=0.2)
    with pytest.raises(ValueError, match="17 joints but the poses have 15"):
        metrics.pck(gt, gt, threshold=0.2, skeleton="coco17")


def test_oks_needs_sigmas_for_skeletons_without_them():
    gt = np.zeros((1, 17, 2), np.float32)
    with pytest.raises(ValueError, match="h36m17 defines no OKS sigmas"):
        metrics.oks(gt, gt, visible=np.ones((1, 17)), area=1.0, sigmas="h36m17")
    assert (
        metrics.oks(gt, gt, visible=np.ones((1, 17)), area=1.0, sigmas=np.full(17, 0.05))[0] == 1.0
    )
    with pytest.raises(ValueError, match="2-D"):
        g3 = np.zeros((1, 17, 3), np.float32)
        metrics.oks(g3, g3, visible=np.ones((1, 17)), area=1.0)


def test_definitions_name_the_rule():
    gt = np.zeros((2, 15, 2), np.float32)
    r = metrics.pck(gt, gt, threshold=0.2, skeleton=skeleton.BODY25_15)
    assert r.definition.startswith("torso-PCK@0.2:")
    assert "max(|gt[2] - gt[12]|, 0.01) <= 0.2" in r.definition
    assert "right_shoulder" in r.definition and "left_hip" in r.definition
    assert "< 0.2 (strict)" in metrics.pck(gt, gt, threshold=0.2, norm="mmpose").definition
    m = metrics.mpjpe(gt, gt, units="m")
    assert isinstance(m, float) and m == 0.0 and m.definition.endswith("in m")
    assert metrics.pck_key(0.2) == "pck@20" and metrics.pck_key(0.05) == "pck@5"
    assert metrics.pck_key(0.125) == "pck@12.5"


def test_results_are_immutable():
    gt = np.zeros((2, 15, 2), np.float32)
    r = metrics.pck(gt, gt, threshold=0.2, skeleton="body25_15")
    with pytest.raises(ValueError):
        r.per_joint[0] = 0.5
    with pytest.raises(AttributeError):
        r.value = 0.5  # type: ignore[misc]


def test_torch_tensors_and_float64_are_accepted():
    torch = pytest.importorskip("torch")
    g = torch.rand(3, 17, 3, dtype=torch.float64)
    assert metrics.mpjpe(g, g) == 0.0
    assert metrics.mpjpe(g.numpy(), g.numpy() + 1).count == 51


def test_pck_curve_is_monotone_and_matches_single_thresholds():
    rng = np.random.default_rng(6)
    gt = rng.normal(size=(100, 17, 3)).astype(np.float32)
    pred = (gt + rng.normal(0, 0.3, gt.shape)).astype(np.float32)
    t = np.linspace(0, 1, 11)
    curve = metrics.pck_curve(pred, gt, t, skeleton="h36m17")
    assert np.all(np.diff(curve.values) >= 0)
    for i, x in enumerate(t):
        assert metrics.pck(pred, gt, threshold=x, skeleton="h36m17").value == curve.values[i]
    assert curve.auc == pytest.approx(curve.values.mean())
    assert curve.definitions[2].startswith("torso-PCK@0.2:")
