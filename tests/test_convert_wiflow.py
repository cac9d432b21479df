"""csipose convert wiflow: a tiny preprocessed_csi_data directory round-trips into a store."""

from __future__ import annotations

import json
import pickle
import random

import numpy as np
import pytest

from csipose.cli import main
from csipose.data import manifest
from csipose.data.convert import convert
from csipose.data.convert.wiflow import seed42_split
from csipose.errors import DataFormatError

N_FILES, PER_FILE, CSV_FRAMES = 6, 4, 9
FRAMES = [1, 3, 5, 7]  # window_to_frame of each file's windows


def make_dir(d, seed=0):
    """Write every file of WiFlow's layout, both label modes; return the source arrays."""
    rng = np.random.default_rng(seed)
    d.mkdir()
    n = N_FILES * PER_FILE
    csi = rng.uniform(0, 1, size=(n, 540, 20)).astype(np.float32)
    csi[5, 3, 4] = np.nan  # corrupt windows, as in the public files 487-499
    csi[9, 100, 0] = 3.4e38
    csi[10, 0, 0] = -np.inf
    csi[11, 7, 7] = 2e3  # finite but absurd for [0, 1]-normalised data
    np.save(d / "csi_windows.npy", csi)
    w2f = np.repeat(np.arange(N_FILES), PER_FILE)
    np.savez(d / "window_info.npz", window_to_file=w2f, window_to_frame=np.tile(FRAMES, N_FILES))
    files = np.array([f"kp/rec{i}.csv" for i in range(N_FILES)], dtype=object)
    ranges = np.stack([np.arange(N_FILES) * PER_FILE, (np.arange(N_FILES) + 1) * PER_FILE], 1)
    np.savez(
        d / "file_info.npz",
        keypoints_files=files,
        file_ids=np.arange(N_FILES),
        window_ranges=ranges,
    )
    np.savez(d / "config.npz", window_size=20, stride=2)
    (d / "kp").mkdir()
    pixels = np.round(rng.uniform(1, 1000, size=(N_FILES, CSV_FRAMES, 25, 2)), 3)
    pixels[0, 3, 4] = 0  # a joint missing in one frame
    pixels[0, 0:2, 6] = 0  # missing at the start (edge copy) ...
    pixels[0, 6:, 6] = 0  # ... and at the end
    pixels[1, 5] = 0  # a frame without anybody
    pixels[2, :, 9] = 0  # a joint never seen
    pixels[3, 1, 2] = (0, 5)  # one coordinate 0 is not missing
    for i in range(N_FILES):
        rows = pixels[i].reshape(CSV_FRAMES, 50)
        header = "name," + ",".join(f"j{j}_{c}" for j in range(25) for c in "xy")
        body = [f"f{t}," + ",".join(f"{v:.3f}" for v in row) for t, row in enumerate(rows)]
        (d / files[i]).write_text("\n".join([header, *body]) + "\n")
    scaled = (pixels.astype(np.float32) / np.float32(1000))[:, :, :15]
    order = [3, 0, 5, 1, 4, 2]  # all_keypoints.npy need not follow the file order
    np.save(d / "all_keypoints.npy", np.concatenate([scaled[i] for i in order]))
    with open(d / "file_mappings.pkl", "wb") as f:
        pickle.dump({files[i]: {"start_idx": k * CSV_FRAMES} for k, i in enumerate(order)}, f)
    return {
        "csi": csi,
        "w2f": w2f,
        "frame": np.tile(FRAMES, N_FILES),
        "kp": scaled,
        "files": list(files),
    }


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    d = tmp_path_factory.mktemp("wiflow") / "preprocessed_csi_data"
    return d, make_dir(d)


def load(store, name):
    return np.load(store / f"{name}.npy", mmap_mode="r")


def upstream_frame_clean(kp):
    """WiFlow's NPY-mode clean, one frame at a time as upstream writes it."""
    out = kp.copy()
    for f in range(len(kp)):
        nonzero = (kp[f, :, 0] != 0) | (kp[f, :, 1] != 0)
        if nonzero.any():
            out[f, ~nonzero] = kp[f][nonzero].mean(axis=0)
    return out


def upstream_sequence_clean(seq):
    """WiFlow's CSV-mode clean: a sequential fill between the nearest non-zero frames."""
    c = seq.copy()
    zero = lambda t, k: c[t, k, 0] == 0 and c[t, k, 1] == 0  # noqa: E731
    for k in range(c.shape[1]):
        for t in [t for t in range(len(c)) if zero(t, k)]:
            prev = next((p for p in range(t - 1, -1, -1) if not zero(p, k)), None)
            nxt = next((n for n in range(t + 1, len(c)) if not zero(n, k)), None)
            if prev is not None and nxt is not None:
                a = (t - prev) / (nxt - prev)
                c[t, k] = (1 - a) * c[prev, k] + a * c[nxt, k]
            elif prev is not None or nxt is not None:
                c[t, k] = c[prev if prev is not None else nxt, k]
    return c


