"""The multipath channel: static paths shadowed by the body, paths scattered by
body segments, and the impairments of real receivers. See docs/simulator.md
for the equations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from csipose import _native
from csipose.data.simulate.body import SEGMENTS
from csipose.data.simulate.profiles import Profile
from csipose.data.simulate.room import Environment

C = 299_792_458.0
_FOUR_PI_15 = (4 * np.pi) ** 1.5
_SEG_A = np.array([s[0] for s in SEGMENTS])
_SEG_B = np.array([s[1] for s in SEGMENTS])
SEG_RADIUS = np.array([s[2] for s in SEGMENTS])  # x height
SEG_RCS = np.array([s[3] for s in SEGMENTS])  # diffuse m^2 for a 1.75 m person
SEG_BLOCK = np.array([s[4] for s in SEGMENTS])
#: Amplitude left on a fully obstructed path (-16.5 dB).
SHADOW_FLOOR = 0.15
#: Power reflection coefficient of tissue at 5 GHz (|Gamma|^2), applied to body cross-sections.
TISSUE_REFLECTIVITY = 0.3
#: RMS surface roughness of a clothed body (m); specular reflection loses exp(-(4 pi h / lambda)^2).
ROUGHNESS = 0.005
#: True: synthesize every packet's row of paths with ``multipath_response``,
#: shadow one point at a time and simulate one sequence at a time, as before the
#: one-pass channel kernel. The output
#: is the same to the bit (tests/test_simulate_speed.py); benches/bench_simulate.py
#: times both in one process.
PER_PACKET = False


@dataclass(frozen=True)
class StaticPaths:
    """The paths that do not move, per link (tx, rx pair): line of sight,
    first-order reflections off the six room surfaces, one bounce off each
    piece of furniture."""

    length: np.ndarray  # [L, P] metres
    gain: np.ndarray  # [L, P] complex amplitude
    segments: np.ndarray  # [L, P, 2, 2, 3] the path as two straight pieces (start, end)
    offset: np.ndarray  # [L, P, 2] path length before each piece

    def subset(self, keep: np.ndarray) -> StaticPaths:
        """The paths ``keep`` (a mask or indices over P) of every link."""
        return StaticPaths(
            self.length[:, keep], self.gain[:, keep], self.segments[:, keep], self.offset[:, keep]
        )

    def near(
        self, centres: np.ndarray, extents: np.ndarray, lam: float, radius: float
    ) -> np.ndarray:
        """Paths [P] that may come within reach of the shadowing model of
        anyone: each person's joints stay inside a sphere (``centres`` [M, 3],
        ``extents`` [M]); a path is near when it passes closer to a sphere than
        3 w, w = F_max / 2 + ``radius`` (F_max the Fresnel radius at the middle of
        the path). Other paths keep their amplitude to within exp(-9) = 1.2e-4
        for every pose and need no per-frame work."""
        a = self.segments[:, :, :, 0][None]  # [1, L, P, 2, 3]
        ab = self.segments[:, :, :, 1][None] - a
        ab2 = np.maximum(np.sum(ab * ab, -1), 1e-12)
        c = centres[:, None, None, None, :]
        u = np.clip(np.sum((c - a) * ab, -1) / ab2, 0, 1)
        h = np.linalg.norm(c - (a + u[..., None] * ab), axis=-1).min(axis=3)  # [M, L, P]
        reach = 3 * (0.5 * np.sqrt(lam * self.length / 4) + radius)
        return np.any(h - extents[:, None, None] < reach[None], axis=(0, 1))


def links(env: Environment) -> tuple[np.ndarray, np.ndarray]:
    """(tx index, rx index) of every link, tx-major."""
    t, r = np.meshgrid(np.arange(len(env.tx)), np.arange(len(env.rx)), indexing="ij")
    return t.reshape(-1), r.reshape(-1)


def static_paths(env: Environment, profile: Profile, rng: np.random.Generator) -> StaticPaths:
    lam = profile.wavelength
    ti, ri = links(env)
    furniture_phase = np.exp(1j * rng.uniform(0, 2 * np.pi, len(env.furniture)))
    length, gain, segs = [], [], []
    for t, r in zip(ti, ri, strict=True):
        a, b = env.tx[t], env.rx[r]
        pts, g = [b], [1.0 + 0j]  # line of sight: the bend point is the receiver itself
        for axis in range(3):
            for side in range(2):
                plane = 0.0 if side == 0 else env.size[axis]
                image = a.copy()
                image[axis] = 2 * plane - a[axis]
                # Where the image -> receiver line meets the surface.
                f = (plane - image[axis]) / (b[axis] - image[axis])
                pts.append(image + f * (b - image))
                g.append(-env.reflectivity[2 * axis + side] + 0j)
        for q, s in enumerate(env.furniture):
            d1, d2 = np.linalg.norm(s - a), np.linalg.norm(b - s)
            pts.append(s)
            # Bistatic point scatterer relative to the free-space factor applied below.
            g.append(
                np.sqrt(env.furniture_rcs[q])
                * (d1 + d2)
                / (np.sqrt(4 * np.pi) * d1 * d2)
                * furniture_phase[q]
            )
        pts = np.array(pts)
        piece1 = np.stack([np.broadcast_to(a, pts.shape), pts], axis=1)
        piece2 = np.stack([pts, np.broadcast_to(b, pts.shape)], axis=1)
        d = np.linalg.norm(pts - a, axis=1) + np.linalg.norm(b - pts, axis=1)
        length.append(d)
        gain.append(np.array(g) * lam / (4 * np.pi * d))
        segs.append(np.stack([piece1, piece2], axis=1))
    segs = np.array(segs)
    first = np.linalg.norm(segs[:, :, 0, 1] - segs[:, :, 0, 0], axis=-1)
    offset = np.stack([np.zeros_like(first), first], axis=-1)
    return StaticPaths(np.array(length), np.array(gain), segs, offset)


#: The sample points of one person's segments (end, middle, end, as in
#: ``_segment_points``) as indices into its 17 joints followed by its 16 middles.
_SAMPLE_POINT = (
    np.stack([_SEG_A, 17 + np.arange(16), _SEG_B], axis=-1).reshape(-1).astype(np.uint32)
)


def _segment_points(joints: np.ndarray) -> np.ndarray:
    """Both ends and the middle of every body segment: [..., 16, 3, 3]."""
    a, b = joints[..., _SEG_A, :], joints[..., _SEG_B, :]
    return np.stack([a, 0.5 * (a + b), b], axis=-2)


def shadowing(static: StaticPaths, joints: np.ndarray, height: float, lam: float) -> np.ndarray:
    """Amplitude factor [N, L, P] of every static path for people in poses ``joints`` [N, M, 17, 3].

    A segment k at distance h from a path (nearest of its ends and middle to
    either piece of the path) obstructs a fraction o_k = b_k exp(-(h / w)^2) of
    it, with w = F / 2 + r_k: F the first Fresnel radius there, r_k the segment
    radius. Obstructions combine as o = 1 - prod(1 - o_k); the path keeps
    1 - (1 - SHADOW_FLOOR) o of its amplitude. (Rust kernel.)
    """
    n, m = joints.shape[:2]
    segment = np.repeat(np.arange(m * 16, dtype=np.uint32), 3)
    if PER_PACKET:  # as before: every segment's three points written out
        pts, index = _segment_points(joints).reshape(n, m * 16 * 3, 3), None
    else:
        # Each joint once (it ends up to four segments), then the middles: the
        # kernel computes a point's distance and Fresnel radius once per path piece.
        a, b = joints[..., _SEG_A, :], joints[..., _SEG_B, :]
        pts = np.concatenate([joints, 0.5 * (a + b)], axis=-2).reshape(n, m * 33, 3)
        index = (np.arange(m, dtype=np.uint32)[:, None] * 33 + _SAMPLE_POINT).reshape(-1)
    return _native.shadowing(
        np.ascontiguousarray(static.segments), np.ascontiguousarray(static.offset),
        np.ascontiguousarray(static.length), np.ascontiguousarray(pts, dtype=np.float64), segment,
        np.tile(SEG_RADIUS * height, m), np.tile(SEG_BLOCK, m), lam, SHADOW_FLOOR, PER_PACKET,
        index,
    )  # fmt: skip


def body_paths(
    env: Environment, joints: np.ndarray, heights: np.ndarray, phases: np.ndarray, lam: float
) -> tuple[np.ndarray, np.ndarray]:
    """Delays [N, L, M*16] and complex gains of the paths scattered by each body
    segment of poses ``joints`` [N, M, 17, 3]; people with height 0 are absent.

    A segment is a cylinder (length l, radius r) scattering from its middle
    with a fixed phase. Its bistatic cross-section follows physical optics:
    sigma = sigma_spec * sinc^2(k l (u_s - u_i) . t / 2) + sigma_diffuse, with
    u_i, u_s the unit directions tx -> segment -> rx, t the segment axis,
    sigma_spec = 2 pi r l^2 / lambda (broadside; l limited to the Fresnel length
    sqrt(lambda d1 d2 / (d1 + d2)), as the antennas are in the segment's near
    field) times the rough-surface loss exp(-(4 pi h / lambda)^2) of RMS
    roughness h (``ROUGHNESS``), and sigma_diffuse the
    segment's rough-surface cross-section (``SEG_RCS`` scaled by body size),
    both times tissue's power reflectivity.
    """
    n, m = joints.shape[:2]
    a, b = joints[..., _SEG_A, :], joints[..., _SEG_B, :]
    mid = (0.5 * (a + b)).reshape(n, m * 16, 3)
    axis = (b - a).reshape(n, m * 16, 3)
    length = np.linalg.norm(axis, axis=-1)  # [N, Q]
    axis = axis / np.maximum(length, 1e-9)[..., None]
    size = heights[:, None] / 1.75  # [M, 1]
    radius = (SEG_RADIUS[None, :] * heights[:, None]).reshape(-1)
    ti, ri = links(env)
    to_s = mid[:, None, :, :] - env.tx[ti][None, :, None, :]  # [N, L, Q, 3]
    to_r = env.rx[ri][None, :, None, :] - mid[:, None, :, :]
    d1, d2 = np.linalg.norm(to_s, axis=-1), np.linalg.norm(to_r, axis=-1)
    q = to_r / d2[..., None] - to_s / d1[..., None]
    # In the near field only about one Fresnel zone of the segment adds up coherently.
    eff = np.minimum(length[:, None, :], np.sqrt(lam * d1 * d2 / (d1 + d2)))
    x = (np.pi / lam) * eff * np.sum(q * axis[:, None, :, :], axis=-1)  # k l (q . t) / 2
    ruze = np.exp(-((4 * np.pi * ROUGHNESS / lam) ** 2))
    spec = ruze * 2 * np.pi * radius * eff**2 / lam * np.sinc(x / np.pi) ** 2
    rcs = TISSUE_REFLECTIVITY * (spec + (SEG_RCS[None, :] * size**2).reshape(-1))
    amp = lam * np.sqrt(rcs) / (_FOUR_PI_15 * d1 * d2)
    return (d1 + d2) / C, amp * np.exp(1j * phases.reshape(-1))


def synthesize(
    profile: Profile,
    static: StaticPaths,
    near: np.ndarray,
    shadow: np.ndarray,
    body_tau: np.ndarray,
    body_gain: np.ndarray,
) -> np.ndarray:
    """Clean channel H [F, packets, L, K] (complex64): the static paths ``near``
    people shadowed per frame (``shadow`` [F, L, Pnear]), the other static paths
    once, and body paths per packet (``body_tau``, ``body_gain`` [F * packets, L, Q])."""
    f, links_ = shadow.shape[0], static.length.shape[0]
    pk = profile.packets_per_frame
    k = len(profile.subcarriers)
    index = np.asarray(profile.subcarriers, np.int32)

    def response(tau: np.ndarray, gain: np.ndarray) -> np.ndarray:
        rows, n = tau.shape[:-1], int(np.prod(tau.shape[:-1]))
        tau, gain = tau.reshape(n, tau.shape[-1]), gain.reshape(n, gain.shape[-1])
        re, im = _native.multipath_response(
            np.ascontiguousarray(tau), np.ascontiguousarray(gain.real), np.ascontiguousarray(gain.imag),
            profile.carrier_hz, profile.spacing_hz, index,
        )  # fmt: skip
        return (re + 1j * im).reshape(*rows, k)

    far = static.subset(~near)
    fixed = response(far.length / C, far.gain)  # [L, K]
    moving = static.subset(near)
    if not PER_PACKET:
        # One Rust pass: near static paths per frame, body paths per packet (Rust
        # sim/synthesis.rs, equal to the per-packet rows below to the bit).
        c = np.ascontiguousarray
        out = _native.synthesize_channel(
            c(moving.length / C), c(moving.gain.real), c(moving.gain.imag), c(shadow, dtype=np.float64),
            c(body_tau), c(body_gain.real), c(body_gain.imag),
            c(fixed.real, dtype=np.float32), c(fixed.imag, dtype=np.float32),
            pk, profile.carrier_hz, profile.spacing_hz, index,
        )  # fmt: skip
        return out.view(np.complex64)[..., 0]
    gain = np.repeat(shadow * moving.gain[None], pk, axis=0)  # [F*pk, L, Pnear]
    tau = np.broadcast_to(moving.length / C, gain.shape)
    h = response(
        np.concatenate([tau, body_tau], axis=-1), np.concatenate([gain, body_gain], axis=-1)
    )
    return (h + fixed[None]).astype(np.complex64).reshape(f, pk, links_, k)


#: True: VERSION 1's impairments, drawn from the sequence's numpy generator and
#: applied in numpy (``_impair_numpy``). benches/bench_simulate.py sets it with
#: ``PER_PACKET`` to time VERSION 1 as it was; tests pin both versions' bytes.
NUMPY_IMPAIRMENTS = False


def _receivers(profile: Profile, n_links: int) -> tuple[np.ndarray, int, int]:
    """(receiver of each link, receivers, FFT size): two NICs behind more than
    three antennas; links are tx-major, so a link's antenna is its index modulo n_rx."""
    n_nic = 2 if profile.n_rx > 3 else 1
    nic = (np.arange(n_links) % profile.n_rx) // (profile.n_rx // n_nic)
    n_fft = 128 if profile.hardware.get("bandwidth_mhz", 20) >= 40 else 64
    return nic, n_nic, n_fft


