"""The paths for small problems (up to 8x8, every cost finite: one row or
column, the search for a smaller side of 2 or 3 in
rust/core/src/matching/exhaustive.rs, the fixed buffers of
rust/core/src/matching/small.rs) against the general solver
(`_native.assign_general`, which never takes them): the same total cost
always, the same pairs where the optimum is unique, the same errors; and,
through the batch path, the same as scipy."""

from __future__ import annotations

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from csipose import _native, matching
from test_matching import check_assignment, cost_matrices, tolerance

scipy_optimize = pytest.importorskip("scipy.optimize")


def outcome(solve, m: np.ndarray, partial: bool):
    try:
        return solve(np.ascontiguousarray(m), partial)
    except ValueError as e:
        return str(e)


@given(m=cost_matrices(max_side=9), partial=st.booleans())
def test_small_path_equals_the_general_solver(m, partial):
    # Sides 0-9: 9 and inf/NaN-free huge entries leave the fixed path.
    small, general = (
        outcome(_native.assign, m, partial),
        outcome(_native.assign_general, m, partial),
    )
    if isinstance(general, str):
        assert small == general
        return
    assert not isinstance(small, str), small
    check_assignment(m, *small)
    assert len(small[0]) == len(general[0])
    assert abs(m[small].sum() - m[general].sum()) <= tolerance(m)


@given(
    shape=st.tuples(st.integers(1, 8), st.integers(1, 8)),
    seed=st.integers(0, 2**32 - 1),
    ties=st.booleans(),
)
def test_small_path_equals_the_general_solver_on_finite_costs(shape, seed, ties):
    """Ties (small integers: totals exact) and distinct uniform costs (a
    unique optimum almost surely: the same pairs)."""
    rng = np.random.default_rng(seed)
    m = rng.integers(-2, 3, shape).astype(np.float64) if ties else rng.random(shape)
    small, general = _native.assign(m), _native.assign_general(m)
    check_assignment(m, *small)
    if ties:
        assert m[small].sum() == m[general].sum()
    else:
        np.testing.assert_array_equal(small[0], general[0])
        np.testing.assert_array_equal(small[1], general[1])
    expect = scipy_optimize.linear_sum_assignment(m)
    assert abs(m[small].sum() - m[expect].sum()) <= tolerance(m)


@given(
    padded=hnp.arrays(
        np.float64, (12, 8, 8), elements=st.sampled_from([0.0, 1.0, 2.0, 0.5, -3.0, 1e-300])
    ),
    sizes=hnp.arrays(np.int64, (12, 2), elements=st.integers(0, 8)),
)
def test_padded_batch_through_the_small_path_equals_the_general_solver(padded, sizes):
    out = matching.assign_batch(padded, sizes=sizes)
    for b, (r, c) in enumerate(sizes):
        m = np.ascontiguousarray(padded[b, :r, :c])
        rows, cols = out[b]
        check_assignment(m, rows, cols)
        general = _native.assign_general(m)
        assert len(rows) == min(r, c)
        assert m[rows, cols].sum() == pytest.approx(m[general].sum(), abs=tolerance(m))
