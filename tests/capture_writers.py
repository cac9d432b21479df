"""Writers of small capture files from known CSI, so the capture converters are tested
without any recording from outside the repository.

Each writer follows the byte layout its tool logs (the layouts the converters and
csiread read); the tests convert the file and compare with the CSI written."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _bits_le(values: list[tuple[int, int]]) -> int:
    """Pack (value, width) fields into one little-endian bit stream (the first field
    in the lowest bits), as the NICs' CSI matrices are packed."""
    acc, pos = 0, 0
    for value, width in values:
        acc |= (value & ((1 << width) - 1)) << pos
        pos += width
    return acc


def intel5300_bfee(
    csi: np.ndarray,
    *,
    timestamp: int = 0,
    bfee_count: int = 0,
    rssi: tuple[int, int, int] = (40, 41, 42),
    noise: int = -92,
    agc: int = 30,
    antenna_sel: int = 0b100100,
    rate: int = 0x4101,
) -> bytes:
    """One Linux 802.11n CSI Tool bfee record (code 0xbb) holding ``csi`` complex
    [30, n_rx, n_tx] with integer parts in -128..127.

    Body layout (read_bfee.c): u32 timestamp_low, u16 bfee_count, 2 reserved, u8 Nrx,
    u8 Ntx, u8 rssi_a/b/c, s8 noise, u8 agc, u8 antenna_sel, u16 len, u16 rate, then
    the len-byte matrix: per subcarrier 3 skipped bits, then per (rx, tx) with tx
    fastest an 8-bit real and an 8-bit imaginary part. antenna_sel 0b100100 is the
    identity receive-antenna permutation.
    """
    s, n_rx, n_tx = csi.shape
    assert s == 30
    fields: list[tuple[int, int]] = []
    for k in range(30):
        fields.append((0, 3))
        for r in range(n_rx):
            for t in range(n_tx):
                fields += [(int(csi[k, r, t].real), 8), (int(csi[k, r, t].imag), 8)]
    length = (30 * (3 + 16 * n_rx * n_tx) + 7) // 8
    matrix = _bits_le(fields).to_bytes(length, "little")
    body = (
        timestamp.to_bytes(4, "little")
        + bfee_count.to_bytes(2, "little")
        + b"\0\0"
        + bytes([n_rx, n_tx, *rssi, noise & 0xFF, agc, antenna_sel])
        + length.to_bytes(2, "little")
        + rate.to_bytes(2, "little")
        + matrix
    )
    return (1 + len(body)).to_bytes(2, "big") + b"\xbb" + body


def intel5300_file(path: Path, packets: list[np.ndarray], **kwargs) -> Path:
    """A .dat log of one bfee record per packet (timestamps 1 ms apart)."""
    path.write_bytes(
        b"".join(
            intel5300_bfee(c, timestamp=1000 * i, bfee_count=i, **kwargs)
            for i, c in enumerate(packets)
        )
    )
    return path


def random_csi(rng: np.random.Generator, shape: tuple[int, ...], lo: int, hi: int) -> np.ndarray:
    """Complex CSI with integer real and imaginary parts in lo..hi (inclusive)."""
    return rng.integers(lo, hi + 1, shape) + 1j * rng.integers(lo, hi + 1, shape)


