"""Atheros CSI Tool captures (recv_csi .dat): ``csipose convert atheros``.

The log is a run of records ``[u16 length][25-byte header][CSI][payload]``
with ``length = 25 + csi_len + payload_len``; the header gives the packet's
tones (56 at 20 MHz, 114 at 40 MHz), receive (nr) and transmit (nc) antenna
counts, channel and RSSI. Byte order is the logging host's (little-endian on
x86, big-endian on the MIPS routers the tool runs on); ``--endian auto``
picks the one under which the first record's length adds up. csiread
decodes the 10-bit I/Q values; this module checks the framing first.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from csipose.data.convert import _capture as cap
from csipose.signal import SUBCARRIERS

_HEADER = 25
#: csiread reads a record's CSI and its payload into 4096-byte stack buffers.
_CSIREAD_BUFFER = 4096
_ENDIANS = ("auto", "little", "big")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--endian",
        choices=_ENDIANS,
        default="auto",
        help="byte order of the log (default auto: the one under which the first record adds up)",
    )
    cap.add_arguments(parser)


def _u16(b: bytes, endian: str) -> int:
    return int.from_bytes(b[:2], endian)


def _frames_ok(data: bytes, endian: str) -> bool:
    """Whether the first record's length equals its header + CSI + payload lengths."""
    if len(data) < 2 + _HEADER:
        return False
    h = data[2 : 2 + _HEADER]
    return _u16(data, endian) == _HEADER + _u16(h[8:10], endian) + _u16(h[23:25], endian)


def _endian(src: Path, data: bytes, choice: str) -> str:
    cap.check_choice(src, "endian", choice, _ENDIANS)
    if choice != "auto":
        return choice
    for endian in ("little", "big"):
        if _frames_ok(data, endian):
            return endian
    raise cap.bad(
        src,
        "the first record's length does not add up in either byte order: "
        "not an Atheros CSI Tool log",
    )


