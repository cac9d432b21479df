"""Intel 5300 captures (Linux 802.11n CSI Tool, ``log_to_file`` .dat): ``csipose convert intel5300``.

The log is a run of records ``[u16 big-endian length][code][length - 1 bytes]``:
code 0xbb is a beamforming-feedback (bfee) record with the CSI of one packet
(30 subcarrier groups x Nrx x Ntx, signed 8-bit I/Q), code 0xc1 the MPDU
header logged with it (connector_log 0x4). csiread decodes the bfee records
(undoing the NIC's receive-antenna permutation, as read_bf_file.m does);
this module checks the framing first and reads the MPDU headers itself.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from csipose.data.convert import _capture as cap
from csipose.signal import SUBCARRIERS

BFEE, MPDU = 0xBB, 0xC1
#: csiread reads a record body into a 1024-byte stack buffer.
_CSIREAD_BUFFER = 1024
#: iwlwifi rate_n_flags bit for a 40 MHz (HT40) packet; csiread tests the same bit.
_RATE_HT40 = 0x800


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scaled",
        action="store_true",
        help="store csiread's get_scaled_csi (CSI scaled by RSSI, AGC and noise to the channel "
        "matrix in sqrt(SNR) units) instead of the raw CSI the NIC reported",
    )
    cap.add_arguments(parser)


def _scan(data: bytes, src: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Check every record's framing; the bfee records' offsets and the MPDU fields."""
    bfee: list[int] = []
    mpdu_of: list[int] = []  # per bfee: the MPDU record logged since the previous bfee, or -1
    macs: list[bytes] = []
    seqs: list[int] = []
    last_mpdu, skipped, oversized = -1, 0, False
    notes: dict[str, Any] = {}
    pos, size = 0, len(data)
    while pos < size:
        length = int.from_bytes(data[pos : pos + 2], "big") if size - pos >= 3 else None
        if length is None or pos + 2 + length > size:
            notes |= cap.truncated(src, args, pos, size, len(bfee), "record")
            break
        if length == 0:
            raise cap.bad(
                src, f"the record at byte {pos} has length 0: corrupt, or not a CSI Tool log"
            )
        code, body = data[pos + 2], data[pos + 3 : pos + 2 + length]
        if code == BFEE:
            _check_bfee(src, pos, body)
            bfee.append(pos)
            mpdu_of.append(last_mpdu)
            last_mpdu = -1
        elif code == MPDU:
            if len(body) < 24:
                raise cap.bad(src, f"the MPDU record at byte {pos} has {len(body)} bytes, < 24")
            oversized |= len(body) > _CSIREAD_BUFFER
            macs.append(body[10:16])
            seqs.append(int.from_bytes(body[22:24], "little"))
            last_mpdu = len(macs) - 1
        else:
            skipped += 1
        pos += 2 + length
    if not bfee:
        raise cap.bad(src, "no CSI (0xbb bfee) records: not a Linux 802.11n CSI Tool log")
    if skipped:
        notes["skipped_records"] = skipped
    return {
        "bfee": bfee,
        "mpdu_of": mpdu_of,
        "macs": macs,
        "seqs": seqs,
        "oversized": oversized,
        "notes": notes,
    }


def _check_bfee(src: Path, pos: int, body: bytes) -> None:
    if not 20 <= len(body) <= _CSIREAD_BUFFER:
        raise cap.bad(src, f"the bfee record at byte {pos} has {len(body)} bytes, not 20..1024")
    nrx, ntx = body[8], body[9]
    if not (1 <= nrx <= 3 and 1 <= ntx <= 3):
        raise cap.bad(src, f"the bfee record at byte {pos} has Nrx={nrx}, Ntx={ntx}, not 1..3")
    matrix = body[16] | body[17] << 8
    if matrix != 60 * nrx * ntx + 12 or 20 + matrix > len(body):
        raise cap.bad(
            src,
            f"the bfee record at byte {pos} holds a {matrix}-byte beamforming matrix in "
            f"{len(body) - 20} bytes; {60 * nrx * ntx + 12} expected for {nrx}x{ntx}",
        )


