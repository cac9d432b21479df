"""Sparse temporal attention: the Rust kernel against the dense masked-softmax
oracle (csipose.nn.dense_reference), forwards and backwards, and the pattern's
masks against their definition."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import csipose
from csipose import _native
from csipose.nn import SparsePattern, SparseTemporalAttention, dense_reference
from csipose.nn.functional import sparse_attention
from csipose.nn.gathered import gathered_attention

from gil import calls_during

CLEAR = (ValueError, TypeError, OverflowError, csipose.CsiposeError)


@st.composite
def patterns(draw) -> SparsePattern:
    landmarks = draw(st.booleans())
    return SparsePattern(
        window=draw(st.integers(0, 40)),
        block=draw(st.integers(1, 20)) if landmarks else draw(st.integers(0, 20)),
        landmarks=landmarks,
        globals=tuple(draw(st.lists(st.integers(0, 50), max_size=3))),
        log_stride=draw(st.booleans()),
        causal=draw(st.booleans()),
        horizon=draw(st.one_of(st.none(), st.integers(0, 60))),
    )


@st.composite
def problems(draw, long: bool = False):
    """q, k, v (float64 values, cast by the caller) and a pattern; T up to 300
    in a minority of examples so the suite stays fast."""
    big = draw(st.integers(0, 9)) == 0 if long else False
    t = draw(st.integers(1, 300 if big else 70))
    b = draw(st.integers(1, 2))
    hk = draw(st.integers(1, 2))
    g = draw(st.integers(1, 3))
    d = draw(st.sampled_from([1, 3, 8, 16, 33]))
    seed = draw(st.integers(0, 2**31 - 1))
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(b, t, hk * g, d, generator=gen, dtype=torch.float64)
    k = torch.randn(b, t, hk, d, generator=gen, dtype=torch.float64)
    v = torch.randn(b, t, hk, d, generator=gen, dtype=torch.float64)
    return q, k, v, draw(patterns())


def _close(got: torch.Tensor, want: torch.Tensor, rel: float = 1e-5) -> None:
    """Elementwise |got - want| <= rel * (|want| + the tensor's RMS): relative
    error, with an RMS floor so a near-zero entry is not held to 1e-5 of itself."""
    want = want.to(got.dtype)
    floor = want.pow(2).mean().sqrt() if want.numel() else 0.0
    err = (got - want).abs() - rel * (want.abs() + floor)
    assert err.max().item() <= 0 if err.numel() else True, (got - want).abs().max().item()


# ---- the pattern ----------------------------------------------------------


def test_default_mask_picture():
    """The causal picture of docs/attention.md: window 2, global 0, log-stride."""
    p = SparsePattern(window=2, block=2, landmarks=False, globals=(0,), log_stride=True)
    rows = ["".join("x" if c else "." for c in r) for r in p.mask(9)]
    assert rows == [
        "x........",
        "xx.......",
        "xxx......",
        "xxxx.....",
        "x.xxx....",
        "xx.xxx...",
        "x.x.xxx..",
        "x..x.xxx.",
        "x...x.xxx",
    ]


def test_landmark_mask_picks_complete_blocks_before_the_window():
    p = SparsePattern(window=2, block=2, landmarks=True, globals=(), log_stride=False)
    lm = p.landmark_mask(13)
    assert lm.shape == (13, 6)
    # Query 12: window 10..12, newest block ending before 10 is block 4 (8, 9);
    # then 3, 2, 0 (4 - 1, 4 - 2, 4 - 4).
    assert np.flatnonzero(lm[12]).tolist() == [0, 2, 3, 4]
    assert not lm[:4].any()  # no complete block ends before i - 2 < 2
    bi = SparsePattern(window=2, block=2, globals=(), log_stride=False, causal=False)
    # Query 0 bidirectionally: window 0..2, oldest block after it is 2 (4, 5): 2, 3, 4.
    assert np.flatnonzero(bi.landmark_mask(11)[0]).tolist() == [2, 3, 4]


@given(patterns(), st.integers(1, 150))
@settings(max_examples=40)
def test_horizon_drops_exactly_the_far_keys(p, t):
    """A horizon is the unbounded pattern minus every non-global key farther
    than h away (a landmark block counts by its farthest token)."""
    free = dataclasses.replace(p, horizon=None)
    h = t if p.horizon is None else p.horizon
    i, j = np.arange(t)[:, None], np.arange(t)[None, :]
    near = (np.abs(i - j) <= h) | np.isin(j, np.array(p.globals, dtype=np.int64))
    if p.causal:
        near &= j <= i
    assert np.array_equal(p.mask(t), free.mask(t) & near)
    b = np.arange(free.n_blocks(t))[None, :]
    inside = (i - b * max(p.block, 1) <= h) & ((b + 1) * max(p.block, 1) - 1 - i <= h)
    assert np.array_equal(p.landmark_mask(t), free.landmark_mask(t) & inside)


def test_horizon_must_be_a_non_negative_int():
    for bad in (-1, 2.5, True):
        with pytest.raises(ValueError, match="horizon"):
            SparsePattern(horizon=bad)


@given(patterns(), st.integers(1, 200))
@settings(max_examples=40)
def test_mask_always_holds_the_query_itself(p, t):
    assert p.mask(t).diagonal().all()
    if p.causal:
        assert not np.triu(p.mask(t), 1).any()


def test_pattern_rejects_bad_settings():
    with pytest.raises(ValueError, match="block"):
        SparsePattern(block=0, landmarks=True)
    with pytest.raises(ValueError, match="window"):
        SparsePattern(window=-1)
    with pytest.raises(ValueError, match="global"):
        SparsePattern(globals=(-2,))


# ---- forward and backward against the dense oracle ------------------------


@given(problems(long=True))
@settings(max_examples=40)
def test_forward_matches_dense_reference(case):
    q, k, v, p = case
    want = dense_reference(q, k, v, p)
    _close(sparse_attention(q.float(), k.float(), v.float(), p), want)
    _close(sparse_attention(q, k, v, p), want, rel=1e-12)


@given(problems(long=True))
@settings(max_examples=25)
def test_gradients_match_dense_reference(case):
    q, k, v, p = case
    dout = torch.randn(q.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    refs = [x.clone().requires_grad_() for x in (q, k, v)]
    (dense_reference(*refs, p) * dout).sum().backward()
    ours = [x.float().requires_grad_() for x in (q, k, v)]
    (sparse_attention(*ours, p) * dout.float()).sum().backward()
    for got, want in zip(ours, refs, strict=True):
        _close(got.grad, want.grad)


def test_landmarks_off_is_dense_sdpa_with_the_mask():
    p = SparsePattern(window=5, landmarks=False, globals=(0, 3), log_stride=True)
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 4, 50, 16, generator=g) for _ in range(3))
    sdpa = torch.nn.functional.scaled_dot_product_attention(
        q, k, v, attn_mask=torch.from_numpy(p.mask(50))
    )
    got = sparse_attention(*(x.transpose(1, 2).contiguous() for x in (q, k, v)), p)
    _close(got.transpose(1, 2), sdpa)


@pytest.mark.parametrize("causal", [True, False])
def test_gradcheck_float64(causal):
    p = SparsePattern(window=2, block=3, globals=(0,), causal=causal)
    g = torch.Generator().manual_seed(2)
    q = torch.randn(2, 13, 4, 5, dtype=torch.float64, generator=g, requires_grad=True)
    k = torch.randn(2, 13, 2, 5, dtype=torch.float64, generator=g, requires_grad=True)
    v = torch.randn(2, 13, 2, 5, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b, c: sparse_attention(a, b, c, p), (q, k, v))


@given(problems())
@settings(max_examples=20)
def test_gathered_torch_formulation_matches_reference(case):
    """The CUDA path (plain torch, gathered keys) implements the same pattern."""
    q, k, v, p = case
    _close(gathered_attention(q, k, v, p), dense_reference(q, k, v, p), rel=1e-10)


def test_window_longer_than_the_sequence():
    p = SparsePattern(window=64, block=16)
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(1, 10, 2, 8, generator=g) for _ in range(3))
    _close(sparse_attention(q, k[:, :, :2], v[:, :, :2], p), dense_reference(q, k, v, p))


# ---- bad, empty and NaN input ---------------------------------------------


def test_empty_batch_or_sequence_gives_empty_output():
    for b, t in [(0, 5), (2, 0)]:
        q = torch.zeros(b, t, 4, 8, requires_grad=True)
        k = torch.zeros(b, t, 2, 8)
        out = sparse_attention(q, k, k)
        assert out.shape == (b, t, 4, 8)
        out.sum().backward()
        assert q.grad is not None and q.grad.shape == q.shape


def test_nan_query_gives_nan_exactly_in_its_row():
    g = torch.Generator().manual_seed(4)
    q, k, v = torch.randn(1, 40, 2, 8, generator=g), *(torch.randn(1, 40, 1, 8) for _ in range(2))
    q[0, 17, 1, 3] = float("nan")
    p = SparsePattern(window=4, block=4)
    got, want = sparse_attention(q, k, v, p), dense_reference(q, k, v, p)
    assert torch.equal(got.isnan(), want.isnan())
    assert got.isnan().any(dim=-1).nonzero().tolist() == [[0, 17, 1]]


def test_nan_key_reaches_only_the_queries_that_attend_to_it():
    """The dense oracle multiplies zero probabilities by the NaN value and spreads
    it to every row; the kernel never touches keys outside a query's set."""
    p = SparsePattern(window=3, block=4, globals=(), log_stride=False)
    g = torch.Generator().manual_seed(5)
    q, k, v = (torch.randn(1, 30, 1, 4, generator=g) for _ in range(3))
    k[0, 10, 0, 0] = float("nan")
    got = sparse_attention(q, k, v, p)[0, :, 0].isnan().any(dim=-1).numpy()
    sees = p.mask(30)[:, 10] | p.landmark_mask(30)[:, 10 // 4]
    assert np.array_equal(got, sees)


@pytest.mark.parametrize(
    "shapes",
    [
        ((1, 5, 3, 4), (1, 5, 2, 4)),  # 3 q heads on 2 kv heads
        ((1, 5, 2, 4), (1, 6, 2, 4)),  # T differs
        ((1, 5, 2, 4), (1, 5, 2, 3)),  # D differs
        ((1, 5, 2, 0), (1, 5, 2, 0)),  # empty head dim
        ((5, 2, 4), (5, 2, 4)),  # not 4-d
    ],
)
def test_bad_shapes_are_value_errors(shapes):
    qs, ks = shapes
    with pytest.raises(ValueError):
        sparse_attention(torch.zeros(qs), torch.zeros(ks), torch.zeros(ks))
    with pytest.raises(ValueError):
        _native.sparse_attention_forward(
            np.zeros(qs, np.float32),
            np.zeros(ks, np.float32),
            np.zeros(ks, np.float32),
            scale=1.0,
            **SparsePattern().native_args(),
        )


def test_bad_dtypes_are_type_errors():
    x = torch.zeros(1, 3, 1, 2)
    with pytest.raises(TypeError):
        sparse_attention(x.half(), x.half(), x.half())
    with pytest.raises(TypeError):
        sparse_attention(x, x.double(), x)
    with pytest.raises(TypeError):
        _native.sparse_attention_forward(
            np.zeros((1, 3, 1, 2), np.float32),
            np.zeros((1, 3, 1, 2)),
            np.zeros((1, 3, 1, 2)),
            scale=1.0,
            **SparsePattern().native_args(),
        )


@st.composite
def native_calls(draw):
    dtype = draw(st.sampled_from([np.float32, np.float64, np.int32, np.float16]))
    shapes = [
        tuple(draw(st.integers(0, 4)) for _ in range(draw(st.integers(0, 5)))) for _ in range(3)
    ]
    with np.errstate(over="ignore", invalid="ignore"):
        arrays = [
            np.full(s, draw(st.sampled_from([0.0, 1.0, np.nan, np.inf, 3e38])), dtype)
            for s in shapes
        ]
    if draw(st.booleans()) and arrays[0].ndim == 4 and arrays[0].shape[0] > 1:
        arrays[0] = arrays[0][::2]  # not contiguous
    kw = {
        "window": draw(st.integers(0, 2**20)),
        "block": draw(st.integers(0, 2**20)),
        "landmarks": draw(st.booleans()),
        "globals": draw(st.lists(st.integers(0, 2**62), max_size=3)),
        "log_stride": draw(st.booleans()),
        "causal": draw(st.booleans()),
        "scale": draw(st.sampled_from([0.0, 1.0, np.nan, -1e300])),
        "horizon": draw(st.one_of(st.none(), st.integers(0, 2**62))),
    }
    return arrays, kw


@given(native_calls())
@settings(max_examples=60)
def test_fuzz_native_bindings_never_panic(call):
    """The fuzz pattern of tests/test_bindings_fuzz.py for the attention bindings."""
    (q, k, v), kw = call
    try:
        out, lse = _native.sparse_attention_forward(q, k, v, **kw)
    except CLEAR:
        return
    assert out.shape == q.shape and lse.shape == q.shape[:3]
    try:
        _native.sparse_attention_backward(q, k, v, out, lse, out, **kw)
    except CLEAR:
        pass


def test_bindings_release_the_gil():
    g = np.random.default_rng(0)
    q, k = (
        g.standard_normal((4, 4096, 8, 32), np.float32),
        g.standard_normal((4, 4096, 2, 32), np.float32),
    )
    small = np.zeros((1, 2, 1, 2), np.float32)
    args = SparsePattern().native_args()
    _, overlapping, calls = calls_during(
        lambda: _native.sparse_attention_forward(q, k, k, scale=0.2, **args),
        lambda: _native.sparse_attention_forward(small, small, small, scale=0.2, **args),
    )
    assert overlapping >= 10, (overlapping, calls)


def test_module_trains_its_projections():
    """Every projection gets a gradient: the upstream head only trained o_proj."""
    torch.manual_seed(0)
    m = SparseTemporalAttention(12, q_heads=4, kv_heads=1, pattern=SparsePattern(window=3, block=4))
    m(torch.randn(2, 20, 12)).square().mean().backward()
    for name, prm in m.named_parameters():
        assert prm.grad is not None and prm.grad.abs().sum() > 0, name


def test_backward_does_not_depend_on_the_thread_count():
    """dk, dv are summed over query-block partials in task order: bit-identical
    gradients whatever the pool size."""
    p = SparsePattern(window=5, block=4, globals=(0, 3))
    g = torch.Generator().manual_seed(6)
    q = torch.randn(2, 700, 4, 8, generator=g)
    k, v = torch.randn(2, 700, 2, 8, generator=g), torch.randn(2, 700, 2, 8, generator=g)
    dout = torch.randn(q.shape, generator=g)
    before = csipose.get_num_threads()
    grads = []
    try:
        for n in (1, 2, 3):
            csipose.set_num_threads(n)
            xs = [x.clone().requires_grad_() for x in (q, k, v)]
            (sparse_attention(*xs, p) * dout).sum().backward()
            grads.append([x.grad for x in xs])
    finally:
        csipose.set_num_threads(before)
    for other in grads[1:]:
        for a, b in zip(grads[0], other, strict=True):
            assert torch.equal(a, b)
