"""No Rust panic may reach Python from the matching and COCO-evaluation
bindings or their wrappers (the method of tests/test_bindings_fuzz.py)."""

from __future__ import annotations

import hypothesis.extra.numpy as hnp
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from csipose import _native, matching, metrics
from test_bindings_fuzz import SMALL_INTS, VALUES, arrays, survives

ANY = arrays()


@given(cost=ANY, partial=st.booleans(), shapes=arrays(ndim=2))
def test_assign_bindings_never_panic(cost, partial, shapes):
    survives(_native.assign, cost, partial)
    survives(_native.assign_general, cost, partial)
    survives(_native.assign_batch, cost, shapes, partial)
    survives(_native.assign_padded, cost, shapes, partial)
    survives(_native.assign_padded, cost, None, partial)
    if getattr(cost, "size", 0) > 10**5:
        return  # the wrappers would copy and solve 10^7 rows: correct, but seconds per call
    survives(matching.assign, cost, partial=partial)
    survives(matching.assign_batch, cost, partial=partial)
    survives(matching.assign_batch, [cost, cost], partial=partial)
    survives(matching.assign_batch, cost, partial=partial, sizes=shapes)


@given(data=st.data(), partial=st.booleans())
def test_assign_list_binding_never_panics(data, partial):
    """Lists and tuples of anything, and of float64 matrices (which the
    binding reads itself) with NaN, infinities and empty sides."""
    if data.draw(st.booleans()):
        shapes = st.tuples(st.integers(0, 4), st.integers(0, 4))
        item = shapes.flatmap(lambda s: hnp.arrays(np.float64, s, elements=st.sampled_from(VALUES)))
    else:
        item = arrays()
    items = data.draw(st.lists(item, max_size=5))
    for costs in (items, tuple(items), data.draw(arrays())):
        survives(_native.assign_list, costs, partial)
        big = [getattr(c, "size", 0) > 10**5 for c in (costs, *items)]
        if not any(big):  # a broadcast of 10^7 rows: seconds of correct copying and solving
            survives(matching.assign_batch, costs, partial=partial)


@given(data=st.data())
def test_match_frames_list_bindings_never_panic(data):
    """stack_people on lists of anything and of float arrays of near-valid
    shapes; person_matches on FrameMatches of anything and of small int64 /
    float64 arrays whose offsets and counts may or may not fit."""
    if data.draw(st.booleans()):
        shapes = st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(1, 4))
        dtypes = st.sampled_from([np.float32, np.float64])
        item = st.tuples(dtypes, shapes).flatmap(
            lambda a: hnp.arrays(a[0], a[1], elements=st.sampled_from(VALUES))
        )
    else:
        item = arrays()
    with np.errstate(over="ignore"):
        frames = data.draw(st.lists(item, max_size=5))
    survives(_native.stack_people, frames)
    survives(_native.stack_people, data.draw(arrays()))
    if data.draw(st.booleans()):
        ints = hnp.arrays(np.int64, st.integers(0, 5), elements=st.integers(-2, 6))
        floats = hnp.arrays(np.float64, st.integers(0, 9), elements=st.sampled_from(VALUES))
        fields = [data.draw(floats if i in (2, 8) else ints) for i in range(12)]
    else:
        fields = [data.draw(arrays()) for _ in range(12)]
    flat = matching.FrameMatches(*fields, measure="distance", threshold=None, definition="d")
    survives(_native.person_matches, flat, matching.PersonMatch)
    survives(_native.person_matches, data.draw(arrays()), matching.PersonMatch)


@given(data=st.data())
def test_coco_eval_bindings_never_panic(data):
    a = [data.draw(ANY) for _ in range(8)]
    survives(_native.oks_matrices, *a[:7], bbox=a[7])
    survives(_native.greedy_match, *a[:6])


@given(p=ANY, g=ANY, v=ANY, area=ANY, data=st.data())
def test_public_multi_person_wrappers_never_panic(p, g, v, area, data):
    threshold = data.draw(st.sampled_from([None, 0.5, -1.0, float("nan"), 10.0]))
    cost = data.draw(st.sampled_from(["oks", "distance", "x"]))
    survives(matching.match_people, p, g, cost=cost, threshold=threshold, gt_visible=v, areas=area)
    survives(matching.match_frames, [p, p], [g, g], cost=cost, threshold=threshold)
    survives(metrics.multi_person_metrics, [p], [g], cost=cost, threshold=threshold)
    survives(metrics.oks_ap, [(p, area)], [(g, v, area)], max_dets=data.draw(SMALL_INTS))
    survives(metrics.oks_ap, [(p, area)], [(g, v, area, data.draw(ANY), data.draw(ANY))])
