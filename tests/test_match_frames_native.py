"""match_frames' list form in two native calls: the frames' poses stacked
(`_native.stack_people`, against the numpy stacking it replaces) and the
flat result split into PersonMatch objects (`_native.person_matches`, against
`FrameMatches._frame`). Both return None off the plain case, for the Python
path."""

from __future__ import annotations

import dataclasses

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from csipose import _native, matching
from csipose.matching import FrameMatches, PersonMatch
from test_matching_flat import _flat, frames

# float32's edges: the largest float32, the float64 just below the point that
# rounds to infinity and the one at it, subnormals and below.
EDGES = [0.0, -0.0, 1.0, -2.5, 1e300, -1e300, 3.4028234663852886e38, 3.4028235677973362e38,
         3.4028235677973366e38, 1e-45, 7e-46, 1e-320, np.nan, np.inf, -np.inf]  # fmt: skip


@st.composite
def pose_lists(draw):
    """Frames of one K, D, each float32 or float64, with float32's edge values."""
    k, d = draw(st.integers(1, 4)), draw(st.sampled_from([2, 3]))
    counts = draw(st.lists(st.integers(0, 4), min_size=1, max_size=8))
    out = []
    for n in counts:
        dtype = draw(st.sampled_from([np.float32, np.float64]))
        with np.errstate(over="ignore", under="ignore"):
            out.append(
                draw(hnp.arrays(dtype, (n, k, d), elements=st.sampled_from(EDGES))).astype(dtype)
            )
    return out


def bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, np.float32).view(np.uint32)


@given(arrays=pose_lists())
def test_stacked_people_equal_numpy_to_the_bit(arrays):
    got = _native.stack_people(arrays)
    assert got is not None
    poses, counts = got
    with np.errstate(over="ignore"):  # numpy warns where float32 overflows; Rust does not
        want_poses, want_counts = matching._numpy_people(arrays, len(arrays))
    assert poses.dtype == np.float32 and poses.shape == want_poses.shape
    assert np.array_equal(bits(poses), bits(want_poses))
    assert counts.dtype == np.int64 and np.array_equal(counts, want_counts)


def test_other_frames_are_left_to_numpy():
    a = np.zeros((2, 3, 2))
    for frames_ in (
        [],
        [a, np.zeros((2, 3, 2), np.int64)],
        [a, np.zeros((1, 4, 2))],  # another K
        [np.zeros((1, 0, 2))],  # no joints
        [np.zeros((1, 3, 4))],  # D = 4
        [np.zeros((1, 3))],
        [a, np.asfortranarray(np.zeros((2, 3, 2)))],
        [a, np.zeros((4, 3, 2))[::2]],
        [a, np.zeros((2, 3, 2), ">f8")],
        [a, np.zeros((2, 3, 2)).view(np.recarray)],
        [a, [[[0.0, 0.0]] * 3]],
    ):
        assert _native.stack_people(frames_) is None, frames_
    with pytest.raises(TypeError):
        _native.stack_people((a, a))  # only a list: match_frames makes one


@given(
    counts=st.lists(st.integers(0, 5), min_size=1, max_size=8),
    kd=st.tuples(st.integers(1, 4), st.sampled_from([2, 3])),
    seed=st.integers(0, 2**32 - 1),
    data=st.data(),
)
def test_match_frames_on_either_stacking_agree(counts, kd, seed, data):
    """Every frame the same, whether the frames are stacked natively or (one
    frame made int, which only numpy takes) by numpy."""
    rng = np.random.default_rng(seed)
    as_int = [rng.integers(-9, 10, (n, *kd)) for n in counts]
    preds = [a.astype(data.draw(st.sampled_from([np.float32, np.float64]))) for a in as_int]
    gts = [rng.random((n, *kd)) for n in reversed(counts)]
    b = data.draw(st.integers(0, len(preds) - 1))
    mixed = [*preds[:b], as_int[b], *preds[b + 1 :]]
    assert _native.stack_people([*preds, *gts]) is not None
    assert _native.stack_people([*mixed, *gts]) is None
    for cost in ("distance", "oks"):
        sigmas = np.full(kd[0], 0.07)
        if cost == "oks" and kd[1] == 3:
            continue
        got = matching.match_frames(mixed, gts, cost=cost, threshold=None, sigmas=sigmas)
        want = matching.match_frames(preds, gts, cost=cost, threshold=None, sigmas=sigmas)
        assert len(got) == len(want) == len(preds)
        for x, y in zip(got, want, strict=True):
            for field in ("pred", "gt", "values", "false_positives", "missed", "matrix"):
                np.testing.assert_array_equal(getattr(x, field), getattr(y, field))


