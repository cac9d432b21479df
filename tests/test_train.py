"""Training and evaluation: configuration, checkpoints, determinism, resume,
non-finite losses, DDP under torchrun and the evaluation report.

The runs here train wiflow-tiny on a small simulated store for a few epochs on
one thread; the built-in 10-minute job itself is measured in the README."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from csipose.cli import main
from csipose.data import Store
from csipose.data.simulate import simulate
from csipose.errors import CheckpointError
from csipose.train import ConfigError, TrainingError, checkpoint, config, evaluate, train
from csipose.train.data import prepare

# Training sets torch's thread count; every test gets it back as it was.
pytestmark = pytest.mark.usefixtures("restore_torch_threads")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("train")
    return simulate(root / "store", environments=2, subjects=4, actions=["walk", "wave", "squat"],
                    frames=24, seed=3)  # fmt: skip


def overrides(store: Path, run: Path, *extra: str) -> list[str]:
    return [
        'data.source="store"', f'data.store="{store}"', f'train.run_dir="{run}"',
        "train.epochs=3", "train.batch_size=16", "train.threads=1", 'model.name="wiflow-tiny"',
        "model.options={input_pw_groups=2}", "train.early_stop=0", *extra,
    ]  # fmt: skip


def weights(run: Path, name: str | None = None) -> dict[str, torch.Tensor]:
    ck = (
        run
        / "checkpoints"
        / (name or json.loads((run / "checkpoints/latest.json").read_text())["name"])
    )
    return load_file(ck / "model.safetensors")


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def history(run: Path) -> list[dict]:
    """metrics.jsonl without the wall-clock columns."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("epoch_s", "data_fraction")} for r in rows]


# -- configuration -------------------------------------------------------------------------


def test_config_file_and_dotted_overrides(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('[optim]\nlr = 1e-3\nscheduler = "cosine"\n[eval]\nthresholds = [0.1, 0.5]\n')
    cfg = config.load(
        f, ["optim.lr=3e-4", "train.epochs=7", "model.name=wiflow-half", "optim.betas=[0.8, 0.9]"]
    )
    assert cfg.optim.lr == 3e-4 and cfg.optim.scheduler == "cosine" and cfg.train.epochs == 7
    assert cfg.model.name == "wiflow-half" and cfg.optim.betas == [0.8, 0.9]
    assert cfg.eval.thresholds == [0.1, 0.5]
    again = tmp_path / "again.toml"
    again.write_text(cfg.to_toml())
    assert config.load(again) == cfg


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["optim.lrr=1"], "unknown key optim.lrr"),
        (["optimiser.lr=1"], "unknown section 'optimiser'"),
        (["train.epochs=many"], "train.epochs must be an integer"),
        (["train.epochs=2.5"], "train.epochs must be an integer"),
        (["data.zscore=1"], "data.zscore must be true or false"),
        (["optim.scheduler=step"], "optim.scheduler must be 'plateau' or 'cosine'"),
        (["epochs=3"], "must look like section.key=value"),
        (["train.batch_size=0"], "train.batch_size must be >= 1"),
    ],
)
def test_bad_configuration_is_an_error_naming_the_key(items, message):
    with pytest.raises(ConfigError, match=message):
        config.load(None, items)


def test_bad_config_file_names_the_file(tmp_path, capsys):
    f = tmp_path / "bad.toml"
    f.write_text("[train]\nepochs = \n")
    with pytest.raises(ConfigError, match=r"bad\.toml: not valid TOML"):
        config.load(f)
    f.write_text("[train]\nepoch = 3\n")
    assert main(["train", str(f)]) == 2
    assert "bad.toml: unknown key train.epoch" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="no such configuration file"):
        config.load(tmp_path / "missing.toml")


