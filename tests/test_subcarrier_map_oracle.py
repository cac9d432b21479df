"""Every subcarrier-map builder against tests/reference.map_weights, an oracle that
rebuilds the weights by another route (np.interp per basis vector, lstsq for the
Gaussian fit) instead of reusing the map's own matrix; then the Rust kernel that
applies a map against that oracle's matrix product."""

from __future__ import annotations

import hypothesis.extra.numpy as hnp
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from csipose import signal

import reference as ref


@st.composite
def maps(draw):
    kind = draw(st.sampled_from(["identity", "linear", "select", "index", "gaussian"]))
    n_src = draw(st.integers(2 if kind == "gaussian" else 1, 40))
    if kind == "identity":
        return signal.identity_map(n_src)
    if kind == "linear":
        return signal.linear_map(n_src, draw(st.integers(1, 40)))
    if kind == "select":
        return signal.select_map(n_src, draw(st.lists(st.integers(0, n_src - 1), max_size=10)))
    if kind == "gaussian":
        return signal.gaussian_map(n_src, draw(st.integers(2, 40)))
    src = draw(st.lists(st.integers(-64, 64), min_size=n_src, max_size=n_src, unique=True))
    src = draw(st.permutations(src))
    target = draw(st.lists(st.floats(-80, 80), min_size=1, max_size=20))
    return signal.index_map(src, target)


@given(m=maps())
def test_builders_match_the_independent_weights(m):
    want = ref.map_weights(m)
    # The Gaussian map drops entries below 1e-10 x max by design.
    atol = 1e-9 * np.abs(want).max() if m.params["kind"] == "gaussian" else 1e-12
    np.testing.assert_allclose(m.dense(), want, rtol=1e-9, atol=atol)


def test_linear_114_to_56_is_the_upstream_align_corners_grid():
    # Written out: output k sits at 113 k / 55 and blends its two neighbours.
    w = signal.linear_map(114, 56).dense()
    for k in (0, 1, 27, 55):
        pos = 113 * k / 55
        i = min(int(pos), 112)
        expect = np.zeros(114)
        expect[i] += 1 - (pos - i)
        expect[i + 1] += pos - i
        np.testing.assert_allclose(w[k], expect, atol=1e-12)


@given(m=maps(), data=st.data())
def test_resample_kernel_matches_the_oracle_product(m, data):
    n, a, p = (
        data.draw(st.integers(0, 3)),
        data.draw(st.integers(1, 3)),
        data.draw(st.integers(1, 4)),
    )
    x = data.draw(
        hnp.arrays(np.float32, (n, a, m.n_src, p), elements=st.floats(-1e3, 1e3, width=32))
    )
    got = signal.resample(x, m)
    want = np.einsum("ts,nasp->natp", ref.map_weights(m), x.astype(np.float64))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-3)
