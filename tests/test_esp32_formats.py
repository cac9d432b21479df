"""``csipose convert esp32`` reads back exactly what tests/esp32_writer.py writes, in every
line format, chip table entry and wrapping, and refuses what it cannot place."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import esp32_writer as ew
from csipose.data import manifest
from csipose.data.convert import convert
from csipose.errors import DataFormatError


def store(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    m = manifest.load(path)
    return m, {k: np.load(path / v["file"]) for k, v in m["arrays"].items()}


def stored_csi(a: dict) -> np.ndarray:
    return a["amplitude"][:, 0, :, 0] * np.exp(1j * a["phase"][:, 0, :, 0])


def expect(m: dict, known: list[dict], secondary: int, cwb: int) -> np.ndarray:
    """The complex value the store should hold at each stored entry, from the writer's own table."""
    out = np.zeros((len(known), len(m["csi"]["subcarrier_indices"])), complex)
    for seg in m["csi"]["capture"]["segments"]:
        forty = seg["field"] != "lltf" and cwb == 1
        guide = {ew.csipose_index(k, secondary, forty): k for k in range(-64, 64)}
        for j in range(seg["start"], seg["stop"]):
            k = guide[m["csi"]["subcarrier_indices"][j]]
            out[:, j] = [kn[(seg["field"], k)] for kn in known]
    return out


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_writer_tables_add_up():
    for (sec, sig, cwb, stbc), (*fields, total) in ew.CLASSIC.items():
        assert 2 * sum(len(ew.runs(f)) for f in fields if f) == total, (sec, sig, cwb, stbc)
    for (_, total), fields in ew.C5.items():
        assert 2 * sum(len(ew.runs(f)) for f in fields if f) == total


@pytest.mark.parametrize(
    "key", list(ew.CLASSIC), ids=lambda k: "sec{}-sig{}-cwb{}-stbc{}".format(*k)
)
@pytest.mark.parametrize("fmt", ["esp-csi", "esp32-csi-tool"])
def test_every_classic_layout_reads_back_exactly(tmp_path, key, fmt):
    sec, sig, cwb, stbc = key
    *fields, _total = ew.CLASSIC[key]
    rng = np.random.default_rng(sum(key) + len(fmt))
    bufs = [ew.buffer(rng, tuple(fields)) for _ in range(5)]
    kw = {"secondary": sec, "sig_mode": sig, "cwb": cwb, "stbc": stbc}
    line = ew.esp_csi_line if fmt == "esp-csi" else ew.tool_line
    src = write(tmp_path / "c.csv", [line(b, ts=1000 * i, **kw) for i, (b, _) in enumerate(bufs)])
    segments = ["lltf"] + (["lltf+htltf", "htltf"] if fields[1] else [])
    for seg in segments:
        m, a = store(convert("esp32", src, tmp_path / seg, segments=seg))
        assert m["csi"]["hardware_profile"]["format"] == fmt
        assert [s["field"] for s in m["csi"]["capture"]["segments"]] == seg.split("+")
        np.testing.assert_allclose(
            stored_csi(a), expect(m, [k for _, k in bufs], sec, cwb), atol=1e-4
        )
    # The LLTF about the primary channel's centre: -32..31 in some order, nulls included.
    m, _ = store(tmp_path / "lltf")
    assert sorted(m["csi"]["subcarrier_indices"]) == list(range(-32, 32))
    assert sorted(m["csi"]["null_subcarriers"]) == sorted([*range(-32, -26), 0, *range(27, 32)])


def test_esp32_csi_tool_prints_the_lltf_of_a_longer_buffer(tmp_path):
    """ESP32-CSI-Tool prints 128 bytes (the LLTF) with len 384: read; HT-LTF asked: refused."""
    rng = np.random.default_rng(1)
    b, known = ew.buffer(rng, ew.CLASSIC[(1, 1, 1, 0)][:3])
    src = write(
        tmp_path / "t.csv", [ew.tool_line(b[:128], secondary=1, sig_mode=1, cwb=1, length=384)]
    )
    m, a = store(convert("esp32", src, tmp_path / "s"))
    np.testing.assert_allclose(stored_csi(a), expect(m, [known], 1, 1), atol=1e-4)
    with pytest.raises(
        DataFormatError, match=r"t\.csv: line 1: field data: 128 values; the htltf needs"
    ):
        convert("esp32", src, tmp_path / "h", segments="lltf+htltf")


