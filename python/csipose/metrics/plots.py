"""Pictures of pose predictions: predicted against ground-truth skeletons for
the best, median and worst windows by per-window MPJPE (mean Euclidean joint
error over the visible joints, in the data's units), drawn with the skeleton's
own bones (3-D poses from two views: front x-y and top x-z), and the mean error
of each joint. PNG, matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from csipose import skeleton as _skeleton


def window_errors(
    pred: np.ndarray, gt: np.ndarray, visible: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """(per-window MPJPE [N], per-joint error [N, K]; NaN where not visible)."""
    e = np.linalg.norm(np.asarray(pred, np.float64) - np.asarray(gt, np.float64), axis=-1)
    if visible is not None:
        e = np.where(np.asarray(visible, bool), e, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a window with no visible joint -> NaN
        per_window = np.nanmean(e, axis=1)
    return per_window, e


def _draw(
    ax: Any, pose: np.ndarray, bones: Any, axes: tuple[int, int], style: dict[str, Any]
) -> None:
    i, j = axes
    for a, b in bones:
        ax.plot([pose[a, i], pose[b, i]], [pose[a, j], pose[b, j]], **style)
    ax.scatter(pose[:, i], pose[:, j], s=8, color=style["color"])


def skeleton_sheet(pred: np.ndarray, gt: np.ndarray, *, skeleton: Any, visible: np.ndarray | None = None,
                   units: str = "", title: str = "", out: str | Path) -> Path:  # fmt: skip
    """Best, median and worst windows by MPJPE: prediction (red) over ground truth (black)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    skel = _skeleton.get(skeleton)
    per_window, _ = window_errors(pred, gt, visible)
    order = np.argsort(np.where(np.isnan(per_window), np.inf, per_window))
    finite = order[: int(np.sum(~np.isnan(per_window)))]
    if len(finite) == 0:
        raise ValueError("no window has a visible joint to draw")
    picks = [("best", finite[0]), ("median", finite[len(finite) // 2]), ("worst", finite[-1])]
    d = pred.shape[-1]
    views = [(0, 1), (0, 2)] if d == 3 else [(0, 1)]
    fig, axs = plt.subplots(len(views), 3, figsize=(10, 3.6 * len(views)), squeeze=False)
    for col, (name, w) in enumerate(picks):
        for row, view in enumerate(views):
            ax = axs[row][col]
            _draw(ax, gt[w], skel.bones, view, {"color": "black", "lw": 2})
            _draw(ax, pred[w], skel.bones, view, {"color": "tab:red", "lw": 1.5, "ls": "--"})
            ax.set_aspect("equal", adjustable="datalim")
            if d == 2:
                ax.invert_yaxis()  # image coordinates: y grows downwards
            label = "xyz"
            ax.set_xlabel(f"{label[view[0]]} ({units})" if units else label[view[0]])
            ax.set_ylabel(f"{label[view[1]]} ({units})" if units else label[view[1]])
            if row == 0:
                ax.set_title(f"{name}: #{int(w)}, MPJPE {per_window[w]:.3g} {units}", fontsize=10)
    fig.suptitle(f"{title}  black: ground truth, red dashed: prediction ({skel.name})")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def joint_error_chart(pred: np.ndarray, gt: np.ndarray, *, skeleton: Any, visible: np.ndarray | None = None,
                      units: str = "", title: str = "", out: str | Path) -> Path:  # fmt: skip
    """Mean Euclidean error of each joint over the windows where it is visible."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    skel = _skeleton.get(skeleton)
    _, e = window_errors(pred, gt, visible)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        per_joint = np.nanmean(e, axis=0)
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(per_joint)), 3.8))
    ax.bar(range(len(per_joint)), per_joint, color="tab:blue")
    ax.set_xticks(range(len(per_joint)))
    ax.set_xticklabels(
        [f"{i} {n}" for i, n in enumerate(skel.joints)], rotation=60, ha="right", fontsize=8
    )
    ax.set_ylabel(f"mean joint error ({units})" if units else "mean joint error")
    ax.set_title(f"{title}  per-joint error, {len(e)} windows ({skel.name})")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def pose_pictures(pred: np.ndarray, gt: np.ndarray, *, skeleton: Any, visible: np.ndarray | None = None,
                  units: str = "", title: str = "", out_dir: str | Path) -> list[Path]:  # fmt: skip
    """``skeletons.png`` and ``joint_errors.png`` in ``out_dir``."""
    out_dir = Path(out_dir)
    kw = dict(skeleton=skeleton, visible=visible, units=units, title=title)
    return [skeleton_sheet(pred, gt, out=out_dir / "skeletons.png", **kw),
            joint_error_chart(pred, gt, out=out_dir / "joint_errors.png", **kw)]  # fmt: skip


__all__ = ["joint_error_chart", "pose_pictures", "skeleton_sheet", "window_errors"]
