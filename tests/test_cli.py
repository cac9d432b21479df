"""The csipose command: the report, errors and the console script (train/eval: test_train.py)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from csipose.cli import main


def test_report_from_npy_files(tmp_path, capsys):
    rng = np.random.default_rng(0)
    gt = rng.normal(size=(50, 17, 2)).astype(np.float32)
    np.save(tmp_path / "gt.npy", gt)
    np.save(tmp_path / "pred.npy", gt + 0.1)
    np.save(tmp_path / "mean.npy", gt.mean(axis=0))
    args = [str(tmp_path / "pred.npy"), str(tmp_path / "gt.npy"), "--skeleton", "coco17"]
    assert main(["report", *args, "--mean-pose", str(tmp_path / "mean.npy")]) == 0
    assert "| oks |" in capsys.readouterr().out


def test_bad_input_is_a_clear_error_not_a_traceback(tmp_path, capsys):
    (tmp_path / "gt.npy").write_bytes(b"not a numpy file")
    assert (
        main(["report", str(tmp_path / "gt.npy"), str(tmp_path / "gt.npy"), "--skeleton", "coco17"])
        == 2
    )
    err = capsys.readouterr().err
    assert "gt.npy" in err and "cannot read" in err
    np.save(tmp_path / "p.npy", np.zeros((3, 15, 2), np.float32))
    assert (
        main(["report", str(tmp_path / "p.npy"), str(tmp_path / "p.npy"), "--skeleton", "coco17"])
        == 2
    )
    assert "17 joints but the poses have 15" in capsys.readouterr().err


def test_the_console_script_runs():
    res = subprocess.run(
        [sys.executable, "-m", "csipose", "--version"], capture_output=True, text=True
    )
    assert res.returncode == 0 and res.stdout.startswith("csipose ")
