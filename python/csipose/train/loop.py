"""The training loop: ``csipose train``.

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
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

import csipose
from csipose import metrics
from csipose._files import write_text_atomic
from csipose.data.loader import EpochSampler, WindowDataset, make_loader
from csipose.errors import CsiposeError
from csipose.train import checkpoint
from csipose.train.config import Config, ConfigError
from csipose.train.data import PoseData, dataset_path, prepare


class TrainingError(CsiposeError):
    """Training cannot go on (for example too many non-finite losses)."""


def _distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return (int(os.environ.get("RANK", "0")), world) if world > 1 else (0, 1)


def _device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise TrainingError(f"device {name!r} requested but torch sees no CUDA device")
    if name.startswith("cuda") and dist.is_initialized():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device(name)


def build_model(data: PoseData, cfg: Config) -> torch.nn.Module:
    from csipose.models import build_pose_model

    options = dict(cfg.model.options)
    if cfg.model.name != "wiflow-mmfi":
        options.setdefault("output_activation", False)  # see ModelConfig.options
    try:
        return build_pose_model(cfg.model.name, in_channels=data.in_channels, window=data.time_steps,
                                keypoints=data.keypoints, dims=data.dims, dropout=cfg.model.dropout,
                                **options)  # fmt: skip
    except (TypeError, ValueError) as e:
        raise ConfigError(f"model: cannot build {cfg.model.name!r} for {data.in_channels} input channels "
                          f"x {data.time_steps} steps: {e}") from e  # fmt: skip


def input_fields(data: PoseData) -> list[str]:
    return ["amplitude", "phase"] if data.inputs == "amplitude+phase" else ["amplitude"]


def model_input(
    batch: dict[str, torch.Tensor], device: torch.device, features: Any = ()
) -> torch.Tensor:
    """CSI windows [B, L, A, S, P] (amplitude, and the antennas' relative phase when
    the data asks for it) as the model's [B, C, L*P]."""
    from csipose.models import antenna_phase_features, to_channels_time
    from csipose.signal_features import pose_input

    if features:  # environment-robust inputs (data.features); [] leaves today's input
        return to_channels_time(pose_input(batch, features)).to(device, non_blocking=True)

    x = batch["amplitude"]
    if "phase" in batch:
        x = torch.cat([x, antenna_phase_features(batch["phase"])], dim=2)
    return to_channels_time(x).to(device, non_blocking=True)


def predict(model: torch.nn.Module, data: PoseData, indices: np.ndarray, batch_size: int,
            device: torch.device) -> np.ndarray:  # fmt: skip
    """Predictions [N, K, D] for windows ``indices``, in the data's units."""
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(indices), batch_size):
            b = data.store.gather(indices[start : start + batch_size], fields=input_fields(data))
            x = model_input({k: torch.from_numpy(v) for k, v in b.items()}, device, data.features)
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


def _scheduler(cfg: Config, optimizer: torch.optim.Optimizer):
    o = cfg.optim
    if o.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=cfg.train.epochs, eta_min=o.lr * o.min_lr_ratio
        )
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=o.plateau_factor, patience=o.plateau_patience,
        cooldown=o.plateau_cooldown, min_lr=o.lr * o.min_lr_ratio, threshold=1e-4,
    )  # fmt: skip


