"""Streaming sparse attention: one frame at a time from a KV cache equals the
causal full-sequence pass."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from csipose.nn import SparsePattern, SparseTemporalAttention
from csipose.nn.pattern import causal_keys


@given(
    st.integers(0, 20),
    st.integers(1, 9),
    st.booleans(),
    st.booleans(),
    st.lists(st.integers(0, 30), max_size=2),
    st.integers(1, 120),
)
@settings(max_examples=60)
def test_causal_keys_are_a_row_of_the_masks(w, s, lm, ls, glob, t):
    p = SparsePattern(window=w, block=s, landmarks=lm, globals=tuple(glob), log_stride=ls)
    for i in range(t):
        assert causal_keys(p, i) == p.keys_for(i, t)


@pytest.mark.parametrize(
    "pattern",
    [
        SparsePattern(),
        SparsePattern(window=3, block=4, globals=(0, 5)),
        SparsePattern(window=0, block=1, log_stride=False),
        SparsePattern(window=7, landmarks=False, globals=()),
    ],
)
def test_stream_equals_the_full_causal_pass(pattern):
    torch.manual_seed(0)
    m = SparseTemporalAttention(16, q_heads=4, kv_heads=2, pattern=pattern, head_dim=8)
    x = torch.randn(3, 150, 16)
    with torch.no_grad():
        full = m(x)
    state = m.stream(batch=3)
    steps = torch.stack([state.step(x[:, t]) for t in range(x.shape[1])], dim=1)
    torch.testing.assert_close(steps, full, rtol=1e-5, atol=1e-5)


def test_stream_needs_a_causal_pattern():
    m = SparseTemporalAttention(8, 2, 1, SparsePattern(causal=False), head_dim=4)
    with pytest.raises(ValueError, match="causal"):
        m.stream()


def test_stream_rejects_a_wrong_batch():
    m = SparseTemporalAttention(8, 2, 1, head_dim=4)
    state = m.stream(batch=2)
    with pytest.raises(ValueError, match="x_t"):
        state.step(torch.zeros(3, 8))
