"""From an ESP32 capture to people counts: labelled captures train the counter (grouped,
stratified split), and ``csipose count predict CAPTURE --model RUN`` counts over time,
from a file or a live stream on stdin."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest

import esp32_writer as ew
from csipose.cli import main
from csipose.count import config
from csipose.count.data import gather, prepare
from csipose.data import Store
from csipose.data.convert import convert
from csipose.errors import DataFormatError

#: Recordings (labelled ranges): count per range; 3 per count so each count reaches every part.
RANGES = [0, 1, 0, 1, 1, 0, 0, 1, 1, 0]
PER_RANGE = 60  # packets, 3 windows of 20
SPACING_US = 50_000  # 20 packets/s


def capture_lines(rng: np.random.Generator, counts: list[int], per: int, spacing_us: int,
                  t0_us: int = 1_000_000) -> tuple[list[str], list[tuple[float, float, int]]]:  # fmt: skip
    """esp-csi lines (HT20, secondary none) whose LLTF amplitude depends on the count, and
    the label ranges (start s, end s, count) of each stretch of ``per`` packets."""
    lines, ranges, k = [], [], 0
    base = np.abs(rng.normal(20, 3, 64))
    for c in counts:
        start = t0_us + k * spacing_us
        for _ in range(per):
            amp = base * (1.0 + 0.6 * c) + rng.normal(0, 1, 64)
            phase = rng.uniform(-np.pi, np.pi, 64)
            z = amp / 2 * np.exp(1j * phase)
            lltf = np.clip(np.round(np.c_[z.imag, z.real].reshape(-1)), -127, 127).astype(int)
            ht = rng.integers(-20, 20, 128)
            lines.append(
                ew.esp_csi_line(np.r_[lltf, ht], seq=k, sig_mode=1, ts=t0_us + k * spacing_us)
            )
            k += 1
        ranges.append((start / 1e6, (t0_us + k * spacing_us) / 1e6, c))
    return lines, ranges


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """A labelled capture, its store and a tiny counting run trained on it."""
    tmp = tmp_path_factory.mktemp("count-capture")
    lines, ranges = capture_lines(np.random.default_rng(0), RANGES, PER_RANGE, SPACING_US)
    (tmp / "capture.csv").write_text("\n".join(lines) + "\n")
    (tmp / "labels.csv").write_text("start,end,count,activity\n" + "".join(
        f"{a},{b},{c},{'walk' if c else 'empty'}\n" for a, b, c in ranges))  # fmt: skip
    store = tmp / "store"
    assert (
        main(
            [
                "convert",
                "esp32",
                str(tmp / "capture.csv"),
                str(store),
                "--labels",
                str(tmp / "labels.csv"),
            ]
        )
        == 0
    )
    run = tmp / "run"
    assert main(["count", "train", 'data.source="store"', f'data.store="{store}"', f'train.run_dir="{run}"',
                 "data.split=grouped", "data.test_parts=['test']", "train.epochs=3", "train.batch_size=16",
                 "train.threads=1", "train.early_stop=0", "data.train_stride=20"]) == 0  # fmt: skip
    return tmp, store, run


def test_labelled_capture_store_has_one_recording_per_range(labelled):
    _tmp, store, _ = labelled
    s = Store.open(store)
    m = s.manifest
    names = m["metadata"]["sequence"]
    assert [n for n in names if "#" in n] == [f"capture.csv#{i}" for i in range(2, 2 + len(RANGES))]
    seq = np.load(store / m["arrays"]["sequence"]["file"])
    pc = np.load(store / m["arrays"]["person_count"]["file"])
    assert (pc == np.repeat(RANGES, PER_RANGE)).all()
    assert len(np.unique(seq)) == len(RANGES)
    assert m["default_window"] == {"length": 20, "stride": 20, "label": "last"}
    assert m["csi"]["capture"]["labels"]["unlabelled_packets"] == 0


def test_grouped_split_keeps_recordings_whole_and_is_stratified(labelled):
    _, store, _ = labelled
    s = Store.open(store)
    parts = s.split("grouped")
    seq = s.gather(np.arange(len(s)), fields=["sequence"])["sequence"]
    count = s.gather(np.arange(len(s)), fields=["person_count"])["person_count"]
    owner: dict[int, str] = {}
    for part, idx in parts.items():
        assert len(idx), part
        for q in np.unique(seq[idx]):
            assert owner.setdefault(int(q), part) == part, (
                f"recording {q} in {owner[int(q)]} and {part}"
            )
        assert sorted(np.unique(count[idx]).tolist()) == [0, 1], part  # every part sees both counts
    assert sum(len(v) for v in parts.values()) == len(s)  # every window in exactly one part
    assert "grouped by recording" in s.manifest["splits"]["grouped"]["definition"]


@pytest.mark.parametrize("table", ["esp32-lltf", "esp32-lltf-ht40"])
def test_the_capture_rule_is_esp32_map_on_its_tables(table):
    from csipose.count.capture import lltf_map
    from csipose.count.data import esp32_map
    from csipose.signal import ESP32_NULL, SUBCARRIERS

    np.testing.assert_allclose(
        lltf_map(SUBCARRIERS[table], ESP32_NULL).dense(), esp32_map(table).dense()
    )


def test_a_c5_capture_store_maps_its_53_lltf_entries(tmp_path):
    from csipose.count.data import subcarrier_map

    b, _ = ew.buffer(np.random.default_rng(0), ("0~26,-26~-1",))
    (tmp_path / "c5.csv").write_text(ew.c5_line(b) + "\n")
    m = Store.open(
        convert("esp32", tmp_path / "c5.csv", tmp_path / "s", chip="esp32c5", secondary="none")
    ).manifest
    w = subcarrier_map("auto", m, tmp_path / "s").dense()
    assert w.shape == (56, 53) and np.allclose(w.sum(axis=1), 1)
    assert (w[:, 0] == 0).all()  # DC (entry 0) carries no weight
    np.testing.assert_allclose(w[0, 27], 1.0)  # entry 27 is subcarrier -26, the first output point


def test_counting_trains_and_evaluates_on_the_capture_store(labelled):
    _, store, run = labelled
    cfg = config.load(None, ['data.source="store"', f'data.store="{store}"', "data.split=grouped",
                             "data.test_parts=['test']"])  # fmt: skip
    data = prepare(cfg, store)
    # This capture's LLTF (secondary none) is the table esp32_map was written for.
    assert data.subcarriers is not None and data.subcarriers.params == {
        "kind": "esp32",
        "table": "esp32-lltf",
    }
    x, y = gather(data.store, data.parts["test"])
    assert x.shape[1:] == (56, 20) and set(y.tolist()) == {0, 1}
    rep = json.loads((run / "count_eval" / "test" / "report.json").read_text())
    assert rep["model"]["n_windows"] == len(data.parts["test"])


def test_predict_on_a_capture_writes_counts_over_time_and_a_plot(labelled, tmp_path, capsys):
    tmp, _, run = labelled
    rc = main(["count", "predict", str(tmp / "capture.csv"), "--model", str(run), "--out", str(tmp_path / "c.csv"),
               "--plot", str(tmp_path / "c.png")])  # fmt: skip
    assert rc == 0
    out = capsys.readouterr().out
    assert "not resampled" in out and "20 packets/s" in out
    rows = (tmp_path / "c.csv").read_text().splitlines()
    assert rows[0].startswith("window,start_s,end_s,count,confidence,p0")
    n = len(RANGES) * PER_RANGE // 20
    assert len(rows) == n + 1
    cells = [r.split(",") for r in rows[1:]]
    start = np.asarray([float(c[1]) for c in cells])
    assert np.allclose(np.diff(start), 20 * SPACING_US / 1e6)
    probs = np.asarray([[float(v) for v in c[5:]] for c in cells])
    assert np.allclose(probs.sum(axis=1), 1, atol=2e-3)
    assert (tmp_path / "c.png").stat().st_size > 1000


def test_predict_resamples_a_faster_capture_and_says_so(labelled, tmp_path, capsys):
    _, _, run = labelled
    lines, _ = capture_lines(np.random.default_rng(1), [0, 1], 100, SPACING_US // 4)  # 80 packets/s
    (tmp_path / "fast.csv").write_text("\n".join(lines) + "\n")
    assert main(["count", "predict", str(tmp_path / "fast.csv"), "--model", str(run), "--out",
                 str(tmp_path / "f.csv")]) == 0  # fmt: skip
    assert "RESAMPLED by timestamps onto 20 packets/s" in capsys.readouterr().out
    rows = (tmp_path / "f.csv").read_text().splitlines()[1:]
    # 200 packets at 12.5 ms span 2.49 s: two windows of 20 packets at 20/s (0.95 s each).
    assert len(rows) == 2
    assert float(rows[1].split(",")[1]) - float(rows[0].split(",")[1]) == pytest.approx(1.0)


def test_predict_on_stdin_prints_one_flushed_line_per_window(labelled, monkeypatch, capsys):
    tmp, _, run = labelled
    lines = (tmp / "capture.csv").read_text().splitlines()[:100]
    monkeypatch.setattr("sys.stdin", io.StringIO("I (812) wifi: boot\n" + "\n".join(lines) + "\n"))
    assert main(["count", "predict", "-", "--model", str(run)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("window,start_s") and out[1].startswith("# capture 20 packets/s")
    assert len(out) == 2 + 5
    # The same windows as the file form.
    capsys.readouterr()
    (tmp / "first100.csv").write_text("\n".join(lines) + "\n")
    assert (
        main(["count", "predict", str(tmp / "first100.csv"), "--model", str(run), "--show", "99"])
        == 0
    )
    file_rows = [
        r for r in capsys.readouterr().out.splitlines() if r[:1].isdigit() and "windows;" not in r
    ]
    assert file_rows == out[2:]


def test_predict_on_a_store_and_on_a_stream_with_another_station(
    labelled, monkeypatch, capsys, tmp_path
):
    tmp, store, run = labelled
    assert (
        main(
            ["count", "predict", str(store), "--model", str(run), "--out", str(tmp_path / "s.csv")]
        )
        == 0
    )
    assert len((tmp_path / "s.csv").read_text().splitlines()) == len(RANGES) * PER_RANGE // 20 + 1
    capsys.readouterr()
    lines = (tmp / "capture.csv").read_text().splitlines()[:40]
    other = [x.replace("1A:00:00:00:00:00", "BB:00:00:00:00:02") for x in lines[:15]]
    mixed = [v for pair in zip(lines[:15], other, strict=True) for v in pair] + lines[15:]
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(mixed) + "\n"))
    assert main(["count", "predict", "-", "--model", str(run)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 + 2 and out[1].startswith(
        "# capture 20 packets/s"
    )  # the other station's lines skipped


def test_a_wrapping_header_naming_csi_data_is_a_header(tmp_path):
    b, _ = ew.buffer(np.random.default_rng(0), ew.CLASSIC[(0, 0, 0, 0)][:3])
    src = tmp_path / "h.csv"
    src.write_text(
        "host_time,type,seq,mac,CSI_DATA,label\n"
        + ew.wrap(ew.esp_csi_line(b), before=(1.5,))
        + "\n"
    )
    m = Store.open(convert("esp32", src, tmp_path / "s")).manifest
    assert m["n_frames"] == 1 and m["csi"]["capture"]["skipped_lines"] == 0


def test_a_directory_of_captures_is_one_store_one_recording_per_file(tmp_path):
    """One capture per count and session: each file a recording, labelled by a file,count CSV."""
    d = tmp_path / "captures"
    d.mkdir()
    counts = [0, 1, 0, 1, 1, 0]
    for i, c in enumerate(counts):
        lines, _ = capture_lines(np.random.default_rng(10 + i), [c], 40, SPACING_US)
        (d / f"s{i}.csv").write_text("\n".join(lines) + "\n")
    (d / "labels.csv").write_text(
        "file,count\n" + "".join(f"s{i}.csv,{c}\n" for i, c in enumerate(counts))
    )
    s = Store.open(convert("esp32", d, tmp_path / "store", labels=str(d / "labels.csv")))
    m = s.manifest
    assert [n for n in m["metadata"]["sequence"] if n.startswith("s")] == [
        f"s{i}.csv#{i + 2}" for i in range(6)
    ]
    assert m["csi"]["hardware_profile"]["files"] == [f"s{i}.csv" for i in range(6)]
    parts = s.split("grouped")
    seq = s.gather(np.arange(len(s)), fields=["sequence"])["sequence"]
    owner: dict[int, str] = {}
    for part, idx in parts.items():
        for q in np.unique(seq[idx]):
            assert owner.setdefault(int(q), part) == part
    pc = np.load(tmp_path / "store" / m["arrays"]["person_count"]["file"])
    assert (pc == np.repeat(counts, 40)).all()
    # The same with --label: every file one recording of that count; no labels: one per file.
    m = Store.open(convert("esp32", d, tmp_path / "one", label=["count=3"])).manifest
    assert m["metadata"]["sequence"][-6:] == [f"s{i}.csv" for i in range(6)]
    (d / "bad.csv").write_text("file,count\nnope.csv,1\n")
    with pytest.raises(DataFormatError, match=r"line 2: field file: 'nope\.csv'"):
        convert("esp32", d, tmp_path / "x", labels=str(d / "bad.csv"))


def test_old_predict_form_and_wrong_uses(labelled, tmp_path):
    _, _, run = labelled
    np.save(tmp_path / "w.npy", np.zeros((2, 56, 20), np.float32))
    assert main(["count", "predict", str(run), str(tmp_path / "w.npy")]) == 0
    assert main(["count", "predict", str(run)]) == 2
    short = tmp_path / "short.csv"
    short.write_text(
        "\n".join(capture_lines(np.random.default_rng(2), [0], 5, SPACING_US)[0]) + "\n"
    )
    assert main(["count", "predict", str(short), "--model", str(run)]) == 2


def test_label_options_are_checked(tmp_path):
    lines, _ranges = capture_lines(np.random.default_rng(3), [0, 1], 20, SPACING_US)
    src = tmp_path / "c.csv"
    src.write_text("\n".join(lines) + "\n")
    m = Store.open(
        convert("esp32", src, tmp_path / "one", label=["count=2", "activity=sit"])
    ).manifest
    assert (m["metadata"]["action"][-1] == "sit" and "splits" not in m) or not m["splits"]
    (tmp_path / "l.csv").write_text("start,end,count\n1.0,1.5,1\n1.4,2.0,0\n")
    with pytest.raises(DataFormatError, match="overlap"):
        convert("esp32", src, tmp_path / "x", labels=str(tmp_path / "l.csv"))
    (tmp_path / "l.csv").write_text("start,end,count\n100,101,1\n")
    with pytest.raises(DataFormatError, match=r"line 2: no packet of c.csv in \[100.0, 101.0\)"):
        convert("esp32", src, tmp_path / "x", labels=str(tmp_path / "l.csv"))
    (tmp_path / "l.csv").write_text("start,end,people\n1,2,1\n")
    with pytest.raises(DataFormatError, match="columns count missing"):
        convert("esp32", src, tmp_path / "x", labels=str(tmp_path / "l.csv"))
    with pytest.raises(DataFormatError, match="count=N or activity=NAME"):
        convert("esp32", src, tmp_path / "x", label=["people=3"])
    assert not (tmp_path / "x").exists()


REAL = Path(os.environ.get("CSIPOSE_REAL_CSI") or Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
            / "real-csi") / "csiread-samples" / "esp32_example_csi.csv"  # fmt: skip


def test_predict_on_the_real_esp32_sample(labelled, capsys):
    """The shared real sample holds 13 packets (median 357 packets/s): fewer than one window of
    20, at any rate. count predict reads it (its format, layout and rate) and says so."""
    if not REAL.is_file():
        pytest.skip(f"real CSI recording {REAL} not present")
    _, _, run = labelled
    assert main(["count", "predict", str(REAL), "--model", str(run)]) == 2
    out = capsys.readouterr()
    assert "capture 357 packets/s" in out.out and "RESAMPLED" in out.out  # against the training 20
    assert "13 packets, fewer than one window of 20" in out.err


def test_predict_applies_the_runs_input_features(labelled, tmp_path):
    """The fixture's run has the default input (static_removal): every predict path feeds
    the model what it was trained on, not the raw windows."""
    from csipose import CountNet
    from csipose.count.capture import load_checkpoint
    from csipose.signal_features import static_removal_np

    _, _, run = labelled
    ck = load_checkpoint(run)
    assert ck.features == ("static_removal",)
    w = np.random.default_rng(3).uniform(1, 30, (4, 56, 20)).astype(np.float32)
    np.save(tmp_path / "w.npy", w)
    args = ["count", "predict", str(run), str(tmp_path / "w.npy"), "--out", str(tmp_path / "p.npz")]
    assert main(args) == 0
    want = CountNet.load(run).predict(static_removal_np(w))
    np.testing.assert_array_equal(np.load(tmp_path / "p.npz")["probabilities"], want.probabilities)
    np.testing.assert_array_equal(ck.model_input(w), static_removal_np(w))