def impair(
    h: np.ndarray, env: Environment, profile: Profile, rng: np.random.Generator
) -> np.ndarray:
    """What a real receiver does to the clean channel ``h`` [F, packets, L, K]:

    * a random common phase per packet and receiver (carrier frequency offset),
    * a random linear phase slope over subcarriers per packet and receiver
      (sampling time offset, U(-0.5, 0.5) samples),
    * a random gain per packet and receiver (AGC, N(0, 1 dB)),
    * complex Gaussian noise at the environment's SNR,
    * zeros on null subcarriers,
    * lost packets (whole packet slice NaN, p = 0.003) and rare NaN or +Inf values.

    VERSION 2: one Rust pass (sim/impair.rs) over ``h``, which it overwrites
    when it is a C-contiguous complex64 array, with a stream seeded by one draw
    of ``rng``.
    """
    if NUMPY_IMPAIRMENTS:
        return _impair_numpy(h, env, profile, rng)
    f, pk, n_links, k = h.shape
    nic, n_nic, n_fft = _receivers(profile, n_links)
    seed = int(rng.integers(0, 2**64, dtype=np.uint64))
    out = np.ascontiguousarray(h, dtype=np.complex64)
    _native.impair_channel(
        out.view(np.float32).reshape(f * pk, n_links, k, 2), nic.astype(np.uint32), n_nic,
        np.asarray(profile.subcarriers, np.float64),
        np.isin(profile.subcarriers, profile.null_subcarriers), float(n_fft), float(env.snr_db),
        seed,
    )  # fmt: skip
    return out


