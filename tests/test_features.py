"""Environment-robust input features against plain numpy oracles."""

from __future__ import annotations

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from csipose import signal_features as sf
from csipose.train import config as pose_config
from csipose.train.loop import model_input

finite = st.floats(-50, 50, width=32)


def windows(min_a: int = 1):
    shape = st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(min_a, 4),
                      st.integers(1, 5), st.integers(1, 4))  # fmt: skip
    return shape.flatmap(lambda s: hnp.arrays(np.float32, s, elements=finite))


def oracle_time(x: np.ndarray) -> np.ndarray:
    """[B, L, A, S, P] -> [B, A, S, L*P] (time frame-major, then packet)."""
    b, frames, a, s, p = x.shape
    return x.transpose(0, 2, 3, 1, 4).reshape(b, a, s, frames * p)


@settings(deadline=None)
@given(windows())
def test_static_removal_matches_numpy(x):
    want = oracle_time(x.astype(np.float64))
    want = want - want.mean(axis=-1, keepdims=True)
    got = oracle_time(sf.static_removal(torch.from_numpy(x)).numpy())
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-5)


@settings(deadline=None)
@given(windows())
def test_temporal_diff_matches_numpy(x):
    t = oracle_time(x.astype(np.float64))
    want = np.concatenate([np.zeros_like(t[..., :1]), np.diff(t, axis=-1)], axis=-1)
    got = oracle_time(sf.temporal_diff(torch.from_numpy(x)).numpy())
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-5)


@settings(deadline=None)
@given(windows(min_a=2), st.data())
def test_conj_product_matches_the_complex_numpy_product(amp, data):
    phase = data.draw(hnp.arrays(np.float32, amp.shape, elements=st.floats(-4, 4, width=32)))
    h = amp.astype(np.float64) * np.exp(1j * phase.astype(np.float64))
    prod = h[:, :, 1:] * np.conj(h[:, :, :1])
    want = np.concatenate([prod.real, prod.imag], axis=2)
    got = sf.conj_product(torch.from_numpy(amp), torch.from_numpy(phase)).numpy()
    np.testing.assert_allclose(got, want, atol=1e-2, rtol=1e-4)


def test_augment_only_while_training_and_seeded():
    amp = torch.rand(4, 2, 3, 5, 10)
    phase = torch.rand(4, 2, 3, 5, 10)
    batch = {"amplitude": amp, "phase": phase}
    with torch.no_grad():
        plain = sf.pose_input(batch, ["augment"])
    np.testing.assert_array_equal(plain.numpy(), sf.pose_input(batch, []).numpy())
    torch.manual_seed(1)
    a = sf.pose_input(batch, ["augment"])
    torch.manual_seed(1)
    b = sf.pose_input(batch, ["augment"])
    assert torch.equal(a, b) and not torch.equal(a, plain)
    # The gain is a positive product of an antenna and a subcarrier factor per window.
    torch.manual_seed(2)
    g_amp, g_phase = sf.augment(amp, phase)
    ratio = (g_amp / amp).numpy()
    assert (ratio > 0).all()
    np.testing.assert_allclose(ratio, ratio[:, :1, :, :, :1].repeat(2, 1).repeat(10, 4), rtol=1e-5)
    turn = (g_phase - phase).numpy()
    np.testing.assert_allclose(turn, turn[:, :1, :, :1, :1] + 0 * turn, atol=1e-6)


@pytest.mark.parametrize("features", [[], ["static_removal"], ["temporal_diff", "conj_product"],
                                      ["static_removal", "temporal_diff", "conj_product", "augment"]])  # fmt: skip
def test_model_input_channels_match_the_declared_count(features):
    a, s = 3, 7
    batch = {"amplitude": torch.rand(2, 1, a, s, 10), "phase": torch.rand(2, 1, a, s, 10)}
    with torch.no_grad():
        x = model_input(batch, torch.device("cpu"), features)
    assert x.shape == (2, a * s + 2 * (a - 1) * s + sf.extra_channels(features, a, s), 10)
    if not features:  # the default input, bit for bit
        np.testing.assert_array_equal(x.numpy(), model_input(batch, torch.device("cpu")).numpy())


