"""StoreWriter: the store appears complete or not at all."""

from __future__ import annotations

import json

import numpy as np
import pytest

from csipose.data import StoreWriter, manifest
from csipose.errors import DataFormatError

CSI = {
    "layout": ["frame", "antenna", "subcarrier", "packet"],
    "antennas": {"n_tx": 1, "n_rx": 2, "order": "tx-major"},
    "subcarrier_indices": [-1, 1, 2],
    "packets_per_frame": 4,
    "units": {"amplitude": "arbitrary"},
    "hardware_profile": {"name": "test"},
}
WINDOW = {"length": 2, "stride": 1, "label": "last"}


def write(path, n=5, **kw):
    with StoreWriter(
        path, csi=CSI, default_window=WINDOW, provenance={"converter": "test"}, **kw
    ) as w:
        for s in range(2):
            seq = w.code("sequence", f"seq{s}")
            w.add_frames(
                amplitude=np.full((n, 2, 3, 4), s, np.float32),
                keypoints=np.zeros((n, 17, 3), np.float32),
                visibility=np.ones((n, 17), bool),
                sequence=seq,
                frame_index=np.arange(n),
                environment=w.code("environment", "E01"),
                subject=w.code("subject", "S01"),
                action=w.code("action", f"A{s}"),
                extra={"timestamp": np.arange(n, dtype=np.float64) + 10 * s},
            )
        w.add_split("half", {"train": [0], "test": [1]}, definition="by sequence")
    return path


def test_a_written_store_reads_back_with_numpy(tmp_path):
    store = write(tmp_path / "s")
    m = manifest.load(store)
    assert m["n_frames"] == 10 and m["metadata"]["sequence"] == ["seq0", "seq1"]
    amp = np.load(store / "amplitude.npy", mmap_mode="r")
    assert amp.shape == (10, 2, 3, 4) and amp[7, 0, 0, 0] == 1
    assert np.load(store / "frame_index.npy").tolist() == [0, 1, 2, 3, 4] * 2
    assert np.load(store / "valid.npy").all() and np.load(store / "person_count.npy")[0] == -1
    assert json.loads((store / "splits/half.json").read_text())["parts"]["test"] == [1]
    assert np.load(store / "timestamp.npy").tolist() == [0, 1, 2, 3, 4, 10, 11, 12, 13, 14]
    assert m["arrays"]["timestamp"]["dtype"] == "float64"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_failure_leaves_no_partial_store(tmp_path):
    with (
        pytest.raises(RuntimeError),
        StoreWriter(tmp_path / "s", csi=CSI, default_window=WINDOW, provenance={}) as w,
    ):
        w.add_frames(
            amplitude=np.zeros((3, 2, 3, 4), np.float32), sequence=0, frame_index=0,
            environment=0, subject=0, action=0,
        )  # fmt: skip
        raise RuntimeError("converter died")
    assert list(tmp_path.iterdir()) == []


def test_existing_store_is_replaced_only_when_asked_and_only_when_complete(tmp_path):
    store = write(tmp_path / "s")
    with pytest.raises(FileExistsError):
        write(store)
    with (
        pytest.raises(ValueError),
        StoreWriter(store, csi=CSI, default_window=WINDOW, provenance={}, overwrite=True) as w,
    ):
        w.add_frames(
            amplitude=np.zeros((2, 2, 3, 4), np.float32),
            sequence=0,
            frame_index=0,
            environment=0,
            subject=0,
            action=np.zeros(3),
        )  # wrong length
    assert manifest.load(store)["n_frames"] == 10  # the old store is intact
    write(store, n=3, overwrite=True)
    assert manifest.load(store)["n_frames"] == 6


def test_manifest_problems_name_the_file_and_field(tmp_path):
    store = write(tmp_path / "s")
    m = json.loads((store / "manifest.json").read_text())
    m["schema_version"] = 99
    (store / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(DataFormatError, match=r"manifest\.json: field 'schema_version': .*newer"):
        manifest.load(store)
    (store / "manifest.json").write_text("{not json")
    with pytest.raises(DataFormatError, match=r"manifest\.json: cannot read"):
        manifest.load(store)
    with pytest.raises(DataFormatError, match="not a csipose store"):
        manifest.load(tmp_path)
