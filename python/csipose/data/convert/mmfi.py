"""MM-Fi (official release tree) -> store: ``csipose convert mmfi ROOT OUT``.

Reads ``ROOT/E0e/Sxx/Ayy/ground_truth.npy`` (frames, 17, 3: H36M-17 joints in
metres, camera frame) and ``wifi-csi/frameNNN.mat`` (``CSIamp``/``CSIphase``,
3 rx x 114 subcarriers x 10 packets). One store row per frame, streamed
sequence by sequence; the frame count comes from the ground truth, and an
empty frame file is skipped with its ground-truth row, as the toolkit does.
The toolkit's S1/S2/S3 settings are written as splits.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from csipose.data.convert import Converter
from csipose.data.convert._common import load_npy, open_store, progress
from csipose.data.convert.mmfi_splits import PROTOCOLS
from csipose.data.convert.mmfi_splits import load as load_s1
from csipose.data.repair import RepairTally
from csipose.data.writer import StoreWriter
from csipose.errors import DataFormatError
from csipose.signal import SUBCARRIERS

CSI_SHAPE = (3, 114, 10)  # rx antennas, subcarriers, packets per frame
FIELDS = ("CSIamp", "CSIphase")
S2_VAL = [f"S{s:02d}" for s in range(5, 41, 5)]
S3_VAL_ENV = "E04"

CSI = {
    "layout": ["frame", "antenna", "subcarrier", "packet"],
    "antennas": {"n_tx": 1, "n_rx": 3, "order": "tx-major"},
    "subcarrier_indices": SUBCARRIERS["atheros-ht40"],
    "null_subcarriers": [],
    "packets_per_frame": 10,
    "units": {"amplitude": "as released (Atheros CSI Tool)", "phase": "rad, as released"},
    "hardware_profile": {
        "name": "mmfi-atheros-1x3-ht40",
        "tool": "Atheros CSI Tool",
        "bandwidth_mhz": 40,
        "band_ghz": 5,
        "frame_rate_hz": 10,
    },
}
LABELS = {
    "skeleton": "h36m17",
    "dims": 3,
    "units": "m",
    "max_people": 1,
    "coordinate_frame": "camera",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--protocol",
        choices=sorted(PROTOCOLS),
        default="p3",
        help="action subset: p1 = 14 daily actions, p2 = 13 rehabilitation actions, p3 = all 27",
    )
    parser.set_defaults(overwrite=False)  # lets convert(..., overwrite=True) through


def environment_of(subject: int) -> str:
    """The toolkit's mapping: E01 = S01-S10, E02 = S11-S20, E03 = S21-S30, E04 = S31-S40."""
    return f"E{(subject - 1) // 10 + 1:02d}"


def find_sequences(root: Path, actions: list[str]) -> list[tuple[str, str, str, Path]]:
    """(environment, subject, action, directory) of every sequence of ``actions`` under ``root``."""
    found = []
    for env in sorted(p for p in root.glob("E[0-9][0-9]") if p.is_dir()):
        for subj in sorted(p for p in env.glob("S[0-9][0-9]") if p.is_dir()):
            s = int(subj.name[1:])
            if not 1 <= s <= 40:
                raise DataFormatError(f"{subj}: subject {subj.name} is outside S01-S40")
            if environment_of(s) != env.name:
                raise DataFormatError(
                    f"{subj}: subject {subj.name} belongs to environment {environment_of(s)} "
                    f"(E01 = S01-S10, E02 = S11-S20, E03 = S21-S30, E04 = S31-S40), "
                    f"not {env.name}"
                )
            for act in sorted(p for p in subj.glob("A[0-9][0-9]") if p.is_dir()):
                if act.name in actions:
                    found.append((env.name, subj.name, act.name, act))
    if not found:
        raise DataFormatError(
            f"{root}: no MM-Fi sequence directories E0e/Sxx/Ayy with an action of this protocol"
        )
    return found


def read_frame(path: Path) -> list[np.ndarray]:
    """``CSIamp`` and ``CSIphase`` of one frame file, each checked to be (3, 114, 10) real."""
    from scipy.io import loadmat

    try:
        mat = loadmat(path, variable_names=FIELDS)
    except Exception as e:  # scipy raises many kinds (IndexError, zlib.error, ...) on bad bytes
        raise DataFormatError(f"{path}: cannot read the .mat file: {e!r}") from e
    out = []
    for field in FIELDS:
        if field not in mat:
            raise DataFormatError(f"{path}: field {field!r} is missing")
        x = mat[field]
        if x.shape != CSI_SHAPE or x.dtype.kind not in "fiu":
            raise DataFormatError(
                f"{path}: field {field!r} is {x.dtype} {x.shape}; expected real {CSI_SHAPE} "
                "(rx antennas, subcarriers, packets)"
            )
        out.append(x)
    return out


