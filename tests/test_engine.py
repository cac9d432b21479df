"""The training engine on a toy task (a linear model on seeded random data, no
store, no simulator): stop reasons, the non-finite loss guard, best / latest
checkpoints, bit-identical resume, and the resume rules (a change of the
arithmetic is refused unless train.allow_resume_changes says otherwise)."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from csipose import checkpoint as ckfind
from csipose.errors import TrainingError
from csipose.train import checkpoint
from csipose.train.engine import Engine, Task, config_changes

pytestmark = pytest.mark.usefixtures("restore_torch_threads")


@dataclass
class ToyTrain:
    run_dir: str = ""
    seed: int = 0
    epochs: int = 4
    threads: int = 1
    device: str = "cpu"
    early_stop: int = 0
    time_budget_min: float = 0.0
    max_steps: int = 0
    max_nonfinite: int = 3
    batch_size: int = 8
    allow_resume_changes: bool = False


@dataclass
class ToyOptim:
    lr: float = 0.05
    clip: float = 1.0


@dataclass
class ToyConfig:
    train: ToyTrain = field(default_factory=ToyTrain)
    optim: ToyOptim = field(default_factory=ToyOptim)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class ToyTask(Task):
    """y = x @ w + noise; dropout makes the torch RNG part of the result; ``nan_at``
    poisons the loss of chosen steps; ``val_curve`` forces the validation metric."""

    better_name = "toy loss"
    free_keys = frozenset({("train", "epochs"), ("train", "run_dir"), ("train", "max_steps"),
                           ("train", "early_stop"), ("train", "time_budget_min")})  # fmt: skip

    def __init__(
        self,
        cfg: ToyConfig,
        nan_at: frozenset[int] = frozenset(),
        val_curve: list[float] | None = None,
    ):
        super().__init__(cfg)
        self.nan_at, self.val_curve, self.calls = nan_at, val_curve, 0

    def build(self) -> None:
        self.device = torch.device("cpu")
        self.x = torch.randn(40, 5)
        self.y = self.x @ torch.randn(5, 1) + 0.1 * torch.randn(40, 1)
        self.model = self.net = torch.nn.Sequential(torch.nn.Dropout(0.2), torch.nn.Linear(5, 1))
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=self.cfg.optim.lr)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=2, gamma=0.5)

    def batches(self, epoch: int):
        g = torch.Generator().manual_seed(epoch)
        order = torch.randperm(40, generator=g)
        b = self.cfg.train.batch_size
        return 40 // b, (order[s : s + b] for s in range(0, 40, b))

    def loss(self, idx):
        self.calls += 1
        loss = torch.nn.functional.mse_loss(self.net(self.x[idx]), self.y[idx])
        return {"loss": loss * math.nan if self.calls in self.nan_at else loss}

    def validate(self):
        self.model.eval()
        with torch.no_grad():
            v = float(torch.nn.functional.mse_loss(self.model(self.x), self.y))
        if self.val_curve is not None:
            v = self.val_curve.pop(0)
        return {"val_loss": v}

    def initial_state(self):
        return {"best_val_loss": math.inf}

    def improve(self, state, val):
        if val["val_loss"] < state["best_val_loss"]:
            state["best_val_loss"] = val["val_loss"]
            return True
        return False

    def metadata(self):
        return {"format": "toy", "config": json.dumps(self.cfg.to_dict())}

    def saved_config(self, config_json):
        return json.loads(config_json)

    def epoch_line(self, epoch, row):
        return f"epoch {epoch}: {row['train_loss']:.4f}"

    def write_logs(self, run: Path, state):
        (run / "metrics.jsonl").write_text("".join(json.dumps(h) + "\n" for h in state["history"]))


def toy(tmp_path: Path, name: str = "run", **train: Any) -> ToyConfig:
    cfg = ToyConfig()
    cfg.train = dataclasses.replace(cfg.train, run_dir=str(tmp_path / name), **train)
    return cfg


def final(run: Path) -> dict[str, torch.Tensor]:
    return load_file(ckfind.model_file(run, "latest"))


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def history(run: Path) -> list[dict]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("epoch_s", "data_fraction")} for r in rows]


def test_runs_every_epoch_and_keeps_best_and_the_newest_two(tmp_path):
    run = Engine(ToyTask(toy(tmp_path), val_curve=[3.0, 1.0, 2.0, 2.5])).run(progress=False)
    rows = history(run)
    assert [r["epoch"] for r in rows] == [0, 1, 2, 3] and rows[-1]["step"] == 20
    ck = run / "checkpoints"
    assert sorted(p.name for p in ck.iterdir() if not p.name.startswith(".")) == [
        "best", "epoch-0002", "epoch-0003", "latest.json"]  # fmt: skip
    assert json.loads((ck / "latest.json").read_text()) == {"name": "epoch-0003"}
    best = json.loads((ck / "best" / "trainer_state.json").read_text())
    assert best["best_epoch"] == 1 and best["best_val_loss"] == 1.0
    assert json.loads((ck / "epoch-0003" / "trainer_state.json").read_text())["stale_epochs"] == 2
    # best holds epoch 1's weights, not the newest ones.
    assert not same(load_file(ck / "best/model.safetensors"), final(run))


def test_stop_reasons_are_said(tmp_path, capsys):
    run = Engine(ToyTask(toy(tmp_path, "steps", max_steps=7))).run(progress=False)
    assert [r["step"] for r in history(run)] == [5, 7]
    assert "7 steps done (train.max_steps)" in capsys.readouterr().out
    run = Engine(ToyTask(toy(tmp_path, "early", early_stop=2), val_curve=[1.0, 2.0, 2.0, 0.5])).run(
        progress=False
    )
    assert [r["epoch"] for r in history(run)] == [0, 1, 2]
    assert "no better toy loss for 2 epochs (train.early_stop)" in capsys.readouterr().out
    # A budget already spent (a tiny one) stops after the first epoch.
    run = Engine(ToyTask(toy(tmp_path, "budget", time_budget_min=1e-9))).run(progress=False)
    assert [r["epoch"] for r in history(run)] == [0]
    assert "budget is spent (train.time_budget_min)" in capsys.readouterr().out


def test_non_finite_losses_are_skipped_then_abort_keeping_the_last_checkpoint(tmp_path):
    run = Engine(ToyTask(toy(tmp_path, "skip", epochs=2), nan_at=frozenset({2, 7}))).run(
        progress=False
    )
    rows = history(run)
    assert rows[-1]["nonfinite_skipped"] == 2 and rows[-1]["step"] == 10
    assert all(torch.isfinite(t).all() for t in final(run).values())
    # From step 6 on every loss is NaN: the fourth aborts, epoch 0 stays the latest.
    cfg = toy(tmp_path, "abort")
    with pytest.raises(
        TrainingError, match=r"4 non-finite losses \(limit train.max_nonfinite = 3\)"
    ):
        Engine(ToyTask(cfg, nan_at=frozenset(range(6, 100)))).run(progress=False)
    assert ckfind.latest(cfg.train.run_dir).name == "epoch-0000"


def test_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path):
    whole = Engine(ToyTask(toy(tmp_path, "whole"))).run(progress=False)
    Engine(ToyTask(toy(tmp_path, "cut", max_steps=10))).run(progress=False)  # stops after epoch 1
    cut = Engine(ToyTask(toy(tmp_path, "cut"))).run(resume="auto", progress=False)
    assert same(final(whole), final(cut))
    assert history(whole) == history(cut)


def test_resume_refuses_a_change_of_the_arithmetic_naming_key_and_values(tmp_path, capsys):
    Engine(ToyTask(toy(tmp_path, epochs=1))).run(progress=False)
    for change, said in [
        ({"threads": 2}, "train.threads 1 -> 2"),
        ({"batch_size": 4}, "train.batch_size 8 -> 4"),
    ]:
        with pytest.raises(TrainingError, match=f"another configuration \\({said};") as e:
            Engine(ToyTask(toy(tmp_path, **change))).run(resume="auto", progress=False)
        assert "train.allow_resume_changes=true" in str(e.value)
    # Free keys (here epochs) may change; an explicit flag lets the rest through, and says so.
    Engine(ToyTask(toy(tmp_path, epochs=2))).run(resume="auto", progress=False)
    Engine(ToyTask(toy(tmp_path, epochs=3, threads=2, allow_resume_changes=True))).run(
        resume="auto", progress=False
    )
    out = capsys.readouterr().out
    assert "train.threads 1 -> 2" in out and "continues with different arithmetic" in out
    assert [r["epoch"] for r in history(tmp_path / "run")] == [0, 1, 2]


def test_config_changes_lists_only_keys_not_free_to_differ():
    a = {"train": {"threads": 1, "epochs": 3}, "optim": {"lr": 0.1}}
    b = {"train": {"threads": 2, "epochs": 5}, "optim": {"lr": 0.1, "new": 1}}
    assert config_changes(a, b, frozenset({("train", "epochs")})) == [
        ("optim.new", None, 1), ("train.threads", 1, 2)]  # fmt: skip


def test_a_fresh_run_sets_an_earlier_one_aside(tmp_path):
    first = Engine(ToyTask(toy(tmp_path, epochs=1))).run(progress=False)
    before = final(first)
    Engine(ToyTask(toy(tmp_path, epochs=1, seed=1))).run(progress=False)
    (aside,) = [p for p in tmp_path.iterdir() if p.name.startswith("run.")]
    assert same(final(aside), before) and not same(final(tmp_path / "run"), before)


def test_amp_on_cpu_is_a_clear_error(tmp_path):
    cfg = toy(tmp_path)
    cfg.train.amp = "bf16"  # type: ignore[attr-defined]
    with pytest.raises(TrainingError, match=r"train\.amp = 'bf16' needs a CUDA device"):
        Engine(ToyTask(cfg)).run(progress=False)


def test_checkpoint_write_failure_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    cfg = toy(tmp_path, epochs=2)
    real = checkpoint.torch.save

    def fail_second(obj, path, *a, **k):
        if ".epoch-0001.tmp" in str(path):
            raise OSError("disk full")
        return real(obj, path, *a, **k)

    monkeypatch.setattr(checkpoint.torch, "save", fail_second)
    with pytest.raises(OSError, match="disk full"):
        Engine(ToyTask(cfg)).run(progress=False)
    ck = Path(cfg.train.run_dir) / "checkpoints"
    assert sorted(p.name for p in ck.iterdir()) == ["best", "epoch-0000", "latest.json"]
    assert checkpoint.load(ck.parent, which="latest")["trainer"]["epoch"] == 0
