"""Metric-locked pose metrics: every number carries its definition.

``pck`` / ``pck_curve`` (presets ``torso``, ``bbox``, ``mmpose``, ``absolute``),
``mpjpe``, ``n_mpjpe``, ``pa_mpjpe``, COCO ``oks`` and ``accuracy_report``;
multi-person: COCO keypoint AP/AR ``oks_ap`` and ``multi_person_metrics`` (PCK and
MPJPE over optimally matched people, with missed / spurious people and counts).
The kernels are Rust (float32 in, float64 arithmetic, GIL released).
"""

from csipose.metrics.multi_person import MultiPersonResult, multi_person_metrics
from csipose.metrics.oks_ap import Detections, GroundTruth, OKSAPResult, oks_ap
from csipose.metrics.pose import (
    NORMS,
    TORSO_FLOOR,
    mpjpe,
    n_mpjpe,
    oks,
    pa_mpjpe,
    pck,
    pck_and_mpjpe,
    pck_curve,
    pck_definition,
    pck_key,
)
from csipose.metrics.report import DEFAULT_THRESHOLDS, AccuracyReport, Measurement, accuracy_report
from csipose.metrics.results import MetricValue, PCKCurve, PCKResult

__all__ = [
    "DEFAULT_THRESHOLDS",
    "NORMS",
    "TORSO_FLOOR",
    "AccuracyReport",
    "Detections",
    "GroundTruth",
    "Measurement",
    "MetricValue",
    "MultiPersonResult",
    "OKSAPResult",
    "PCKCurve",
    "PCKResult",
    "accuracy_report",
    "mpjpe",
    "multi_person_metrics",
    "n_mpjpe",
    "oks",
    "oks_ap",
    "pa_mpjpe",
    "pck",
    "pck_and_mpjpe",
    "pck_curve",
    "pck_definition",
    "pck_key",
]
