"""Environments: a box-shaped room with reflective walls, furniture, the
transmitter and receiver antennas, where people stand, and a camera."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from csipose.data.simulate.profiles import Profile

#: Diffuse scattering points on the room's surfaces.
DIFFUSE = 400


@dataclass(frozen=True)
class Environment:
    """Everything static about one room (lengths in metres, world frame z up)."""

    name: str
    size: np.ndarray  # [3] width (x), depth (y), height (z)
    reflectivity: np.ndarray  # [6] amplitude reflection of walls x=0, x=W, y=0, y=D, floor, ceiling
    furniture: np.ndarray  # [F, 3] point scatterers
    furniture_rcs: np.ndarray  # [F] radar cross-sections (m^2)
    tx: np.ndarray  # [n_tx, 3] antenna positions
    rx: np.ndarray  # [n_rx, 3]
    spot: np.ndarray  # [2] where people act, on the floor
    heading: float  # the direction people face (radians from +x)
    camera: np.ndarray  # [3] camera centre
    camera_target: np.ndarray  # [3] what the camera looks at
    focal_px: float
    snr_db: float

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "size_m": self.size.round(3).tolist(),
            "wall_reflectivity": self.reflectivity.round(3).tolist(),
            "furniture": self.furniture.round(3).tolist(),
            "furniture_rcs_m2": self.furniture_rcs.round(3).tolist(),
            "tx": self.tx.round(4).tolist(),
            "rx": self.rx.round(4).tolist(),
            "spot": self.spot.round(3).tolist(),
            "heading_rad": round(self.heading, 4),
            "camera": self.camera.round(3).tolist(),
            "snr_db": round(self.snr_db, 2),
        }


def _array(
    center: np.ndarray, axis: np.ndarray, n: int, spacing: float, groups: int = 1
) -> np.ndarray:
    """``n`` antennas in ``groups`` linear arrays along ``axis``, ``spacing`` apart; groups 0.5 m apart."""
    per = n // groups
    out = []
    for g in range(groups):
        c = center + axis * (g - (groups - 1) / 2) * 0.5
        out += [c + axis * (i - (per - 1) / 2) * spacing for i in range(per)]
    return np.array(out)


def make_environment(profile: Profile, index: int, seed: int) -> Environment:
    """Room ``index`` (deterministic in ``seed`` and ``index``): size 4-7 x 5-8 x 2.6-3.2 m,
    wall reflectivity 0.25-0.65, 3-6 furniture scatterers, the transmitter and
    receiver on opposite sides 3.5-6 m apart, people acting between them, a
    camera 3.1 m in front of them."""
    rng = np.random.default_rng([seed, 1000 + index])
    size = np.array([rng.uniform(4, 7), rng.uniform(5, 8), rng.uniform(2.6, 3.2)])
    refl = rng.uniform(0.25, 0.65, 6)
    n_f = int(rng.integers(3, 7))
    furniture = np.column_stack([rng.uniform(0.3, size[0] - 0.3, n_f), rng.uniform(0.3, size[1] - 0.3, n_f),
                                 rng.uniform(0.3, 1.8, n_f)])  # fmt: skip
    rcs = rng.uniform(0.2, 2.0, n_f)
    # Diffuse scattering off rough surfaces: DIFFUSE points on the walls, floor and ceiling.
    face = rng.integers(0, 6, DIFFUSE)
    pts = rng.uniform(0, 1, (DIFFUSE, 3)) * size
    pts[np.arange(DIFFUSE), face // 2] = np.where(face % 2 == 0, 0.0, size[face // 2])
    furniture = np.vstack([furniture, pts])
    rcs = np.concatenate([rcs, rng.uniform(0.0025, 0.025, DIFFUSE)])
    lam = profile.wavelength
    tx_c = np.array([size[0] * rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.8), rng.uniform(0.9, 1.4)])
    link = rng.uniform(3.5, min(6.0, size[1] - 1.1))
    rx_c = np.array([size[0] * rng.uniform(0.3, 0.7), tx_c[1] + link, rng.uniform(0.9, 1.4)])
    d = rx_c[:2] - tx_c[:2]
    across = np.array([-d[1], d[0], 0.0]) / np.linalg.norm(d)  # arrays lie across the link
    tx = _array(tx_c, across, profile.n_tx, lam / 2)
    rx = _array(rx_c, across, profile.n_rx, lam / 2, groups=2 if profile.n_rx > 3 else 1)
    t = rng.uniform(0.4, 0.6)
    spot = tx_c[:2] + t * d + across[:2] * rng.normal(0, 0.25)
    return place_person(rng, f"E{index + 1:02d}", size, refl, furniture, rcs, tx, rx, spot, across,
                        profile.snr_db)  # fmt: skip


def place_person(rng: np.random.Generator, name: str, size: np.ndarray, refl: np.ndarray, furniture: np.ndarray,
                 rcs: np.ndarray, tx: np.ndarray, rx: np.ndarray, spot: np.ndarray, across: np.ndarray,
                 snr_db: tuple[float, float]) -> Environment:  # fmt: skip
    """The room with its person on ``spot``, facing the camera, which looks across the
    link; draws (in this order) the facing side, the focal length and the SNR."""
    face = across[:2] * (1.0 if rng.random() < 0.5 else -1.0)
    heading = float(np.arctan2(face[1], face[0]))
    camera = np.array([*(spot + 3.1 * face), 1.2])
    camera[:2] = np.clip(camera[:2], 0.2, size[:2] - 0.2)
    return Environment(
        name=name,
        size=size,
        reflectivity=refl,
        furniture=furniture,
        furniture_rcs=rcs,
        tx=tx,
        rx=rx,
        spot=spot,
        heading=heading,
        camera=camera,
        camera_target=np.array([*spot, 1.0]),
        focal_px=float(rng.uniform(900, 1100)),
        snr_db=float(rng.uniform(*snr_db)),
    )


def camera_frame(env: Environment) -> np.ndarray:
    """Rotation [3, 3] from world to camera axes (x right, y down, z forward), as MM-Fi's GT."""
    z = env.camera_target - env.camera
    z = z / np.linalg.norm(z)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x = x / np.linalg.norm(x)
    y = np.cross(z, x)
    return np.stack([x, y, z])


def to_camera(env: Environment, joints: np.ndarray) -> np.ndarray:
    """World joints [..., 3] in the camera frame (metres; z is depth)."""
    return (joints - env.camera) @ camera_frame(env).T


def to_image(
    env: Environment, cam: np.ndarray, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Pinhole projection of camera-frame points: pixels [..., 2] and in-view flags [...]."""
    w, h = size
    z = np.maximum(cam[..., 2], 1e-6)
    px = np.stack(
        [env.focal_px * cam[..., 0] / z + w / 2, env.focal_px * cam[..., 1] / z + h / 2], -1
    )
    inside = (
        (cam[..., 2] > 0.1)
        & (px[..., 0] >= 0)
        & (px[..., 0] < w)
        & (px[..., 1] >= 0)
        & (px[..., 1] < h)
    )
    return px, inside