def _impair_numpy(
    h: np.ndarray, env: Environment, profile: Profile, rng: np.random.Generator
) -> np.ndarray:
    """VERSION 1's ``impair``: the same impairments with numpy's draws."""
    f, pk, n_links, _ = h.shape
    nic, n_nic, n_fft = _receivers(profile, n_links)
    s = np.asarray(profile.subcarriers, np.float64)
    phase0 = rng.uniform(0, 2 * np.pi, (f, pk, n_nic))  # [F, pk, NIC]
    sto = rng.uniform(-0.5, 0.5, (f, pk, n_nic))
    agc = 10 ** (rng.normal(0, 1.0, (f, pk, n_nic))[:, :, nic] / 20)
    # One rotation row per receiver, then per link: the links of a receiver share
    # it (the same values as computing it per link, at 1 / antennas the exps).
    rot = np.exp(1j * (phase0[..., None] - 2 * np.pi * sto[..., None] * s / n_fft))[:, :, nic]
    out = (h * rot * agc[..., None]).astype(np.complex64)
    power = float(np.mean(np.abs(h) ** 2))
    sigma = np.sqrt(power * 10 ** (-env.snr_db / 10) / 2)
    # Complex Gaussian noise: the real draws, then the imaginary ones, each rounded
    # to float32 and added in place (what adding them as one complex64 array did).
    out.real += rng.normal(0, sigma, h.shape).astype(np.float32)
    out.imag += rng.normal(0, sigma, h.shape).astype(np.float32)
    rare = rng.random(out.shape)
    hit = np.flatnonzero(rare < 2.5e-5)  # a few in 10^5: set by index, not by full masks
    flat = out.reshape(-1)
    flat[hit[rare.reshape(-1)[hit] < 2e-5]] = np.nan
    flat[hit[rare.reshape(-1)[hit] >= 2e-5]] = np.inf
    # Null subcarriers read as exact zeros; a lost packet is missing entirely.
    out[..., np.isin(profile.subcarriers, profile.null_subcarriers)] = 0
    out[rng.random((f, pk)) < 0.003] = np.nan
    return out
