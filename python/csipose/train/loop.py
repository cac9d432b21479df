"""Pose training, ``csipose train``: the pose :class:`~csipose.train.engine.Task`
run by the shared training engine (``csipose.train.engine``).

One seed drives everything (model initialisation, dropout, the Rust-shuffled
data order), so the same configuration gives bit-identical weights on the same
machine, and resuming from a checkpoint continues exactly as an uninterrupted
run. Under ``torchrun`` it trains with DDP (gloo on CPU, nccl on GPU): each
rank takes its shard of every epoch, validation sums are all-reduced, and only
rank 0 logs and writes checkpoints.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

import csipose
from csipose import metrics
from csipose._files import write_text_atomic
from csipose.data.loader import EpochSampler, WindowDataset, make_loader
from csipose.errors import TrainingError
from csipose.train import config as config_module
from csipose.train.config import Config, ConfigError
from csipose.train.data import PoseData, dataset_path, prepare
from csipose.train.engine import Engine, Task, device_of


def _distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return (int(os.environ.get("RANK", "0")), world) if world > 1 else (0, 1)


_device = device_of


def build_model(data: PoseData, cfg: Config) -> torch.nn.Module:
    from csipose.models import build_pose_model

    options = dict(cfg.model.options)
    if cfg.model.name != "wiflow-mmfi":
        options.setdefault("output_activation", False)  # see ModelConfig.options
    try:
        frame = build_pose_model(cfg.model.name, in_channels=data.in_channels, window=data.time_steps,
                                 keypoints=data.keypoints, dims=data.dims, dropout=cfg.model.dropout,
                                 **options)  # fmt: skip
    except (TypeError, ValueError) as e:
        raise ConfigError(f"model: cannot build {cfg.model.name!r} for {data.in_channels} input channels "
                          f"x {data.time_steps} steps: {e}") from e  # fmt: skip
    if cfg.model.temporal == "none":
        return frame
    from csipose.train.temporal import wrap

    return wrap(frame, data, cfg)


def input_fields(data: PoseData) -> list[str]:
    fields = ["amplitude", "phase"] if data.inputs == "amplitude+phase" else ["amplitude"]
    return [*fields, "environment"] if "capture_norm" in data.features else fields


def model_input(
    batch: dict[str, torch.Tensor], device: torch.device, features: Any = (), rooms: Any = None
) -> torch.Tensor:
    """CSI windows [B, L, A, S, P] (amplitude, and the antennas' relative phase when
    the data asks for it) as the model's [B, C, L*P]; ``rooms``: the data's
    :class:`~csipose.signal_features.RoomStats` for ``capture_norm``."""
    from csipose.models import antenna_phase_features, to_channels_time
    from csipose.signal_features import pose_input

    if features:  # environment-robust inputs (data.features); [] leaves today's input
        return to_channels_time(pose_input(batch, features, rooms)).to(device, non_blocking=True)

    x = batch["amplitude"]
    if "phase" in batch:
        x = torch.cat([x, antenna_phase_features(batch["phase"])], dim=2)
    return to_channels_time(x).to(device, non_blocking=True)


def predict(model: torch.nn.Module, data: PoseData, indices: np.ndarray, batch_size: int,
            device: torch.device) -> np.ndarray:  # fmt: skip
    """Predictions [N, K, D] for windows ``indices``, in the data's units."""
    from csipose.models.temporal import TemporalPoseModel

    if isinstance(model, TemporalPoseModel):  # each window from the windows before it too
        from csipose.train import temporal

        return temporal.predict(model, data, indices, batch_size, device)
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(indices), batch_size):
            b = data.store.gather(indices[start : start + batch_size], fields=input_fields(data))
            x = model_input({k: torch.from_numpy(v) for k, v in b.items()}, device, data.features,
                            data.rooms)  # fmt: skip
            out.append(model(x).float().cpu().numpy())
    p = np.concatenate(out) if out else np.zeros((0, data.keypoints, data.dims), np.float32)
    return (p * data.target_scale + data.mean_pose).astype(np.float32)


