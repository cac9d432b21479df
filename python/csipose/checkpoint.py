"""Finding a checkpoint, without torch: the one resolver of run directories,
checkpoint directories and ``model.safetensors`` files.

    RUN/checkpoints/epoch-0007/   model.safetensors, optimizer.pt, rng_state.pt, trainer_state.json
    RUN/checkpoints/best/         a copy of the best epoch (CountNet: the calibrated best)
    RUN/checkpoints/latest.json   {"name": "epoch-0007"}, the newest complete checkpoint

``model_file(path)`` gives the weights of a file, a checkpoint directory or a
run directory (its ``best``). A run without ``best`` is an error, never a
silent fall-back to the newest epoch: ask for ``which="latest"`` to get that.
Writing (torch) lives in ``csipose.train.checkpoint``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from csipose.errors import CheckpointError

#: The files of a complete training checkpoint.
FILES = ("model.safetensors", "optimizer.pt", "rng_state.pt", "trainer_state.json")
WHICH = ("best", "latest")
_MAX_HEADER = 100_000_000


def latest(run_dir: str | os.PathLike[str]) -> Path | None:
    """The checkpoint ``RUN/checkpoints/latest.json`` names, or None when there is none."""
    pointer = Path(run_dir) / "checkpoints" / "latest.json"
    if not pointer.exists():
        return None
    try:
        name = json.loads(pointer.read_text())["name"]
        if not isinstance(name, str) or "/" in name or name in ("", ".", ".."):
            raise ValueError(f"bad name {name!r}")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{pointer}: unreadable ({e})") from None
    return Path(run_dir) / "checkpoints" / name


def is_run(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a run directory (it holds ``checkpoints/``)."""
    p = Path(path)
    return (p / "checkpoints").is_dir() and not (p / "model.safetensors").exists()


def checkpoint_dir(path: str | os.PathLike[str], which: str = "best", *,
                   complete: bool = False) -> Path:  # fmt: skip
    """The checkpoint directory of a run (its ``best`` or ``latest``), of a checkpoint
    directory (itself) or of a ``model.safetensors`` (its directory). ``complete``:
    also require the optimiser, rng and trainer state (to resume or to evaluate)."""
    if which not in WHICH:
        raise ValueError(f"which must be 'best' or 'latest', got {which!r}")
    p = Path(path)
    if p.is_file():
        if p.name != "model.safetensors":
            raise CheckpointError(f"{p}: not a model.safetensors, checkpoint or run directory")
        p = p.parent
    elif not p.exists():
        raise CheckpointError(f"{p}: no such checkpoint or run directory")
    elif is_run(p):
        if which == "latest":
            found = latest(p)
            if found is None:
                raise CheckpointError(
                    f"{p}: the run has no checkpoint (no checkpoints/latest.json)"
                )
        else:
            found = p / "checkpoints" / "best"
            if not found.is_dir():
                newest = latest(p)
                hint = (
                    f"; its newest checkpoint is {newest.name}: pass {newest} or ask for which='latest'"
                    if newest
                    else ""
                )
                raise CheckpointError(
                    f"{p}: the run has no best checkpoint (checkpoints/best){hint}"
                )
        p = found
    need = FILES if complete else FILES[:1]
    missing = [f for f in need if not (p / f).is_file()]
    if missing:
        raise CheckpointError(f"{p}: not a complete checkpoint (missing {', '.join(missing)})")
    return p


def model_file(path: str | os.PathLike[str], which: str = "best") -> Path:
    """The ``model.safetensors`` of a file, a checkpoint directory, or a run directory
    (``which``: its ``best`` checkpoint, or the ``latest`` one)."""
    return checkpoint_dir(path, which) / "model.safetensors"


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors header (of a file, checkpoint or run),
    read with json alone: no tensor is loaded and torch is not imported."""
    p = Path(path)
    if p.is_dir():
        p = model_file(p)
    try:
        with open(p, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if n > _MAX_HEADER:
                raise ValueError(f"header of {n} bytes")
            header = json.loads(f.read(n))
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{p}: cannot read the safetensors header: {e}") from None
    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict):
        raise CheckpointError(f"{p}: __metadata__ of the safetensors header is not an object")
    return {str(k): str(v) for k, v in meta.items()}


def read_trainer_state(path: str | os.PathLike[str]) -> dict:
    """``trainer_state.json`` of a checkpoint (epoch, step, best metric, history)."""
    f = checkpoint_dir(path, "latest" if is_run(path) else "best") / "trainer_state.json"
    try:
        return json.loads(f.read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{f}: unreadable ({e})") from None


__all__ = ["FILES", "checkpoint_dir", "is_run", "latest", "model_file", "read_metadata",
           "read_trainer_state"]  # fmt: skip
