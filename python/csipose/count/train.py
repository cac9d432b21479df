"""``csipose count train``: CountNet on counting windows, then temperature scaling.

Loss per batch (count logits z, confidence logit c, true count y, and
r = 1[argmax z == y], which carries no gradient):

    CE(z, y; class weights) + conf_weight x BCEWithLogits(c, r) + brier_weight x mean (sigmoid(c) - r)^2

(the Brier term has its gradient, unlike upstream's). Class imbalance is
handled by CE class weights 1 / frequency (``loss.balance = "weights"``) or by
class-balanced sampling with replacement (``"sampler"``).

One seed drives the initialisation and the data order (the Rust shuffle of
``csipose.data.loader``), so the same configuration gives the same weights on
the same machine. Each epoch writes an atomic checkpoint
(``csipose.train.checkpoint``) and a line of ``metrics.jsonl``; the best epoch
(highest validation accuracy, then lowest validation NLL) is kept in
``checkpoints/best``. At the end the temperatures are fitted on the validation
part (``csipose.count.calibrate``) and written with the best weights to
``checkpoints/calibrated``, which becomes ``checkpoints/best``.
"""

from __future__ import annotations

import copy
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

import csipose
from csipose import _native
from csipose._files import write_json_atomic, write_text_atomic
from csipose.count import calibrate
from csipose.count.config import CountConfig
from csipose.count.data import N_CLASSES, CountData, dataset_path, prepare
from csipose.data.loader import epoch_seed
from csipose.models.countnet import CountNet
from csipose.train import checkpoint
from csipose.train.loop import TrainingError

FORMAT = "csipose-countnet-checkpoint"
INPUT_LAYOUT = (
    "[batch, 56 subcarriers, 20 frames] float32, subcarrier-major: the raw amplitude of one antenna "
    "after the declared subcarrier map (metadata data.subcarrier_definition); the z-score "
    "(preprocess.mean, preprocess.std) is applied inside the model"
)


UNCALIBRATED = {"temperature": 1.0, "confidence_temperature": 1.0, "note": "not calibrated yet"}


def class_weights(labels: np.ndarray) -> np.ndarray:
    """N / (classes present x n_c) for each present class, 1 for absent ones."""
    n = np.bincount(labels, minlength=N_CLASSES).astype(np.float64)
    present = n > 0
    w = np.ones(N_CLASSES)
    w[present] = n.sum() / (present.sum() * n[present])
    return w


def loss_terms(logits: Any, y: torch.Tensor, cfg: CountConfig,
               weight: torch.Tensor | None) -> dict[str, torch.Tensor]:  # fmt: skip
    """The three loss terms and their weighted sum."""
    correct = (logits.count.detach().argmax(dim=1) == y).to(logits.confidence.dtype)
    ce = F.cross_entropy(logits.count, y, weight=weight, label_smoothing=cfg.loss.label_smoothing)
    bce = F.binary_cross_entropy_with_logits(logits.confidence, correct)
    brier = ((torch.sigmoid(logits.confidence) - correct) ** 2).mean()
    total = ce + cfg.loss.conf_weight * bce + cfg.loss.brier_weight * brier
    return {"loss": total, "ce": ce, "bce": bce, "brier": brier}


