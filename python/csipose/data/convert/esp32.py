"""ESP32-CSI-Tool captures (CSV lines ``CSI_DATA,...,[...]``): ``csipose convert esp32``.

Each line holds ``CSI_DATA``, 24 fields (role, MAC, the ``rx_ctrl`` fields
of ESP-IDF's ``wifi_csi_info_t``, the tool's clock, the buffer length) and
the CSI buffer in brackets: int8 pairs, imaginary part first, as ESP-IDF
stores them. The tool prints the first 128 bytes, the LLTF: 64 subcarriers,
null ones included, whose order depends on the secondary channel (see
``csipose.signal.SUBCARRIERS``: "esp32-lltf", "esp32-lltf-ht40"); versions
that print the whole buffer have their HT-LTF dropped (counted).

The parser is csipose's own, checked against csiread's ESP32 reader on the
real sample: csiread's (marked experimental by its author) fails on the CSV
header line the tool prints first and on any other line of the serial log,
raises a numpy error on a cut-off last line, zero-pads short CSI lists, and
reads the unsigned bytes some versions of the tool print (values 0..255) as
positive numbers.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from csipose.data.convert import _capture as cap
from csipose.signal import ESP32_NULL, SUBCARRIERS

#: The 25 fields before the CSI list, in ESP32-CSI-Tool's order (its CSV header).
FIELDS = (
    "role",
    "mac",
    "rssi",
    "rate",
    "sig_mode",
    "mcs",
    "bandwidth",
    "smoothing",
    "not_sounding",
    "aggregation",
    "stbc",
    "fec_coding",
    "sgi",
    "noise_floor",
    "ampdu_cnt",
    "channel",
    "secondary_channel",
    "local_timestamp",
    "ant",
    "sig_len",
    "rx_state",
    "real_time_set",
    "real_timestamp",
    "len",
)
_INTEGER = set(FIELDS) - {"role", "mac", "real_timestamp"}
_LLTF_BYTES = 128
_SECONDARY = {0: "none", 1: "above", 2: "below"}


def _parse_line(src: Path, number: int, line: str) -> tuple[list[str], list[int]]:
    """The 24 fields after ``CSI_DATA`` and the CSI bytes (LLTF) of one line."""
    head, bracket, rest = line.partition("[")
    fields = head.rstrip().rstrip(",").split(",")[1:]
    if not bracket or len(fields) != len(FIELDS):
        raise cap.bad(
            src,
            f"line {number}: {len(fields) + 1} fields before the CSI list; "
            f"ESP32-CSI-Tool writes {len(FIELDS) + 1} then [i q i q ...]",
        )
    listed, close, tail = rest.partition("]")
    if not close or tail.strip():
        raise cap.bad(src, f"line {number}: the CSI list does not end with ']'")
    try:
        values, length = [int(v) for v in listed.split()], int(fields[-1])
    except ValueError as e:
        raise cap.bad(src, f"line {number}: the CSI list or len is not integers: {e}") from None
    # The tool prints the first 128 bytes; some versions printed the whole buffer (len bytes).
    if len(values) < _LLTF_BYTES or len(values) not in (_LLTF_BYTES, length):
        raise cap.bad(
            src,
            f"line {number}: {len(values)} CSI values; {_LLTF_BYTES} (the LLTF) "
            f"or the buffer length {length} expected",
        )
    return fields, values


def _lines(src: Path, data: bytes, args: argparse.Namespace) -> tuple[list, list, dict[str, Any]]:
    """Every ``CSI_DATA`` line's fields and CSI bytes; a cut-off last line is the truncated tail."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as e:
        raise cap.bad(src, f"not an ESP32-CSI-Tool CSV (byte {e.start} is not ASCII)") from None
    lines = text.splitlines()
    fields, values, notes = [], [], {}
    skipped = 0
    for number, line in enumerate(lines, 1):
        if not line.startswith("CSI_DATA"):
            # Blank lines and the tool's CSV header are expected; anything else is serial-log
            # output between the CSI lines, counted.
            if line.strip() and not line.startswith("type,role,"):
                skipped += 1
            continue
        if number == len(lines) and "]" not in line and not text.endswith(("\n", "\r")):
            notes |= cap.truncated(src, args, len(data) - len(line), len(data), len(fields), "line")
            break
        f, v = _parse_line(src, number, line)
        fields.append(f)
        values.append(v)
    if not fields:
        raise cap.bad(src, "no CSI_DATA lines: an empty capture, or not an ESP32-CSI-Tool CSV")
    notes["skipped_lines"] = skipped
    notes["lines_with_ht_ltf_dropped"] = sum(len(v) > _LLTF_BYTES for v in values)
    return fields, [v[:_LLTF_BYTES] for v in values], notes


