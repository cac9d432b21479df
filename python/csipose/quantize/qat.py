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

This loop is deliberately thin: batches, the model input, the loss, the
validation and the checkpoint files are the training package's own
(csipose.train.loop / checkpoint), called, not copied. Checkpoints go to
``OUT/qat/checkpoints`` and ``resume="auto"`` continues from the latest.
"""

from __future__ import annotations

import math
import types
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from csipose.data.loader import EpochSampler, WindowDataset, make_loader
from csipose.quantize import ptq
from csipose.quantize.source import Source
from csipose.train import checkpoint
from csipose.train.loop import TrainingError, input_fields, model_input, validate

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
        m = prepare_qat_pt2e(graph, ptq.quantizer(reduce_range=reduce_range, is_qat=True))
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


def _set_training(gm: torch.fx.GraphModule, mode: bool = True) -> torch.fx.GraphModule:
    """train()/eval() for an exported graph: flip the ``training`` argument of its
    batch_norm and dropout nodes. (torchao's move_exported_model_to_eval rewrites
    the older _native_batch_norm_legit patterns; torch 2.15 exports aten.batch_norm
    and aten.dropout, which it leaves in training mode.)"""
    flags = {torch.ops.aten.batch_norm.default: 5, torch.ops.aten.dropout.default: 2}
    for node in gm.graph.nodes:
        if node.op == "call_function" and node.target in flags:
            args = list(node.args)
            args[flags[node.target]] = mode
            node.args = tuple(args)
    gm.recompile()
    torch.nn.Module.train(gm, mode)
    return gm


def _frozen(m: torch.fx.GraphModule) -> None:
    from torchao.quantization.pt2e import disable_observer

    m.apply(disable_observer)
    m.eval()  # BatchNorm on running statistics, dropout off


def train(src: Source, out: Path, *, epochs: int, calibration: torch.Tensor, seed: int = 0,
          reduce_range: bool = False, resume: str | None = None, batch_size: int | None = None,
          metadata: dict[str, str] | None = None) -> tuple[torch.fx.GraphModule, dict[str, Any]]:  # fmt: skip
    """Run QAT; returns the fake-quant model (eval mode, observers off) and the trainer state."""
    from torchao.quantization.pt2e import disable_observer, enable_observer

    from csipose.models import pose_loss

    if epochs < 1:
        raise ValueError(f"qat_epochs must be >= 1, got {epochs}")
    cfg, data = src.cfg, src.data
    device = torch.device("cpu")
    torch.manual_seed(seed)
    m = prepare(src, calibration, reduce_range=reduce_range)
    opt = torch.optim.AdamW(m.parameters(), lr=cfg.optim.lr * LR_RATIO, betas=tuple(cfg.optim.betas),
                            weight_decay=cfg.optim.weight_decay)  # fmt: skip
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    state: dict[str, Any] = {
        "epoch": -1,
        "step": 0,
        "history": [],
        "freeze_epoch": freeze_epoch(epochs),
    }
    ck_path = checkpoint.latest(out) if resume == "auto" else (Path(resume) if resume else None)
    if ck_path is not None:
        ck = checkpoint.load(ck_path)
        if ck["trainer"].get("epochs") not in (None, epochs):
            raise TrainingError(
                f"{ck['path']}: the QAT checkpoint was written for {ck['trainer']['epochs']} epochs"
            )
        if ck["trainer"]["epoch"] + 1 >= state["freeze_epoch"]:
            _frozen(m)
        m.load_state_dict(ck["tensors"])
        opt.load_state_dict(ck["optimizer"]["optimizer"])
        sched.load_state_dict(ck["optimizer"]["scheduler"])
        checkpoint.set_rng_state(ck["rng"])
        state = ck["trainer"]
    state["epochs"] = epochs
    train_idx = data.parts[cfg.data.train_part]
    val_idx = data.parts[cfg.data.val_part]
    sampler = EpochSampler(len(train_idx), seed=seed)
    fields = [*input_fields(data), "keypoints", "visibility"]
    loader = make_loader(WindowDataset(data.store, train_idx, fields=fields),
                         batch_size or cfg.train.batch_size, sampler=sampler, num_workers=0)  # fmt: skip
    offset = torch.tensor(data.mean_pose, dtype=torch.float32)
    for epoch in range(state["epoch"] + 1, epochs):
        if epoch >= state["freeze_epoch"]:
            _frozen(m)
        else:
            m.train()
        sampler.set_epoch(epoch)
        losses = []
        for batch in loader:
            x = model_input(batch, device)
            y = (batch["keypoints"] - offset) / data.target_scale
            loss = pose_loss(m(x), y, data.skeleton, visible=batch["visibility"])
            if not torch.isfinite(loss):
                raise TrainingError(f"QAT epoch {epoch}: non-finite loss")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.optim.clip > 0:
                torch.nn.utils.clip_grad_norm_(m.parameters(), cfg.optim.clip)
            opt.step()
            losses.append(loss.item())
            state["step"] += 1
        sched.step()
        frozen = epoch >= state["freeze_epoch"]
        m.apply(disable_observer)  # validation windows must never move the scales
        val_mpjpe, val_pck = validate(m, data, val_idx, cfg, device)  # leaves m in eval mode
        if not frozen:
            m.apply(enable_observer)
        state["epoch"] = epoch
        state["history"].append({"epoch": epoch, "train_loss": float(np.mean(losses)) if losses else math.nan,
                                 "val_mpjpe": val_mpjpe, "val_pck@20": val_pck, "frozen": frozen})  # fmt: skip
        checkpoint.save(out, f"epoch-{epoch:04d}", model=_Unshared(m),
                        optimizer_state={"optimizer": opt.state_dict(), "scheduler": sched.state_dict()},
                        trainer_state=state, metadata=metadata or {})  # fmt: skip
        checkpoint.prune(out, keep=2)
        print(f"QAT epoch {epoch + 1}/{epochs}{' (observers and BN frozen)' if frozen else ''}: "
              f"train loss {state['history'][-1]['train_loss']:.4f}, val MPJPE {val_mpjpe:.4f} {data.units}, "
              f"val torso-PCK@20 {val_pck:.3f}", flush=True)  # fmt: skip
    _frozen(m)
    return m, state
