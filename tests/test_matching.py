"""csipose.matching against scipy.optimize.linear_sum_assignment and exhaustive oracles."""

from __future__ import annotations

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import csipose
from csipose import _native, matching
from csipose.skeleton import COCO17

from gil import calls_during
from reference import best_partial_matching, coco_oks, mean_visible_distance

scipy_optimize = pytest.importorskip("scipy.optimize")
linear_sum_assignment = scipy_optimize.linear_sum_assignment

EDGE_VALUES = [0.0, -0.0, 1.0, 1.0, 2.0, -5.0, 1e300, -1e300, 5e-324, np.inf]


@st.composite
def cost_matrices(draw, max_side: int = 8, forbidden: bool = True) -> np.ndarray:
    """Rectangular both ways, empty, 1x1; ties (small integers, repeated edge
    values), huge and tiny magnitudes, mixed scales, and +inf entries."""
    r, c = draw(st.integers(0, max_side)), draw(st.integers(0, max_side))
    kind = draw(st.sampled_from(["int", "normal", "huge", "tiny", "mixed", "edge"]))
    if kind == "edge":
        values = EDGE_VALUES if forbidden else EDGE_VALUES[:-1]
        return draw(hnp.arrays(np.float64, (r, c), elements=st.sampled_from(values)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    m = {
        "int": lambda: rng.integers(-3, 4, (r, c)).astype(np.float64),
        "normal": lambda: rng.normal(0, 10, (r, c)),
        "huge": lambda: rng.uniform(-1, 1, (r, c)) * 1e300,
        "tiny": lambda: rng.uniform(-1, 1, (r, c)) * 1e-300,
        "mixed": lambda: rng.normal(size=(r, c)) * 10.0 ** rng.integers(-200, 200, (r, c)),
    }[kind]()
    if forbidden and draw(st.booleans()):
        m[rng.random((r, c)) < draw(st.sampled_from([0.1, 0.3, 0.6]))] = np.inf
    return m


def check_assignment(m: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> None:
    assert rows.dtype == cols.dtype == np.int64
    assert np.all(np.diff(rows) > 0), "rows must be sorted and distinct"
    assert len(np.unique(cols)) == len(cols)
    assert np.isfinite(m[rows, cols]).all()


def tolerance(m: np.ndarray) -> float:
    finite = np.abs(m[np.isfinite(m)])
    return 1e-12 * max(m.shape, default=0) * finite.max(initial=0.0) + 1e-300


@given(m=cost_matrices())
def test_assign_equals_scipy_in_total_cost(m):
    try:
        expect = linear_sum_assignment(m)
    except ValueError as e:
        assert "infeasible" in str(e)
        with pytest.raises(ValueError, match="infeasible"):
            matching.assign(m)
        return
    rows, cols = matching.assign(m)
    check_assignment(m, rows, cols)
    assert len(rows) == min(m.shape)
    assert abs(m[rows, cols].sum() - m[expect].sum()) <= tolerance(m)


@given(m=cost_matrices(max_side=5))
def test_partial_assignment_has_most_pairs_then_least_cost(m):
    rows, cols = matching.assign(m, partial=True)
    check_assignment(m, rows, cols)
    n, total = best_partial_matching(m)
    assert len(rows) == n
    assert abs(m[rows, cols].sum() - total) <= tolerance(m)


@given(
    m=hnp.arrays(
        np.float64,
        st.tuples(st.integers(1, 5), st.integers(1, 5)),
        elements=st.floats(-1.7e308, 1.7e308) | st.sampled_from([1.7e308, -1.7e308, 1.0]),
    ),
    partial=st.booleans(),
)
def test_costs_near_the_float64_limit_are_solved_exactly(m, partial):
    """Beyond ~1e306 the solver scales the matrix by a power of two (exact) so
    that no dual sum overflows; the oracle solves the same matrix scaled down."""
    rows, cols = matching.assign(m, partial=partial)
    check_assignment(m, rows, cols)
    small = m * 2.0**-64
    n, total = best_partial_matching(small)
    assert len(rows) == n == min(m.shape)
    assert abs(small[rows, cols].sum() - total) <= tolerance(small)


@given(m=cost_matrices(max_side=6, forbidden=False))
def test_partial_without_forbidden_pairs_is_the_plain_assignment(m):
    full, part = matching.assign(m), matching.assign(m, partial=True)
    assert all(np.array_equal(a, b) for a, b in zip(full, part, strict=True))


@pytest.mark.parametrize("bad", [np.nan, -np.inf])
def test_nan_and_minus_infinity_are_value_errors(bad):
    m = np.ones((3, 4))
    m[2, 1] = bad
    with pytest.raises(ValueError, match=r"cost\[2, 1\]"):
        matching.assign(m)
    with pytest.raises(ValueError, match=r"problem 1: cost\[2, 1\]"):
        matching.assign_batch(np.stack([np.ones((3, 4)), m]))


def test_infeasible_problem_names_the_remedy():
    m = np.array([[1.0, np.inf], [2.0, np.inf]])
    with pytest.raises(ValueError, match=r"infeasible.*partial"):
        matching.assign(m)
    rows, cols = matching.assign(m, partial=True)
    assert (rows.tolist(), cols.tolist()) == ([0], [0])


def test_inputs_lists_ints_torch_and_strided_arrays():
    m = np.array([[4, 1, 3], [2, 0, 5], [3, 2, 2]])
    expect = linear_sum_assignment(m)
    for x in (m, m.tolist(), m.astype(np.float32), np.asfortranarray(m.astype(float))):
        rows, cols = matching.assign(x)
        assert m[rows, cols].sum() == m[expect].sum() == 5
    torch = pytest.importorskip("torch")
    rows, _ = matching.assign(torch.tensor(m, dtype=torch.float64))
    assert rows.tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="2-D"):
        matching.assign(np.ones(3))
    with pytest.raises(TypeError):
        matching.assign(np.array([["a"]]))


@given(
    ms=st.lists(cost_matrices(max_side=6), max_size=12),
    partial=st.booleans(),
)
def test_batch_of_any_shapes_equals_one_by_one(ms, partial):
    solo = []
    for m in ms:
        try:
            solo.append(matching.assign(m, partial=partial))
        except ValueError:
            with pytest.raises(ValueError, match="problem"):
                matching.assign_batch(ms, partial=partial)
            return
    out = matching.assign_batch(ms, partial=partial)
    assert len(out) == len(ms)
    for b, (rows, cols) in enumerate(solo):
        assert np.array_equal(out[b][0], rows) and np.array_equal(out[b][1], cols)
    assert np.array_equal(out.problem, np.repeat(np.arange(len(ms)), [len(r) for r, _ in solo]))


@pytest.fixture
def restore_threads():
    yield
    csipose.set_num_threads(0)


def test_dense_batch_matches_scipy_and_ignores_thread_count(restore_threads):
    costs = np.random.default_rng(0).random((3000, 7, 5))
    csipose.set_num_threads(1)
    one = matching.assign_batch(costs)
    csipose.set_num_threads(2)
    two = matching.assign_batch(costs)
    assert np.array_equal(one.rows, two.rows) and np.array_equal(one.cols, two.cols)
    rows, cols = one.rows.reshape(3000, 5), one.cols.reshape(3000, 5)
    ours = costs[np.arange(3000)[:, None], rows, cols].sum(axis=1)
    theirs = np.array([c[linear_sum_assignment(c)].sum() for c in costs])
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    assert len(matching.assign_batch(np.empty((0, 3, 3)))) == 0


def test_batch_releases_the_gil(restore_threads):
    """While one thread solves a big batch, another completes small calls
    (tests/gil.py has the method)."""
    csipose.set_num_threads(1)
    big = np.random.default_rng(1).random((4000, 24, 24))
    small = np.random.default_rng(2).random((3, 3))
    pairs, overlapping, calls = calls_during(
        lambda: len(_native.assign_batch(big.reshape(-1), _shapes(big))[0]),
        lambda: matching.assign(small),
    )
    assert pairs == 4000 * 24
    assert overlapping >= 10, (overlapping, calls)


def _shapes(costs: np.ndarray) -> np.ndarray:
    return np.tile(np.array(costs.shape[1:], np.uint64), (len(costs), 1))


@st.composite
def people(draw, max_people: int = 4, dims: int = 2):
    """A frame of true people and predictions near some of them (plus strays)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    g, p = draw(st.integers(0, max_people)), draw(st.integers(0, max_people))
    gt = rng.uniform(0, 200, (g, 17, dims)).astype(np.float32)
    near = rng.integers(0, max(g, 1), p)
    pred = rng.uniform(0, 200, (p, 17, dims))
    if g:
        pred = np.where(rng.random((p, 1, 1)) < 0.8, gt[near], pred)
    pred = (pred + rng.normal(0, draw(st.sampled_from([0.5, 5, 30])), pred.shape)).astype(
        np.float32
    )
    vis = rng.random((g, 17)) < 0.7
    vis[np.arange(g), rng.integers(0, 17, g)] = True  # every person has a visible joint
    area = rng.uniform(200, 8000, g)
    return pred, gt, vis, area


def check_partition(m: matching.PersonMatch) -> None:
    assert sorted([*m.pred, *m.false_positives]) == list(range(m.n_pred))
    assert sorted([*m.gt, *m.missed]) == list(range(m.n_gt))
    assert np.array_equal(m.values, m.matrix[m.pred, m.gt])


@given(frame=people(), threshold=st.sampled_from([None, 0.0, 0.3, 0.5, 0.9]))
def test_oks_matching_is_optimal_among_gated_pairs(frame, threshold):
    pred, gt, vis, area = frame
    m = matching.match_people(pred, gt, threshold=threshold, gt_visible=vis, areas=area)
    oracle = np.array(
        [[coco_oks(p[None], g[None], v[None], [a], COCO17.sigmas)[0] for g, v, a in
          zip(gt, vis, area, strict=True)] for p in pred]
    ).reshape(len(pred), len(gt))  # fmt: skip
    np.testing.assert_allclose(m.matrix, oracle, rtol=1e-12, atol=1e-300)
    check_partition(m)
    gate = -np.inf if threshold is None else threshold
    assert np.all(m.values >= gate)
    n, total = best_partial_matching(np.where(m.matrix >= gate, -m.matrix, np.inf))
    assert m.n_matched == n
    assert m.values.sum() == pytest.approx(-total, abs=1e-12)


@given(
    frame=people(dims=3),
    threshold=st.sampled_from([None, 5.0, 40.0]),
    nan_pred=st.booleans(),
)
def test_distance_matching_is_optimal_among_gated_pairs(frame, threshold, nan_pred):
    pred, gt, vis, _ = frame
    if nan_pred and len(pred):
        pred[0, :, 1] = np.nan  # cannot be compared with anyone: never matched
    m = matching.match_people(pred, gt, cost="distance", threshold=threshold, gt_visible=vis)
    oracle = mean_visible_distance(pred, gt, vis)
    np.testing.assert_allclose(m.matrix, oracle, rtol=1e-12)
    check_partition(m)
    if nan_pred and len(pred):
        assert 0 in m.false_positives
    allowed = ~np.isnan(oracle) & (oracle <= (np.inf if threshold is None else threshold))
    n, total = best_partial_matching(np.where(allowed, oracle, np.inf))
    assert m.n_matched == n
    assert m.values.sum() == pytest.approx(total, rel=1e-12, abs=1e-12)


@given(frames=st.lists(people(), max_size=6), threshold=st.sampled_from([None, 0.5]))
def test_match_frames_equals_frame_by_frame(frames, threshold):
    preds = [f[0] for f in frames]
    gts = [f[1] for f in frames]
    vis = [f[2] for f in frames]
    many = matching.match_frames(preds, gts, threshold=threshold, gt_visible=vis)
    assert len(many) == len(frames)
    for m, (p, g, v, _) in zip(many, frames, strict=True):
        one = matching.match_people(p, g, threshold=threshold, gt_visible=v)
        for field in ("pred", "gt", "values", "false_positives", "missed", "matrix"):
            assert np.array_equal(getattr(m, field), getattr(one, field))


def test_match_people_basic_cases_and_errors():
    gt = np.array([[[0, 0], [10, 0]], [[100, 100], [110, 100]]], np.float32)
    pred = gt[::-1] + 0.5
    sig = [0.1, 0.1]
    m = matching.match_people(pred, gt, threshold=0.5, sigmas=sig, areas=[100, 100])
    assert (m.pred.tolist(), m.gt.tolist()) == ([0, 1], [1, 0])
    # A stray prediction far away becomes a false positive; nobody is missed.
    pred3 = np.concatenate([pred, [[[500, 500], [510, 500]]]]).astype(np.float32)
    m = matching.match_people(pred3, gt, threshold=0.5, sigmas=sig, areas=[100, 100])
    assert m.false_positives.tolist() == [2] and m.missed.size == 0
    assert "OKS >= 0.5" in m.definition and "the given area" in m.definition
    # No predictions: everyone is missed.
    m = matching.match_people(np.empty((0, 2, 2)), gt, threshold=0.5, sigmas=sig)
    assert m.missed.tolist() == [0, 1] and m.matrix.shape == (0, 2)
    with pytest.raises(ValueError, match="no visible joint"):
        matching.match_people(pred, gt, threshold=0.5, sigmas=sig, gt_visible=[[1, 1], [0, 0]])
    with pytest.raises(ValueError, match="2-D"):
        matching.match_people(np.zeros((1, 17, 3)), np.zeros((1, 17, 3)), threshold=0.5)
    with pytest.raises(ValueError, match="unknown cost"):
        matching.match_people(pred, gt, cost="iou", threshold=0.5)
    with pytest.raises(ValueError, match="expected"):
        matching.match_people(np.zeros((1, 3, 2)), gt, cost="distance", threshold=None)
