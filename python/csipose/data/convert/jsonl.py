"""Paired JSONL windows (upstream's person-count data) -> store: ``csipose convert jsonl FILE OUT``.

One window per line: ``csi`` (flat floats) with ``csi_shape``, and optionally
``kp`` (17 x [x, y], normalised image coordinates), ``conf``,
``n_camera_frames``, ``n_persons_mode`` (the count label), ``n_persons_max``,
``ts_start`` and ``ts_end`` (ISO-8601). Which axis of ``csi_shape`` holds the
subcarriers is declared with ``--layout``, never guessed (upstream wrote
frame-major data under a [56, 20] subcarrier-major label for a while). Each
window is unrolled into its CSI frames; the default window is one line.
"""

from __future__ import annotations

import argparse
import datetime
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from csipose import skeleton as sk
from csipose.data.convert import Converter
from csipose.data.convert._common import open_store, progress, zero_nonfinite
from csipose.data.writer import StoreWriter
from csipose.errors import DataFormatError
from csipose.signal import SUBCARRIERS

LAYOUTS = {"subcarrier-major": "[subcarriers, frames]", "frame-major": "[frames, subcarriers]"}
BATCH = 1024  # lines per write
#: Optional per-line numbers kept as extra per-frame arrays: field -> (array, dtype, missing).
EXTRA = {
    "conf": ("kp_confidence", np.float32, np.nan),
    "n_persons_max": ("person_count_max", np.int16, -1),
    "n_camera_frames": ("n_camera_frames", np.int32, -1),
    "ts_start": ("ts_start", np.float64, np.nan),
    "ts_end": ("ts_end", np.float64, np.nan),
}
INTS = ("n_persons_mode", "n_persons_max", "n_camera_frames")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--layout",
        choices=tuple(LAYOUTS),
        help="(required) what csi_shape is: subcarrier-major = [subcarriers, frames], "
        "frame-major = [frames, subcarriers]",
    )
    parser.add_argument(
        "--skeleton", default="coco17", help="skeleton of kp (default coco17, 17 joints)"
    )
    parser.add_argument(
        "--subcarriers",
        help=f"subcarrier index table of the capture ({', '.join(SUBCARRIERS)}); default: "
        "positions 0..S-1",
    )
    parser.set_defaults(overwrite=False)  # lets convert(..., overwrite=True) through


def epoch_seconds(text: str) -> float:
    """ISO-8601 -> seconds since the epoch; a time without a zone is taken as UTC."""
    t = datetime.datetime.fromisoformat(text)
    if t.tzinfo is None:
        t = t.replace(tzinfo=datetime.UTC)
    return t.timestamp()


