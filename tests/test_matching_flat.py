"""match_frames_flat: many frames in flat arrays, the same matching as each
frame matched alone, and optimal against scipy; match_frames (the list form,
built on it) returns the same frames."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

from csipose import matching


@st.composite
def frames(draw, dims=2):
    counts = draw(
        st.lists(st.tuples(st.integers(0, 8), st.integers(0, 8)), min_size=0, max_size=12)
    )
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    k = draw(st.integers(1, 5))
    # Poses are float32 (the library's contract); the oracle works on their float64 values.
    preds = [rng.random((p, k, dims)).astype(np.float32).astype(np.float64) for p, _ in counts]
    gts = [rng.random((g, k, dims)).astype(np.float32).astype(np.float64) for _, g in counts]
    return preds, gts


def _flat(preds, gts):
    k, d = (preds + gts)[0].shape[1:] if preds + gts else (1, 2)
    cat = lambda xs: np.concatenate(xs) if xs else np.empty((0, k, d))  # noqa: E731
    return cat(preds), cat(gts), np.array([len(p) for p in preds]), np.array([len(g) for g in gts])


@settings(max_examples=60, deadline=None)
@given(data=frames(), cost=st.sampled_from(["oks", "distance"]),
       threshold=st.sampled_from([None, 0.3, 0.6]))  # fmt: skip
def test_flat_equals_each_frame_alone(data, cost, threshold):
    preds, gts = data
    if not preds:
        return
    sigmas = np.full(preds[0].shape[1], 0.07)
    flat = matching.match_frames_flat(
        *_flat(preds, gts), cost=cost, threshold=threshold, sigmas=sigmas
    )
    listed = matching.match_frames(preds, gts, cost=cost, threshold=threshold, sigmas=sigmas)
    assert len(flat) == len(listed) == len(preds)
    for f, (p, g) in enumerate(zip(preds, gts, strict=True)):
        alone = matching.match_people(p, g, cost=cost, threshold=threshold, sigmas=sigmas)
        for got in (flat.frame(f), listed[f]):
            for field in ("pred", "gt", "values", "false_positives", "missed", "matrix"):
                np.testing.assert_array_equal(
                    getattr(got, field), getattr(alone, field), err_msg=field
                )
            assert got.definition == alone.definition
    assert flat.n_matched.sum() == len(flat.pred)


@settings(max_examples=60, deadline=None)
@given(data=frames(dims=3))
def test_flat_is_optimal_against_scipy(data):
    preds, gts = data
    flat = matching.match_frames_flat(*_flat(preds, gts), cost="distance", threshold=None)
    for f, (p, g) in enumerate(zip(preds, gts, strict=True)):
        lo, hi = flat.offsets[f], flat.offsets[f + 1]
        assert hi - lo == min(len(p), len(g))
        if not len(p) or not len(g):
            continue
        d = np.linalg.norm(p[:, None] - g[None], axis=-1).mean(-1)
        r, c = linear_sum_assignment(d)
        np.testing.assert_allclose(flat.values[lo:hi].sum(), d[r, c].sum(), rtol=1e-9, atol=1e-12)
        # Every person is matched once or listed as unmatched, exactly once.
        fp = flat.false_positives[flat.fp_offsets[f] : flat.fp_offsets[f + 1]]
        missed = flat.missed[flat.missed_offsets[f] : flat.missed_offsets[f + 1]]
        assert sorted([*flat.pred[lo:hi], *fp]) == list(range(len(p)))
        assert sorted([*flat.gt[lo:hi], *missed]) == list(range(len(g)))


def test_flat_checks_its_inputs():
    p, g = np.zeros((3, 4, 2)), np.ones((2, 4, 2))
    with pytest.raises(ValueError, match="counts sum"):
        matching.match_frames_flat(p, g, [1, 1], [1, 1], threshold=None)
    with pytest.raises(ValueError, match="frames"):
        matching.match_frames_flat(p, g, [3], [1, 1], threshold=None)
    with pytest.raises(TypeError, match="n_pred"):
        matching.match_frames_flat(p, g, [1.5, 1.5], [1, 1], threshold=None)
    vis = np.ones((2, 4), bool)
    vis[1] = False
    with pytest.raises(ValueError, match="frame 1: ground-truth person 0 has no visible"):
        matching.match_frames_flat(p, g, [2, 1], [1, 1], threshold=None, gt_visible=vis)
    g[1, 0, 0] = np.nan
    with pytest.raises(ValueError, match="frame 1: ground truth must be finite"):
        matching.match_frames_flat(p, g, [2, 1], [1, 1], threshold=None)
    with pytest.raises(ValueError, match="areas apply"):
        matching.match_frames_flat(p, np.zeros_like(g), [2, 1], [1, 1], threshold=None, cost="distance",
                                   areas=[1.0, 1.0])  # fmt: skip


def _distances_oracle(pred, gt, vis, n_pred, n_gt):
    """numpy: every frame's [P, G] block of mean distances over visible joints."""
    out = []
    p0 = g0 = 0
    for p, g in zip(n_pred, n_gt, strict=True):
        a, b, v = pred[p0 : p0 + p], gt[g0 : g0 + g], vis[g0 : g0 + g]
        d = np.linalg.norm(a[:, None] - b[None], axis=-1)  # [P, G, K]
        with np.errstate(invalid="ignore"):
            out.append((np.where(v[None], d, 0.0).sum(-1) / v.sum(-1)[None]).ravel())
        p0, g0 = p0 + p, g0 + g
    return np.concatenate(out) if out else np.empty(0)


