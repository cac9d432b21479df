"""Reports are strict JSON: ``json.dumps`` writes NaN and Infinity by default (not
JSON), so the writers use ``allow_nan=False`` and turn undefined values into null."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from csipose import metrics
from csipose.count import metrics as count_metrics
from csipose.metrics.report import Measurement, json_safe


def strict_loads(text: str):
    def refuse(name):
        raise AssertionError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def test_accuracy_report_with_undefined_values_is_strict_json():
    # Every frame invisible: the pose metrics are undefined (NaN).
    gt = np.zeros((3, 17, 3), np.float32)
    rep = metrics.accuracy_report(gt, gt, skeleton="h36m17", visible=np.zeros((3, 17), bool))
    d = strict_loads(rep.to_json())
    assert d["model"]["mpjpe"]["value"] is None


def test_non_finite_measurements_become_null_and_a_raw_nan_is_refused():
    m = Measurement(math.inf, "x", per_joint=(1.0, -math.inf, math.nan))
    assert m.to_dict() == {"value": None, "definition": "x", "per_joint": [1.0, None, None]}
    assert json_safe({"a": [1.5, (math.nan,)], "b": "nan"}) == {"a": [1.5, [None]], "b": "nan"}
    with pytest.raises(ValueError):
        json.dumps({"a": math.nan}, allow_nan=False)


def test_count_report_is_strict_json():
    # Constant confidence: the rank correlation is undefined (NaN) and must be null.
    probs = np.full((4, 8), 1 / 8, np.float32)
    labels = np.array([0, 1, 2, 3])
    rep = count_metrics.count_report(probs, labels, np.full(4, 0.5), np.array([0, 0, 1]))
    assert any(
        isinstance(v, float) and math.isnan(v)
        for k in rep["model"].values()
        if isinstance(k, dict)
        for v in [k["value"]]
    ), "the test needs a NaN to be meaningful"
    strict_loads(json.dumps(json_safe(rep), allow_nan=False))
