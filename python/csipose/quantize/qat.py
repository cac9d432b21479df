"""int8 quantization-aware training from the trained fp32 weights (PT2E QAT).

The fp32 model is exported in training mode, ``prepare_qat_pt2e`` inserts
fake-quant (per-channel int8 weights, uint8 activations, BN kept unfolded so its
statistics still train), the observers are calibrated on training windows, and
training continues with the run's own data, loss and optimiser family at a
lower learning rate. For the final epochs (from ``qat_epochs // 2`` on) the
observers are disabled and BatchNorm runs on its running statistics, so the
fake-quant model trains the scales and statistics that ``convert_pt2e`` then
bakes in; forgetting either schedule step is the classic source of a large
fake-quant vs converted gap.

QAT is a task of the one training engine (csipose.train.engine): the pose
task's batches, model input, loss and validation, the engine's loop, non-finite
guard, atomic checkpoints and resume rules. Checkpoints go to
``OUT/qat/checkpoints`` and ``resume="auto"`` continues from the latest.
"""

from __future__ import annotations

import contextlib
import dataclasses
import types
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from csipose.quantize import int8_scope, ptq, qat_fold
from csipose.quantize.source import Source
from csipose.train import checkpoint
from csipose.train.config import Config
from csipose.train.engine import Engine
from csipose.train.loop import PoseTask, _metadata, validate

#: QAT continues at this fraction of the run's learning rate.
LR_RATIO = 0.05


def freeze_epoch(epochs: int) -> int:
    """First epoch with observers disabled and BatchNorm statistics frozen."""
    return epochs // 2


def prepare(
    src: Source, calibration: torch.Tensor, *, reduce_range: bool = False
) -> torch.fx.GraphModule:
    """The fake-quant model with calibrated observers (before any QAT step)."""
    from torchao.quantization.pt2e.quantize_pt2e import prepare_qat_pt2e

    graph = ptq.export(src.model.train(), calibration)
    src.model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = prepare_qat_pt2e(
            graph,
            ptq.quantizer(
                reduce_range=reduce_range,
                is_qat=True,
                only=int8_scope.fast_int8_modules(src.model),
                conv_outputs=True,
            ),
        )
    m.train = types.MethodType(_set_training, m)
    m.eval = types.MethodType(lambda self: _set_training(self, False), m)
    m.eval()  # observers see the calibration windows with BN on running statistics
    ptq.calibrate(m, calibration.split(64))
    return m


