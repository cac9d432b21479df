"""DDP keeps the ranks in sync: after training under torchrun, every rank's model holds
bit-identical weights (the two-process test in test_train.py checks only what rank 0
writes, which cannot show a rank that drifted)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from test_train import overrides, store  # noqa: F401  (store is a fixture)

pytest.importorskip("torch")

# Runs on each rank: remember the module DDP wraps, train through the CLI, then write a
# SHA-256 over the names and bytes of its weights and buffers.
PROBE = r"""
import hashlib, os, sys
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
h = hashlib.sha256()
for name, t in sorted(wrapped[0].state_dict().items()):
    h.update(name.encode())
    h.update(t.detach().cpu().contiguous().numpy().tobytes())
with open(os.path.join(out, f"rank{os.environ['RANK']}.sha256"), "w") as f:
    f.write(h.hexdigest())
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
    hashes = [(tmp_path / f"rank{r}.sha256").read_text() for r in (0, 1)]
    assert hashes[0] == hashes[1], "the ranks' weights differ after training"
    assert len(hashes[0]) == 64
