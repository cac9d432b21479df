"""CountNet: the torch model's architecture contract, the Rust (candle) runtime's
parity with torch and with a numpy oracle, its errors, the GIL, the CLI's
predict / health, and the ONNX export against onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

import csipose
from csipose import _native
from csipose.cli import main
from csipose.count.data import esp32_map, gather
from csipose.data import CsiTransform, Store
from csipose.data.simulate import simulate
from csipose.deploy.parity import parity
from csipose.errors import CheckpointError
from csipose.models import CountNet as TorchCountNet
from csipose.models.countnet import PARAMETERS, parameter_count

from gil import calls_during
from reference import countnet_forward

#: Section 2.1 of the upstream reference: names and shapes of the weights.
UPSTREAM = {
    "enc.c1.weight": (64, 56, 3), "enc.c1.bias": (64,),
    "enc.c2.weight": (128, 64, 3), "enc.c2.bias": (128,),
    "enc.c3.weight": (128, 128, 3), "enc.c3.bias": (128,),
    "count_head.fc1.weight": (64, 128), "count_head.fc1.bias": (64,),
    "count_head.fc2.weight": (8, 64), "count_head.fc2.bias": (8,),
    "conf_head.fc1.weight": (32, 128), "conf_head.fc1.bias": (32,),
    "conf_head.fc2.weight": (1, 32), "conf_head.fc2.bias": (1,),
}  # fmt: skip
EXTRAS = {
    "preprocess.mean": (56,), "preprocess.std": (56,),
    "calibration.temperature": (1,), "calibration.confidence_temperature": (1,),
}  # fmt: skip


def random_model(seed: int = 0, t: float = 1.7, tc: float = 0.6) -> TorchCountNet:
    """A CountNet with seeded weights, non-trivial z-score statistics and temperatures."""
    torch.manual_seed(seed)
    m = TorchCountNet()
    g = torch.Generator().manual_seed(seed + 1)
    m.set_preprocess(torch.randn(56, generator=g) * 3, torch.rand(56, generator=g) * 2 + 0.2)
    m.set_temperatures(t, tc)
    return m.eval()


def save(model: TorchCountNet, path: Path, **drop_or_replace) -> Path:
    """model.safetensors of ``model`` in directory ``path``; keyword arguments replace
    tensors (a value of None removes it)."""
    path.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    for k, v in drop_or_replace.items():
        name = k.replace("__", ".")
        if v is None:
            tensors.pop(name)
        else:
            tensors[name] = v
    save_file(tensors, path / "model.safetensors", metadata={"format": "csipose-countnet-checkpoint"})
    return path


@pytest.fixture(scope="module")
def sim_windows(tmp_path_factory) -> np.ndarray:
    """Simulated ESP32 counting windows through the declared 64 -> 56 map."""
    root = tmp_path_factory.mktemp("countsim")
    path = simulate(root / "store", profile="esp32", environments=1, subjects=3, frames=40,
                    sequences=1, seed=5)  # fmt: skip
    store = Store.open(path, transform={"amplitude": CsiTransform(subcarriers=esp32_map())})
    x, y = gather(store, np.arange(len(store)))
    assert x.shape == (len(store), 56, 20) and len(np.unique(y)) == 6  # 0..5 people
    return x


def test_architecture_matches_the_upstream_contract():
    m = TorchCountNet()
    assert parameter_count(m) == PARAMETERS == 97_737
    shapes = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    assert shapes == {**UPSTREAM, **EXTRAS}
    weights, extras = csipose.runtime.countnet.tensor_contract()
    assert {k: tuple(s) for k, s in weights} == UPSTREAM
    assert {k: tuple(s) for k, s in extras} == EXTRAS
    convs = [m.enc.c1, m.enc.c2, m.enc.c3]
    assert [(c.kernel_size[0], c.dilation[0], c.padding[0]) for c in convs] == [(3, 1, 1), (3, 2, 2), (3, 4, 4)]
    out = m(torch.zeros(5, 56, 20))
    assert out.count.shape == (5, 8) and out.confidence.shape == (5,)
    for bad in (torch.zeros(5, 20, 56), torch.zeros(56, 20), torch.zeros(2, 56, 21)):
        with pytest.raises(ValueError, match="56 subcarriers"):
            m(bad)


def test_torch_matches_the_numpy_oracle():
    m = random_model(3)
    x = torch.randn(6, 56, 20, generator=torch.Generator().manual_seed(4)) * 4 + 1
    got = m.predict(x)
    t = {k: v.double().numpy() for k, v in m.state_dict().items()}
    probs, counts, conf = countnet_forward(t, x.numpy())
    np.testing.assert_allclose(got.probabilities.numpy(), probs, atol=2e-6)
    np.testing.assert_allclose(got.confidences.numpy(), conf, atol=2e-6)
    np.testing.assert_array_equal(got.counts.numpy(), counts)
    # The temperatures act: T = 1 gives other probabilities, the same counts.
    plain = random_model(3, 1.0, 1.0).predict(x)
    assert not torch.allclose(plain.probabilities, got.probabilities, atol=1e-3)
    assert torch.equal(plain.counts, got.counts)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rust_matches_torch_on_random_windows(tmp_path, seed):
    m = random_model(seed, t=[0.5, 1.0, 2.5][seed], tc=[1.0, 0.3, 4.0][seed])
    net = csipose.CountNet.load(save(m, tmp_path))
    rng = np.random.default_rng(seed)
    for b in (1, 2, 64, 300):  # 300 > the runtime's 256-window chunk
        x = (rng.normal(0, 3, (b, 56, 20)) + rng.normal(0, 2, (1, 56, 1))).astype(np.float32)
        rust = net.predict(x)
        ref = m.predict(torch.from_numpy(x))
        assert rust.probabilities.shape == (b, 8) and rust.probabilities.dtype == np.float32
        assert rust.counts.dtype == np.int64 and rust.confidences.shape == (b,)
        assert np.max(np.abs(rust.probabilities - ref.probabilities.numpy())) <= 1e-5
        assert np.max(np.abs(rust.confidences - ref.confidences.numpy())) <= 1e-5
        agree = rust.counts == ref.counts.numpy()
        # A count may differ only where two classes tie to float32 rounding.
        top2 = np.sort(ref.probabilities.numpy(), axis=1)[:, -2:]
        assert np.all(agree | (top2[:, 1] - top2[:, 0] < 1e-5))


def test_rust_matches_torch_on_simulated_windows(tmp_path, sim_windows):
    m = random_model(7)
    mean, std = sim_windows.mean(axis=(0, 2)), sim_windows.std(axis=(0, 2)) + 1e-6
    m.set_preprocess(torch.from_numpy(mean), torch.from_numpy(std))
    net = csipose.CountNet.load(save(m, tmp_path) / "model.safetensors")
    rust = net.predict(sim_windows)
    ref = m.predict(torch.from_numpy(sim_windows))
    assert np.max(np.abs(rust.probabilities - ref.probabilities.numpy())) <= 1e-5
    assert np.max(np.abs(rust.confidences - ref.confidences.numpy())) <= 1e-5
    np.testing.assert_allclose(rust.probabilities.sum(axis=1), 1, atol=1e-6)
    # One window at a time (and [56, 20] without a batch axis) gives the same rows.
    one = net.predict(sim_windows[3])
    np.testing.assert_array_equal(one.probabilities[0], rust.probabilities[3])
    # float64 input is converted.
    np.testing.assert_array_equal(net.predict(sim_windows.astype(np.float64)).counts, rust.counts)


def test_runtime_properties(tmp_path):
    m = random_model(0, t=1.25, tc=0.75)
    net = csipose.CountNet.load(save(m, tmp_path, extra__tensor=torch.zeros(3)))
    assert net.parameters == 97_737
    assert net.temperature == pytest.approx(1.25) and net.confidence_temperature == pytest.approx(0.75)
    assert net.extra_tensors == ["extra.tensor"]
    assert net.path == tmp_path / "model.safetensors"
    assert net.metadata()["format"] == "csipose-countnet-checkpoint"
    assert "97737" in repr(net)


def test_checkpoint_errors_name_the_tensor_and_the_file(tmp_path):
    m = random_model(0)
    cases = {
        "missing": ({"enc__c2__weight": None}, "missing tensor enc.c2.weight"),
        "no_zscore": ({"preprocess__mean": None}, "preprocess.mean"),
        "no_temperature": ({"calibration__temperature": None}, "calibration.temperature"),
        "shape": ({"count_head__fc2__weight": torch.zeros(7, 64)}, r"count_head.fc2.weight has shape \[7, 64\]"),
        "transposed": ({"enc__c1__weight": torch.zeros(56, 64, 3)}, "enc.c1.weight has shape"),
        "dtype": ({"enc__c1__bias": torch.zeros(64, dtype=torch.float64)}, "enc.c1.bias is F64"),
        "temperature": ({"calibration__temperature": torch.tensor([-1.0])}, "positive temperature"),
        "std": ({"preprocess__std": torch.zeros(56)}, "preprocess.std must be > 0"),
        "nan": ({"conf_head__fc1__bias": torch.full((32,), float("nan"))}, "non-finite"),
    }
    for name, (change, message) in cases.items():
        d = save(m, tmp_path / name, **change)
        with pytest.raises(CheckpointError, match=message) as e:
            csipose.CountNet.load(d)
        assert str(d / "model.safetensors") in str(e.value)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        csipose.CountNet.load(tmp_path / "nowhere")
    (tmp_path / "garbage").mkdir()
    (tmp_path / "garbage" / "model.safetensors").write_bytes(b"\x08" + b"\0" * 7 + b"{not json")
    with pytest.raises(CheckpointError, match="safetensors"):
        csipose.CountNet.load(tmp_path / "garbage")
    # The native class is reachable only through the wrapper, but checks on its own too.
    with pytest.raises(CheckpointError):
        _native.CountNet.load(tmp_path / "missing" / "model.safetensors")


def test_wrong_windows_are_value_errors(tmp_path):
    net = csipose.CountNet.load(save(random_model(0), tmp_path))
    for shape in [(2, 20, 56), (2, 56, 21), (56,), (1, 2, 56, 20), (0, 55, 20)]:
        with pytest.raises(ValueError, match="56 subcarriers"):
            net.predict(np.zeros(shape, np.float32))
    with pytest.raises(TypeError):
        net.predict(np.zeros((1, 56, 20), complex))
    strided = np.zeros((2, 20, 56), np.float32).transpose(0, 2, 1)
    with pytest.raises(ValueError, match="C-contiguous"):
        _native.CountNet.load(tmp_path / "model.safetensors").predict(strided)
    assert net.predict(strided).counts.shape == (2,)  # the wrapper copies it
    assert net.predict(np.zeros((0, 56, 20), np.float32)).probabilities.shape == (0, 8)
    # A window with NaN or inf: NaN probabilities and confidence, count -1, never a
    # silent number (candle's relu alone would map NaN to 0); the others are unaffected.
    x = np.zeros((3, 56, 20), np.float32)
    x[0, 3, 4], x[2, 0, 0] = np.nan, -np.inf
    p = net.predict(x)
    assert p.counts.tolist()[0] == -1 and p.counts[2] == -1 and p.counts[1] >= 0
    assert np.isnan(p.probabilities[[0, 2]]).all() and np.isnan(p.confidences[[0, 2]]).all()
    np.testing.assert_array_equal(p.probabilities[1], net.predict(x[1]).probabilities[0])


def test_predict_releases_the_gil(tmp_path):
    """While one thread runs a long prediction, the other keeps calling a kernel; with a
    100 s switch interval that can only happen if predict released the GIL."""
    net = csipose.CountNet.load(save(random_model(0), tmp_path))
    big = np.random.default_rng(0).normal(size=(6000, 56, 20)).astype(np.float32)
    small = np.zeros((2, 17, 2), np.float32)
    _, overlapping, _ = calls_during(lambda: net.predict(big), lambda: _native.joint_errors(small, small))
    assert overlapping >= 10


def test_cli_health_and_predict(tmp_path, capsys, sim_windows):
    ck = save(random_model(1), tmp_path / "ck")
    assert main(["count", "health", str(ck)]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "97,737 parameters" in out
    np.save(tmp_path / "w.npy", sim_windows)
    assert main(["count", "predict", str(ck), str(tmp_path / "w.npy"), "--out", str(tmp_path / "p.npz")]) == 0
    saved = np.load(tmp_path / "p.npz")
    want = csipose.CountNet.load(ck).predict(sim_windows)
    np.testing.assert_array_equal(saved["counts"], want.counts)
    np.testing.assert_array_equal(saved["probabilities"], want.probabilities)
    bad = save(random_model(1), tmp_path / "bad", conf_head__fc2__bias=None)
    assert main(["count", "health", str(bad)]) == 2
    assert "conf_head.fc2.bias" in capsys.readouterr().err
    np.save(tmp_path / "short.npy", np.zeros((3, 56, 19), np.float32))
    assert main(["count", "predict", str(ck), str(tmp_path / "short.npy")]) == 2
    assert "56 subcarriers" in capsys.readouterr().err


def test_onnx_export_matches_onnxruntime(tmp_path, sim_windows):
    ort = pytest.importorskip("onnxruntime")
    import onnx

    from csipose.deploy.export import export_onnx

    m = random_model(2, t=1.6, tc=0.7)
    ck = save(m, tmp_path / "ck")
    out = export_onnx(ck, tmp_path / "countnet.onnx")
    model = onnx.load(out)
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) == 18
    assert [i.name for i in model.graph.input] == ["csi_window"]
    assert [o.name for o in model.graph.output] == ["count_logits", "conf_logits"]
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for x in (sim_windows[:1], sim_windows):  # dynamic batch
        z, c = sess.run(None, {"csi_window": x})
        ref = m.calibrated(torch.from_numpy(x))
        assert np.max(np.abs(z - ref.count.detach().numpy())) < 1e-4
        assert np.max(np.abs(c - ref.confidence.detach().numpy())) < 1e-4
        # softmax of the exported logits is the Rust runtime's calibrated probabilities.
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        rust = csipose.CountNet.load(ck).predict(x)
        assert np.max(np.abs(p - rust.probabilities)) < 1e-5
    assert main(["export", str(ck), str(tmp_path / "cli.onnx")]) == 0
    assert (tmp_path / "cli.onnx").stat().st_size > 300_000
    assert load_file(ck / "model.safetensors").keys() == m.state_dict().keys()


@pytest.fixture(scope="module")
def fuzz_net(tmp_path_factory):
    return csipose.CountNet.load(save(random_model(0), tmp_path_factory.mktemp("fuzz")))


@settings(max_examples=60)
@given(
    dtype=st.sampled_from([np.float32, np.float64, np.int32, np.uint8, np.bool_, np.complex64, np.float16]),
    shape=st.lists(st.integers(0, 60), min_size=0, max_size=4).map(tuple),
    value=st.sampled_from([0.0, 1.0, -1.5, 3.4e38, 1e-45, np.nan, np.inf]),
    strided=st.booleans(),
)
def test_predict_never_panics(fuzz_net, dtype, shape, value, strided):
    """Any dtype, rank, shape or value: a result or a clear exception, from the wrapper
    and from the binding itself."""
    with np.errstate(over="ignore", invalid="ignore"):
        x = np.full(shape, value).astype(dtype)
    if strided and x.ndim:
        x = np.repeat(x, 2, axis=0)[::2]
    clear = (ValueError, TypeError, OverflowError, csipose.CsiposeError)
    for fn in (fuzz_net.predict, fuzz_net._net.predict):
        try:
            p = fn(x)
        except clear:
            continue
        assert p[0].shape[1:] == (8,) and len(p[1]) == len(p[2]) == len(p[0])


@settings(max_examples=30)
@given(blob=st.binary(max_size=200), header=st.booleans())
def test_load_never_panics(tmp_path_factory, blob, header):
    d = tmp_path_factory.mktemp("blob")
    data = (len(blob).to_bytes(8, "little") + blob) if header else blob
    (d / "model.safetensors").write_bytes(data)
    with pytest.raises(CheckpointError):
        csipose.CountNet.load(d)


def test_parity_command_compares_rust_with_torch(tmp_path, sim_windows, capsys, monkeypatch):
    ck = save(random_model(4), tmp_path / "ck")
    report = parity(ck, sim_windows)
    assert report.ok and report.windows == len(sim_windows)
    assert report.max_probability_difference <= 1e-5 and report.count_mismatches == 0
    drawn = parity(ck, n=32)  # windows around the checkpoint's own statistics
    assert drawn.ok and drawn.windows == 32
    assert main(["parity", str(ck), "-n", "16"]) == 0
    assert "parity holds" in capsys.readouterr().out
    # A torch side that disagrees is reported, and the command exits 1.
    from csipose.count import evaluate

    real = evaluate.predict_torch

    def off(file, x):
        p, c, conf = real(file, x)
        return p + 1e-3, c, conf

    monkeypatch.setattr(evaluate, "predict_torch", off)
    assert not parity(ck, sim_windows).ok
    assert main(["parity", str(ck), "-n", "16"]) == 1
    assert "PARITY FAILS" in capsys.readouterr().out
    assert main(["parity", str(tmp_path / "nope")]) == 2


def test_countnet_runs_on_the_csipose_pool_only(tmp_path):
    """candle's own element-wise pool (threads ``candle-bp-*``) is never started:
    CountNet runs in chunks small enough to stay off it, on csipose's pool."""
    import os
    import subprocess
    import sys

    ck = save(TorchCountNet().eval(), tmp_path / "ck")
    script = (
        "import os, numpy as np, csipose\n"
        "csipose.set_num_threads(2)\n"
        f"net = csipose.CountNet.load({str(ck)!r})\n"
        "net.predict(np.random.default_rng(0).normal(0, 2, (300, 56, 20)).astype(np.float32))\n"
        "names = [open(f'/proc/self/task/{t}/comm').read().strip() for t in os.listdir('/proc/self/task')]\n"
        "print(sum(n.startswith('candle-bp') for n in names), sum(n.startswith('csipose-') for n in names))\n"
    )
    env = {**os.environ, "CANDLE_NUM_THREADS": "4"}
    env.pop("RAYON_NUM_THREADS", None)
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    candle, ours = map(int, out.stdout.split())
    assert candle == 0 and ours == 2, out.stdout