@settings(max_examples=80, deadline=None)
@given(data=frames(dims=3), seed=st.integers(0, 2**32 - 1), nan=st.booleans())
def test_pair_distances_kernel_matches_numpy(data, seed, nan):
    from csipose import _native
    from csipose._arrays import offsets

    preds, gts = data
    if not preds:
        return
    pred, gt, n_pred, n_gt = _flat(preds, gts)
    # The kernel takes float32 poses and widens each coordinate exactly.
    pred, gt = pred.astype(np.float32), gt.astype(np.float32)
    rng = np.random.default_rng(seed)
    vis = rng.random(gt.shape[:2]) < 0.8
    if nan and len(pred):
        pred[rng.integers(len(pred)), rng.integers(pred.shape[1]), 0] = np.nan
    got = _native.pair_distances(pred, gt, vis, offsets(n_pred), offsets(n_gt))
    want = _distances_oracle(pred.astype(np.float64), gt.astype(np.float64), vis, n_pred, n_gt)
    np.testing.assert_allclose(got, want, rtol=1e-12)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), b=st.integers(0, 30), partial=st.booleans())
def test_padded_batch_equals_the_list_form_and_scipy(seed, b, partial):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(0, 9, (b, 2))
    padded = rng.random((b, 8, 8))
    padded[rng.random(padded.shape) < 0.1] = np.inf if partial else 0.5
    got = matching.assign_batch(padded, sizes=sizes, partial=partial)
    mats = [padded[i, :r, :c] for i, (r, c) in enumerate(sizes)]
    want = matching.assign_batch(mats, partial=partial) if mats else None
    for i, m in enumerate(mats):
        r, c = got[i]
        np.testing.assert_array_equal(r, want[i][0])
        np.testing.assert_array_equal(c, want[i][1])
        if not partial and m.size:
            sr, sc = linear_sum_assignment(m)
            np.testing.assert_allclose(m[r, c].sum(), m[sr, sc].sum(), rtol=1e-12)


def test_padded_batch_checks_sizes():
    with pytest.raises(ValueError, match="within"):
        matching.assign_batch(np.zeros((2, 3, 3)), sizes=[[1, 1], [4, 1]])
    with pytest.raises(ValueError, match="sizes must be"):
        matching.assign_batch(np.zeros((2, 3, 3)), sizes=[[1, 1]])
    with pytest.raises(ValueError, match="padded"):
        matching.assign_batch(np.zeros((3, 3)), sizes=[[1, 1]])