def _labels(data: PoseData, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    b = data.store.gather(indices, fields=["keypoints", "visibility"])
    return b["keypoints"], b["visibility"]


def validate(model: torch.nn.Module, data: PoseData, indices: np.ndarray, cfg: Config,
             device: torch.device) -> tuple[float, float]:  # fmt: skip
    """Validation MPJPE and torso-PCK@20 over ``indices``, summed over all ranks."""
    pred = predict(model, data, indices, cfg.eval.batch_size, device)
    gt, vis = _labels(data, indices)
    sums = torch.zeros(4, dtype=torch.float64)
    if len(indices):
        curve, mp = metrics.pck_and_mpjpe(pred, gt, [0.2], skeleton=data.skeleton, visible=vis)
        sums += torch.tensor(
            [float(mp) * mp.count, mp.count, curve.values[0] * curve.scored, curve.scored]
        )
    if dist.is_initialized():
        sums = sums.to(device)
        dist.all_reduce(sums)
        sums = sums.cpu()
    d, n, c, s = sums.tolist()
    return (d / n if n else math.nan), (c / s if s else math.nan)


def scaled(cfg: Config) -> tuple[int, float]:
    """The batch size and learning rate after ``train.batch_scale`` (the linear scaling
    rule: k times the batch, k times the learning rate; 1 = as configured)."""
    k = cfg.train.batch_scale
    return cfg.train.batch_size * k, cfg.optim.lr * k


def _scheduler(cfg: Config, optimizer: torch.optim.Optimizer):
    o = cfg.optim
    lr = scaled(cfg)[1]
    if o.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=cfg.train.epochs, eta_min=lr * o.min_lr_ratio
        )
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=o.plateau_factor, patience=o.plateau_patience,
        cooldown=o.plateau_cooldown, min_lr=lr * o.min_lr_ratio, threshold=1e-4,
    )  # fmt: skip


class PoseTask(Task):
    """Pose regression: WiFlow-STD family models on windows of a store, loss
    ``csipose.models.pose_loss`` on standardised targets, best = lowest validation MPJPE."""

    better_name = "validation MPJPE"

    def __init__(self, cfg: Config):
        super().__init__(cfg)
        keep = {("train", "epochs")} if cfg.optim.scheduler == "cosine" else set()
        self.free_keys = frozenset(_FREE - keep)
        self.rank, self.world = _distributed()

    def build(self) -> None:
        cfg = self.cfg
        self.device = _device(cfg.train.device)
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
            self.device = _device(cfg.train.device)
        barrier = dist.barrier if dist.is_initialized() else None
        self.data = data = prepare(cfg, dataset_path(cfg, is_main=self.rank == 0, wait=barrier))
        self.model = build_model(data, cfg).to(self.device)
        self.net = self.model
        o = cfg.optim
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=scaled(cfg)[1], betas=tuple(o.betas),
                                           weight_decay=o.weight_decay)  # fmt: skip
        self.scheduler = _scheduler(cfg, self.optimizer)
        self.offset = torch.tensor(data.mean_pose, dtype=torch.float32, device=self.device)
        self.meta = _metadata(cfg, data)

    def start(self) -> None:
        cfg, data, device = self.cfg, self.data, self.device
        if self.world > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[device.index] if device.type == "cuda" else None
            )
        train_idx = data.parts[cfg.data.train_part]
        self.val_idx = data.parts[cfg.data.val_part][self.rank :: self.world]
        self.sampler = EpochSampler(len(train_idx), seed=cfg.train.seed, rank=self.rank,
                                    world_size=self.world)  # fmt: skip
        dataset = WindowDataset(
            data.store, train_idx, fields=[*input_fields(data), "keypoints", "visibility"]
        )
        self.loader = make_loader(dataset, scaled(cfg)[0], sampler=self.sampler,
                                  num_workers=cfg.data.workers, pin_memory=device.type == "cuda")  # fmt: skip

    def batches(self, epoch: int) -> tuple[int, Any]:
        self.sampler.set_epoch(epoch)
        return len(self.loader), self.loader

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        from csipose.models import pose_loss

        device, data = self.device, self.data
        x = model_input(batch, device, data.features, data.rooms)
        y = (batch["keypoints"].to(device, non_blocking=True) - self.offset) / data.target_scale
        vis = batch["visibility"].to(device, non_blocking=True)
        return {"loss": pose_loss(self.net(x), y, data.skeleton, visible=vis)}

    def validate(self) -> dict[str, float]:
        mpjpe, pck = validate(self.model, self.data, self.val_idx, self.cfg, self.device)
        return {"val_mpjpe": mpjpe, "val_pck@20": pck}

    def scheduler_step(self, val: dict[str, float]) -> None:
        if self.cfg.optim.scheduler == "plateau":
            self.scheduler.step(val["val_mpjpe"])
        else:
            self.scheduler.step()

    def initial_state(self) -> dict[str, Any]:
        return {"best_val_mpjpe": math.inf}

    def improve(self, state: dict[str, Any], val: dict[str, float]) -> bool:
        if val["val_mpjpe"] < state["best_val_mpjpe"]:
            state["best_val_mpjpe"] = val["val_mpjpe"]
            return True
        return False

    def metadata(self) -> dict[str, str]:
        return self.meta

    def saved_config(self, config_json: str) -> dict[str, Any]:
        try:
            return config_module.from_dict(json.loads(config_json)).to_dict()
        except (ValueError, ConfigError) as e:
            raise TrainingError(f"the checkpoint's configuration cannot be read: {e}") from e

    def epoch_line(self, epoch: int, row: dict[str, Any]) -> str:
        return (f"epoch {epoch + 1}/{self.cfg.train.epochs}: train loss {row['train_loss']:.4f}, "
                f"val MPJPE {row['val_mpjpe']:.4f} {self.data.units}, val torso-PCK@20 {row['val_pck@20']:.3f}, "
                f"{row['epoch_s']:.1f} s ({row['data_fraction']:.0%} waiting for data)")  # fmt: skip

    def write_logs(self, run: Path, state: dict[str, Any]) -> None:
        _write_logs(run, self.cfg, state)


