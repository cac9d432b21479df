"""Checkpoint directories, written atomically.

    RUN/checkpoints/epoch-0007/
        model.safetensors   weights; metadata: config, input/target normalisation, versions
        optimizer.pt        optimiser and scheduler state
        rng_state.pt        torch (and CUDA) random number generator states
        trainer_state.json  epoch, step, best metric, early-stopping counter, history
    RUN/checkpoints/best/   a copy of the best epoch
    RUN/checkpoints/latest.json  {"name": "epoch-0007"}

A checkpoint is written into a hidden temporary directory and renamed into
place only when complete, so a crash never leaves a half-written checkpoint
where a good one was; weights that are not finite are never written.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from csipose._files import write_json_atomic
from csipose.errors import CheckpointError

FILES = ("model.safetensors", "optimizer.pt", "rng_state.pt", "trainer_state.json")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(
    run_dir: Path,
    name: str,
    *,
    model: torch.nn.Module,
    optimizer_state: dict[str, Any],
    trainer_state: dict[str, Any],
    metadata: dict[str, str],
    best: bool = False,
) -> Path:
    """Write checkpoint ``name`` (and ``best`` when asked) and point ``latest.json`` at it."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(
            f"refusing to write non-finite weights ({', '.join(bad[:5])}); the last checkpoint is kept"
        )
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{name}.tmp-{os.getpid()}-{secrets.token_hex(3)}"
    tmp.mkdir()
    try:
        save_file(tensors, tmp / "model.safetensors", metadata=metadata)
        torch.save(optimizer_state, tmp / "optimizer.pt")
        torch.save(rng_state(), tmp / "rng_state.pt")
        with open(tmp / "trainer_state.json", "w") as f:
            json.dump(trainer_state, f, indent=1)
        for file in FILES:
            with open(tmp / file, "rb") as f:
                os.fsync(f.fileno())
        _fsync_dir(tmp)
        _replace_dir(tmp, root / name)
        if best:
            copy = root / f".best.tmp-{os.getpid()}"
            shutil.copytree(root / name, copy)
            _replace_dir(copy, root / "best")
        write_json_atomic(root / "latest.json", {"name": name})
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root / name


def _replace_dir(new: Path, target: Path) -> None:
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{secrets.token_hex(3)}")
        os.rename(target, old)
    os.rename(new, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def prune(run_dir: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` epoch checkpoints of a run."""
    for old in sorted((Path(run_dir) / "checkpoints").glob("epoch-*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def set_aside(run_dir: Path) -> None:
    """Move an earlier run out of ``run_dir`` (to ``RUN.YYYYmmdd-HHMMSS``, the time of
    its last checkpoint) so that a fresh run never mixes with it or deletes it."""
    run = Path(run_dir)
    if not (run / "checkpoints").exists():
        return
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime((run / "checkpoints").stat().st_mtime))
    old = run.with_name(f"{run.name}.{stamp}")
    while old.exists():
        old = old.with_name(old.name + "-1")
    os.rename(run, old)
    print(
        f"{run} held an earlier run; moved it to {old} (continue a run with --resume auto)",
        flush=True,
    )


def latest(run_dir: Path) -> Path | None:
    """The newest complete checkpoint of a run, or None."""
    pointer = Path(run_dir) / "checkpoints" / "latest.json"
    if not pointer.exists():
        return None
    try:
        name = json.loads(pointer.read_text())["name"]
    except (OSError, ValueError, KeyError) as e:
        raise CheckpointError(f"{pointer}: unreadable ({e})") from None
    return Path(run_dir) / "checkpoints" / name


def resolve(path: str | Path) -> Path:
    """A checkpoint directory from a checkpoint, a run directory or a model.safetensors file."""
    p = Path(path)
    if p.is_file() and p.name == "model.safetensors":
        p = p.parent
    if (p / "checkpoints").is_dir():
        best = p / "checkpoints" / "best"
        found = best if best.is_dir() else latest(p)
        if found is None:
            raise CheckpointError(f"{p}: the run has no checkpoint")
        p = found
    missing = [f for f in FILES if not (p / f).exists()]
    if missing:
        raise CheckpointError(f"{p}: not a complete checkpoint (missing {', '.join(missing)})")
    return p


def load(path: str | Path, *, map_location: str = "cpu") -> dict[str, Any]:
    """Everything in a checkpoint directory: tensors, metadata, optimiser, rng and trainer state."""
    p = resolve(path)
    try:
        from safetensors import safe_open

        with safe_open(p / "model.safetensors", framework="pt") as f:
            metadata = dict(f.metadata() or {})
        tensors = load_file(p / "model.safetensors", device=map_location)
        optimizer_state = torch.load(
            p / "optimizer.pt", map_location=map_location, weights_only=True
        )
        rng = torch.load(p / "rng_state.pt", map_location="cpu", weights_only=True)
        trainer_state = json.loads((p / "trainer_state.json").read_text())
    except (OSError, RuntimeError, ValueError) as e:
        raise CheckpointError(f"{p}: cannot read the checkpoint: {e}") from e
    return {
        "path": p,
        "tensors": tensors,
        "metadata": metadata,
        "optimizer": optimizer_state,
        "rng": rng,
        "trainer": trainer_state,
    }
