"""ESP32 CSI logs (``CSI_DATA`` lines): ``csipose convert esp32``.

Three line formats, told apart by the number of fields between ``CSI_DATA`` and
the CSI list (``--format`` forces one):

* ``esp32-csi-tool`` (ESP32-CSI-Tool, 24 fields: role, MAC, the ``rx_ctrl``
  fields, the tool's clock, len; then ``[i q i q ...]`` space-separated);
* ``esp-csi`` (Espressif's esp-csi ``csi_recv`` examples on the ESP32, S2, S3, C3,
  23 fields: seq, MAC, the ``rx_ctrl`` fields, len, first_word; then
  ``"[b,b,...]"`` quoted and comma-separated);
* ``esp-csi-c5`` (the same examples built for the ESP32-C5 / C6, 13 fields: seq,
  MAC, rssi, rate, noise_floor, fft_gain, agc_gain, channel, local_timestamp,
  sig_len, rx_state, len, first_word; then the quoted list).

A line may sit inside a CSV a collection script wrote: columns before
``CSI_DATA`` (host time, label, ...) and after the list (a Unix time, notes)
are read as ``before_i`` / ``after_i`` (float64 when every value is a number).

Which training fields (LLTF, HT-LTF, STBC-HT-LTF) a buffer holds and where each
subcarrier sits is read from each line's own fields (secondary channel,
sig_mode, cwb, stbc, len) through ESP-IDF's tables (``esp32_layout``); the C5
format has no secondary-channel field, so ``--secondary`` is needed where the
table depends on it. Lines of other stations are counted and left out
(``--mac``, default the most frequent source).

Buffers are int8 pairs, imaginary part first (ESP-IDF). The parser is
csipose's own; the value parsing is one numpy call per line after a regular
expression has checked that the list holds integers only.
"""

from __future__ import annotations

import argparse
import re
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from csipose.data.convert import _capture as cap
from csipose.data.convert import esp32_labels, esp32_layout
from csipose.signal import ESP32_NULL

#: ESP32-CSI-Tool's fields after CSI_DATA (its CSV header).
FIELDS = (
    "role", "mac", "rssi", "rate", "sig_mode", "mcs", "bandwidth", "smoothing", "not_sounding",
    "aggregation", "stbc", "fec_coding", "sgi", "noise_floor", "ampdu_cnt", "channel",
    "secondary_channel", "local_timestamp", "ant", "sig_len", "rx_state", "real_time_set",
    "real_timestamp", "len",
)  # fmt: skip
#: esp-csi's csi_recv (ESP32, S2, S3, C3): ``ets_printf`` in examples/get-started/csi_recv.
ESP_CSI_FIELDS = (
    "seq", "mac", "rssi", "rate", "sig_mode", "mcs", "bandwidth", "smoothing", "not_sounding",
    "aggregation", "stbc", "fec_coding", "sgi", "noise_floor", "ampdu_cnt", "channel",
    "secondary_channel", "local_timestamp", "ant", "sig_len", "rx_state", "len", "first_word",
)  # fmt: skip
#: esp-csi's csi_recv built for the ESP32-C5 / C6.
ESP_CSI_C5_FIELDS = (
    "seq", "mac", "rssi", "rate", "noise_floor", "fft_gain", "agc_gain", "channel",
    "local_timestamp", "sig_len", "rx_state", "len", "first_word",
)  # fmt: skip
FORMATS = {"esp32-csi-tool": FIELDS, "esp-csi": ESP_CSI_FIELDS, "esp-csi-c5": ESP_CSI_C5_FIELDS}
_BY_COUNT = {len(v): k for k, v in FORMATS.items()}
SEGMENTS = ("lltf", "lltf+htltf", "htltf")
_FLOAT = {"real_timestamp"}
_TEXT = {"role", "mac"}
#: A CSI list: integers separated by commas and/or whitespace, nothing else.
_MAC = re.compile(r"[0-9A-F]{2}(?::[0-9A-F]{2}){5}")
_NUMBER_CHARS = str.maketrans("", "", "0123456789- \t\n")
_LIST = re.compile(r"\s*-?\d{1,5}(?:(?:\s*,\s*|\s+)-?\d{1,5})*\s*,?\s*")


