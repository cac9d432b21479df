"""Writes ESP32 CSI log lines from known CSI, in every format ``csipose convert esp32`` reads.

The tables here are typed from ESP-IDF's "Wi-Fi Channel State Information" guide
(wifi-vendor-features.rst) as its rows read, independently of
``csipose.data.convert.esp32_layout``, so a transcription slip in either shows.
"""

from __future__ import annotations

import numpy as np

#: Classic table (ESP32, S2, S3, C3): (secondary, sig_mode, cwb, stbc) -> LLTF, HT-LTF,
#: STBC-HT-LTF sub-carrier indices as the guide writes them, and its total bytes.
CLASSIC = {
    (0, 0, 0, 0): ("0~31,-32~-1", None, None, 128),
    (0, 1, 0, 0): ("0~31,-32~-1", "0~31,-32~-1", None, 256),
    (0, 1, 0, 1): ("0~31,-32~-1", "0~31,-32~-1", "0~31,-32~-1", 384),
    (2, 0, 0, 0): ("0~63", None, None, 128),
    (2, 1, 0, 0): ("0~63", "0~63", None, 256),
    (2, 1, 0, 1): ("0~63", "0~62", "0~62", 380),
    (2, 1, 1, 0): ("0~63", "0~63,-64~-1", None, 384),
    (2, 1, 1, 1): ("0~63", "0~60,-60~-1", "0~60,-60~-1", 612),
    (1, 0, 0, 0): ("-64~-1", None, None, 128),
    (1, 1, 0, 0): ("-64~-1", "-64~-1", None, 256),
    (1, 1, 0, 1): ("-64~-1", "-62~-1", "-62~-1", 376),
    (1, 1, 1, 0): ("-64~-1", "0~63,-64~-1", None, 384),
    (1, 1, 1, 1): ("-64~-1", "0~60,-60~-1", "0~60,-60~-1", 612),
}
#: ESP32-C5 table, secondary channel none (the entries csipose can place) and HT40.
C5 = {
    ("none", 106): ("0~26,-26~-1", None, None),
    ("none", 114): (None, "0~28,-28~-1", None),
    ("none", 228): (None, "0~28,-28~-1", "0~28,-28~-1"),
    ("below", 234): (None, "0~58,-58~-1", None),
    ("above", 468): (None, "0~58,-58~-1", "0~58,-58~-1"),
}
FIELD_NAMES = ("lltf", "htltf", "stbc-htltf")


def runs(text: str) -> list[int]:
    """'0~31,-32~-1' -> [0, ..., 31, -32, ..., -1]."""
    out: list[int] = []
    for part in text.split(","):
        a, _, b = part.strip().partition("~")
        out += list(range(int(a), int(b) + 1))
    return out


def csipose_index(k: int, secondary: int, forty: bool) -> int:
    """The guide's index of a 20 MHz field -> csipose's, about the primary channel's centre."""
    if forty:
        return k
    return k - 32 if secondary == 2 else k + 32 if secondary == 1 else k


def buffer(rng: np.random.Generator, fields: tuple[str | None, ...]) -> tuple[np.ndarray, dict]:
    """Random int8 bytes for these fields in order, and {(field, guide index): complex}."""
    known, parts = {}, []
    for name, text in zip(FIELD_NAMES, fields, strict=False):
        if text is None:
            continue
        idx = runs(text)
        b = rng.integers(-128, 128, size=2 * len(idx)).astype(np.int64)
        parts.append(b)
        for j, k in enumerate(idx):
            known[(name, k)] = complex(b[2 * j + 1], b[2 * j])  # imaginary byte first
    return np.concatenate(parts), known


def tool_line(values, *, mac="3C:71:BF:6D:2A:78", secondary=0, sig_mode=0, cwb=0, stbc=0, ts=1000,
              length=None, unsigned=False) -> str:  # fmt: skip
    """ESP32-CSI-Tool: 24 fields then [i q ...] space-separated, trailing space."""
    n = len(values) if length is None else length
    f = ["AP", mac, -50, 11, sig_mode, 0, cwb, 1, 1, 0, stbc, 0, 0, -93, 0, 6, secondary, ts, 0, 100, 0, 0,
         f"{ts * 1e-6:.6f}", n]  # fmt: skip
    v = [int(x) % 256 if unsigned else int(x) for x in values]
    return "CSI_DATA," + ",".join(map(str, f)) + ",[" + " ".join(map(str, v)) + " ]"


def esp_csi_line(values, *, mac="1A:00:00:00:00:00", seq=0, secondary=0, sig_mode=0, cwb=0, stbc=0, ts=1000,
                 length=None, first_word=0) -> str:  # fmt: skip
    """esp-csi csi_recv (ESP32/S2/S3/C3): 23 fields then "[b,b,...]"."""
    n = len(values) if length is None else length
    f = [
        seq,
        mac,
        -40,
        11,
        sig_mode,
        0,
        cwb,
        0,
        1,
        0,
        stbc,
        0,
        0,
        -95,
        0,
        11,
        secondary,
        ts,
        0,
        80,
        0,
        n,
        first_word,
    ]
    return (
        "CSI_DATA," + ",".join(map(str, f)) + ',"[' + ",".join(str(int(x)) for x in values) + ']"'
    )


def c5_line(values, *, mac="1A:00:00:00:00:00", seq=0, ts=1000, length=None) -> str:
    """esp-csi csi_recv built for the ESP32-C5 / C6: 13 fields then "[b,b,...]"."""
    n = len(values) if length is None else length
    f = [seq, mac, -40, 11, -95, 3, 40, 11, ts, 80, 0, n, 0]
    return (
        "CSI_DATA," + ",".join(map(str, f)) + ',"[' + ",".join(str(int(x)) for x in values) + ']"'
    )


def wrap(line: str, before=(), after=()) -> str:
    """The line as one cell of a CSV a collection script wrote (quotes doubled)."""
    cell = '"' + line.replace('"', '""') + '"' if '"' in line else line
    return ",".join([*map(str, before), cell, *map(str, after)])
