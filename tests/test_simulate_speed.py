"""The simulator's one-pass channel kernel (Rust sim/synthesis.rs) and the
vector form of shadowing: the same bytes as the per-packet path they replace,
the same bytes at 1 and 2 threads, and the channel against a direct numpy sum."""

from __future__ import annotations

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import csipose
from csipose import _native
from csipose.data import Store
from csipose.data.simulate import channel, simulate
from stores import store_digest

SMALL = {"environments": 1, "subjects": 2, "frames": 5, "sequences": 1, "progress": False}


@pytest.fixture
def threads():
    yield
    csipose.set_num_threads(0)


@pytest.mark.parametrize(
    "profile, actions", [("mmfi", ["walk", "squat"]), ("esp32", ["walk", "wave"])]
)
def test_one_pass_equals_the_per_packet_path_and_ignores_threads(
    tmp_path, monkeypatch, threads, profile, actions
):
    run = {}
    for name, per_packet, n in (("old", True, 1), ("new1", False, 1), ("new2", False, 2)):
        monkeypatch.setattr(channel, "PER_PACKET", per_packet)
        csipose.set_num_threads(n)
        out = simulate(tmp_path / name, profile=profile, actions=actions, seed=7, **SMALL)
        run[name] = store_digest(out)
    assert run["new1"] == run["old"], "the one-pass kernel changed the simulated bytes"
    assert run["new2"] == run["new1"], "the output depends on the thread count"


def _oracle(static_tau, static_g, shadow, body_tau, body_g, fixed, pk, fc, df, index):
    """H[f, p, l, k] = fixed[l, k] + sum over near static paths (shadowed) and body paths."""
    freq = fc + df * index.astype(np.float64)  # [K]
    f, links, _ = shadow.shape
    g_static = np.repeat(shadow * static_g[None], pk, axis=0)  # [F*pk, L, P]
    tau_static = np.broadcast_to(static_tau, g_static.shape)
    tau = np.concatenate([tau_static, body_tau], axis=-1)
    g = np.concatenate([g_static, body_g], axis=-1)
    h = np.einsum("nlp,nlpk->nlk", g, np.exp(-2j * np.pi * tau[..., None] * freq))
    return (h + fixed[None]).reshape(f, pk, links, len(index))


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_the_channel_kernel_matches_a_direct_sum(data):
    f, pk, links = (data.draw(st.integers(1, 3)) for _ in range(3))
    p, q = data.draw(st.integers(0, 12)), data.draw(st.integers(0, 20))
    index = np.unique(data.draw(hnp.arrays(np.int32, data.draw(st.integers(1, 8)),
                                           elements=st.integers(-60, 60))))  # fmt: skip

    def floats(shape, lo, hi):
        return data.draw(hnp.arrays(np.float64, shape, elements=st.floats(lo, hi)))

    static_tau = floats((links, p), 1e-9, 1e-7)
    static_g = floats((links, p), -1, 1) + 1j * floats((links, p), -1, 1)
    shadow = floats((f, links, p), 0.15, 1)
    body_tau = floats((f * pk, links, q), 1e-9, 1e-7)
    body_g = floats((f * pk, links, q), -0.1, 0.1) + 1j * floats((f * pk, links, q), -0.1, 0.1)
    fixed = (floats((links, len(index)), -1, 1) + 1j * floats((links, len(index)), -1, 1)).astype(
        np.complex64
    )
    fc, df = 5.32e9, 312.5e3
    c = np.ascontiguousarray
    got = _native.synthesize_channel(
        c(static_tau), c(static_g.real), c(static_g.imag), c(shadow), c(body_tau),
        c(body_g.real), c(body_g.imag), c(fixed.real), c(fixed.imag), pk, fc, df, index,
    ).view(np.complex64)[..., 0]  # fmt: skip
    want = _oracle(static_tau, static_g, shadow, body_tau, body_g, fixed, pk, fc, df, index)
    # float64 sums rounded to float32 twice (the sum, then with the fixed part).
    scale = 1 + np.abs(static_g).sum() + np.abs(body_g).sum() / max(f * pk, 1)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6 * scale)


