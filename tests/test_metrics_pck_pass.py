"""PCK at one to seven thresholds (fewer than a curve's) with the MPJPE, for unmasked 2-D joints,
takes one explicit AVX2 pass (rust/core/src/metrics/pck_avx2.rs) where the
CPU has it. Its counts must be the float64 oracle's, ties included, and its
MPJPE sum the bits of the flat loops' order (`block_sum` below; the
baseline build's flat loops themselves: tests/test_simd_levels.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import csipose
from csipose import _native

import reference as ref


def poses(seed: int, n: int, k: int, nan: bool):
    rng = np.random.default_rng(seed)
    gt = rng.uniform(-2, 2, (n, k, 2)).astype(np.float32)
    pred = (gt + rng.normal(0, 0.3, gt.shape)).astype(np.float32)
    if nan and n:
        pred[rng.random((n, k)) < 0.02] = np.nan
    if n > 2:
        pred[1] = gt[1]  # zero distances
        gt[2, 0] = gt[2, k - 1]  # a zero torso: the floor
    return pred, gt


def ratios(pred, gt, torso, floor):
    """Each entry's normalised float64 distance: thresholds exactly on them."""
    p, g = ref.f64(pred), ref.f64(gt)
    dist = ref.norm_last(p - g)
    if torso is None:
        return dist.ravel()
    a, b = torso
    with np.errstate(divide="ignore", invalid="ignore"):
        return (dist / np.maximum(ref.norm_last(g[:, a] - g[:, b]), floor)[:, None]).ravel()


def block_sum(pred, gt):
    """The MPJPE's float64 sum in the flat loops' order: chunks of
    16,384 // k rows, each summed from 0 in blocks of 512 // k rows, each
    block in eight lanes (entry e in lane e % 8), the lanes added in turn."""
    n, k, _ = pred.shape
    d = ref.f64(pred) - ref.f64(gt)
    dist = np.sqrt(d[..., 0] * d[..., 0] + d[..., 1] * d[..., 1])
    total = 0.0
    for c in range(0, n, 16_384 // k):
        chunk = 0.0
        for b in range(c, min(n, c + 16_384 // k), 512 // k):
            x = dist[b : min(n, c + 16_384 // k, b + 512 // k)].ravel()
            x = np.concatenate([x, np.zeros(-len(x) % 8)]).reshape(-1, 8)
            lanes = np.zeros(8)
            for row in x:
                lanes = lanes + row
            s = 0.0
            for v in lanes:
                s += v
            chunk += s
        total += chunk
    return total


def run(pred, gt, t, torso, distances=True, floor=0.01):
    kw = {"norm": "absolute"} if torso is None else {"norm": "torso", "torso": torso}
    kw["floor"] = floor
    t = np.asarray(t, np.float64)
    return _native.joint_errors(pred, gt, None, thresholds=t, distances=distances, **kw)


def same_sum(got, pred, gt):
    want = block_sum(pred, gt)
    assert (np.isnan(got) and np.isnan(want)) or got.hex() == want.hex()


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 700),
    k=st.sampled_from([8, 15, 17, 21]),
    torso=st.booleans(),
    floor=st.sampled_from([0.0, 0.01]),
    nan=st.booleans(),
    data=st.data(),
)
def test_one_pass_counts_are_the_oracle_and_its_sum_the_flat_loops_bits(
    seed, n, k, torso, floor, nan, data
):
    # floor 0 with the zero torso of sample 2: a row without a factor.
    pred, gt = poses(seed, n, k, nan)
    pair = (0, k - 1) if torso else None
    r = ratios(pred, gt, pair, floor)
    r = r[np.isfinite(r)]
    picks = data.draw(st.lists(st.sampled_from(r.tolist()), max_size=3)) if len(r) else []
    t = picks + data.draw(st.lists(st.floats(-0.5, 3, allow_nan=False), min_size=1, max_size=4))
    one = run(pred, gt, t, pair, floor=floor)
    norm = "absolute" if pair is None else "torso"
    with np.errstate(divide="ignore", invalid="ignore"):
        correct, scored, _ = ref.pck_counts(pred, gt, t, norm, torso=pair, floor=floor)
    np.testing.assert_array_equal(one["correct"], correct)
    np.testing.assert_array_equal(one["scored"], scored)
    assert one["dist_count"] == n * k
    same_sum(one["dist_sum"], pred, gt)
    counts = run(pred, gt, t, pair, distances=False, floor=floor)
    np.testing.assert_array_equal(counts["correct"], correct)


@pytest.mark.parametrize("threads", [1, 2])
def test_many_chunks_keep_the_bits_at_any_thread_count(threads):
    # 20,000 x 17: many chunks of 963 rows, each 120 rows a unit of whole
    # groups and blocks, and a tail of 3 rows for the flat loops.
    pred, gt = poses(5, 20_000, 17, nan=False)
    t = [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    try:
        csipose.set_num_threads(threads)
        for m in (1, 4, 7):
            one = run(pred, gt, t[:m], (5, 12))
            same_sum(one["dist_sum"], pred, gt)
            correct, _, _ = ref.pck_counts(pred, gt, t[:m], "torso", torso=(5, 12))
            np.testing.assert_array_equal(one["correct"], correct)
        same_sum(_native.joint_errors(pred, gt, None)["dist_sum"], pred, gt)
    finally:
        csipose.set_num_threads(0)


def test_non_finite_ground_truth_is_reported_from_the_pass():
    pred, gt = poses(6, 400, 17, nan=False)
    gt[250, 3, 1] = np.inf
    for distances in (True, False):
        with pytest.raises(ValueError, match="250"):
            _native.joint_errors(
                pred,
                gt,
                None,
                norm="torso",
                torso=(5, 12),
                thresholds=np.array([0.2]),
                distances=distances,
            )