def train(cfg: Config, *, resume: str | None = None, progress: bool | None = None) -> Path:
    """Train as configured; returns the run directory. ``resume``: "auto" (the
    run's latest checkpoint, if any) or a checkpoint path."""
    if cfg.model.temporal != "none":
        from csipose.train.temporal import TemporalPoseTask

        return Engine(TemporalPoseTask(cfg)).run(resume=resume, progress=progress)
    return Engine(PoseTask(cfg)).run(resume=resume, progress=progress)


#: Keys that change how long or where a run goes, not what it computes: they may
#: differ on resume (train.epochs only under the plateau schedule; the cosine
#: period is train.epochs). Threads, device, amp and compile change the arithmetic.
_FREE = {("train", "epochs"), ("train", "time_budget_min"), ("train", "max_steps"), ("train", "early_stop"),
         ("train", "max_nonfinite"), ("train", "run_dir"), ("data", "workers"), ("data", "cache_dir")}  # fmt: skip


def _metadata(cfg: Config, data: PoseData) -> dict[str, str]:
    return {
        "format": "csipose-pose-checkpoint",
        "csipose_version": csipose.__version__,
        "torch_version": torch.__version__,
        "model": cfg.model.name,
        "config": json.dumps(cfg.to_dict(), sort_keys=True),
        "data": json.dumps(data.metadata()),
        "input_layout": "csipose.models.to_channels_time of [batch, frames, antennas (+ cos, sin of the relative "
        "phase of antennas 1.. when data.inputs = amplitude+phase), subcarriers, packets]",
    }


def _write_logs(run: Path, cfg: Config, state: dict[str, Any]) -> None:
    """metrics.jsonl and the curves, rewritten from the checkpointed history."""
    write_text_atomic(
        run / "metrics.jsonl", "".join(json.dumps(h) + "\n" for h in state["history"])
    )
    write_text_atomic(run / "config.toml", cfg.to_toml())
    from csipose.train.plots import training_curves

    training_curves(state["history"], run / "plots")
