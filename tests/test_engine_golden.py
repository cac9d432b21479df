"""The shared training engine gives bit-identical weights to the two training loops
it replaced (pose ``train/loop.py`` and ``count/train.py`` before the engine).

The hashes (``csipose.train.proof.weights_hash``) were recorded by running these
configurations on the code before the engine, in the environment named by the
key (``csipose.train.proof.fingerprint``); elsewhere the test is skipped, since
another torch or CPU may round differently."""

from __future__ import annotations

from pathlib import Path

import pytest
from safetensors.torch import load_file

from csipose.train.proof import fingerprint, key, weights_hash

pytestmark = pytest.mark.usefixtures("restore_torch_threads")

#: {environment: {run: (last epoch checkpoint, its hash, hash of best)}}
GOLDEN = {
    "csipose_simd=avx2 machine=x86_64 numpy=2.4.6 system=Linux torch=2.15.0+cu132 torch_cpu=AVX2": {
        "pose-default-model": ("epoch-0000", "5fa37d143636884e2dceb5174f1d93c30ed0100650094d11add6464455b1944e",
                               "5fa37d143636884e2dceb5174f1d93c30ed0100650094d11add6464455b1944e"),
        "count-weights": ("epoch-0002", "07a276622321ea0174e8492b904a21ef64ea4456bbf9012998e2e5cf0fdb2450",
                          "3fca69455855bc74712fc2d8e46d4d7e5dc35cfce7a53688c0ed59f6b178bbd3"),
        "count-sampler": ("epoch-0001", "d96bb3a41fafa3aa7fd1e0704eac8a3bcb63b3eb731636a5e36a8b5ea05ce9db",
                          "b3b23348f04a1ed317950e9b0210b6d87453721746323336e6603d845758dfa3"),
    },
}  # fmt: skip


@pytest.fixture
def golden():
    here = GOLDEN.get(key(fingerprint()))
    if here is None:
        pytest.skip(f"no golden hashes recorded for the environment {key(fingerprint())}")
    return here


def check(run: Path, expected: tuple[str, str, str]) -> None:
    name, last, best = expected
    ck = run / "checkpoints"
    assert weights_hash(load_file(ck / name / "model.safetensors")) == last
    assert weights_hash(load_file(ck / "best" / "model.safetensors")) == best


def test_pose_training_matches_the_loop_before_the_engine(golden, tmp_path):
    """The built-in job's model (wiflow-quarter) and schedule, on a small simulated MM-Fi store."""
    from csipose.train import config, train

    items = [f'data.cache_dir="{tmp_path}/cache"', "data.environments=2", "data.subjects=4", "data.frames=24",
             "train.batch_size=16", "train.threads=1", "train.epochs=2", "train.max_steps=6",
             f'train.run_dir="{tmp_path}/pose"']  # fmt: skip
    run = train(config.load(None, items), progress=False)
    check(run, golden["pose-default-model"])


@pytest.mark.parametrize("name, extra", [("count-weights", ["train.epochs=3"]),
                                         ("count-sampler", ["train.epochs=2", "loss.balance=sampler"])])  # fmt: skip
def test_count_training_matches_the_loop_before_the_engine(golden, tmp_path_factory, name, extra):
    from csipose.count import config
    from csipose.count.train import train

    cache = tmp_path_factory.getbasetemp() / "golden-count-cache"
    run = train(config.load(None, [f'data.cache_dir="{cache}"', "data.environments=2", "data.subjects=3",
                                   "data.frames=40", "data.sequences=3", "train.batch_size=32", "train.threads=1",
                                   "train.early_stop=0", f'train.run_dir="{tmp_path_factory.mktemp(name)}/run"',
                                   "data.features=[]", *extra]), progress=False)  # fmt: skip
    check(run, golden[name])