def train(cfg: Config, *, resume: str | None = None, progress: bool | None = None) -> Path:
    """Train as configured; returns the run directory. ``resume``: "auto" (the
    run's latest checkpoint, if any) or a checkpoint path."""
    from csipose.models import pose_loss

    rank, world = _distributed()
    device = _device(cfg.train.device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        device = _device(cfg.train.device)
    main = rank == 0
    run = Path(cfg.train.run_dir)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.manual_seed(cfg.train.seed)

    barrier = dist.barrier if dist.is_initialized() else None
    data = prepare(cfg, dataset_path(cfg, is_main=main, wait=barrier))
    model = build_model(data, cfg).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr, betas=tuple(cfg.optim.betas),
                                  weight_decay=cfg.optim.weight_decay)  # fmt: skip
    scheduler = _scheduler(cfg, optimizer)
    state: dict[str, Any] = {"epoch": -1, "step": 0, "best_val_mpjpe": math.inf, "best_epoch": -1,
                             "stale_epochs": 0, "nonfinite_skipped": 0, "elapsed_s": 0.0, "history": []}  # fmt: skip

    ckpt_path = checkpoint.latest(run) if resume == "auto" else (Path(resume) if resume else None)
    if ckpt_path is None and main:
        checkpoint.set_aside(run)
    if ckpt_path is not None:
        ck = checkpoint.load(ckpt_path)
        changed = _result_keys(json.loads(ck["metadata"]["config"])) != _result_keys(cfg.to_dict())
        if changed:
            raise TrainingError(
                f"{ck['path']}: the checkpoint was written with another configuration"
            )
        model.load_state_dict(ck["tensors"])
        optimizer.load_state_dict(ck["optimizer"]["optimizer"])
        scheduler.load_state_dict(ck["optimizer"]["scheduler"])
        checkpoint.set_rng_state(ck["rng"])
        state = ck["trainer"]
        if main:
            print(f"resuming from {ck['path']} (epoch {state['epoch'] + 1} done)", flush=True)

    net: torch.nn.Module = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    train_idx = data.parts[cfg.data.train_part]
    val_idx = data.parts[cfg.data.val_part][rank::world]
    sampler = EpochSampler(len(train_idx), seed=cfg.train.seed, rank=rank, world_size=world)
    dataset = WindowDataset(
        data.store, train_idx, fields=[*input_fields(data), "keypoints", "visibility"]
    )
    loader = make_loader(
        dataset, cfg.train.batch_size, sampler=sampler, num_workers=cfg.data.workers
    )
    offset = torch.tensor(data.mean_pose, dtype=torch.float32, device=device)
    show = (
        main
        and (sys.stderr.isatty() if progress is None else progress)
        and not os.environ.get("CI")
    )
    meta = _metadata(cfg, data)
    started = time.time() - state["elapsed_s"]

    for epoch in range(state["epoch"] + 1, cfg.train.epochs):
        if why := _finished(cfg, state, started):
            if main:
                print(f"stopping after epoch {epoch} of {cfg.train.epochs}: {why}", flush=True)
            break
        sampler.set_epoch(epoch)
        net.train()
        t_epoch, t_data, losses = time.time(), 0.0, []
        bar = _bar(len(loader), epoch, cfg.train.epochs) if show else None
        t_wait = time.time()
        for batch in loader:
            t_data += time.time() - t_wait
            x = model_input(batch, device, data.features)
            y = (batch["keypoints"].to(device) - offset) / data.target_scale
            loss = pose_loss(net(x), y, data.skeleton, visible=batch["visibility"].to(device))
            finite = torch.isfinite(loss.detach()).to(torch.float32)
            if world > 1:  # every rank skips together
                dist.all_reduce(finite, op=dist.ReduceOp.MIN)
            if finite.item() < 1:
                state["nonfinite_skipped"] += 1
                if state["nonfinite_skipped"] > cfg.train.max_nonfinite:
                    raise TrainingError(
                        f"{state['nonfinite_skipped']} non-finite losses (limit train.max_nonfinite = "
                        f"{cfg.train.max_nonfinite}); stopping, the last checkpoint is kept"
                    )
            else:
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.optim.clip > 0:
                    torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.optim.clip)
                optimizer.step()
                losses.append(loss.item())
            state["step"] += 1
            if bar is not None:
                bar.set_postfix(loss=f"{losses[-1]:.4f}" if losses else "nan")
                bar.update()
            if cfg.train.max_steps and state["step"] >= cfg.train.max_steps:
                break
            t_wait = time.time()
        if bar is not None:
            bar.close()
        val_mpjpe, val_pck = validate(model, data, val_idx, cfg, device)
        if cfg.optim.scheduler == "plateau":
            scheduler.step(val_mpjpe)
        else:
            scheduler.step()
        improved = val_mpjpe < state["best_val_mpjpe"]
        if improved:
            state["best_val_mpjpe"], state["best_epoch"], state["stale_epochs"] = (
                val_mpjpe,
                epoch,
                0,
            )
        else:
            state["stale_epochs"] += 1
        took = time.time() - t_epoch
        state["epoch"] = epoch
        state["elapsed_s"] = time.time() - started
        state["history"].append({
            "epoch": epoch, "step": state["step"], "train_loss": float(np.mean(losses)) if losses else math.nan,
            "val_mpjpe": val_mpjpe, "val_pck@20": val_pck, "lr": optimizer.param_groups[0]["lr"],
            "epoch_s": round(took, 3), "data_fraction": round(t_data / took, 4) if took else 0.0,
            "nonfinite_skipped": state["nonfinite_skipped"],
        })  # fmt: skip
        if main:
            opt_state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
            checkpoint.save(run, f"epoch-{epoch:04d}", model=model, optimizer_state=opt_state,
                            trainer_state=state, metadata=meta, best=improved)  # fmt: skip
            checkpoint.prune(run, keep=2)
            _write_logs(run, cfg, state)
            print(
                f"epoch {epoch + 1}/{cfg.train.epochs}: train loss {state['history'][-1]['train_loss']:.4f}, "
                f"val MPJPE {val_mpjpe:.4f} {data.units}, val torso-PCK@20 {val_pck:.3f}, "
                f"{took:.1f} s ({state['history'][-1]['data_fraction']:.0%} waiting for data)",
                flush=True,
            )
    if dist.is_initialized():
        dist.barrier()
    return run


