"""The float32 load path (min-max + sparse subcarrier map + z-score in one
pass) stays within its stated error bound of the float64 oracle
(rust/core/src/store/fused.rs, docs/data.md "Load-path arithmetic"):

    |y - Y| <= (n + 7) 2^-24 (sum_k |w_k| |x^_k| / std + |mean| / std) + 2^-126

n = taps of the output's row, x^ = the min-max scaled input (raw without min-max).
"""

from __future__ import annotations

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csipose import signal
from csipose.data import CsiTransform, Store, ZScore
from stores import make_store

import reference as ref

U = 2.0**-24

# Frame styles that stress float32: plain, a large offset with a small spread
# (cancellation in x - min), tiny values, negatives, constant frames.
STYLES = [
    lambda r, s: r.uniform(0, 10, s),
    lambda r, s: 1e4 + r.uniform(0, 1, s),
    lambda r, s: r.uniform(0, 1e-3, s),
    lambda r, s: r.uniform(-50, 50, s),
    lambda r, s: np.full(s, 3.25),
]


@pytest.fixture(scope="module")
def bound_store(tmp_path_factory):
    path, _ = make_store(tmp_path_factory.mktemp("b") / "store", phase=False)
    amp = np.load(path / "amplitude.npy", mmap_mode="r+")
    rng = np.random.default_rng(7)
    for f in range(len(amp)):
        amp[f] = STYLES[f % len(STYLES)](rng, amp.shape[1:]).astype(np.float32)
    amp.flush()
    return path, np.array(amp)


def abs_dense(m: signal.SubcarrierMap) -> tuple[np.ndarray, np.ndarray]:
    """|W| as a dense [t, s] matrix from the compressed rows, and taps per row."""
    start, index, weight = (np.asarray(v) for v in (m.start, m.index, m.weight))
    taps = np.diff(start)
    w = np.zeros((m.n_out, m.n_src))
    np.add.at(w, (np.repeat(np.arange(m.n_out), taps), index), np.abs(weight))
    return w, taps


MAPS = {
    None: None,
    "linear": signal.linear_map(8, 5),
    "select": signal.select_map(8, [0, 2, 7]),
    "gaussian": signal.gaussian_map(8, 6),
    "index": signal.index_map(range(-4, 4), [-5, -2.5, 0, 3.5, 6]),
}


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    minmax=st.booleans(),
    kind=st.sampled_from(list(MAPS)),
    zscore=st.booleans(),
    data=st.data(),
)
def test_float32_load_path_is_within_the_stated_bound(bound_store, minmax, kind, zscore, data):
    path, amp = bound_store
    m = MAPS[kind]
    t_out = 8 if m is None else m.n_out
    mean, std = np.zeros((3, t_out)), np.ones((3, t_out))
    z = None
    if zscore:
        mean = data.draw(hnp.arrays(np.float64, (3, t_out), elements=st.floats(-1e3, 1e3)))
        std = data.draw(hnp.arrays(np.float64, (3, t_out), elements=st.floats(1e-3, 1e3)))
        z = ZScore(mean, std, eps=0.0, source="test")
    t = CsiTransform(minmax=minmax, subcarriers=m, zscore=z)
    store = Store.open(path, window={"length": 1, "stride": 1}, transform={"amplitude": t})
    idx = data.draw(st.lists(st.integers(0, len(store) - 1), min_size=1, max_size=8))
    got = store.gather(idx, fields=["amplitude"])["amplitude"][:, 0].astype(np.float64)

    frames = store.windows[np.asarray(idx)]
    for g, f in zip(got, frames, strict=True):
        expect, bound = expected_and_bound(amp[f].astype(np.float64), minmax, m, mean, std)
        err = np.abs(g - expect)
        assert np.all(err <= bound), f"worst excess {np.max(err - bound)} at frame {f}"


def expected_and_bound(x, minmax, m, mean, std):
    """The float64 oracle's frame and the stated bound of the float32 path
    (docs/data.md): (n + 7) 2^-24 (sum |w| |x^| / std + |mean| / std) + 2^-126."""
    w = np.eye(8) if m is None else ref.map_weights(m)
    absw, taps = (np.eye(8), np.ones(8, int)) if m is None else abs_dense(m)
    expect = ref.csi_transform(x, minmax, w, mean, std)
    if minmax:
        lo, hi = x.min(), x.max()
        xh = (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
    else:
        xh = np.abs(x)
    mag = (np.einsum("ts,asp->atp", absw, xh) + np.abs(mean)[:, :, None]) / std[:, :, None]
    return expect, (taps[None, :, None] + 7) * U * mag + 2.0**-126


def test_load_path_errors_are_float32_sized_not_zero(bound_store):
    """The bound is not vacuous: the float32 path differs from float64 by
    about an ulp somewhere, and never by more than a few."""
    path, amp = bound_store
    m = signal.linear_map(8, 5)
    mean, std = np.full((3, 5), 0.4), np.full((3, 5), 0.2)
    t = CsiTransform(minmax=True, subcarriers=m, zscore=ZScore(mean, std, eps=0.0, source="t"))
    store = Store.open(path, window={"length": 1, "stride": 1}, transform={"amplitude": t})
    idx = np.arange(len(store))
    got = store.gather(idx, fields=["amplitude"])["amplitude"][:, 0].astype(np.float64)
    w = ref.map_weights(m)
    expect = np.stack([ref.csi_transform(amp[f], True, w, mean, std) for f in store.windows[idx]])
    err = np.abs(got - expect)
    assert err.max() > 0
    assert err.max() < 1e-5
