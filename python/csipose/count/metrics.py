"""Counting metrics, each number with its definition.

* accuracy, per-class accuracy (classes with samples at 0 % are called out),
  within +-1, MAE, the confusion matrix;
* of the confidence: Spearman(confidence, correct) (scipy.stats.spearmanr),
  expected calibration error over equal-width bins and the reliability table,
  Brier score; NLL of the count probabilities.

:func:`count_report` puts the model beside the majority-class baseline (a model
that always predicts the training part's most frequent count, with that
count's training share as its confidence).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from csipose.runtime.countnet import CLASSES  # one home, torch-free


def _value(value: Any, definition: str) -> dict[str, Any]:
    return {"value": value, "definition": definition}


def confusion(labels: np.ndarray, pred: np.ndarray, classes: int = CLASSES) -> np.ndarray:
    """[classes, classes] counts: rows the true count, columns the predicted count."""
    m = np.zeros((classes, classes), np.int64)
    np.add.at(m, (np.asarray(labels, np.int64), np.asarray(pred, np.int64)), 1)
    return m


def per_class_accuracy(labels: np.ndarray, pred: np.ndarray, classes: int = CLASSES) -> list[float | None]:
    """Accuracy of the windows of each true count (None for a count without windows)."""
    m = confusion(labels, pred, classes)
    n = m.sum(axis=1)
    return [float(m[c, c] / n[c]) if n[c] else None for c in range(classes)]


def calibration_bins(conf: np.ndarray, correct: np.ndarray, bins: int = 10) -> dict[str, np.ndarray]:
    """Equal-width bins over [0, 1] (the last one closed): count, mean confidence and
    accuracy per bin (NaN for an empty bin)."""
    conf = np.asarray(conf, np.float64)
    correct = np.asarray(correct, np.float64)
    b = np.clip(np.floor(conf * bins).astype(np.int64), 0, bins - 1)
    n = np.bincount(b, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(b, weights=conf, minlength=bins) / n
        acc = np.bincount(b, weights=correct, minlength=bins) / n
    return {"edges": np.linspace(0, 1, bins + 1), "count": n, "confidence": mean_conf, "accuracy": acc}


def ece(conf: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: sum over bins of (n_b / N) |accuracy_b - mean confidence_b|."""
    t = calibration_bins(conf, correct, bins)
    n = t["count"]
    if n.sum() == 0:
        return math.nan
    keep = n > 0
    return float(np.sum(n[keep] / n.sum() * np.abs(t["accuracy"][keep] - t["confidence"][keep])))


def spearman(conf: np.ndarray, correct: np.ndarray) -> float:
    """Spearman rank correlation of confidence and correctness (NaN when either is constant)."""
    from scipy.stats import spearmanr

    conf = np.asarray(conf, np.float64)
    correct = np.asarray(correct, np.float64)
    if len(conf) < 2 or np.all(conf == conf[0]) or np.all(correct == correct[0]):
        return math.nan
    return float(spearmanr(conf, correct).statistic)


def count_metrics(probs: np.ndarray, labels: np.ndarray, conf: np.ndarray, *, bins: int = 10,
                  classes: int = CLASSES) -> dict[str, Any]:  # fmt: skip
    """Every metric of one model on windows with true counts ``labels``."""
    probs = np.asarray(probs, np.float64)
    labels = np.asarray(labels, np.int64)
    conf = np.asarray(conf, np.float64)
    n = len(labels)
    pred = probs.argmax(axis=1) if n else np.zeros(0, np.int64)
    correct = (pred == labels).astype(np.float64)
    err = np.abs(pred - labels)
    per = per_class_accuracy(labels, pred, classes)
    zero = [c for c, a in enumerate(per) if a == 0.0]
    nll = float(-np.mean(np.log(np.clip(probs[np.arange(n), labels], 1e-12, 1)))) if n else math.nan
    mean = (lambda a: float(np.mean(a))) if n else (lambda a: math.nan)
    return {
        "accuracy": _value(mean(correct), "fraction of windows whose most probable count equals the true count"),
        "per_class_accuracy": _value(per, "accuracy over the windows of each true count 0..7 (null: no window)"),
        "zero_accuracy_classes": _value(zero, "true counts with windows of which none is counted right"),
        "within_1": _value(mean(err <= 1), "fraction of windows whose count is within +-1 of the true count"),
        "mae": _value(mean(err), "mean |predicted count - true count| (people)"),
        "nll": _value(nll, "mean negative log-likelihood of the true count under the probabilities (nats)"),
        "spearman_conf_correct": _value(spearman(conf, correct),
                                        "Spearman rank correlation of the confidence with correctness (0/1); "
                                        "null when either is constant"),
        "ece": _value(ece(conf, correct, bins), f"expected calibration error of the confidence against "
                                                f"correctness, {bins} equal-width bins"),
        "brier_conf": _value(mean((conf - correct) ** 2), "mean (confidence - correct)^2"),
        "confusion": _value(confusion(labels, pred, classes).tolist(), "rows: true count 0..7, columns: predicted"),
        "reliability": _value({k: v.tolist() for k, v in calibration_bins(conf, correct, bins).items()},
                              "per confidence bin: edges, windows, mean confidence, accuracy"),
        "n_windows": n,
    }  # fmt: skip