def read_sequence(seq: Path) -> dict[str, Any]:
    """A sequence's frames with their ground truth; empty frame files are skipped."""
    gt_path = seq / "ground_truth.npy"
    gt = load_npy(gt_path)
    if gt.ndim != 3 or gt.shape[1:] != (17, 3) or not np.issubdtype(gt.dtype, np.number):
        raise DataFormatError(
            f"{gt_path}: ground_truth is {gt.dtype} {gt.shape}; expected (frames, 17, 3) numbers"
        )
    kept, amp, phase = [], [], []
    for i in range(len(gt)):
        path = seq / "wifi-csi" / f"frame{i + 1:03d}.mat"
        try:
            empty = path.stat().st_size == 0
        except FileNotFoundError:
            raise DataFormatError(
                f"{path}: frame file missing (ground_truth.npy has {len(gt)} frames)"
            ) from None
        if empty:
            continue
        a, p = read_frame(path)
        kept.append(i)
        amp.append(a)
        phase.append(p)
    return {
        "frame_index": np.asarray(kept, np.int32),
        "keypoints": gt[kept].astype(np.float32),
        "amplitude": np.asarray(amp, np.float32).reshape(-1, *CSI_SHAPE),
        "phase": np.asarray(phase, np.float32).reshape(-1, *CSI_SHAPE),
        "skipped": len(gt) - len(kept),
    }


def train_val(
    seqs: list[tuple[int, str, str, str]], is_val: Callable[[str, str, str], bool]
) -> dict[str, list[int]]:
    """Sequence codes split by ``is_val(env, subject, action)``."""
    val = {c for c, *names in seqs if is_val(*names)}
    return {"train": [c for c, *_ in seqs if c not in val], "val": sorted(val)}


def add_splits(w: StoreWriter, protocol: str, seqs: list[tuple[int, str, str, str]]) -> None:
    """The toolkit's settings S1 (ratios 0.8 and 0.7), S2 and S3 over ``(code, env, subj, act)``."""
    s1 = load_s1()
    for ratio, lists in s1["val_subjects"][protocol].items():
        w.add_split(
            f"s1-random-{ratio}",
            train_val(seqs, lambda e, s, a, lists=lists: s in lists[a]),
            definition=f"MM-Fi S1 random_split, protocol {protocol}, ratio {ratio}: {s1['definition']}",
            protocol=protocol, ratio=float(ratio), seed=s1["seed"], val_subjects=lists,
        )  # fmt: skip
    w.add_split(
        "s2-cross-subject",
        train_val(seqs, lambda e, s, a: s in S2_VAL),
        definition=f"MM-Fi S2 cross_subject_split, protocol {protocol}: val = {' '.join(S2_VAL)} "
        "(every 5th subject, two per environment), train = the other 32 subjects; all actions",
        protocol=protocol,
    )
    w.add_split(
        "s3-cross-environment",
        train_val(seqs, lambda e, s, a: e == S3_VAL_ENV),
        definition=f"MM-Fi S3 cross_scene_split, protocol {protocol}: train = S01-S30 "
        "(E01-E03), val = S31-S40 (E04); all actions",
        protocol=protocol,
    )


def run(src: Path, out: Path, args: argparse.Namespace) -> Path:
    protocol = args.protocol
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; MM-Fi has {', '.join(PROTOCOLS)}")
    with open_store(
        out, src, args, converter="mmfi", options={"protocol": protocol},
        csi=CSI, labels=LABELS, default_window={"length": 1, "stride": 1, "label": "first"},
    ) as w:  # fmt: skip
        found = find_sequences(src, PROTOCOLS[protocol])
        tally, seqs = RepairTally(), []
        for env, subj, act, path in progress(found, total=len(found), desc="mmfi", unit="seq"):
            seq = read_sequence(path)
            tally.skipped += seq["skipped"]
            if not len(seq["frame_index"]):
                continue  # every frame file was empty
            code = w.code("sequence", f"{env}/{subj}/{act}")
            seqs.append((code, env, subj, act))
            amp, phase, valid = tally.add(seq["amplitude"], seq["phase"])
            w.add_frames(
                amplitude=amp,
                phase=phase,
                keypoints=seq["keypoints"],
                visibility=np.isfinite(seq["keypoints"]).all(axis=-1),
                sequence=code,
                frame_index=seq["frame_index"],
                environment=w.code("environment", env),
                subject=w.code("subject", subj),
                action=w.code("action", act),
                person_count=1,
                valid=valid,
            )
        w.repair = tally.to_dict()
        add_splits(w, protocol, seqs)
    return out


CONVERTER = Converter(
    name="mmfi",
    help="MM-Fi release tree (E0e/Sxx/Ayy with ground_truth.npy and wifi-csi/frameNNN.mat)",
    add_arguments=add_arguments,
    run=run,
)
