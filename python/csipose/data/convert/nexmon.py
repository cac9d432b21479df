"""nexmon_csi captures (Broadcom, UDP packets in a pcap): ``csipose convert nexmon``.

nexmon_csi sends one UDP packet per received Wi-Fi frame, receive core and
spatial stream, from the Ethernet source address ``NEXMON``: a header
(magic, source MAC, sequence control, core/stream, chanspec, chip) and
``bandwidth x 3.2`` CSI values in FFT order (bins 0..N/2-1, then -N/2..-1).
How the values are packed depends on the chip (int16 I/Q on the bcm4339 and
bcm43455c0, a packed floating-point format on the bcm4358 and bcm4366c0),
which the packets do not reliably say, hence ``--chip``. Two header
versions exist: the original (4-byte magic 0x11111111) and the one with
RSSI and frame control (2-byte magic 0x1111, nexmon_csi pull request 46);
csiread reads both (Nexmon, NexmonPull46). This module checks the pcap's
framing first and gives csiread only the nexmon_csi packets.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from csipose.data.convert import _capture as cap

CHIPS = ("4339", "43455c0", "4358", "4366c0")
#: The chip of nexmon_csi's own example capture (its README and utils/matlab/csireader.m).
DEFAULT_CHIP = "4358"
_BANDWIDTHS = ("auto", "20", "40", "80")
#: Ethernet + IPv4 + UDP headers, then the 18-byte nexmon_csi header.
_UDP, _NEXMON = 42, 18
_PCAP_MAGIC = {  # -> (byte order, nanosecond timestamps)
    b"\xd4\xc3\xb2\xa1": ("little", False),
    b"\xa1\xb2\xc3\xd4": ("big", False),
    b"\x4d\x3c\xb2\xa1": ("little", True),
    b"\xa1\xb2\x3c\x4d": ("big", True),
}
#: Guard and DC subcarriers of HT/VHT frames (802.11n/ac); legacy 20 MHz frames also leave ±27, ±28 empty.
NULL_SUBCARRIERS = {
    20: [-32, -31, -30, -29, 0, 29, 30, 31],
    40: [*range(-64, -58), -1, 0, 1, *range(59, 64)],
    80: [*range(-128, -122), -1, 0, 1, *range(123, 128)],
}
#: Broadcom (802.11ac-style) chanspec bandwidth field, bits 11-13.
_CHANSPEC_BW = {0x1000: 20, 0x1800: 40, 0x2000: 80, 0x2800: 160}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--chip",
        choices=CHIPS,
        default=DEFAULT_CHIP,
        help=f"the Broadcom chip that recorded the capture (default {DEFAULT_CHIP}, the chip of "
        "nexmon_csi's example capture; a Raspberry Pi 3B+/4 is 43455c0). It decides how the CSI "
        "values are unpacked and cannot be read from the file",
    )
    parser.add_argument(
        "--bandwidth",
        choices=_BANDWIDTHS,
        default="auto",
        help="channel bandwidth in MHz (default auto: from the CSI length, 3.2 values per MHz); "
        "a given value must match it, and then allows < 256 bytes of padding after the CSI",
    )
    parser.add_argument(
        "--group-antennas",
        action="store_true",
        help="join the packets of one Wi-Fi frame (consecutive, same sequence number, one per "
        "core and spatial stream) into one packet with antennas = streams x cores; frames "
        "missing a core or stream are dropped and counted",
    )
    cap.add_arguments(parser)


def _version(body: bytes) -> str | None:
    """The nexmon_csi header version of a packet's UDP payload, by its magic bytes."""
    if body[42:46] == b"\x11" * 4:
        return "original"
    return "pull46" if body[42:44] == b"\x11" * 2 else None