@pytest.mark.parametrize("key", list(ew.C5), ids=lambda k: f"{k[0]}-{k[1]}")
def test_c5_layouts_read_back_exactly(tmp_path, key):
    sec, length = key
    fields = ew.C5[key]
    rng = np.random.default_rng(length)
    bufs = [ew.buffer(rng, fields) for _ in range(3)]
    src = write(
        tmp_path / "c5.csv", [ew.c5_line(b, seq=i, ts=100 * i) for i, (b, _) in enumerate(bufs)]
    )
    seg = "lltf" if fields[0] else "htltf"
    m, a = store(convert("esp32", src, tmp_path / "s", chip="esp32c5", secondary=sec, segments=seg))
    cwb = 1 if length in (234, 468) else 0
    np.testing.assert_allclose(stored_csi(a), expect(m, [k for _, k in bufs], 0, cwb), atol=1e-4)
    assert a["seq"][:, 0].tolist() == [0, 1, 2]


def test_c5_refusals_name_the_reason(tmp_path):
    b, _ = ew.buffer(np.random.default_rng(0), ("0~26,-26~-1",))
    src = write(tmp_path / "c5.csv", [ew.c5_line(b)])
    with pytest.raises(DataFormatError, match="ESP32-C5 and the C6 alike"):
        convert("esp32", src, tmp_path / "s")
    with pytest.raises(DataFormatError, match="no subcarrier table for the ESP32-C6"):
        convert("esp32", src, tmp_path / "s", chip="esp32c6")
    with pytest.raises(DataFormatError, match=r"line 1: field len: 106 .*give --secondary"):
        convert("esp32", src, tmp_path / "s", chip="esp32c5")
    with pytest.raises(DataFormatError, match="field len: 106 bytes, secondary channel below"):
        convert("esp32", src, tmp_path / "s", chip="esp32c5", secondary="below")
    with pytest.raises(DataFormatError, match="CSI_FORCE_LLTF"):
        convert("esp32", write(tmp_path / "f.csv", [ew.c5_line(list(range(52)), length=106)]),
                tmp_path / "s", chip="esp32c5", secondary="none")  # fmt: skip
    assert not (tmp_path / "s").exists()


def test_wrapping_csv_columns_and_appended_fields(tmp_path):
    """Host time and label before the line, a Unix time after the list: read as columns."""
    rng = np.random.default_rng(2)
    bufs = [ew.buffer(rng, ew.CLASSIC[(0, 0, 0, 0)][:3]) for _ in range(4)]
    lines = ["host_time,label,line,unix", *(ew.wrap(ew.esp_csi_line(b, seq=i), before=(10.5 + i, "walk"),
             after=(1.7e9 + i,)) for i, (b, _) in enumerate(bufs))]  # fmt: skip
    m, a = store(convert("esp32", write(tmp_path / "w.csv", lines), tmp_path / "s"))
    np.testing.assert_allclose(stored_csi(a), expect(m, [k for _, k in bufs], 0, 0), atol=1e-4)
    np.testing.assert_array_equal(a["before_0"][:, 0], [10.5, 11.5, 12.5, 13.5])
    np.testing.assert_array_equal(a["after_0"][:, 0], 1.7e9 + np.arange(4))
    assert m["csi"]["capture"]["text_columns"]["before_1"]["first_values"] == ["walk"]
    assert m["csi"]["capture"]["skipped_lines"] == 0
    # The same lines unwrapped give the same CSI.
    _, b = store(
        convert(
            "esp32",
            write(tmp_path / "p.csv", [ew.esp_csi_line(x) for x, _ in bufs]),
            tmp_path / "p",
        )
    )
    np.testing.assert_array_equal(b["amplitude"], a["amplitude"])


