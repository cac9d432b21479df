"""Finding checkpoints (``csipose.checkpoint``, torch-free), the atomic directory
exchange that keeps ``best`` present at every moment, and the torch-free import
of ``csipose.count``."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from csipose import _files
from csipose import checkpoint as ck
from csipose.errors import CheckpointError

FILES = ("model.safetensors", "optimizer.pt", "rng_state.pt", "trainer_state.json")


def make_checkpoint(d: Path, value: float = 1.0, meta: dict | None = None) -> Path:
    d.mkdir(parents=True)
    save_file(
        {"w": np.full(3, value, np.float32)},
        str(d / "model.safetensors"),
        metadata=meta or {"k": "v"},
    )
    for f in FILES[1:]:
        (d / f).write_text("{}")
    return d


def make_run(root: Path, *, best: bool = True) -> Path:
    run = root / "run"
    make_checkpoint(run / "checkpoints" / "epoch-0000", 0.0)
    make_checkpoint(run / "checkpoints" / "epoch-0001", 1.0)
    if best:
        make_checkpoint(run / "checkpoints" / "best", 0.0)
    (run / "checkpoints" / "latest.json").write_text(json.dumps({"name": "epoch-0001"}))
    return run


def test_model_file_of_a_file_a_checkpoint_and_a_run(tmp_path):
    run = make_run(tmp_path)
    best = run / "checkpoints" / "best" / "model.safetensors"
    assert ck.model_file(best) == best
    assert ck.model_file(best.parent) == best
    assert ck.model_file(run) == best
    assert ck.model_file(run, "latest") == run / "checkpoints" / "epoch-0001" / "model.safetensors"
    assert ck.checkpoint_dir(run, "latest", complete=True).name == "epoch-0001"
    assert ck.latest(run) == run / "checkpoints" / "epoch-0001"
    assert ck.latest(tmp_path) is None


def test_a_run_without_best_never_falls_back_to_latest(tmp_path):
    run = make_run(tmp_path, best=False)
    with pytest.raises(
        CheckpointError, match=r"no best checkpoint .*newest checkpoint is epoch-0001.*latest"
    ):
        ck.model_file(run)
    assert ck.model_file(run, which="latest").parent.name == "epoch-0001"


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda p: p, "no such checkpoint or run directory"),
        (lambda p: (p.mkdir(), p / "x.bin")[1], "no such checkpoint"),
        (
            lambda p: (p.mkdir(), (p / "w.bin").write_text(""), p / "w.bin")[2],
            "not a model.safetensors",
        ),
        (lambda p: (p.mkdir(), p)[1], r"missing model\.safetensors"),
        (lambda p: ((p / "checkpoints").mkdir(parents=True), p)[1], "has no best checkpoint"),
    ],
)
def test_what_is_not_a_checkpoint_is_a_clear_error(tmp_path, setup, message):
    with pytest.raises(CheckpointError, match=message):
        ck.model_file(setup(tmp_path / "x"))


def test_an_incomplete_checkpoint_and_a_bad_latest_json(tmp_path):
    run = make_run(tmp_path)
    (run / "checkpoints" / "epoch-0001" / "rng_state.pt").unlink()
    assert ck.model_file(run, "latest").exists()  # the weights alone are enough to infer
    with pytest.raises(CheckpointError, match=r"missing rng_state\.pt"):
        ck.checkpoint_dir(run, "latest", complete=True)
    for bad in ("{", '{"nam": 1}', '{"name": "../../etc"}', '{"name": 3}'):
        (run / "checkpoints" / "latest.json").write_text(bad)
        with pytest.raises(CheckpointError, match=r"latest\.json: unreadable"):
            ck.latest(run)
    with pytest.raises(ValueError, match="which must be"):
        ck.model_file(run, "newest")


def test_metadata_is_read_from_the_header_alone(tmp_path):
    d = make_checkpoint(tmp_path / "c", meta={"format": "x", "config": '{"a": 1}'})
    assert ck.read_metadata(d) == {"format": "x", "config": '{"a": 1}'}
    assert ck.read_metadata(d / "model.safetensors") == ck.read_metadata(d)
    bad = tmp_path / "bad" / "model.safetensors"
    bad.parent.mkdir()
    for raw in (
        b"",
        (10**12).to_bytes(8, "little"),
        (5).to_bytes(8, "little") + b"[1,2]",
        (3).to_bytes(8, "little"),
    ):
        bad.write_bytes(raw)
        with pytest.raises(CheckpointError, match="cannot read the safetensors header"):
            ck.read_metadata(bad)


def test_replace_dir_never_leaves_a_moment_without_the_target(tmp_path):
    """A reader polls ``best`` while it is replaced 300 times: it never finds it missing,
    and always finds a complete directory (old or new)."""
    target = tmp_path / "best"
    make_checkpoint(target, 0.0)
    assert _files.exchange(tmp_path, tmp_path) in (
        True,
        False,
    )  # callable; True on Linux file systems
    stop, seen = threading.Event(), {"missing": 0, "reads": 0}

    def reader():
        while not stop.is_set():
            seen["reads"] += 1
            if (
                not (target / "model.safetensors").exists()
                or not (target / "trainer_state.json").exists()
            ):
                seen["missing"] += 1

    t = threading.Thread(target=reader)
    t.start()
    try:
        for i in range(300):
            new = make_checkpoint(tmp_path / f".best.tmp-{i}", float(i))
            _files.replace_dir(new, target)
    finally:
        stop.set()
        t.join()
    assert seen["reads"] > 100 and seen["missing"] == 0, seen
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]  # the old copies are gone
    assert ck.read_metadata(target) == {"k": "v"}


def _steps_without_target(tmp_path, monkeypatch) -> list[str]:
    """Replace a directory with every file-system step of replace_dir wrapped: the
    steps after which the target was missing."""
    target = make_checkpoint(tmp_path / "best", 0.0)
    gaps: list[str] = []

    def watched(name, fn):
        def step(*a, **k):
            out = fn(*a, **k)
            if not (target / "model.safetensors").exists():
                gaps.append(name)
            return out

        return step

    monkeypatch.setattr(_files.os, "rename", watched("rename", _files.os.rename))
    monkeypatch.setattr(_files, "exchange", watched("exchange", _files.exchange))
    monkeypatch.setattr(_files.shutil, "rmtree", watched("rmtree", _files.shutil.rmtree))
    _files.replace_dir(make_checkpoint(tmp_path / ".best.tmp", 1.0), target)
    return gaps


def test_no_step_of_replace_dir_leaves_the_target_missing(tmp_path, monkeypatch):
    assert _steps_without_target(tmp_path, monkeypatch) == []


def test_the_gap_check_catches_a_rename_aside(tmp_path, monkeypatch):
    """The check above can fail: without the exchange (rename aside, then into place)
    there is a step with no target."""
    monkeypatch.setattr(_files, "exchange", lambda a, b: False)
    assert _steps_without_target(tmp_path, monkeypatch) == ["rename"]


def test_replace_dir_without_an_exchange_still_replaces(tmp_path, monkeypatch):
    monkeypatch.setattr(_files, "exchange", lambda a, b: False)
    target = make_checkpoint(tmp_path / "t", 0.0)
    _files.replace_dir(make_checkpoint(tmp_path / ".new", 5.0), target)
    from safetensors.numpy import load_file

    assert load_file(str(target / "model.safetensors"))["w"][0] == 5.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t"]


def test_count_and_the_checkpoint_module_import_without_torch():
    code = (
        "import sys, csipose, csipose.count, csipose.count.config, csipose.checkpoint, csipose.train, "
        "csipose.train.config; "
        "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))[:5]; "
        "from csipose.train import train, evaluate; "
        "assert callable(train) and callable(evaluate) and 'torch' in sys.modules; "
        "import csipose.train.evaluate; from csipose.train import evaluate as f; "
        "assert f is sys.modules['csipose.train.evaluate'].evaluate"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
