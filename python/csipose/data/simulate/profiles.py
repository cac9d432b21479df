"""Hardware profiles the simulator imitates."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from csipose.signal import ESP32_NULL, SUBCARRIERS


@dataclass(frozen=True)
class Profile:
    """Radio, antennas, timing and labels of one kind of capture."""

    name: str
    description: str
    carrier_hz: float
    spacing_hz: float
    subcarriers: tuple[int, ...]
    null_subcarriers: tuple[int, ...]
    n_tx: int
    n_rx: int
    packets_per_frame: int
    frame_rate_hz: float
    labels: str  # "h36m17-3d" or "body25_15-2d"
    default_window: dict[str, Any]
    max_people: int = 1
    snr_db: tuple[float, float] = (25.0, 35.0)
    image_size: tuple[int, int] = (1280, 720)
    hardware: dict[str, Any] = field(default_factory=dict)

    @property
    def packet_rate_hz(self) -> float:
        return self.frame_rate_hz * self.packets_per_frame

    @property
    def wavelength(self) -> float:
        return 299_792_458.0 / self.carrier_hz


PROFILES = {
    "mmfi": Profile(
        name="mmfi",
        description="MM-Fi-like: Atheros 1 TX x 3 RX, 114 subcarriers at 5 GHz / 40 MHz, "
        "10 packets per frame, 10 frames/s; H36M-17 3-D joints in the camera frame (metres)",
        carrier_hz=5.31e9,
        spacing_hz=312_500.0,
        subcarriers=tuple(SUBCARRIERS["atheros-ht40"]),
        null_subcarriers=(),
        n_tx=1,
        n_rx=3,
        packets_per_frame=10,
        frame_rate_hz=10.0,
        labels="h36m17-3d",
        default_window={"length": 1, "stride": 1, "label": "first"},
        hardware={"tool": "simulated Atheros CSI Tool", "bandwidth_mhz": 40, "band_ghz": 5},
    ),
    "esp32": Profile(
        name="esp32",
        description="ESP32-like: 1 x 1, 64 LLTF subcarriers at 2.4 GHz / 20 MHz with the null "
        "ones (zero), one packet per frame at 20 frames/s, 0..5 people; windows of 20 frames "
        "for counting",
        carrier_hz=2.437e9,
        spacing_hz=312_500.0,
        subcarriers=tuple(SUBCARRIERS["esp32-lltf"]),
        null_subcarriers=tuple(ESP32_NULL),
        n_tx=1,
        n_rx=1,
        packets_per_frame=1,
        frame_rate_hz=20.0,
        labels="h36m17-3d",
        default_window={"length": 20, "stride": 20, "label": "last"},
        max_people=5,
        snr_db=(20.0, 30.0),
        hardware={"tool": "simulated ESP32-CSI-Tool", "bandwidth_mhz": 20, "band_ghz": 2.4},
    ),
    "wiflow": Profile(
        name="wiflow",
        description="WiFlow-like: 3 TX x 6 RX (two 3-antenna receivers) = 18 links x 30 "
        "Intel-5300 subcarrier groups = 540 features, one packet per frame at 20 frames/s, "
        "windows of 20 frames ([540, 20]); BODY25-15 2-D keypoints in pixels / 1000",
        carrier_hz=5.32e9,
        spacing_hz=312_500.0,
        subcarriers=tuple(SUBCARRIERS["intel5300-ht20"]),
        null_subcarriers=(),
        n_tx=3,
        n_rx=6,
        packets_per_frame=1,
        frame_rate_hz=20.0,
        labels="body25_15-2d",
        default_window={"length": 20, "stride": 5, "label": "last"},
        hardware={"tool": "simulated Intel 5300", "bandwidth_mhz": 20, "band_ghz": 5},
    ),
}
