"""assign_batch on a list of matrices: the one-call native gather
(`_native.assign_list`) against the checked path it falls back to, the flat
binding the list path used before, and scipy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import csipose
from csipose import _native, matching
from test_matching import cost_matrices

from gil import calls_during

linear_sum_assignment = pytest.importorskip("scipy.optimize").linear_sum_assignment


def flat_oracle(mats: list[np.ndarray], partial: bool) -> tuple[np.ndarray, ...]:
    """The list path as it was: shapes and one concatenation in numpy, then the flat binding."""
    shapes = np.array([m.shape for m in mats], np.uint64).reshape(-1, 2)
    flat = np.concatenate([np.ravel(m) for m in mats]) if mats else np.empty(0)
    return _native.assign_batch(flat, shapes, partial)


def fast(x: object) -> bool:
    """What the gather reads itself: an exact ndarray, native float64, 2-D, C-contiguous, aligned."""
    return (
        type(x) is np.ndarray
        and x.dtype == np.float64
        and x.dtype.isnative
        and x.ndim == 2
        and bool(x.flags.c_contiguous and x.flags.aligned)
    )


def slow_forms(m: np.ndarray) -> list[object]:
    """``m`` in forms the gather leaves to the checked path, with the same
    values (float32 and int only where they hold them exactly). A Fortran
    or strided matrix of one row or column is C-contiguous too: left out."""
    forms: list[object] = [m.astype(">f8"), np.asfortranarray(m)]
    if m.shape[0]:  # [] would read as a 1-D array
        forms.append(m.tolist())
    forms.append(np.repeat(m, 2, axis=0)[::2])  # a row stride
    if m.size:
        unaligned = np.zeros(m.size * 8 + 1, np.uint8)[1:].view(np.float64).reshape(m.shape)
        unaligned[...] = m
        forms.append(unaligned)
    with np.errstate(over="ignore"):
        if np.array_equal(m.astype(np.float32), m):
            forms.append(m.astype(np.float32))
    if np.isfinite(m).all() and np.array_equal(np.round(m), m) and np.abs(m).max(initial=0) < 2**31:
        forms.append(m.astype(np.int32))
    return [f for f in forms if not fast(f)]


@given(ms=st.lists(cost_matrices(max_side=8), max_size=16), partial=st.booleans())
def test_list_equals_the_flat_binding_and_scipy(ms, partial):
    try:
        want = flat_oracle(ms, partial)
    except ValueError as e:
        # The same error, naming the same problem and entry.
        with pytest.raises(ValueError) as got:
            matching.assign_batch(ms, partial=partial)
        assert str(got.value) == str(e)
        assert str(e).startswith("problem ")
        return
    for costs in (ms, tuple(ms)):
        out = _native.assign_list(costs, partial)
        assert out is not None
        assert all(np.array_equal(a, b) for a, b in zip(out, want, strict=True))
        res = matching.assign_batch(costs, partial=partial)
        assert len(res) == len(ms)
        assert np.array_equal(res.rows, want[0]) and np.array_equal(res.cols, want[1])
        assert np.array_equal(res.offsets, want[2])
    if partial:
        return
    for b, m in enumerate(ms):
        rows, cols = res[b]
        r, c = linear_sum_assignment(m)
        scale = np.abs(m[np.isfinite(m)]).max(initial=0.0)
        assert abs(m[rows, cols].sum() - m[r, c].sum()) <= 1e-12 * (1 + m.size) * scale + 1e-300


@given(
    ms=st.lists(cost_matrices(max_side=5), min_size=1, max_size=8),
    slow=st.data(),
    partial=st.booleans(),
)
def test_lists_mixing_fast_and_slow_items_take_the_checked_path(ms, slow, partial):
    b = slow.draw(st.integers(0, len(ms) - 1))
    mixed = list(ms)
    mixed[b] = slow.draw(st.sampled_from(slow_forms(ms[b])))
    assert _native.assign_list(mixed, partial) is None
    try:
        want = flat_oracle(ms, partial)
    except ValueError as e:
        with pytest.raises(ValueError) as got:
            matching.assign_batch(mixed, partial=partial)
        assert str(got.value) == str(e)
        return
    res = matching.assign_batch(mixed, partial=partial)
    assert np.array_equal(res.rows, want[0]) and np.array_equal(res.cols, want[1])
    assert np.array_equal(res.offsets, want[2])


def test_empty_lists_and_empty_matrices():
    for costs in ([], ()):
        res = matching.assign_batch(costs)
        assert len(res) == 0 and res.offsets.tolist() == [0]
        assert res.rows.dtype == res.cols.dtype == res.offsets.dtype == np.int64
    mats = [np.empty((0, 3)), np.empty((4, 0)), np.empty((0, 0)), np.ones((2, 2))]
    res = matching.assign_batch(mats)
    assert res.offsets.tolist() == [0, 0, 0, 0, 2]
    assert res[3][0].tolist() == [0, 1]


@pytest.mark.parametrize("bad", [np.nan, -np.inf])
def test_bad_entries_name_the_problem_and_entry(bad):
    mats = [np.ones((2, 3)), np.ones((3, 2)), np.ones((4, 4))]
    mats[2][3, 1] = bad
    with pytest.raises(ValueError, match=r"^problem 2: cost\[3, 1\] is"):
        matching.assign_batch(mats)
    # The same error from the checked path (here: an int matrix in front).
    with pytest.raises(ValueError, match=r"^problem 2: cost\[3, 1\] is"):
        matching.assign_batch([np.ones((2, 3), int), *mats[1:]])


def test_infeasible_problems_are_named_unless_partial():
    mats = [np.ones((2, 2)), np.array([[1.0, np.inf], [2.0, np.inf]])]
    with pytest.raises(ValueError, match=r"^problem 1: .*infeasible"):
        matching.assign_batch(mats)
    res = matching.assign_batch(mats, partial=True)
    assert res.offsets.tolist() == [0, 2, 3]
    assert (res[1][0].tolist(), res[1][1].tolist()) == ([0], [0])


def test_items_that_are_not_matrices_keep_their_checked_errors():
    good = np.ones((2, 2))
    with pytest.raises(ValueError, match=r"^costs\[1\] must be a 2-D matrix"):
        matching.assign_batch([good, np.ones(3)])
    with pytest.raises(ValueError, match=r"^costs\[2\] must be a 2-D matrix"):
        matching.assign_batch([good, good, np.ones((1, 2, 2))])
    with pytest.raises(TypeError, match=r"^costs\[0\] must hold real numbers"):
        matching.assign_batch([np.array([["a"]]), good])
    with pytest.raises(TypeError, match=r"^costs\[1\] must hold real numbers"):
        matching.assign_batch([good, np.ones((2, 2), complex)])


def test_other_sequences_and_subclasses_take_the_checked_path():
    m = np.array([[4.0, 1.0, 3.0], [2.0, 0.0, 5.0], [3.0, 2.0, 2.0]])
    t = np.ascontiguousarray(m.T)
    want = flat_oracle([m, t], False)

    class Matrices(list):
        pass

    class Sub(np.ndarray):
        pass

    for costs in (Matrices([m, t]), [m, t.view(Sub)]):
        assert _native.assign_list(costs) is None
        res = matching.assign_batch(costs)
        assert np.array_equal(res.rows, want[0]) and np.array_equal(res.cols, want[1])
    assert _native.assign_list(m) is None  # not a list or tuple
    assert _native.assign_list("ab") is None


def test_the_list_binding_releases_the_gil():
    """The solve runs without the GIL (the gather before it holds it)."""
    csipose.set_num_threads(1)
    try:
        big = list(np.random.default_rng(1).random((4000, 24, 24)))
        small = np.random.default_rng(2).random((3, 3))
        out, overlapping, calls = calls_during(
            lambda: _native.assign_list(big), lambda: matching.assign(small)
        )
    finally:
        csipose.set_num_threads(0)
    assert out is not None and len(out[0]) == 4000 * 24
    assert overlapping >= 10, (overlapping, calls)