@dataclass
class Line:
    """The parts of one ``CSI_DATA`` line (``number`` counts from 1)."""

    number: int
    before: list[str]
    fields: list[str]
    values: str  # the text between the brackets
    after: list[str]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    cap.add_arguments(parser)
    parser.add_argument("--format", default="auto", help="auto (from the field count), "
                        + ", ".join(FORMATS))  # fmt: skip
    parser.add_argument("--chip", default="auto", help="auto, " + ", ".join(esp32_layout.CHIPS)
                        + " (needed for esp-csi-c5 lines, which the C5 and C6 both print)")  # fmt: skip
    parser.add_argument("--secondary", default="auto", help="auto (from the lines), none, above, "
                        "below: the secondary channel, for lines that do not carry it")  # fmt: skip
    parser.add_argument("--segments", default="lltf", help="lltf (default), lltf+htltf or htltf: "
                        "the training fields stored")  # fmt: skip
    parser.add_argument("--mac", default="auto", help="convert the packets of this source MAC "
                        "(default: the most frequent one); the others are counted")  # fmt: skip
    esp32_labels.add_arguments(parser)


def split_line(src: Path, number: int, line: str) -> Line:
    """A ``CSI_DATA`` line, perhaps inside a CSV row, cut into its parts."""
    at = line.find("CSI_DATA")
    before = [c.strip().strip('"') for c in line[:at].rstrip().rstrip('"').rstrip(",").split(",")]
    before = before if line[:at].strip() else []
    rest = line[at + len("CSI_DATA") :]
    open_, close = rest.find("["), rest.find("]")
    if open_ < 0 or close < open_:
        raise cap.bad(src, f"line {number}: field data: no CSI list '[...]' after CSI_DATA")
    head = rest[:open_].replace('"', "").strip()
    if head and not head.startswith(","):
        raise cap.bad(src, f"line {number}: field type: 'CSI_DATA' must be followed by ','")
    body = head.strip(",")
    fields = (
        (body.split(",") if " " not in body else [f.strip() for f in body.split(",")])
        if body
        else []
    )
    tail = rest[close + 1 :].replace('"', "").strip()
    if tail and not tail.startswith(","):
        raise cap.bad(
            src, f"line {number}: field data: text {tail[:20]!r} right after the CSI list"
        )
    after = [c.strip() for c in tail[1:].split(",")] if tail else []
    return Line(number, before, fields, rest[open_ + 1 : close], after)


def _format(src: Path, lines: list[Line], forced: str) -> str:
    counts = Counter(len(x.fields) for x in lines)
    if forced != "auto":
        cap.check_choice(src, "format", forced, FORMATS)
        want = len(FORMATS[forced])
        for x in lines:
            if len(x.fields) != want:
                raise cap.bad(src, f"line {x.number}: {len(x.fields)} fields before the CSI list; "
                              f"--format {forced} has {want} ({', '.join(FORMATS[forced])})")  # fmt: skip
        return forced
    for x in lines:
        if len(x.fields) not in _BY_COUNT:
            known = ", ".join(f"{len(v)} ({k})" for k, v in FORMATS.items())
            raise cap.bad(src, f"line {x.number}: {len(x.fields)} fields between CSI_DATA and the CSI "
                          f"list; known formats have {known}")  # fmt: skip
    if len(counts) > 1:
        first = next(x for x in lines if len(x.fields) != len(lines[0].fields))
        raise cap.bad(src, f"line {first.number}: {len(first.fields)} fields where line "
                      f"{lines[0].number} has {len(lines[0].fields)}: one format per file")  # fmt: skip
    return _BY_COUNT[len(lines[0].fields)]