class _Unshared(torch.nn.Module):
    """A view of the fake-quant model whose state_dict copies tensors: observers that
    share quantization parameters (SharedQuantizationSpec) share storage, which
    safetensors refuses; loading the copies back restores the sharing."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.inner = [model]  # a list: not registered as a submodule

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:  # type: ignore[override]
        return {k: v.clone() for k, v in self.inner[0].state_dict().items()}

    def load_state_dict(self, state: Any, strict: bool = True, assign: bool = False) -> Any:
        return self.inner[0].load_state_dict(state, strict=strict, assign=assign)


def _set_training(gm: torch.fx.GraphModule, mode: bool = True) -> torch.fx.GraphModule:
    """train()/eval() for an exported graph: set the ``train``/``training`` argument of
    every op that has one (batch_norm, dropout, feature_dropout, ...).

    torch.export bakes the mode into the graph, and torchao 0.18's
    move_exported_model_to_eval only rewrites the _native_batch_norm_legit and
    dropout patterns, so torch 2.15's aten.batch_norm was left in training mode. A
    list of ops is not enough either: nn.Dropout2d exports as aten.feature_dropout,
    which an earlier list (batch_norm, dropout) missed, so WiFlow's conv blocks kept
    dropping channels at random in the "eval" fake-quant and converted QAT models,
    and the ONNX check compared onnxruntime with a random torch reference."""
    for node in gm.graph.nodes:
        if node.op != "call_function" or not isinstance(node.target, torch._ops.OpOverload):
            continue
        for i, a in enumerate(node.target._schema.arguments):
            if a.name not in _MODE_ARGS or str(a.type) != "bool":
                continue
            if a.name in node.kwargs:
                node.kwargs = {**node.kwargs, a.name: mode}
            elif i < len(node.args):
                node.args = (*node.args[:i], mode, *node.args[i + 1 :])
    gm.recompile()
    torch.nn.Module.train(gm, mode)
    return gm


#: Schema argument names that carry an op's train/eval mode.
_MODE_ARGS = ("train", "training")


def convert(fake_quant: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """The converted int8 graph (conv-BN folded) of the frozen fake-quant model, in
    eval mode, with the scales and zero points the fake-quant model trained with."""
    with _trained_qparams(fake_quant):
        converted = ptq.convert(fake_quant, qat=True)
    _set_training(converted, False)
    qat_fold.fold_float_conv_bn(converted)  # the float32 convs, as PTQ's graph has them
    return converted


@contextlib.contextmanager
def _trained_qparams(m: torch.nn.Module) -> Iterator[None]:
    """Make convert_pt2e bake in each fake-quant's stored scale and zero point.

    convert_pt2e takes them from ``calculate_qparams()``, i.e. recomputes them from
    the observer's min/max, but the fake-quant forward (torch's fused
    fused_moving_avg_obs_fake_quant, torch 2.15 / torchao 0.18) uses the values it
    stored, and for per-channel symmetric weights the two differ (see
    :func:`_observer_qparams`, which :func:`_frozen` applies so that they agree). The
    converted model then ran other int8 weights than the ones QAT trained and
    validated, a systematic fake-quant vs converted gap (8% of a conv's outputs one
    code off on a random Conv1d + BN). Baking in the stored values keeps the converted
    graph equal to the fake-quant model even for a model that was not frozen."""
    from torchao.quantization.pt2e.fake_quantize import FakeQuantizeBase

    patched = []
    for mod in m.modules():
        if (
            isinstance(mod, FakeQuantizeBase)
            and hasattr(mod, "scale")
            and hasattr(mod, "zero_point")
        ):
            scale, zero_point = mod.calculate_qparams()  # for their dtypes and shapes

            def stored(
                mod: Any = mod, s: torch.Tensor = scale, z: torch.Tensor = zero_point
            ) -> Any:
                return (mod.scale.detach().to(s.dtype).reshape(s.shape).clone(),
                        mod.zero_point.detach().to(z.dtype).reshape(z.shape).clone())  # fmt: skip

            mod.calculate_qparams = stored  # an instance attribute shadows the method
            patched.append(mod)
    try:
        yield
    finally:
        for mod in patched:
            del mod.calculate_qparams


def _frozen(m: torch.fx.GraphModule) -> None:
    from torchao.quantization.pt2e import disable_observer

    m.apply(disable_observer)
    _observer_qparams(m)
    m.eval()  # BatchNorm on running statistics, dropout off


def _observer_qparams(m: torch.nn.Module) -> None:
    """Make every fake-quant use the scale and zero point its observer computes, the
    ones convert_pt2e bakes in, from now on (observers must be disabled).

    torch's fused fake-quant op (fused_moving_avg_obs_fake_quant, torch 2.15) recomputes
    its qparams from the running min/max at every call, observer on or off, by its own
    rule: for per-channel symmetric weights absmax / 128 instead of the observer's /
    127.5, and for a channel whose weights all have one sign an asymmetric range (zero
    point -128), which also takes onnxruntime's QLinearConv off its fast path (3x slower
    on wiflow-tiny's depthwise conv). The frozen epochs therefore run the plain
    fake-quant ops on the observer's values: they train, and validate, the int8 weights
    that are deployed."""
    from torchao.quantization.pt2e.fake_quantize import FakeQuantizeBase

    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, FakeQuantizeBase) and hasattr(mod, "scale"):
                scale, zero_point = mod.calculate_qparams()
                mod.scale.resize_(scale.shape).copy_(scale)
                mod.zero_point.resize_(zero_point.shape).copy_(zero_point)
                mod.forward = types.MethodType(_fixed_fake_quant, mod)  # shadows the fused op


def _fixed_fake_quant(mod: Any, x: torch.Tensor) -> torch.Tensor:
    """Fake quantization with the module's stored scale and zero point (no observer)."""
    if not int(mod.fake_quant_enabled[0]):
        return x
    obs = mod.activation_post_process
    zero_point = mod.zero_point.to(torch.int32)
    if mod.is_per_channel:
        return torch.fake_quantize_per_channel_affine(
            x, mod.scale, zero_point, mod.ch_axis, obs.quant_min, obs.quant_max
        )
    return torch.fake_quantize_per_tensor_affine(
        x, mod.scale, zero_point, obs.quant_min, obs.quant_max
    )


