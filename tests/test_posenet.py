"""csipose.PoseNet (Rust) against the torch models: every preset and the MM-Fi
variant with random weights at batch 1, 7 and 64; a briefly trained checkpoint
end to end from raw store windows; broken checkpoints and wrong windows."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import csipose
from csipose.cli import main
from csipose.data import CsiTransform, Store
from csipose.data.simulate import simulate
from csipose.errors import CheckpointError
from csipose.runtime import posenet as runtime_posenet
from posenet_checkpoints import CASES, metadata, random_checkpoint, write

pytestmark = pytest.mark.usefixtures("restore_torch_threads")
TOL = 1e-4  # max abs difference, standardised units


def torch_out(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_random_weights_match_torch(tmp_path, case):
    torch.set_num_threads(1)
    file, model = random_checkpoint(tmp_path, case)
    net = csipose.PoseNet.load(file)
    name, c, t, k, d, _ = case
    assert net.input_shape == (c, t) and net.output_shape == (k, d)
    rng = np.random.default_rng(0)
    batches = (1, 7) if name == "wiflow-full" else (1, 7, 64)
    for b in batches:
        x = rng.normal(0, 1, (b, c, t)).astype(np.float32)
        got, want = net.forward(x), torch_out(model, x)
        assert got.shape == want.shape == (b, k, d)
        diff = float(np.max(np.abs(got - want)))
        assert diff <= TOL, f"{name} batch {b}: max abs difference {diff:.3g}"


def test_trainer_defaults_match_the_torch_side():
    from csipose.models.wiflow import WiFlowSTDConfig

    assert WiFlowSTDConfig().min_feature_width == runtime_posenet.MIN_FEATURE_WIDTH
    # csipose.train.loop.build_model turns the output SiLU off unless options say otherwise.
    import inspect

    from csipose.train import loop

    assert 'setdefault("output_activation", False)' in inspect.getsource(loop.build_model)
    assert runtime_posenet.OUTPUT_ACTIVATION is False


# -- a briefly trained checkpoint, from raw store windows -----------------------------------


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("posenet")
    return simulate(
        root / "store", environments=2, subjects=4, actions=["walk", "wave"], frames=16, seed=5
    )


def train_run(store: Path, run: Path, *extra: str) -> Path:
    args = [
        'data.source="store"',
        f'data.store="{store}"',
        f'train.run_dir="{run}"',
        "train.epochs=1",
        "train.batch_size=16",
        "train.threads=1",
        "train.early_stop=0",
        *extra,
    ]
    assert main(["train", *args, "--no-eval"]) == 0
    return run


@pytest.mark.parametrize(
    "extra",
    [
        (
            'model.name="wiflow-tiny"',
            "model.options={input_pw_groups=2}",
        ),  # amplitude+phase, z-score
        ('model.name="wiflow-mmfi"', 'data.inputs="amplitude"'),
        (
            'model.name="wiflow-tiny"',
            "model.options={input_pw_groups=2}",
            'data.inputs="amplitude"',
            'data.subcarriers="linear:30"',
            "data.minmax=false",
        ),
    ],
    ids=["tiny-phase", "mmfi-amplitude", "tiny-map"],
)
def test_trained_checkpoint_predicts_as_training_does(tmp_path, store, extra):
    from csipose.train import checkpoint as ck
    from csipose.train.config import load as load_config
    from csipose.train.data import prepare
    from csipose.train.loop import build_model, input_fields, predict

    torch.set_num_threads(1)
    run = train_run(store, tmp_path / "run", *extra)
    net = csipose.PoseNet.load(run)
    cfg = load_config(
        None, [f'train.run_dir="{run}"', 'data.source="store"', f'data.store="{store}"', *extra]
    )
    data = prepare(cfg, store)
    model = build_model(data, cfg)
    model.load_state_dict(ck.load(run)["tensors"])
    idx = data.parts[cfg.data.val_part][:64]
    want = predict(model, data, idx, 64, torch.device("cpu"))
    raw = data.store.with_options(transform={"amplitude": CsiTransform()})  # PoseNet transforms
    b = raw.gather(idx, fields=input_fields(data))
    got = net.predict(b["amplitude"], b.get("phase"))
    diff = float(np.max(np.abs(got - want)))
    assert diff <= TOL * data.target_scale, diff
    # One window without the batch axis.
    one = net.predict(b["amplitude"][0], None if "phase" not in b else b["phase"][0])
    np.testing.assert_allclose(one[0], got[0], atol=1e-6)


# -- broken checkpoints and wrong windows ---------------------------------------------------

CASE = ("wiflow-tiny", 120, 10, 15, 2, {"input_pw_groups": 4})


def rewrite(file: Path, change) -> Path:
    tensors = load_file(file)
    from safetensors import safe_open

    with safe_open(file, "pt") as f:
        meta = f.metadata()
    change(tensors)
    save_file(tensors, file, metadata=meta)
    return file


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda t: t.pop("up.block.4.bias"), ["up.block.4.bias"]),
        (
            lambda t: t.update({"decoder.3.weight": torch.zeros(2, 9, 1, 1)}),
            ["decoder.3.weight", "[2, 9, 1, 1]"],
        ),
        (
            lambda t: t["tcn.network.1.bn1_pw.running_var"].__setitem__(0, float("nan")),
            ["tcn.network.1.bn1_pw.running_var", "non-finite"],
        ),
        (
            lambda t: t.update(
                {"attention.width_axis.bn_output.bias": torch.zeros(16, dtype=torch.float64)}
            ),
            ["attention.width_axis.bn_output.bias", "F64"],
        ),
        (lambda t: t.update({"extra.weight": torch.zeros(3)}), ["extra.weight"]),
        (lambda t: t.pop("tcn.network.0.conv1_group.weight"), ["tcn.network.0.conv1_group.weight"]),
    ],
    ids=["missing", "shape", "nan", "dtype", "unknown", "no-tcn"],
)
def test_broken_tensors_are_checkpoint_errors_naming_them(tmp_path, change, words):
    file, _ = random_checkpoint(tmp_path, CASE)
    rewrite(file, change)
    with pytest.raises(CheckpointError) as e:
        csipose.PoseNet.load(file)
    for w in [*words, "model.safetensors"]:
        assert w in str(e.value), str(e.value)


def test_truncated_garbage_and_foreign_files(tmp_path):
    file, _ = random_checkpoint(tmp_path, CASE)
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"model\.safetensors"):
        csipose.PoseNet.load(file)
    file.write_bytes(b"garbage")
    with pytest.raises(CheckpointError):
        csipose.PoseNet.load(file)
    header = json.dumps({"__metadata__": {"format": "csipose-countnet-checkpoint"}}).encode()
    file.write_bytes(struct.pack("<Q", len(header)) + header)
    with pytest.raises(CheckpointError, match="csipose-pose-checkpoint"):
        csipose.PoseNet.load(file)
    with pytest.raises(CheckpointError, match="absent"):
        csipose.PoseNet.load(tmp_path / "absent")


def test_metadata_that_contradicts_the_weights(tmp_path):
    name, c, t, k, d, options = CASE
    from posenet_checkpoints import random_model

    model = random_model(name, c, t, k, d, options)
    meta = metadata(name, options, np.zeros((k, d)), time_steps=t, frames=t)
    cfg = json.loads(meta["config"])
    cfg["model"]["name"] = "wiflow-mmfi"
    meta["config"] = json.dumps(cfg)
    with pytest.raises(CheckpointError, match="tcn_proj"):
        csipose.PoseNet.load(write(model, tmp_path / "a", meta))
    meta = metadata(name, options, np.zeros((k, d)), time_steps=t, frames=3)
    with pytest.raises(CheckpointError, match="time steps"):
        csipose.PoseNet.load(write(model, tmp_path / "b", meta))
    meta = metadata(name, options, np.zeros((k, d)), time_steps=t, frames=t)
    cfg = json.loads(meta["config"])
    cfg.setdefault("data", {})["features"] = ["static_removal"]  # same channels, other input
    meta["config"] = json.dumps(cfg)
    with pytest.raises(CheckpointError, match=r"data\.features \['static_removal'\]"):
        csipose.PoseNet.load(write(model, tmp_path / "c", meta))


def test_wrong_windows_are_value_errors(tmp_path):
    file, _ = random_checkpoint(tmp_path, CASE)  # 120 channels = 1 frame... layout [10, A, S, 1]
    net = csipose.PoseNet.load(file)
    good = np.zeros((2, 10, 4, 30, 1), np.float32)
    assert net.predict(good).shape == (2, 15, 2)
    with pytest.raises(ValueError, match="120"):
        net.predict(np.zeros((2, 10, 4, 31, 1), np.float32))
    with pytest.raises(ValueError, match="frames"):
        net.predict(np.zeros((2, 9, 4, 30, 1), np.float32))
    with pytest.raises(ValueError, match="amplitude must be"):
        net.predict(np.zeros((10, 4, 30), np.float32))
    with pytest.raises(ValueError, match="amplitude only"):
        net.predict(good, good)
    with pytest.raises(TypeError):
        net.predict(good.astype(bool))
    with pytest.raises(ValueError, match="x must be"):
        net.forward(np.zeros((1, 119, 10), np.float32))


def test_results_do_not_depend_on_the_thread_count(tmp_path):
    file, _ = random_checkpoint(tmp_path, CASE)
    net = csipose.PoseNet.load(file)
    x = np.random.default_rng(1).normal(size=(9, 10, 4, 30, 1)).astype(np.float32)
    old = csipose.get_num_threads()
    try:
        csipose.set_num_threads(1)
        one = net.predict(x)
        csipose.set_num_threads(2)
        two = net.predict(x)
    finally:
        csipose.set_num_threads(old)
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(net.predict(x[3:4]), one[3:4])


def test_predict_releases_the_gil(tmp_path):
    from gil import calls_during

    file, _ = random_checkpoint(tmp_path, ("wiflow-half", 342, 10, 17, 3, {}))
    net = csipose.PoseNet.load(file)
    x = np.random.default_rng(2).normal(size=(16, 10, 3, 114, 1)).astype(np.float32)
    _, during, _ = calls_during(lambda: net.predict(x), lambda: sum(range(10)))
    assert during > 0


def test_predict_parity_and_export_commands(tmp_path, store, capsys):
    torch.set_num_threads(1)
    run = train_run(
        store, tmp_path / "run", 'model.name="wiflow-tiny"', "model.options={input_pw_groups=2}"
    )
    out = tmp_path / "pred" / "pred.npy"
    args = [
        "predict",
        str(run),
        "--store",
        str(store),
        "--split",
        "val",
        "--out",
        str(out),
        "--report",
        "--plot",
    ]
    assert main(args) == 0
    pred = np.load(out)
    idx = np.load(out.with_suffix(".indices.npy"))
    assert pred.shape == (len(idx), 17, 3) and np.isfinite(pred).all()
    rep = json.loads((out.parent / "report.json").read_text())
    assert "mean_pose_baseline" in rep and "pck@20" in rep["model"]
    assert (out.parent / "skeletons.png").stat().st_size > 1000
    assert (out.parent / "joint_errors.png").stat().st_size > 1000
    capsys.readouterr()
    assert main(["parity", str(run), "-n", "40"]) == 0
    text = capsys.readouterr().out
    assert "parity holds" in text and "torso-PCK@20" in text and "MPJPE" in text
    pytest.importorskip("onnxruntime")
    onnx_file = tmp_path / "pose.onnx"
    assert main(["export", str(run), str(onnx_file)]) == 0
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    raw = Store.open(store, window=csipose.PoseNet.load(run).data["window"])
    b = raw.gather(idx[:5], fields=["amplitude", "phase"])
    (got,) = sess.run(["keypoints"], {"amplitude": b["amplitude"], "phase": b["phase"]})
    np.testing.assert_allclose(got, pred[:5], atol=1e-4 * 0.5)
