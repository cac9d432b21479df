"""torch glue: batches from the Rust gather through DataLoader, spawn workers and DDP samplers."""

from __future__ import annotations

import numpy as np
import pytest

from stores import make_store

torch = pytest.importorskip("torch")

from torch.utils.data import BatchSampler, DistributedSampler  # noqa: E402

from csipose.data import Store  # noqa: E402
from csipose.data.loader import EpochSampler, WindowDataset, make_loader  # noqa: E402


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path, _ = make_store(tmp_path_factory.mktemp("l") / "store", seq_lengths=(20, 15, 25))
    return Store.open(path, window={"length": 2, "stride": 1})


def test_batches_are_the_store_gather(store):
    ds = WindowDataset(store, fields=["amplitude", "keypoints"])
    loader = make_loader(ds, 8, seed=3)
    seen = []
    for batch in loader:
        idx = None
        assert set(batch) == {"amplitude", "keypoints"} and isinstance(
            batch["amplitude"], torch.Tensor
        )
        seen.append(len(batch["amplitude"]))
        del idx
    assert sum(seen) == len(ds)
    order = EpochSampler(len(ds), seed=3).order()[:8]
    first = next(iter(make_loader(ds, 8, seed=3)))
    np.testing.assert_array_equal(
        first["amplitude"].numpy(), store.gather(order, fields=["amplitude"])["amplitude"]
    )
    one = ds[5]
    np.testing.assert_array_equal(
        one["keypoints"].numpy(), store.gather([5], fields=["keypoints"])["keypoints"][0]
    )


def test_spawned_workers_give_the_same_batches(store):
    ds = WindowDataset(store, np.arange(10, 40), fields=["amplitude", "person_count"])
    single = [b["amplitude"] for b in make_loader(ds, 6, seed=1)]
    multi = [b["amplitude"] for b in make_loader(ds, 6, seed=1, num_workers=2)]
    assert len(single) == len(multi) == 5
    for a, b in zip(single, multi, strict=True):
        assert torch.equal(a, b)


def test_epoch_sampler_is_seeded_and_shards_like_distributed_sampler():
    s = EpochSampler(23, seed=5)
    first = list(s)
    assert sorted(first) == list(range(23)) and first == list(EpochSampler(23, seed=5))
    s.set_epoch(1)
    assert list(s) != first
    shards = [list(EpochSampler(23, seed=5, rank=r, world_size=3)) for r in range(3)]
    assert {len(x) for x in shards} == {8}
    assert set().union(*shards) == set(range(23))
    dropped = [
        list(EpochSampler(23, seed=5, rank=r, world_size=3, drop_last=True)) for r in range(3)
    ]
    assert {len(x) for x in dropped} == {7} and len(set().union(*dropped)) == 21


def test_works_with_torch_distributed_sampler(store):
    ds = WindowDataset(store, fields=["keypoints"])
    got = []
    for rank in range(2):
        sampler = DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=True, seed=7)
        sampler.set_epoch(2)
        for batch in make_loader(ds, 5, sampler=sampler):
            got.append(batch["keypoints"])
    total = torch.cat(got)
    assert len(total) == 2 * int(np.ceil(len(ds) / 2))
    expect = store.gather(np.arange(len(ds)), fields=["keypoints"])["keypoints"]
    # Every window appears (DistributedSampler pads by repeating a few).
    rows = {tuple(r.numpy().ravel()[:4]) for r in total}
    assert rows == {tuple(r.ravel()[:4]) for r in expect}


def test_batch_sampler_over_a_split(store):
    train = store.split("halves")["train"]
    ds = WindowDataset(store, train, fields=["sequence"])
    seqs = torch.cat([b["sequence"] for b in make_loader(ds, 7, shuffle=False)])
    assert set(seqs.tolist()) == {0, 2}
    assert len(list(BatchSampler(range(len(ds)), 7, False))) == int(np.ceil(len(ds) / 7))