def test_mixed_stations_convert_one_link_and_count_the_others(tmp_path, capsys):
    rng = np.random.default_rng(3)
    bufs = [ew.buffer(rng, ew.CLASSIC[(0, 0, 0, 0)][:3]) for _ in range(7)]
    macs = ["AA:00:00:00:00:01", "BB:00:00:00:00:02", "AA:00:00:00:00:01", "AA:00:00:00:00:01",
            "CC:00:00:00:00:03", "BB:00:00:00:00:02", "AA:00:00:00:00:01"]  # fmt: skip
    src = write(tmp_path / "m.csv", [ew.esp_csi_line(b, mac=mac, seq=i) for i, ((b, _), mac) in
                                     enumerate(zip(bufs, macs, strict=True))])  # fmt: skip
    from csipose.cli import main

    assert main(["convert", "esp32", str(src), str(tmp_path / "s")]) == 0
    assert (
        "other stations left out: BB:00:00:00:00:02 (2), CC:00:00:00:00:03 (1)"
        in capsys.readouterr().out
    )
    m, a = store(tmp_path / "s")
    assert a["seq"][:, 0].tolist() == [0, 2, 3, 6]
    assert m["csi"]["capture"]["packets_per_mac"] == {"AA:00:00:00:00:01": 4, "BB:00:00:00:00:02": 2,
                                                      "CC:00:00:00:00:03": 1}  # fmt: skip
    m, a = store(convert("esp32", src, tmp_path / "b", mac="bb:00:00:00:00:02"))
    assert a["seq"][:, 0].tolist() == [1, 5]
    with pytest.raises(DataFormatError, match="--mac DD:00:00:00:00:04: no packet"):
        convert("esp32", src, tmp_path / "d", mac="DD:00:00:00:00:04")


def test_a_file_changing_layout_is_refused_naming_the_line(tmp_path):
    rng = np.random.default_rng(4)
    a, _ = ew.buffer(rng, ew.CLASSIC[(0, 0, 0, 0)][:3])
    b, _ = ew.buffer(rng, ew.CLASSIC[(2, 0, 0, 0)][:3])
    src = write(
        tmp_path / "x.csv",
        [ew.esp_csi_line(a), ew.esp_csi_line(a), ew.esp_csi_line(b, secondary=2)],
    )
    with pytest.raises(
        DataFormatError, match=r"x\.csv: line 3: .*lltf 0~63 where line 1 has lltf 0~31, -32~-1"
    ):
        convert("esp32", src, tmp_path / "s")


def _valid(rng_seed: int, fmt: str) -> tuple[str, list[int]]:
    b, _ = ew.buffer(np.random.default_rng(rng_seed), ew.CLASSIC[(0, 1, 0, 0)][:3])
    kw = {"sig_mode": 1}
    return (ew.esp_csi_line(b, **kw) if fmt == "esp-csi" else ew.tool_line(b, **kw)), b.tolist()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 2**16), fmt=st.sampled_from(["esp-csi", "esp32-csi-tool"]),
       how=st.sampled_from(["truncate", "field", "value", "length", "fields", "chip"]),
       pick=st.integers(0, 10_000), junk=st.sampled_from(["x", "1.5", "", "0x1f", "--3", "nan", "1e3"]))  # fmt: skip
