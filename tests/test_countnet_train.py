"""CountNet training and evaluation: configuration, the declared 64 -> 56 map, data
from the simulator and from the paired-JSONL converter, the loss, the atomic
checkpoint with its preprocessing and calibration tensors, determinism, the
temperature fit, the metrics against numpy oracles, and the reports.

Runs train for a few steps on tiny simulated stores with one thread."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

import csipose
from csipose.cli import main
from csipose.count import calibrate, config, metrics
from csipose.count.data import esp32_map, gather, prepare
from csipose.count.evaluate import evaluate
from csipose.count.train import TrainingError, class_weights, loss_terms, train
from csipose.data.simulate import simulate
from csipose.models.countnet import CountLogits
from csipose.signal import ESP32_NULL, SUBCARRIERS
from csipose.train import ConfigError, checkpoint

from reference import count_confusion, count_ece

# Training sets torch's thread count; every test gets it back as it was.
pytestmark = pytest.mark.usefixtures("restore_torch_threads")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("countstore")
    return simulate(root / "store", profile="esp32", environments=2, subjects=3, frames=40,
                    sequences=3, seed=1)  # fmt: skip


def overrides(store: Path, run: Path, *extra: str) -> list[str]:
    return ['data.source="store"', f'data.store="{store}"', f'train.run_dir="{run}"', "train.epochs=2",
            "train.batch_size=32", "train.threads=1", "train.early_stop=0", *extra]  # fmt: skip


def test_config_rejects_unknown_and_ill_typed_keys():
    cfg = config.load(None, ["train.epochs=3", "loss.balance=sampler", "data.test_parts=['test']"])
    assert (cfg.train.epochs, cfg.loss.balance, cfg.data.test_parts) == (3, "sampler", ["test"])
    for bad, msg in [("train.epoch=3", "unknown key train.epoch"), ("model.x=1", "unknown section"),
                     ("train.epochs=1.5", "integer"), ("loss.balance=oversample", "loss.balance"),
                     ("data.subcarriers=gaussian:56", "data.subcarriers"), ("optim.lr=0", "optim.lr"),
                     ("nodot=1", "section.key")]:  # fmt: skip
        with pytest.raises(ConfigError, match=msg):
            config.load(None, [bad])
    assert config.from_json(json.dumps(cfg.to_dict())).to_dict() == cfg.to_dict()
    assert "[loss]" in cfg.to_toml()


def test_esp32_map_is_declared_and_skips_nulls():
    m = esp32_map()
    w = m.dense()
    assert w.shape == (56, 64) and m.n_src == 64
    idx = np.array(SUBCARRIERS["esp32-lltf"])
    null = np.isin(idx, ESP32_NULL)
    assert null.sum() == 12 and np.all(w[:, null] == 0)
    np.testing.assert_allclose(w.sum(axis=1), 1)
    # A linear ramp over the subcarrier index comes out as the ramp at the 56 targets.
    ramp = idx.astype(np.float64)
    np.testing.assert_allclose(w @ ramp, np.linspace(-26, 26, 56), atol=1e-12)
    assert "null" in m.definition and "56" in m.definition


def test_loss_has_a_gradient_in_every_term():
    torch.manual_seed(0)
    z = torch.randn(16, 8, requires_grad=True)
    c = torch.randn(16, requires_grad=True)
    y = torch.randint(0, 8, (16,))
    cfg = config.load()
    terms = loss_terms(CountLogits(z, c), y, cfg, None)
    (g_brier,) = torch.autograd.grad(terms["brier"], c, retain_graph=True)
    assert g_brier.abs().sum() > 0  # upstream's Brier term had none
    correct = (z.argmax(1) == y).float()
    want = torch.nn.functional.cross_entropy(z, y) + 0.3 * torch.nn.functional.binary_cross_entropy_with_logits(
        c, correct) + 0.1 * ((torch.sigmoid(c) - correct) ** 2).mean()  # fmt: skip
    torch.testing.assert_close(terms["loss"], want)
    w = class_weights(np.array([0, 0, 0, 1]))
    np.testing.assert_allclose(w[:2], [4 / 6, 2.0])
    assert np.all(w[2:] == 1)


def test_training_writes_an_atomic_calibrated_checkpoint(store, tmp_path):
    run = train(config.load(None, overrides(store, tmp_path / "run")))
    ck = run / "checkpoints"
    assert sorted(p.name for p in ck.iterdir()) == [
        "best",
        "calibrated",
        "epoch-0000",
        "epoch-0001",
        "latest.json",
    ]
    assert not list(ck.glob(".*"))  # no temporary directory left behind
    for d in ("best", "calibrated", "epoch-0001"):
        assert {"model.safetensors", "optimizer.pt", "trainer_state.json", "rng_state.pt"} <= {
            p.name for p in (ck / d).iterdir()}  # fmt: skip
    t = load_file(ck / "best" / "model.safetensors")
    assert len(t) == 18
    data = prepare(config.load(None, overrides(store, tmp_path / "run")), store)
    np.testing.assert_allclose(t["preprocess.mean"].numpy(), data.mean, rtol=1e-6)
    np.testing.assert_allclose(t["preprocess.std"].numpy(), data.std, rtol=1e-6)
    state = json.loads((ck / "best" / "trainer_state.json").read_text())
    cal = state["calibration"]
    assert t["calibration.temperature"].item() == pytest.approx(cal["temperature"], rel=1e-6)
    assert t["calibration.confidence_temperature"].item() == pytest.approx(
        cal["confidence_temperature"], rel=1e-6
    )
    assert cal["val_count_nll_after"] <= cal["val_count_nll_before"]
    assert cal["val_conf_nll_after"] <= cal["val_conf_nll_before"]
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2 and {"train_loss", "val_accuracy", "val_nll"} <= set(
        json.loads(lines[0])
    )
    with safe_open(ck / "best" / "model.safetensors", "pt") as f:
        meta = f.metadata()
    assert meta["format"] == "csipose-countnet-checkpoint"
    assert "esp32" in json.loads(meta["data"])["subcarriers"]["params"]["kind"]
    # The Rust runtime loads it and agrees with torch on the store's windows.
    x, _ = gather(data.store, data.parts["test"])
    net = csipose.CountNet.load(run)
    from csipose.count.evaluate import predict_torch

    p_torch, _, c_torch = predict_torch(ck / "best" / "model.safetensors", x)
    rust = net.predict(x)
    assert np.max(np.abs(rust.probabilities - p_torch)) <= 1e-5
    assert np.max(np.abs(rust.confidences - c_torch)) <= 1e-5
    # A trained checkpoint (amplitudes about 2e-3) exports, and onnxruntime agrees with
    # torch on the store's own windows.
    pytest.importorskip("onnxruntime")
    from csipose.deploy.export import export_onnx

    onnx_file = export_onnx(run, tmp_path / "count.onnx")
    import onnxruntime as ort

    z, _ = ort.InferenceSession(str(onnx_file)).run(None, {"csi_window": x})
    p = np.exp(z - z.max(axis=1, keepdims=True))
    assert np.max(np.abs(p / p.sum(axis=1, keepdims=True) - rust.probabilities)) <= 1e-5


def test_same_seed_same_weights(store, tmp_path):
    a = train(
        config.load(
            None, overrides(store, tmp_path / "a", "train.epochs=1", "loss.balance=sampler")
        )
    )
    b = train(
        config.load(
            None, overrides(store, tmp_path / "b", "train.epochs=1", "loss.balance=sampler")
        )
    )
    c = train(config.load(None, overrides(store, tmp_path / "c", "train.epochs=1", "loss.balance=sampler",
                                          "train.seed=1")))  # fmt: skip
    wa, wb, wc = (load_file(r / "checkpoints/best/model.safetensors") for r in (a, b, c))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not torch.equal(wa["enc.c1.weight"], wc["enc.c1.weight"])


def test_a_fresh_run_sets_an_earlier_run_in_the_same_directory_aside(store, tmp_path):
    run = tmp_path / "run"
    first = overrides(store, run, "train.epochs=3")
    train(config.load(None, first))
    before = load_file(run / "checkpoints" / "best" / "model.safetensors")
    train(config.load(None, [*overrides(store, run), "train.seed=1"]))
    (aside,) = [p for p in tmp_path.iterdir() if p.name.startswith("run.")]
    kept = load_file(aside / "checkpoints" / "best" / "model.safetensors")
    assert all(torch.equal(kept[k], before[k]) for k in before)
    assert sorted(p.name for p in (run / "checkpoints").glob("epoch-*")) == [
        "epoch-0000",
        "epoch-0001",
    ]


def test_an_interrupted_run_resumes_to_the_uninterrupted_result(store, tmp_path, monkeypatch):
    full = train(config.load(None, overrides(store, tmp_path / "full", "train.epochs=3")))
    cfg = config.load(None, overrides(store, tmp_path / "cut", "train.epochs=3"))
    save = checkpoint.save

    def crash_after_two(run, name, **kwargs):
        if name == "epoch-0002":
            raise KeyboardInterrupt  # killed while writing the third epoch
        return save(run, name, **kwargs)

    monkeypatch.setattr(checkpoint, "save", crash_after_two)
    with pytest.raises(KeyboardInterrupt):
        train(cfg)
    monkeypatch.setattr(checkpoint, "save", save)
    assert (
        json.loads((tmp_path / "cut/checkpoints/latest.json").read_text())["name"] == "epoch-0001"
    )
    cut = train(cfg, resume="auto")
    # The resumed epoch itself (epoch-0002, trained after the resume), not only the
    # calibrated best, which could be an epoch from before the interruption.
    for name in ("epoch-0002", "best"):
        a, b = (load_file(r / "checkpoints" / name / "model.safetensors") for r in (full, cut))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    rows = [[{k: v for k, v in json.loads(line).items() if k not in ("epoch_s", "data_fraction")}
             for line in (r / "metrics.jsonl").read_text().splitlines()] for r in (full, cut)]  # fmt: skip
    assert rows[0] == rows[1] and len(rows[1]) == 3
    assert train(cfg, resume="auto") == cut  # finished: nothing to do
    other = config.load(None, overrides(store, tmp_path / "cut", "train.epochs=3", "optim.lr=0.01"))
    with pytest.raises(TrainingError, match="another configuration"):
        train(other, resume=str(tmp_path / "cut/checkpoints/epoch-0001"))


def test_eval_report_beside_the_majority_baseline(store, tmp_path, capsys):
    run = tmp_path / "run"
    assert (
        main(
            [
                "count",
                "train",
                *overrides(store, run, "train.max_steps=3", "data.test_parts=['test']"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "baseline" in out and "upstream gate" in out
    rep = json.loads((run / "count_eval" / "test" / "report.json").read_text())
    assert set(rep) >= {"model", "majority_baseline", "baseline_definition", "context"}
    for k in (
        "accuracy",
        "per_class_accuracy",
        "within_1",
        "mae",
        "confusion",
        "spearman_conf_correct",
        "ece",
    ):
        assert "definition" in rep["model"][k]
    # The baseline is the training part's most frequent count (all equal here: count 0).
    assert rep["majority_baseline"]["confusion"]["value"][0][0] == rep["label_counts"][0]
    assert rep["majority_baseline"]["zero_accuracy_classes"]["value"] == [1, 2, 3, 4, 5]
    assert (run / "count_eval" / "test" / "reliability.png").stat().st_size > 5000
    md = (run / "count_eval" / "test" / "report.md").read_text()
    assert "Confusion matrix" in md
    torch_rep = evaluate(run, "test", runtime="torch", out=tmp_path / "torch_eval")
    assert torch_rep["model"]["accuracy"]["value"] == rep["model"]["accuracy"]["value"]
    assert main(["count", "eval", str(run), "--split", "test_unseen_env"]) == 0
    assert "test_unseen_env" in capsys.readouterr().out
    assert main(["count", "eval", str(run), "--split", "nope"]) == 2


def test_trains_on_a_paired_jsonl_store(tmp_path):
    """The converter's store (56 subcarriers, frame-major lines, counts 0..2, no split): a
    seeded split by window, stratified by count; unlabelled lines are dropped."""
    rng = np.random.default_rng(0)
    lines = []
    for i in range(90):
        count = i % 3
        csi = rng.normal(10 + 3 * count, 1 + count, (20, 56))
        row = {"csi": csi.reshape(-1).round(3).tolist(), "csi_shape": [20, 56]}
        if i < 87:
            row["n_persons_mode"] = count
        lines.append(json.dumps(row))
    (tmp_path / "paired.jsonl").write_text("\n".join(lines) + "\n")
    out = tmp_path / "store"
    assert (
        main(
            [
                "convert",
                "jsonl",
                str(tmp_path / "paired.jsonl"),
                str(out),
                "--layout",
                "frame-major",
            ]
        )
        == 0
    )
    # The counts differ in level only, which static_removal (the default input) takes away.
    cfg = config.load(None, overrides(out, tmp_path / "run", "data.split=random", "data.test_parts=['test']",
                                      "train.epochs=6", "optim.lr=3e-3", "data.features=[]"))  # fmt: skip
    data = prepare(cfg, out)
    assert data.subcarriers is None and data.dropped_unlabelled == 3
    sizes = {k: len(v) for k, v in data.parts.items()}
    assert sum(sizes.values()) == 87 and sizes["test"] == sizes["val"] == 12
    _, y = gather(data.store, data.parts["test"])
    assert np.bincount(y).tolist() == [4, 4, 4]
    run = train(cfg)
    rep = evaluate(run, "test")
    # Counts this separable are learnt in a few epochs, far above the 1/3 baseline.
    assert rep["model"]["accuracy"]["value"] >= 0.75
    assert rep["majority_baseline"]["accuracy"]["value"] == pytest.approx(1 / 3)


def test_temperature_fit_lowers_the_nll_of_an_overconfident_model():
    rng = np.random.default_rng(0)
    n = 2000
    y = rng.integers(0, 8, n)
    # u ~ N(1.5 on the true class, 0 elsewhere; sd 1): the exact posterior is softmax(1.5 u),
    # so z = 4 x 1.5 u is 4x over-confident and T = 4 is the calibrated temperature.
    u = rng.normal(0, 1, (n, 8))
    u[np.arange(n), y] += 1.5
    z = 4 * 1.5 * u
    correct = (z.argmax(1) == y).astype(float)
    c = np.where(correct > 0, 6.0, -2.0) + rng.normal(0, 6, n)  # over-confident confidence logits
    fit = calibrate.fit(z, y, c)
    assert 3.5 < fit["temperature"] < 4.5
    assert fit["val_count_nll_after"] < 0.8 * fit["val_count_nll_before"]
    assert fit["confidence_temperature"] > 1.5
    assert fit["val_conf_nll_after"] < fit["val_conf_nll_before"]
    # The fit is the minimum: nearby temperatures are no better.
    t = fit["temperature"]
    assert calibrate.count_nll(z, y, t) <= min(
        calibrate.count_nll(z, y, t * 0.95), calibrate.count_nll(z, y, t * 1.05)
    )
    # An under-confident model gets T < 1; a calibrated one stays near 1.
    assert calibrate.fit(z / 16, y, c)["temperature"] < 0.5
    assert 0.8 < calibrate.fit(z / 4, y, c)["temperature"] < 1.25
    # Calibration improves the ECE of the softmax confidence as well.
    p_before = np.exp(z - z.max(1, keepdims=True))
    p_before /= p_before.sum(1, keepdims=True)
    zt = z / t
    p_after = np.exp(zt - zt.max(1, keepdims=True))
    p_after /= p_after.sum(1, keepdims=True)
    assert metrics.ece(p_after.max(1), correct) < 0.5 * metrics.ece(p_before.max(1), correct)


def test_metrics_match_numpy_oracles():
    rng = np.random.default_rng(1)
    n = 500
    y = rng.integers(0, 6, n)
    probs = rng.dirichlet(np.ones(8) * 0.5, n)
    conf = rng.uniform(0, 1, n)
    conf[:5] = [0.0, 1.0, 0.5, 0.1 + 1e-9, 0.999999]
    m = metrics.count_metrics(probs, y, conf, bins=10)
    pred = probs.argmax(1)
    correct = pred == y
    assert m["accuracy"]["value"] == pytest.approx(correct.mean())
    assert m["mae"]["value"] == pytest.approx(np.abs(pred - y).mean())
    assert m["within_1"]["value"] == pytest.approx((np.abs(pred - y) <= 1).mean())
    np.testing.assert_array_equal(m["confusion"]["value"], count_confusion(y, pred))
    for c in range(8):
        sel = y == c
        want = correct[sel].mean() if sel.any() else None
        assert m["per_class_accuracy"]["value"][c] == (
            pytest.approx(want) if want is not None else None
        )
    assert m["ece"]["value"] == pytest.approx(count_ece(conf, correct, 10), abs=1e-12)
    from scipy.stats import spearmanr

    assert m["spearman_conf_correct"]["value"] == pytest.approx(spearmanr(conf, correct).statistic)
    assert m["nll"]["value"] == pytest.approx(-np.mean(np.log(probs[np.arange(n), y])))
    # Perfectly calibrated confidences have an ECE near 0, a constant wrong one its gap.
    good = rng.uniform(0, 1, 20000)
    assert metrics.ece(good, rng.uniform(0, 1, 20000) < good) < 0.02
    assert metrics.ece(np.full(100, 0.9), np.zeros(100)) == pytest.approx(0.9)
    # A class with windows, none right, is called out; an absent class is not.
    p = np.eye(8)[[0, 0, 0, 0]]
    r = metrics.count_metrics(p, np.array([0, 0, 2, 2]), np.full(4, 0.5))
    assert r["zero_accuracy_classes"]["value"] == [2]
    assert np.isnan(r["spearman_conf_correct"]["value"])  # constant confidence: undefined
    probs_b, conf_b, cls, share = metrics.majority_baseline(np.array([1, 1, 1, 0, 2]), 3)
    assert cls == 1 and share == pytest.approx(0.6) and np.all(probs_b.argmax(1) == 1)
    np.testing.assert_allclose(probs_b.sum(1), 1)
    np.testing.assert_allclose(conf_b, 0.6)
