"""The kernels are compiled for several instruction sets (baseline, AVX2 + FMA,
AVX-512) and dispatched at run time. Every build must give the same results:
PCK counts and MPJPE sums bit for bit, OKS within 1e-15 (only its exp differs),
the float32 load path bit for bit, assignment batches pair for pair."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import csipose

SCRIPT = r"""
import json, sys
import numpy as np
import csipose
from csipose import metrics

rng = np.random.default_rng(7)
gt = rng.uniform(0, 3, (5000, 17, 2)).astype(np.float32)
pred = (gt + rng.normal(0, 0.2, gt.shape)).astype(np.float32)
pred[::97, 3] = np.nan
vis = rng.random((5000, 17)) > 0.2
vis[::50] = True
out = {"level": csipose.simd_level()}
for name, v in (("all", None), ("masked", vis)):
    c, m = metrics.pck_and_mpjpe(pred, gt, [0.05, 0.1, 0.2, 0.5], skeleton="coco17", visible=v)
    out[name + "_pck"] = c.per_joint.tolist()
    out[name + "_mpjpe"] = float(m).hex()
    out[name + "_bbox"] = metrics.pck(pred, gt, threshold=0.3, norm="bbox", visible=v).value
    # Evenly spaced curve: the direct float32 index (pck_curve; pck_and_mpjpe
    # with its MPJPE from the same loads), and the float64 index that
    # per-sample distances take.
    grid = np.linspace(0.0, 0.5, 101)
    out[name + "_curve32"] = metrics.pck_curve(pred, gt, grid, skeleton="coco17", visible=v).per_joint.tolist()
    c, m = metrics.pck_and_mpjpe(pred, gt, grid, skeleton="coco17", visible=v)
    out[name + "_curve32_mpjpe"] = [c.per_joint.tolist(), float(m).hex()]
    from csipose import _native
    r = _native.joint_errors(pred, gt, v, norm="torso", torso=(5, 12), floor=0.01, thresholds=grid, per_sample=True)
    out[name + "_curve64"] = r["correct"].tolist()
    per = metrics.mpjpe(pred, gt, visible=v, reduce=False)
    out[name + "_per_sample"] = [x.hex() for x in per[:50]]
    flags = np.ones((5000, 17)) if v is None else v
    out[name + "_oks"] = metrics.oks(pred, gt, visible=flags, area="keypoint_bbox").tolist()
# Assignment batches: problems with sides 4-8 go through the vector lanes
# on AVX2 (tall ones transposed), the scalar solvers on the baseline build;
# the same pairs.
from csipose import matching
for name, costs in (
    ("8x8", np.round(rng.normal(0, 3, (401, 8, 8)))),
    ("5x5", rng.random((103, 5, 5))),
    ("7x5", np.round(rng.normal(0, 3, (101, 7, 5)))),
    ("4x6", rng.random((99, 4, 6))),
):
    b = matching.assign_batch(costs)
    out[f"assign_{name}"] = [b.rows.tolist(), b.cols.tolist()]
# The float32 load path (no FMA in any build): the same bits everywhere.
import pathlib, tempfile
from csipose import signal
from csipose.data import CsiTransform, Store, ZScore
from stores import make_store
with tempfile.TemporaryDirectory() as d:
    path, _ = make_store(pathlib.Path(d) / "s", phase=False)
    z = ZScore(rng.uniform(-1, 1, (3, 5)), rng.uniform(0.1, 2, (3, 5)), eps=0.0, source="t")
    for i, t in enumerate((
        CsiTransform(minmax=True, subcarriers=signal.linear_map(8, 5), zscore=z),
        CsiTransform(subcarriers=signal.gaussian_map(8, 6)),
    )):
        s = Store.open(path, window={"length": 1, "stride": 1}, transform={"amplitude": t})
        a = s.gather(np.arange(len(s)), fields=["amplitude"])["amplitude"]
        out[f"load_path_{i}"] = a.tobytes().hex()
json.dump(out, sys.stdout)
"""


def run(level: str | None) -> dict:
    env = dict(os.environ)
    env.pop("CSIPOSE_SIMD", None)
    # The script builds a store with the tests' helper (tests/stores.py).
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [os.path.dirname(__file__), env.get("PYTHONPATH")])
    )
    if level:
        env["CSIPOSE_SIMD"] = level
    res = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


@pytest.mark.parametrize("level", ["base", "avx2"])
def test_every_instruction_set_gives_the_same_results(level):
    best, other = run(None), run(level)
    assert other["level"] in ("base", level)
    if other["level"] == best["level"]:
        pytest.skip(f"this CPU runs {level} as its best build; nothing to compare")
    for key, value in best.items():
        if key == "level":
            continue
        if key.endswith("_oks"):
            np.testing.assert_allclose(other[key], value, rtol=0, atol=1e-15)
        else:
            assert other[key] == value, key


def test_simd_level_is_reported():
    assert csipose.simd_level() in ("base", "avx2", "avx512")