#: Keys that change how long or where a run goes, not what it computes.
_EXECUTION = {("train", "epochs"), ("train", "time_budget_min"), ("train", "max_steps"), ("train", "early_stop"),
              ("train", "max_nonfinite"), ("train", "device"), ("train", "threads"), ("train", "run_dir"),
              ("data", "workers"), ("data", "cache_dir")}  # fmt: skip


def _result_keys(d: dict[str, Any]) -> dict[str, Any]:
    """The configuration without the execution keys (train.epochs is kept under the
    cosine schedule, whose period it sets)."""
    keep = {("train", "epochs")} if d["optim"]["scheduler"] == "cosine" else set()
    return {
        s: {k: v for k, v in vals.items() if (s, k) not in _EXECUTION - keep}
        for s, vals in d.items()
    }


def _finished(cfg: Config, state: dict[str, Any], started: float) -> str:
    """Why training stops before its next epoch ("" = it goes on)."""
    t = cfg.train
    if t.early_stop and state["stale_epochs"] >= t.early_stop:
        return f"no better validation MPJPE for {t.early_stop} epochs (train.early_stop)"
    if t.max_steps and state["step"] >= t.max_steps:
        return f"{t.max_steps} steps done (train.max_steps)"
    if t.time_budget_min and time.time() - started >= 60 * t.time_budget_min:
        return f"the {t.time_budget_min:g}-minute budget is spent (train.time_budget_min)"
    return ""


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


def _bar(total: int, epoch: int, epochs: int):
    from tqdm import tqdm

    return tqdm(total=total, desc=f"epoch {epoch + 1}/{epochs}", unit="batch", leave=False)


def _write_logs(run: Path, cfg: Config, state: dict[str, Any]) -> None:
    """metrics.jsonl and the curves, rewritten from the checkpointed history."""
    write_text_atomic(
        run / "metrics.jsonl", "".join(json.dumps(h) + "\n" for h in state["history"])
    )
    write_text_atomic(run / "config.toml", cfg.to_toml())
    from csipose.train.plots import training_curves

    training_curves(state["history"], run / "plots")
