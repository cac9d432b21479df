"""WiFlow preprocessed data -> store: ``csipose convert wiflow DIR OUT``.

Reads ``csi_windows.npy`` ``[N, 540, 20]`` (memory-mapped, streamed in
chunks), ``window_info.npz``, ``file_info.npz``, ``config.npz`` and the labels
either from ``all_keypoints.npy`` + ``file_mappings.pkl`` (NPY mode) or from
the OpenPose BODY_25 CSVs named in ``file_info.npz`` (CSV mode). One store row
per window; its label is the source frame ``window_to_frame``. The seed-42
file-level 70/15/15 split is written as ``wiflow-seed42``.

Deviations from upstream's loader: a joint at exactly (0, 0) is invisible
instead of imputed (``--clean wiflow`` imputes as upstream); a missing
keypoint mapping is an error, not a zero label; windows with non-finite or
absurd values are marked invalid.

The pickled inputs (``file_info.npz``, ``file_mappings.pkl``) are unpickled:
convert only data you trust.
"""

from __future__ import annotations

import argparse
import functools
import math
import pickle
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from csipose.data.convert import Converter
from csipose.data.convert._common import load_npy, open_store, progress, zero_nonfinite
from csipose.errors import DataFormatError

KEYPOINT_SCALE = np.float32(1000)  # WiFlow's keypoint_scale (CSV mode only, as upstream)
N_JOINTS = 15  # the first 15 BODY_25 joints
CHUNK = 4096  # windows per write: 44 MB of float32 at 540 x 20
CLEAN_RULES = {
    "none": "none: joints at exactly (0, 0) are kept as 0 and marked invisible",
    "wiflow-npy": "WiFlow enable_temporal_clean, NPY mode: a joint at exactly (0, 0) is replaced "
    "by the mean of the frame's other joints (float32, as upstream); an all-zero frame stays 0",
    "wiflow-csv": "WiFlow enable_temporal_clean, CSV mode: per joint, frames at exactly (0, 0) are "
    "interpolated linearly in time between the nearest non-zero frames, copying the nearest one "
    "at the sequence ends (float64 interpolation; upstream's sequential float32 fill agrees up "
    "to float32 rounding); a joint never seen in the file stays 0",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--keypoints",
        choices=("auto", "npy", "csv"),
        default="auto",
        help="label source: npy = all_keypoints.npy + file_mappings.pkl, csv = the OpenPose CSVs "
        "in file_info.npz; auto = npy when both files exist (as upstream)",
    )
    parser.add_argument(
        "--csv-root",
        help="directory holding the keypoint CSVs, looked up by file name (default: the paths "
        "in file_info.npz, relative ones against SRC)",
    )
    parser.add_argument(
        "--clean",
        choices=("none", "wiflow"),
        default="none",
        help="none: joints at (0, 0) are invisible; wiflow: impute them as upstream's "
        "enable_temporal_clean (visible, flagged in keypoint_imputed)",
    )
    parser.add_argument(
        "--absurd",
        type=float,
        default=1e3,
        help="a window with a value of larger magnitude is invalid (WiFlow's are said to be "
        "[0, 1]-normalised; the public files 487-499 reach 3.4e38)",
    )
    parser.set_defaults(overwrite=False)  # lets convert(..., overwrite=True) through


def load_npz(path: Path, fields: tuple[str, ...], pickled: bool = False) -> dict[str, Any]:
    """The ``fields`` of ``path``; a missing file or field is a DataFormatError naming both."""
    try:
        with np.load(path, allow_pickle=pickled) as z:
            missing = [f for f in fields if f not in z.files]
            found = {f: z[f] for f in fields if f in z.files}
    except FileNotFoundError:
        raise DataFormatError(f"{path}: missing") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError) as e:
        raise DataFormatError(f"{path}: cannot read as .npz: {e}") from e
    if missing:
        raise DataFormatError(f"{path}: field {missing[0]!r} is missing")
    return found