class QatTask(PoseTask):
    """Quantization-aware training as a task of the one training engine: the pose
    task's data, loss, validation metric and logs, on the fake-quant model, with the
    freeze schedule (observers and BatchNorm statistics frozen from
    ``freeze_epoch``) and validation that never moves the scales."""

    def __init__(self, src: Source, cfg: Config, calibration: torch.Tensor, *, reduce_range: bool,
                 extra_metadata: dict[str, str]):  # fmt: skip
        super().__init__(cfg)
        self.src, self.calibration, self.reduce_range = src, calibration, reduce_range
        self.extra_metadata = extra_metadata
        self.state: dict[str, Any] = {}

    def build(self) -> None:
        cfg, data = self.cfg, self.src.data
        self.device, self.data = torch.device("cpu"), data
        self.fake_quant = prepare(self.src, self.calibration, reduce_range=self.reduce_range)
        self.model = _Unshared(self.fake_quant)  # what checkpoints save and resume loads
        self.net = self.fake_quant
        o = cfg.optim
        self.optimizer = torch.optim.AdamW(self.fake_quant.parameters(), lr=o.lr, betas=tuple(o.betas),
                                           weight_decay=o.weight_decay)  # fmt: skip
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.optimizer, T_max=cfg.train.epochs
        )
        self.offset = torch.tensor(data.mean_pose, dtype=torch.float32)
        self.meta = {**_metadata(cfg, data), **self.extra_metadata}

    def batches(self, epoch: int) -> tuple[int, Any]:
        if epoch >= freeze_epoch(self.cfg.train.epochs):
            _frozen(self.fake_quant)  # the engine has just put the model in training mode
        return super().batches(epoch)

    def validate(self) -> dict[str, float]:
        from torchao.quantization.pt2e import disable_observer, enable_observer

        m = self.fake_quant
        frozen = not m.training  # set by batches() for the frozen epochs
        m.apply(disable_observer)  # validation windows must never move the scales
        mpjpe, pck = validate(m, self.data, self.val_idx, self.cfg, self.device)  # leaves m in eval
        if not frozen:
            m.apply(enable_observer)
        return {"val_mpjpe": mpjpe, "val_pck@20": pck, "frozen": float(frozen)}

    def initial_state(self) -> dict[str, Any]:
        return {**super().initial_state(), "freeze_epoch": freeze_epoch(self.cfg.train.epochs)}

    def epoch_line(self, epoch: int, row: dict[str, Any]) -> str:
        frozen = " (observers and BN frozen)" if row.get("frozen") else ""
        return f"QAT {super().epoch_line(epoch, row)}{frozen}"

    def finish(self, run: Path, state: dict[str, Any]) -> None:
        self.state = state


def train(src: Source, out: Path, *, epochs: int, calibration: torch.Tensor, seed: int = 0,
          reduce_range: bool = False, resume: str | None = None, batch_size: int | None = None,
          metadata: dict[str, str] | None = None) -> tuple[torch.fx.GraphModule, dict[str, Any]]:  # fmt: skip
    """Run QAT on the training engine, checkpoints in ``out/checkpoints``; returns the
    fake-quant model (eval mode, observers off) and the trainer state."""
    if epochs < 1:
        raise ValueError(f"qat_epochs must be >= 1, got {epochs}")
    c = src.cfg
    # The run's data, loss and optimiser family; QAT's own length, seed and learning rate,
    # on the CPU, without the options that change arithmetic (amp, compile, batch scaling).
    cfg = dataclasses.replace(
        c,
        data=dataclasses.replace(c.data, workers=0),
        optim=dataclasses.replace(c.optim, lr=c.optim.lr * LR_RATIO, scheduler="cosine"),
        train=dataclasses.replace(c.train, run_dir=str(out), epochs=epochs, seed=seed, early_stop=0,
                                  max_steps=0, time_budget_min=0.0, device="cpu", threads=0, amp="none",
                                  compile=False, batch_scale=1, batch_size=batch_size or c.train.batch_size),
    )  # fmt: skip
    task = QatTask(src, cfg, calibration, reduce_range=reduce_range, extra_metadata=metadata or {})
    Engine(task).run(resume=resume, progress=False)
    _frozen(task.fake_quant)
    state = task.state or checkpoint.load(out, which="latest")["trainer"]
    return task.fake_quant, state
