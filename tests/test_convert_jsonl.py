"""csipose convert jsonl: paired JSONL windows unroll into CSI frames with their labels."""

from __future__ import annotations

import datetime
import json
import time

import numpy as np
import pytest

from csipose.cli import main
from csipose.data import manifest
from csipose.data.convert import convert
from csipose.errors import DataFormatError
from csipose.signal import SUBCARRIERS

S, T, W = 8, 4, 5  # subcarriers, frames per window, windows


def windows(seed=0, s=S, t=T, w=W):
    """Window dicts like upstream's aligner writes, csi as [subcarriers, frames]."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(w):
        start = datetime.datetime(2026, 5, 21, 10, 0, 2 * i, 500000, datetime.UTC)
        out.append({
            "csi": rng.uniform(0, 30, size=(s, t)).astype(np.float32),
            "kp": rng.uniform(0, 1, size=(17, 2)).round(4).tolist(),
            "conf": round(float(rng.uniform(0.5, 1)), 3),
            "n_camera_frames": 10 + i,
            "n_persons_mode": i % 3,
            "n_persons_max": i % 3 + 1,
            "ts_start": start.isoformat().replace("+00:00", "Z"),
            "ts_end": (start + datetime.timedelta(seconds=2)).replace(tzinfo=None).isoformat(),
        })  # fmt: skip
    del out[2]["kp"], out[2]["conf"], out[2]["n_persons_mode"]  # a window without camera labels
    out[3]["csi"][5, 1] = np.nan
    return out


def write(path, wins, layout="subcarrier-major"):
    lines = []
    for w in wins:
        csi = w["csi"] if layout == "subcarrier-major" else w["csi"].T
        lines.append(json.dumps({**w, "csi": csi.ravel().tolist(), "csi_shape": list(csi.shape)}))
    lines.insert(2, "")  # blank lines are skipped; line numbers still count them
    path.write_text("\n".join(lines) + "\n")
    return path


LINES = [1, 2, 4, 5, 6]  # the file line of each window


def load(store, name):
    return np.load(store / f"{name}.npy", mmap_mode="r")


@pytest.fixture
def new_york(monkeypatch):
    """A local zone other than UTC, so that a naive time read as local time would show."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_windows_unroll_into_frames(tmp_path, new_york):
    wins = windows()
    store = convert(
        "jsonl", write(tmp_path / "p.jsonl", wins), tmp_path / "s", layout="subcarrier-major"
    )
    m = manifest.load(store)
    assert m["n_frames"] == W * T
    amp = load(store, "amplitude")
    assert amp.shape == (W * T, 1, S, 1)
    for i, w in enumerate(wins):
        rows = slice(i * T, (i + 1) * T)
        expect = np.where(np.isfinite(w["csi"]), w["csi"], 0).T
        np.testing.assert_array_equal(amp[rows, 0, :, 0], expect)
        assert {m["metadata"]["sequence"][c] for c in load(store, "sequence")[rows]} == {
            f"line{LINES[i]}"
        }
        assert load(store, "frame_index")[rows].tolist() == list(range(T))
        assert (load(store, "person_count")[rows] == w.get("n_persons_mode", -1)).all()
        assert (load(store, "person_count_max")[rows] == w["n_persons_max"]).all()
        assert (load(store, "n_camera_frames")[rows] == w["n_camera_frames"]).all()
        kp = load(store, "keypoints")[rows]
        if "kp" in w:
            assert (kp == np.float32(w["kp"])).all() and load(store, "visibility")[rows].all()
            assert (load(store, "kp_confidence")[rows] == np.float32(w["conf"])).all()
        else:
            assert not load(store, "visibility")[rows].any() and not kp.any()
            assert np.isnan(load(store, "kp_confidence")[rows]).all()
        start = datetime.datetime.fromisoformat(w["ts_start"]).timestamp()
        assert (load(store, "ts_start")[rows] == start).all()
        assert (load(store, "ts_end")[rows] == start + 2).all()  # naive times are UTC
    assert (
        load(store, "ts_start").dtype == np.float64 and load(store, "ts_start")[0] == 1779357600.5
    )
    assert np.flatnonzero(~load(store, "valid")).tolist() == [3 * T + 1]
    assert m["repair"]["repaired_values"] == 1 and m["repair"]["excluded_frames"] == 1
    assert m["default_window"] == {"length": T, "stride": T, "label": "first"}
    assert m["csi"]["subcarrier_indices"] == list(range(S))
    assert "positions" in m["csi"]["subcarrier_axis"]
    assert m["labels"]["skeleton"] == "coco17"
    assert m["labels"]["units"] == "normalised image coordinates"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_frame_major_gives_the_same_store(tmp_path):
    wins = windows()
    a = convert(
        "jsonl", write(tmp_path / "a.jsonl", wins), tmp_path / "a", layout="subcarrier-major"
    )
    b = convert(
        "jsonl",
        write(tmp_path / "b.jsonl", wins, "frame-major"),
        tmp_path / "b",
        layout="frame-major",
    )
    for name in ("amplitude", "keypoints", "person_count", "frame_index", "sequence"):
        np.testing.assert_array_equal(load(a, name), load(b, name))
    assert "frame-major" in manifest.load(b)["csi"]["source_layout"]