def integers(path: Path, field: str, x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if x.dtype.kind not in "iu" or x.shape != shape:
        raise DataFormatError(
            f"{path}: field {field!r} is {x.dtype} {x.shape}; expected integers {shape}"
        )
    return x.astype(np.int64)


def seed42_split(n_files: int) -> dict[str, list[int]]:
    """WiFlow's file-level split: ``random.seed(42)``, ``random.shuffle`` of 0..n-1, 70/15/15 floored."""
    idx = list(range(n_files))
    random.Random(42).shuffle(idx)
    n_train, n_val = math.floor(0.7 * n_files), math.floor(0.15 * n_files)
    return {
        "train": idx[:n_train],
        "val": idx[n_train : n_train + n_val],
        "test": idx[n_train + n_val :],
    }


def read_csv(path: Path) -> np.ndarray:
    """Joints 0..14 of an OpenPose BODY_25 CSV with a header row (the last 50 columns), / 1000."""
    try:
        with open(path) as f:
            n_cols = len(f.readline().split(","))
        if n_cols < 50:
            raise DataFormatError(
                f"{path}: {n_cols} columns; a BODY_25 keypoint CSV ends with 50 (x, y of 25 joints)"
            )
        data = np.loadtxt(
            path, delimiter=",", skiprows=1, usecols=range(n_cols - 50, n_cols), ndmin=2
        )
    except FileNotFoundError:
        raise DataFormatError(f"{path}: keypoints CSV missing") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise DataFormatError(f"{path}: cannot read as a numeric CSV with a header row: {e}") from e
    return (data.astype(np.float32) / KEYPOINT_SCALE).reshape(len(data), 25, 2)[:, :N_JOINTS]


def clean_frames(kp: np.ndarray) -> np.ndarray:
    """NPY-mode clean: zero joints -> the mean of the frame's non-zero joints.

    Frame by frame with numpy's mean, as upstream, so the float32 sums match bit for bit.
    """
    out = kp.copy()
    zero = (kp == 0).all(axis=-1)
    for i in np.flatnonzero(zero.any(axis=1) & ~zero.all(axis=1)):
        out[i, zero[i]] = kp[i, ~zero[i]].mean(axis=0)
    return out


def clean_sequence(kp: np.ndarray) -> np.ndarray:
    """CSV-mode clean: per joint, interpolate zero frames in time between non-zero ones."""
    out = kp.copy()
    t = np.arange(len(kp))
    for j in range(kp.shape[1]):
        zero = (kp[:, j] == 0).all(axis=-1)
        if zero.any() and not zero.all():
            for d in range(kp.shape[2]):
                out[zero, j, d] = np.interp(t[zero], t[~zero], kp[~zero, j, d])
    return out


class Labels:
    """The label frame of each window, raw and as stored (after the optional clean)."""

    def __init__(self, src: Path, args: argparse.Namespace, files: list[str]):
        self.src, self.files, self.clean = src, files, args.clean == "wiflow"
        npy, pkl = src / "all_keypoints.npy", src / "file_mappings.pkl"
        mode = args.keypoints
        if mode == "auto":
            mode = "npy" if npy.exists() and pkl.exists() else "csv"
        self.mode = mode
        if mode == "npy":
            self.all = self._load_npy(npy)
            self.start = self._load_mappings(pkl)
        else:
            root = args.csv_root
            self.paths = [Path(root) / Path(f).name if root else src / f for f in files]
            self.csv = functools.lru_cache(maxsize=8)(self._load_csv)

    @staticmethod
    def _load_npy(path: Path) -> np.ndarray:
        kp = load_npy(path, mmap=True)
        if kp.ndim != 3 or kp.shape[1:] != (N_JOINTS, 2) or kp.dtype.kind != "f":
            raise DataFormatError(
                f"{path}: all_keypoints is {kp.dtype} {kp.shape}; expected float (frames, 15, 2)"
            )
        return kp

    def _load_mappings(self, path: Path) -> np.ndarray:
        try:
            with open(path, "rb") as f:
                mappings = pickle.load(f)  # the format is a pickle; see the module docstring
        except FileNotFoundError:
            raise DataFormatError(f"{path}: missing (NPY keypoint mode)") from None
        except Exception as e:  # unpickling bad bytes can raise almost anything
            raise DataFormatError(f"{path}: cannot unpickle: {e!r}") from e
        start = np.empty(len(self.files), np.int64)
        for i, name in enumerate(self.files):
            entry = mappings.get(name) if isinstance(mappings, dict) else None
            if not isinstance(entry, dict) or not isinstance(
                entry.get("start_idx"), int | np.integer
            ):
                raise DataFormatError(
                    f"{path}: no start_idx for keypoints file {name!r} (file index {i}); "
                    "upstream would label its windows with zeros"
                )
            start[i] = entry["start_idx"]
        return start

    def _load_csv(self, file: int) -> tuple[np.ndarray, np.ndarray]:
        raw = read_csv(self.paths[file])
        return raw, clean_sequence(raw) if self.clean else raw

    def get(self, w2f: np.ndarray, frame: np.ndarray, first: int) -> tuple[np.ndarray, np.ndarray]:
        """Raw and stored labels ``[n, 15, 2]`` of windows ``first ..`` of files ``w2f``."""
        if self.mode == "npy":
            idx = self.start[w2f] + frame
            bad = np.flatnonzero((idx < 0) | (idx >= len(self.all)))
            if len(bad):
                i = bad[0]
                raise DataFormatError(
                    f"{self.src / 'all_keypoints.npy'}: window {first + i} needs frame {idx[i]} "
                    f"(start_idx of {self.files[w2f[i]]!r} + window_to_frame {frame[i]}); "
                    f"the file has {len(self.all)}"
                )
            raw = np.asarray(self.all[idx], np.float32)
            return raw, clean_frames(raw) if self.clean else raw
        raw = np.empty((len(w2f), N_JOINTS, 2), np.float32)
        out = np.empty_like(raw)
        for f in np.unique(w2f):
            rows = np.flatnonzero(w2f == f)
            seq_raw, seq_out = self.csv(int(f))
            if frame[rows].max() >= len(seq_raw):
                i = rows[np.argmax(frame[rows])]
                raise DataFormatError(
                    f"{self.paths[f]}: window {first + i} needs keypoint frame {frame[i]}; the CSV "
                    f"has {len(seq_raw)}"
                )
            raw[rows], out[rows] = seq_raw[frame[rows]], seq_out[frame[rows]]
        return raw, out


def read_layout(src: Path) -> dict[str, Any]:
    """The window array (memory-mapped) and its per-window and per-file tables, cross-checked."""
    path = src / "csi_windows.npy"
    csi = load_npy(path, mmap=True)
    if csi.ndim != 3 or csi.dtype.kind != "f":
        raise DataFormatError(
            f"{path}: csi_windows is {csi.dtype} {csi.shape}; expected float [N, 540, 20]"
        )
    n = len(csi)
    if n == 0:
        raise DataFormatError(f"{path}: csi_windows holds no windows")
    p = src / "window_info.npz"
    info = load_npz(p, ("window_to_file", "window_to_frame"))
    w2f = integers(p, "window_to_file", info["window_to_file"], (n,))
    frame = integers(p, "window_to_frame", info["window_to_frame"], (n,))
    p = src / "file_info.npz"
    finfo = load_npz(p, ("keypoints_files", "file_ids", "window_ranges"), pickled=True)
    files = [str(f) for f in np.asarray(finfo["keypoints_files"]).ravel()]
    if len(set(files)) != len(files):
        raise DataFormatError(f"{p}: field 'keypoints_files' names a file twice")
    ranges = integers(p, "window_ranges", finfo["window_ranges"], (len(files), 2))
    if ((w2f < 0) | (w2f >= len(files))).any():
        raise DataFormatError(
            f"{src / 'window_info.npz'}: field 'window_to_file' points outside the {len(files)} files"
        )
    if (frame < 0).any():
        raise DataFormatError(
            f"{src / 'window_info.npz'}: field 'window_to_frame' has negative frames"
        )
    runs = w2f[np.concatenate([[0], np.flatnonzero(np.diff(w2f)) + 1])]
    if len(np.unique(runs)) != len(runs):  # a store sequence must be consecutive rows
        raise DataFormatError(
            f"{src / 'window_info.npz'}: field 'window_to_file': the windows of a file are not "
            "consecutive"
        )
    i = np.arange(n)
    outside = np.flatnonzero((i < ranges[w2f, 0]) | (i >= ranges[w2f, 1]))
    if len(outside):
        w = outside[0]
        raise DataFormatError(
            f"{p}: field 'window_ranges': window {w} belongs to file {w2f[w]} by window_info.npz "
            f"but lies outside its range {ranges[w2f[w]].tolist()}"
        )
    p = src / "config.npz"
    cfg = load_npz(p, ("window_size", "stride"))
    size, stride = int(cfg["window_size"]), int(cfg["stride"])
    if size != csi.shape[2]:
        raise DataFormatError(
            f"{p}: field 'window_size' is {size} but csi_windows.npy windows have {csi.shape[2]} steps"
        )
    return {"csi": csi, "w2f": w2f, "frame": frame, "files": files, "size": size, "stride": stride}


def run(src: Path, out: Path, args: argparse.Namespace) -> Path:
    absurd = float(args.absurd)
    if not absurd > 0:
        raise ValueError(f"--absurd must be > 0, got {args.absurd}")
    if args.keypoints not in ("auto", "npy", "csv") or args.clean not in ("none", "wiflow"):
        raise ValueError(f"unknown --keypoints {args.keypoints!r} or --clean {args.clean!r}")
    if not src.is_dir():
        raise FileNotFoundError(f"{src}: not a directory")
    d = read_layout(src)
    labels = Labels(src, args, d["files"])
    csi, n_feat, n_steps = d["csi"], d["csi"].shape[1], d["csi"].shape[2]
    clean = f"wiflow-{labels.mode}" if labels.clean else "none"
    with open_store(
        out, src, args, converter="wiflow",
        options={
            "keypoints": labels.mode, "clean": args.clean,
            "csv_root": None if args.csv_root is None else str(args.csv_root),
            "clean_rule": CLEAN_RULES[clean], "absurd": absurd,
            "keypoint_scale": "1/1000 (CSV)" if labels.mode == "csv" else
            "none: all_keypoints.npy is stored scaled, as upstream reads it",
        },
        csi={
            "layout": ["frame", "antenna", "subcarrier", "packet"],
            "antennas": {"n_tx": None, "n_rx": None, "order": "unknown"},
            "subcarrier_indices": list(range(n_feat)),
            "subcarrier_axis": f"feature positions 0..{n_feat - 1} of WiFlow's {n_feat} CSI "
            "features per time step; their composition (antennas, subcarriers) is unpublished",
            "null_subcarriers": [],
            "packets_per_frame": n_steps,
            "packet_axis": f"{n_steps} time steps of one window",
            "source_window": {"size": d["size"], "stride": d["stride"]},
            "units": {"amplitude": "as released (WiFlow preprocessed; said to be [0, 1]-normalised)"},
            "hardware_profile": {
                "name": "wiflow-unknown",
                "note": "WiFlow does not state its capture hardware or how the 540 features are built",
            },
        },
        labels={
            "skeleton": "body25_15", "dims": 2, "units": "px/1000", "max_people": 1,
            "coordinate_frame": "image",
            "label_frame": "the keypoint frame window_to_frame of the window's source file",
        },
        default_window={"length": 1, "stride": 1, "label": "first"},
    ) as w:  # fmt: skip
        # Sequence codes are the file indices of file_info.npz.
        for name in d["files"]:
            w.code("sequence", name)
        unknown = {k: w.code(k, "unknown") for k in ("environment", "subject", "action")}
        tally = {"values": 0, "nonfinite": 0, "absurd": 0, "excluded": 0}
        starts = range(0, len(csi), CHUNK)
        for a in progress(starts, total=len(starts), desc="wiflow", unit="chunk"):
            b = min(a + CHUNK, len(csi))
            x = np.array(csi[a:b], dtype=np.float32)
            x, nonfinite, n_values = zero_nonfinite(x)
            absurd_rows = (np.abs(x) > absurd).reshape(len(x), -1).any(axis=1)
            valid = ~(nonfinite | absurd_rows)
            tally["values"] += n_values
            tally["nonfinite"] += int(nonfinite.sum())
            tally["absurd"] += int(absurd_rows.sum())
            tally["excluded"] += int((~valid).sum())
            w2f, frame = d["w2f"][a:b], d["frame"][a:b]
            raw, kp = labels.get(w2f, frame, a)
            stored_zero = (kp == 0).all(axis=-1)
            extra = (
                {"keypoint_imputed": (raw == 0).all(axis=-1) & ~stored_zero}
                if labels.clean
                else None
            )
            w.add_frames(
                amplitude=x[:, None], keypoints=kp, visibility=~stored_zero,
                sequence=w2f.astype(np.int32), frame_index=frame.astype(np.int32),
                person_count=1, valid=valid, extra=extra, **unknown,
            )  # fmt: skip
        w.repair = {
            "rule": f"a window with a non-finite value or a value with |x| > {absurd:g} is "
            "invalid; non-finite values are set to 0, the others are kept",
            "repaired_values": tally["values"],
            "repaired_frames": tally["nonfinite"],
            "excluded_frames": tally["excluded"],
            "nonfinite_windows": tally["nonfinite"],
            "absurd_windows": tally["absurd"],
            "absurd_threshold": absurd,
        }
        w.add_split(
            "wiflow-seed42",
            seed42_split(len(d["files"])),
            definition="WiFlow file-level split: random.seed(42); random.shuffle(file indices "
            "0..n-1 in file_info.npz order); the first floor(0.7 n) files train, the next "
            "floor(0.15 n) validate, the rest test. Sequence code = file index.",
            seed=42,
        )
    return out


CONVERTER = Converter(
    name="wiflow",
    help="WiFlow preprocessed_csi_data directory (csi_windows.npy, window_info.npz, ...)",
    add_arguments=add_arguments,
    run=run,
)
