"""`make wheel` works for a user without Rust: the abi3 wheel installs into a fresh
virtual environment (no cargo on PATH, no access to this checkout or the dev install)
and its CLI and one kernel of each family give the dev build's answers.

Marked ``wheel`` (select with ``-m wheel``, skip with ``-m "not wheel"``); it is part of
``make test``. It reuses the release build of ``make dev`` (same profile and features),
so cargo only repackages."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import csipose
from csipose import _native, matching, metrics

pytestmark = pytest.mark.wheel
ROOT = Path(__file__).resolve().parents[1]
TAG = "manylinux_2_35"

# Runs inside the fresh venv; prints what each family computed as JSON.
PROBE = r"""
import json, sys
import numpy as np
import csipose
from csipose import matching, metrics
from csipose.data import Store
store_dir, ckpt = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(0)
p, g = rng.normal(size=(2, 12, 17, 2)).astype(np.float32)
cost = rng.random((4, 3))
rows, cols = matching.assign(cost)
store = Store.open(store_dir)
net = csipose.CountNet.load(ckpt)
x = rng.normal(size=(3, 56, 20)).astype(np.float32)
print(json.dumps({
    "file": csipose.__file__,
    "mpjpe": float(metrics.mpjpe(p, g)),
    "pck": float(metrics.pck(p, g, threshold=0.2, skeleton="coco17").value),
    "assign": [np.asarray(rows).tolist(), np.asarray(cols).tolist()],
    "gather": store.gather([0, 3], fields=["amplitude"])["amplitude"].tolist(),
    "countnet": net.predict(x).probabilities.tolist(),
}))
"""


def build_wheel(out: Path) -> Path:
    maturin = shutil.which("maturin")
    if maturin is None:
        pytest.skip("maturin is not installed (make dev installs it)")
    # The tag `make wheel` uses (see the Makefile: the oldest glibc this build honestly supports).
    res = subprocess.run(
        [maturin, "build", "--release", "--compatibility", TAG, "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    (wheel,) = out.glob("csipose-*.whl")
    return wheel


def fresh_venv(tmp: Path) -> Path:
    # --without-pip: ensurepip is the slow part; this process's pip installs into it.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp / "venv")], check=True)
    # numpy without an index: a directory holding only the dev environment's numpy
    # (not csipose, not torch) on the new venv's path.
    only_numpy = tmp / "only-numpy"
    only_numpy.mkdir()
    site = Path(np.__file__).parent.parent
    for name in os.listdir(site):
        if name == "numpy" or name.startswith(("numpy-", "numpy.libs")):
            (only_numpy / name).symlink_to(site / name)
    venv_site = Path(
        subprocess.run([str(tmp / "venv/bin/python"), "-c",
                        "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                       check=True, capture_output=True, text=True).stdout.strip()
    )  # fmt: skip
    (venv_site / "only-numpy.pth").write_text(f"{only_numpy}\n")
    return tmp / "venv"


def tiny_checkpoint(path: Path) -> Path:
    from safetensors.numpy import save_file

    rng = np.random.default_rng(1)
    weights, extras = _native.countnet_tensors()
    tensors = {n: (rng.normal(size=s) * 0.1).astype(np.float32) for n, s in weights}
    tensors |= {n: np.ones(s, np.float32) for n, s in extras}
    path.mkdir()
    save_file(tensors, str(path / "model.safetensors"),
              metadata={"format": "csipose-countnet-checkpoint"})  # fmt: skip
    return path


def test_wheel_installs_and_runs_without_rust(tmp_path):
    from stores import make_store

    wheel = build_wheel(tmp_path / "dist")
    assert "abi3" in wheel.name and TAG in wheel.name, wheel.name
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
    assert any(n.startswith("csipose/_native") and n.endswith(".so") for n in names)
    assert "csipose/py.typed" in names and "csipose/_native.pyi" in names

    venv = fresh_venv(tmp_path)
    py = venv / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index",
           "-q", str(wheel)]  # fmt: skip
    res = subprocess.run(pip, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    # No cargo, rustc or dev environment on PATH; run from an empty directory so that
    # neither this checkout's python/ nor the dev install can be imported.
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    assert shutil.which("cargo", path=env["PATH"]) is None
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    help_ = subprocess.run(["csipose", "--help"], env=env, cwd=run_dir, check=True,
                           capture_output=True, text=True)  # fmt: skip
    assert "usage: csipose" in help_.stdout

    store_dir, _ = make_store(tmp_path / "store")
    ckpt = tiny_checkpoint(tmp_path / "ckpt")
    out = subprocess.run([str(py), "-c", PROBE, str(store_dir), str(ckpt)], env=env, cwd=run_dir,
                         capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout)
    assert Path(got["file"]).is_relative_to(venv), got["file"]

    # The same computations with the dev build: the wheel must agree exactly.
    rng = np.random.default_rng(0)
    p, g = rng.normal(size=(2, 12, 17, 2)).astype(np.float32)
    rows, cols = matching.assign(rng.random((4, 3)))
    x = rng.normal(size=(3, 56, 20)).astype(np.float32)
    from csipose.data import Store

    assert got["mpjpe"] == float(metrics.mpjpe(p, g))
    assert got["pck"] == float(metrics.pck(p, g, threshold=0.2, skeleton="coco17").value)
    assert got["assign"] == [np.asarray(rows).tolist(), np.asarray(cols).tolist()]
    want = Store.open(store_dir).gather([0, 3], fields=["amplitude"])["amplitude"]
    np.testing.assert_array_equal(np.asarray(got["gather"], np.float32), want)
    probs = csipose.CountNet.load(ckpt).predict(x).probabilities
    np.testing.assert_array_equal(np.asarray(got["countnet"], np.float32), probs)
