"""The fp32 run a quantization starts from: model, data, windows and provenance.

Everything here only reads the run directory; quantization never writes into it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from csipose.errors import CheckpointError
from csipose.train.data import PoseData
from csipose.train.loop import input_fields, model_input


@dataclass
class Source:
    """A trained fp32 pose run, opened for quantization."""

    model: torch.nn.Module
    data: PoseData
    cfg: Any
    checkpoint: Path
    metadata: dict[str, str]

    @property
    def weights_sha256(self) -> str:
        return sha256_file(self.checkpoint / "model.safetensors")

    def windows(self, part: str, n: int | None = None, *, seed: int = 0) -> torch.Tensor:
        """Model inputs [N, C, T] of ``n`` windows of ``part`` (all when None), drawn
        without replacement by ``seed`` and kept in store order."""
        idx = self.indices(part, n, seed=seed)
        b = self.data.store.gather(idx, fields=input_fields(self.data))
        with torch.no_grad():  # the run's data.features as trained; no_grad: never augmented
            return model_input({k: torch.from_numpy(v) for k, v in b.items()},
                               torch.device("cpu"), self.data.features, self.data.rooms)  # fmt: skip

    def indices(self, part: str, n: int | None = None, *, seed: int = 0) -> np.ndarray:
        if part not in self.data.parts:
            raise ValueError(
                f"split {self.cfg.data.split!r} has no part {part!r} (it has {', '.join(self.data.parts)})"
            )
        idx = self.data.parts[part]
        if n is not None and n < len(idx):
            idx = np.sort(np.random.default_rng(seed).choice(idx, size=n, replace=False))
        return idx

    def provenance(self) -> dict[str, Any]:
        """What the quantized model came from and how its inputs are prepared (the
        checkpoint's own input description, verbatim)."""
        return {
            "checkpoint": str(self.checkpoint.resolve()),
            "model_safetensors_sha256": self.weights_sha256,
            "model": self.metadata.get("model", ""),
            "config": json.loads(self.metadata["config"]),
            "data": json.loads(self.metadata["data"]),
            "input_layout": self.metadata.get("input_layout", ""),
        }


def open_run(run: str | Path) -> Source:
    """The run's best checkpoint (or a checkpoint directory), as :class:`Source`."""
    from csipose.train.evaluate import load_run

    p = Path(run)
    if not p.exists():
        raise CheckpointError(f"{p}: no such run or checkpoint")
    model, data, cfg, ck = load_run(p)
    if ck["metadata"].get("format") != "csipose-pose-checkpoint":
        raise CheckpointError(f"{ck['path']}: not a pose checkpoint (csipose train)")
    return Source(model.eval(), data, cfg, Path(ck["path"]), ck["metadata"])


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tree_digest(root: str | Path) -> dict[str, str]:
    """sha256 of every file under ``root`` by relative path (proves a run untouched)."""
    r = Path(root)
    return {str(f.relative_to(r)): sha256_file(f) for f in sorted(r.rglob("*")) if f.is_file()}
