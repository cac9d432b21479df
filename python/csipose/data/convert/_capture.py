"""What the real-capture converters (esp32, intel5300, atheros, nexmon) share.

A format module reads its file into a :class:`Capture` (complex CSI, one row
per packet, plus per-packet metadata) and hands it to :func:`write`, which
turns it into store rows: amplitude ``|csi|`` and phase ``angle(csi)``
(radians, wrapped, float32) in ``[frames, antennas, subcarriers, packets]``,
``--packets-per-frame`` consecutive packets per row (default 1), the MM-Fi
repair only where values are not finite, no labels (``person_count`` -1).

The format modules check a file's framing themselves before csiread sees it:
csiread reads records into fixed stack buffers without checking their
lengths (a foreign or corrupt file can crash the interpreter, a short last
record is silently dropped or decoded from stale bytes), and calls C
``exit()`` when it cannot open a file that exists.
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from csipose.data.convert import Converter
from csipose.data.convert._common import open_store, progress
from csipose.errors import DataFormatError
from csipose.signal import MMFI_RULE, sanitize

#: Frames converted per batch: bounds the float32 copies held beside the complex CSI.
_BATCH = 4096
#: Keys of an argparse namespace that are not conversion options.
_NOT_OPTIONS = {"src", "out", "func", "command", "format", "overwrite"}
PHASE_UNITS = "rad: numpy.angle(csi), wrapped to [-pi, pi], not unwrapped"
TX_MAJOR = "tx-major: antenna = tx * n_rx + rx"


@dataclass
class Capture:
    """The packets of one capture file, one row per packet, before they become store rows."""

    csi: np.ndarray  # complex [n_packets, antennas, subcarriers], antennas tx-major
    n_tx: int
    n_rx: int
    antenna_order: str  # what tx and rx mean for this hardware, and the flattening
    subcarrier_indices: list[int]
    amplitude_units: str
    hardware_profile: dict[str, Any]
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # per packet: [n_packets, ...]
    null_subcarriers: list[int] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)  # what the reader skipped or assumed
    # Labels (ESP32 --label / --labels): per packet count (-1 unknown) and recording index;
    # each recording becomes a store sequence (named group_names[i], action group_actions[i]).
    person_count: np.ndarray | None = None
    groups: np.ndarray | None = None
    group_names: list[str] = field(default_factory=list)
    group_actions: list[str] = field(default_factory=list)
    splits: dict[str, tuple[dict[str, list[int]], str]] = field(
        default_factory=dict
    )  # parts by group


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every capture converter takes."""
    parser.add_argument(
        "--packets-per-frame",
        type=int,
        default=1,
        metavar="P",
        help="consecutive packets per store row (default 1); the last n mod P packets are dropped",
    )
    parser.add_argument(
        "--allow-truncated",
        action="store_true",
        help="convert the complete packets of a file that ends inside a packet (default: refuse)",
    )
    for name in ("environment", "subject", "action"):
        parser.add_argument(f"--{name}", default="unknown", help=f"{name} name (default unknown)")


def converter(
    name: str,
    help: str,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    read: Callable[[Path, bytes, argparse.Namespace], Capture],
) -> Converter:
    """The Converter of a capture format whose module reads a file's bytes into a Capture."""

    def run(src: Path, out: Path, args: argparse.Namespace) -> Path:
        data = read_source(src)
        return write(read(src, data, args), src, out, args, name, data)

    return Converter(name, help, add_arguments, run)


def bad(src: Path, problem: str) -> DataFormatError:
    return DataFormatError(f"{src}: {problem}")


def read_source(src: Path) -> bytes:
    """The bytes of ``src``; a missing path is FileNotFoundError, an empty or unreadable one a DataFormatError."""
    if not src.exists():
        raise FileNotFoundError(f"{src}: no such file")
    if not src.is_file():
        raise bad(src, "not a regular file")
    try:
        data = src.read_bytes()
    except OSError as e:
        raise bad(src, f"cannot read: {e}") from e
    if not data:
        raise bad(src, "the file is empty")
    return data


