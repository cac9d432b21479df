"""Streaming sparse attention: one frame at a time from a KV cache equals the
causal full-sequence pass."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from csipose import _native
from csipose.nn import SparsePattern, SparseTemporalAttention, dense_reference
from csipose.nn.functional import sparse_attention
from csipose.nn.pattern import causal_keys
from test_bindings_fuzz import CLEAR, arrays

from gil import calls_during


@given(
    st.integers(0, 20),
    st.integers(1, 9),
    st.booleans(),
    st.booleans(),
    st.lists(st.integers(0, 30), max_size=2),
    st.integers(1, 120),
    st.one_of(st.none(), st.integers(0, 40)),
)
@settings(max_examples=60)
def test_causal_keys_are_a_row_of_the_masks(w, s, lm, ls, glob, t, h):
    p = SparsePattern(
        window=w, block=s, landmarks=lm, globals=tuple(glob), log_stride=ls, horizon=h
    )
    for i in range(t):
        assert causal_keys(p, i) == p.keys_for(i, t)


@pytest.mark.parametrize(
    "pattern",
    [
        SparsePattern(),
        SparsePattern(window=3, block=4, globals=(0, 5)),
        SparsePattern(window=0, block=1, log_stride=False),
        SparsePattern(window=7, landmarks=False, globals=()),
        SparsePattern(horizon=50),
        SparsePattern(window=3, block=4, globals=(0, 5, 90), horizon=9),
        SparsePattern(window=6, block=2, horizon=2),
    ],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_stream_equals_the_full_causal_pass(pattern, dtype):
    """float32 steps in Rust, float64 in torch: both equal the full pass."""
    torch.manual_seed(0)
    m = SparseTemporalAttention(16, q_heads=4, kv_heads=2, pattern=pattern, head_dim=8).to(dtype)
    x = torch.randn(3, 150, 16, dtype=dtype)
    with torch.no_grad():
        full = m(x)
    state = m.stream(batch=3)
    assert (state.native is not None) == (dtype == torch.float32)
    steps = torch.stack([state.step(x[:, t]) for t in range(x.shape[1])], dim=1)
    torch.testing.assert_close(steps, full, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_stream_memory_is_flat_with_a_horizon(dtype):
    """The cache holds horizon + 1 tokens, the globals and the block means
    inside the horizon, however long the stream runs; without a horizon it
    holds every token."""
    h, s = 40, 8
    p = SparsePattern(window=6, block=s, globals=(0, 3), horizon=h)
    m = SparseTemporalAttention(8, 2, 1, p, head_dim=4).to(dtype)
    state = m.stream(batch=2)
    x = torch.randn(2, 400, 8, dtype=dtype)
    sizes = []
    for t in range(400):
        state.step(x[:, t])
        sizes.append(state.cache_rows())
    assert sizes[-1][0] == h + 1 and sizes[-1][1] == 2
    assert sizes[-1][2] <= (h + 1) // s + 2
    assert len(set(sizes[h + 2 * s :])) == 1  # flat once the ring is full
    free = SparseTemporalAttention(8, 2, 1, SparsePattern(window=6, block=s), head_dim=4).to(dtype)
    state = free.stream(batch=2)
    for t in range(100):
        state.step(x[:, t])
    assert state.cache_rows()[0] == 100 and state.cache_rows()[2] == 100 // s


@given(
    st.integers(1, 3),
    st.integers(1, 2),
    st.integers(1, 3),
    st.sampled_from([1, 4, 9]),
    st.integers(1, 120),
    st.integers(0, 12),
    st.integers(1, 6),
    st.one_of(st.none(), st.integers(0, 30)),
    st.integers(0, 2**31 - 1),
)
@settings(max_examples=25, deadline=None)
def test_native_stream_matches_rust_full_pass_and_dense_oracle(b, hk, g, d, t, w, s, h, seed):
    """Rust stream vs Rust full forward (bit-identical: same key order and row
    arithmetic) vs the dense masked oracle (1e-5)."""
    p = SparsePattern(window=w, block=s, globals=(0, 2), horizon=h)
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(b, t, hk * g, d, generator=gen)
    k, v = torch.randn(b, t, hk, d, generator=gen), torch.randn(b, t, hk, d, generator=gen)
    full = sparse_attention(q, k, v, p)
    dense = dense_reference(q.double(), k.double(), v.double(), p)
    st_ = _native.SparseAttentionStream(b, hk * g, hk, d, scale=1 / math.sqrt(d), **p.native_args())
    rows = [st_.step(*(x[:, i].numpy().copy() for x in (q, k, v))) for i in range(t)]
    got = torch.from_numpy(np.stack(rows, axis=1))
    assert torch.equal(got, full)
    torch.testing.assert_close(got.double(), dense, rtol=1e-5, atol=1e-5)
    assert st_.t == t


def test_native_stream_rejects_bad_shapes_and_patterns():
    args = SparsePattern().native_args()
    with pytest.raises(ValueError, match="causal"):
        _native.SparseAttentionStream(1, 2, 1, 4, scale=0.5, **{**args, "causal": False})
    with pytest.raises(ValueError):
        _native.SparseAttentionStream(1, 3, 2, 4, scale=0.5, **args)
    st_ = _native.SparseAttentionStream(2, 2, 1, 4, scale=0.5, **args)
    z = np.zeros((2, 1, 4), np.float32)
    with pytest.raises(ValueError):
        st_.step(np.zeros((2, 2, 4), np.float32), z, z[:1])
    with pytest.raises(ValueError):
        st_.step(np.zeros((2, 2, 4), np.float32)[:, ::2], z, z)
    with pytest.raises(TypeError):
        st_.step(np.zeros((2, 2, 4)), z, z)
    assert st_.t == 0


def test_native_stream_releases_the_gil():
    args = SparsePattern().native_args()
    big = _native.SparseAttentionStream(512, 8, 2, 64, scale=0.1, **args)
    small = _native.SparseAttentionStream(1, 1, 1, 1, scale=1.0, **args)
    rng = np.random.default_rng(0)
    q = rng.standard_normal((512, 8, 64), np.float32)
    kv = rng.standard_normal((512, 2, 64), np.float32)
    one = np.zeros((1, 1, 1), np.float32)
    for _ in range(60):
        big.step(q, kv, kv)

    def many() -> None:
        for _ in range(20):
            big.step(q, kv, kv)

    _, overlapping, calls = calls_during(many, lambda: small.step(one, one, one))
    assert overlapping >= 10, (overlapping, calls)


def test_stream_needs_a_causal_pattern():
    m = SparseTemporalAttention(8, 2, 1, SparsePattern(causal=False), head_dim=4)
    with pytest.raises(ValueError, match="causal"):
        m.stream()


def test_stream_rejects_a_wrong_batch():
    m = SparseTemporalAttention(8, 2, 1, head_dim=4)
    state = m.stream(batch=2)
    with pytest.raises(ValueError, match="x_t"):
        state.step(torch.zeros(3, 8))


@given(
    dims=st.tuples(*[st.sampled_from([0, 1, 2, 3, 2**40, 2**64]) for _ in range(4)]),
    kw=st.fixed_dictionaries(
        {
            "window": st.sampled_from([0, 1, 2**62]),
            "block": st.sampled_from([0, 1, 3, 2**62]),
            "landmarks": st.booleans(),
            "globals": st.lists(st.sampled_from([0, 1, 2**62]), max_size=2),
            "log_stride": st.booleans(),
            "causal": st.booleans(),
            "scale": st.sampled_from([0.0, 1.0, float("nan")]),
            "horizon": st.sampled_from([None, 0, 1, 2**62]),
        }
    ),
    data=st.data(),
)
@settings(max_examples=80, deadline=None)
def test_fuzz_stream_binding_never_panics(dims, kw, data):
    """The fuzz pattern of tests/test_bindings_fuzz.py for SparseAttentionStream."""
    try:
        st_ = _native.SparseAttentionStream(*dims, **kw)
    except CLEAR:
        return
    for _ in range(3):
        try:
            out = st_.step(data.draw(arrays()), data.draw(arrays()), data.draw(arrays()))
        except CLEAR:
            continue
        assert out.shape == (dims[0], dims[1], dims[3])