def test_fuzzed_lines_give_clear_errors_never_wrong_values(
    tmp_path_factory, seed, fmt, how, pick, junk
):
    """A damaged line is a DataFormatError naming file and line, or (the one case where the
    damage leaves a valid line: the tool's LLTF-only print) the right values."""
    tmp = tmp_path_factory.mktemp("fuzz")
    good, values = _valid(seed, fmt)
    head, _, rest = good.partition("[")
    fields = head.split(",")
    options = {}
    if how == "truncate":  # drop values from the end of the list
        keep = pick % len(values)
        sep = "," if fmt == "esp-csi" else " "
        line = head + "[" + sep.join(map(str, values[:keep])) + (']"' if fmt == "esp-csi" else " ]")
    elif how == "field":  # a numeric field made non-numeric
        numeric = list(
            range(1 if fmt == "esp-csi" else 2, len(fields) - 1)
        )  # [0] is CSI_DATA; [2] the MAC
        i = numeric[pick % len(numeric)]
        if junk.lstrip("-").isdigit():
            junk = "x" + junk
        if (
            fmt == "esp32-csi-tool" and i == 23
        ):  # real_timestamp is a float: "1.5", "nan", "1e3" parse
            junk = "x"
        fields[i] = junk
        line = ",".join(fields) + "[" + rest
    elif how == "value":  # a non-integer in the list
        vals = list(map(str, values))
        vals[pick % len(vals)] = junk or "x"
        if vals[pick % len(vals)].lstrip("-").isdigit():
            vals[pick % len(vals)] = "?"
        sep = "," if fmt == "esp-csi" else " "
        line = head + "[" + sep.join(vals) + (']"' if fmt == "esp-csi" else " ]")
    elif how == "length":  # the len field disagrees with the table
        li = len(fields) - (3 if fmt == "esp-csi" else 2)
        fields[li] = str(int(fields[li]) + 1 + pick % 300)
        line = ",".join(fields) + "[" + rest
    elif how == "fields":  # a field too many or too few
        fields.insert(2 + pick % 5, "7") if pick % 2 else fields.pop(2 + pick % 5)
        line = ",".join(fields) + "[" + rest
    else:  # a chip whose table is unknown or that prints other lines
        line, options = good, {"chip": ["esp32c6", "esp32c5", "esp32x"][pick % 3]}
    src = write(tmp / "f.csv", [good, line])
    try:
        _m, a = store(convert("esp32", src, tmp / "s", **options))
    except DataFormatError as e:
        assert "f.csv" in str(e)
        assert how == "chip" or "line 2" in str(e), str(e)
        assert not (tmp / "s").exists()
        return
    # Only the tool's LLTF-only print (128 of 256 values) is a valid damaged line.
    assert how == "truncate" and fmt == "esp32-csi-tool" and pick % len(values) == 128
    want = np.asarray(values[:128]).astype(np.int8)
    csi = want[1::2] + 1j * want[::2]
    np.testing.assert_allclose(stored_csi(a)[1], csi, atol=1e-4)


REAL = Path(os.environ.get("CSIPOSE_REAL_CSI") or Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
            / "real-csi") / "csiread-samples" / "esp32_example_csi.csv"  # fmt: skip


def test_real_sample_wrapped_in_a_csv_reads_the_same(tmp_path):
    if not REAL.is_file():
        pytest.skip(f"real CSI recording {REAL} not present")
    lines = REAL.read_text().splitlines()
    wrapped = [
        ew.wrap(x, before=(f"{1.7e9 + i:.3f}",), after=("empty room",)) for i, x in enumerate(lines)
    ]
    _, want = store(convert("esp32", REAL, tmp_path / "want"))
    m, got = store(
        convert("esp32", write(tmp_path / "w.csv", ["time,line,note", *wrapped]), tmp_path / "got")
    )
    np.testing.assert_array_equal(got["amplitude"], want["amplitude"])
    np.testing.assert_array_equal(got["phase"], want["phase"])
    assert m["csi"]["hardware_profile"]["format"] == "esp32-csi-tool"
    assert got["before_0"].shape == (len(lines), 1)


def test_a_100k_line_capture_parses(tmp_path):
    """Not a timing assertion: a big file converts (benches/ has no ESP32 parser bench)."""
    b, _ = ew.buffer(np.random.default_rng(5), ew.CLASSIC[(0, 1, 0, 0)][:3])
    line = ew.esp_csi_line(b, sig_mode=1)
    src = tmp_path / "big.csv"
    src.write_text((line + "\n") * 20_000)
    m, _ = store(convert("esp32", src, tmp_path / "s"))
    assert m["n_frames"] == 20_000
