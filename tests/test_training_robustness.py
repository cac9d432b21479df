"""Count training through the shared engine when things go wrong: non-finite
losses, a run killed (SIGKILL) in the middle of a checkpoint write, and a store
conversion killed in the middle of its write. The last good state stays intact
and ``--resume auto`` ends with exactly the weights of an uninterrupted run."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import csipose.count.train as count_train
from csipose import checkpoint as ckfind
from csipose.cli import main
from csipose.count import config
from csipose.data import Store
from csipose.data.simulate import simulate
from csipose.errors import TrainingError
from csipose.train import checkpoint

pytestmark = pytest.mark.usefixtures("restore_torch_threads")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("robust")
    return simulate(
        root / "store", profile="esp32", environments=2, subjects=3, frames=40, sequences=3, seed=1
    )


def overrides(store: Path, run: Path, *extra: str) -> list[str]:
    return ['data.source="store"', f'data.store="{store}"', f'train.run_dir="{run}"', "train.epochs=3",
            "train.batch_size=8", "train.threads=1", "train.early_stop=0", *extra]  # fmt: skip


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def weights(run: Path, name: str) -> dict[str, torch.Tensor]:
    return load_file(run / "checkpoints" / name / "model.safetensors")


def _nan_every(n: int, monkeypatch) -> None:
    real, calls = count_train.loss_terms, [0]

    def terms(*a, **k):
        calls[0] += 1
        out = real(*a, **k)
        if calls[0] % n == 0:
            out["loss"] = out["loss"] * math.nan
        return out

    monkeypatch.setattr(count_train, "loss_terms", terms)


def test_count_training_skips_non_finite_losses_then_aborts(store, tmp_path, monkeypatch):
    _nan_every(2, monkeypatch)
    run = count_train.train(
        config.load(None, overrides(store, tmp_path / "skip", "train.max_nonfinite=100"))
    )
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["nonfinite_skipped"] == rows[-1]["step"] // 2 > 0
    assert all(torch.isfinite(t).all() for t in weights(run, "best").values())
    _nan_every(1, monkeypatch)
    with pytest.raises(
        TrainingError, match=r"3 non-finite losses \(limit train.max_nonfinite = 2\)"
    ):
        count_train.train(
            config.load(None, overrides(store, tmp_path / "abort", "train.max_nonfinite=2"))
        )
    assert ckfind.latest(tmp_path / "abort") is None  # nothing was written before the abort


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while not path.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)


@pytest.fixture(scope="module")
def whole(store, tmp_path_factory) -> Path:
    return count_train.train(
        config.load(None, overrides(store, tmp_path_factory.mktemp("whole") / "run"))
    )


def _killed_at(store: Path, run: Path, pause: str) -> None:
    marker = run.parent / "paused"
    env = {**os.environ, "CSIPOSE_TEST_PAUSE_IN_CHECKPOINT": f"{pause}:{marker}"}
    args = ["count", "train", *overrides(store, run), "--no-eval"]
    proc = subprocess.Popen([sys.executable, "-m", "csipose", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)  # fmt: skip
    _wait_for(marker, proc)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    assert marker.exists() and proc.returncode == -signal.SIGKILL, err.decode()


def test_a_run_killed_during_a_checkpoint_write_resumes_to_the_uninterrupted_result(
    store, whole, tmp_path
):
    run = tmp_path / "killed"
    _killed_at(store, run, "epoch-0001")
    ck = run / "checkpoints"
    # Killed half-way through writing epoch-0001: its weights are in a hidden directory only.
    (partial,) = ck.glob(".epoch-0001.tmp-*")
    assert (partial / "model.safetensors").exists() and not (
        partial / "trainer_state.json"
    ).exists()
    assert not (ck / "epoch-0001").exists()
    assert ckfind.latest(run) == ck / "epoch-0000"
    assert checkpoint.load(run, which="latest")["trainer"]["epoch"] == 0
    assert same(weights(run, "best"), weights(run, "epoch-0000"))
    assert main(["count", "train", *overrides(store, run), "--resume", "auto", "--no-eval"]) == 0
    for name in ("epoch-0001", "epoch-0002", "best"):
        assert same(weights(whole, name), weights(run, name)), name


def test_a_run_killed_while_swapping_best_keeps_the_old_best_and_resumes(store, whole, tmp_path):
    """Killed after the calibrated checkpoint is copied for ``best`` and before the
    swap: the previous ``best`` (the uncalibrated best epoch) is intact and complete."""
    run = tmp_path / "killed"
    _killed_at(store, run, "calibrated/best")
    ck = run / "checkpoints"
    assert list(ck.glob(".best.tmp-*")) and (ck / "calibrated").is_dir()
    best = checkpoint.load(run)  # complete
    assert "calibration" not in best["trainer"]
    assert json.loads(best["metadata"]["calibration"])["note"] == "not calibrated yet"
    assert ckfind.latest(run) == ck / "epoch-0002"
    assert main(["count", "train", *overrides(store, run), "--resume", "auto", "--no-eval"]) == 0
    assert "calibration" in checkpoint.load(run)["trainer"]
    for name in ("epoch-0002", "calibrated", "best"):
        assert same(weights(whole, name), weights(run, name)), name


def test_a_conversion_killed_during_its_write_leaves_the_old_store(store, tmp_path):
    out = tmp_path / "store"
    simulate(out, profile="esp32", environments=2, subjects=2, frames=30, sequences=2, seed=2)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    args = ["simulate", str(out), "--overwrite", "--profile", "esp32", "--environments", "4", "--subjects", "6",
            "--frames", "400", "--sequences", "6", "--seed", "3"]  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "csipose", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.time() + 180
    written: list[Path] = []
    while proc.poll() is None and time.time() < deadline:
        written = [
            f
            for d in tmp_path.glob(".store.tmp-*")
            for f in d.glob("*.npy")
            if f.stat().st_size > 0
        ]
        if written:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    assert written and proc.returncode == -signal.SIGKILL, (
        f"the conversion was not killed while writing: {err.decode()}"
    )
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert len(Store.open(out)) > 0


def test_resume_refuses_another_thread_count_unless_told(store, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    save = checkpoint.save

    def interrupted(run, name, **kwargs):
        if name == "epoch-0001":
            raise KeyboardInterrupt
        return save(run, name, **kwargs)

    monkeypatch.setattr(checkpoint, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        count_train.train(config.load(None, overrides(store, run, "train.epochs=2")))
    monkeypatch.setattr(checkpoint, "save", save)
    assert ckfind.latest(run).name == "epoch-0000"
    with pytest.raises(TrainingError, match=r"another configuration \(train\.threads 1 -> 2;") as e:
        count_train.train(
            config.load(None, overrides(store, run, "train.epochs=2", "train.threads=2")),
            resume="auto",
        )
    assert "train.allow_resume_changes=true" in str(e.value)
    assert ckfind.latest(run).name == "epoch-0000"  # nothing was touched
    told = overrides(
        store, run, "train.epochs=2", "train.threads=2", "train.allow_resume_changes=true"
    )
    count_train.train(config.load(None, told), resume="auto")
    assert "continues with different arithmetic" in capsys.readouterr().out
    assert (run / "checkpoints" / "epoch-0001").is_dir()


def test_pose_resume_keys():
    """Threads, device, amp, compile and the batch change the numbers; epochs only sets
    the cosine period, so it may change under the plateau schedule."""
    from csipose.train import config as pose_config
    from csipose.train.loop import PoseTask

    free = PoseTask(pose_config.load()).free_keys
    for key in ("threads", "device", "amp", "compile", "batch_size", "batch_scale", "epochs"):
        assert ("train", key) not in free
    assert ("train", "epochs") in PoseTask(
        pose_config.load(None, ["optim.scheduler=plateau"])
    ).free_keys
