"""DDP keeps the ranks in sync: after training under torchrun, every rank's model holds
bit-identical parameters (the two-process test in test_train.py checks only what rank 0
writes, which cannot show a rank that drifted). BatchNorm running statistics are the
one expected difference: DDP broadcasts buffers from rank 0 at the start of each
forward, so after the last step each rank holds the statistics of its own last batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from test_train import overrides, store  # noqa: F401  (store is a fixture)

pytest.importorskip("torch")

# Runs on each rank: remember the module DDP wraps, train through the CLI, then write a
# SHA-256 of every parameter and buffer, by name.
PROBE = r"""
import hashlib, json, os, sys
import torch
import torch.nn.parallel

wrapped = []

class Remember(torch.nn.parallel.DistributedDataParallel):
    def __init__(self, module, *args, **kwargs):
        super().__init__(module, *args, **kwargs)
        wrapped.append(module)

torch.nn.parallel.DistributedDataParallel = Remember
from csipose.cli import main

out = sys.argv[1]
assert main(sys.argv[2:]) == 0
assert len(wrapped) == 1, f"DDP wrapped {len(wrapped)} modules"
m = wrapped[0]
digest = {
    kind: {n: hashlib.sha256(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest()
           for n, t in tensors}
    for kind, tensors in (("parameters", m.named_parameters()), ("buffers", m.named_buffers()))
}
with open(os.path.join(out, f"rank{os.environ['RANK']}.json"), "w") as f:
    json.dump(digest, f)
"""


def test_ddp_ranks_end_with_identical_weights(store, tmp_path):  # noqa: F811
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           str(probe), str(tmp_path), "train", *overrides(store, tmp_path / "run", "train.epochs=2"),
           "--no-eval"]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["parameters"] and r0["parameters"] == r1["parameters"], "the ranks' parameters differ"
    differ = {n for n in r0["buffers"] if r0["buffers"][n] != r1["buffers"][n]}
    assert all(n.endswith(("running_mean", "running_var")) for n in differ), sorted(differ)
