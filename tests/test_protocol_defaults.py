"""The leave-rooms-out protocol is the default evaluation of the built-in jobs:
the default configurations simulate enough rooms for it, resolve to it, and on
the split of the default sizes no unseen room reaches a part a model may look
at (training, early stopping, calibration, the in-room test)."""

from __future__ import annotations

import numpy as np
import pytest

from csipose.count import config as count_config
from csipose.count import data as count_data
from csipose.data import Store, protocol
from csipose.data.simulate import ACTIONS, PROFILES, _plan, simulate
from csipose.train import config as pose_config
from csipose.train.data import prepare


def _default_masks(profile: str, environments: int, subjects: int, sequences: int):
    """The rooms split of a default-sized simulation, from the simulator's own plan
    (no CSI is synthesised)."""
    p = PROFILES[profile]
    plan = _plan(p, environments, subjects, list(ACTIONS), sequences)
    room = np.array([s.env for s in plan])
    group = np.array([s.group for s in plan])
    groups = subjects if p.max_people == 1 else sequences
    return room, protocol.parts(room, group, environments, groups, people_val=p.max_people == 1)


@pytest.mark.parametrize("job", ["pose", "count"])
def test_default_sizes_hold_out_four_unseen_rooms_a_validation_room_and_people(job):
    if job == "pose":
        d = pose_config.load().data
        room, masks = _default_masks(d.profile, d.environments, d.subjects, 1)
        assert masks["val_people"].any()
    else:
        c = count_config.load().data
        room, masks = _default_masks("esp32", c.environments, c.subjects, c.sequences)
    assert (sum(m.astype(int) for m in masks.values()) == 1).all()
    unseen = set(room[masks["unseen"]].tolist())
    val = set(room[masks["val"]].tolist())
    train = set(room[masks["train"]].tolist())
    assert len(unseen) >= 4 and len(val) == 1 and len(train) >= 2
    for part, m in masks.items():
        if part != "unseen":
            assert set(room[m].tolist()).isdisjoint(unseen), part
    assert val.isdisjoint(train)
    assert set(room[masks["test"]].tolist()) == train  # held-out people in every training room


def test_default_configs_ask_for_the_protocol():
    pose, count = pose_config.load().data, count_config.load().data
    assert (pose.split, pose.val_part, pose.test_parts) == ("auto", "auto", ["auto"])
    assert (count.split, count.val_part, count.test_parts) == ("auto", "val", ["auto"])
    assert count.features == ["static_removal"]


def test_resolve_fills_in_the_defaults_from_the_store():
    rooms = ["train", "val_people", "val", "test", "unseen"]
    assert protocol.resolve_split("auto", {"rooms": 0, "default": 0}) == "rooms"
    assert protocol.resolve_split("auto", {"default": 0}) == "default"
    assert protocol.resolve_split("cross-environment", {"rooms": 0}) == "cross-environment"
    assert protocol.resolve_parts("auto", ["auto"], rooms) == (
        "val_people",
        ["val", "test", "unseen"],
    )
    assert protocol.resolve_parts("val", ["auto"], rooms) == (
        "val",
        ["val_people", "test", "unseen"],
    )
    default = ["train", "val", "test", "test_unseen_env"]
    assert protocol.resolve_parts("auto", ["auto"], default) == ("val", ["test", "test_unseen_env"])
    # Named choices are kept as given.
    assert protocol.resolve_parts("val", ["test"], rooms) == ("val", ["test"])


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("defaults")
    pose = simulate(root / "pose", environments=6, subjects=3, actions=["walk"], frames=4,
                    progress=False)  # fmt: skip
    small = simulate(root / "small", environments=2, subjects=3, actions=["walk"], frames=4,
                     progress=False)  # fmt: skip
    count = simulate(root / "count", profile="esp32", environments=6, subjects=2, sequences=2,
                     frames=40, progress=False)  # fmt: skip
    return pose, small, count


def _rooms(store: Store, idx: np.ndarray) -> set[str]:
    names = np.array(store.manifest["metadata"]["environment"])
    env = store.gather(np.asarray(idx, np.int64), fields=["environment"])["environment"]
    return set(names[env].tolist())


def test_pose_defaults_train_and_stop_on_seen_rooms_and_report_the_unseen(stores):
    cfg = pose_config.load()
    data = prepare(cfg, stores[0])
    d = cfg.data
    assert (d.split, d.val_part, d.test_parts) == ("rooms", "val_people", ["val", "test", "unseen"])
    unseen = _rooms(data.store, data.parts["unseen"])
    assert len(unseen) == protocol.UNSEEN_ROOMS
    for part in ("train", "val_people", "val", "test"):
        assert _rooms(data.store, data.parts[part]).isdisjoint(unseen), part
    # Early stopping on held-out people of the training rooms, not on the validation room.
    assert _rooms(data.store, data.parts["val_people"]) == _rooms(data.store, data.parts["train"])
    assert "part train" in data.store.transform["amplitude"].zscore.source


def test_pose_defaults_fall_back_to_the_default_split_on_a_small_store(stores):
    cfg = pose_config.load()
    prepare(cfg, stores[1])
    assert (cfg.data.split, cfg.data.val_part, cfg.data.test_parts) == (
        "default", "val", ["test", "test_unseen_env"])  # fmt: skip


def test_count_defaults_calibrate_on_the_validation_room_only(stores):
    cfg = count_config.load()
    data = count_data.prepare(cfg, stores[2])
    d = cfg.data
    assert (d.split, d.val_part, d.test_parts) == ("rooms", "val", ["test", "unseen"])
    unseen = _rooms(data.store, data.parts["unseen"])
    assert len(unseen) == protocol.UNSEEN_ROOMS
    assert _rooms(data.train_store, data.train_windows).isdisjoint(unseen)
    for part in ("val", "test"):
        assert _rooms(data.store, data.parts[part]).isdisjoint(unseen), part