def test_data_the_store_cannot_give_is_a_clear_error(tmp_path):
    from stores import make_store

    path, _ = make_store(tmp_path / "s", phase=False)
    cfg = config.load(None, ['data.source="store"', f'data.store="{path}"'])
    with pytest.raises(ConfigError, match="has no split 'default'"):
        prepare(cfg, path)
    cfg = config.load(None, ['data.source="store"', f'data.store="{path}"', 'data.split="halves"',
                             'data.val_part="test"', 'data.test_parts=["test"]'])  # fmt: skip
    with pytest.raises(
        ConfigError, match=r"needs CSI phase from 2 or more antennas; .* has no phase"
    ):
        prepare(cfg, path)
    cfg.data.inputs = "amplitude"
    assert prepare(cfg, path).in_channels == 3 * 8
    cfg.data.test_parts = ["nope"]
    with pytest.raises(ConfigError, match="split 'halves' has no part 'nope'"):
        prepare(cfg, path)


def test_print_config(capsys):
    assert main(["train", "--print-config", "optim.lr=0.01", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "[optim]\nlr = 0.01\n" in out and 'device = "cpu"' in out


# -- checkpoints ---------------------------------------------------------------------------


def _save(run: Path, name: str, model: torch.nn.Module) -> Path:
    return checkpoint.save(run, name, model=model, optimizer_state={}, trainer_state={"epoch": 0},
                           metadata={"format": "test"})  # fmt: skip


def test_non_finite_weights_are_never_written_and_the_last_checkpoint_is_kept(tmp_path):
    model = torch.nn.Linear(3, 2)
    good = _save(tmp_path, "epoch-0000", model)
    before = (good / "model.safetensors").read_bytes()
    with torch.no_grad():
        model.weight[0, 0] = float("nan")
    with pytest.raises(CheckpointError, match="non-finite weights"):
        _save(tmp_path, "epoch-0001", model)
    with pytest.raises(CheckpointError):
        _save(tmp_path, "epoch-0000", model)
    assert (good / "model.safetensors").read_bytes() == before
    assert checkpoint.latest(tmp_path) == good
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "epoch-0000",
        "latest.json",
    ]


def test_an_incomplete_checkpoint_is_refused(tmp_path):
    ck = _save(tmp_path, "epoch-0000", torch.nn.Linear(3, 2))
    (ck / "optimizer.pt").unlink()
    with pytest.raises(CheckpointError, match=r"missing optimizer\.pt"):
        checkpoint.load(ck)
    with pytest.raises(CheckpointError, match="has no best checkpoint"):
        checkpoint.resolve(_empty_run(tmp_path))


def _empty_run(tmp_path: Path) -> Path:
    (tmp_path / "empty" / "checkpoints").mkdir(parents=True)
    return tmp_path / "empty"


# -- training ------------------------------------------------------------------------------


def test_training_learns_and_writes_its_run_directory(store, tmp_path):
    run = train(
        config.load(None, overrides(store, tmp_path / "run", "train.epochs=6")), progress=False
    )
    rows = history(run)
    assert [r["epoch"] for r in rows] == list(range(6))
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    ck = run / "checkpoints"
    assert sorted(p.name for p in ck.iterdir()) == [
        "best",
        "epoch-0004",
        "epoch-0005",
        "latest.json",
    ]
    assert {p.name for p in (ck / "best").iterdir()} == set(checkpoint.FILES)
    best = json.loads((ck / "best" / "trainer_state.json").read_text())
    assert best["best_val_mpjpe"] == min(r["val_mpjpe"] for r in rows)
    assert (run / "plots" / "loss.png").stat().st_size > 0 and (run / "plots" / "pck.png").exists()
    # The saved configuration is the one given, with data.split "auto" resolved for this store.
    given = config.load(None, overrides(store, tmp_path / "run", "train.epochs=6"))
    given.data.split, given.data.val_part, given.data.test_parts = (
        "default", "val", ["test", "test_unseen_env"])  # fmt: skip
    assert config.load(run / "config.toml") == given
    # The model beats predicting the training set's mean pose on the validation subject.
    rep = evaluate(run, "val")
    assert rep.model["mpjpe"].value < rep.mean_pose_baseline["mpjpe"].value


def test_one_seed_gives_bit_identical_weights(store, tmp_path):
    a = train(config.load(None, overrides(store, tmp_path / "a")), progress=False)
    b = train(config.load(None, overrides(store, tmp_path / "b")), progress=False)
    c = train(config.load(None, overrides(store, tmp_path / "c", "train.seed=1")), progress=False)
    assert same(weights(a), weights(b)) and history(a) == history(b)
    assert not same(weights(a), weights(c))


def test_resume_continues_bit_identically(store, tmp_path):
    """Stopped after one epoch (the plateau schedule does not depend on train.epochs), then
    continued to three."""
    plateau = 'optim.scheduler="plateau"'
    whole = train(config.load(None, overrides(store, tmp_path / "whole", plateau)), progress=False)
    part = tmp_path / "part"
    train(config.load(None, overrides(store, part, plateau, "train.epochs=1")), progress=False)
    assert json.loads((part / "checkpoints/latest.json").read_text())["name"] == "epoch-0000"
    train(config.load(None, overrides(store, part, plateau)), resume="auto", progress=False)
    assert same(weights(whole), weights(part)) and history(whole) == history(part)
    assert same(weights(whole, "best"), weights(part, "best"))


def test_a_fresh_run_sets_an_earlier_run_in_the_same_directory_aside(store, tmp_path):
    run = tmp_path / "run"
    first = overrides(store, run, "train.epochs=1", "train.max_steps=2")
    train(config.load(None, first), progress=False)
    before = weights(run)
    train(config.load(None, [*first, "train.seed=1"]), progress=False)
    (aside,) = [p for p in tmp_path.iterdir() if p.name.startswith("run.")]
    assert same(weights(aside), before) and not same(weights(run), before)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "best",
        "epoch-0000",
        "latest.json",
    ]


