"""Store gathers large enough that pool threads help (>= 128 KiB read): the
output is fancy indexing, or the 1-thread transform, bit for bit, whatever the
thread count and however the blocks fall to the threads."""

from __future__ import annotations

import numpy as np
import pytest

import csipose
from csipose import signal
from csipose.data import CsiTransform, Store, ZScore
from stores import make_store


@pytest.fixture(scope="module")
def big_store(tmp_path_factory):
    # 1,500 frames of [3, 8, 5] float32 (480 B): a batch of 1,000 windows of
    # 3 frames reads 1.4 MB, in blocks of ~70 windows.
    return make_store(tmp_path_factory.mktemp("big") / "store", seq_lengths=(700, 800))


@pytest.fixture
def threads():
    yield
    csipose.set_num_threads(0)


@pytest.mark.parametrize("label", ["first", "all"])
def test_helped_gather_is_fancy_indexing(big_store, threads, label):
    path, a = big_store
    store = Store.open(path, window={"length": 3, "stride": 1, "label": label})
    rng = np.random.default_rng(0)
    out = store.allocate(1000, ["amplitude", "keypoints"])
    for n in (1, 2, 3):
        csipose.set_num_threads(n)
        for _ in range(10):
            idx = rng.integers(0, len(store), 1000)
            out["amplitude"].fill(np.nan)
            batch = store.gather(idx, fields=["amplitude", "keypoints"], out=out)
            starts = store.windows[idx]
            frames = starts[:, None] + np.arange(3)
            np.testing.assert_array_equal(batch["amplitude"], a["amplitude"][frames])
            rows = frames if label == "all" else starts
            np.testing.assert_array_equal(batch["keypoints"], a["keypoints"][rows])


def test_helped_transform_has_the_one_thread_bits(big_store, threads):
    path, _ = big_store
    rng = np.random.default_rng(1)
    t = CsiTransform(
        minmax=True,
        subcarriers=signal.linear_map(8, 5),
        zscore=ZScore(rng.uniform(0, 1, (3, 5)), rng.uniform(0.5, 1, (3, 5)), source="test"),
    )
    store = Store.open(path, window={"length": 3, "stride": 1}, transform={"amplitude": t})
    batches = [rng.integers(0, len(store), 1000) for _ in range(10)]
    csipose.set_num_threads(1)
    want = [store.gather(b, fields=["amplitude"])["amplitude"] for b in batches]
    for n in (2, 3):
        csipose.set_num_threads(n)
        for b, w in zip(batches, want, strict=True):
            got = store.gather(b, fields=["amplitude"])["amplitude"]
            assert got.tobytes() == w.tobytes(), f"{n} threads"


def test_out_of_range_windows_are_refused_at_both_ends(big_store):
    path, _ = big_store
    store = Store.open(path, window={"length": 3, "stride": 1})
    for bad in (-1, len(store), np.iinfo(np.int64).min):
        with pytest.raises(IndexError, match=f"window {bad} is out of range"):
            store.gather([0, bad])