def _int8(src: Path, values: list[list[int]]) -> tuple[np.ndarray, str]:
    """The CSI bytes as int8: printed signed (-128..127) or, by some tool versions, unsigned."""
    v = np.asarray(values, np.int64)
    if v.min() >= -128 and v.max() <= 127:
        return v.astype(np.int8), "signed"
    if v.min() >= 0 and v.max() <= 255:
        return v.astype(np.uint8).view(np.int8), "unsigned (two's complement undone)"
    raise cap.bad(src, f"CSI values from {v.min()} to {v.max()}: neither int8 nor uint8 bytes")


def read(src: Path, data: bytes, args: argparse.Namespace) -> cap.Capture:
    fields, values, notes = _lines(src, data, args)
    raw, printed = _int8(src, values)
    csi = raw[:, 1::2] + 1j * raw[:, ::2]  # the imaginary byte first
    col = {name: [f[i] for f in fields] for i, name in enumerate(FIELDS)}
    try:
        num = {k: np.asarray(v, np.int64) for k, v in col.items() if k in _INTEGER}
        num["real_timestamp"] = np.asarray(col["real_timestamp"], np.float64)
        mac = np.asarray([[int(b, 16) for b in m.split(":")] for m in col["mac"]], np.uint8)
    except ValueError as e:
        raise cap.bad(src, f"a field is not a number or a MAC address: {e}") from None
    if mac.shape[1:] != (6,):
        raise cap.bad(src, "the mac field is not six hex bytes")
    secondary = np.unique(num["secondary_channel"])
    if len(secondary) != 1 or int(secondary[0]) not in _SECONDARY:
        raise cap.bad(
            src,
            f"secondary channel {secondary.tolist()}: one of 0 (none), 1 (above), "
            "2 (below) expected for the whole file, as the LLTF order depends on it",
        )
    name = "esp32-lltf" if secondary[0] == 0 else "esp32-lltf-ht40"
    channels = np.unique(num["channel"])
    profile: dict[str, Any] = {
        "name": name,
        "tool": "ESP32-CSI-Tool",
        "field": "LLTF (legacy long training field), the first 128 bytes of the CSI buffer",
        "bandwidth_mhz": 20,
        "channel_width_mhz": 20 if secondary[0] == 0 else 40,
        "secondary_channel": _SECONDARY[int(secondary[0])],
        "printed_bytes": printed,
        "first_word": "ESP32 hardware may report the first 4 bytes (entries 0 and 1) invalid "
        "(wifi_csi_info_t.first_word_invalid); the tool does not record it, they are kept",
        "timestamp": "rx_ctrl.timestamp (local_timestamp, microseconds, wraps undone), seconds",
    }
    if len(channels) == 1:
        profile["channel"] = int(channels[0])
    return cap.Capture(
        csi=csi[:, None, :],
        n_tx=1,
        n_rx=1,
        antenna_order="one link (the ESP32 has one antenna chain)",
        subcarrier_indices=SUBCARRIERS[name],
        amplitude_units="raw CSI magnitude, signed 8-bit I/Q units as ESP-IDF reported",
        hardware_profile=profile,
        extra={
            "timestamp": cap.seconds(num["local_timestamp"], 1e-6, wrap_bits=32),
            "real_timestamp": num["real_timestamp"],
            "rssi": num["rssi"].astype(np.int16),
            "noise_floor": num["noise_floor"].astype(np.int16),
            "rate": num["rate"].astype(np.int16),
            "mcs": num["mcs"].astype(np.int16),
            "sig_mode": num["sig_mode"].astype(np.int8),
            "cwb": num["bandwidth"].astype(np.int8),
            "src_mac": mac,
        },
        null_subcarriers=ESP32_NULL,
        notes=notes,
    )


CONVERTER = cap.converter(
    "esp32",
    "ESP32-CSI-Tool CSV (CSI_DATA lines, LLTF), one packet per row",
    cap.add_arguments,
    read,
)