def test_the_layout_is_declared_never_guessed(tmp_path):
    path = write(tmp_path / "p.jsonl", windows())
    with pytest.raises(ValueError, match="--layout is required"):
        convert("jsonl", path, tmp_path / "s")
    assert not (tmp_path / "s").exists()


def test_subcarrier_table_must_fit(tmp_path):
    path = write(tmp_path / "p.jsonl", windows(s=56, t=2))
    store = convert(
        "jsonl", path, tmp_path / "s", layout="subcarrier-major", subcarriers="atheros-ht20"
    )
    assert manifest.load(store)["csi"]["subcarrier_indices"] == SUBCARRIERS["atheros-ht20"]
    with pytest.raises(ValueError, match="esp32-lltf lists 64 subcarriers"):
        convert("jsonl", path, tmp_path / "t", layout="subcarrier-major", subcarriers="esp32-lltf")


def test_a_file_without_camera_labels_has_no_keypoint_arrays(tmp_path):
    wins = [{"csi": w["csi"], "n_persons_mode": 1} for w in windows()]
    store = convert(
        "jsonl", write(tmp_path / "p.jsonl", wins), tmp_path / "s", layout="subcarrier-major"
    )
    m = manifest.load(store)
    assert m["labels"] is None
    assert set(m["arrays"]) == {*manifest.REQUIRED_ARRAYS}
    assert (load(store, "person_count") == 1).all()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"csi": [1, 2]}', "field 'csi_shape': missing"),
        ('{"csi": [1, 2, 3], "csi_shape": [8, 4]}', "field 'csi': has 3 values; csi_shape"),
        ('{"csi": [1, 2, 3, 4], "csi_shape": [2, 2]}', r"field 'csi_shape': \[2, 2\] differs"),
        ('{"csi": ["a"], "csi_shape": [1, 1]}', "field 'csi': must be a flat list of numbers"),
        ('{"csi": [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, '
         '0, 0, 0, 0, 0, 0], "csi_shape": [8, 4], "kp": [[0, 0]]}', r"field 'kp': has shape \[1, 2\]"),
        ('{"csi": [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, '
         '0, 0, 0, 0, 0, 0], "csi_shape": [8, 4], "ts_end": "yesterday"}', "field 'ts_end': must be an ISO"),
    ],
)  # fmt: skip
def test_a_malformed_line_is_an_error_naming_file_line_and_field(tmp_path, line, message):
    path = write(tmp_path / "p.jsonl", windows())
    path.write_text(path.read_text() + line + "\n")
    with pytest.raises(DataFormatError, match=rf"p\.jsonl:7: {message}"):
        convert("jsonl", path, tmp_path / "s", layout="subcarrier-major")
    assert not (tmp_path / "s").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_cli(tmp_path, capsys):
    args = ["convert", "jsonl", str(write(tmp_path / "p.jsonl", windows())), str(tmp_path / "s")]
    assert main(args) == 2 and "--layout is required" in capsys.readouterr().err
    assert main([*args, "--layout", "subcarrier-major", "--skeleton", "coco17"]) == 0
    assert manifest.load(tmp_path / "s")["provenance"]["options"]["layout"] == "subcarrier-major"
    assert main([*args, "--layout", "frame-major", "--skeleton", "body25_15", "--overwrite"]) == 2
    assert "field 'kp': has shape [17, 2]; expected [15, 2]" in capsys.readouterr().err