class _Store:
    """The two things room_stats asks of a store: its length and gather."""

    path = "memory"

    def __init__(self, x: np.ndarray, env: np.ndarray):
        self.x, self.env = x, env

    def __len__(self) -> int:
        return len(self.x)

    def gather(self, idx, fields):
        return {"amplitude": self.x[idx], "environment": self.env[idx]}


@settings(deadline=None, max_examples=40)
@given(windows(), st.data())
def test_pose_capture_norm_matches_numpy_per_room(x, data):
    n = len(x)
    env = np.array(
        data.draw(st.lists(st.sampled_from([0, 3, 7]), min_size=n, max_size=n)), np.int32
    )
    chunk = data.draw(st.integers(1, 4))  # statistics accumulated over several gathers
    stats = sf.room_stats(_Store(x, env), chunk=chunk)
    assert stats.codes.tolist() == sorted(set(env.tolist()))
    got = stats.normalise(torch.from_numpy(x), torch.from_numpy(env)).numpy()
    for r in stats.codes:
        w = x[env == r].astype(np.float64)
        mean, sd = w.mean(axis=(0, 1, 4)), w.std(axis=(0, 1, 4))
        sd = sd + 1e-6 * max(sd.max(), 1e-30)
        np.testing.assert_allclose(stats.mean[stats.codes == r][0], mean, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(stats.std[stats.codes == r][0], sd, rtol=1e-7, atol=1e-9)
        want = (w - mean[None, None, :, :, None]) / sd[None, None, :, :, None]
        np.testing.assert_allclose(
            got[env == r], want, rtol=1e-4, atol=1e-3 * max(1.0, np.abs(want).max())
        )


def test_pose_capture_norm_needs_the_rooms_statistics():
    x = np.random.default_rng(0).normal(size=(4, 1, 2, 3, 5)).astype(np.float32)
    stats = sf.room_stats(_Store(x, np.array([1, 1, 2, 2], np.int32)))
    with pytest.raises(ValueError, match="room code 5 has no capture statistics"):
        stats.normalise(torch.from_numpy(x), np.array([1, 5, 2, 2]))
    with pytest.raises(ValueError, match="capture_norm"):
        sf.pose_input({"amplitude": torch.from_numpy(x)}, ["capture_norm"], stats)  # no rooms


def test_count_features_match_numpy():
    rng = np.random.default_rng(0)
    x = rng.normal(3, 2, (6, 56, 20)).astype(np.float32)
    np.testing.assert_allclose(sf.static_removal_np(x), x - x.mean(-1, keepdims=True), atol=1e-5)
    mean, std = sf.capture_stats(x)
    flat = x.transpose(1, 0, 2).reshape(56, -1).astype(np.float64)
    np.testing.assert_allclose(mean, flat.mean(1))
    np.testing.assert_allclose(std, flat.std(1) + 1e-6 * flat.std(1).max())
    z = sf.capture_norm(x, mean, std)
    np.testing.assert_allclose(z.transpose(1, 0, 2).reshape(56, -1).mean(1), 0, atol=1e-5)
    np.testing.assert_allclose(z.transpose(1, 0, 2).reshape(56, -1).std(1), 1, atol=1e-4)


def test_unknown_features_are_config_errors():
    with pytest.raises(pose_config.ConfigError, match=r"data\.features"):
        pose_config.load(None, ['data.features=["doppler"]'])
    with pytest.raises(pose_config.ConfigError, match="conj_product"):
        pose_config.load(None, ['data.features=["conj_product"]', "data.inputs=amplitude"])
    from csipose.count import config as count_config

    with pytest.raises(pose_config.ConfigError, match=r"data\.features"):
        count_config.load(None, ['data.features=["conj_product"]'])
