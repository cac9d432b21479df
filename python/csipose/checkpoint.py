"""Resolving checkpoints: which ``model.safetensors`` a path means (torch-free)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from csipose.errors import CheckpointError


def model_file(path: str | os.PathLike[str], which: str = "best") -> Path:
    """The ``model.safetensors`` of a file, a checkpoint directory, or a run directory
    (its ``checkpoints/best`` when ``which == "best"`` and it exists, else the
    checkpoint ``checkpoints/latest.json`` names)."""
    p = Path(path)
    if p.is_dir() and not (p / "model.safetensors").exists() and (p / "checkpoints").is_dir():
        best = p / "checkpoints" / "best"
        if which == "best" and best.is_dir():
            p = best
        else:
            pointer = p / "checkpoints" / "latest.json"
            try:
                p = p / "checkpoints" / json.loads(pointer.read_text())["name"]
            except (OSError, ValueError, KeyError) as e:
                raise CheckpointError(f"{p}: the run has no readable checkpoint ({e})") from None
    if p.is_dir():
        p = p / "model.safetensors"
    if not p.is_file():
        raise CheckpointError(f"{p}: no such checkpoint file")
    return p


__all__ = ["model_file"]
