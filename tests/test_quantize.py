"""csipose quantize: int8 PTQ end to end on a tiny trained run, the QDQ ONNX
bound, provenance metadata, the untouched fp32 run, half-even rounding, the
mixed-precision scan, the report, and bad arguments.

One tiny wiflow-tiny run (1 epoch, one thread) is shared by the module; PT2E
export and ONNX export dominate the time."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("torchao")
pytest.importorskip("onnxruntime")

from csipose.data.simulate import simulate
from csipose.errors import CheckpointError, CsiposeError
from csipose.quantize import mixed, onnx_export, rounding
from csipose.quantize.pipeline import quantize
from csipose.quantize.report import report
from csipose.quantize.source import open_run, sha256_file, tree_digest
from csipose.train import config, train

pytestmark = pytest.mark.usefixtures("restore_torch_threads")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("quantize-store")
    return simulate(
        root / "store", environments=2, subjects=3, actions=["walk", "wave"], frames=16, seed=5
    )


def tiny_run(store: Path, run_dir: Path, *overrides: str) -> Path:
    cfg = config.load(None, ['data.source="store"', f'data.store="{store}"', f'train.run_dir="{run_dir}"',
                             "train.epochs=1", "train.batch_size=16", "train.threads=1",
                             'model.name="wiflow-tiny"', "model.options={input_pw_groups=2}",
                             *overrides])  # fmt: skip
    return train(cfg)


@pytest.fixture(scope="module")
def run(store, tmp_path_factory) -> Path:
    return tiny_run(store, tmp_path_factory.mktemp("quantize") / "run")


def test_windows_carry_the_runs_input_features(store, tmp_path):
    """A run trained with data.features is calibrated and evaluated on the same features
    (temporal_diff adds channels; capture_norm needs each window's room; augment is never
    applied to these windows)."""
    from csipose.train.loop import input_fields, model_input

    r = tiny_run(
        store, tmp_path / "run", 'data.features=["temporal_diff", "augment", "capture_norm"]'
    )
    src = open_run(r)
    x = src.windows("val", 8)
    b = src.data.store.gather(src.indices("val", 8), fields=input_fields(src.data))
    with torch.no_grad():
        want = model_input({k: torch.from_numpy(v) for k, v in b.items()}, torch.device("cpu"),
                           ["temporal_diff", "capture_norm"], src.data.rooms)  # fmt: skip
        assert torch.equal(x, want)
        assert src.model(x).shape[0] == 8


@pytest.fixture(scope="module")
def ptq_out(run, tmp_path_factory) -> tuple[Path, dict, dict]:
    torch.set_num_threads(1)
    before = tree_digest(run)
    out = tmp_path_factory.mktemp("q") / "out"
    quantize(run, "ptq", out=out, calibration=32)
    return out, before, tree_digest(run)


def test_ptq_writes_a_checked_deployable_directory(run, ptq_out):
    out, before, after = ptq_out
    assert before == after, "the fp32 run directory changed"
    d = out / "ptq"
    meta = json.loads((d / "quantize.json").read_text())
    src = open_run(run)
    assert meta["method"] == "ptq"
    n = min(32, len(src.data.parts["train"]))  # all of a smaller training part
    assert meta["calibration"] == {"part": "train", "split": "default", "windows": n, "seed": 0}
    assert meta["source"]["model_safetensors_sha256"] == sha256_file(
        src.checkpoint / "model.safetensors"
    )
    assert meta["source"]["data"] == json.loads(
        src.metadata["data"]
    )  # the checkpoint's preprocessing
    assert "8-bit" in meta["scheme"]
    # The QDQ graph computes what the torch reference graph computes, within one activation step.
    chk = meta["onnx_check"]
    assert chk["max_abs"] <= chk["bound"] and chk["activation_quantizers"] > 0
    import onnx

    m = onnx.load(d / "model.onnx")
    assert m.opset_import[0].version == 18
    ops = {n.op_type for n in m.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    props = {p.key: p.value for p in m.metadata_props}
    assert props["method"] == "ptq" and json.loads(props["source"])["model_safetensors_sha256"]
    # Dynamic batch, and every Conv1d of the temporal blocks quantized (int8 weights).
    sess = onnx_export.session(d / "model.onnx", 1)
    x = src.windows("val", 3)
    assert onnx_export.run(sess, x).shape == (3, src.data.keypoints, src.data.dims)
    int8 = [t for t in m.graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert sum(np.prod(t.dims) for t in int8) > 0.8 * sum(p.numel() for p in src.model.parameters())


def test_onnxruntime_runs_every_conv1d_as_an_int8_kernel(run, ptq_out, tmp_path):
    """The fast int8 path (int8_scope): onnxruntime fuses each quantized Conv1d, and
    only those, into a QLinearConv; the Conv2d layers stay float32 Conv."""
    import onnx
    import onnxruntime as ort

    out, _, _ = ptq_out
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED  # no NCHWc layout
    so.optimized_model_filepath = str(tmp_path / "opt.onnx")
    ort.InferenceSession(str(out / "ptq" / "model.onnx"), so, providers=["CPUExecutionProvider"])
    ops = [n.op_type for n in onnx.load(tmp_path / "opt.onnx").graph.node]
    model = open_run(run).model
    conv1d = sum(isinstance(m, torch.nn.Conv1d) for m in model.modules())
    conv2d = sum(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    assert ops.count("QLinearConv") == conv1d > 0
    assert ops.count("Conv") + ops.count("FusedConv") == conv2d > 0


def test_onnx_equals_the_torch_reference_graph(run, ptq_out):
    """Unoptimised onnxruntime runs the same Q/DQ graph: equal to float32 noise here."""
    out, _, _ = ptq_out
    import torchao.quantization.pt2e  # noqa: F401 -- registers the quantized ops for torch.export.load

    module = torch.export.load(out / "ptq" / "model.pt2").module()
    x = open_run(run).windows("val", 16, seed=7)
    with torch.no_grad():
        want = module(x).numpy()
    got = onnx_export.run(onnx_export.session(out / "ptq" / "model.onnx", 1, optimise=False), x)
    steps = onnx_export.activation_steps(out / "ptq" / "model.onnx")
    assert np.abs(got - want).max() <= max(steps)


def test_a_wrong_onnx_file_fails_the_check(run, ptq_out, tmp_path):
    out, _, _ = ptq_out
    src = open_run(run)
    fp32 = src.model.eval()
    with pytest.raises(CsiposeError, match="beyond the bound"):
        # the fp32 model is not what the int8 file computes: its difference exceeds one step
        onnx_export.check(_Shifted(fp32), out / "ptq" / "model.onnx", src.windows("val", 8))


class _Shifted(torch.nn.Module):
    def __init__(self, m: torch.nn.Module) -> None:
        super().__init__()
        self.m = m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.m(x) + 1.0


@pytest.mark.parametrize("x", [[0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.5]])
def test_ties_round_half_to_even_everywhere(x):
    a = np.asarray(x, np.float32)
    want = np.array([0, 2, 2, 0, -2, -2, 4]) + 128
    ours = rounding.quantize(a, 1.0, 128)
    theirs = torch.quantize_per_tensor(torch.tensor(a), 1.0, 128, torch.quint8).int_repr().numpy()
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"])], "q",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [len(x)])],
                          [helper.make_tensor_value_info("y", TensorProto.UINT8, [len(x)])],
                          [helper.make_tensor("s", TensorProto.FLOAT, [], [1.0]),
                           helper.make_tensor("z", TensorProto.UINT8, [], [128])])  # fmt: skip
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    onnx.checker.check_model(model)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    onnx_q = sess.run(None, {"x": a})[0]
    np.testing.assert_array_equal(ours, want)
    np.testing.assert_array_equal(theirs, want)
    np.testing.assert_array_equal(onnx_q, want)
    np.testing.assert_array_equal(rounding.fake_quantize(a, 1.0, 128), want - 128)
    with pytest.raises(ValueError, match="scale"):
        rounding.quantize(a, 0.0, 0)


def test_sensitivity_scan_reads_the_validation_part(run):
    src = open_run(run)
    calib = src.windows("train", 16)
    res = mixed.scan(src, calib, val_windows=32, modules=["tcn.network.0", "decoder"])
    # the decoder has no int8 layer (int8_scope: Conv2d stays float32), so it is not scanned
    assert res["part"] == "val" and [r["module"] for r in res["modules"]] == ["tcn.network.0"]
    assert all(np.isfinite(r["pck@20"]) and np.isfinite(r["mpjpe"]) for r in res["modules"])
    fake = {"modules": [{"module": "a", "pck@20_drop": 3.0, "mpjpe_rise": 0.1},
                        {"module": "b", "pck@20_drop": 0.1, "mpjpe_rise": 0.0},
                        {"module": "c", "pck@20_drop": 5.0, "mpjpe_rise": 0.0}]}  # fmt: skip
    assert mixed.choose(fake, max_drop=0.5, max_kept=2) == ["c", "a"]
    assert "tcn.network.0" in mixed.candidates(src.model) and "decoder" in mixed.candidates(
        src.model
    )


def test_fp16_and_the_report(run, ptq_out):
    out, _, _ = ptq_out
    quantize(run, "fp16", out=out)
    r = report(run, out, calibration=32, reps=(2, 1), threads=1)
    assert {"fp32", "ptq", "fp16", "ort-int8"} <= set(r["rows"])
    for row in r["rows"].values():
        assert {"val", "test", "test_unseen_env"} <= set(row["accuracy"])
        assert row["latency"]["ort_ms_b64"] > 0
    assert set(r["mean_pose_baseline"]) == {"val", "test", "test_unseen_env"}
    assert r["targets"]["int8_method"] == "ptq" and "met" in r["targets"]["size_ratio"]
    for f in ("report.json", "report.md", "report.png"):
        assert (out / f).stat().st_size > 0
    assert "mean-pose baseline" in (out / "report.md").read_text()


def test_bad_arguments_are_clear_errors(run, tmp_path):
    with pytest.raises(ValueError, match="unknown method"):
        quantize(run, "int4", out=tmp_path / "o")
    with pytest.raises(ValueError, match="calibration"):
        quantize(run, "ptq", out=tmp_path / "o", calibration=0)
    with pytest.raises(ValueError, match="qat_epochs"):
        quantize(run, "qat", out=tmp_path / "o", qat_epochs=0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError):
        quantize(tmp_path / "empty", "ptq", out=tmp_path / "o")
    from csipose.errors import CsiposeError

    with pytest.raises(CsiposeError, match="inside the fp32 run"):
        quantize(run, "fp16", out=run / "q")
    from csipose.cli import main

    assert (
        main(["quantize", str(tmp_path / "empty"), "--method", "ptq", "--out", str(tmp_path / "o")])
        == 2
    )


def test_qat_writes_a_checked_model_and_its_gap(run, tmp_path):
    before = tree_digest(run)
    (d,) = quantize(run, "qat", out=tmp_path / "o", calibration=16, qat_epochs=1)
    assert tree_digest(run) == before
    meta = json.loads((d / "quantize.json").read_text())
    assert meta["onnx_check"]["max_abs"] <= meta["onnx_check"]["bound"]
    assert meta["freeze_epoch"] == 0 and len(meta["history"]) == 1
    assert {"val", "test", "test_unseen_env"} <= set(meta["fake_quant_vs_converted"])
    # the converted graph runs the fake-quant model's weights and scales (qat.convert)
    assert all(abs(g["gap_points"]) <= 1.0 for g in meta["fake_quant_vs_converted"].values())
    assert (d / "checkpoints" / "latest.json").exists()
