"""The receiver impairments of simulator VERSION 2 (Rust sim/impair.rs): equal
to a numpy recomputation from the same draws, draws with the right
distributions, and the pinned bytes of both versions' default output."""

from __future__ import annotations

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from csipose import _native
from csipose.data.simulate import VERSION, channel, simulate
from stores import store_digest


def _oracle(h, nic, n_nic, s, null, n_fft, snr_db, seed):
    """The impairments of complex ``h`` [packets, L, K] in numpy from the kernel's own draws."""
    p, links, k = h.shape
    per_nic, lost, per_value = _native.impairment_draws(seed, p, n_nic, links * k)
    hr, hi = h.real.astype(np.float64), h.imag.astype(np.float64)
    power = np.sum(hr * hr + hi * hi) / max(h.size, 1)
    sigma = np.sqrt(power * 10 ** (-snr_db / 10) / 2)
    phase, sto = 2 * np.pi * per_nic[..., 0], per_nic[..., 1] - 0.5
    agc = 10 ** (per_nic[..., 2] / 20)
    theta = phase[..., None] - 2 * np.pi * sto[..., None] * s / n_fft  # [P, NIC, K]
    cr, ci = (np.cos(theta) * agc[..., None])[:, nic], (np.sin(theta) * agc[..., None])[:, nic]
    noise = per_value.reshape(p, links, k, 3)
    re = (hr * cr - hi * ci).astype(np.float32) + (sigma * noise[..., 0]).astype(np.float32)
    im = (hr * ci + hi * cr).astype(np.float32) + (sigma * noise[..., 1]).astype(np.float32)
    bad = noise[..., 2] < 2.5e-5
    re[bad] = np.where(noise[..., 2] < 2e-5, np.nan, np.inf)[bad]
    im[bad] = 0
    re[..., null], im[..., null] = 0, 0
    re[lost < 0.003], im[lost < 0.003] = np.nan, 0
    return re, im


def _run(h, nic, n_nic, s, null, n_fft, snr_db, seed):
    out = np.stack([h.real, h.imag], axis=-1).astype(np.float32)
    _native.impair_channel(out, nic, n_nic, s, null, n_fft, snr_db, seed)
    return out[..., 0], out[..., 1]


def _check(got, want):
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(np.isnan(g), np.isnan(w))
        np.testing.assert_array_equal(np.isinf(g), np.isinf(w))
        ok = np.isfinite(w)
        # float32 results; sigma's sum order and the sines' libm may move the last bit.
        scale = float(np.abs(w[ok]).max(initial=1.0))
        np.testing.assert_allclose(g[ok], w[ok], rtol=1e-6, atol=1e-6 * scale)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_kernel_equals_a_numpy_recomputation_from_its_draws(data):
    p, links, k = (
        data.draw(st.integers(0, 5)),
        data.draw(st.integers(1, 4)),
        data.draw(st.integers(1, 9)),
    )
    n_nic = data.draw(st.integers(1, 3))
    parts = hnp.arrays(np.float32, (2, p, links, k), elements=st.floats(-10, 10, width=32))
    re_im = data.draw(parts)
    h = re_im[0] + 1j * re_im[1]
    nic = data.draw(hnp.arrays(np.uint32, links, elements=st.integers(0, n_nic - 1)))
    s = data.draw(hnp.arrays(np.float64, k, elements=st.integers(-64, 64).map(float)))
    null = data.draw(hnp.arrays(np.bool_, k))
    args = (nic, n_nic, s, null, data.draw(st.sampled_from([64.0, 128.0])),
            data.draw(st.floats(-10, 40)), data.draw(st.integers(0, 2**64 - 1)))  # fmt: skip
    _check(_run(h, *args), _oracle(h, *args))


def test_a_long_sequence_loses_packets_and_values_at_their_rates():
    g = np.random.default_rng(1)
    h = (g.normal(size=(4000, 3, 30)) + 1j * g.normal(size=(4000, 3, 30))).astype(np.complex64)
    args = (np.array([0, 0, 1], np.uint32), 2, np.arange(-15, 15, dtype=np.float64),
            np.zeros(30, bool), 64.0, 25.0, 11)  # fmt: skip
    got, want = _run(h, *args), _oracle(h, *args)
    _check(got, want)
    lost = np.isnan(got[0]).all(axis=(1, 2))
    assert 4 <= lost.sum() <= 25  # 12 expected (p = 0.003 of 4000)
    scattered = np.isnan(got[0][~lost]).sum() + np.isinf(got[0]).sum()
    assert 1 <= scattered <= 15  # 9 expected (2.5e-5 of 360,000)


