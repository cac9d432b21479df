"""The training engine shared by pose training (``csipose train``) and count
training (``csipose count train``).

The engine owns what every training run does the same way: seeding, the epoch
loop and its optimiser step, the non-finite loss guard, the stop rules
(epochs, steps, early stopping, an optional wall-clock budget), atomic
checkpoints (every epoch, ``best``, the newest two epochs, ``latest.json``),
resume (bit-identical continuation, refused when the configuration would change
the arithmetic), setting an earlier run aside, tqdm progress (on a TTY, rank 0)
and ``metrics.jsonl``. A :class:`Task` supplies the model, the data, the loss,
the validation metrics and what "better" means.

The order of random draws is part of the contract (the same seed gives the same
weights as before this engine existed): seed, then :meth:`Task.build` (data,
model, optimiser), then the resumed RNG state, then :meth:`Task.start`.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Iterable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from csipose import checkpoint as ckfind
from csipose.errors import TrainingError
from csipose.train import checkpoint


class Task:
    """What one kind of training supplies to the :class:`Engine`. Attributes set by
    :meth:`build`: ``model`` (saved), ``net`` (trained: the model, or its DDP or
    compiled wrapper), ``optimizer``, ``scheduler``, ``device``."""

    #: Shown in the early-stopping message: "no better {better_name} for N epochs".
    better_name = "validation metric"
    #: (section, key) pairs that change neither the numbers nor the result: they
    #: may differ when a run is resumed.
    free_keys: frozenset[tuple[str, str]] = frozenset()
    rank, world = 0, 1

    model: torch.nn.Module
    net: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    device: torch.device

    def __init__(self, cfg: Any):
        self.cfg = cfg

    def build(self) -> None:
        """Data, model, optimiser and scheduler (after seeding, before resuming)."""
        raise NotImplementedError

    def start(self) -> None:
        """After resuming, before the first epoch (DDP wrapper, loader)."""

    def batches(self, epoch: int) -> tuple[int, Iterable[Any]]:
        """The number of batches of ``epoch`` and the batches, in the seeded order."""
        raise NotImplementedError

    def loss(self, batch: Any) -> dict[str, torch.Tensor]:
        """``{"loss": the loss to minimise, other terms to log}`` of one batch."""
        raise NotImplementedError

    def validate(self) -> dict[str, float]:
        """The validation metrics, in ``metrics.jsonl`` order (keys val_...)."""
        raise NotImplementedError

    def scheduler_step(self, val: dict[str, float]) -> None:
        self.scheduler.step()

    def improve(self, state: dict[str, Any], val: dict[str, float]) -> bool:
        """Whether ``val`` is better than the best so far; if so record it in ``state``."""
        raise NotImplementedError

    def initial_state(self) -> dict[str, Any]:
        return {}

    def metadata(self) -> dict[str, str]:
        raise NotImplementedError

    def saved_config(self, config_json: str) -> dict[str, Any]:
        """The configuration a checkpoint was written with, defaults filled in."""
        raise NotImplementedError

    def done_before(self, trainer_state: dict[str, Any]) -> bool:
        """Whether a resumed run has nothing left to do."""
        return False

    def epoch_line(self, epoch: int, row: dict[str, Any]) -> str:
        raise NotImplementedError

    def write_logs(self, run: Path, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def finish(self, run: Path, state: dict[str, Any]) -> None:
        """After the last epoch (rank 0)."""


def config_changes(saved: dict[str, Any], now: dict[str, Any],
                   free: frozenset[tuple[str, str]]) -> list[tuple[str, Any, Any]]:  # fmt: skip
    """``(section.key, saved value, current value)`` for each key that differs and is
    not free to differ."""
    out = []
    for section in sorted(set(saved) | set(now)):
        a, b = saved.get(section, {}), now.get(section, {})
        for key in sorted(set(a) | set(b)):
            if (section, key) not in free and a.get(key) != b.get(key):
                out.append((f"{section}.{key}", a.get(key), b.get(key)))
    return out


def device_of(name: str) -> torch.device:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N``; a CUDA device that is not there is an error."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise TrainingError(f"device {name!r} requested but torch sees no CUDA device")
    if name.startswith("cuda") and dist.is_initialized():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device(name)


class Engine:
    """Runs a :class:`Task` as ``cfg.train`` says (run_dir, seed, epochs, threads,
    max_steps, early_stop, time_budget_min, max_nonfinite, amp, compile)."""

    def __init__(self, task: Task):
        self.task = task
        self.t = task.cfg.train

    # -- setup ---------------------------------------------------------------------------

    def _opt(self, name: str, default: Any) -> Any:
        return getattr(self.t, name, default)

    def run(self, *, resume: str | None = None, progress: bool | None = None) -> Path:
        """Train; returns the run directory. ``resume``: "auto" (the run's latest
        checkpoint, if any) or a checkpoint or run directory."""
        task, t = self.task, self.t
        main = task.rank == 0
        run = Path(t.run_dir)
        if t.threads:
            torch.set_num_threads(t.threads)
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.manual_seed(t.seed)
        task.build()
        amp = self._opt("amp", "none")
        if amp != "none" and task.device.type != "cuda":
            raise TrainingError(
                f"train.amp = {amp!r} needs a CUDA device (train.device = {t.device!r})"
            )
        state: dict[str, Any] = {"epoch": -1, "step": 0, "best_epoch": -1, "stale_epochs": 0,
                                 "nonfinite_skipped": 0, "elapsed_s": 0.0, "history": [],
                                 **task.initial_state()}  # fmt: skip

        ck_path = ckfind.latest(run) if resume == "auto" else (Path(resume) if resume else None)
        if ck_path is None and main:
            checkpoint.set_aside(run)
        if ck_path is not None:
            ck = checkpoint.load(ck_path, which="latest")
            self._check_resume(ck)
            if task.done_before(ck["trainer"]):
                print(f"{run}: the run is finished ({ck['path']}); nothing to resume", flush=True)
                return run
            task.model.load_state_dict(ck["tensors"])
            task.optimizer.load_state_dict(ck["optimizer"]["optimizer"])
            task.scheduler.load_state_dict(ck["optimizer"]["scheduler"])
            checkpoint.set_rng_state(ck["rng"])
            state = ck["trainer"]
            state.setdefault("nonfinite_skipped", 0)
            if main:
                print(f"resuming from {ck['path']} (epoch {state['epoch'] + 1} done)", flush=True)
        task.start()
        if self._opt("compile", False):
            task.net = torch.compile(task.net)  # type: ignore[assignment]
        show = (
            main
            and (sys.stderr.isatty() if progress is None else progress)
            and not os.environ.get("CI")
        )
        self._loop(run, state, show, amp)
        if main:
            task.finish(run, state)
        if dist.is_initialized():
            dist.barrier()
        return run

    def _check_resume(self, ck: dict[str, Any]) -> None:
        """Refuse a resume whose configuration changes the numbers, unless
        ``train.allow_resume_changes`` says to go on anyway."""
        task = self.task
        saved = task.saved_config(ck["metadata"].get("config", "{}"))
        changes = config_changes(
            saved, task.cfg.to_dict(), task.free_keys | {("train", "allow_resume_changes")}
        )
        if not changes:
            return
        said = ", ".join(f"{k} {a!r} -> {b!r}" for k, a, b in changes)
        if not self._opt("allow_resume_changes", False):
            raise TrainingError(
                f"{ck['path']}: the checkpoint was written with another configuration ({said}; the "
                "checkpoint's value -> this run's); resuming would not give the run that was started. "
                "Set train.allow_resume_changes=true to continue anyway with different arithmetic"
            )
        if task.rank == 0:
            print(f"resuming {ck['path']} with a changed configuration ({said}): the run continues with "
                  "different arithmetic and will not equal an uninterrupted run", flush=True)  # fmt: skip

    # -- the loop ------------------------------------------------------------------------

    def stop_reason(self, state: dict[str, Any], started: float) -> str:
        """Why training stops before its next epoch ("" = it goes on)."""
        t = self.t
        if t.early_stop and state["stale_epochs"] >= t.early_stop:
            return f"no better {self.task.better_name} for {t.early_stop} epochs (train.early_stop)"
        if t.max_steps and state["step"] >= t.max_steps:
            return f"{t.max_steps} steps done (train.max_steps)"
        if t.time_budget_min and time.time() - started >= 60 * t.time_budget_min:
            return f"the {t.time_budget_min:g}-minute budget is spent (train.time_budget_min)"
        return ""

    def _loop(self, run: Path, state: dict[str, Any], show: bool, amp: str) -> None:
        task, t = self.task, self.t
        main = task.rank == 0
        started = time.time() - state["elapsed_s"]
        autocast = (
            (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if amp == "bf16" else nullcontext
        )
        max_nonfinite = self._opt("max_nonfinite", 20)
        for epoch in range(state["epoch"] + 1, t.epochs):
            # A fresh run trains at least one epoch; a resumed one may stop at once.
            if state["epoch"] >= 0 and (why := self.stop_reason(state, started)):
                if main:
                    print(f"stopping after epoch {epoch} of {t.epochs}: {why}", flush=True)
                break
            task.net.train()
            t_epoch, t_data = time.time(), 0.0
            terms: dict[str, list[float]] = {}
            total, batches = task.batches(epoch)
            bar = _bar(total, epoch, t.epochs) if show else None
            t_wait = time.time()
            for batch in batches:
                t_data += time.time() - t_wait
                with autocast():
                    out = task.loss(batch)
                loss = out["loss"]
                finite = torch.isfinite(loss.detach()).to(torch.float32)
                if task.world > 1:  # every rank skips together
                    dist.all_reduce(finite, op=dist.ReduceOp.MIN)
                if finite.item() < 1:
                    state["nonfinite_skipped"] += 1
                    if state["nonfinite_skipped"] > max_nonfinite:
                        raise TrainingError(
                            f"{state['nonfinite_skipped']} non-finite losses (limit train.max_nonfinite = "
                            f"{max_nonfinite}); stopping, the last checkpoint is kept"
                        )
                else:
                    task.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if task.cfg.optim.clip > 0:
                        torch.nn.utils.clip_grad_norm_(task.net.parameters(), task.cfg.optim.clip)
                    task.optimizer.step()
                    for k, v in out.items():
                        terms.setdefault(k, []).append(float(v.detach()))
                state["step"] += 1
                if bar is not None:
                    bar.set_postfix(loss=f"{terms['loss'][-1]:.4f}" if terms else "nan")
                    bar.update()
                if t.max_steps and state["step"] >= t.max_steps:
                    break
                t_wait = time.time()
            if bar is not None:
                bar.close()
            val = task.validate()
            task.scheduler_step(val)
            improved = task.improve(state, val)
            if improved:
                state["best_epoch"], state["stale_epochs"] = epoch, 0
            else:
                state["stale_epochs"] += 1
            took = time.time() - t_epoch
            state["epoch"] = epoch
            state["elapsed_s"] = time.time() - started
            means = {f"train_{k}": float(np.mean(v)) for k, v in terms.items()} or {
                "train_loss": math.nan
            }
            state["history"].append({
                "epoch": epoch, "step": state["step"], **means, **val,
                "lr": task.optimizer.param_groups[0]["lr"], "epoch_s": round(took, 3),
                "data_fraction": round(t_data / took, 4) if took else 0.0,
                "nonfinite_skipped": state["nonfinite_skipped"],
            })  # fmt: skip
            if main:
                opt_state = {
                    "optimizer": task.optimizer.state_dict(),
                    "scheduler": task.scheduler.state_dict(),
                }
                checkpoint.save(run, f"epoch-{epoch:04d}", model=task.model, optimizer_state=opt_state,
                                trainer_state=state, metadata=task.metadata(), best=improved)  # fmt: skip
                checkpoint.prune(run, keep=2)
                task.write_logs(run, state)
                print(task.epoch_line(epoch, state["history"][-1]), flush=True)


def _bar(total: int, epoch: int, epochs: int) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=f"epoch {epoch + 1}/{epochs}", unit="batch", leave=False)


__all__ = ["Engine", "Task", "config_changes", "device_of"]