def test_npy_mode_round_trip(src, tmp_path):
    d, ref = src
    store = convert("wiflow", d, tmp_path / "s")
    m = manifest.load(store)
    n = len(ref["csi"])
    assert m["n_frames"] == n and m["provenance"]["options"]["keypoints"] == "npy"
    amp = load(store, "amplitude")
    assert amp.shape == (n, 1, 540, 20)
    expect = np.where(np.isfinite(ref["csi"]), ref["csi"], 0)
    np.testing.assert_array_equal(amp[:, 0], expect)
    assert not (store / "phase.npy").exists()
    kp = ref["kp"][ref["w2f"], ref["frame"]]
    np.testing.assert_array_equal(load(store, "keypoints"), kp)
    np.testing.assert_array_equal(load(store, "visibility"), ~(kp == 0).all(-1))
    assert not load(store, "visibility")[PER_FILE + 2].any()  # file 1 frame 5: nobody
    assert load(store, "visibility")[2 * PER_FILE :, 9].sum() == (N_FILES - 3) * PER_FILE
    assert load(store, "visibility")[3 * PER_FILE, 2]  # (0, 5) is a joint
    np.testing.assert_array_equal(load(store, "sequence"), ref["w2f"])
    np.testing.assert_array_equal(load(store, "frame_index"), ref["frame"])
    assert m["metadata"]["sequence"] == ref["files"]
    assert m["metadata"]["subject"] == ["unknown"] and (load(store, "person_count") == 1).all()
    assert np.flatnonzero(~load(store, "valid")).tolist() == [5, 9, 10, 11]
    r = m["repair"]
    assert (r["repaired_values"], r["repaired_frames"]) == (2, 2)
    assert (r["nonfinite_windows"], r["absurd_windows"], r["excluded_frames"]) == (2, 2, 4)
    assert m["labels"]["skeleton"] == "body25_15" and m["labels"]["units"] == "px/1000"
    assert m["labels"]["dims"] == 2
    assert m["csi"]["subcarrier_indices"] == list(range(540))
    assert m["csi"]["packets_per_frame"] == 20 and m["csi"]["source_window"] == {
        "size": 20,
        "stride": 2,
    }
    assert m["csi"]["hardware_profile"]["name"] == "wiflow-unknown"
    assert m["default_window"] == {"length": 1, "stride": 1, "label": "first"}


def test_csv_mode_reads_the_same_labels_scaled_by_1000(src, tmp_path):
    d, ref = src
    (tmp_path / "elsewhere").mkdir()
    for f in ref["files"]:  # CSVs moved away from the paths file_info.npz names
        (tmp_path / "elsewhere" / f.split("/")[-1]).write_bytes((d / f).read_bytes())
    store = convert(
        "wiflow", d, tmp_path / "s", keypoints="csv", absurd=1e4, csv_root=tmp_path / "elsewhere"
    )
    np.testing.assert_array_equal(load(store, "keypoints"), ref["kp"][ref["w2f"], ref["frame"]])
    assert np.flatnonzero(~load(store, "valid")).tolist() == [5, 9, 10]
    assert manifest.load(store)["repair"]["absurd_threshold"] == 1e4


def test_clean_npy_equals_upstream_bit_for_bit(src, tmp_path):
    d, ref = src
    store = convert("wiflow", d, tmp_path / "s", clean="wiflow")
    raw = ref["kp"][ref["w2f"], ref["frame"]]
    kp = load(store, "keypoints")
    np.testing.assert_array_equal(kp, upstream_frame_clean(raw))
    assert not (kp == raw).all()
    imputed = load(store, "keypoint_imputed")
    np.testing.assert_array_equal(imputed, (raw == 0).all(-1) & ~(kp == 0).all(-1))
    np.testing.assert_array_equal(load(store, "visibility"), ~(kp == 0).all(-1))
    assert not load(store, "visibility")[PER_FILE + 2].any()  # an all-zero frame stays zero
    assert "mean of the frame" in manifest.load(store)["provenance"]["options"]["clean_rule"]


def test_clean_csv_interpolates_in_time_like_upstream(src, tmp_path):
    d, ref = src
    store = convert("wiflow", d, tmp_path / "s", clean="wiflow", keypoints="csv")
    expect = np.stack([upstream_sequence_clean(s) for s in ref["kp"]])[ref["w2f"], ref["frame"]]
    kp = load(store, "keypoints")
    np.testing.assert_allclose(kp, expect, rtol=1e-6)
    assert kp[0, 6].tolist() == ref["kp"][0, 2, 6].tolist()  # frame 1 copies frame 2
    assert kp[3, 6].tolist() == ref["kp"][0, 5, 6].tolist()  # frame 7 copies frame 5
    assert not load(store, "visibility")[2 * PER_FILE : 3 * PER_FILE, 9].any()
    assert load(store, "keypoint_imputed")[1, 4]  # file 0 frame 3 joint 4


