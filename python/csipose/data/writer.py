"""Writing a store: frames are appended in batches, and the store appears at
its path only when it is complete.

Everything is written into a hidden temporary directory next to the target
and renamed into place by :meth:`StoreWriter.commit`; a conversion that fails
or is killed leaves no partial store behind (and an existing store at the
target is replaced only with ``overwrite=True``, and only after the new one is
complete).

    with StoreWriter(out, csi=..., labels=..., default_window=..., provenance=...) as w:
        seq = w.code("sequence", "E01/S01/A01")
        w.add_frames(amplitude=amp, keypoints=kp, visibility=vis, sequence=seq,
                     subject=w.code("subject", "S01"), ...)
        w.add_split("s1", {"train": [...], "val": [...]}, definition="...")
    # committed on a clean exit
"""

from __future__ import annotations

import datetime
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from csipose._files import replace_dir
from csipose.data import manifest as mf
from csipose.errors import DataFormatError

#: Bytes reserved for an appendable .npy header (v1.0; 64-byte aligned).
_HEADER_BYTES = 256


class _NpyAppender:
    """A .npy file whose rows are appended; the header is completed on close."""

    def __init__(self, path: Path, dtype: np.dtype, row_shape: tuple[int, ...]):
        self.path, self.dtype, self.row_shape, self.rows = path, dtype, row_shape, 0
        self.file = open(path, "wb")
        self.file.write(b"\0" * _HEADER_BYTES)

    def append(self, rows: np.ndarray) -> None:
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        rows.tofile(self.file)
        self.rows += len(rows)

    def close(self) -> None:
        shape = (self.rows, *self.row_shape)
        descr = np.lib.format.dtype_to_descr(self.dtype)
        header = f"{{'descr': {descr!r}, 'fortran_order': False, 'shape': {shape!r}, }}"
        room = _HEADER_BYTES - 10
        if len(header) + 1 > room:
            raise DataFormatError(f"{self.path}: shape {shape} does not fit the .npy header")
        header = header.ljust(room - 1) + "\n"
        self.file.seek(0)
        self.file.write(b"\x93NUMPY\x01\x00" + room.to_bytes(2, "little") + header.encode("latin1"))
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()


def _utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


