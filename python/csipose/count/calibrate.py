"""Temperature scaling fitted on the validation split.

Two scalars, both stored in the checkpoint and applied by torch and Rust:

* ``calibration.temperature`` T: probabilities = softmax(count logits / T),
  T minimising the NLL of the true counts;
* ``calibration.confidence_temperature`` T_c: confidence = sigmoid(conf logit / T_c),
  T_c minimising the NLL (binary cross-entropy) of "the count is right".

Each is a 1-D golden-section search on log T over [0.05, 20] in float64 (the
NLL of temperature scaling is convex in 1 / T, hence unimodal in log T);
deterministic, no optimiser state. Dividing by T never changes the argmax,
so the counts (and what is "right") are the same before and after.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

T_MIN, T_MAX = 0.05, 20.0


def count_nll(logits: np.ndarray, labels: np.ndarray, t: float = 1.0) -> float:
    """Mean NLL of ``labels`` under softmax(logits / t) (nats)."""
    z = np.asarray(logits, np.float64) / t
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-np.mean(logp[np.arange(len(z)), np.asarray(labels, np.int64)]))


def binary_nll(logits: np.ndarray, target: np.ndarray, t: float = 1.0) -> float:
    """Mean binary cross-entropy of ``target`` (0/1) under sigmoid(logits / t)."""
    z = np.asarray(logits, np.float64) / t
    y = np.asarray(target, np.float64)
    # log(1 + exp(-|z|)) form: stable for any z.
    return float(np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))))


def _golden(f: Callable[[float], float], lo: float, hi: float, iters: int = 80) -> float:
    g = (math.sqrt(5) - 1) / 2
    a, b = lo, hi
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(iters):
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = f(d)
    return (a + b) / 2


def fit_temperature(nll: Callable[[float], float]) -> float:
    """The T in [T_MIN, T_MAX] minimising ``nll(T)`` (golden section on log T); T = 1 if
    no T does better than 1."""
    log_t = _golden(lambda u: nll(math.exp(u)), math.log(T_MIN), math.log(T_MAX))
    t = math.exp(log_t)
    return t if nll(t) < nll(1.0) else 1.0


def fit(count_logits: np.ndarray, labels: np.ndarray, conf_logits: np.ndarray) -> dict[str, float]:
    """Both temperatures from validation logits, with the NLLs before and after."""
    labels = np.asarray(labels, np.int64)
    correct = (np.asarray(count_logits).argmax(axis=1) == labels).astype(np.float64)
    t = fit_temperature(lambda x: count_nll(count_logits, labels, x))
    tc = fit_temperature(lambda x: binary_nll(conf_logits, correct, x))
    return {
        "temperature": t,
        "confidence_temperature": tc,
        "val_count_nll_before": count_nll(count_logits, labels),
        "val_count_nll_after": count_nll(count_logits, labels, t),
        "val_conf_nll_before": binary_nll(conf_logits, correct),
        "val_conf_nll_after": binary_nll(conf_logits, correct, tc),
        "val_windows": len(labels),
    }


__all__ = ["T_MAX", "T_MIN", "binary_nll", "count_nll", "fit", "fit_temperature"]