def _scan(data: bytes, src: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Check the pcap framing; the nexmon_csi packets, their CSI length and header version."""
    if data[:4] == b"\x0a\x0d\x0d\x0a":
        raise cap.bad(src, "a pcapng file; save it as pcap (e.g. editcap -F pcap)")
    if len(data) < 24 or data[:4] not in _PCAP_MAGIC:
        raise cap.bad(src, f"not a pcap file (magic {data[:4].hex()})")
    endian, nano = _PCAP_MAGIC[data[:4]]
    linktype = int.from_bytes(data[20:24], endian)
    if linktype != 1:
        raise cap.bad(src, f"pcap link type {linktype}; nexmon_csi packets are Ethernet (1)")
    records: list[tuple[int, int]] = []
    versions, lengths = set(), set()
    skipped, notes = 0, {}
    pos, size = 24, len(data)
    while pos < size:
        caplen = int.from_bytes(data[pos + 8 : pos + 12], endian) if size - pos >= 16 else -1
        if caplen < 0 or pos + 16 + caplen > size:
            notes |= cap.truncated(src, args, pos, size, len(records), "packet")
            break
        body = data[pos + 16 : pos + 16 + caplen]
        if caplen >= _UDP + _NEXMON and body[6:12] == b"NEXMON":
            wirelen = int.from_bytes(data[pos + 12 : pos + 16], endian)
            if wirelen != caplen:
                raise cap.bad(
                    src,
                    f"the packet at byte {pos} was cut to {caplen} of {wirelen} "
                    "bytes by the capture's snap length",
                )
            versions.add(_version(body))
            lengths.add(caplen - _UDP - _NEXMON)
            records.append((pos, caplen))
        else:
            skipped += 1
        pos += 16 + caplen
    if not records:
        raise cap.bad(
            src,
            "no nexmon_csi packets (Ethernet source NEXMON): an empty capture, or not nexmon_csi",
        )
    if len(versions) != 1 or None in versions:
        raise cap.bad(
            src, "the nexmon_csi packets do not all start with magic 0x11111111, or all with 0x1111"
        )
    if skipped:
        notes["skipped_packets"] = skipped
    return {
        "records": records,
        "nano": nano,
        "version": versions.pop(),
        "lengths": lengths,
        "notes": notes,
    }


def _values(src: Path, lengths: set[int], bandwidth: str, notes: dict[str, Any]) -> int:
    """CSI values per packet (64, 128 or 256): from the CSI length, or ``--bandwidth``, under
    which packets may carry up to 255 bytes of padding (as nexmon_csi's Python decoder allows)."""
    if bandwidth == "auto":
        if len(lengths) != 1 or next(iter(lengths)) not in (256, 512, 1024):
            raise cap.bad(
                src,
                f"CSI of {sorted(lengths)} bytes; 64, 128 or 256 values of 4 bytes (20, 40 or "
                "80 MHz) expected in every packet (give --bandwidth for padded packets)",
            )
        return next(iter(lengths)) // 4
    nfft = int(bandwidth) * 32 // 10
    if min(lengths) < 4 * nfft or max(lengths) >= 4 * nfft + 256:
        raise cap.bad(
            src,
            f"--bandwidth {bandwidth} needs {4 * nfft} CSI bytes per packet (plus < 256 bytes "
            f"of padding); the packets hold {min(lengths)} to {max(lengths)}",
        )
    if max(lengths) > 4 * nfft:
        notes["padding_bytes_ignored"] = True
    return nfft


def _chanspec(cs: int) -> dict[str, Any]:
    """A Broadcom 802.11ac-style chanspec: centre and primary channel, bandwidth, band."""
    centre, bw, sideband = cs & 0xFF, _CHANSPEC_BW.get(cs & 0x3800), (cs & 0x0700) >> 8
    info: dict[str, Any] = {"chanspec": f"0x{cs:04x}", "centre_channel": centre}
    info["band"] = {0x0000: "2.4 GHz", 0xC000: "5 GHz"}.get(cs & 0xC000, "unknown")
    if bw is not None:
        # The primary 20 MHz channel: the lowest one in the block plus 4 per sideband step.
        info |= {"chanspec_bandwidth_mhz": bw, "channel": centre - (bw // 10 - 2) + 4 * sideband}
    return info


def _group(src: Path, core: np.ndarray, spatial: np.ndarray, seq: np.ndarray):
    """Packets of whole frames: ``[frames, streams * cores]`` packet indices (tx-major:
    stream = tx, core = rx), the streams and cores, and how many packets were dropped."""
    cores, streams = np.unique(core), np.unique(spatial)
    want = len(cores) * len(streams)
    slot = np.searchsorted(streams, spatial) * len(cores) + np.searchsorted(cores, core)
    edges = np.flatnonzero(np.diff(seq) != 0) + 1
    frames = [
        s + np.argsort(slot[s:e])
        for s, e in zip(np.r_[0, edges], np.r_[edges, len(seq)], strict=True)
        if e - s == want and len(np.unique(slot[s:e])) == want
    ]
    if not frames:
        raise cap.bad(
            src, f"--group-antennas: no frame has all {len(streams)} streams x {len(cores)} cores"
        )
    return np.asarray(frames), streams, cores, len(seq) - want * len(frames)


def read(src: Path, data: bytes, args: argparse.Namespace) -> cap.Capture:
    import csiread

    cap.check_choice(src, "chip", args.chip, CHIPS)
    cap.check_choice(src, "bandwidth", str(args.bandwidth), _BANDWIDTHS)
    scan = _scan(data, src, args)
    records, notes = scan["records"], dict(scan["notes"])
    nfft = _values(src, scan["lengths"], str(args.bandwidth), notes)
    bw = nfft * 10 // 32
    chunks = None
    if "skipped_packets" in notes:  # csiread loses its place on short foreign packets
        chunks = [data[:24], *(data[p : p + 16 + n] for p, n in records)]
    reader = csiread.NexmonPull46 if scan["version"] == "pull46" else csiread.Nexmon
    with cap.csiread_input(src, chunks) as path:
        d = reader(path, args.chip, bw, if_report=False, bufsize=len(records))
        d.seek(path, 24, len(records))
    if d.count != len(records):
        raise cap.bad(src, f"csiread read {d.count} of the {len(records)} nexmon_csi packets")
    extra = {
        "timestamp": d.sec.astype(np.float64) + d.usec * (1e-9 if scan["nano"] else 1e-6),
        "seq_ctrl": d.seq.astype(np.int32),
        "src_mac": d.src_addr.astype(np.uint8),
        "chanspec": d.chan_spec.astype(np.int32),
    }
    if scan["version"] == "pull46":
        extra |= {
            "rssi": d.rssi.astype(np.uint8).view(np.int8),
            "frame_control": d.fc.astype(np.uint8),
        }
    chanspecs, chips = np.unique(d.chan_spec), np.unique(d.chip_version)
    profile: dict[str, Any] = {
        "name": f"nexmon-bcm{args.chip}-{bw}mhz",
        "tool": "nexmon_csi",
        "chip": f"bcm{args.chip} (--chip; the packets' chip field reads "
        f"{', '.join(f'0x{c:04x}' for c in chips)})",
        "header": "original (magic 0x11111111)"
        if scan["version"] == "original"
        else "with RSSI and frame control (magic 0x1111, nexmon_csi pull request 46)",
        "bandwidth_mhz": bw,
        "subcarrier_order": "FFT order as recorded: bins 0..N/2-1, then -N/2..-1",
        "timestamp": "pcap capture time of the UDP packet, seconds since the epoch",
    }
    if len(chanspecs) == 1:
        profile |= _chanspec(int(chanspecs[0]))
    csi = d.csi[:, None, :]
    n_tx = n_rx = 1
    order = "one UDP packet = one (core, spatial stream) link; see the per-packet core, spatial"
    if args.group_antennas:
        idx, streams, cores, dropped = _group(src, d.core, d.spatial, d.seq)
        csi, n_tx, n_rx = d.csi[idx], len(streams), len(cores)
        order = (
            f"{cap.TX_MAJOR}; tx = spatial stream {streams.tolist()}, "
            f"rx = receive core {cores.tolist()}"
        )
        first = idx.min(axis=1)
        extra = {k: v[idx] if k == "rssi" else v[first] for k, v in extra.items()}
        notes["grouped_antennas"] = {"frames": len(idx), "packets_dropped": dropped}
    else:
        extra |= {"core": d.core.astype(np.int8), "spatial": d.spatial.astype(np.int8)}
    return cap.Capture(
        csi=csi,
        n_tx=n_tx,
        n_rx=n_rx,
        antenna_order=order,
        subcarrier_indices=[*range(nfft // 2), *range(-nfft // 2, 0)],
        amplitude_units=f"CSI magnitude as csiread unpacks the bcm{args.chip} format",
        hardware_profile=profile,
        extra=extra,
        null_subcarriers=NULL_SUBCARRIERS[bw],
        notes=notes,
    )


CONVERTER = cap.converter(
    "nexmon",
    "nexmon_csi CSI (Broadcom, UDP packets in a pcap), one UDP packet per row",
    add_arguments,
    read,
)
