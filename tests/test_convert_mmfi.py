"""csipose convert mmfi: a tiny but structurally exact MM-Fi tree round-trips into a store."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.io import savemat

from csipose.cli import main
from csipose.data import manifest
from csipose.data.convert import convert
from csipose.data.convert import mmfi_splits as s1
from csipose.errors import DataFormatError
from csipose.signal import SUBCARRIERS

SEQS = [
    (e, s, a)
    for e, subjects in (("E01", ("S01", "S05")), ("E04", ("S31", "S40")))
    for s in subjects
    for a in ("A01", "A02")
]
N = 5


def make_tree(root, seqs=SEQS, n=N, seed=0):
    """Write ground_truth.npy and wifi-csi/frameNNN.mat per sequence; return what was written."""
    rng = np.random.default_rng(seed)
    written = {}
    for e, s, a in seqs:
        d = root / e / s / a
        (d / "wifi-csi").mkdir(parents=True)
        gt = rng.normal(size=(n, 17, 3))
        np.save(d / "ground_truth.npy", gt)
        amp = rng.uniform(1, 40, size=(n, 3, 114, 10))
        phase = rng.uniform(-np.pi, np.pi, size=(n, 3, 114, 10))
        for i in range(n):
            savemat(
                d / "wifi-csi" / f"frame{i + 1:03d}.mat", {"CSIamp": amp[i], "CSIphase": phase[i]}
            )
        written[f"{e}/{s}/{a}"] = {"gt": gt, "amp": amp, "phase": phase}
    return written


def damage(root, written):
    """NaN/Inf values, an all-NaN packet slice, a constant frame and an empty frame file."""
    w = written["E01/S01/A01"]
    w["amp"][0, 0, 5, 2] = np.nan
    w["amp"][0, 2, 7, 2] = np.inf
    w["phase"][1, 1, 1, 1] = -np.inf
    w["amp"][1, :, :, 4] = np.nan  # all-NaN slice: the frame is excluded
    w["amp"][3] = 7.0  # constant frame: excluded
    w["phase"][4, :, :, 0] = np.nan  # all-NaN phase slice: excluded too
    for i in (0, 1, 3, 4):
        savemat(
            root / "E01/S01/A01/wifi-csi" / f"frame{i + 1:03d}.mat",
            {"CSIamp": w["amp"][i], "CSIphase": w["phase"][i]},
        )
    (root / "E01/S01/A01/wifi-csi/frame003.mat").write_bytes(b"")


def toolkit_repair(x):
    """The MM-Fi toolkit rule in numpy: Inf -> NaN -> mean of the finite values of its packet slice."""
    x = x.astype(np.float64).copy()
    x[np.isinf(x)] = np.nan
    for f in range(len(x)):
        for p in range(x.shape[3]):
            sl = x[f, :, :, p]
            bad = np.isnan(sl)
            if bad.any():
                sl[bad] = sl[~bad].mean() if (~bad).any() else 0.0
    return x.astype(np.float32)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("mmfi")
    written = make_tree(root / "tree")
    damage(root / "tree", written)
    return convert("mmfi", root / "tree", root / "store"), written


def load(store, name):
    return np.load(store / f"{name}.npy", mmap_mode="r")


def test_store_holds_the_tree_frame_by_frame(store):
    store, written = store
    m = manifest.load(store)
    assert m["n_frames"] == len(SEQS) * N - 1  # frame003 of E01/S01/A01 is empty
    names = m["metadata"]
    assert names["sequence"] == sorted(written)
    assert names["environment"] == ["E01", "E04"]
    assert names["subject"] == ["S01", "S05", "S31", "S40"]
    assert names["action"] == ["A01", "A02"]
    amp, phase, kp = load(store, "amplitude"), load(store, "phase"), load(store, "keypoints")
    assert amp.shape == phase.shape == (m["n_frames"], 3, 114, 10) and amp.dtype == np.float32
    seq, fi = load(store, "sequence"), load(store, "frame_index")
    for code, name in enumerate(names["sequence"]):
        rows = np.flatnonzero(seq == code)
        keep = [0, 1, 3, 4] if name == "E01/S01/A01" else list(range(N))
        assert fi[rows].tolist() == keep
        w = written[name]
        np.testing.assert_array_equal(kp[rows], w["gt"][keep].astype(np.float32))
        for arr, key in ((amp, "amp"), (phase, "phase")):
            raw = w[key][keep]
            ok = np.isfinite(raw)
            np.testing.assert_array_equal(arr[rows][ok], raw[ok].astype(np.float32))
            np.testing.assert_allclose(arr[rows], toolkit_repair(raw), rtol=1e-6)
        e, s, a = name.split("/")
        for field, value in (("environment", e), ("subject", s), ("action", a)):
            assert {names[field][c] for c in load(store, field)[rows]} == {value}
    assert load(store, "visibility").all() and (load(store, "person_count") == 1).all()


def test_repair_is_reported_and_bad_frames_are_invalid(store):
    store, _ = store
    m = manifest.load(store)
    valid = load(store, "valid")
    # rows 0..3 are E01/S01/A01 frames 0, 1, 3, 4: frame 1 has an all-NaN slice, frame 3 is
    # constant, frame 4 has an all-NaN phase slice
    assert np.flatnonzero(~valid).tolist() == [1, 2, 3]
    r = m["repair"]
    assert r["skipped_empty_frame_files"] == 1
    assert r["amplitude"] == {
        "rule": r["amplitude"]["rule"], "repaired_values": 2 + 3 * 114,
        "repaired_frames": 2, "all_nan_frames": 1, "constant_frames": 1,
    }  # fmt: skip
    assert r["phase"]["repaired_values"] == 1 + 3 * 114 and r["phase"]["all_nan_frames"] == 1
    assert r["repaired_values"] == 2 + 3 * 114 + 1 + 3 * 114
    assert r["repaired_frames"] == 3 and r["excluded_frames"] == 3
    assert "packet slice" in r["rule"]


def test_manifest_declares_layout_labels_and_provenance(store):
    store, _ = store
    m = manifest.load(store)
    assert m["csi"]["subcarrier_indices"] == SUBCARRIERS["atheros-ht40"]
    assert m["csi"]["antennas"] == {"n_tx": 1, "n_rx": 3, "order": "tx-major"}
    assert m["csi"]["packets_per_frame"] == 10
    assert m["csi"]["hardware_profile"]["name"] == "mmfi-atheros-1x3-ht40"
    assert m["labels"] == {
        "skeleton": "h36m17", "dims": 3, "units": "m", "max_people": 1,
        "coordinate_frame": "camera",
    }  # fmt: skip
    assert m["default_window"] == {"length": 1, "stride": 1, "label": "first"}
    assert m["provenance"]["converter"] == "mmfi"
    assert m["provenance"]["options"] == {"protocol": "p3"}
    assert not [p for p in store.parent.iterdir() if p.name.startswith(".")]


def split(store, name):
    m = manifest.load(store)
    parts = json.loads((store / m["splits"][name]["file"]).read_text())["parts"]
    return {k: {m["metadata"]["sequence"][c] for c in v} for k, v in parts.items()}


def test_settings_s1_s2_s3(store):
    store, written = store
    everything = set(written)
    lists = s1.load()["val_subjects"]["p3"]
    for ratio in ("0.8", "0.7"):
        parts = split(store, f"s1-random-{ratio}")
        val = {n for n in everything if n.split("/")[1] in lists[ratio][n.split("/")[2]]}
        assert parts == {"val": val, "train": everything - val}
    # P3 A01 and A02 at 0.8 both validate on S01 (spec section 2.6) and on none of S05, S31, S40.
    assert split(store, "s1-random-0.8")["val"] == {"E01/S01/A01", "E01/S01/A02"}
    s2 = split(store, "s2-cross-subject")
    assert s2["val"] == {n for n in everything if n.split("/")[1] in ("S05", "S40")}
    assert s2["train"] == everything - s2["val"]
    s3 = split(store, "s3-cross-environment")
    assert s3["val"] == {n for n in everything if n.startswith("E04")}
    assert s3["train"] == everything - s3["val"]


def test_protocol_p1_keeps_its_actions_and_their_positions(tmp_path):
    make_tree(tmp_path / "tree", seqs=[("E01", "S01", "A01"), ("E01", "S01", "A02")], n=2)
    out = convert("mmfi", tmp_path / "tree", tmp_path / "s", protocol="p1")
    assert manifest.load(out)["metadata"]["sequence"] == ["E01/S01/A02"]
    # A02 is P1's first action, so it uses the permutation of seed 0 (P3-A01's list).
    assert split(out, "s1-random-0.8")["val"] == {"E01/S01/A02"}
    assert split(out, "s2-cross-subject")["train"] == {"E01/S01/A02"}


SPEC_P3_08 = """
A01 S01 S04 S07 S10 S20 S22 S24 S39; A02 S01 S06 S09 S10 S12 S13 S16 S38; A03 S08 S09 S12 S16 S19 S23 S32 S36
A04 S01 S04 S09 S11 S20 S22 S25 S34; A05 S01 S02 S04 S06 S09 S10 S24 S31; A06 S09 S10 S15 S17 S28 S31 S36 S38
A07 S02 S10 S11 S16 S17 S21 S26 S36; A08 S04 S05 S15 S20 S24 S26 S29 S36; A09 S04 S06 S09 S11 S20 S21 S22 S27
A10 S02 S23 S28 S29 S30 S34 S39 S40; A11 S01 S10 S16 S26 S29 S30 S34 S37; A12 S08 S13 S14 S17 S18 S26 S28 S34
A13 S03 S04 S07 S12 S13 S23 S28 S36; A14 S03 S11 S14 S17 S19 S26 S27 S35; A15 S08 S11 S13 S17 S23 S25 S27 S29
A16 S01 S06 S08 S09 S12 S13 S28 S29; A17 S02 S05 S06 S17 S31 S32 S33 S38; A18 S05 S07 S08 S16 S21 S23 S32 S38
A19 S03 S06 S09 S18 S20 S25 S35 S39; A20 S03 S06 S11 S20 S23 S30 S32 S35; A21 S10 S16 S21 S27 S29 S32 S36 S39
A22 S05 S09 S10 S11 S16 S21 S35 S36; A23 S01 S05 S09 S19 S21 S30 S32 S37; A24 S10 S13 S20 S26 S27 S28 S32 S39
A25 S01 S02 S04 S16 S18 S24 S35 S36; A26 S05 S09 S16 S24 S26 S27 S29 S40; A27 S02 S05 S07 S14 S18 S20 S27 S33
"""


def test_shipped_s1_lists_equal_a_regeneration_and_the_spec():
    shipped = s1.load()
    assert shipped == s1.generate()
    assert s1.PATH.read_text() == s1.dumps(s1.generate())
    spec = dict(
        (entry.split()[0], entry.split()[1:])
        for entry in SPEC_P3_08.replace("\n", ";").split(";")
        if entry.strip()
    )
    val = shipped["val_subjects"]
    assert val["p3"]["0.8"] == spec and len(spec) == 27
    assert val["p3"]["0.7"]["A01"] == "S01 S04 S07 S10 S13 S20 S22 S24 S25 S27 S32 S39".split()
    # P1 and P2 reuse the first 14 / 13 permutations in their own action order.
    p3 = list(spec.values())
    for proto in ("p1", "p2"):
        assert list(val[proto]["0.8"]) == s1.PROTOCOLS[proto]
        assert list(val[proto]["0.8"].values()) == p3[: len(s1.PROTOCOLS[proto])]


def one_sequence(tmp_path, n=3):
    make_tree(tmp_path / "tree", seqs=[("E01", "S01", "A01")], n=n)
    return tmp_path / "tree" / "E01/S01/A01/wifi-csi"


def assert_failed_cleanly(tmp_path):
    assert not (tmp_path / "s").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_missing_frame_file_is_an_error_naming_it(tmp_path):
    (one_sequence(tmp_path) / "frame002.mat").unlink()
    with pytest.raises(DataFormatError, match=r"A01/wifi-csi/frame002\.mat: frame file missing"):
        convert("mmfi", tmp_path / "tree", tmp_path / "s")
    assert_failed_cleanly(tmp_path)


def test_a_mat_without_csiamp_or_of_the_wrong_shape_is_an_error(tmp_path):
    csi = one_sequence(tmp_path)
    savemat(csi / "frame002.mat", {"CSIphase": np.zeros((3, 114, 10))})
    with pytest.raises(DataFormatError, match=r"frame002\.mat: field 'CSIamp' is missing"):
        convert("mmfi", tmp_path / "tree", tmp_path / "s")
    assert_failed_cleanly(tmp_path)
    savemat(
        csi / "frame002.mat", {"CSIamp": np.zeros((3, 56, 10)), "CSIphase": np.zeros((3, 114, 10))}
    )
    with pytest.raises(
        DataFormatError, match=r"frame002\.mat: field 'CSIamp' is float64 \(3, 56, 10\)"
    ):
        convert("mmfi", tmp_path / "tree", tmp_path / "s")
    assert_failed_cleanly(tmp_path)
    (csi / "frame002.mat").write_bytes(b"not a MATLAB file at all")
    with pytest.raises(DataFormatError, match=r"frame002\.mat: cannot read the \.mat file"):
        convert("mmfi", tmp_path / "tree", tmp_path / "s")
    assert_failed_cleanly(tmp_path)


def test_environment_must_match_the_subject(tmp_path):
    make_tree(tmp_path / "tree", seqs=[("E02", "S01", "A01")], n=1)
    with pytest.raises(DataFormatError, match=r"E02/S01: subject S01 belongs to environment E01"):
        convert("mmfi", tmp_path / "tree", tmp_path / "s")
    with pytest.raises(DataFormatError, match="no MM-Fi sequence"):
        convert("mmfi", tmp_path / "tree" / "E02" / "S01", tmp_path / "s")
    assert_failed_cleanly(tmp_path)


def test_cli_converts_and_refuses_to_overwrite_unless_asked(tmp_path, capsys):
    one_sequence(tmp_path, n=2)
    args = ["convert", "mmfi", str(tmp_path / "tree"), str(tmp_path / "s")]
    assert main([*args, "--protocol", "p2"]) == 0
    assert manifest.load(tmp_path / "s")["provenance"]["options"] == {"protocol": "p2"}
    assert main(args) == 2 and "exists" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0
    assert manifest.load(tmp_path / "s")["provenance"]["options"] == {"protocol": "p3"}
    assert convert("mmfi", tmp_path / "tree", tmp_path / "s", overwrite=True) == tmp_path / "s"
    (tmp_path / "tree/E01/S01/A01/ground_truth.npy").unlink()
    assert main([*args, "--overwrite"]) == 2
    assert "ground_truth.npy: missing" in capsys.readouterr().err
    assert manifest.load(tmp_path / "s")["n_frames"] == 2  # the old store survives