def read(src: Path, data: bytes, args: argparse.Namespace) -> cap.Capture:
    import csiread

    scan = _scan(data, src, args)
    bfee = scan["bfee"]
    # Records csiread would read past its buffer: give it only the bfee records.
    chunks = None
    if scan["oversized"]:
        chunks = (data[p : p + 2 + int.from_bytes(data[p : p + 2], "big")] for p in bfee)
    with cap.csiread_input(src, chunks) as path:
        # Buffers sized for every bfee and MPDU record csiread will meet (its default guess
        # from the file size can be too small).
        size = len(bfee) + len(scan["macs"])
        d = csiread.Intel(path, nrxnum=3, ntxnum=3, pl_size=0, if_report=False, bufsize=size)
        d.seek(path, 0, len(bfee))
        # A fresh reader: get_scaled_csi accumulates into csiread's RSS buffer on every call.
        csi = d.get_scaled_csi() if args.scaled else d.csi
    if d.count != len(bfee):
        raise cap.bad(src, f"csiread read {d.count} of the {len(bfee)} bfee records")
    ht40 = (d.rate & _RATE_HT40) != 0
    if ht40.any() and not ht40.all():
        raise cap.bad(
            src,
            f"{ht40.sum()} of {len(ht40)} packets are 40 MHz, the rest 20 MHz; "
            "their subcarrier groups differ, convert them apart",
        )
    bw = 40 if ht40[0] else 20
    n_rx, n_tx = int(d.Nrx.max()), int(d.Ntx.max())
    extra = {
        "timestamp": cap.seconds(d.timestamp_low, 1e-6, wrap_bits=32),
        "bfee_count": d.bfee_count.astype(np.int32),
        "n_rx": d.Nrx.astype(np.int8),
        "n_tx": d.Ntx.astype(np.int8),
        "rssi": np.stack([d.rssi_a, d.rssi_b, d.rssi_c], axis=1).astype(np.int16),
        "noise": d.noise.astype(np.int16),
        "agc": d.agc.astype(np.int16),
        "rate": d.rate.astype(np.int32),
        "perm": d.perm.astype(np.int8),
    }
    notes = dict(scan["notes"])
    mpdu_of = np.asarray(scan["mpdu_of"])
    if (mpdu_of >= 0).all():
        extra["src_mac"] = np.frombuffer(b"".join(scan["macs"]), np.uint8).reshape(-1, 6)[mpdu_of]
        extra["seq_ctrl"] = np.asarray(scan["seqs"], np.int32)[mpdu_of]
    else:
        notes["mpdu"] = (
            f"an MPDU record precedes {(mpdu_of >= 0).sum()} of {len(mpdu_of)} "
            "packets; src_mac and seq_ctrl are not stored"
        )
    if (d.Nrx < n_rx).any() or (d.Ntx < n_tx).any():
        notes["zero_padded_packets"] = int(((d.Nrx < n_rx) | (d.Ntx < n_tx)).sum())
    return cap.Capture(
        csi=cap.tx_major(csi[:, :, :n_rx, :n_tx]),
        n_tx=n_tx,
        n_rx=n_rx,
        antenna_order=f"{cap.TX_MAJOR}; rx = receive antenna A, B, C after undoing the NIC's "
        "permutation (perm), tx = transmit stream; links a packet did not have "
        "(its n_rx, n_tx below the file's) are zero",
        subcarrier_indices=SUBCARRIERS[f"intel5300-ht{bw}"],
        amplitude_units=(
            "csiread get_scaled_csi: channel matrix in sqrt(SNR) units (RSSI, AGC, noise)"
            if args.scaled
            else "raw CSI magnitude, signed 8-bit I/Q units as the NIC reported"
        ),
        hardware_profile={
            "name": f"intel5300-ht{bw}",
            "tool": "Linux 802.11n CSI Tool (log_to_file)",
            "nic": "Intel WiFi Link 5300",
            "bandwidth_mhz": bw,
            "csi": "scaled (csiread get_scaled_csi)" if args.scaled else "raw",
            "timestamp": "NIC 1 MHz clock (timestamp_low, wraps undone), seconds",
        },
        extra=extra,
        notes=notes,
    )


CONVERTER = cap.converter(
    "intel5300",
    "Intel 5300 CSI (Linux 802.11n CSI Tool .dat), one packet per row",
    add_arguments,
    read,
)