def check_choice(src: Path, option: str, value: Any, choices: Iterable[Any]) -> None:
    """Options set through :func:`csipose.data.convert.convert` bypass argparse's checks."""
    choices = list(choices)
    if value not in choices:
        raise bad(src, f"--{option} {value!r} is not one of {', '.join(map(str, choices))}")


def truncated(
    src: Path, args: argparse.Namespace, offset: int, size: int, complete: int, what: str
) -> dict[str, Any]:
    """The file ends inside the ``what`` at byte ``offset``, after ``complete`` CSI packets:
    refuse, or (``--allow-truncated``) return the note saying what was dropped."""
    cut = f"the file ends inside the {what} at byte {offset} ({size - offset} of its bytes are present)"
    if complete == 0:
        raise bad(src, f"{cut} before any complete CSI packet: not this format, or cut short")
    if not getattr(args, "allow_truncated", False):
        raise bad(
            src,
            f"{cut}: a truncated capture. The {complete} complete CSI packets before "
            "it can be converted with --allow-truncated",
        )
    return {"truncated_at_byte": offset, "truncated_bytes_dropped": size - offset}


@contextmanager
def csiread_input(src: Path, chunks: Iterable[bytes] | None) -> Iterator[str]:
    """The path csiread reads: ``src`` itself, or (``chunks`` given) a temporary file
    holding only the records csiread can read without overflowing its buffers."""
    if chunks is None:
        yield str(src)
        return
    with tempfile.TemporaryDirectory(prefix="csipose-capture-") as tmp:
        path = Path(tmp) / "records"
        with open(path, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
        yield str(path)


def tx_major(csi: np.ndarray) -> np.ndarray:
    """``[n, subcarriers, rx, tx]`` (csiread's layout) -> ``[n, tx * n_rx + rx, subcarriers]``."""
    n, s, r, t = csi.shape
    return np.ascontiguousarray(csi.transpose(0, 3, 2, 1).reshape(n, t * r, s))


def seconds(counter: np.ndarray, scale: float, wrap_bits: int | None = None) -> np.ndarray:
    """A hardware clock in ``scale`` seconds per tick as float64 seconds, undoing
    wrap-arounds of a ``wrap_bits``-bit counter (a step backwards is one wrap)."""
    t = np.asarray(counter).astype(np.int64)
    if wrap_bits is not None:
        t = t % (1 << wrap_bits)  # also reads a counter printed as a signed number
        wraps = np.concatenate([[0], np.cumsum(np.diff(t) < 0)])
        t = t + wraps * (1 << wrap_bits)
    return t * scale


def _options(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in vars(args).items() if k not in _NOT_OPTIONS and not callable(v)}


def _frames(a: np.ndarray, start: int, stop: int, p: int) -> np.ndarray:
    """Rows ``start..stop`` of per-packet ``a`` grouped ``p`` packets per frame: ``[frames, p, ...]``."""
    return a[start * p : stop * p].reshape(stop - start, p, *a.shape[1:])


def write(
    capture: Capture, src: Path, out: Path, args: argparse.Namespace, converter: str, data: bytes
) -> Path:
    """Write ``capture`` (read from ``src``, whose bytes are ``data``) as a store at ``out``."""
    p = args.packets_per_frame
    if not isinstance(p, int) or isinstance(p, bool) or p < 1:
        raise bad(src, f"--packets-per-frame must be an integer >= 1, got {p!r}")
    n = len(capture.csi)
    n_frames = n // p
    if n_frames == 0:
        raise bad(src, f"{n} CSI packets: fewer than --packets-per-frame {p}, nothing to store")
    finite = bool(np.isfinite(capture.csi).all())
    csi = {
        "layout": ["frame", "antenna", "subcarrier", "packet"],
        "antennas": {"n_tx": capture.n_tx, "n_rx": capture.n_rx, "order": capture.antenna_order},
        "subcarrier_indices": [int(i) for i in capture.subcarrier_indices],
        "null_subcarriers": [int(i) for i in capture.null_subcarriers],
        "packets_per_frame": p,
        "packets": {
            "read": n,
            "frames": n_frames,
            "dropped_remainder": n - n_frames * p,
            "grouping": "consecutive packets in file order; per-packet arrays keep a packet axis",
        },
        "units": {"amplitude": capture.amplitude_units, "phase": PHASE_UNITS},
        "hardware_profile": capture.hardware_profile,
        "capture": capture.notes,
    }
    window = {"length": 1, "stride": 1, "label": "first"}
    if capture.person_count is not None and p == 1:
        # Labelled captures: CountNet's 20-packet windows, labelled by their last packet.
        window = {"length": 20, "stride": 20, "label": "last"}
    with open_store(
        out, src, args, converter=converter, options=_options(args),
        csi=csi, labels=None, default_window=window,
    ) as w:  # fmt: skip
        w.provenance |= {
            "source_bytes": len(data),
            "source_sha256": hashlib.sha256(data).hexdigest(),
        }
        names = {k: w.code(k, getattr(args, k)) for k in ("environment", "subject", "action")}
        sequence = w.code("sequence", src.name)
        if capture.groups is not None:
            used = set(
                np.unique(capture.groups).tolist()
            )  # names of empty groups stay out of the tables
            seq_codes = np.asarray(
                [
                    w.code("sequence", g) if i in used else -1
                    for i, g in enumerate(capture.group_names)
                ]
            )
            act_codes = np.asarray(
                [
                    w.code("action", a) if i in used else -1
                    for i, a in enumerate(capture.group_actions)
                ]
            )
            for name, (parts, definition) in capture.splits.items():
                w.add_split(
                    name, {k: [int(seq_codes[g]) for g in v] for k, v in parts.items()}, definition
                )
        counts = {"repaired_values": 0, "repaired_frames": 0, "all_nan_frames": 0}
        counts |= {"constant_frames": 0, "excluded_frames": 0}
        batches = range(0, n_frames, _BATCH)
        for start in progress(batches, total=len(batches), desc=converter, unit="batch"):
            stop = min(start + _BATCH, n_frames)
            x = _frames(capture.csi, start, stop, p).transpose(0, 2, 3, 1)  # [f, A, S, P]
            amplitude, phase = np.abs(x).astype(np.float32), np.angle(x).astype(np.float32)
            valid = np.ones(stop - start, bool)
            if not finite:
                amplitude, phase, valid = _repair(amplitude, phase, counts)
            labelled = {}
            if capture.groups is not None and capture.person_count is not None:
                first = _frames(capture.groups, start, stop, p)[:, 0]
                labelled = {"sequence": seq_codes[first], "action": act_codes[first],
                            "person_count": _frames(capture.person_count, start, stop, p)[:, 0]}  # fmt: skip
            w.add_frames(
                amplitude=amplitude,
                phase=phase,
                frame_index=np.arange(start, stop, dtype=np.int32),
                valid=valid,
                extra={k: _frames(v, start, stop, p) for k, v in capture.extra.items()},
                **({"sequence": sequence, **names} | labelled),
            )
        rule = "none" if finite else f"{MMFI_RULE}; applied to amplitude and phase separately"
        w.repair = {"rule": rule, **counts}
    return out


def _repair(
    amplitude: np.ndarray, phase: np.ndarray, counts: dict[str, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The MM-Fi repair of both arrays (Inf CSI has an Inf amplitude but may have a finite
    phase); a frame is valid when both reports keep it. ``counts`` is updated in place."""
    touched = ~(np.isfinite(amplitude).all(axis=(1, 2, 3)) & np.isfinite(phase).all(axis=(1, 2, 3)))
    amplitude, ra = sanitize(amplitude)
    phase, rp = sanitize(phase)
    valid = ra.valid & rp.valid
    counts["repaired_values"] += ra.repaired_values + rp.repaired_values
    counts["repaired_frames"] += int(touched.sum())
    counts["all_nan_frames"] += len(np.union1d(ra.all_nan_frames, rp.all_nan_frames))
    counts["constant_frames"] += len(np.union1d(ra.constant_frames, rp.constant_frames))
    counts["excluded_frames"] += int((~valid).sum())
    return amplitude, phase, valid