def parse(where: str, text: str, layout: str, n_joints: int) -> dict[str, Any]:
    """One line as ``csi`` [frames, subcarriers] float32 plus its optional fields (None if absent)."""

    def bad(field: str, problem: str) -> DataFormatError:
        return DataFormatError(f"{where}: field {field!r}: {problem}")

    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataFormatError(f"{where}: not valid JSON: {e}") from e
    if not isinstance(obj, dict):
        raise DataFormatError(f"{where}: a line must be a JSON object")
    for field in ("csi", "csi_shape"):
        if obj.get(field) is None:
            raise bad(field, "missing")
    shape = obj["csi_shape"]
    if (
        not isinstance(shape, list)
        or len(shape) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape)
    ):
        raise bad("csi_shape", f"must be two positive integers, got {shape!r}")
    try:
        csi = np.asarray(obj["csi"], dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise bad("csi", f"must be a flat list of numbers ({e})") from e
    if csi.ndim != 1 or len(csi) != shape[0] * shape[1]:
        raise bad("csi", f"has {csi.size} values; csi_shape {shape} needs {shape[0] * shape[1]}")
    csi = csi.reshape(shape)
    out: dict[str, Any] = {"shape": shape, "csi": csi.T if layout == "subcarrier-major" else csi}
    kp = obj.get("kp")
    if kp is not None:
        try:
            kp = np.asarray(kp, dtype=np.float32)
        except (TypeError, ValueError) as e:
            raise bad("kp", f"must be {n_joints} x [x, y] numbers ({e})") from e
        if kp.shape != (n_joints, 2):
            raise bad("kp", f"has shape {list(kp.shape)}; expected [{n_joints}, 2]")
    out["kp"] = kp
    for field in INTS:
        v = obj.get(field)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
            raise bad(field, f"must be an integer >= 0, got {v!r}")
        out[field] = v
    conf = obj.get("conf")
    if conf is not None and (not isinstance(conf, int | float) or isinstance(conf, bool)):
        raise bad("conf", f"must be a number, got {conf!r}")
    out["conf"] = conf
    for field in ("ts_start", "ts_end"):
        v = obj.get(field)
        if v is not None:
            try:
                v = epoch_seconds(v)
            except (TypeError, ValueError) as e:
                raise bad(field, f"must be an ISO-8601 time, got {v!r}") from e
        out[field] = v
    return out


def lines(path: Path, layout: str, n_joints: int) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, parsed line) of every non-blank line; all must share the first csi_shape."""
    first = None
    try:
        with open(path, encoding="utf-8") as f:
            for lineno, text in enumerate(f, 1):
                if not text.strip():
                    continue
                where = f"{path}:{lineno}"
                line = parse(where, text, layout, n_joints)
                if first is None:
                    first = line["shape"]
                elif line["shape"] != first:
                    raise DataFormatError(
                        f"{where}: field 'csi_shape': {line['shape']} differs from the first "
                        f"line's {first} (every window must have the same frames and subcarriers)"
                    )
                yield lineno, line
    except UnicodeDecodeError as e:
        raise DataFormatError(f"{path}: not UTF-8 text: {e}") from e


def survey(path: Path, layout: str, n_joints: int) -> dict[str, Any]:
    """A checking pass: the window shape, line count and which optional fields occur."""
    found: dict[str, Any] = {"lines": 0, "present": set()}
    for _, line in lines(path, layout, n_joints):
        found["lines"] += 1
        found["frames"], found["subcarriers"] = line["csi"].shape
        found["present"] |= {k for k in ("kp", *EXTRA) if line[k] is not None}
    if not found["lines"]:
        raise DataFormatError(f"{path}: no windows (the file has no non-blank line)")
    return found


def subcarrier_indices(name: str | None, n: int, path: Path) -> tuple[list[int], str]:
    if name is None:
        return list(range(n)), f"positions 0..{n - 1} in the file (subcarrier indices not declared)"
    if name not in SUBCARRIERS:
        raise ValueError(f"unknown subcarrier table {name!r}; known: {', '.join(SUBCARRIERS)}")
    if len(SUBCARRIERS[name]) != n:
        raise ValueError(
            f"--subcarriers {name} lists {len(SUBCARRIERS[name])} subcarriers; {path} has {n}"
        )
    return SUBCARRIERS[name], f"subcarrier indices of {name}"


def frames_of(
    lineno: int, line: dict[str, Any], w: StoreWriter, found: dict[str, Any]
) -> dict[str, Any]:
    """The per-frame rows of one window (``T`` frames)."""
    t = found["frames"]
    amp, nonfinite, n_bad = zero_nonfinite(np.ascontiguousarray(line["csi"]))
    rows: dict[str, Any] = {
        "amplitude": amp[:, None, :, None],
        "sequence": np.full(t, w.code("sequence", f"line{lineno}"), np.int32),
        "frame_index": np.arange(t, dtype=np.int32),
        "person_count": np.full(
            t, -1 if line["n_persons_mode"] is None else line["n_persons_mode"], np.int16
        ),
        "valid": ~nonfinite,
        "repaired": n_bad,
    }
    if "kp" in found["present"]:
        kp = line["kp"]
        rows["keypoints"] = np.broadcast_to(
            np.zeros((found["joints"], 2), np.float32) if kp is None else kp,
            (t, found["joints"], 2),
        )
        rows["visibility"] = np.full((t, found["joints"]), kp is not None)
    for field, (name, dtype, missing) in EXTRA.items():
        if field in found["present"]:
            v = line[field]
            rows[name] = np.full(t, missing if v is None else v, dtype)
    return rows


def run(src: Path, out: Path, args: argparse.Namespace) -> Path:
    if args.layout not in LAYOUTS:
        raise ValueError(
            f"--layout is required: subcarrier-major ([subcarriers, frames]) or frame-major "
            f"([frames, subcarriers]); got {args.layout!r}"
        )
    if not src.is_file():
        raise FileNotFoundError(f"{src}: not a file")
    skel = sk.get(args.skeleton)
    found = survey(src, args.layout, skel.num_joints)
    found["joints"] = skel.num_joints
    idx, axis = subcarrier_indices(args.subcarriers, found["subcarriers"], src)
    t = found["frames"]
    labels = None
    if "kp" in found["present"]:
        labels = {
            "skeleton": skel.name, "dims": 2, "units": "normalised image coordinates",
            "max_people": 1, "coordinate_frame": "image",
            "note": "kp is the window's pose from the camera (upstream: a confidence-weighted "
            "mean of camera keypoints), repeated on each of the window's frames",
        }  # fmt: skip
    with open_store(
        out, src, args, converter="jsonl",
        options={"layout": args.layout, "skeleton": skel.name, "subcarriers": args.subcarriers},
        csi={
            "layout": ["frame", "antenna", "subcarrier", "packet"],
            "antennas": {"n_tx": None, "n_rx": None, "order": "unknown"},
            "subcarrier_indices": idx,
            "subcarrier_axis": axis,
            "null_subcarriers": [],
            "packets_per_frame": 1,
            "source_layout": f"{args.layout}: csi_shape is {LAYOUTS[args.layout]}",
            "units": {"amplitude": "as in the file"},
            "hardware_profile": {"name": args.subcarriers or "unknown"},
        },
        labels=labels,
        default_window={"length": t, "stride": t, "label": "first"},
    ) as w:  # fmt: skip
        unknown = {k: w.code(k, "unknown") for k in ("environment", "subject", "action")}
        repaired = excluded = 0
        batch: list[dict[str, Any]] = []

        def flush() -> None:
            nonlocal repaired, excluded
            rows = {k: np.concatenate([b[k] for b in batch]) for k in batch[0] if k != "repaired"}
            repaired += sum(b["repaired"] for b in batch)
            excluded += int((~rows["valid"]).sum())
            extra = {name: rows.pop(name) for name, *_ in EXTRA.values() if name in rows}
            w.add_frames(**rows, **unknown, extra=extra or None)
            batch.clear()

        parsed = lines(src, args.layout, skel.num_joints)
        for lineno, line in progress(parsed, total=found["lines"], desc="jsonl", unit="line"):
            batch.append(frames_of(lineno, line, w, found))
            if len(batch) == BATCH:
                flush()
        if batch:
            flush()
        w.repair = {
            "rule": "a frame with a non-finite CSI value is invalid; the value is set to 0",
            "repaired_values": repaired,
            "repaired_frames": excluded,
            "excluded_frames": excluded,
        }
    return out


CONVERTER = Converter(
    name="jsonl",
    help="paired JSONL windows (csi, csi_shape, kp, n_persons_mode, ...), one per line",
    add_arguments=add_arguments,
    run=run,
)