FIELDS = ("pred", "gt", "values", "false_positives", "missed", "matrix")


def assert_same_frames(got: list, want: list) -> None:
    assert len(got) == len(want)
    for x, y in zip(got, want, strict=True):
        assert type(x) is PersonMatch
        assert list(vars(x)) == list(vars(y))
        for field in FIELDS:
            a, b = getattr(x, field), getattr(y, field)
            assert type(a) is np.ndarray and a.dtype == b.dtype and a.shape == b.shape, field
            assert np.array_equal(a, b, equal_nan=True), field
        for field in ("measure", "threshold", "definition"):
            assert getattr(x, field) is getattr(y, field)
        assert (x.n_pred, x.n_gt, x.n_matched) == (y.n_pred, y.n_gt, y.n_matched)
        with pytest.raises(dataclasses.FrozenInstanceError):
            x.pred = None


def python_frames(flat: FrameMatches) -> list:
    bounds = flat._bounds(0, len(flat))
    return [flat._frame(f, bounds) for f in range(len(flat))]


@given(
    data=frames(),
    cost=st.sampled_from(["oks", "distance"]),
    threshold=st.sampled_from([None, 0.3, 0.6]),
)
def test_person_matches_equal_the_python_frames(data, cost, threshold):
    preds, gts = data
    sigmas = np.full(preds[0].shape[1], 0.07) if preds else matching._skeleton.COCO17
    if not preds and cost == "oks":
        cost = "distance"
    flat = matching.match_frames_flat(
        *_flat(preds, gts), cost=cost, threshold=threshold, sigmas=sigmas
    )
    got = _native.person_matches(flat, PersonMatch)
    assert got is not None
    assert_same_frames(got, python_frames(flat))
    assert_same_frames(flat.frames(), python_frames(flat))
    # Copies: a frame's arrays do not write through to the flat result.
    if len(flat.pred):
        first = next(m for m in got if len(m.pred))
        first.pred[0] = -7
        assert (flat.pred != -7).all()


def hand_made(**changes) -> FrameMatches:
    preds = [np.zeros((2, 3, 2)), np.ones((1, 3, 2))]
    gts = [np.ones((2, 3, 2)), np.zeros((3, 3, 2))]
    flat = matching.match_frames_flat(*_flat(preds, gts), cost="distance", threshold=None)
    return dataclasses.replace(flat, **changes)


@pytest.mark.parametrize(
    "changes",
    [
        {"offsets": np.array([0, 2, 3], np.int32)},
        {"matrices": np.zeros(9, np.float32)},
        {"pred": np.arange(6, dtype=np.int64)[::2]},
        {"offsets": np.array([0, 3, 2])},  # decreasing
        {"offsets": np.array([0, 2, 99])},  # past the end
        {"fp_offsets": np.array([-1, 0, 0])},
        {"missed_offsets": np.array([0, 0])},  # a frame short
        {"n_gt": np.array([2, 2])},  # a matrix block that is not n_pred x n_gt
        {"n_pred": np.array([3, 1])},
    ],
)
def test_fields_that_do_not_fit_take_the_python_path(changes):
    flat = hand_made(**changes)
    assert _native.person_matches(flat, PersonMatch) is None
    try:
        want = python_frames(flat)
    except (ValueError, IndexError) as e:
        with pytest.raises(type(e)):
            flat.frames()
        return
    assert_same_frames(flat.frames(), want)


def test_a_consistent_hand_made_result_takes_the_native_path():
    flat = hand_made()
    assert _native.person_matches(flat, PersonMatch) is not None
    assert _native.person_matches(object(), PersonMatch) is None
