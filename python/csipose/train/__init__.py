"""Training and evaluation of pose models: ``csipose train`` and ``csipose eval``.

    from csipose.train import config, train, evaluate
    cfg = config.load("my.toml", ["optim.lr=1e-3"])
    run = train(cfg)
    report = evaluate(run, "test")

See docs/training.md for the configuration keys, the run directory layout and
the built-in default job. Importing this package does not import torch (the
configuration is read by torch-free code such as ``csipose count``); ``train``,
``evaluate`` and ``load_run`` load it when first used.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from csipose.errors import TrainingError
from csipose.train import config
from csipose.train.config import Config, ConfigError

_LAZY = {"train": "csipose.train.loop", "evaluate": "csipose.train.evaluate",
         "load_run": "csipose.train.evaluate"}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'csipose.train' has no attribute {name!r}")


class _Package(types.ModuleType):
    """Importing the submodule ``csipose.train.evaluate`` binds the function of that
    name here, as the eager imports did before they were made lazy."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "evaluate" and isinstance(value, types.ModuleType):
            value = value.evaluate
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


__all__ = ["Config", "ConfigError", "TrainingError", "config", "evaluate", "load_run", "train"]