def test_shadowing_forms_agree_to_the_bit():
    rng = np.random.default_rng(0)
    links, paths, n, q, segs = 2, 9, 4, 30, 10
    pieces = rng.uniform(0, 4, (links, paths, 2, 2, 3))
    pieces[:, :, 1, 0] = pieces[:, :, 0, 1]  # the pieces meet at the bend
    first = np.linalg.norm(pieces[:, :, 0, 1] - pieces[:, :, 0, 0], axis=-1)
    second = np.linalg.norm(pieces[:, :, 1, 1] - pieces[:, :, 1, 0], axis=-1)
    offset = np.stack([np.zeros_like(first), first], axis=-1)
    points = rng.uniform(0, 4, (n, q, 3))
    seg = rng.integers(0, segs, q).astype(np.uint32)
    radius, block = rng.uniform(0.02, 0.2, segs), rng.uniform(0.2, 1, segs)
    args = (pieces, offset, first + second, points, seg, radius, block, 0.057, 0.15)
    vec, ref = _native.shadowing(*args), _native.shadowing(*args, True)
    assert vec.tobytes() == ref.tobytes()
    assert (vec < 0.99).any()


@pytest.mark.parametrize("pointwise", [False, True])
def test_shared_points_equal_the_points_written_out(pointwise):
    # The simulator's layout: 3 people's 17 joints then 16 middles, each segment sampled
    # at its ends and middle (the vector kernel's three-plane path), against the points
    # written out one per sample and shadowed one at a time.
    rng = np.random.default_rng(1)
    links, paths, n, m = 2, 7, 3, 3
    pieces = rng.uniform(0, 4, (links, paths, 2, 2, 3))
    pieces[:, :, 1, 0] = pieces[:, :, 0, 1]
    first = np.linalg.norm(pieces[:, :, 0, 1] - pieces[:, :, 0, 0], axis=-1)
    second = np.linalg.norm(pieces[:, :, 1, 1] - pieces[:, :, 1, 0], axis=-1)
    offset = np.stack([np.zeros_like(first), first], axis=-1)
    joints = rng.uniform(1, 3, (n, m, 17, 3))
    distinct = np.concatenate(
        [joints, 0.5 * (joints[..., channel._SEG_A, :] + joints[..., channel._SEG_B, :])], axis=-2
    ).reshape(n, m * 33, 3)
    index = (np.arange(m, dtype=np.uint32)[:, None] * 33 + channel._SAMPLE_POINT).reshape(-1)
    written = np.ascontiguousarray(channel._segment_points(joints).reshape(n, m * 48, 3))
    seg = np.repeat(np.arange(m * 16, dtype=np.uint32), 3)
    radius, block = np.tile(channel.SEG_RADIUS * 1.7, m), np.tile(channel.SEG_BLOCK, m)
    args = (pieces, offset, first + second)
    rest = (seg, radius, block, 0.123, 0.15)
    want = _native.shadowing(*args, written, *rest, True)
    got = _native.shadowing(*args, distinct, *rest, pointwise, index)
    assert got.tobytes() == want.tobytes()
    assert _native.shadowing(*args, written, *rest).tobytes() == want.tobytes()
    assert (want < 0.99).any()
    with pytest.raises(ValueError, match="point_index"):
        _native.shadowing(*args, distinct, *rest, pointwise, index + np.uint32(m * 33))


