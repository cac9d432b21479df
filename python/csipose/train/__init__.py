"""Training and evaluation of pose models: ``csipose train`` and ``csipose eval``.

    from csipose.train import config, train, evaluate
    cfg = config.load("my.toml", ["optim.lr=1e-3"])
    run = train(cfg)
    report = evaluate(run, "test")

See docs/training.md for the configuration keys, the run directory layout and
the built-in default job.
"""

from __future__ import annotations

from csipose.train import config
from csipose.train.config import Config, ConfigError
from csipose.train.evaluate import evaluate, load_run
from csipose.train.loop import TrainingError, train

__all__ = ["Config", "ConfigError", "TrainingError", "config", "evaluate", "load_run", "train"]