def _columns(src: Path, lines: list[Line], names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The named fields as arrays: int64, float64 for the tool's clock, str for role and mac."""
    out: dict[str, np.ndarray] = {}
    for i, name in enumerate(names):
        raw = [x.fields[i] for x in lines]
        if name in _TEXT:
            out[name] = np.asarray(raw)
            continue
        try:
            out[name] = np.asarray(raw).astype(np.float64 if name in _FLOAT else np.int64)
        except ValueError:
            kind = "a number" if name in _FLOAT else "an integer"
            for x, v in zip(lines, raw, strict=True):
                try:
                    float(v) if name in _FLOAT else int(v)
                except ValueError:
                    raise cap.bad(
                        src, f"line {x.number}: field {name}: {v!r} is not {kind}"
                    ) from None
            raise
    return out


def _extra_columns(src: Path, lines: list[Line], side: str) -> tuple[dict[str, np.ndarray], dict]:
    """The CSV columns before / after the CSI_DATA line: float64 where all are numbers."""
    widths = Counter(len(getattr(x, side)) for x in lines)
    if len(widths) > 1:
        w0 = len(getattr(lines[0], side))
        odd = next(x for x in lines if len(getattr(x, side)) != w0)
        raise cap.bad(src, f"line {odd.number}: field {side}: {len(getattr(odd, side))} CSV columns "
                      f"{side} the CSI_DATA line where line {lines[0].number} has {w0}")  # fmt: skip
    arrays, text = {}, {}
    for i in range(next(iter(widths))):
        col = [getattr(x, side)[i] for x in lines]
        try:
            arrays[f"{side}_{i}"] = np.asarray(col).astype(np.float64)
        except ValueError:
            seen = sorted(set(col))
            text[f"{side}_{i}"] = {"distinct": len(seen), "first_values": seen[:10]}
    return arrays, text


def _values(src: Path, lines: list[Line]) -> list[np.ndarray]:
    """Each line's CSI list as int64. One numpy parse of all lists; when the value count
    or the characters do not add up (numpy stops silently at a bad token), a regular
    expression finds the first bad line."""
    big = "\n".join(x.values for x in lines).replace(",", " ")
    # Values per line: runs of digits, counted per line in numpy (no per-line Python split).
    b = np.frombuffer(big.encode("ascii"), np.uint8)
    digit = (b >= 48) & (b <= 57)
    starts = digit & ~np.concatenate([[False], digit[:-1]])
    counts = np.bincount(
        np.searchsorted(np.flatnonzero(b == 10), np.flatnonzero(starts)), minlength=len(lines)
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            flat = (
                np.fromstring(big, dtype=np.int64, sep=" ")
                if counts.sum()
                else np.zeros(0, np.int64)
            )
    except ValueError:  # numpy >= 2 raises where older numpy stopped with a warning
        flat = np.zeros(0, np.int64)
    squeezed = "\n" + "\n".join(x.values for x in lines).replace(" ", "").replace("\t", "")
    empty = ",," in squeezed or "\n," in squeezed  # an empty value between commas
    if big.translate(_NUMBER_CHARS) or empty or len(flat) != counts.sum() or (counts == 0).any():
        for x in lines:
            if not _LIST.fullmatch(x.values):
                bad = re.search(r"[^\d\s,-]|--|\d-|,\s*,", x.values)
                what = (
                    repr(x.values[bad.start() : bad.start() + 12])
                    if bad
                    else "an empty or malformed list"
                )
                raise cap.bad(
                    src, f"line {x.number}: field data: the CSI list is not integers ({what})"
                )
        raise cap.bad(src, "field data: a CSI list is not integers")
    return np.split(flat, np.cumsum(counts)[:-1])


def _int8(src: Path, v: np.ndarray) -> tuple[np.ndarray, str]:
    """The CSI bytes as int8: printed signed (-128..127) or, by some tool versions, unsigned."""
    if v.min() >= -128 and v.max() <= 127:
        return v.astype(np.int8), "signed"
    if v.min() >= 0 and v.max() <= 255:
        return v.astype(np.uint8).view(np.int8), "unsigned (two's complement undone)"
    raise cap.bad(
        src, f"field data: CSI values from {v.min()} to {v.max()}: neither int8 nor uint8 bytes"
    )


def _secondary(src: Path, args: argparse.Namespace) -> int | None:
    value = getattr(args, "secondary", "auto")
    cap.check_choice(src, "secondary", value, ["auto", *esp32_layout.SECONDARY.values()])
    return None if value == "auto" else {v: k for k, v in esp32_layout.SECONDARY.items()}[value]


def _layouts(src: Path, fmt: str, chip: str, col: dict[str, np.ndarray], n_values: np.ndarray,
             lines: list[Line], secondary: int | None) -> list[list[esp32_layout.Segment]]:  # fmt: skip
    """Each line's segments from its own fields and ESP-IDF's table for the chip."""
    family = (
        "classic" if chip == "auto" and fmt != "esp-csi-c5" else esp32_layout.CHIPS.get(chip, "?")
    )
    if fmt == "esp-csi-c5" and chip == "auto":
        raise cap.bad(src, "esp-csi-c5 lines are printed by the ESP32-C5 and the C6 alike: "
                      "say which with --chip esp32c5 (the C6 has no published table)")  # fmt: skip
    if family == "c6":
        raise cap.bad(src, f"--chip {chip}: ESP-IDF's 'Wi-Fi Channel State Information' guide publishes "
                      "no subcarrier table for the ESP32-C6, so its buffers cannot be placed on "
                      "subcarriers without guessing")  # fmt: skip
    if (family == "c5") != (fmt == "esp-csi-c5"):
        raise cap.bad(src, f"--chip {chip} does not print {fmt} lines")
    length = col["len"]
    cache: dict[tuple, list[esp32_layout.Segment]] = {}
    out = []
    for i, x in enumerate(lines):
        if family == "c5":
            sec = secondary
            key: tuple = (sec, int(length[i]))
        else:
            sec = int(col["secondary_channel"][i])
            if secondary is not None and sec != secondary:
                raise cap.bad(src, f"line {x.number}: field secondary_channel: {sec}, but --secondary "
                              f"{esp32_layout.SECONDARY[secondary]}")  # fmt: skip
            key = (sec, int(col["sig_mode"][i]), int(col["bandwidth"][i]), int(col["stbc"][i]),
                   int(length[i]))  # fmt: skip
        if key not in cache:
            cache[key] = _segments(src, x.number, family, key)
        segs = cache[key]
        total = 2 * sum(len(s.indices) for s in segs)
        if n_values[i] != total and not (fmt == "esp32-csi-tool" and n_values[i] == 128):
            if fmt == "esp-csi-c5" and n_values[i] * 2 + 2 == length[i]:
                raise cap.bad(src, f"line {x.number}: field data: {n_values[i]} values for len "
                              f"{length[i]}: the CSI_FORCE_LLTF print (12-bit values), not supported")  # fmt: skip
            raise cap.bad(src, f"line {x.number}: field data: {n_values[i]} CSI values; the table "
                          f"entry for len {length[i]} holds {total}")  # fmt: skip
        out.append(segs)
    return out


def _segments(src: Path, number: int, family: str, key: tuple) -> list[esp32_layout.Segment]:
    if family == "c5":
        sec, length = key
        segs = esp32_layout.c5(sec, length)
        if segs is None:
            need = " (give --secondary)" if sec is None and length in (106, 114, 228) else ""
            raise cap.bad(src, f"line {number}: field len: {length} bytes, secondary channel "
                          f"{esp32_layout.SECONDARY.get(sec, 'unknown') if sec is not None else 'unknown'}: "
                          f"no ESP32-C5 table entry csipose can place{need}")  # fmt: skip
        return segs
    sec, sig_mode, cwb, stbc, length = key
    entry = esp32_layout.classic(sec, sig_mode, cwb, stbc)
    what = f"secondary_channel {sec}, sig_mode {sig_mode}, bandwidth {cwb}, stbc {stbc}"
    if entry is None:
        raise cap.bad(src, f"line {number}: fields {what}: not an entry of ESP-IDF's CSI table")
    total, segs = entry
    if length != total:
        raise cap.bad(src, f"line {number}: field len: {length} bytes where the table gives {total} "
                      f"for {what} (a CSI config with fields disabled; not supported)")  # fmt: skip
    return segs


def _choose(src: Path, lines: list[Line], layouts: list, values: list[np.ndarray], wanted: str
            ) -> tuple[np.ndarray, list[esp32_layout.Segment], list[tuple[int, int]]]:  # fmt: skip
    """The kept fields of every line, stacked [n, 2 * entries], the segments and their spans."""
    fields = wanted.split("+")
    chosen, rows = None, []
    for x, segs, v in zip(lines, layouts, values, strict=True):
        by = {s.field: s for s in segs}
        pos, start = {}, 0
        for s in segs:
            pos[s.field] = start
            start += 2 * len(s.indices)
        missing = [f for f in fields if f not in by]
        if missing:
            have = "+".join(by) or "none"
            raise cap.bad(src, f"line {x.number}: field data: the packet holds {have}, not "
                          f"{'+'.join(missing)} (--segments {wanted})")  # fmt: skip
        keep = [by[f] for f in fields]
        if chosen is None:
            chosen = keep
        elif keep != chosen:
            raise cap.bad(src, f"line {x.number}: fields secondary_channel/sig_mode/bandwidth/stbc/len: "
                          f"{'+'.join(f'{s.field} {s.table}' for s in keep)} where line {lines[0].number} "
                          f"has {'+'.join(f'{s.field} {s.table}' for s in chosen)}; one layout per file")  # fmt: skip
        parts = []
        for f in fields:
            a = pos[f]
            b = a + 2 * len(by[f].indices)
            if b > len(v):
                raise cap.bad(src, f"line {x.number}: field data: {len(v)} values; the {f} "
                              f"needs {b} (ESP32-CSI-Tool prints the LLTF only)")  # fmt: skip
            parts.append(v[a:b])
        rows.append(np.concatenate(parts))
    assert chosen is not None
    spans, start = [], 0
    for s in chosen:
        spans.append((start, start + len(s.indices)))
        start += len(s.indices)
    return np.stack(rows), chosen, spans


def parse(src: Path, text: str, args: argparse.Namespace) -> tuple[list[Line], dict[str, Any]]:
    """The ``CSI_DATA`` lines of ``text`` cut into parts; a cut-off last line is the truncated tail."""
    raw = text.splitlines()
    lines: list[Line] = []
    notes: dict[str, Any] = {}
    skipped = 0
    for number, line in enumerate(raw, 1):
        if (
            "CSI_DATA" not in line
            or line.lstrip('"').startswith("type,")
            or (number == 1 and "[" not in line)
        ):
            # Blank lines and CSV headers are expected; anything else is serial-log output
            # between the CSI lines, counted.
            header = number == 1 and "," in line  # a wrapping CSV's header
            if line.strip() and "type," not in line and not header:
                skipped += 1
            continue
        if number == len(raw) and "]" not in line and not text.endswith(("\n", "\r")):
            notes |= cap.truncated(src, args, len(text) - len(line), len(text), len(lines), "line")
            break
        lines.append(split_line(src, number, line))
    if not lines:
        raise cap.bad(src, "no CSI_DATA lines: an empty capture, or not an ESP32 CSI log")
    notes["skipped_lines"] = skipped
    return lines, notes


def read(src: Path, data: bytes, args: argparse.Namespace) -> cap.Capture:
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as e:
        raise cap.bad(src, f"not an ESP32 CSI log (byte {e.start} is not ASCII)") from None
    lines, notes = parse(src, text, args)
    return build(src, lines, notes, args)


def build(
    src: Path,
    lines: list[Line],
    notes: dict[str, Any],
    args: argparse.Namespace,
    labels: bool = True,
) -> cap.Capture:
    """The Capture of parsed lines (also used on a live stream by ``csipose count predict``)."""
    fmt = _format(src, lines, getattr(args, "format", "auto"))
    chip = getattr(args, "chip", "auto")
    cap.check_choice(src, "chip", chip, ["auto", *esp32_layout.CHIPS])
    wanted = getattr(args, "segments", "lltf")
    cap.check_choice(src, "segments", wanted, SEGMENTS)
    secondary = _secondary(src, args)
    names = FORMATS[fmt]
    macs = [x.fields[1].upper() for x in lines]
    for x, m in zip(lines, macs, strict=True):
        if not _MAC.fullmatch(m):
            raise cap.bad(src, f"line {x.number}: field mac: {x.fields[1]!r} is not six hex bytes")
    per_mac = Counter(macs)
    mac = getattr(args, "mac", "auto")
    mac = per_mac.most_common(1)[0][0] if mac == "auto" else str(mac).upper()
    if mac not in per_mac:
        raise cap.bad(src, f"--mac {mac}: no packet from it (sources: {dict(per_mac)})")
    if len(per_mac) > 1:
        lines = [x for x, m in zip(lines, macs, strict=True) if m == mac]
    notes["packets_per_mac"] = dict(per_mac.most_common())
    notes["converted_mac"] = mac
    notes["other_mac_packets_dropped"] = sum(per_mac.values()) - per_mac[mac]
    col = _columns(src, lines, names)
    try:
        mac_bytes = np.asarray([[int(b, 16) for b in m.split(":")] for m in col["mac"]], np.int64)
    except ValueError:
        mac_bytes = np.zeros((0, 0), np.int64)
    if mac_bytes.shape != (len(lines), 6) or mac_bytes.min() < 0 or mac_bytes.max() > 255:
        raise cap.bad(
            src, f"line {lines[0].number}: field mac: {col['mac'][0]!r} is not six hex bytes"
        )
    values = _values(src, lines)
    n_values = np.asarray([len(v) for v in values])
    layouts = _layouts(src, fmt, chip, col, n_values, lines, secondary)
    stacked, segs, spans = _choose(src, lines, layouts, values, wanted)
    raw, printed = _int8(src, stacked)
    csi = raw[:, 1::2] + 1j * raw[:, ::2]  # the imaginary byte first
    notes["lines_with_fields_dropped"] = int(sum(n > len(stacked[0]) for n in n_values))
    indices = [i for s in segs for i in s.indices]
    null = list(segs[0].null)
    if sorted(null) == sorted(ESP32_NULL):
        null = list(ESP32_NULL)
    extra: dict[str, np.ndarray] = {
        "timestamp": cap.seconds(col["local_timestamp"], 1e-6, wrap_bits=32),
        "rssi": col["rssi"].astype(np.int16),
        "noise_floor": col["noise_floor"].astype(np.int16),
        "rate": col["rate"].astype(np.int16),
        "src_mac": mac_bytes.astype(np.uint8),
    }
    for name in ("real_timestamp",):
        if name in col:
            extra[name] = col[name]
    for name in ("mcs", "sig_mode", "stbc", "fft_gain", "agc_gain"):
        if name in col:
            extra[name] = col[name].astype(np.int16)
    if "bandwidth" in col:
        extra["cwb"] = col["bandwidth"].astype(np.int8)
    if "seq" in col:
        extra["seq"] = col["seq"]
    if "first_word" in col:
        extra["first_word_invalid"] = col["first_word"].astype(np.int8)
        notes["first_word_invalid_packets"] = int((col["first_word"] != 0).sum())
    text_columns = {}
    for side in ("before", "after"):
        arrays, text = _extra_columns(src, lines, side)
        extra |= arrays
        text_columns |= text
    if text_columns:
        notes["text_columns"] = text_columns
    channels = np.unique(col["channel"])
    sec_values = sorted({esp32_layout.SECONDARY.get(int(v), str(v)) for v in col["secondary_channel"]}) \
        if "secondary_channel" in col else [getattr(args, "secondary", "auto")]  # fmt: skip
    profile: dict[str, Any] = {
        "name": "esp32-" + "+".join(s.field for s in segs),
        "tool": {
            "esp32-csi-tool": "ESP32-CSI-Tool",
            "esp-csi": "esp-csi (Espressif) csi_recv",
            "esp-csi-c5": "esp-csi (Espressif) csi_recv, ESP32-C5 build",
        }[fmt],
        "format": fmt,
        "chip": chip if chip != "auto" else "ESP32 / S2 / S3 / C3 (one ESP-IDF table)",
        "field": "; ".join(
            f"{s.field} (entries {a}..{b - 1}: ESP-IDF '{s.table}', numbered {s.grid})"
            for s, (a, b) in zip(segs, spans, strict=True)
        ),
        "source_of_ordering": esp32_layout.SOURCE,
        "bandwidth_mhz": 40 if any(s.grid.startswith("40") for s in segs) else 20,
        "channel_width_mhz": 20 if sec_values == ["none"] else 40,
        "secondary_channel": sec_values[0] if len(sec_values) == 1 else sec_values,
        "printed_bytes": printed,
        "first_word": "ESP32 hardware may report the first 4 bytes (entries 0 and 1) invalid "
        "(wifi_csi_info_t.first_word_invalid); kept as recorded"
        + (
            "; esp-csi prints the flag (per-packet first_word_invalid)"
            if "first_word" in col
            else "; ESP32-CSI-Tool does not print the flag"
        ),
        "timestamp": "rx_ctrl.timestamp (local_timestamp, microseconds, wraps undone), seconds",
    }
    if len(channels) == 1:
        profile["channel"] = int(channels[0])
    segments_note = [
        {"field": s.field, "start": a, "stop": b, "esp_idf_indices": s.table, "grid": s.grid,
         "null_subcarriers": list(s.null)}
        for s, (a, b) in zip(segs, spans, strict=True)
    ]  # fmt: skip
    notes["segments"] = segments_note
    capture = cap.Capture(
        csi=csi[:, None, :],
        n_tx=1,
        n_rx=1,
        antenna_order="one link (the ESP32 has one antenna chain)",
        subcarrier_indices=indices,
        amplitude_units="raw CSI magnitude, signed 8-bit I/Q units as ESP-IDF reported",
        hardware_profile=profile,
        extra=extra,
        null_subcarriers=null,
        notes=notes,
    )
    if labels:
        esp32_labels.apply(src, capture, args)
    return capture


def _report(capture: cap.Capture) -> None:
    per = capture.notes.get("packets_per_mac", {})
    if len(per) > 1:
        others = ", ".join(
            f"{m} ({n})" for m, n in per.items() if m != capture.notes["converted_mac"]
        )
        print(f"converted {capture.notes['converted_mac']} ({per[capture.notes['converted_mac']]} "
              f"packets); other stations left out: {others}")  # fmt: skip


#: File names read from a directory of captures.
CAPTURE_SUFFIXES = (".csv", ".txt", ".log")


def _concat(files: list[Path], caps: list[cap.Capture]) -> tuple[cap.Capture, np.ndarray]:
    """One Capture of several files' (same layout and format), and each packet's file index."""
    first = caps[0]
    for f, c in zip(files[1:], caps[1:], strict=True):
        if c.subcarrier_indices != first.subcarrier_indices or set(c.extra) != set(first.extra):
            raise cap.bad(
                f, f"its layout or columns differ from {files[0].name}'s: one layout per directory"
            )
    notes: dict[str, Any] = {"files": {f.name: c.notes for f, c in zip(files, caps, strict=True)}}
    notes["segments"] = first.notes["segments"]
    per: Counter[str] = Counter()
    for c in caps:
        per.update(c.notes.get("packets_per_mac", {}))
    notes["packets_per_mac"] = dict(per.most_common())
    notes["skipped_lines"] = sum(c.notes.get("skipped_lines", 0) for c in caps)
    extra = {k: np.concatenate([c.extra[k] for c in caps]) for k in first.extra}
    file_of = np.concatenate([np.full(len(c.csi), i) for i, c in enumerate(caps)])
    merged = cap.Capture(
        csi=np.concatenate([c.csi for c in caps]), n_tx=1, n_rx=1, antenna_order=first.antenna_order,
        subcarrier_indices=first.subcarrier_indices, amplitude_units=first.amplitude_units,
        hardware_profile=first.hardware_profile | {"files": [f.name for f in files]}, extra=extra,
        null_subcarriers=first.null_subcarriers, notes=notes,
    )  # fmt: skip
    return merged, file_of


def _run(src: Path, out: Path, args: argparse.Namespace) -> Path:
    """One capture file, or a directory of them (each file its own recording, name order)."""
    if not src.is_dir():
        data = cap.read_source(src)
        capture = read(src, data, args)
        _report(capture)
        return cap.write(capture, src, out, args, "esp32", data)
    labels = getattr(args, "labels", "") or ""
    files = sorted(p for p in src.iterdir() if p.is_file() and p.suffix.lower() in CAPTURE_SUFFIXES)
    files = [p for p in files if not (labels and p.resolve() == Path(labels).resolve())]
    if not files:
        raise cap.bad(src, f"a directory without capture files ({', '.join(CAPTURE_SUFFIXES)})")
    datas = [cap.read_source(f) for f in files]
    caps: list[cap.Capture] = []
    kept: list[Path] = []
    others: list[str] = []
    for f, d in zip(files, datas, strict=True):
        try:
            text = d.decode("ascii")
        except UnicodeDecodeError as e:
            raise cap.bad(f, f"not an ESP32 CSI log (byte {e.start} is not ASCII)") from None
        if (
            "CSI_DATA" not in text
        ):  # e.g. a labels or notes CSV beside the captures: listed, not read
            others.append(f.name)
            continue
        lines, notes = parse(f, text, args)
        caps.append(build(f, lines, notes, args, labels=False))
        kept.append(f)
    if not caps:
        raise cap.bad(src, f"no file with CSI_DATA lines among {', '.join(others)}")
    files = kept
    capture, file_of = _concat(files, caps)
    if others:
        capture.notes["files_without_csi_data"] = others
        print(f"files without CSI_DATA lines, not read: {', '.join(others)}")
    esp32_labels.apply(src, capture, args, [f.name for f in files], file_of)
    print(f"read {len(files)} capture files, {len(capture.csi)} packets")
    # The provenance checksum is of the files' bytes concatenated in name order.
    return cap.write(capture, src, out, args, "esp32", b"".join(datas))


CONVERTER = cap.Converter(
    "esp32",
    "ESP32 CSI logs (a file, or a directory of them): ESP32-CSI-Tool and esp-csi CSI_DATA lines",
    add_arguments,
    _run,
)
