"""Labels for a capture: ``--label count=N`` or ``--labels labels.csv`` (time ranges).

Each labelled stretch of packets becomes its own recording (store sequence), so a
window never spans two labels, and a split can keep every recording whole: the
``grouped`` split (written when there are at least three labelled recordings)
deals recordings, not windows, to train / val / test, per count (stratified).
Packets outside every range keep ``person_count`` -1 (the count trainer drops
them).
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
from pathlib import Path
from typing import Any

import numpy as np

from csipose.data.convert import _capture as cap

SPLIT = "grouped"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--label", action="append", default=[], metavar="KEY=VALUE",
                        help="label the whole capture: count=N (people) and/or activity=NAME")  # fmt: skip
    parser.add_argument("--labels", default="", metavar="CSV",
                        help="a CSV with columns start, end (seconds, [start, end)), count and "
                        "optionally activity; each row is one recording")  # fmt: skip
    parser.add_argument("--label-clock", default="timestamp",
                        help="the per-packet time the --labels ranges use (default timestamp, the "
                        "board's clock; e.g. real_timestamp, before_0, after_0)")  # fmt: skip
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the grouped split")
    parser.add_argument(
        "--test-fraction", type=float, default=0.2, help="grouped split (default 0.2)"
    )
    parser.add_argument(
        "--val-fraction", type=float, default=0.2, help="grouped split (default 0.2)"
    )


def _count(where: str, value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise cap.bad(Path(where), f"count {value!r} is not an integer") from None
    if n < 0 or n > 255:
        raise cap.bad(Path(where), f"count {n} is outside 0..255")
    return n


def _whole(src: Path, items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, eq, value = str(item).partition("=")
        if not eq or key not in ("count", "activity") or not value:
            raise cap.bad(src, f"--label {item!r}: count=N or activity=NAME expected")
        out[key] = value
    return out


def _ranges(path: Path, files: list[str]) -> list[dict[str, Any]]:
    """The rows of a labels CSV: ``count`` and ``activity``, a range ``start``/``end`` (empty
    or absent: the whole file) and, for a directory of captures, the ``file``."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such labels file")
    try:
        rows = list(csv.DictReader(io.StringIO(path.read_text())))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise cap.bad(path, f"cannot read as CSV: {e}") from e
    if not rows:
        raise cap.bad(
            path, "no label rows (a header start,end,count[,activity][,file] and one row per range)"
        )
    need = {"count"} | ({"file"} if len(files) > 1 else {"start", "end"})
    missing = need - set(rows[0])
    if missing:
        raise cap.bad(
            path,
            f"line 1: columns {', '.join(sorted(missing))} missing (have {', '.join(rows[0])})",
        )
    out: list[dict[str, Any]] = []
    for line, row in enumerate(rows, 2):
        name = (row.get("file") or "").strip() or files[0]
        if name not in files:
            raise cap.bad(
                path, f"line {line}: field file: {name!r} is not one of the capture files"
            )
        start_s, end_s = (row.get("start") or "").strip(), (row.get("end") or "").strip()
        if not start_s and not end_s:
            start, end = -np.inf, np.inf
        else:
            try:
                start, end = float(start_s), float(end_s)
            except ValueError:
                raise cap.bad(
                    path, f"line {line}: field start/end: {start_s!r}, {end_s!r} are not seconds"
                ) from None
            if not (np.isfinite(start) and np.isfinite(end) and start < end):
                raise cap.bad(
                    path,
                    f"line {line}: field end: the range [{start}, {end}) is empty or not finite",
                )
        out.append({"line": line, "file": files.index(name), "start": float(start), "end": float(end),
                    "count": _count(f"{path}: line {line}", row["count"]),
                    "activity": (row.get("activity") or "").strip() or "unknown"})  # fmt: skip
    out.sort(key=lambda r: (r["file"], r["start"]))
    for a, b in itertools.pairwise(out):
        if a["file"] == b["file"] and b["start"] < a["end"]:
            raise cap.bad(path, f"lines {a['line']} and {b['line']}: the ranges overlap")
    return out


