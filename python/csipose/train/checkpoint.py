"""Writing and reading training checkpoints (the torch side; finding one is
``csipose.checkpoint``, which needs no torch).

    RUN/checkpoints/epoch-0007/
        model.safetensors   weights; metadata: config, input/target normalisation, versions
        optimizer.pt        optimiser and scheduler state
        rng_state.pt        torch (and CUDA) random number generator states
        trainer_state.json  epoch, step, best metric, early-stopping counter, history
    RUN/checkpoints/best/   a copy of the best epoch
    RUN/checkpoints/latest.json  {"name": "epoch-0007"}

A checkpoint is written into a hidden temporary directory and put into place
only when complete (``csipose._files.replace_dir``: an atomic exchange, so
``best`` is never missing, not even for a moment); a crash never leaves a
half-written checkpoint where a good one was; weights that are not finite are
never written.
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

from csipose._files import fsync_dir, replace_dir, write_json_atomic
from csipose.checkpoint import FILES, checkpoint_dir, latest, read_metadata
from csipose.errors import CheckpointError


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _test_pause(name: str) -> None:
    """Crash-safety tests: ``CSIPOSE_TEST_PAUSE_IN_CHECKPOINT=NAME:MARKER`` makes the
    write of checkpoint NAME stop half-way (``NAME/best``: its copy to ``best``, just
    before the swap), touch MARKER and wait to be killed."""
    hook = os.environ.get("CSIPOSE_TEST_PAUSE_IN_CHECKPOINT", "")
    want, _, marker = hook.partition(":")
    if hook and want == name:
        Path(marker).touch()
        time.sleep(600)


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
    copy = None
    try:
        save_file(tensors, tmp / "model.safetensors", metadata=metadata)
        _test_pause(name)
        torch.save(optimizer_state, tmp / "optimizer.pt")
        torch.save(rng_state(), tmp / "rng_state.pt")
        with open(tmp / "trainer_state.json", "w") as f:
            json.dump(trainer_state, f, indent=1)
        for file in FILES:
            with open(tmp / file, "rb") as f:
                os.fsync(f.fileno())
        fsync_dir(tmp)
        replace_dir(tmp, root / name)
        if best:
            copy = root / f".best.tmp-{os.getpid()}-{secrets.token_hex(3)}"
            shutil.copytree(root / name, copy)
            _test_pause(f"{name}/best")
            replace_dir(copy, root / "best")
        write_json_atomic(root / "latest.json", {"name": name})
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if copy is not None:
            shutil.rmtree(copy, ignore_errors=True)
        raise
    return root / name


def prune(run_dir: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` epoch checkpoints of a run."""
    for old in sorted((Path(run_dir) / "checkpoints").glob("epoch-*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def set_aside(run_dir: Path) -> Path | None:
    """Move an earlier run out of ``run_dir`` (to ``RUN.YYYYmmdd-HHMMSS``, the time of
    its last checkpoint) so that a fresh run never mixes with it or deletes it."""
    run = Path(run_dir)
    if not (run / "checkpoints").exists():
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime((run / "checkpoints").stat().st_mtime))
    old = run.with_name(f"{run.name}.{stamp}")
    while old.exists():
        old = old.with_name(old.name + "-1")
    os.rename(run, old)
    print(
        f"{run} held an earlier run; moved it to {old} (continue a run with --resume auto)",
        flush=True,
    )
    return old


def resolve(path: str | Path, which: str = "best") -> Path:
    """A complete checkpoint directory from a checkpoint, a run directory (its ``best``,
    or ``latest``) or a model.safetensors file."""
    return checkpoint_dir(path, which, complete=True)


def load(path: str | Path, *, which: str = "best", map_location: str = "cpu") -> dict[str, Any]:
    """Everything in a checkpoint directory: tensors, metadata, optimiser, rng and trainer state."""
    p = resolve(path, which)
    try:
        metadata = read_metadata(p / "model.safetensors")
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


__all__ = ["FILES", "latest", "load", "prune", "resolve", "rng_state", "save", "set_aside",
           "set_rng_state"]  # fmt: skip
