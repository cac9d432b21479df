"""Domain randomisation: a freshly drawn room for every training sequence.

A model trained in a few fixed rooms learns those rooms. Drawing the room
(geometry, wall materials, furniture, diffuse density, the link's placement
and heights, where the person stands relative to the link, SNR and receiver
gain) anew for every sequence, from ranges wider than the fixed rooms', asks
it to learn what stays the same: the person. Only the parameters change; the
channel model (channel.py) is the same.
"""

from __future__ import annotations

import numpy as np

from csipose.data.simulate.profiles import Profile
from csipose.data.simulate.room import Environment, _array, place_person

#: Ranges of the drawn rooms (wider than make_environment's fixed rooms).
SIZE = ((3.5, 9.0), (4.5, 10.0), (2.4, 3.6))
REFLECTIVITY = (0.1, 0.85)
FURNITURE = (0, 10)  # pieces, [low, high)
DIFFUSE = (100, 800)  # diffuse scattering points on the surfaces
HEIGHT = (0.5, 2.2)  # antenna array heights (m)
LINK = (2.0, 7.0)  # transmitter-receiver distance (m)
ALONG = (0.2, 0.8)  # where along the link people act
ACROSS_SD = 0.6  # how far to the side of the link (m, standard deviation)
SNR_DB = (12.0, 40.0)
#: Extra receiver gain per sequence (dB, standard deviation) on top of the per-packet AGC.
GAIN_DB_SD = 3.0


def draw_environment(profile: Profile, name: str, rng: np.random.Generator) -> Environment:
    """One procedurally drawn room from ``rng`` (see the module's ranges)."""
    size = np.array([rng.uniform(*r) for r in SIZE])
    refl = rng.uniform(*REFLECTIVITY, 6)
    n_f = int(rng.integers(*FURNITURE))
    furniture = np.column_stack([rng.uniform(0.3, size[0] - 0.3, n_f), rng.uniform(0.3, size[1] - 0.3, n_f),
                                 rng.uniform(0.3, 1.8, n_f)])  # fmt: skip
    rcs = rng.uniform(0.2, 2.0, n_f)
    n_d = int(rng.integers(*DIFFUSE))
    face = rng.integers(0, 6, n_d)
    pts = rng.uniform(0, 1, (n_d, 3)) * size
    pts[np.arange(n_d), face // 2] = np.where(face % 2 == 0, 0.0, size[face // 2])
    furniture = np.vstack([furniture, pts])
    rcs = np.concatenate([rcs, rng.uniform(0.0025, 0.025, n_d)])
    lam = profile.wavelength
    # The link in any direction, both ends at least 0.4 m from the walls.
    for _ in range(100):
        tx_c = np.array([*rng.uniform(0.4, size[:2] - 0.4), rng.uniform(*HEIGHT)])
        angle = rng.uniform(-np.pi, np.pi)
        link = rng.uniform(*LINK)
        rx_xy = tx_c[:2] + link * np.array([np.cos(angle), np.sin(angle)])
        if np.all(rx_xy >= 0.4) and np.all(rx_xy <= size[:2] - 0.4):
            break
    else:  # a small room: along its diagonal
        tx_c = np.array([0.4, 0.4, rng.uniform(*HEIGHT)])
        rx_xy = size[:2] - 0.4
    rx_c = np.array([*rx_xy, rng.uniform(*HEIGHT)])
    d = rx_c[:2] - tx_c[:2]
    across = np.array([-d[1], d[0], 0.0]) / np.linalg.norm(d)
    tx = _array(tx_c, across, profile.n_tx, lam / 2)
    rx = _array(rx_c, across, profile.n_rx, lam / 2, groups=2 if profile.n_rx > 3 else 1)
    spot = tx_c[:2] + rng.uniform(*ALONG) * d + across[:2] * rng.normal(0, ACROSS_SD)
    spot = np.clip(spot, 0.6, size[:2] - 0.6)
    return place_person(rng, name, size, refl, furniture, rcs, tx, rx, spot, across, SNR_DB)


def gain(rng: np.random.Generator) -> float:
    """The sequence's extra receiver gain (linear amplitude factor)."""
    return float(10 ** (rng.normal(0, GAIN_DB_SD) / 20))


__all__ = ["draw_environment", "gain"]
