"""Training the temporal pose model: configuration, sequences of one recording,
``csipose train model.temporal="sparse"`` end to end, resume, and evaluation over
the same windows as the single-frame model (each run causally from its start)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file

from csipose.cli import main
from csipose.data import Store
from csipose.data.simulate import simulate
from csipose.train import ConfigError, config, train
from csipose.train.data import prepare
from csipose.train.evaluate import load_run
from csipose.train.loop import predict
from csipose.train.sequences import SequenceSampler, runs, training_sequences
from stores import make_store

pytestmark = pytest.mark.usefixtures("restore_torch_threads")


# -- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["model.temporal=lstm"], "model.temporal must be 'none' or 'sparse'"),
        (["model.sequence=0"], "model.sequence must be >= 1"),
        (["model.temporal_options={heads=2}"], "unknown key model.temporal_options.heads"),
        (["model.temporal_options={dim=0}"], "model.temporal_options.dim must be an integer >= 1"),
        (["model.temporal_options={window=-1}"], "model.temporal_options.window must be an integer >= 0"),
        (["model.temporal_options={landmarks=1}"], "model.temporal_options.landmarks must be true or false"),
        (["model.temporal_options={globals=[-1]}"], "model.temporal_options.globals must be a list"),
        (["model.temporal_options={causal=false}"], "model.temporal_options.causal must be true"),
        (["model.temporal_options={q_heads=3,kv_heads=2}"], "q_heads \\(3\\) must be a multiple"),
        (["model.temporal_options={block=0}"], "model.temporal_options.block must be >= 1"),
        (["model.temporal_options={horizon=-1}"], "model.temporal_options.horizon must be an integer >= 0"),
    ],
)  # fmt: skip
def test_bad_temporal_configuration_names_the_key(items, message):
    with pytest.raises(ConfigError, match=message):
        config.load(None, items)


def test_a_horizon_reaches_the_pattern():
    from csipose.train.temporal import options

    assert options(config.load(None, ["model.temporal_options={horizon=48}"]))["pattern"]["horizon"] == 48
    assert options(config.load(None))["pattern"]["horizon"] is None


def test_the_default_is_single_frame():
    cfg = config.load(None)
    assert cfg.model.temporal == "none" and cfg.model.sequence == 32
    assert cfg.model.temporal_options == {}


# -- sequences -----------------------------------------------------------------------------


def oracle_runs(store: Store, idx: np.ndarray) -> list[list[int]]:
    """Runs by a plain loop over the windows: a new run whenever the sequence changes."""
    seq = store.array("sequence")
    out: list[list[int]] = []
    for i in idx.tolist():
        if out and seq[store.windows[out[-1][-1]]] == seq[store.windows[i]]:
            out[-1].append(i)
        else:
            out.append([i])
    return out


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lengths=st.lists(st.integers(1, 12), min_size=1, max_size=4),
    length=st.integers(1, 3),
    stride=st.integers(1, 3),
    holes=st.lists(st.integers(0, 40), max_size=3),
    t=st.integers(1, 6),
    data=st.data(),
)
def test_runs_and_sequences_stay_inside_one_recording(tmp_path_factory, lengths, length, stride,
                                                       holes, t, data):  # fmt: skip
    n = sum(lengths)
    holes = [h for h in holes if h < n]
    path, arrays = make_store(tmp_path_factory.mktemp("s") / "s", tuple(lengths), invalid=holes[:1],
                              gaps=holes[1:], window={"length": length, "stride": stride, "label": "last"})  # fmt: skip
    store = Store.open(path)
    chosen = data.draw(st.sets(st.integers(0, max(len(store) - 1, 0)), max_size=len(store)))
    idx = np.array(sorted(i for i in chosen if i < len(store)), np.int64)
    got = runs(store, idx)
    assert [r.tolist() for r in got] == oracle_runs(store, idx)
    table, real = training_sequences(store, idx, t)
    assert table.shape == real.shape == (sum(max(1, len(r) - t + 1) for r in got), t)
    assert set(table.ravel()) == set(idx.tolist())  # every window is trained on
    starts = store.windows[table]
    seq = arrays["sequence"][starts]
    assert (seq == seq[:, :1]).all()  # one recording (one person) per sequence
    assert (np.diff(table, axis=1) >= 0).all()  # in time order
    # Real windows first, then padding that repeats the last real one.
    assert (np.diff(real.astype(int), axis=1) <= 0).all() and real[:, 0].all()
    last = table[np.arange(len(table)), real.sum(axis=1) - 1]
    assert (np.where(real, True, table == last[:, None])).all()
    assert (np.diff(table, axis=1)[real[:, 1:]] > 0).all()


def test_training_sequences_come_from_the_training_part_only(tmp_path):
    path, _ = make_store(
        tmp_path / "s", (9, 7, 11), window={"length": 1, "stride": 1, "label": "last"}
    )
    store = Store.open(path)
    parts = store.split("halves")
    table, _ = training_sequences(store, parts["train"], 4)
    assert set(table.ravel()) <= set(parts["train"].tolist())
    assert not set(table.ravel()) & set(parts["test"].tolist())


def test_the_sampler_draws_a_seeded_subset_per_epoch():
    a = SequenceSampler(50, 12, seed=3)
    b = SequenceSampler(50, 12, seed=3)
    a.set_epoch(1), b.set_epoch(1)
    assert list(a) == list(b) and len(list(a)) == len(a) == 12 and len(set(a)) == 12
    b.set_epoch(2)
    assert list(a) != list(b)
    shards = [SequenceSampler(50, 12, seed=3, rank=r, world_size=5) for r in range(5)]
    b.set_epoch(1)
    for s in shards:
        s.set_epoch(1)
    # 12 sequences over 5 ranks: 3 each, padded by repetition, covering this epoch's subset.
    assert all(len(list(s)) == 3 for s in shards)
    assert {i for s in shards for i in s} == set(b)


# -- training ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("temporal")
    return simulate(root / "store", environments=2, subjects=4, actions=["walk", "wave", "squat"],
                    frames=12, seed=3)  # fmt: skip


def overrides(store: Path, run: Path, *extra: str) -> list[str]:
    return [
        'data.source="store"', f'data.store="{store}"', f'train.run_dir="{run}"',
        "train.epochs=2", "train.batch_size=16", "train.threads=1", 'model.name="wiflow-tiny"',
        "model.options={input_pw_groups=2}", "train.early_stop=0", 'model.temporal="sparse"',
        "model.sequence=8", "model.temporal_options={dim=16,head_dim=8,window=4,block=2}", *extra,
    ]  # fmt: skip


def weights(run: Path) -> dict[str, torch.Tensor]:
    name = json.loads((run / "checkpoints/latest.json").read_text())["name"]
    return load_file(run / "checkpoints" / name / "model.safetensors")


def history(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("epoch_s", "data_fraction")} for r in rows]


def test_csipose_train_sparse_runs_end_to_end_and_evaluates_every_window(store, tmp_path):
    run = tmp_path / "run"
    assert main(["train", *overrides(store, run)]) == 0
    rows = history(run)
    assert [r["epoch"] for r in rows] == [0, 1]
    assert all(np.isfinite(r["train_loss"]) and np.isfinite(r["val_mpjpe"]) for r in rows)
    model, data, _, ck = load_run(run)
    meta = ck["metadata"]
    assert json.loads(meta["config"])["model"]["temporal"] == "sparse"
    temporal = json.loads(meta["temporal"])
    assert temporal["dim"] == 16 and temporal["sequence"] == 8 and temporal["pattern"]["causal"]
    assert temporal["pattern"]["window"] == 4 and temporal["pattern"]["block"] == 2
    # The attention trained: the head left zero and the projections moved.
    assert model.head.weight.abs().sum() > 0
    for part in ("test", "test_unseen_env"):
        rep = json.loads((run / "eval" / part / "report.json").read_text())
        assert rep["n_samples"] == len(data.parts[part])  # the single-frame model's windows
        assert "causal sparse temporal attention" in rep["model_kind"]
        assert "sparse temporal" in (run / "eval" / part / "report.md").read_text()


@pytest.mark.parametrize("features", ["[]", '["capture_norm"]'])
def test_evaluation_predicts_what_the_stream_predicts(store, tmp_path, features):
    """Each run of the part, causally from its first window, equals streaming it (also
    with the per-room normalisation, which sequences must carry to every window)."""
    extra = ("train.epochs=1", f"data.features={features}")
    run = train(config.load(None, overrides(store, tmp_path / "run", *extra)), progress=False)
    model, data, _, _ = load_run(run)
    idx = data.parts["test"]
    pred = predict(model, data, idx[::-1].copy(), 7, torch.device("cpu"))[::-1]  # any order
    from csipose.train.loop import input_fields, model_input

    pos = 0
    for r in runs(data.store, idx):
        s = model.stream()
        for w in r:
            b = data.store.gather([w], fields=input_fields(data))
            x = model_input({k: torch.from_numpy(v) for k, v in b.items()}, torch.device("cpu"),
                            data.features, data.rooms)  # fmt: skip
            got = s.step(x)[0].numpy() * data.target_scale + data.mean_pose
            np.testing.assert_allclose(pred[pos], got, rtol=1e-4, atol=1e-4)
            pos += 1
    assert pos == len(idx)


def test_resume_continues_bit_identically(store, tmp_path):
    plateau = 'optim.scheduler="plateau"'
    whole = train(config.load(None, overrides(store, tmp_path / "whole", plateau)), progress=False)
    part = tmp_path / "part"
    train(config.load(None, overrides(store, part, plateau, "train.epochs=1")), progress=False)
    train(config.load(None, overrides(store, part, plateau)), resume="auto", progress=False)
    a, b = weights(whole), weights(part)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert history(whole) == history(part)


def test_recordings_shorter_than_the_sequence_are_padded_and_masked(store, tmp_path):
    """T = 16 > the 12-frame recordings: every recording is one padded sequence; the
    padding weighs nothing in the loss, so changing its targets changes nothing."""
    from csipose.train.temporal import TemporalPoseTask

    task = TemporalPoseTask(
        config.load(None, overrides(store, tmp_path / "run", "model.sequence=16"))
    )
    task.build()
    task.start()
    batch = next(iter(task.batches(0)[1]))
    assert (
        batch["amplitude"].shape[1] == 16 and not batch["real"].all() and batch["real"][:, 0].all()
    )
    torch.manual_seed(0)  # the same dropout draws in both passes
    a = task.loss(batch)["loss"]
    batch["keypoints"][~batch["real"]] = 1e6
    torch.manual_seed(0)
    assert torch.equal(task.loss(batch)["loss"], a)
    batch["keypoints"][batch["real"]] += 1.0  # the real windows do count
    torch.manual_seed(0)
    assert not torch.equal(task.loss(batch)["loss"], a)


def test_one_run_per_recording_of_the_simulator(store):
    data = prepare(config.load(None, ['data.source="store"', f'data.store="{store}"']), store)
    seq = data.store.array("sequence")
    valid = data.store.array("valid")
    for idx in data.parts.values():
        got = runs(data.store, idx)
        assert len(got) == len(np.unique(seq[data.store.windows[idx]]))
        for r in got:  # all the recording's valid frames (windows of one frame)
            assert len(r) == valid[seq == seq[data.store.windows[r[0]]]].sum()
