"""The leave-rooms-out protocol: on the split itself, no unseen room ever
reaches training, validation, the in-room test or calibration, for pose and
for counting data."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from csipose.count import config as count_config
from csipose.count import data as count_data
from csipose.data import Store, protocol
from csipose.data.simulate import simulate
from csipose.train import config as pose_config
from csipose.train.data import prepare


@given(st.integers(6, 30), st.integers(1, 6), st.data())
def test_every_sequence_is_in_exactly_one_part_and_unseen_rooms_are_the_last(rooms, groups, data):
    n = data.draw(st.integers(1, 200))
    room = np.array(data.draw(st.lists(st.integers(0, rooms - 1), min_size=n, max_size=n)))
    group = np.array(data.draw(st.lists(st.integers(0, groups - 1), min_size=n, max_size=n)))
    p = protocol.parts(room, group, rooms, groups)
    assert (sum(m.astype(int) for m in p.values()) == 1).all()
    np.testing.assert_array_equal(p["unseen"], room >= rooms - protocol.UNSEEN_ROOMS)
    seen = p["train"] | p["val"] | p["test"]
    assert set(room[seen]).isdisjoint(set(room[p["unseen"]]))
    assert set(room[p["val"]]).isdisjoint(set(room[p["train"] | p["test"]]))
    assert (group[p["test"]] == groups - 1).all()


def test_too_few_rooms_is_an_error():
    with pytest.raises(ValueError, match="at least 6 rooms"):
        protocol.room_roles(5)
    assert protocol.room_roles(6) == ["train", "val", "unseen", "unseen", "unseen", "unseen"]


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("protocol")
    pose = simulate(root / "pose", environments=7, subjects=3, actions=["walk", "squat"], frames=6,
                    progress=False)  # fmt: skip
    count = simulate(root / "count", profile="esp32", environments=6, subjects=3, sequences=2,
                     frames=40, progress=False)  # fmt: skip
    return pose, count


def test_the_written_split_keeps_unseen_rooms_out(stores):
    for path in stores:
        rooms = protocol.check(Store.open(path))
        assert len(rooms["unseen"]) == protocol.UNSEEN_ROOMS
        assert rooms["val"] and rooms["train"] and rooms["test"]
        assert rooms["val"].isdisjoint(rooms["train"])


def _rooms(store: Store, idx: np.ndarray) -> set[str]:
    names = np.array(store.manifest["metadata"]["environment"])
    env = store.gather(np.asarray(idx, np.int64), fields=["environment"])["environment"]
    return set(names[env].tolist())


def test_pose_training_sees_no_unseen_room(stores):
    cfg = pose_config.load(None, ["data.split=rooms", 'data.test_parts=["test","unseen"]'])
    data = prepare(cfg, stores[0])
    unseen = _rooms(data.store, data.parts["unseen"])
    assert len(unseen) == protocol.UNSEEN_ROOMS
    # Training, early stopping (val), z-score statistics and the mean pose come from these parts.
    for part in (cfg.data.train_part, cfg.data.val_part, "test"):
        assert _rooms(data.store, data.parts[part]).isdisjoint(unseen), part
    assert "part train" in data.store.transform["amplitude"].zscore.source


def test_counting_training_and_calibration_see_no_unseen_room(stores):
    cfg = count_config.load(None, ["data.split=rooms", 'data.test_parts=["test","unseen"]'])
    data = count_data.prepare(cfg, stores[1])
    unseen = _rooms(data.store, data.parts["unseen"])
    assert len(unseen) == protocol.UNSEEN_ROOMS
    # Training windows (their own stride), and validation: early stopping and calibration.
    assert _rooms(data.train_store, data.train_windows).isdisjoint(unseen)
    for part in (cfg.data.val_part, "test"):
        assert _rooms(data.store, data.parts[part]).isdisjoint(unseen), part
    assert "part train" in data.zscore_source
