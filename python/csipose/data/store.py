"""Reading a store: memory-mapped arrays, windows, and batches gathered in Rust.

    store = Store.open("runs/data/mmfi", window={"length": 1}, transform={"amplitude": CsiTransform(minmax=True)})
    len(store)                      # number of windows
    batch = store.gather([3, 17, 42])   # dict of numpy arrays, batch axis first
    parts = store.split("p3-s1-r0.8")   # {"train": window indices, "val": ...}

CSI arrays come out as ``[batch, window length, antennas, subcarriers, packets]``
float32 after the declared load-time transform; every other per-frame array
comes out at the window's label frame (``[batch, ...]``) or, for label
``"all"``, at every frame (``[batch, length, ...]``). The arrays can be
preallocated (``out=``) and shared with torch without a copy
(``torch.from_numpy``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from csipose import _native
from csipose._files import write_text_atomic
from csipose.data import manifest as mf
from csipose.data.transform import CsiTransform, ZScore
from csipose.data.windows import WindowSpec, window_starts
from csipose.errors import DataFormatError

#: Arrays holding CSI frames [frames, antennas, subcarriers, packets].
CSI_FIELDS = ("amplitude", "phase")

_INT64 = np.dtype(np.int64)


class Store:
    """A store opened for reading. Use :meth:`open`."""

    def __init__(
        self,
        path: Path,
        manifest: dict[str, Any],
        native: Any,
        window: WindowSpec,
        transform: Mapping[str, CsiTransform],
    ):
        self.path = path
        self.manifest = manifest
        self._native = native
        self.window = window
        self._label_offsets = window.label_offsets()
        self._fields: tuple[str, ...] = tuple(manifest["arrays"])
        self._prepared: Any = None  # the native gather, prepared on first use
        self._rows: dict[str, tuple[tuple[int, ...], np.dtype]] | None = None
        self.transform = {
            f: transform.get(f, CsiTransform()) for f in CSI_FIELDS if f in manifest["arrays"]
        }
        unknown = set(transform) - set(self.transform)
        if unknown:
            raise ValueError(
                f"transforms given for {sorted(unknown)}, which are not CSI arrays of this store"
            )
        for f, t in self.transform.items():
            s = manifest["arrays"][f]["shape"][2]
            if t.subcarriers is not None and t.subcarriers.n_src != s:
                raise ValueError(
                    f"the subcarrier map for {f!r} takes {t.subcarriers.n_src} subcarriers, "
                    f"the store has {s}"
                )
        meta = {k: self.array(k) for k in ("sequence", "frame_index", "valid")}
        try:
            self.windows = window_starts(
                meta["sequence"], meta["frame_index"], meta["valid"], window
            )
        except ValueError as e:
            raise DataFormatError(f"{path / mf.MANIFEST}: {e}") from None

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        window: WindowSpec | dict[str, Any] | None = None,
        transform: Mapping[str, CsiTransform] | None = None,
    ) -> Store:
        """Map the store at ``path``; ``window`` defaults to the manifest's default window."""
        path = Path(path)
        m = mf.load(path)
        files = [(name, path / spec["file"]) for name, spec in m["arrays"].items()]
        native = _native.MappedStore(files)
        for name, spec in m["arrays"].items():
            shape, dtype = native.shape(name), native.dtype(name)
            if shape != spec["shape"] or dtype != spec["dtype"]:
                raise DataFormatError(
                    f"{path / spec['file']}: holds {dtype} {shape}, the manifest declares "
                    f"{spec['dtype']} {spec['shape']}"
                )
        return cls(path, m, native, WindowSpec.of(window, m["default_window"]), transform or {})

    def with_options(
        self,
        *,
        window: WindowSpec | dict[str, Any] | None = None,
        transform: Mapping[str, CsiTransform] | None = None,
    ) -> Store:
        """The same mapped store with other windows or transforms."""
        return Store(
            self.path,
            self.manifest,
            self._native,
            WindowSpec.of(window, self.window.to_dict()) if window is not None else self.window,
            self.transform if transform is None else transform,
        )

    def __len__(self) -> int:
        return len(self.windows)

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r}, {len(self)} windows of {self.n_frames} frames)"

    def __getstate__(self) -> dict[str, Any]:
        # The mapping is re-created in the receiving process (DataLoader workers).
        return {"path": str(self.path), "window": self.window, "transform": self.transform}

    def __setstate__(self, state: dict[str, Any]) -> None:
        other = Store.open(state["path"], window=state["window"], transform=state["transform"])
        self.__dict__.update(other.__dict__)

    @property
    def n_frames(self) -> int:
        return int(self.manifest["n_frames"])

    @property
    def fields(self) -> list[str]:
        """Every per-frame array of the store."""
        return list(self.manifest["arrays"])

    def array(self, name: str) -> np.ndarray:
        """Array ``name`` as stored (read-only memory map)."""
        spec = self.manifest["arrays"].get(name)
        if spec is None:
            raise KeyError(f"the store has no array {name!r}; it has {', '.join(self.fields)}")
        return np.load(self.path / spec["file"], mmap_mode="r")

    def label_frames(self, indices: Any) -> np.ndarray:
        """The labelling frame of each window (``[n]``; ``[n, length]`` for label ``"all"``)."""
        return self._label_rows(self.windows[self._indices(indices)])

    def _label_rows(self, starts: np.ndarray) -> np.ndarray:
        """The labelling frames of windows starting at ``starts`` (checked)."""
        if self.window.label == "all":
            return starts[:, None] + self._label_offsets[None, :]
        return starts + self._label_offsets[0]

    def _indices(self, indices: Any) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        # One reduction checks both ends: a negative index is huge as uint64.
        if len(idx) and idx.view(np.uint64).max() >= len(self):
            bad = idx[(idx < 0) | (idx >= len(self))][0]
            raise IndexError(f"window {bad} is out of range for {len(self)} windows")
        return idx

    def out_shape(self, name: str, n: int) -> tuple[int, ...]:
        """Shape of field ``name`` in a batch of ``n`` windows."""
        shape = self.manifest["arrays"][name]["shape"]
        if name in self.transform:
            _, a, s, p = shape
            return (n, self.window.length, a, self.transform[name].out_subcarriers(s), p)
        lead = (n, self.window.length) if self.window.label == "all" else (n,)
        return (*lead, *shape[1:])

    def allocate(self, n: int, fields: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """Empty output arrays for a batch of ``n`` windows (reusable with ``gather(out=...)``)."""
        names = self.fields if fields is None else list(fields)
        return {
            f: np.empty(self.out_shape(f, n), dtype=np.dtype(self.manifest["arrays"][f]["dtype"]))
            for f in names
        }

    def gather(
        self,
        indices: Any,
        *,
        fields: Iterable[str] | None = None,
        out: dict[str, np.ndarray] | None = None,
    ) -> dict[str, np.ndarray]:
        """The windows ``indices`` as a dict of arrays (batch axis first).

        ``fields`` picks arrays (default: all); ``out`` supplies preallocated
        C-contiguous arrays (see :meth:`allocate`) that are filled in place.
        """
        idx = indices
        if not (type(idx) is np.ndarray and idx.dtype is _INT64 and idx.ndim == 1):
            idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        names: Sequence[str] = self._fields if fields is None else list(fields)
        if out is None:
            rows = self._out_rows()
            # An unknown name gets no array: the native call raises for it, after
            # a bad window index (the order of the checks it always had).
            out = {f: np.empty((len(idx), *rows[f][0]), rows[f][1]) for f in names if f in rows}
        # One native call checks the windows, the names and the outs (as the
        # Python did, same messages) and fills every field.
        self._prepared_gather().gather(idx, names, [out.get(f) for f in names])
        return {f: out[f] for f in names}

    def _out_rows(self) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        """Each array's batch row shape and dtype (``out_shape`` without the batch axis)."""
        if self._rows is None:
            rows = {}
            for f, spec in self.manifest["arrays"].items():
                try:
                    rows[f] = (self.out_shape(f, 0)[1:], np.dtype(spec["dtype"]))
                except ValueError:
                    pass  # a CSI array of another shape: gathering it raises, naming it
            self._rows = rows
        return self._rows

    def _prepared_gather(self) -> Any:
        """The native gather with this store's windows and transforms, made once:
        per call it would cost more than a small batch's copy."""
        if self._prepared is None:
            args = {f: t.native_args() for f, t in self.transform.items()}
            self._prepared = _native.WindowGather(
                self._native,
                np.ascontiguousarray(self.windows, dtype=np.int64),
                self.window.length,
                np.ascontiguousarray(self._label_offsets, dtype=np.int64),
                self.window.label == "all",
                list(self._fields),
                [(f, a["minmax"], a["map"], a["zscore"]) for f, a in args.items()],
            )
        return self._prepared

    def split(self, name: str) -> dict[str, np.ndarray]:
        """Window indices of each part of split ``name`` (by the window's sequence)."""
        splits = self.manifest.get("splits") or {}
        if name not in splits:
            raise KeyError(f"the store has no split {name!r}; it has {', '.join(splits) or 'none'}")
        spec = json.loads((self.path / splits[name]["file"]).read_text())
        seq = self.array("sequence")[self.windows]
        return {part: np.flatnonzero(np.isin(seq, codes)) for part, codes in spec["parts"].items()}

    def zscore(
        self, field: str = "amplitude", *, windows: Any, source: str, eps: float = 1e-6
    ) -> ZScore:
        """Z-score statistics of ``field`` over the frames of ``windows`` (e.g. a
        split's training part), after this store's min-max and subcarrier map.

        Cached in the store directory (``stats/``), keyed by the frames and the
        transform, so every run and every DDP rank gets the same numbers.
        """
        if field not in self.transform:
            raise KeyError(f"{field!r} is not a CSI array of this store")
        t = self.transform[field].without_zscore()
        frames = np.unique(
            (self.windows[self._indices(windows)][:, None] + np.arange(self.window.length)).reshape(
                -1
            )
        )
        key = hashlib.sha256(
            json.dumps(
                {
                    "field": field,
                    "minmax": t.minmax,
                    "map": None if t.subcarriers is None else t.subcarriers.to_dict(),
                }
            ).encode()
            + frames.tobytes()
        ).hexdigest()[:16]
        cache = self.path / "stats" / f"zscore-{field}-{key}.json"
        if cache.exists():
            d = json.loads(cache.read_text())
        else:
            args = t.native_args()
            mean, std, count = self._native.moments(
                field, frames, minmax=args["minmax"], map=args["map"]
            )
            _, a, s, _ = self.manifest["arrays"][field]["shape"]
            shape = (a, t.out_subcarriers(s))
            d = {
                "mean": mean.reshape(shape).tolist(),
                "std": std.reshape(shape).tolist(),
                "count": count,
            }
            try:
                write_text_atomic(cache, json.dumps(d))
            except OSError:
                pass  # a read-only store: the statistics are simply recomputed next time
        return ZScore(
            np.asarray(d["mean"], np.float64),
            np.asarray(d["std"], np.float64),
            eps,
            f"statistics of {source} ({len(frames)} frames, {d['count']} values per entry)",
        )