def apply(src: Path, capture: cap.Capture, args: argparse.Namespace, files: list[str] | None = None,
          file_of: np.ndarray | None = None) -> None:  # fmt: skip
    """Set the capture's counts, recordings, activities and grouped split from the options.
    ``files`` / ``file_of``: the file names of a directory of captures and each packet's file."""
    files = files or [src.name]
    n = len(capture.csi)
    file_of = np.zeros(n, np.int64) if file_of is None else file_of
    whole = _whole(src, list(getattr(args, "label", []) or []))
    table = getattr(args, "labels", "") or ""
    if whole and table:
        raise cap.bad(src, "--label and --labels: give one of them")
    if not whole and not table and len(files) == 1:
        return
    count = np.full(n, -1, np.int16)
    group = file_of.astype(np.int64).copy()  # each file its own recording to start with
    names, activities, counts = list(files), ["unknown"] * len(files), [-1] * len(files)
    if whole:
        c = _count(str(src), whole["count"]) if "count" in whole else -1
        count[:] = c
        activities, counts = [whole.get("activity", "unknown")] * len(files), [c] * len(files)
    elif table:
        clock = getattr(args, "label_clock", "timestamp")
        t = capture.extra.get(clock)
        if t is None or t.dtype.kind != "f" or t.ndim != 1:
            usable = [k for k, v in capture.extra.items() if v.dtype.kind == "f" and v.ndim == 1]
            raise cap.bad(src, f"--label-clock {clock!r}: not a per-packet time of this capture "
                          f"(have {', '.join(usable)})")  # fmt: skip
        for r in _ranges(Path(table), files):
            inside = (file_of == r["file"]) & (t >= r["start"]) & (t < r["end"])
            if not inside.any():
                raise cap.bad(Path(table), f"line {r['line']}: no packet of {files[r['file']]} in "
                              f"[{r['start']}, {r['end']}) on clock {clock}")  # fmt: skip
            if np.diff(np.flatnonzero(inside)).max(initial=1) != 1:
                raise cap.bad(Path(table), f"line {r['line']}: the packets in [{r['start']}, {r['end']}) "
                              f"are not consecutive in the file (clock {clock} is not monotonic)")  # fmt: skip
            group[inside] = len(names)
            count[inside] = r["count"]
            names.append(f"{files[r['file']]}#{r['line']}")
            activities.append(r["activity"])
            counts.append(r["count"])
    # A store sequence occupies consecutive rows: a recording split by labelled ranges
    # (an unlabelled stretch between them) becomes one recording per stretch.
    bounds = np.flatnonzero(np.diff(group)) + 1
    seen: set[int] = set()
    for start, stop in zip(np.r_[0, bounds], np.r_[bounds, n], strict=True):
        g = int(group[start])
        if g in seen:
            group[start:stop] = len(names)
            names.append(f"{names[g]}~{start}")
            activities.append(activities[g])
            counts.append(counts[g])
        seen.add(g)
    capture.person_count = count
    capture.groups = group
    capture.group_names = names
    capture.group_actions = activities
    used = set(np.unique(group).tolist())
    capture.notes["labels"] = {"source": "--label " + " ".join(f"{k}={v}" for k, v in whole.items())
                               if whole else f"--labels {table}" if table else "none (one recording per file)",
                               "clock": getattr(args, "label_clock", "timestamp") if table else None,
                               "recordings": {nm: c for i, (nm, c) in enumerate(zip(names, counts, strict=True))
                                              if c >= 0 and i in used},
                               "unlabelled_packets": int((count < 0).sum())}  # fmt: skip
    split = grouped_split(
        [nm for nm in names], [c if i in used else -1 for i, c in enumerate(counts)], args
    )
    if split is not None:
        capture.splits[SPLIT] = split


def grouped_split(names: list[str], counts: list[int], args: argparse.Namespace
                  ) -> tuple[dict[str, list[int]], str] | None:  # fmt: skip
    """Recordings (by index into ``names``) dealt to train / val / test per count; None
    when fewer than three recordings are labelled."""
    test_f = float(getattr(args, "test_fraction", 0.2))
    val_f = float(getattr(args, "val_fraction", 0.2))
    if not (0 <= test_f < 1 and 0 <= val_f < 1 and test_f + val_f < 1):
        raise cap.bad(
            Path("--test-fraction"),
            "--test-fraction and --val-fraction must lie in [0, 1) and sum to < 1",
        )
    labelled = [i for i, c in enumerate(counts) if c >= 0]
    if len(labelled) < 3:
        return None
    rng = np.random.default_rng([int(getattr(args, "split_seed", 0)), 13])
    parts: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for c in sorted({counts[i] for i in labelled}):
        idx = [i for i in labelled if counts[i] == c]
        idx = [idx[k] for k in rng.permutation(len(idx))]
        if len(idx) < 3:
            parts["train"] += idx
            continue
        n_test = max(1, round(len(idx) * test_f)) if test_f > 0 else 0
        n_val = max(1, round(len(idx) * val_f)) if val_f > 0 else 0
        n_test, n_val = (
            min(n_test, len(idx) - 2),
            min(n_val, len(idx) - 1 - min(n_test, len(idx) - 2)),
        )
        parts["test"] += idx[:n_test]
        parts["val"] += idx[n_test : n_test + n_val]
        parts["train"] += idx[n_test + n_val :]
    definition = (f"grouped by recording (each labelled range one recording, never split), stratified "
                  f"by count: per count, recordings shuffled (seed {getattr(args, 'split_seed', 0)}) and "
                  f"dealt ~{test_f:g} to test, ~{val_f:g} to val (at least one each when the count has "
                  f">= 3 recordings), the rest to train; counts with < 3 recordings: train only")  # fmt: skip
    return parts, definition


__all__ = ["SPLIT", "add_arguments", "apply", "grouped_split"]