def atheros_record(
    csi: np.ndarray,
    *,
    endian: str = "little",
    timestamp: int = 0,
    channel: int = 2437,
    rate: int = 0x80,
    noise: int = 0,
    rssi: tuple[int, int, int, int] = (50, 45, 46, 47),
    payload: bytes = b"",
) -> bytes:
    """One Atheros CSI Tool record holding ``csi`` complex [tones, nr, nc] (tones 56 or
    114) with integer parts in -512..511.

    Layout (the tool's read_log_file.m / read_csi.c): u16 length, then a 25-byte header
    (u64 timestamp, u16 csi_len, u16 channel, u8 err_info, u8 noise_floor, u8 rate,
    u8 bandwidth, u8 num_tones, u8 nr, u8 nc, u8 rssi x 4, u16 payload_len) in the
    logging host's byte order; then the CSI: a little-endian stream of 10-bit two's
    complement values, per tone, per nr, per nc (the order csiread decodes):
    imaginary, then real; then the payload.
    """
    tones, nr, nc = csi.shape
    fields: list[tuple[int, int]] = []
    for k in range(tones):
        for r in range(nr):
            for c in range(nc):
                fields += [(int(csi[k, r, c].imag), 10), (int(csi[k, r, c].real), 10)]
    csi_len = (20 * tones * nr * nc + 7) // 8
    blob = _bits_le(fields).to_bytes(csi_len, "little")
    e = endian

    def u16(v: int) -> bytes:
        return v.to_bytes(2, e)  # type: ignore[arg-type]

    header = (
        timestamp.to_bytes(8, e)  # type: ignore[arg-type]
        + u16(csi_len)
        + u16(channel)
        + bytes([0, noise, rate, 1 if tones == 114 else 0, tones, nr, nc, *rssi])
        + u16(len(payload))
    )
    assert len(header) == 25
    return u16(25 + csi_len + len(payload)) + header + blob + payload


def atheros_file(path: Path, packets: list[np.ndarray], **kwargs) -> Path:
    path.write_bytes(
        b"".join(atheros_record(c, timestamp=1000 * i, **kwargs) for i, c in enumerate(packets))
    )
    return path


def nexmon_packet(csi: np.ndarray, *, seq: int, core: int = 0, stream: int = 0, rssi: int = -50,
                  chanspec: int = 0x1001, chip: int = 0x4345) -> bytes:  # fmt: skip
    """The Ethernet frame nexmon_csi sends for one (frame, core, stream): Ethernet
    (source address b"NEXMON"), IPv4 and UDP headers (42 bytes), the 18-byte header of
    nexmon_csi pull request 46 (u16 magic 0x1111, s8 rssi, u8 frame control, 6-byte
    source MAC, u16 sequence, u16 core | stream << 3, u16 chanspec, u16 chip; little
    endian), then ``csi`` (complex, FFT order) as int16 I/Q pairs, the bcm4339 /
    bcm43455c0 format."""
    eth = b"\xff" * 6 + b"NEXMON" + b"\x08\x00"
    ip_udp = bytes(20) + (5500).to_bytes(2, "big") + (5500).to_bytes(2, "big") + bytes(4)
    header = (
        b"\x11\x11"
        + bytes([rssi & 0xFF, 0x08])
        + bytes.fromhex("020304050607")
        + seq.to_bytes(2, "little")
        + (core | stream << 3).to_bytes(2, "little")
        + chanspec.to_bytes(2, "little")
        + chip.to_bytes(2, "little")
    )
    iq = np.stack([csi.real, csi.imag], axis=-1).astype("<i2").tobytes()
    return eth + ip_udp + header + iq


def pcap_file(path: Path, frames: list[bytes], *, t0: int = 1_700_000_000) -> Path:
    """A little-endian pcap (microsecond timestamps, Ethernet link type) of ``frames``,
    one every 10 ms."""
    out = [
        bytes.fromhex("d4c3b2a1")
        + (2).to_bytes(2, "little")
        + (4).to_bytes(2, "little")
        + bytes(8)
        + (65535).to_bytes(4, "little")
        + (1).to_bytes(4, "little")
    ]
    for i, f in enumerate(frames):
        sec, usec = t0 + (i * 10_000) // 1_000_000, (i * 10_000) % 1_000_000
        out.append(
            sec.to_bytes(4, "little")
            + usec.to_bytes(4, "little")
            + len(f).to_bytes(4, "little") * 2
            + f
        )
    path.write_bytes(b"".join(out))
    return path