def majority_baseline(
    train_labels: np.ndarray, n: int, classes: int = CLASSES
) -> tuple[np.ndarray, np.ndarray, int, float]:
    """(probabilities [n, 8], confidences [n], the class, its share) of the model that always
    predicts the training part's most frequent count (the smallest on ties), with
    that count's training share as confidence and as its probability (the rest uniform)."""
    counts = np.bincount(np.asarray(train_labels, np.int64), minlength=classes)
    c = int(np.argmax(counts))
    share = float(counts[c] / max(counts.sum(), 1))
    row = np.full(classes, (1 - share) / (classes - 1))
    row[c] = share
    if share <= 1 / classes:  # keep the class the most probable one
        row = np.eye(classes)[c]
    return np.tile(row, (n, 1)), np.full(n, share), c, share


def count_report(probs: np.ndarray, labels: np.ndarray, conf: np.ndarray, train_labels: np.ndarray,
                 *, bins: int = 10, context: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """The model's metrics beside the majority-class baseline's."""
    bp, bc, c, share = majority_baseline(train_labels, len(labels))
    return {
        "context": context or {},
        "model": count_metrics(probs, labels, conf, bins=bins),
        "majority_baseline": count_metrics(bp, labels, bc, bins=bins),
        "baseline_definition": f"always predicts count {c}, the most frequent count of the training part "
        f"({share:.1%} of its windows), with confidence {share:.3f}",
        "label_counts": np.bincount(np.asarray(labels, np.int64), minlength=CLASSES).tolist(),
    }  # fmt: skip


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def to_markdown(report: dict[str, Any]) -> str:
    """The report as markdown: headline table, per-class accuracy, confusion matrix."""
    m, b = report["model"], report["majority_baseline"]
    ctx = report.get("context", {})
    lines = [f"# CountNet evaluation: {ctx.get('part', '')}", ""]
    lines += [f"- {k}: {v}" for k, v in ctx.items()]
    lines += ["", "| metric | model | majority baseline | definition |", "|---|---:|---:|---|"]
    for k in ("accuracy", "within_1", "mae", "nll", "spearman_conf_correct", "ece", "brier_conf"):
        lines.append(f"| {k} | {_fmt(m[k]['value'])} | {_fmt(b[k]['value'])} | {m[k]['definition']} |")
    lines += ["", f"Windows: {m['n_windows']}; per true count: {report['label_counts']}.",
              f"Baseline: {report['baseline_definition']}.", ""]  # fmt: skip
    zero = m["zero_accuracy_classes"]["value"]
    if zero:
        lines += [f"**Counts never predicted right (0 % accuracy): {', '.join(map(str, zero))}.**", ""]
    lines += ["Per true count:", "", "| count | windows | model accuracy | baseline accuracy |",
              "|---:|---:|---:|---:|"]  # fmt: skip
    for c in range(CLASSES):
        if report["label_counts"][c]:
            lines.append(f"| {c} | {report['label_counts'][c]} | {_fmt(m['per_class_accuracy']['value'][c])} | "
                         f"{_fmt(b['per_class_accuracy']['value'][c])} |")  # fmt: skip
    lines += ["", "Confusion matrix of the model (rows: true count, columns: predicted 0..7):", "",
              "| true \\ pred | " + " | ".join(map(str, range(CLASSES))) + " |",
              "|---|" + "---:|" * CLASSES]  # fmt: skip
    for c, row in enumerate(m["confusion"]["value"]):
        if report["label_counts"][c]:
            lines.append(f"| {c} | " + " | ".join(map(str, row)) + " |")
    return "\n".join(lines) + "\n"


__all__ = ["calibration_bins", "confusion", "count_metrics", "count_report", "ece", "majority_baseline",
           "per_class_accuracy", "spearman", "to_markdown"]  # fmt: skip
