"""The CLI turns input errors into exit code 2 and one line; a bug keeps its traceback."""

from __future__ import annotations

import numpy as np
import pytest

from csipose import cli


def run_with(monkeypatch, fn):
    # `report` is the cheapest subcommand; replace what it runs.
    monkeypatch.setattr(cli, "_cmd_report", fn)
    return cli.main(["report", "a.npy", "b.npy", "--skeleton", "coco17"])


def test_a_type_error_is_a_bug_and_keeps_its_traceback(monkeypatch):
    def bug(args):
        return len(5)  # a TypeError no user input can cause

    with pytest.raises(TypeError, match="has no len"):
        run_with(monkeypatch, bug)


def test_a_value_error_from_inside_numpy_is_a_bug(monkeypatch):
    def bug(args):
        return int(np.zeros(3).reshape(2, 2).sum())

    with pytest.raises(ValueError, match="reshape"):
        run_with(monkeypatch, bug)


def test_a_value_error_csipose_raises_is_an_input_error(monkeypatch, capsys):
    from csipose import metrics

    def bad_input(args):
        return metrics.pck(
            np.zeros((1, 2, 2), np.float32), np.zeros((1, 3, 2), np.float32), threshold=0.2
        )

    assert run_with(monkeypatch, bad_input) == 2
    assert capsys.readouterr().err.startswith("csipose report: error: ")


def test_a_missing_file_is_an_input_error(tmp_path, capsys):
    assert (
        cli.main(
            ["report", str(tmp_path / "no.npy"), str(tmp_path / "no.npy"), "--skeleton", "coco17"]
        )
        == 2
    )
    assert "no.npy" in capsys.readouterr().err