def test_early_stopping_stops_and_says_why(store, tmp_path, capsys):
    # lr 1e-30 is below float32 resolution: the weights never change, so the second epoch
    # cannot improve on the first.
    cfg = config.load(
        None, overrides(store, tmp_path / "run", "optim.lr=1e-30", "train.early_stop=1")
    )
    run = train(cfg, progress=False)
    assert [r["epoch"] for r in history(run)] == [0, 1]
    assert (
        "stopping after epoch 2 of 3: no better validation MPJPE for 1 epochs"
        in capsys.readouterr().out
    )


def test_resume_refuses_another_configuration(store, tmp_path):
    run = tmp_path / "run"
    train(config.load(None, overrides(store, run, "train.epochs=1")), progress=False)
    with pytest.raises(TrainingError, match="another configuration"):
        train(
            config.load(None, overrides(store, run, "optim.lr=0.1")), resume="auto", progress=False
        )
    with pytest.raises(TrainingError, match="another configuration"):  # the cosine period
        train(
            config.load(None, overrides(store, run, "train.epochs=2")),
            resume="auto",
            progress=False,
        )


def test_a_killed_run_resumes_to_the_uninterrupted_result(store, tmp_path):
    """SIGKILL at an arbitrary moment: the last checkpoint is intact and --resume auto
    ends with exactly the weights of a run that was never interrupted."""
    whole = train(
        config.load(None, overrides(store, tmp_path / "whole", "train.epochs=8")), progress=False
    )
    run = tmp_path / "killed"
    args = ["train", *overrides(store, run, "train.epochs=8"), "--no-eval"]
    proc = subprocess.Popen([sys.executable, "-m", "csipose", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)  # fmt: skip
    pointer = run / "checkpoints" / "latest.json"
    deadline = time.time() + 120
    while not pointer.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, err.decode()
    done = json.loads((run / "checkpoints" / "epoch-0000" / "trainer_state.json").read_text())[
        "epoch"
    ]
    assert done == 0
    state = checkpoint.load(run)["trainer"]
    assert state["epoch"] < 7, "the run finished before it was killed; the test proved nothing"
    assert (
        main(["train", *overrides(store, run, "train.epochs=8"), "--resume", "auto", "--no-eval"])
        == 0
    )
    assert same(weights(whole), weights(run))


def _nan_every(n: int, monkeypatch):
    import csipose.models as models

    real, calls = models.pose_loss, [0]

    def loss(*a, **k):
        calls[0] += 1
        out = real(*a, **k)
        return out * float("nan") if calls[0] % n == 0 else out

    monkeypatch.setattr(models, "pose_loss", loss)


def test_non_finite_losses_are_skipped_and_counted(store, tmp_path, monkeypatch):
    _nan_every(3, monkeypatch)
    run = train(config.load(None, overrides(store, tmp_path / "run", "train.epochs=2", "train.max_nonfinite=100")),
                progress=False)  # fmt: skip
    rows = history(run)
    steps = rows[-1]["step"]
    assert rows[-1]["nonfinite_skipped"] == steps // 3 > 0
    assert all(torch.isfinite(t).all() for t in weights(run).values())


def test_too_many_non_finite_losses_abort_and_keep_the_last_checkpoint(
    store, tmp_path, monkeypatch
):
    run = tmp_path / "run"
    plateau = 'optim.scheduler="plateau"'
    train(config.load(None, overrides(store, run, plateau, "train.epochs=1")), progress=False)
    good = weights(run)
    _nan_every(1, monkeypatch)
    with pytest.raises(TrainingError, match="non-finite losses"):
        train(config.load(None, overrides(store, run, plateau, "train.max_nonfinite=4")), resume="auto",
              progress=False)  # fmt: skip
    assert same(weights(run), good)


# -- evaluation ----------------------------------------------------------------------------


def test_eval_report_json_markdown_and_plot(store, tmp_path, capsys):
    run = train(
        config.load(None, overrides(store, tmp_path / "run", "train.epochs=2")), progress=False
    )
    assert main(["eval", str(run), "--split", "test"]) == 0
    assert "| pck@20 |" in capsys.readouterr().out
    out = run / "eval" / "test"
    rep = json.loads((out / "report.json").read_text())
    for section in ("model", "mean_pose_baseline"):
        for key in ("pck@10", "pck@20", "pck@50", "mpjpe", "pa_mpjpe"):
            m = rep[section][key]
            assert np.isfinite(m["value"]) and m["definition"]
    assert "torso-PCK@0.2" in rep["model"]["pck@20"]["definition"]
    assert len(rep["model"]["pck@20"]["per_joint"]) == 17
    assert rep["units"] == "m" and rep["part"] == "test"
    assert set(rep["by_environment"]) == {"E01"} and len(rep["by_subject"]) == 1
    sub = next(iter(rep["by_subject"].values()))
    assert sub["n_samples"] == rep["n_samples"] and sub["model"]["mpjpe"]["value"] == pytest.approx(
        rep["model"]["mpjpe"]["value"]
    )
    assert "| pck@20 |" in (out / "report.md").read_text()
    assert (out / "pck_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["eval", str(run), "--split", "nope"]) == 2
    assert "has no part 'nope'" in capsys.readouterr().err


def test_cli_train_evaluates_the_test_parts(store, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *overrides(store, run, "train.epochs=1")]) == 0
    out = capsys.readouterr().out
    assert "| part | samples | pck@20 model | pck@20 baseline | ratio |" in out
    rows = [line.split(" | ")[0] for line in out.splitlines() if line.startswith("| test")]
    assert rows == ["| test", "| test_unseen_env"]
    assert (run / "eval" / "test" / "report.json").exists()
    assert (run / "eval" / "test_unseen_env" / "report.json").exists()


# -- distributed ---------------------------------------------------------------------------


def test_torchrun_two_cpu_processes_train_with_ddp(store, tmp_path):
    run = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "csipose", "train", *overrides(store, run, "train.epochs=2"), "--no-eval"]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    ck = run / "checkpoints"
    assert sorted(p.name for p in ck.iterdir()) == [
        "best",
        "epoch-0000",
        "epoch-0001",
        "latest.json",
    ]
    assert res.stdout.count("epoch 2/2:") == 1, "only rank 0 logs"
    rows = history(run)
    assert len(rows) == 2 and np.isfinite(rows[-1]["val_mpjpe"])
    # Each rank took its half of every epoch: ceil(ceil(n / 2) / batch) steps.
    n = len(Store.open(store).split("default")["train"])
    assert rows[0]["step"] == math.ceil(math.ceil(n / 2) / 16)