class StoreWriter:
    """Build a store at ``path`` (see :mod:`csipose.data.manifest` for the format)."""

    def __init__(
        self,
        path: str | Path,
        *,
        csi: dict[str, Any],
        default_window: dict[str, Any],
        provenance: dict[str, Any],
        labels: dict[str, Any] | None = None,
        overwrite: bool = False,
    ):
        from csipose import __version__

        self.path = Path(path)
        if self.path.exists() and not overwrite:
            raise FileExistsError(f"{self.path} exists; pass overwrite=True to replace it")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.parent / f".{self.path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
        self.tmp.mkdir()
        self.overwrite = overwrite
        self.csi = dict(csi)
        self.labels = labels
        self.default_window = dict(default_window)
        self.provenance = {**provenance, "created_utc": _utc_now(), "csipose_version": __version__}
        self.repair: dict[str, Any] = {"rule": "none", "repaired_values": 0, "repaired_frames": 0}
        self._names: dict[str, list[str]] = {k: [] for k in mf.NAMED}
        self._codes: dict[str, dict[str, int]] = {k: {} for k in mf.NAMED}
        self._arrays: dict[str, _NpyAppender] = {}
        self._splits: dict[str, dict[str, Any]] = {}
        self.n_frames = 0
        self._done = False

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()

    def code(self, kind: str, name: str) -> int:
        """The integer code of ``name`` in the ``kind`` table (environment, subject, action, sequence)."""
        table = self._codes[kind]
        if name not in table:
            table[name] = len(self._names[kind])
            self._names[kind].append(name)
        return table[name]

    def add_frames(
        self,
        *,
        amplitude: np.ndarray,
        sequence: int | np.ndarray,
        frame_index: int | np.ndarray,
        environment: int | np.ndarray,
        subject: int | np.ndarray,
        action: int | np.ndarray,
        phase: np.ndarray | None = None,
        keypoints: np.ndarray | None = None,
        visibility: np.ndarray | None = None,
        person_count: int | np.ndarray = -1,
        valid: bool | np.ndarray = True,
        extra: dict[str, np.ndarray] | None = None,
    ) -> None:
        """Append ``n = len(amplitude)`` frames; scalars apply to every frame.

        ``amplitude`` (and ``phase``) is ``[n, antennas, subcarriers, packets]``.
        ``extra`` adds more per-frame arrays (e.g. ``{"timestamp": float64 [n]}``),
        stored under their names with their own dtypes. The first call fixes
        every array's row shape and dtype; later calls must match.
        """
        n = len(amplitude)
        rows: dict[str, Any] = {
            "amplitude": amplitude,
            "phase": phase,
            "keypoints": keypoints,
            "visibility": visibility,
            "environment": environment,
            "subject": subject,
            "action": action,
            "sequence": sequence,
            "frame_index": frame_index,
            "person_count": person_count,
            "valid": valid,
        }
        dtypes = {"amplitude": "float32", "phase": "float32", "keypoints": "float32"}
        dtypes |= {"visibility": "bool", **mf.METADATA}
        for name, value in (extra or {}).items():
            if name in rows:
                raise ValueError(f"extra array {name!r} clashes with a standard array")
            rows[name] = value
            dtypes[name] = (
                self._arrays[name].dtype if name in self._arrays else np.asarray(value).dtype
            )
        if self.n_frames == 0 and not self._arrays:
            if np.ndim(amplitude) != 4:
                raise ValueError(
                    f"amplitude must be [n, antennas, subcarriers, packets], got {np.shape(amplitude)}"
                )
            for name, value in rows.items():
                if value is None:
                    continue
                dt = np.dtype(dtypes[name])
                row_shape = np.shape(value)[1:] if np.ndim(value) > 0 else ()
                self._arrays[name] = _NpyAppender(self.tmp / f"{name}.npy", dt, row_shape)
        for name, value in rows.items():
            if (value is None) != (name not in self._arrays):
                raise ValueError(
                    f"{name} was {'given' if value is None else 'not given'} for earlier frames"
                )
            if value is None:
                continue
            out = self._arrays[name]
            arr = np.asarray(value)
            if arr.ndim == 0:
                arr = np.broadcast_to(arr, (n,))
            if arr.shape != (n, *out.row_shape):
                raise ValueError(
                    f"{name} must have shape {[n, *out.row_shape]}, got {list(arr.shape)}"
                )
            out.append(arr)
        self.n_frames += n

    def add_split(
        self, name: str, parts: dict[str, list[int]], definition: str, **extra: Any
    ) -> None:
        """Record a split: ``parts`` maps part names (train, val, test, ...) to sequence codes."""
        self._splits[name] = {
            "name": name,
            "definition": definition,
            "parts": {k: sorted(int(s) for s in v) for k, v in parts.items()},
            **extra,
        }

    def commit(self) -> Path:
        """Complete the files, write the manifest and move the store into place."""
        if self._done:
            return self.path
        try:
            if not self._arrays:
                raise ValueError("no frames were added")
            for a in self._arrays.values():
                a.close()
            arrays = {
                name: {"file": a.path.name, "dtype": str(a.dtype), "shape": [a.rows, *a.row_shape]}
                for name, a in self._arrays.items()
            }
            splits = {}
            if self._splits:
                (self.tmp / "splits").mkdir()
            for name, split in self._splits.items():
                file = f"splits/{name}.json"
                (self.tmp / file).write_text(json.dumps(split, indent=1))
                splits[name] = {"file": file, "definition": split["definition"]}
            manifest = {
                "format": mf.FORMAT,
                "schema_version": mf.SCHEMA_VERSION,
                "n_frames": self.n_frames,
                "arrays": arrays,
                "csi": self.csi,
                "labels": self.labels,
                "metadata": self._names,
                "repair": self.repair,
                "default_window": self.default_window,
                "splits": splits,
                "provenance": self.provenance,
            }
            mf.check(manifest, self.tmp / mf.MANIFEST)
            with open(self.tmp / mf.MANIFEST, "w") as f:
                json.dump(manifest, f, indent=1)
                f.flush()
                os.fsync(f.fileno())
            self._move_into_place()
        except BaseException:
            self.abort()
            raise
        self._done = True
        return self.path

    def _move_into_place(self) -> None:
        if self.path.exists() and not self.overwrite:
            raise FileExistsError(f"{self.path} appeared while converting; not replacing it")
        replace_dir(self.tmp, self.path)  # an existing store is exchanged, never missing

    def abort(self) -> None:
        """Remove everything written so far."""
        for a in self._arrays.values():
            if not a.file.closed:
                a.file.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
        self._done = True
