"""Store.gather through the prepared native gather (one call per batch): the same
bytes as the per-field binding calls it replaced, and the same errors."""

from __future__ import annotations

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csipose import signal
from csipose.data import CsiTransform, Store, ZScore
from stores import make_store


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    path, arrays = make_store(tmp_path_factory.mktemp("p") / "store", invalid=[9], gaps=[15])
    return path, arrays


def per_field_gather(store: Store, idx: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
    """What Store.gather did before: one binding call per field, the window
    starts, label rows and transform arguments made in Python."""
    out = store.allocate(len(idx), names)
    starts = store.windows[idx]
    rows = np.ascontiguousarray(store._label_rows(starts).reshape(-1))
    for f in names:
        if f in store.transform:
            args = store.transform[f].native_args()
            store._native.gather_windows(f, starts, store.window.length, out[f], **args)
        elif len(rows):
            store._native.gather_rows(f, rows, out[f].reshape(len(rows), -1).view(np.uint8))
    return out


def transforms():
    maps = st.sampled_from([None, signal.linear_map(8, 5), signal.linear_map(8, 8)])

    @st.composite
    def build(draw):
        m = draw(maps)
        t = 8 if m is None else m.n_out
        z = None
        if draw(st.booleans()):
            rng = np.random.default_rng(draw(st.integers(0, 99)))
            z = ZScore(rng.normal(size=(3, t)), rng.uniform(0.1, 2, (3, t)), source="test")
        return CsiTransform(minmax=draw(st.booleans()), subcarriers=m, zscore=z)

    return build()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    length=st.integers(1, 4),
    label=st.sampled_from(["first", "centre", "last", "all"]),
    t=transforms(),
    data=st.data(),
)
def test_one_call_gives_the_bytes_of_the_per_field_calls(store_path, length, label, t, data):
    path, _ = store_path
    base = Store.open(path, window={"length": length, "stride": 1, "label": label})
    store = base.with_options(transform={"amplitude": t})
    n = len(store)
    idx = data.draw(hnp.arrays(np.int64, st.integers(0, 9), elements=st.integers(0, n - 1)))
    names = data.draw(st.permutations(store.fields).map(lambda f: f[: max(1, len(f) // 2)]))
    want = per_field_gather(store, idx, names)
    # Preallocated outs filled with garbage first: every byte must be written.
    out = store.allocate(len(idx), names)
    for v in out.values():
        v.view(np.uint8)[...] = 0xA5
    kind = data.draw(st.sampled_from(["array", "list", "strided", "2-d"]))
    given_idx = {
        "array": idx,
        "list": idx.tolist(),
        "strided": np.repeat(idx, 2)[::2],
        "2-d": idx.reshape(-1, 1),
    }[kind]
    got = store.gather(given_idx, fields=names, out=out)
    fresh = store.gather(given_idx, fields=names)
    for f in names:
        assert got[f] is out[f]
        assert got[f].tobytes() == want[f].tobytes(), f
        assert fresh[f].tobytes() == want[f].tobytes(), f
    assert store._prepared is not None and store._prepared is store._prepared_gather()


def test_bad_indices_are_index_errors_with_or_without_out(store_path):
    store = Store.open(store_path[0])
    n = len(store)
    out = store.allocate(1, ["amplitude"])
    for bad in (n, -1, np.iinfo(np.int64).min):
        msg = f"window {bad} is out of range for {n} windows"
        for o in (None, out):
            with pytest.raises(IndexError, match=msg):
                store.gather(np.array([0, bad]), fields=["amplitude"], out=o)
            # The window check comes before the names, as it always did.
            with pytest.raises(IndexError, match=msg):
                store.gather([bad], fields=["depth"], out=o)


def test_bad_names_and_outs_name_the_field(store_path):
    store = Store.open(store_path[0], window={"length": 2, "stride": 1, "label": "all"})
    names = ["amplitude", "visibility", "person_count"]
    out = store.allocate(3, names)
    listing = ", ".join(store.fields)
    with pytest.raises(KeyError, match=f"the store has no array 'depth'; it has {listing}"):
        store.gather([0, 1, 2], fields=["amplitude", "depth"], out=out)
    for f, wrong in (
        ("amplitude", np.zeros((3, 2, 3, 8, 5), np.float64)),
        ("amplitude", np.zeros((3, 2, 3, 8, 4), np.float32)),
        ("visibility", np.zeros((3, 2, 17), np.uint8)),
        ("person_count", np.zeros((3,), np.int16)),
        ("person_count", [[0, 0]] * 3),
        ("person_count", None),
    ):
        dtype = store.manifest["arrays"][f]["dtype"]
        shape = list(store.out_shape(f, 3))
        bad = dict(out)
        if wrong is None:
            del bad[f]
        else:
            bad[f] = wrong
        msg = rf"out\['{f}'\] must be a {dtype} array of shape \[{', '.join(map(str, shape))}\]"
        with pytest.raises(ValueError, match=msg):
            store.gather([0, 1, 2], fields=names, out=bad)
    for f in names:
        strided = np.zeros((6, *out[f].shape[1:]), out[f].dtype)[::2]
        read_only = out[f].copy()
        read_only.flags.writeable = False
        for wrong in (strided, read_only):
            with pytest.raises(
                ValueError, match=rf"out\['{f}'\] must be C-contiguous and writeable"
            ):
                store.gather([0, 1, 2], fields=names, out={**out, f: wrong})


def test_fields_gathered_before_a_bad_out_are_filled(store_path):
    # Fields are checked and filled in order, as before: a bad out stops the call there.
    store = Store.open(store_path[0])
    out = store.allocate(2, ["keypoints", "amplitude"])
    out["keypoints"][...] = np.nan
    out["amplitude"] = np.zeros(1, np.float32)
    with pytest.raises(ValueError, match="out\\['amplitude'\\]"):
        store.gather([0, 1], fields=["keypoints", "amplitude"], out=out)
    assert np.isfinite(out["keypoints"]).all()


def test_the_prepared_gather_is_per_window_spec_and_transform(store_path):
    store = Store.open(store_path[0])
    store.gather([0], out=store.allocate(1))
    other = store.with_options(window={"length": 1, "stride": 1})
    other.gather([0], out=other.allocate(1))
    assert other._prepared is not store._prepared and len(other._prepared) == len(other)
    # A transform that does not fit is raised on every gather of its array,
    # and the other arrays still gather.
    bad = ZScore(np.zeros((2, 8)), np.ones((2, 8)), source="test")
    broken = store.with_options(transform={"amplitude": CsiTransform(zscore=bad)})
    for _ in range(2):
        with pytest.raises(ValueError, match="z-score statistics hold 16 means"):
            broken.gather([0], fields=["amplitude"], out=broken.allocate(1, ["amplitude"]))
    kp = broken.gather([0], fields=["keypoints"], out=broken.allocate(1, ["keypoints"]))
    np.testing.assert_array_equal(kp["keypoints"], store.gather([0])["keypoints"])


def test_the_prepared_gather_releases_the_gil(store_path):
    from gil import calls_during

    store = Store.open(store_path[0], window={"length": 1, "stride": 1})
    t = CsiTransform(minmax=True, subcarriers=signal.linear_map(8, 5))
    store = store.with_options(transform={"amplitude": t})
    idx = np.arange(100_000, dtype=np.int64) % len(store)
    out = store.allocate(len(idx), ["amplitude"])
    _, during, _ = calls_during(
        lambda: store.gather(idx, fields=["amplitude"], out=out), lambda: 1 + 1
    )
    assert during > 0
