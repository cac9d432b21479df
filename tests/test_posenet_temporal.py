"""csipose.PoseNet on temporal checkpoints (model.temporal = "sparse"): the Rust
frame model + attention block against torch's TemporalPoseModel, sequences and
streams, in standardised units and in data units; bad checkpoints are
CheckpointErrors naming the tensor."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

import csipose
from csipose import _native
from csipose.models.temporal import TemporalPoseModel
from csipose.nn import SparsePattern
from posenet_checkpoints import metadata, random_model
from test_bindings_fuzz import CLEAR, arrays

C, W, K, D = 24, 10, 5, 3
PATTERNS = [
    SparsePattern(),
    SparsePattern(window=3, block=4, globals=(0, 5)),
    SparsePattern(window=2, block=3, horizon=6),
]


def temporal_model(pattern: SparsePattern, seed: int = 0) -> TemporalPoseModel:
    frame = random_model("wiflow-tiny", C, W, K, D, {"input_pw_groups": 2}, seed)
    torch.manual_seed(seed + 7)
    m = TemporalPoseModel(frame, K, D, dim=16, q_heads=4, kv_heads=2, head_dim=8, pattern=pattern)
    with torch.no_grad():  # a trained-looking head, so the attention reaches the output
        torch.nn.init.normal_(m.head.weight, std=0.5)
        torch.nn.init.normal_(m.head.bias, std=0.5)
    return m.eval()


def write(m: TemporalPoseModel, path, mean_pose, scale: float = 2.0):
    meta = metadata("wiflow-tiny", {"input_pw_groups": 2}, mean_pose, time_steps=W, frames=W,
                    target_scale=scale)  # fmt: skip
    cfg = json.loads(meta["config"])
    cfg["model"]["temporal"] = "sparse"
    meta["config"] = json.dumps(cfg)
    p = m.pattern
    meta["temporal"] = json.dumps(
        {
            "dim": 16,
            "q_heads": 4,
            "kv_heads": 2,
            "head_dim": 8,
            "pattern": p.native_args(),
            "sequence": 32,
        }
    )
    path.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous() for k, v in m.state_dict().items()}
    save_file(tensors, path / "model.safetensors", metadata=meta)
    return path / "model.safetensors"


@pytest.mark.parametrize("pi", range(len(PATTERNS)))
def test_sequences_and_streams_match_torch(tmp_path, pi):
    m = temporal_model(PATTERNS[pi], seed=pi)
    mean = np.random.default_rng(0).standard_normal((K, D)).astype(np.float32)
    net = csipose.PoseNet.load(write(m, tmp_path / "ck", mean))
    assert net.output_shape == (K, D) and net.input_shape == (C, W)
    g = torch.Generator().manual_seed(pi)
    x = torch.randn(2, 40, C, W, generator=g)
    with torch.no_grad():
        want = m(x).numpy()
    np.testing.assert_allclose(net.forward(x.numpy()), want, rtol=1e-4, atol=1e-4)
    state = net.stream(batch=2)
    steps = np.stack([state.forward(x[:, t].numpy()) for t in range(40)], axis=1)
    np.testing.assert_allclose(steps, want, rtol=1e-4, atol=1e-4)
    assert state.t == 40
    # Raw windows (time steps = frames, one packet each; no transform): data units.
    raw = (
        x.numpy().reshape(2, 40, C, 1, 1, W).transpose(0, 1, 5, 3, 2, 4).reshape(2, 40, W, 1, C, 1)
    )
    got = net.predict(raw)
    np.testing.assert_allclose((got - mean) / 2.0, want, rtol=1e-4, atol=1e-4)
    st2 = net.stream(batch=2)
    rows = np.stack([st2.step(raw[:, t]) for t in range(40)], axis=1)
    np.testing.assert_allclose(rows, got, rtol=1e-5, atol=1e-5)


def test_stream_memory_is_bounded_by_the_horizon(tmp_path):
    m = temporal_model(SparsePattern(window=2, block=3, horizon=6))
    net = csipose.PoseNet.load(write(m, tmp_path / "ck", np.zeros((K, D), np.float32)))
    state = net.stream(batch=1)
    x = np.random.default_rng(1).standard_normal((1, C, W)).astype(np.float32)
    sizes = []
    for _ in range(60):
        state.forward(x)
        sizes.append(state.cache_rows())
    assert sizes[-1][0] == 7 and len(set(sizes[20:])) == 1


def test_single_frame_checkpoints_behave_as_before(tmp_path):
    frame = random_model("wiflow-tiny", C, W, K, D, {"input_pw_groups": 2})
    meta = metadata("wiflow-tiny", {"input_pw_groups": 2}, np.zeros((K, D)), time_steps=W, frames=W)
    (tmp_path / "f").mkdir()
    save_file({k: v.contiguous() for k, v in frame.state_dict().items()}, tmp_path / "f" / "model.safetensors",
              metadata=meta)  # fmt: skip
    net = csipose.PoseNet.load(tmp_path / "f")
    assert type(net) is csipose.PoseNet
    x = torch.randn(3, C, W)
    with torch.no_grad():
        np.testing.assert_allclose(net.forward(x.numpy()), frame(x).numpy(), rtol=1e-4, atol=1e-4)


def test_bad_temporal_checkpoints_name_the_tensor(tmp_path):
    m = temporal_model(PATTERNS[1])
    mean = np.zeros((K, D), np.float32)
    path = write(m, tmp_path / "ok", mean)
    from safetensors.torch import load_file

    from csipose.runtime.countnet import read_metadata

    tensors, meta = load_file(path), read_metadata(path)
    cases = {
        "missing": ({k: v for k, v in tensors.items() if k != "attn.k_proj.weight"}, "attn.k_proj.weight"),
        "shape": ({**tensors, "norm2.bias": torch.zeros(5)}, "norm2.bias"),
        "nan": ({**tensors, "head.bias": torch.full_like(tensors["head.bias"], float("nan"))}, "head.bias"),
        "extra": ({**tensors, "mlp.4.weight": torch.zeros(2)}, "mlp.4.weight"),
        "frame": ({k: v for k, v in tensors.items() if k != "frame.up.0.weight"} if "frame.up.0.weight" in tensors
                  else {**tensors, "frame.bogus": torch.zeros(1)}, "frame."),
    }  # fmt: skip
    for name, (t, needle) in cases.items():
        (tmp_path / name).mkdir()
        save_file(t, tmp_path / name / "model.safetensors", metadata=meta)
        with pytest.raises(csipose.CheckpointError, match=needle.replace(".", r"\.")):
            csipose.PoseNet.load(tmp_path / name)
    bad = dict(meta, temporal=json.dumps({"dim": 16}))
    (tmp_path / "meta").mkdir()
    save_file(tensors, tmp_path / "meta" / "model.safetensors", metadata=bad)
    with pytest.raises(csipose.CheckpointError, match="temporal"):
        csipose.PoseNet.load(tmp_path / "meta")


def test_bad_inputs_are_value_errors(tmp_path):
    m = temporal_model(PATTERNS[0])
    net = csipose.PoseNet.load(write(m, tmp_path / "ck", np.zeros((K, D), np.float32)))
    with pytest.raises(ValueError):
        net.forward(np.zeros((2, C, W), np.float32))  # no T axis
    with pytest.raises(ValueError):
        net.predict(np.zeros((2, W, 1, C, 1), np.float32))  # one window, no T axis
    state = net.stream(batch=2)
    with pytest.raises(ValueError):
        state.forward(np.zeros((3, C, W), np.float32))
    head = _native.TemporalHead.load(
        tmp_path / "ck" / "model.safetensors", keypoints=K, dims=D, dim=16, q_heads=4, kv_heads=2,
        head_dim=8, **SparsePattern().native_args(),
    )  # fmt: skip
    with pytest.raises(ValueError):
        head.forward(np.zeros((1, 4, K * D + 1), np.float32))
    with pytest.raises(ValueError):
        head.stream(1).step(np.zeros((2, K * D), np.float32))
    assert head.forward(np.zeros((0, 4, K * D), np.float32)).shape == (0, 4, K * D)


@pytest.fixture(scope="module")
def head_file(tmp_path_factory):
    m = temporal_model(PATTERNS[1])
    return write(m, tmp_path_factory.mktemp("fuzz") / "ck", np.zeros((K, D), np.float32))


@given(data=st.data())
@settings(max_examples=60, deadline=None)
def test_fuzz_temporal_bindings_never_panic(head_file, data):
    """The fuzz pattern of tests/test_bindings_fuzz.py for TemporalHead and its stream."""
    kw = {
        "keypoints": data.draw(st.sampled_from([K, 0, 1, 2**40])),
        "dims": data.draw(st.sampled_from([D, 0, 2**40])),
        "dim": data.draw(st.sampled_from([16, 0, 8])),
        "q_heads": data.draw(st.sampled_from([4, 0, 3])),
        "kv_heads": data.draw(st.sampled_from([2, 0, 4])),
        "head_dim": data.draw(st.sampled_from([8, 0])),
        "window": data.draw(st.sampled_from([3, 0, 2**62])),
        "block": data.draw(st.sampled_from([4, 0])),
        "landmarks": data.draw(st.booleans()),
        "globals": data.draw(st.lists(st.sampled_from([0, 5, 2**62]), max_size=2)),
        "log_stride": data.draw(st.booleans()),
        "causal": data.draw(st.sampled_from([True, True, False])),
        "horizon": data.draw(st.sampled_from([None, 0, 5, 2**62])),
    }
    try:
        head = _native.TemporalHead.load(head_file, **kw)
    except CLEAR:
        return
    try:
        head.forward(data.draw(arrays()))
    except CLEAR:
        pass
    try:
        s = head.stream(data.draw(st.sampled_from([0, 1, 2, 2**40])))
        s.step(data.draw(arrays()))
    except CLEAR:
        pass


@pytest.mark.usefixtures("restore_torch_threads")
def test_a_briefly_trained_checkpoint_matches_torch(tmp_path):
    """`csipose train model.temporal="sparse"` (one tiny epoch), then PoseNet on
    every run of the test part against the trainer's own torch prediction."""
    from csipose.data import Store
    from csipose.data.simulate import simulate
    from csipose.train import config, train
    from csipose.train.evaluate import load_run
    from csipose.train.loop import input_fields, predict
    from csipose.train.sequences import runs
    from test_temporal_train import overrides

    store = simulate(tmp_path / "store", environments=2, subjects=4, actions=["walk", "wave"],
                     frames=12, seed=3)  # fmt: skip
    run = train(
        config.load(None, overrides(store, tmp_path / "run", "train.epochs=1")), progress=False
    )
    model, data, _, _ = load_run(run)
    idx = data.parts["test"]
    want = predict(model, data, idx, 7, torch.device("cpu"))
    net = csipose.PoseNet.load(run)
    assert type(net).__name__ == "TemporalPoseNet"
    fields = input_fields(data)
    raw = Store.open(store, window=net.data["window"])  # PoseNet takes untransformed windows
    pos = 0
    for r in runs(data.store, idx):
        b = raw.gather(r, fields=fields)
        got = net.predict(b["amplitude"][None], b["phase"][None] if "phase" in fields else None)[0]
        np.testing.assert_allclose(
            (got - want[pos : pos + len(r)]) / data.target_scale, 0, atol=1e-4
        )
        state = net.stream(batch=1)
        amp = b["amplitude"]
        first = state.step(amp[:1], b["phase"][:1] if "phase" in fields else None)
        np.testing.assert_allclose(first[0], got[0], rtol=1e-5, atol=1e-5)
        pos += len(r)
    assert pos == len(idx)


def test_temporal_head_releases_the_gil(head_file):
    from gil import calls_during

    args = dict(keypoints=K, dims=D, dim=16, q_heads=4, kv_heads=2, head_dim=8)
    head = _native.TemporalHead.load(head_file, **args, **PATTERNS[1].native_args())
    f = np.random.default_rng(0).standard_normal((32, 2048, K * D)).astype(np.float32)
    one = np.zeros((1, 1, K * D), np.float32)
    _, overlapping, calls = calls_during(lambda: head.forward(f), lambda: head.forward(one))
    assert overlapping >= 10, (overlapping, calls)
