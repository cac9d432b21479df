"""QAT's eval-mode graphs: deterministic, equal to the fp32 model's eval mode, and
the converted graph equal to its ONNX file.

Regression: the QAT graph is exported in training mode and switched to eval by
``qat._set_training``, which flipped only aten.batch_norm and aten.dropout.
nn.Dropout2d exports as aten.feature_dropout, so WiFlow's conv blocks kept
dropping channels at random in the "eval" fake-quant and converted models; the
ONNX check then compared onnxruntime with a random torch reference (99% of
outputs off on a random wiflow-tiny, 0.535 on the built-in job's run).
BatchNorm statistics are randomised so that a BatchNorm left on batch
statistics, or a wrong conv-BN fold, shows too.
"""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("torchao")
pytest.importorskip("onnxruntime")

from csipose.models.wiflow import WiFlowSTD, preset
from csipose.quantize import onnx_export, ptq, qat

pytestmark = pytest.mark.usefixtures("restore_torch_threads")


def _randomise_batch_norm(model: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) * 2 - 1)
            m.running_var.copy_(torch.rand(n, generator=g) * 2.8 + 0.2)
            m.weight.data.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=g) * 2 - 1)


class _EveryMode(torch.nn.Module):
    """One of each op whose result depends on train/eval."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv1d(4, 6, 3, padding=1)
        self.bn = torch.nn.BatchNorm1d(6)
        self.drop = torch.nn.Dropout(0.5)
        self.conv2d = torch.nn.Conv2d(1, 3, (1, 3), padding=(0, 1))
        self.bn2d = torch.nn.BatchNorm2d(3)
        self.drop2d = torch.nn.Dropout2d(0.5)
        self.alpha = torch.nn.AlphaDropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(F.silu(self.bn(self.conv(x))))
        x = self.drop2d(F.silu(self.bn2d(self.conv2d(x.unsqueeze(1)))))
        return self.alpha(x)


@torch.no_grad()
def test_set_training_turns_every_dropout_and_batch_norm_off_and_on():
    torch.manual_seed(0)
    model = _EveryMode()
    _randomise_batch_norm(model, 1)
    x = torch.randn(8, 4, 10)
    g = ptq.export(model.train(), x)  # the graph bakes training mode in, as QAT's does
    qat._set_training(g, False)
    want = model.eval()(x)
    got, again = g(x), g(x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert torch.equal(got, again)
    assert not g.training
    qat._set_training(g, True)
    modes = [a for n in g.graph.nodes if n.op == "call_function" and hasattr(n.target, "_schema")
             for a, s in zip(n.args, n.target._schema.arguments, strict=False)
             if s.name in ("train", "training")]  # fmt: skip
    assert len(modes) == 5 and all(modes)  # 2 BatchNorm, 3 dropouts, all back in training mode
    assert g.training


def test_qat_converted_graph_equals_its_onnx_file(tmp_path):
    """Fake-quant (eval) -> converted (conv-BN folded) -> ONNX on a random wiflow-tiny
    after a few QAT steps: the converted graph and onnxruntime agree to float noise,
    and the converted graph computes what the fake-quant model computes (the
    fold only reorders float arithmetic, which can flip a rare code)."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = WiFlowSTD(
        preset("tiny", in_channels=16, window=20, keypoints=5, output_activation=False)
    )
    _randomise_batch_norm(model, 2)
    calib, held_out = torch.randn(64, 16, 20), torch.randn(32, 16, 20)
    fq = qat.prepare(types.SimpleNamespace(model=model), calib)  # type: ignore[arg-type]
    fq.train()
    opt = torch.optim.SGD(fq.parameters(), lr=1e-3)
    target = torch.randn(16, 5, 2)
    for _ in range(2):  # QAT steps on batch statistics, observers on
        loss = (fq(calib[:16]) - target).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    qat._frozen(fq)
    with torch.no_grad():
        fake = fq(held_out)
        assert torch.equal(fake, fq(held_out)), "the eval fake-quant model is random"
    converted = qat.convert(fq)
    # Every conv-BN pair folded: torchao folds the int8 convs, qat_fold the float32 ones
    # (the conv stem and decoder); only the attention's BatchNorms (after einsums) remain.
    convs = (torch.ops.aten.conv1d.default, torch.ops.aten.conv2d.default)
    after = [n.args[0] for n in converted.graph.nodes if n.target in (
        torch.ops.aten.batch_norm.default, torch.ops.aten.div.Tensor)]  # fmt: skip
    assert not any(isinstance(a, torch.fx.Node) and a.target in convs for a in after)
    assert sum(n.target == torch.ops.aten.batch_norm.default for n in converted.graph.nodes) == 4
    # Symmetric int8 weights (zero point 0), as the scheme says and QLinearConv's fast
    # path needs; torch's fused fake-quant op gives one-signed channels zero point -128.
    deq = [n for n in converted.graph.nodes
           if n.target == torch.ops.quantized_decomposed.dequantize_per_channel.default]  # fmt: skip
    zero_points = [getattr(converted, n.args[2].target) for n in deq]
    assert deq and all(bool((z == 0).all()) for z in zero_points)
    path = onnx_export.export(converted, held_out[:2], tmp_path / "model.onnx", {})
    chk = onnx_export.check(converted, path, held_out)
    assert chk["max_abs"] <= chk["bound"]
    # A one-code flip inside the graph moves one window's outputs (10 of 320 here); with
    # the dropout left on 99% of the outputs differed.
    assert chk["share_beyond_float_tol"] <= 0.1, chk
    with torch.no_grad():
        gap = (fake - converted(held_out)).abs().numpy()
    step = chk["largest_activation_step"]
    # 99% of the outputs differed when convert recomputed the weight scales (qat.convert)
    assert gap.max() <= step and float((gap > 1e-4).mean()) <= 0.1, (gap.max(), step)
    # and ONNX against the fake-quant model: the same bound the pipeline's check uses
    got = onnx_export.run(onnx_export.session(path, 1, optimise=False), held_out)
    assert np.abs(got - fake.numpy()).max() <= step
