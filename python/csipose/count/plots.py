"""The reliability diagram of counting confidences (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from csipose.count.metrics import calibration_bins, ece
from csipose.train.plots import _pyplot, _save


def reliability_diagram(series: dict[str, tuple[np.ndarray, np.ndarray]], bins: int, title: str,
                        path: Path) -> None:  # fmt: skip
    """Accuracy against mean confidence per equal-width bin for each named
    (confidences, correct) pair, with the diagonal of perfect calibration and
    each series' ECE in the legend; bars show the share of windows per bin."""
    plt = _pyplot()
    fig, (ax, hist) = plt.subplots(2, 1, figsize=(5, 5.6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfect calibration")
    width = 1.0 / bins
    for i, (name, (conf, correct)) in enumerate(series.items()):
        t = calibration_bins(conf, correct, bins)
        keep = t["count"] > 0
        e = ece(conf, correct, bins)
        ax.plot(t["confidence"][keep], t["accuracy"][keep], marker="o", color=f"C{i}",
                label=f"{name} (ECE {e:.3f})" if np.isfinite(e) else name)  # fmt: skip
        share = t["count"] / max(t["count"].sum(), 1)
        hist.bar(t["edges"][:-1] + width * (0.25 + 0.5 * i / max(len(series), 1)), share,
                 width=width / max(len(series), 1) * 0.9, align="edge", color=f"C{i}", alpha=0.7)  # fmt: skip
    ax.set(xlim=(0, 1), ylim=(0, 1.02), ylabel="accuracy in bin", title=f"reliability: {title}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    hist.set(xlabel=f"confidence ({bins} equal-width bins)", ylabel="share of windows")
    path.parent.mkdir(parents=True, exist_ok=True)
    _save(fig, path)
    plt.close(fig)


__all__ = ["reliability_diagram"]