@torch.no_grad()
def logits_of(model: CountNet, x: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Uncalibrated (count logits [n, 8], confidence logits [n]) in float64, on the
    model's device."""
    model.eval()
    device = next(model.parameters()).device
    zs, cs = [], []
    for s in range(0, len(x), batch_size):
        out = model(torch.from_numpy(x[s : s + batch_size]).to(device))
        zs.append(out.count.double().cpu().numpy())
        cs.append(out.confidence.double().cpu().numpy())
    if not zs:
        return np.zeros((0, N_CLASSES)), np.zeros(0)
    return np.concatenate(zs), np.concatenate(cs)


def _order(n: int, labels: np.ndarray, cfg: CountConfig, epoch: int) -> np.ndarray:
    seed = epoch_seed(cfg.train.seed, epoch)
    if cfg.loss.balance == "sampler":
        p = 1.0 / np.bincount(labels, minlength=N_CLASSES)[labels]
        rng = np.random.default_rng(seed)
        return rng.choice(n, size=n, replace=True, p=p / p.sum()).astype(np.int64)
    return _native.permutation(n, seed).astype(np.int64)


def _metadata(cfg: CountConfig, data: CountData, train_labels: np.ndarray,
              calibration: dict[str, Any] | None) -> dict[str, str]:  # fmt: skip
    return {
        "format": FORMAT,
        "csipose_version": csipose.__version__,
        "torch_version": torch.__version__,
        "model": "countnet",
        "classes": "counts 0..7 (people)",
        "input_layout": INPUT_LAYOUT,
        "config": json.dumps(cfg.to_dict(), sort_keys=True),
        "data": json.dumps(data.metadata()),
        "train_label_counts": json.dumps(np.bincount(train_labels, minlength=N_CLASSES).tolist()),
        "calibration": json.dumps(calibration or UNCALIBRATED),
    }


#: Keys that change how long or where a run goes, not what it computes (may differ on resume).
_EXECUTION = {("train", "time_budget_min"), ("train", "max_steps"), ("train", "early_stop"), ("train", "device"),
              ("train", "threads"), ("train", "run_dir"), ("data", "cache_dir")}  # fmt: skip


def _result_keys(d: dict[str, Any]) -> dict[str, Any]:
    return {s: {k: v for k, v in vals.items() if (s, k) not in _EXECUTION} for s, vals in d.items()}


def _stopped(cfg: CountConfig, state: dict[str, Any], started: float) -> bool:
    t = cfg.train
    return bool(
        (t.early_stop and state["stale_epochs"] >= t.early_stop)
        or (t.max_steps and state["step"] >= t.max_steps)
        or (t.time_budget_min and time.time() - started >= 60 * t.time_budget_min)
    )


def train(cfg: CountConfig, *, resume: str | None = None, progress: bool | None = None) -> Path:
    """Train as configured; returns the run directory. ``resume``: "auto" (the run's
    latest checkpoint, if any) or a checkpoint directory; a resumed run ends with the
    same weights as an uninterrupted one."""
    t = cfg.train
    run = Path(t.run_dir)
    if t.threads:
        torch.set_num_threads(t.threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.manual_seed(t.seed)
    device = torch.device(t.device)

    data = prepare(cfg, dataset_path(cfg))
    x_train, y_train = data.train_set()
    x_val, y_val = data.windows(cfg.data.val_part)
    model = CountNet()
    model.set_preprocess(torch.from_numpy(data.mean), torch.from_numpy(data.std))
    model.to(device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=t.epochs, eta_min=cfg.optim.lr * cfg.optim.min_lr_ratio
    )
    weight = None
    if cfg.loss.balance == "weights":
        weight = torch.tensor(class_weights(y_train), dtype=torch.float32, device=device)
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
    show = (sys.stderr.isatty() if progress is None else progress) and not os.environ.get("CI")
    state: dict[str, Any] = {"epoch": -1, "step": 0, "best_epoch": -1, "best_val_accuracy": -1.0,
                             "best_val_nll": math.inf, "stale_epochs": 0, "elapsed_s": 0.0, "history": [],
                             "train_windows": len(y_train), "val_windows": len(y_val)}  # fmt: skip
    meta = _metadata(cfg, data, y_train, None)
    best_state: dict[str, torch.Tensor] | None = None
    best_opt: dict[str, Any] | None = None
    ck_path = checkpoint.latest(run) if resume == "auto" else (Path(resume) if resume else None)
    if ck_path is None:
        checkpoint.set_aside(run)
    if ck_path is not None:
        ck = checkpoint.load(ck_path)
        if _result_keys(json.loads(ck["metadata"]["config"])) != _result_keys(cfg.to_dict()):
            raise TrainingError(
                f"{ck['path']}: the checkpoint was written with another configuration"
            )
        if "calibration" in ck["trainer"]:
            print(
                f"{run}: the run is finished and calibrated ({ck['path']}); nothing to resume",
                flush=True,
            )
            return run
        model.load_state_dict(ck["tensors"])
        optimizer.load_state_dict(ck["optimizer"]["optimizer"])
        scheduler.load_state_dict(ck["optimizer"]["scheduler"])
        checkpoint.set_rng_state(ck["rng"])
        state = ck["trainer"]
        best = checkpoint.load(run / "checkpoints" / "best")
        best_state, best_opt = best["tensors"], best["optimizer"]["optimizer"]
        print(f"resuming from {ck['path']} (epoch {state['epoch'] + 1} done)", flush=True)
    started = time.time() - state["elapsed_s"]
    print(f"CountNet: {len(y_train)} training windows (counts {np.bincount(y_train, minlength=8).tolist()}), "
          f"{len(y_val)} validation windows; {data.store.path}", flush=True)  # fmt: skip
    for epoch in range(state["epoch"] + 1, t.epochs):
        if epoch > 0 and _stopped(cfg, state, started):
            break
        model.train()
        order = _order(len(y_train), y_train, cfg, epoch)
        sums = {"loss": 0.0, "ce": 0.0, "bce": 0.0, "brier": 0.0}
        steps = 0
        t_epoch = time.time()
        batches = range(0, len(order), t.batch_size)
        bar = None
        if show:
            from tqdm import tqdm

            bar = tqdm(
                total=len(batches), desc=f"epoch {epoch + 1}/{t.epochs}", unit="batch", leave=False
            )
        for s in batches:
            idx = torch.from_numpy(order[s : s + t.batch_size])
            xb, yb = xt[idx].to(device), yt[idx].to(device)
            terms = loss_terms(model(xb), yb, cfg, weight)
            optimizer.zero_grad(set_to_none=True)
            terms["loss"].backward()
            if cfg.optim.clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.clip)
            optimizer.step()
            for k in sums:
                sums[k] += float(terms[k].detach())
            steps += 1
            state["step"] += 1
            if bar is not None:
                bar.set_postfix(loss=f"{float(terms['loss']):.4f}")
                bar.update()
            if t.max_steps and state["step"] >= t.max_steps:
                break
        if bar is not None:
            bar.close()
        scheduler.step()
        z, _ = logits_of(model, x_val, cfg.eval.batch_size)
        val_acc = float(np.mean(z.argmax(axis=1) == y_val))
        val_nll = calibrate.count_nll(z, y_val)
        improved = (val_acc, -val_nll) > (state["best_val_accuracy"], -state["best_val_nll"])
        if improved:
            state.update(
                best_epoch=epoch, best_val_accuracy=val_acc, best_val_nll=val_nll, stale_epochs=0
            )
            best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
            best_opt = copy.deepcopy(optimizer.state_dict())
        else:
            state["stale_epochs"] += 1
        state["epoch"] = epoch
        state["elapsed_s"] = time.time() - started
        mae = float(np.mean(np.abs(z.argmax(axis=1) - y_val)))
        state["history"].append({
            "epoch": epoch, "step": state["step"], **{f"train_{k}": v / max(steps, 1) for k, v in sums.items()},
            "val_accuracy": val_acc, "val_mae": mae, "val_nll": val_nll, "lr": optimizer.param_groups[0]["lr"],
            "epoch_s": round(time.time() - t_epoch, 3),
        })  # fmt: skip
        opt_state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
        checkpoint.save(run, f"epoch-{epoch:04d}", model=model, optimizer_state=opt_state,
                        trainer_state=state, metadata=meta, best=improved)  # fmt: skip
        checkpoint.prune(run, keep=2)
        _write_log(run, cfg, state)
        h = state["history"][-1]
        print(f"epoch {epoch + 1}/{t.epochs}: train loss {h['train_loss']:.4f}, val accuracy {val_acc:.3f}, "
              f"val MAE {mae:.3f}, val NLL {val_nll:.4f}, {h['epoch_s']:.1f} s", flush=True)  # fmt: skip
        if t.time_budget_min and time.time() - started >= 60 * t.time_budget_min:
            print(f"stopping: the time budget of {t.time_budget_min:g} min is spent", flush=True)

    # Temperature scaling of the best epoch on the validation part.
    assert best_state is not None and best_opt is not None  # at least one epoch ran
    model.cpu().load_state_dict(best_state)
    z, c = logits_of(model, x_val, cfg.eval.batch_size)
    cal = calibrate.fit(z, y_val, c)
    cal.update(epoch=state["best_epoch"], part=cfg.data.val_part)
    model.set_temperatures(cal["temperature"], cal["confidence_temperature"])
    state["calibration"] = cal
    print(f"calibration on {cfg.data.val_part}: T = {cal['temperature']:.4f} (count NLL "
          f"{cal['val_count_nll_before']:.4f} -> {cal['val_count_nll_after']:.4f}), T_conf = "
          f"{cal['confidence_temperature']:.4f} (confidence NLL {cal['val_conf_nll_before']:.4f} -> "
          f"{cal['val_conf_nll_after']:.4f})", flush=True)  # fmt: skip
    checkpoint.save(run, "calibrated", model=model, optimizer_state={"optimizer": best_opt},
                    trainer_state=state, metadata=_metadata(cfg, data, y_train, cal), best=True)  # fmt: skip
    _write_log(run, cfg, state)
    return run


def _write_log(run: Path, cfg: CountConfig, state: dict[str, Any]) -> None:
    write_text_atomic(
        run / "metrics.jsonl", "".join(json.dumps(h) + "\n" for h in state["history"])
    )
    write_json_atomic(run / "calibration.json", state.get("calibration") or {})
    write_text_atomic(run / "config.toml", cfg.to_toml())


__all__ = ["FORMAT", "TrainingError", "class_weights", "logits_of", "loss_terms", "train"]
