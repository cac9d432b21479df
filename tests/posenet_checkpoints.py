"""Pose checkpoints for the PoseNet tests: a torch model with random weights
(BatchNorm statistics randomised too, so folding is exercised) written as
``csipose train`` writes ``model.safetensors`` (metadata format, config, data)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from csipose.models import build_pose_model

# (model, in_channels, time steps, keypoints, dims, options): every preset and
# the MM-Fi variant, at the MM-Fi profile (342 = 3 x 114), the WiFlow profile
# (540 x 20) and other channel counts.
CASES = [
    ("wiflow-full", 540, 20, 15, 2, {}),
    ("wiflow-half", 342, 10, 17, 3, {}),
    ("wiflow-quarter", 342, 20, 17, 3, {"output_activation": True}),
    ("wiflow-tiny", 120, 10, 15, 2, {"input_pw_groups": 4}),
    ("wiflow-mmfi", 342, 10, 17, 3, {}),
]


def random_model(name: str, c: int, t: int, k: int, d: int, options: dict[str, Any], seed: int = 0):
    torch.manual_seed(seed)
    opts = dict(options)
    if name != "wiflow-mmfi":
        opts.setdefault("output_activation", False)  # as csipose.train.loop.build_model
    model = build_pose_model(name, in_channels=c, window=t, keypoints=k, dims=d, **opts)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.weight.copy_(0.5 + torch.rand(n, generator=g))
                m.bias.copy_(0.2 * torch.randn(n, generator=g))
                m.running_mean.copy_(0.2 * torch.randn(n, generator=g))
                m.running_var.copy_(0.5 + torch.rand(n, generator=g))
    return model.eval()


def metadata(name: str, options: dict[str, Any], mean_pose: np.ndarray, *, time_steps: int, frames: int,
             transform: dict[str, Any] | None = None, inputs: str = "amplitude",
             target_scale: float = 1.0) -> dict[str, str]:  # fmt: skip
    data = {
        "skeleton": "h36m17" if mean_pose.shape == (17, 3) else "body25_15",
        "units": "m",
        "inputs": inputs,
        "in_channels": 0,
        "time_steps": time_steps,
        "window": {"length": frames},
        "transform": transform or {"minmax": False, "subcarriers": None, "zscore": None},
        "target_scale": target_scale,
        "mean_pose": mean_pose.tolist(),
    }
    return {
        "format": "csipose-pose-checkpoint",
        "model": name,
        "config": json.dumps({"model": {"name": name, "options": options}}),
        "data": json.dumps(data),
    }


def write(model: torch.nn.Module, path: Path, meta: dict[str, str]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, path / "model.safetensors", metadata=meta)
    return path / "model.safetensors"


def random_checkpoint(tmp: Path, case: tuple, seed: int = 0) -> tuple[Path, torch.nn.Module]:
    name, c, t, k, d, options = case
    model = random_model(name, c, t, k, d, options, seed)
    meta = metadata(name, options, np.zeros((k, d)), time_steps=t, frames=t)
    return write(model, tmp / name, meta), model