SPEC_TEST = """3 12 13 15 16 22 40 44 47 49 52 57 63 71 79 81 98 101 110 111 112 114 119 125 135 140
142 150 172 174 176 183 185 193 194 214 216 229 235 258 274 279 282 287 295 301 302 308 309 316 321
327 332 346 357 359 366 373 377 379 388 390 412 413 414 424 433 445 456 464 480 483 486 490 496"""
SPEC_VAL = """23 28 33 35 36 46 51 70 73 83 87 107 108 116 117 126 134 136 137 138 148 161 166 181 186
189 202 204 205 219 232 234 236 252 255 260 273 275 285 290 298 299 311 325 329 331 335 338 343 349
350 352 360 367 376 380 386 395 409 411 427 438 441 444 447 454 463 467 470 474 478 482 492 494 499"""


def test_seed42_split_matches_the_spec_and_the_global_random(src, tmp_path):
    split = seed42_split(500)
    assert sorted(split["test"]) == [int(v) for v in SPEC_TEST.split()]
    assert sorted(split["val"]) == [int(v) for v in SPEC_VAL.split()]
    assert [len(v) for v in split.values()] == [350, 75, 75]
    state = random.getstate()
    try:  # upstream's exact calls on the global generator
        random.seed(42)
        idx = list(range(N_FILES))
        random.shuffle(idx)
    finally:
        random.setstate(state)
    d, _ = src
    store = convert("wiflow", d, tmp_path / "s")
    m = manifest.load(store)
    parts = json.loads((store / m["splits"]["wiflow-seed42"]["file"]).read_text())["parts"]
    assert parts == {"train": sorted(idx[:4]), "val": sorted(idx[4:4]), "test": sorted(idx[4:])}


def assert_failed_cleanly(tmp_path):
    assert not (tmp_path / "s").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_missing_keypoint_mapping_is_an_error_not_zeros(tmp_path):
    d = tmp_path / "data"
    make_dir(d)
    with open(d / "file_mappings.pkl", "rb") as f:
        mappings = pickle.load(f)
    del mappings["kp/rec3.csv"]
    with open(d / "file_mappings.pkl", "wb") as f:
        pickle.dump(mappings, f)
    with pytest.raises(
        DataFormatError, match=r"file_mappings\.pkl: no start_idx for keypoints file 'kp/rec3\.csv'"
    ):
        convert("wiflow", d, tmp_path / "s")
    assert_failed_cleanly(tmp_path)


def test_broken_inputs_are_errors_naming_file_and_field(tmp_path):
    d = tmp_path / "data"
    make_dir(d)
    for name, problem in (
        ("file_mappings.pkl", "cannot unpickle"),
        ("all_keypoints.npy", "cannot read"),
    ):
        (d / name).write_bytes(b"")
        with pytest.raises(DataFormatError, match=rf"{name}: {problem}"):
            convert("wiflow", d, tmp_path / "s")
    (d / "kp/rec4.csv").unlink()
    with pytest.raises(DataFormatError, match=r"rec4\.csv: keypoints CSV missing"):
        convert("wiflow", d, tmp_path / "s", keypoints="csv")
    assert_failed_cleanly(tmp_path)
    np.savez(d / "window_info.npz", window_to_file=np.zeros(N_FILES * PER_FILE, int))
    with pytest.raises(
        DataFormatError, match=r"window_info\.npz: field 'window_to_frame' is missing"
    ):
        convert("wiflow", d, tmp_path / "s")
    np.savez(
        d / "window_info.npz",
        window_to_file=np.zeros(N_FILES * PER_FILE, int),
        window_to_frame=np.zeros(N_FILES * PER_FILE, int),
    )
    with pytest.raises(
        DataFormatError, match=r"file_info\.npz: field 'window_ranges': window 4 belongs to file 0"
    ):
        convert("wiflow", d, tmp_path / "s")
    w2f = np.repeat(np.arange(N_FILES), PER_FILE)
    w2f[[0, 4]] = w2f[[4, 0]]
    np.savez(d / "window_info.npz", window_to_file=w2f, window_to_frame=w2f)
    with pytest.raises(DataFormatError, match="the windows of a file are not consecutive"):
        convert("wiflow", d, tmp_path / "s")
    (d / "csi_windows.npy").unlink()
    with pytest.raises(DataFormatError, match=r"csi_windows\.npy: missing"):
        convert("wiflow", d, tmp_path / "s")
    assert_failed_cleanly(tmp_path)


def test_cli(src, tmp_path, capsys):
    d, _ = src
    out = tmp_path / "s"
    assert (
        main(["convert", "wiflow", str(d), str(out), "--clean", "wiflow", "--keypoints", "csv"])
        == 0
    )
    assert manifest.load(out)["provenance"]["options"]["clean"] == "wiflow"
    assert main(["convert", "wiflow", str(d), str(out), "--absurd", "0", "--overwrite"]) == 2
    assert "--absurd must be > 0" in capsys.readouterr().err
