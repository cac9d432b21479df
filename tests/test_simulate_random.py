"""Domain randomisation in the simulator: deterministic in the seed, different
rooms per training sequence, held-out rooms fixed (the pinned default output:
test_simulate_impair.py)."""

from __future__ import annotations

import numpy as np
import pytest

from csipose.data import Store
from csipose.data.simulate import simulate

SMALL = {
    "environments": 6,
    "subjects": 2,
    "actions": ["walk", "squat"],
    "frames": 6,
    "progress": False,
}


def _arrays(path) -> dict[str, np.ndarray]:
    s = Store.open(path)
    return {f: np.asarray(s.array(f)) for f in s.fields}


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    root = tmp_path_factory.mktemp("simr")
    return root, simulate(root / "a", room_draw="per_sequence", seed=3, **SMALL)


def test_drawn_rooms_are_bit_identical_for_a_seed_and_differ_between_seeds(drawn):
    root, first = drawn
    again = simulate(root / "b", room_draw="per_sequence", seed=3, **SMALL)
    other = simulate(root / "c", room_draw="per_sequence", seed=4, **SMALL)
    a, b, c = _arrays(first), _arrays(again), _arrays(other)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert not np.array_equal(a["amplitude"], c["amplitude"], equal_nan=True)


def test_every_training_sequence_gets_its_own_room_and_held_out_rooms_stay_fixed(drawn):
    _, path = drawn
    s = Store.open(path)
    names = s.manifest["metadata"]["environment"]
    env, seq = s.array("environment"), s.array("sequence")
    room_of = {}
    for code in np.unique(seq):
        rooms = {names[e] for e in np.unique(env[seq == code])}
        assert len(rooms) == 1
        room_of[s.manifest["metadata"]["sequence"][code]] = rooms.pop()
    e01 = [r for q, r in room_of.items() if q.startswith("E01/")]
    assert len(e01) == len(set(e01)) == 2 * 2  # subjects x actions, one room each
    assert all(r.startswith("E01-r") for r in e01)
    for room in ("E02", "E03", "E04", "E05", "E06"):  # validation and unseen rooms: fixed
        assert {r for q, r in room_of.items() if q.startswith(room + "/")} == {room}
    drawn_rooms = s.manifest["provenance"]["drawn_rooms"]
    assert len(drawn_rooms) == len(e01)
    assert len({tuple(d["size_m"]) for d in drawn_rooms}) == len(drawn_rooms)


def test_fixed_rooms_of_validation_and_unseen_match_a_fixed_simulation(drawn, tmp_path):
    """Only the training rooms are drawn: the protocol's held-out rooms are the same
    data as without randomisation, so both trainings meet the same unseen rooms."""
    _, path = drawn
    fixed = simulate(tmp_path / "f", seed=3, **SMALL)
    a, b = Store.open(path), Store.open(fixed)
    for s in (a, b):
        assert set(s.split("rooms")) == {"train", "val_people", "val", "test", "unseen"}
    ea, eb = a.array("environment"), b.array("environment")
    na, nb = a.manifest["metadata"]["environment"], b.manifest["metadata"]["environment"]
    for room in ("E02", "E06"):
        ra, rb = ea == na.index(room), eb == nb.index(room)
        np.testing.assert_array_equal(a.array("amplitude")[ra], b.array("amplitude")[rb])
        np.testing.assert_array_equal(a.array("keypoints")[ra], b.array("keypoints")[rb])


def test_room_draw_is_checked(tmp_path):
    with pytest.raises(ValueError, match="room_draw"):
        simulate(tmp_path / "x", room_draw="sometimes", **SMALL)
    with pytest.raises(ValueError, match="at least 6 rooms"):
        simulate(tmp_path / "y", room_draw="per_sequence", **{**SMALL, "environments": 4})


def test_cli_simulate_per_sequence_rooms(tmp_path, capsys):
    from csipose.cli import main

    assert main(["simulate", str(tmp_path / "c"), "--environments", "6", "--subjects", "1",
                 "--actions", "wave", "--frames", "3", "--rooms", "per_sequence"]) == 0  # fmt: skip
    assert "wrote store" in capsys.readouterr().out
    assert len(Store.open(tmp_path / "c").manifest["provenance"]["drawn_rooms"]) == 1
