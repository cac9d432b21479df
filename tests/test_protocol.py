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


def test_summary_over_rooms_matches_numpy():
    from csipose.metrics import by_group

    rng = np.random.default_rng(0)
    m, b = rng.uniform(0.1, 1, 5), rng.uniform(0.1, 1, 5)
    s = by_group.summarise(
        {f"E{i}": {"mpjpe": (m[i], b[i]), "ece": (None, b[i])} for i in range(5)}
    )
    for what, v in (("model", m), ("baseline", b), ("ratio", m / b)):
        got = s["summary"]["mpjpe"][what]
        assert got["mean"] == pytest.approx(v.mean()) and got["std"] == pytest.approx(v.std())
        assert (got["min"], got["max"], got["n"]) == (
            pytest.approx(v.min()),
            pytest.approx(v.max()),
            5,
        )
    assert s["summary"]["ece"]["model"]["n"] == 0 and s["groups"]["E0"]["ece"]["ratio"] is None
    assert "| **mean** |" in by_group.to_markdown(s)


def test_eval_reports_each_unseen_room_beside_the_baselines(stores, tmp_path):
    from csipose.count.evaluate import evaluate as count_evaluate
    from csipose.count.train import train as count_train
    from csipose.train.evaluate import evaluate
    from csipose.train.loop import train

    common = ["data.split=rooms", 'data.test_parts=["test","unseen"]', "train.threads=1",
              "train.early_stop=0", "train.max_steps=2"]  # fmt: skip
    run = train(pose_config.load(None, [*common, 'data.source="store"', f'data.store="{stores[0]}"',
                                        f'train.run_dir="{tmp_path / "pose"}"', "train.epochs=1",
                                        'model.name="wiflow-tiny"', "model.options={input_pw_groups=2}"]),
                progress=False)  # fmt: skip
    evaluate(run, "unseen")
    rep = __import__("json").loads((run / "eval/unseen/report.json").read_text())
    rooms = rep["by_room"]
    assert len(rooms["groups"]) == protocol.UNSEEN_ROOMS
    per = [g["mpjpe"]["model"] for g in rooms["groups"].values()]
    assert rooms["summary"]["mpjpe"]["model"]["mean"] == pytest.approx(np.mean(per))
    for name, g in rooms["groups"].items():
        r = rep["by_environment"][name]
        assert g["mpjpe"]["baseline"] == r["mean_pose_baseline"]["mpjpe"]["value"]
        assert g["mpjpe"]["ratio"] == pytest.approx(g["mpjpe"]["model"] / g["mpjpe"]["baseline"])
        assert g["pck@20"]["baseline"] is not None  # its ratio is null when the baseline scores 0

    crun = tmp_path / "count"
    count_train(count_config.load(None, [*common, 'data.source="store"', f'data.store="{stores[1]}"',
                                         f'train.run_dir="{crun}"', "train.epochs=1"]))  # fmt: skip
    crep = count_evaluate(crun, "unseen")
    assert len(crep["by_room"]["groups"]) == protocol.UNSEEN_ROOMS
    maes = [r["model"]["mae"]["value"] for r in crep["by_environment"].values()]
    assert crep["by_room"]["summary"]["mae"]["model"]["mean"] == pytest.approx(np.mean(maes))
    assert "| **std** |" in (crun / "count_eval/unseen/report.md").read_text()


def test_capture_norm_normalises_each_room_by_its_own_windows(stores):
    cfg = count_config.load(None, ["data.split=rooms", 'data.test_parts=["test","unseen"]',
                                   'data.features=["static_removal","capture_norm"]'])  # fmt: skip
    data = count_data.prepare(cfg, stores[1])
    for part in ("val", "unseen"):
        x, _ = data.windows(part)
        rooms = data.store.gather(data.parts[part], fields=["environment"])["environment"]
        for r in np.unique(rooms):
            # Every window of the room is in this part, so the room's statistics are exactly these.
            xs = x[rooms == r].transpose(1, 0, 2).reshape(56, -1)
            np.testing.assert_allclose(xs.mean(1), 0, atol=1e-4)
            np.testing.assert_allclose(xs.std(1), 1, atol=1e-3)
    assert "features" in data.zscore_source and data.metadata()["features"] == cfg.data.features


def test_pose_capture_norm_normalises_each_room_by_its_own_windows(stores):
    """The pose input of every window of a room (here the validation room and the unseen
    rooms, whose windows are all in one part) is z-scored by that room's own amplitude."""
    import torch

    from csipose.train.loop import input_fields, model_input

    cfg = pose_config.load(None, ["data.split=rooms", 'data.test_parts=["test","unseen"]',
                                  'data.features=["capture_norm"]'])  # fmt: skip
    data = prepare(cfg, stores[0])
    assert data.rooms is not None and len(data.rooms.codes) == 7
    for part in ("val", "unseen"):
        b = data.store.gather(data.parts[part], fields=input_fields(data))
        with torch.no_grad():
            x = model_input({k: torch.from_numpy(v) for k, v in b.items()}, torch.device("cpu"),
                            data.features, data.rooms).numpy()  # fmt: skip
        amp = int(np.prod(b["amplitude"].shape[2:4]))  # the amplitude channels come first
        for r in np.unique(b["environment"]):
            xs = x[b["environment"] == r, :amp].transpose(1, 0, 2).reshape(amp, -1)
            np.testing.assert_allclose(xs.mean(1), 0, atol=1e-4)
            np.testing.assert_allclose(xs.std(1), 1, atol=1e-3)


def test_shipped_unseen_room_configs_load():
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "configs"
    for f in sorted(root.glob("unseen-rooms*.toml")):
        cfg = (count_config if "count" in f.name else pose_config).load(f)
        assert cfg.data.split == "rooms" and "unseen" in cfg.data.test_parts, f