def test_channel_kernel_checks_shapes():
    z2, z3 = np.zeros((1, 1)), np.zeros((1, 1, 1))
    f32 = np.zeros((1, 1), np.float32)
    idx = np.zeros(1, np.int32)
    with pytest.raises(ValueError, match="shadow"):
        _native.synthesize_channel(z2, z2, z2, np.zeros((1, 2, 1)), z3, z3, z3, f32, f32, 1,
                                   5e9, 1e5, idx)  # fmt: skip
    with pytest.raises(ValueError, match="finite"):
        _native.synthesize_channel(np.full((1, 1), np.nan), z2, z2, z3, z3, z3, z3, f32, f32, 1,
                                   5e9, 1e5, idx)  # fmt: skip


def test_rooms_drawn_per_sequence_ignore_threads(tmp_path, threads):
    # Several sequences in flight at 2 threads: the drawn rooms keep plan order.
    run = {}
    for n in (1, 2):
        csipose.set_num_threads(n)
        out = simulate(tmp_path / f"t{n}", profile="mmfi", environments=6, subjects=1,
                       actions=["wave", "walk"], frames=3, sequences=1, seed=3,
                       room_draw="per_sequence", progress=False)  # fmt: skip
        s = Store.open(out)
        run[n] = (store_digest(out), s.manifest["provenance"]["drawn_rooms"])
    assert len(run[1][1]) >= 2
    assert run[2] == run[1]


def _impair_as_before(h, env, profile, rng):
    """impair() as written before it shared rotations between links and added the
    noise in place: the oracle for the same bytes."""
    f, pk, n_links, _ = h.shape
    n_nic = 2 if profile.n_rx > 3 else 1
    nic = (np.arange(n_links) % profile.n_rx) // (profile.n_rx // n_nic)
    s = np.asarray(profile.subcarriers, np.float64)
    n_fft = 128 if profile.hardware.get("bandwidth_mhz", 20) >= 40 else 64
    phase0 = rng.uniform(0, 2 * np.pi, (f, pk, n_nic))[:, :, nic]
    sto = rng.uniform(-0.5, 0.5, (f, pk, n_nic))[:, :, nic]
    agc = 10 ** (rng.normal(0, 1.0, (f, pk, n_nic))[:, :, nic] / 20)
    rot = np.exp(1j * (phase0[..., None] - 2 * np.pi * sto[..., None] * s / n_fft))
    out = (h * rot * agc[..., None]).astype(np.complex64)
    power = float(np.mean(np.abs(h) ** 2))
    sigma = np.sqrt(power * 10 ** (-env.snr_db / 10) / 2)
    out += (rng.normal(0, sigma, h.shape) + 1j * rng.normal(0, sigma, h.shape)).astype(np.complex64)
    rare = rng.random(out.shape)
    out[rare < 2e-5] = np.nan
    out[(rare >= 2e-5) & (rare < 2.5e-5)] = np.inf
    out[..., np.isin(profile.subcarriers, profile.null_subcarriers)] = 0
    out[rng.random((f, pk)) < 0.003] = np.nan
    return out


@pytest.mark.parametrize("profile", ["mmfi", "esp32", "wiflow"])
def test_version1_impairments_are_the_bytes_of_before(profile, monkeypatch):
    """VERSION 1's numpy impairments (the benchmark's baseline) keep their bytes."""
    from csipose.data.simulate.profiles import PROFILES

    monkeypatch.setattr(channel, "NUMPY_IMPAIRMENTS", True)
    from csipose.data.simulate.room import make_environment

    p = PROFILES[profile]
    env = make_environment(p, 0, 1)
    row = p.packets_per_frame * p.n_tx * p.n_rx * len(p.subcarriers)
    shape = (200_000 // row, p.packets_per_frame, p.n_tx * p.n_rx, len(p.subcarriers))
    g = np.random.default_rng(2)
    h = (g.normal(size=shape) + 1j * g.normal(size=shape)).astype(np.complex64) * 1e-3
    got = channel.impair(h, env, p, np.random.default_rng(9))
    want = _impair_as_before(h, env, p, np.random.default_rng(9))
    assert got.tobytes() == want.tobytes()
    assert np.isnan(got).any()
