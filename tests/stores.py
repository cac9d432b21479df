"""Small stores written with StoreWriter for tests."""

from __future__ import annotations

import hashlib

import numpy as np

from csipose.data import Store, StoreWriter

CSI = {
    "layout": ["frame", "antenna", "subcarrier", "packet"],
    "antennas": {"n_tx": 1, "n_rx": 3, "order": "tx-major"},
    "subcarrier_indices": list(range(-4, 0)) + list(range(1, 5)),
    "packets_per_frame": 5,
    "units": {"amplitude": "arbitrary", "phase": "rad"},
    "hardware_profile": {"name": "test"},
}


def make_store(path, seq_lengths=(7, 5, 9), *, seed=0, invalid=(), gaps=(), window=None, phase=True):
    """A store of len(seq_lengths) sequences with random CSI [F, 3, 8, 5], COCO-17 2-D
    keypoints, and the given invalid frames and frame_index gaps (frames after which
    one index is skipped); without phase when ``phase`` is false. Returns the path and
    the arrays written."""
    rng = np.random.default_rng(seed)
    n = sum(seq_lengths)
    arrays = {
        "amplitude": rng.uniform(0, 10, (n, 3, 8, 5)).astype(np.float32),
        "phase": rng.uniform(-3, 3, (n, 3, 8, 5)).astype(np.float32),
        "keypoints": rng.normal(size=(n, 17, 2)).astype(np.float32),
        "visibility": rng.random((n, 17)) > 0.2,
        "sequence": np.repeat(np.arange(len(seq_lengths)), seq_lengths).astype(np.int32),
        "valid": np.ones(n, bool),
        "person_count": rng.integers(0, 4, n).astype(np.int16),
    }
    arrays["valid"][list(invalid)] = False
    fi = np.concatenate([np.arange(k) for k in seq_lengths])
    for g in gaps:
        same = arrays["sequence"] == arrays["sequence"][g]
        fi[(np.arange(n) > g) & same] += 1
    arrays["frame_index"] = fi.astype(np.int32)
    with StoreWriter(
        path,
        csi=CSI,
        labels={"skeleton": "coco17", "dims": 2, "units": "px", "max_people": 1},
        default_window=window or {"length": 3, "stride": 2, "label": "last"},
        provenance={"converter": "tests"},
    ) as w:
        for s in range(len(seq_lengths)):
            w.code("sequence", f"seq{s}")
        w.add_frames(
            amplitude=arrays["amplitude"],
            phase=arrays["phase"] if phase else None,
            keypoints=arrays["keypoints"],
            visibility=arrays["visibility"],
            sequence=arrays["sequence"],
            frame_index=arrays["frame_index"],
            environment=w.code("environment", "E"),
            subject=w.code("subject", "S"),
            action=w.code("action", "A"),
            person_count=arrays["person_count"],
            valid=arrays["valid"],
        )
        w.add_split("halves", {"train": [0, 2], "test": [1]}, definition="by sequence")
    return path, arrays


def store_digest(path) -> str:
    """sha256 over every field's name and bytes, in name order: a store's content."""
    s = Store.open(path)
    h = hashlib.sha256()
    for name in sorted(s.fields):
        h.update(name.encode())
        h.update(np.ascontiguousarray(np.asarray(s.array(name))).tobytes())
    return h.hexdigest()
