"""The store's manifest: what every array in a store directory means.

A store is a directory of ``.npy`` arrays with a leading frame axis plus
``manifest.json``. The manifest carries the schema version, the CSI layout
(antennas, subcarrier indices, packets per frame, hardware profile, units),
the label skeleton and units, name tables for the per-frame metadata codes,
what the NaN/Inf repair did, the default window and where the data came from.

Schema (version 1)::

    {
      "format": "csipose-store", "schema_version": 1, "n_frames": F,
      "arrays": {"amplitude": {"file": "amplitude.npy", "dtype": "float32", "shape": [F, A, S, P]}, ...},
      "csi": {"layout": ["frame", "antenna", "subcarrier", "packet"],
              "antennas": {"n_tx": 1, "n_rx": 3, "order": "tx-major"},
              "subcarrier_indices": [...], "null_subcarriers": [...],
              "packets_per_frame": P, "units": {"amplitude": "...", "phase": "rad"},
              "hardware_profile": {"name": "...", ...}},
      "labels": {"skeleton": "h36m17", "dims": 3, "units": "m", "max_people": 1} | null,
      "metadata": {"environment": [...names], "subject": [...], "action": [...], "sequence": [...]},
      "repair": {"rule": "...", "repaired_values": n, "repaired_frames": n, "excluded_frames": n, ...},
      "default_window": {"length": L, "stride": s, "label": "first|centre|last|all"},
      "splits": {"<name>": {"file": "splits/<name>.json", "definition": "..."}},
      "provenance": {"converter": "...", "source": "...", "options": {...},
                     "created_utc": "...", "csipose_version": "..."}
    }

Per-frame arrays: ``amplitude`` (float32, required), ``phase`` (float32),
``keypoints`` (float32 ``[F, K, D]``, or ``[F, M, K, D]`` with M people),
``visibility`` (bool ``[F, K]`` / ``[F, M, K]``), ``environment``, ``subject``,
``action``, ``sequence``, ``frame_index`` (int32), ``person_count`` (int16,
-1 = unknown) and ``valid`` (bool: frames excluded by the repair are False).
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any

from csipose.errors import DataFormatError

FORMAT = "csipose-store"
SCHEMA_VERSION = 1
MANIFEST = "manifest.json"

#: Per-frame metadata arrays and their dtypes; codes index the manifest's name tables.
METADATA = {
    "environment": "int32",
    "subject": "int32",
    "action": "int32",
    "sequence": "int32",
    "frame_index": "int32",
    "person_count": "int16",
    "valid": "bool",
}
#: Arrays whose codes refer to a name table in ``manifest["metadata"]``.
NAMED = ("environment", "subject", "action", "sequence")
REQUIRED_ARRAYS = ("amplitude", *METADATA)
LABELS = ("first", "centre", "last", "all")


def load(store: str | Path) -> dict[str, Any]:
    """Read and check ``store/manifest.json``; a problem is a DataFormatError naming the file."""
    path = Path(store) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataFormatError(
            f"{path}: no manifest: {Path(store)} is not a csipose store"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataFormatError(f"{path}: cannot read the manifest: {e}") from e
    check(manifest, path)
    return manifest


def check(manifest: Any, path: str | Path) -> None:
    """Raise DataFormatError (naming ``path`` and the field) unless ``manifest`` is a valid schema-1 manifest."""

    def bad(field: str, problem: str) -> DataFormatError:
        return DataFormatError(f"{path}: field {field!r}: {problem}")

    if not isinstance(manifest, dict):
        raise bad("<root>", "the manifest must be a JSON object")
    if manifest.get("format") != FORMAT:
        raise bad("format", f"expected {FORMAT!r}, got {manifest.get('format')!r}")
    version = manifest.get("schema_version")
    if not isinstance(version, int):
        raise bad("schema_version", f"must be an integer, got {version!r}")
    if version > SCHEMA_VERSION:
        raise bad(
            "schema_version",
            f"the store has schema {version}, newer than this csipose reads ({SCHEMA_VERSION}); "
            "upgrade csipose",
        )
    if version < 1:
        raise bad("schema_version", f"unknown schema {version}")
    n = manifest.get("n_frames")
    if not isinstance(n, int) or n < 0:
        raise bad("n_frames", f"must be an integer >= 0, got {n!r}")
    arrays = manifest.get("arrays")
    if not isinstance(arrays, dict):
        raise bad("arrays", "must be an object mapping array names to files")
    for name in REQUIRED_ARRAYS:
        if name not in arrays:
            raise bad("arrays", f"the required array {name!r} is missing")
    for name, spec in arrays.items():
        if not isinstance(spec, dict) or not isinstance(spec.get("file"), str):
            raise bad(f"arrays.{name}", "must be an object with a 'file'")
        shape = spec.get("shape")
        if not isinstance(shape, list) or not shape or shape[0] != n:
            raise bad(f"arrays.{name}.shape", f"must start with n_frames = {n}, got {shape!r}")
        file = PurePosixPath(spec["file"])
        if file.is_absolute() or ".." in file.parts:
            raise bad(f"arrays.{name}.file", "must be a path inside the store")
    csi = manifest.get("csi")
    if not isinstance(csi, dict):
        raise bad("csi", "must be an object")
    s = arrays["amplitude"]["shape"]
    if len(s) != 4:
        raise bad(
            "arrays.amplitude.shape", f"must be [frames, antennas, subcarriers, packets], got {s}"
        )
    idx = csi.get("subcarrier_indices")
    if not isinstance(idx, list) or len(idx) != s[2]:
        raise bad("csi.subcarrier_indices", f"must list {s[2]} subcarrier indices")
    meta = manifest.get("metadata")
    if not isinstance(meta, dict) or any(not isinstance(meta.get(k), list) for k in NAMED):
        raise bad("metadata", f"must hold name lists for {', '.join(NAMED)}")
    win = manifest.get("default_window")
    if (
        not isinstance(win, dict)
        or not isinstance(win.get("length"), int)
        or win["length"] < 1
        or not isinstance(win.get("stride"), int)
        or win["stride"] < 1
        or win.get("label") not in LABELS
    ):
        raise bad("default_window", f"must be {{length >= 1, stride >= 1, label in {LABELS}}}")