def test_draws_follow_their_distributions():
    per_nic, lost, per_value = _native.impairment_draws(3, 2000, 2, 100)
    normals = np.concatenate([per_nic[..., 2].ravel(), per_value[..., :2].ravel()])
    uniforms = np.concatenate([per_nic[..., :2].ravel(), lost, per_value[..., 2].ravel()])
    assert stats.kstest(normals, "norm").pvalue > 1e-3
    assert stats.kstest(uniforms, "uniform").pvalue > 1e-3
    assert uniforms.min() >= 0 and uniforms.max() < 1
    # The ziggurat's tail (beyond 3.4426): 5.76e-4 of 404,000 normals, 233 expected.
    assert 180 <= (np.abs(normals) > 3.442619855899).sum() <= 290
    a, b = _native.impairment_draws(3, 5, 2, 4), _native.impairment_draws(3, 5, 2, 4)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_bad_arguments_name_the_field():
    h = np.zeros((2, 3, 4, 2), np.float32)
    args = [np.zeros(3, np.uint32), 1, np.arange(4.0), np.zeros(4, bool), 64.0, 20.0, 1]
    with pytest.raises(ValueError, match="nic_of_link"):
        _native.impair_channel(h, np.array([0, 1, 0], np.uint32), *args[1:])
    with pytest.raises(ValueError, match=r"h must be \[packets"):
        _native.impair_channel(h[:, :2], *args)
    with pytest.raises(ValueError, match="more than 1024 receivers"):
        _native.impair_channel(h, args[0], 2**63, *args[2:])
    h[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        _native.impair_channel(h, *args)
    with pytest.raises(ValueError, match="draws"):
        _native.impairment_draws(0, 2**40, 1, 2**30)


# numpy rounds some float32 results (the phase's atan2) by CPU-dispatched
# SIMD kernels: its AVX-512 ones (the X86_V4 target and above) give other last
# bits than its AVX2 ones, so the pinned bytes hold per dispatch class.
# Both were recorded on one AVX-512 machine, the X86_V3 ones with
# NPY_DISABLE_CPU_FEATURES="X86_V4 AVX512_ICL AVX512_SPR" (they equal those
# recorded on the AVX2 development machine).
PINNED = {
    ("x86_64", "X86_V3"): {
        "1": "d84159128ab20d1679e17eed43dfbfc81a0c070a43f92d70ba22e917fba79b61",
        "2": "b77f9b08b1887221e4b9683226879a7b8142b7f417cd5293b950dd0b39110fba",
    },
    ("x86_64", "X86_V3 X86_V4 AVX512_ICL"): {
        "1": "bde3a07c0c7481fd81776ae650d9d8feede01a2bd7a9c36188beec4e21018fb3",
        "2": "9f02f99d6a335b0a342b3b77ff0d00cf03fde6e5d007d3d9e909a8e67bb10c28",
    },
}


def _dispatch() -> tuple[str, str]:
    """(machine, numpy's SIMD dispatch targets this CPU runs)."""
    import platform

    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    on = " ".join(t for t in __cpu_dispatch__ if __cpu_features__.get(t))
    return platform.machine(), on


def _small_simulation(path, numpy_impairments: bool):
    before, channel.NUMPY_IMPAIRMENTS = channel.NUMPY_IMPAIRMENTS, numpy_impairments
    try:
        return simulate(path, profile="mmfi", environments=2, subjects=2,
                        actions=["walk", "squat"], frames=6, sequences=1, seed=5)  # fmt: skip
    finally:
        channel.NUMPY_IMPAIRMENTS = before


@pytest.mark.parametrize("numpy_impairments, version", [(True, "1"), (False, VERSION)])
def test_default_output_of_each_version_is_pinned(tmp_path, numpy_impairments, version):
    """The hash of a small default simulation. VERSION 1's was recorded before
    domain randomisation was added and still holds with its numpy impairments
    (the benchmark's baseline). If the simulated data changes on purpose, bump
    VERSION (cached datasets are keyed by it) and record the new hashes here."""
    digest = store_digest(_small_simulation(tmp_path / "d", numpy_impairments))
    key = _dispatch()
    if key not in PINNED:
        pytest.skip(f"no hashes pinned for numpy dispatch {key}; this one gives {digest}")
    assert digest == PINNED[key][version]


def test_other_numpy_dispatch_changes_only_the_phase_in_its_last_bits(tmp_path):
    """The same simulation in a process whose numpy runs its AVX2 kernels only:
    every field but the phase is the same to the bit, the phase within a few
    float32 ulp (numpy's float32 atan2 rounds by dispatch; 3 ulp and 4.8e-7
    rad at most here)."""
    import os
    import subprocess
    import sys

    if "X86_V4" not in _dispatch()[1]:
        pytest.skip("numpy dispatches no AVX-512 kernels on this CPU")
    from csipose.data import Store

    here = Store.open(_small_simulation(tmp_path / "here", False))
    env = {**os.environ, "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR"}
    # The same helper in the other process: this module, imported from its folder.
    code = (
        "import sys; sys.path.insert(0, sys.argv[2]); "
        "from test_simulate_impair import _small_simulation; "
        "_small_simulation(sys.argv[1], False)"
    )
    args = [sys.executable, "-c", code, str(tmp_path / "there"), os.path.dirname(__file__)]
    subprocess.run(args, env=env, check=True, capture_output=True)
    there = Store.open(tmp_path / "there")
    assert sorted(here.fields) == sorted(there.fields)
    for name in here.fields:
        a, b = np.asarray(here.array(name)), np.asarray(there.array(name))
        if name == "phase":
            np.testing.assert_array_max_ulp(a, b, maxulp=4)
            assert np.abs(a - b).max() <= 1e-6
        else:
            np.testing.assert_array_equal(a, b, err_msg=name)
