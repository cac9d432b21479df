"""Figures of a run: training curves and PCK curves."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.stem}.{os.getpid()}{path.suffix}")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    os.replace(tmp, path)


def training_curves(history: list[dict[str, Any]], out: Path) -> None:
    """loss.png (training loss) and pck.png (validation torso-PCK@20 and MPJPE) per epoch."""
    plt = _pyplot()
    out.mkdir(parents=True, exist_ok=True)
    ep = [h["epoch"] + 1 for h in history]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(ep, [h["train_loss"] for h in history], marker="o")
    ax.set(xlabel="epoch", ylabel="training loss (WiFlow loss)", title="training loss")
    _save(fig, out / "loss.png")
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(ep, [h["val_pck@20"] for h in history], marker="o", color="C1")
    ax.set(xlabel="epoch", ylabel="validation torso-PCK@20", title="validation")
    ax2 = ax.twinx()
    ax2.plot(ep, [h["val_mpjpe"] for h in history], marker="s", color="C2")
    ax2.set_ylabel("validation MPJPE")
    _save(fig, out / "pck.png")
    plt.close(fig)


def pck_curves(
    thresholds: np.ndarray, curves: dict[str, np.ndarray], title: str, path: Path
) -> None:
    """Torso-PCK against the threshold for each named curve (model, mean-pose baseline)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for name, values in curves.items():
        ax.plot(thresholds, values, label=name)
    ax.set(
        xlabel="threshold (fraction of the torso)", ylabel="torso-PCK", ylim=(0, 1.02), title=title
    )
    ax.grid(alpha=0.3)
    ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    _save(fig, path)
    plt.close(fig)