def _scan(data: bytes, src: Path, args: argparse.Namespace, endian: str) -> dict[str, Any]:
    """Check every record's framing; which records carry CSI, and whether any is too big for csiread."""
    has_csi: list[bool] = []
    starts: list[int] = []
    oversized = False
    notes: dict[str, Any] = {}
    pos, size = 0, len(data)
    while pos < size:
        length = _u16(data[pos : pos + 2], endian) if size - pos >= 2 else None
        if length is None or pos + 2 + length > size:
            notes |= cap.truncated(src, args, pos, size, len(starts), "record")
            break
        h = data[pos + 2 : pos + 2 + _HEADER]
        csi_len, payload_len = _u16(h[8:10], endian), _u16(h[23:25], endian)
        if length != _HEADER + csi_len + payload_len:
            raise cap.bad(
                src,
                f"the record at byte {pos} has length {length}, but its header "
                f"says {_HEADER} + {csi_len} (CSI) + {payload_len} (payload)",
            )
        tones, nr, nc = h[16], h[17], h[18]
        if nr > 3 or nc > 3:  # csiread refuses these even in records without CSI
            raise cap.bad(src, f"the record at byte {pos} has nr={nr}, nc={nc}; at most 3 each")
        if csi_len:
            need = -(-tones * nr * nc * 20 // 8)  # 10-bit real + 10-bit imaginary per value
            if tones not in (56, 114) or not (1 <= nr <= 3 and 1 <= nc <= 3):
                raise cap.bad(
                    src,
                    f"the record at byte {pos} has {tones} tones, nr={nr}, nc={nc}; "
                    "expected 56 or 114 tones and 1..3 antennas",
                )
            if not need <= csi_len <= _CSIREAD_BUFFER:
                raise cap.bad(
                    src,
                    f"the record at byte {pos} has {csi_len} CSI bytes; "
                    f"{need} expected for {tones} tones x {nr} x {nc}",
                )
        oversized |= payload_len > _CSIREAD_BUFFER
        starts.append(pos)
        has_csi.append(csi_len > 0)
        pos += 2 + length
    if not any(has_csi):
        raise cap.bad(
            src, "no record carries CSI: an empty capture, or not an Atheros CSI Tool log"
        )
    return {
        "starts": starts,
        "has_csi": np.asarray(has_csi),
        "oversized": oversized,
        "notes": notes,
    }


def _without_payload(data: bytes, pos: int, endian: str) -> bytes:
    """A record with its payload dropped (lengths rewritten), for csiread's fixed buffers."""
    h = bytearray(data[pos + 2 : pos + 2 + _HEADER])
    csi_len = _u16(h[8:10], endian)
    h[23:25] = (0).to_bytes(2, endian)
    length = (_HEADER + csi_len).to_bytes(2, endian)
    return length + bytes(h) + data[pos + 2 + _HEADER : pos + 2 + _HEADER + csi_len]


def _channel(mhz: int) -> int | None:
    if mhz == 2484:
        return 14
    if 2412 <= mhz <= 2472:
        return (mhz - 2407) // 5
    if 5000 < mhz < 5900:
        return (mhz - 5000) // 5
    return None


def read(src: Path, data: bytes, args: argparse.Namespace) -> cap.Capture:
    import csiread

    endian = _endian(src, data, args.endian)
    scan = _scan(data, src, args, endian)
    chunks = None
    if scan["oversized"]:
        chunks = (_without_payload(data, p, endian) for p in scan["starts"])
    keep = scan["has_csi"]
    tones = np.asarray([data[p + 2 + 16] for p in scan["starts"]])[keep]
    if len(np.unique(tones)) > 1:
        raise cap.bad(
            src,
            f"packets with {', '.join(map(str, np.unique(tones)))} tones: their "
            "subcarriers differ, convert them apart",
        )
    with cap.csiread_input(src, chunks) as path:
        d = csiread.Atheros(
            path,
            nrxnum=3,
            ntxnum=3,
            pl_size=0,
            tones=int(tones[0]),
            if_report=False,
            bufsize=len(keep),
        )
        d.seek(path, 0, len(scan["starts"]), endian)
    if d.count != len(keep):
        raise cap.bad(src, f"csiread read {d.count} of the {len(keep)} records")
    nr, nc = d.nr[keep], d.nc[keep]
    n_rx, n_tx = int(nr.max()), int(nc.max())
    bw = 20 if tones[0] == 56 else 40
    freq = np.unique(d.tx_channel[keep])
    notes = dict(scan["notes"])
    if not keep.all():
        notes["packets_without_csi_dropped"] = int((~keep).sum())
    if (nr < n_rx).any() or (nc < n_tx).any():
        notes["zero_padded_packets"] = int(((nr < n_rx) | (nc < n_tx)).sum())
    profile: dict[str, Any] = {
        "name": f"atheros-ht{bw}",
        "tool": "Atheros CSI Tool (recv_csi)",
        "bandwidth_mhz": bw,
        "endian": endian,
        "timestamp": "the driver's receive time in microseconds, as seconds",
    }
    if len(freq) == 1:
        profile |= {"frequency_mhz": int(freq[0]), "channel": _channel(int(freq[0]))}
    return cap.Capture(
        csi=cap.tx_major(d.csi[keep][:, :, :n_rx, :n_tx]),
        n_tx=n_tx,
        n_rx=n_rx,
        antenna_order=f"{cap.TX_MAJOR}; rx = receive chain (nr), tx = transmit chain (nc); "
        "links a packet did not have (its nr, nc below the file's) are zero",
        subcarrier_indices=SUBCARRIERS[f"atheros-ht{bw}"],
        amplitude_units="raw CSI magnitude, signed 10-bit I/Q units as the NIC reported",
        hardware_profile=profile,
        extra={
            "timestamp": cap.seconds(d.timestamp[keep], 1e-6),
            "frequency_mhz": d.tx_channel[keep].astype(np.int32),
            "rate": d.Rate[keep].astype(np.int16),
            "rssi": d.rssi[keep].astype(np.int16),
            "rssi_chain": np.stack([d.rssi_1, d.rssi_2, d.rssi_3], axis=1)[keep].astype(np.int16),
            "n_rx": nr.astype(np.int8),
            "n_tx": nc.astype(np.int8),
        },
        notes=notes,
    )


CONVERTER = cap.converter(
    "atheros",
    "Atheros CSI Tool CSI (.dat, 56 or 114 tones), one packet per row",
    add_arguments,
    read,
)
