"""csipose.models.pose_loss against a numpy oracle of WiFlow's loss formula."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from csipose.models import bone_lengths, pose_loss, pose_loss_terms  # noqa: E402
from csipose.skeleton import BODY25_15, H36M17  # noqa: E402

from reference import smooth_l1, wiflow_pose_loss  # noqa: E402

SKELETONS = {"body25_15": (BODY25_15, 2), "h36m17": (H36M17, 3)}


def poses(seed: int, skel, dims: int, batch: int = 4, noise: float = 0.08):
    """gt in [0, 1) and pred = gt + noise, so errors fall on both sides of the betas."""
    rng = np.random.default_rng(seed)
    gt = rng.random((batch, skel.num_joints, dims))
    pred = gt + rng.normal(0.0, noise, gt.shape)
    return pred, gt


def test_skeleton_bone_counts():
    # WiFlow's 14 BODY_25 edges and MM-Fi's 16 H36M-17 bones.
    assert len(BODY25_15.bones) == 14
    assert len(H36M17.bones) == 16


@pytest.mark.parametrize("name", SKELETONS)
def test_loss_equals_oracle_and_both_smooth_l1_branches_occur(name):
    skel, dims = SKELETONS[name]
    pred, gt = poses(0, skel, dims)
    terms = pose_loss_terms(torch.tensor(pred), torch.tensor(gt), skel)
    total = pose_loss(torch.tensor(pred), torch.tensor(gt), skel)
    position, bone, want = wiflow_pose_loss(pred, gt, skel.bones)
    assert terms.position.item() == pytest.approx(position, rel=1e-12)
    assert terms.bone.item() == pytest.approx(bone, rel=1e-12)
    assert total.item() == pytest.approx(want, rel=1e-12)
    diff = np.abs(pred - gt)
    assert (diff < 0.1).any() and (diff >= 0.1).any()
    lengths = bone_lengths(torch.tensor(pred), skel) - bone_lengths(torch.tensor(gt), skel)
    assert (lengths.abs() < 0.05).any() and (lengths.abs() >= 0.05).any()


@given(
    seed=st.integers(0, 2**32 - 1),
    name=st.sampled_from(list(SKELETONS)),
    batch=st.integers(1, 5),
    p_visible=st.sampled_from([0.0, 0.3, 0.8, 1.0]),
)
def test_masked_loss_equals_oracle(seed, name, batch, p_visible):
    skel, dims = SKELETONS[name]
    pred, gt = poses(seed, skel, dims, batch)
    visible = np.random.default_rng(seed + 1).random((batch, skel.num_joints)) < p_visible
    gt_nan = np.where(visible[..., None], gt, np.nan)  # masked targets may hold anything
    terms = pose_loss_terms(
        torch.tensor(pred), torch.tensor(gt_nan), skel, visible=torch.tensor(visible)
    )
    position, bone, _ = wiflow_pose_loss(pred, gt, skel.bones, visible)
    assert terms.position.item() == pytest.approx(position, rel=1e-12, abs=1e-15)
    assert terms.bone.item() == pytest.approx(bone, rel=1e-12, abs=1e-15)


def test_float32_and_leading_axes():
    skel, dims = SKELETONS["body25_15"]
    pred, gt = poses(3, skel, dims, batch=6)
    p32 = torch.tensor(pred, dtype=torch.float32).reshape(2, 3, skel.num_joints, dims)
    g32 = torch.tensor(gt, dtype=torch.float32).reshape(2, 3, skel.num_joints, dims)
    got = pose_loss(p32, g32, "body25_15")
    assert got.dtype == torch.float32
    want = wiflow_pose_loss(p32.double().numpy(), g32.double().numpy(), skel.bones)[2]
    assert got.item() == pytest.approx(want, rel=1e-5)


def test_all_ones_mask_equals_no_mask_and_weights_apply():
    skel, dims = SKELETONS["h36m17"]
    pred, gt = (torch.tensor(a) for a in poses(4, skel, dims))
    ones = torch.ones(pred.shape[:-1], dtype=torch.bool)
    plain, masked = pose_loss_terms(pred, gt, skel), pose_loss_terms(pred, gt, skel, visible=ones)
    torch.testing.assert_close(plain.position, masked.position, rtol=1e-14, atol=0)
    torch.testing.assert_close(plain.bone, masked.bone, rtol=1e-14, atol=0)
    total = pose_loss(pred, gt, skel, position_weight=0.5, bone_weight=3.0)
    torch.testing.assert_close(total, 0.5 * plain.position + 3.0 * plain.bone)


def test_gradients_flow_through_both_terms():
    skel, dims = SKELETONS["body25_15"]
    pred_np, gt_np = poses(5, skel, dims, batch=2)
    gt = torch.tensor(gt_np)
    for term in ("position", "bone"):
        pred = torch.tensor(pred_np, requires_grad=True)
        getattr(pose_loss_terms(pred, gt, skel), term).backward()
        assert pred.grad is not None and pred.grad.abs().sum() > 0, term

        def f(p, term=term):
            return getattr(pose_loss_terms(p, gt, skel), term)

        assert torch.autograd.gradcheck(f, (torch.tensor(pred_np, requires_grad=True),))
    # The bone term ignores a translation of every joint; the position term does not.
    pred = torch.tensor(pred_np)
    shifted = pred + torch.tensor([0.3, -0.2], dtype=pred.dtype)
    a, b = pose_loss_terms(pred, gt, skel), pose_loss_terms(shifted, gt, skel)
    torch.testing.assert_close(a.bone, b.bone)
    assert b.position > a.position


def test_masked_joints_get_no_gradient_and_empty_mask_gives_zero():
    skel, dims = SKELETONS["body25_15"]
    pred_np, gt_np = poses(6, skel, dims, batch=3)
    visible = torch.ones(3, skel.num_joints, dtype=torch.bool)
    visible[0, 4] = visible[2, 1] = False  # a wrist (one bone) and the neck (four bones)
    gt = torch.tensor(gt_np)
    gt[~visible] = float("nan")
    pred = torch.tensor(pred_np, requires_grad=True)
    loss = pose_loss(pred, gt, skel, visible=visible)
    loss.backward()
    assert torch.isfinite(loss)
    assert pred.grad is not None and torch.isfinite(pred.grad).all()
    assert (pred.grad[~visible] == 0).all()
    assert (pred.grad[visible].abs().sum(-1) > 0).any()

    pred = torch.tensor(pred_np, requires_grad=True)
    none = torch.zeros(3, skel.num_joints, dtype=torch.bool)
    loss = pose_loss(pred, gt, skel, visible=none)
    loss.backward()
    assert loss.item() == 0.0
    assert pred.grad is not None and (pred.grad == 0).all()


def test_smooth_l1_oracle_matches_torch():
    u = torch.linspace(-0.3, 0.3, 61, dtype=torch.float64)
    for beta in (0.1, 0.05):
        want = torch.nn.functional.smooth_l1_loss(
            u, torch.zeros_like(u), reduction="none", beta=beta
        )
        np.testing.assert_allclose(smooth_l1(u.numpy(), beta), want.numpy(), rtol=1e-15)


def test_bad_shapes_raise():
    pred = torch.zeros(2, 15, 2)
    with pytest.raises(ValueError, match="skeleton h36m17 has 17"):
        pose_loss(pred, pred, "h36m17")
    with pytest.raises(ValueError, match="share a shape"):
        pose_loss(pred, torch.zeros(2, 15, 3), "body25_15")
    with pytest.raises(ValueError, match="visible must have shape"):
        pose_loss(pred, pred, "body25_15", visible=torch.ones(2, 14))
