"""Problems of both sides from 2 to 8 take the vector path in batches (four
problems of one shape at once, one in each lane of AVX2 vectors, gathered
out of order: rust/core/src/matching/lanes.rs, and search_lanes.rs for a
smaller side of 2 or 3) where the CPU has AVX2.
Every form of batch gives exactly the pairs each problem gets alone from
`assign`, ties and signed zeros included, square, wide and tall, with or
without `partial`, whatever the batch length, the order of shapes, the
padding and the thread count; and scipy's total cost."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import csipose
from csipose import matching
from test_matching import check_assignment, tolerance

scipy_optimize = pytest.importorskip("scipy.optimize")


def problems(seed: int, b: int, shape: tuple[int, int], kind: str) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "uniform":
        return rng.random((b, *shape))
    if kind == "ties":  # small integers and both zeros: many equal reduced costs
        m = rng.integers(-2, 3, (b, *shape)).astype(np.float64)
        m[rng.random(m.shape) < 0.2] = -0.0
        return m
    return np.round(rng.normal(0, 100, (b, *shape)), 1)  # ties now and then


@pytest.fixture
def restore_threads():
    yield
    csipose.set_num_threads(0)


@given(
    seed=st.integers(0, 2**32 - 1),
    b=st.integers(1, 14),
    r=st.integers(2, 8),
    c=st.integers(2, 8),
    kind=st.sampled_from(["uniform", "ties", "rounded"]),
    pad=st.integers(0, 2),
    partial=st.booleans(),
)
def test_every_batch_form_gives_each_problem_its_own_pairs(seed, b, r, c, kind, pad, partial):
    costs = problems(seed, b, (r, c), kind)
    alone = [matching.assign(m, partial=partial) for m in costs]
    padded = np.full((b, r + pad, c + pad), 7.0)
    padded[:, :r, :c] = costs
    sizes = np.tile([r, c], (b, 1))
    for out in (
        matching.assign_batch(costs, partial=partial),
        matching.assign_batch(list(costs), partial=partial),
        matching.assign_batch(padded, sizes=sizes, partial=partial),
    ):
        assert len(out) == b
        for k, (rows, cols) in enumerate(alone):
            got_rows, got_cols = out[k]
            np.testing.assert_array_equal(got_rows, rows)
            np.testing.assert_array_equal(got_cols, cols)
    for m, (rows, cols) in zip(costs, alone, strict=True):
        check_assignment(m, rows, cols)
        expect = scipy_optimize.linear_sum_assignment(m)
        assert abs(m[rows, cols].sum() - m[expect].sum()) <= tolerance(m)


def test_thread_counts_and_batches_mixing_shapes_agree(restore_threads):
    rng = np.random.default_rng(1)
    # Shapes that come back among others (grouped out of order), runs of
    # one shape, leftovers of fewer than four, and shapes the lanes leave.
    shapes = [(8, 8)] * 9 + [(3, 5)] + [(6, 6)] * 4 + [(7, 4)] + [(5, 5)] * 6
    shapes += [(5, 7), (7, 5), (4, 8), (2, 8)] * 7 + [(6, 4), (9, 9), (6, 4)]
    order = rng.permutation(len(shapes))
    for kind in ("uniform", "ties"):
        mats = [problems(k, 1, shapes[i], kind)[0] for k, i in enumerate(order)]
        mats[2][-1, -1] = mats[2][0, -1]  # a tie within a problem
        csipose.set_num_threads(1)
        one = matching.assign_batch(mats)
        csipose.set_num_threads(2)
        two = matching.assign_batch(mats)
        assert np.array_equal(one.rows, two.rows) and np.array_equal(one.cols, two.cols)
        padded = np.zeros((len(mats), 9, 9))
        for k, m in enumerate(mats):
            padded[k, : m.shape[0], : m.shape[1]] = m
        three = matching.assign_batch(padded, sizes=[m.shape for m in mats])
        assert np.array_equal(one.rows, three.rows) and np.array_equal(one.cols, three.cols)
        for k, m in enumerate(mats):
            rows, cols = matching.assign(m)
            np.testing.assert_array_equal(one[k][0], rows)
            np.testing.assert_array_equal(one[k][1], cols)
    many = rng.random((4099, 8, 8))
    csipose.set_num_threads(1)
    a = matching.assign_batch(many)
    csipose.set_num_threads(2)
    c = matching.assign_batch(many)
    assert np.array_equal(a.cols, c.cols)
    ours = many[np.arange(4099)[:, None], a.rows.reshape(-1, 8), a.cols.reshape(-1, 8)].sum(1)
    theirs = np.array([m[scipy_optimize.linear_sum_assignment(m)].sum() for m in many])
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)


def test_the_first_error_in_problem_order_is_reported():
    """Problems 0-4 are one shape, grouped before the scalar solver reaches
    problem 1, whose NaN makes its lane go back; problem 1's error is
    reported, not that of a later problem."""
    rng = np.random.default_rng(3)
    mats = [rng.random((5, 7)) for _ in range(5)] + [rng.random((3, 3)), rng.random((5, 7))]
    mats[1][4, 6] = np.nan
    mats[5][0, 0] = -np.inf
    with pytest.raises(ValueError, match=r"problem 1: cost\[4, 6\] is NaN"):
        matching.assign_batch(mats)
    # Reversed, the -inf (now problem 1) comes before the grouped NaN (problem 5).
    with pytest.raises(ValueError, match=r"problem 1: cost\[0, 0\] is -inf"):
        matching.assign_batch(mats[::-1])


@pytest.mark.parametrize("bad", [np.nan, -np.inf, np.inf, 1e307])
def test_an_entry_the_lanes_refuse_goes_to_the_solver(bad):
    """NaN and -inf: the solver's error, naming the problem; +inf (a
    forbidden pair) and a huge entry: the solver's answer."""
    costs = np.random.default_rng(2).random((8, 6, 6))
    costs[5, 2, 3] = bad
    if np.isnan(bad) or bad == -np.inf:
        with pytest.raises(ValueError, match=r"problem 5: cost\[2, 3\]"):
            matching.assign_batch(costs)
        return
    out = matching.assign_batch(costs)
    for k, m in enumerate(costs):
        rows, cols = matching.assign(m)
        np.testing.assert_array_equal(out[k][0], rows)
        np.testing.assert_array_equal(out[k][1], cols)
