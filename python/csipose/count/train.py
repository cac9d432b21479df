"""``csipose count train``: CountNet on counting windows, then temperature scaling.

Loss per batch (count logits z, confidence logit c, true count y, and
r = 1[argmax z == y], which carries no gradient):

    CE(z, y; class weights) + conf_weight x BCEWithLogits(c, r) + brier_weight x mean (sigmoid(c) - r)^2

(the Brier term has its gradient, unlike upstream's). Class imbalance is
handled by CE class weights 1 / frequency (``loss.balance = "weights"``) or by
class-balanced sampling with replacement (``"sampler"``).

The loop is the shared training engine (``csipose.train.engine``; this module
is its count :class:`Task`). One seed drives the initialisation and the data
order (the Rust shuffle of ``csipose.data.loader``), so the same configuration
gives the same weights on the same machine. Each epoch writes an atomic
checkpoint and a line of ``metrics.jsonl``; the best epoch (highest validation
accuracy, then lowest validation NLL) is kept in ``checkpoints/best``. At the
end the temperatures are fitted on the validation part
(``csipose.count.calibrate``) and written with the best weights to
``checkpoints/calibrated``, which becomes ``checkpoints/best``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

import csipose
from csipose import _native
from csipose._files import write_json_atomic, write_text_atomic
from csipose.count import calibrate
from csipose.count import config as config_module
from csipose.count.config import CountConfig
from csipose.count.data import N_CLASSES, CountData, dataset_path, prepare
from csipose.data.loader import epoch_seed
from csipose.errors import TrainingError
from csipose.models.countnet import CountNet
from csipose.train import checkpoint
from csipose.train.config import ConfigError
from csipose.train.engine import Engine, Task, device_of

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


#: Keys that change how long or where a run goes, not what it computes: they may
#: differ on resume. (train.epochs sets the cosine period, so it may not.)
_FREE = frozenset({("train", "time_budget_min"), ("train", "max_steps"), ("train", "early_stop"),
                   ("train", "max_nonfinite"), ("train", "run_dir"), ("data", "cache_dir")})  # fmt: skip


class CountTask(Task):
    """CountNet on counting windows; best = highest validation accuracy, then lowest
    validation NLL; at the end, temperature scaling of the best epoch."""

    better_name = "validation accuracy (then NLL)"
    free_keys = _FREE

    def build(self) -> None:
        cfg, t = self.cfg, self.cfg.train
        self.device = device_of(t.device)
        self.data = data = prepare(cfg, dataset_path(cfg))
        self.x_train, self.y_train = data.train_set()
        self.x_val, self.y_val = data.windows(cfg.data.val_part)
        model = CountNet()
        model.set_preprocess(torch.from_numpy(data.mean), torch.from_numpy(data.std))
        self.countnet = model.to(self.device)
        self.model = self.net = self.countnet
        self.optimizer = torch.optim.AdamW(
            model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay
        )
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.optimizer, T_max=t.epochs, eta_min=cfg.optim.lr * cfg.optim.min_lr_ratio
        )
        self.weight = None
        if cfg.loss.balance == "weights":
            self.weight = torch.tensor(
                class_weights(self.y_train), dtype=torch.float32, device=self.device
            )
        self.xt, self.yt = torch.from_numpy(self.x_train), torch.from_numpy(self.y_train)
        if self.device.type == "cuda":
            self.xt, self.yt = self.xt.pin_memory(), self.yt.pin_memory()
        self.meta = _metadata(cfg, data, self.y_train, None)

    def start(self) -> None:
        y_train, y_val = self.y_train, self.y_val
        print(f"CountNet: {len(y_train)} training windows (counts {np.bincount(y_train, minlength=8).tolist()}), "
              f"{len(y_val)} validation windows; {self.data.store.path}", flush=True)  # fmt: skip

    def batches(self, epoch: int) -> tuple[int, Any]:
        order = _order(len(self.y_train), self.y_train, self.cfg, epoch)
        starts = range(0, len(order), self.cfg.train.batch_size)
        return len(starts), (
            torch.from_numpy(order[s : s + self.cfg.train.batch_size]) for s in starts
        )

    def loss(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        xb = self.xt[idx].to(self.device, non_blocking=True)
        yb = self.yt[idx].to(self.device, non_blocking=True)
        return loss_terms(self.net(xb), yb, self.cfg, self.weight)

    def validate(self) -> dict[str, float]:
        z, _ = logits_of(self.countnet, self.x_val, self.cfg.eval.batch_size)
        pred = z.argmax(axis=1)
        return {"val_accuracy": float(np.mean(pred == self.y_val)),
                "val_mae": float(np.mean(np.abs(pred - self.y_val))),
                "val_nll": calibrate.count_nll(z, self.y_val)}  # fmt: skip

    def initial_state(self) -> dict[str, Any]:
        return {"best_val_accuracy": -1.0, "best_val_nll": math.inf,
                "train_windows": len(self.y_train), "val_windows": len(self.y_val)}  # fmt: skip

    def improve(self, state: dict[str, Any], val: dict[str, float]) -> bool:
        acc, nll = val["val_accuracy"], val["val_nll"]
        if (acc, -nll) > (state["best_val_accuracy"], -state["best_val_nll"]):
            state.update(best_val_accuracy=acc, best_val_nll=nll)
            return True
        return False

    def metadata(self) -> dict[str, str]:
        return self.meta

    def saved_config(self, config_json: str) -> dict[str, Any]:
        try:
            return config_module.from_json(config_json).to_dict()
        except (ValueError, ConfigError) as e:
            raise TrainingError(f"the checkpoint's configuration cannot be read: {e}") from e

    def done_before(self, trainer_state: dict[str, Any]) -> bool:
        return "calibration" in trainer_state

    def epoch_line(self, epoch: int, row: dict[str, Any]) -> str:
        return (f"epoch {epoch + 1}/{self.cfg.train.epochs}: train loss {row['train_loss']:.4f}, val accuracy "
                f"{row['val_accuracy']:.3f}, val MAE {row['val_mae']:.3f}, val NLL {row['val_nll']:.4f}, "
                f"{row['epoch_s']:.1f} s")  # fmt: skip

    def write_logs(self, run: Path, state: dict[str, Any]) -> None:
        _write_log(run, self.cfg, state)

    def finish(self, run: Path, state: dict[str, Any]) -> None:
        """Temperature scaling of the best epoch (read back from checkpoints/best) on the
        validation part, written as checkpoints/calibrated, which becomes best."""
        cfg = self.cfg
        best = checkpoint.load(run / "checkpoints" / "best")
        model = self.countnet.cpu()
        model.load_state_dict(best["tensors"])
        z, c = logits_of(model, self.x_val, cfg.eval.batch_size)
        cal = calibrate.fit(z, self.y_val, c)
        cal.update(epoch=state["best_epoch"], part=cfg.data.val_part)
        model.set_temperatures(cal["temperature"], cal["confidence_temperature"])
        state["calibration"] = cal
        print(f"calibration on {cfg.data.val_part}: T = {cal['temperature']:.4f} (count NLL "
              f"{cal['val_count_nll_before']:.4f} -> {cal['val_count_nll_after']:.4f}), T_conf = "
              f"{cal['confidence_temperature']:.4f} (confidence NLL {cal['val_conf_nll_before']:.4f} -> "
              f"{cal['val_conf_nll_after']:.4f})", flush=True)  # fmt: skip
        opt = {"optimizer": best["optimizer"]["optimizer"]}
        meta = _metadata(cfg, self.data, self.y_train, cal)
        checkpoint.save(run, "calibrated", model=model, optimizer_state=opt, trainer_state=state,
                        metadata=meta, best=True)  # fmt: skip
        _write_log(run, cfg, state)


def train(cfg: CountConfig, *, resume: str | None = None, progress: bool | None = None) -> Path:
    """Train as configured; returns the run directory. ``resume``: "auto" (the run's
    latest checkpoint, if any) or a checkpoint directory; a resumed run ends with the
    same weights as an uninterrupted one."""
    return Engine(CountTask(cfg)).run(resume=resume, progress=progress)


def _write_log(run: Path, cfg: CountConfig, state: dict[str, Any]) -> None:
    write_text_atomic(
        run / "metrics.jsonl", "".join(json.dumps(h) + "\n" for h in state["history"])
    )
    write_json_atomic(run / "calibration.json", state.get("calibration") or {})
    write_text_atomic(run / "config.toml", cfg.to_toml())


__all__ = ["FORMAT", "TrainingError", "class_weights", "logits_of", "loss_terms", "train"]
