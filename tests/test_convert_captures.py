"""Converters of real CSI captures, tested on real recordings against csiread's own reading.

The recordings live outside the repository (CSIPOSE_REAL_CSI, else
<repo>/../shared/data/real-csi); tests that need them skip when absent.
"""

from __future__ import annotations

import argparse
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from csipose.cli import main
from csipose.data import manifest
from csipose.data.convert import _capture as cap
from csipose.data.convert import convert
from csipose.errors import DataFormatError
from csipose.signal import ESP32_NULL, SUBCARRIERS

csiread = pytest.importorskip("csiread")

INTEL_AP = "intel5300_sample_0x1_ap.dat"
INTEL_MONITOR = "intel5300_sample_0x5_64_3000.dat"
ATHEROS = "atheros_ath_csi_1.dat"
ESP32 = "esp32_example_csi.csv"
NEXMON = "nexmon_example.pcap"
#: The CSV header ESP32-CSI-Tool prints before its CSI_DATA lines.
HEADER = (
    "type,role,mac,rssi,rate,sig_mode,mcs,bandwidth,smoothing,not_sounding,aggregation,stbc,"
    "fec_coding,sgi,noise_floor,ampdu_cnt,channel,secondary_channel,local_timestamp,ant,sig_len,"
    "rx_state,real_time_set,real_timestamp,len,CSI_DATA"
)


def _folder() -> Path:
    env = os.environ.get("CSIPOSE_REAL_CSI")
    root = (
        Path(env)
        if env
        else Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real-csi"
    )
    return root / "csiread-samples"


@pytest.fixture
def real():
    """The path of a real recording by file name; skips when the recordings are absent."""

    def path(name: str) -> Path:
        p = _folder() / name
        if not p.is_file():
            pytest.skip(f"real CSI recording {p} not present")
        return p

    return path


def store(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """The manifest (checked) and every array of a store, read with numpy only."""
    m = manifest.load(path)
    return m, {k: np.load(path / v["file"]) for k, v in m["arrays"].items()}


def links(csi: np.ndarray, n_rx: int, n_tx: int) -> np.ndarray:
    """csiread's [n, subcarriers, rx, tx] as the store's tx-major [n, tx * n_rx + rx, subcarriers]."""
    out = np.zeros((len(csi), n_tx * n_rx, csi.shape[1]), csi.dtype)
    for t in range(n_tx):
        for r in range(n_rx):
            out[:, t * n_rx + r] = csi[:, :, r, t]
    return out


def assert_csi(arrays: dict, expected: np.ndarray) -> None:
    """amplitude / phase are |csi| / angle(csi) of ``expected`` [n, A, S] within float32 rounding."""
    assert arrays["amplitude"].shape == (*expected.shape, 1)
    assert arrays["amplitude"].dtype == arrays["phase"].dtype == np.float32
    np.testing.assert_allclose(arrays["amplitude"][..., 0], np.abs(expected), rtol=1e-6, atol=1e-30)
    np.testing.assert_allclose(arrays["phase"][..., 0], np.angle(expected), rtol=0, atol=1e-6)


def assert_capture_basics(m: dict, arrays: dict, n: int, name: str) -> None:
    assert m["n_frames"] == n and m["labels"] is None
    assert m["default_window"] == {"length": 1, "stride": 1, "label": "first"}
    assert m["metadata"]["sequence"] == [name] and m["metadata"]["subject"] == ["unknown"]
    assert arrays["frame_index"].tolist() == list(range(n))
    assert (arrays["person_count"] == -1).all() and arrays["valid"].all()
    assert m["repair"]["rule"] == "none" and m["repair"]["repaired_values"] == 0
    assert arrays["timestamp"].dtype == np.float64 and arrays["timestamp"].shape == (n, 1)


def test_subcarrier_tables_match_csiread_scidx():
    """IEEE 802.11n groupings, as csiread computes them (Intel 20 MHz is not symmetric)."""
    assert SUBCARRIERS["intel5300-ht20"] == csiread.scidx(20, 2).tolist()
    assert SUBCARRIERS["intel5300-ht40"] == csiread.scidx(40, 4).tolist()
    assert SUBCARRIERS["atheros-ht20"] == csiread.scidx(20, 1).tolist()
    assert SUBCARRIERS["atheros-ht40"] == csiread.scidx(40, 1).tolist()
    assert sorted(SUBCARRIERS["esp32-lltf"]) == sorted(SUBCARRIERS["esp32-lltf-ht40"])
    assert sorted(SUBCARRIERS["esp32-lltf"]) == list(range(-32, 32))


@pytest.mark.parametrize("name", [INTEL_AP, INTEL_MONITOR])
def test_intel5300_rows_equal_csiread(real, tmp_path, name):
    src = real(name)
    m, a = store(convert("intel5300", src, tmp_path / "s"))
    d = csiread.Intel(str(src), nrxnum=3, ntxnum=3, if_report=False)
    d.read()
    n_rx, n_tx = int(d.Nrx.max()), int(d.Ntx.max())
    assert_capture_basics(m, a, d.count, name)
    assert_csi(a, links(d.csi, n_rx, n_tx))
    assert m["csi"]["antennas"]["n_rx"] == n_rx and m["csi"]["antennas"]["n_tx"] == n_tx
    assert m["csi"]["subcarrier_indices"] == csiread.scidx(20, 2).tolist()
    assert m["csi"]["hardware_profile"]["bandwidth_mhz"] == 20
    np.testing.assert_array_equal(a["bfee_count"][:, 0], d.bfee_count)
    np.testing.assert_array_equal(a["rssi"][:, 0], np.c_[d.rssi_a, d.rssi_b, d.rssi_c])


def test_intel5300_monitor_sample_has_1ms_packets(real, tmp_path):
    """The README says 3,000 packets; the file holds 2,998 bfee records (bfee_count 1..2998,
    no gap) spanning 2.999 s, so two 1 ms slots had no packet. Each has its MPDU header."""
    m, a = store(convert("intel5300", real(INTEL_MONITOR), tmp_path / "s"))
    assert m["n_frames"] == 2998
    assert a["bfee_count"][:, 0].tolist() == list(range(1, 2999))
    t = a["timestamp"][:, 0]
    assert np.median(np.diff(t)) == pytest.approx(1e-3, abs=2e-6)
    assert t[-1] - t[0] == pytest.approx(2.999, abs=2e-3)
    assert (m["csi"]["antennas"]["n_tx"], m["csi"]["antennas"]["n_rx"]) == (1, 3)
    assert a["src_mac"].shape == (2998, 1, 6) and a["seq_ctrl"].shape == (2998, 1)
    assert bytes(a["src_mac"][0, 0]) == bytes([0x00, 0x16, 0xEA, 0x12, 0x34, 0x56])


def test_intel5300_scaled_is_csiread_get_scaled_csi(real, tmp_path):
    src = real(INTEL_AP)
    _, raw = store(convert("intel5300", src, tmp_path / "raw"))
    m, a = store(convert("intel5300", src, tmp_path / "scaled", scaled=True))
    d = csiread.Intel(str(src), nrxnum=3, ntxnum=2, if_report=False)
    d.read()
    assert_csi(a, links(d.get_scaled_csi(), 3, 2))  # a fresh reader: csiread's scaling is stateful
    assert "get_scaled_csi" in m["csi"]["units"]["amplitude"]
    # The scaling is one positive factor per packet: phase unchanged, amplitude ratio constant.
    np.testing.assert_allclose(a["phase"], raw["phase"], atol=1e-6)
    ratio = a["amplitude"] / raw["amplitude"]
    assert not np.allclose(ratio, 1)
    np.testing.assert_allclose(ratio, np.broadcast_to(ratio[:, :1, :1], ratio.shape), rtol=1e-5)


def test_atheros_rows_equal_csiread(real, tmp_path):
    src = real(ATHEROS)
    m, a = store(convert("atheros", src, tmp_path / "s"))
    d = csiread.Atheros(str(src), nrxnum=3, ntxnum=3, tones=56, if_report=False)
    d.read()
    assert_capture_basics(m, a, d.count, ATHEROS)
    assert (int(d.nr.max()), int(d.nc.max()), int(d.num_tones.max())) == (3, 2, 56)
    assert_csi(a, links(d.csi, 3, 2))
    assert m["csi"]["subcarrier_indices"] == SUBCARRIERS["atheros-ht20"]
    profile = m["csi"]["hardware_profile"]
    assert (profile["channel"], profile["frequency_mhz"], profile["endian"]) == (6, 2437, "little")
    np.testing.assert_allclose(a["timestamp"][:, 0], d.timestamp * 1e-6)


def test_esp32_rows_equal_csiread(real, tmp_path):
    src = real(ESP32)
    m, a = store(convert("esp32", src, tmp_path / "s"))
    d = csiread.ESP32(str(src), if_report=False)
    d.read()
    assert_capture_basics(m, a, d.count, ESP32)
    assert_csi(a, d.csi[:, None, :])
    assert m["csi"]["antennas"]["n_tx"] == m["csi"]["antennas"]["n_rx"] == 1
    assert m["csi"]["subcarrier_indices"] == SUBCARRIERS["esp32-lltf-ht40"]  # secondary above
    assert m["csi"]["null_subcarriers"] == ESP32_NULL
    np.testing.assert_allclose(a["timestamp"][:, 0], d.local_timestamp * 1e-6)
    np.testing.assert_array_equal(a["rssi"][:, 0], d.rssi)


def test_esp32_declared_order_is_the_one_the_real_sample_shows(real, tmp_path):
    """Guard subcarriers are empty and data subcarriers are not under the declared order;
    the no-secondary-channel order (0..31, -32..-1) would put empty entries on data ones."""
    m, a = store(convert("esp32", real(ESP32), tmp_path / "s"))
    level = np.median(a["amplitude"][:, 0, :, 0], axis=0)

    def at(order, indices):
        return level[[order.index(i) for i in indices]]

    data = [i for i in range(-26, 27) if i]
    guard = [-30, -29, -28, 28, 29, 30, 31]  # -32, -31: ESP32's invalid first word
    order = m["csi"]["subcarrier_indices"]
    assert at(order, guard).max() == 0 and at(order, data).min() > 10
    assert at(order, [0, -27, 27]).max() < at(order, data).min()  # DC and the band edges
    assert at(SUBCARRIERS["esp32-lltf"], data).min() == 0


def test_esp32_reads_header_log_lines_and_unsigned_bytes(real, tmp_path):
    """What ESP32-CSI-Tool really writes besides the sample: its CSV header, serial log
    lines, and (some versions) the CSI bytes printed unsigned."""
    src = real(ESP32)
    lines = src.read_text().splitlines()

    def unsigned(line):
        head, _, rest = line.partition("[")
        values = [str(int(v) % 256) for v in rest.rstrip(" ]").split()]
        return f"{head}[{' '.join(values)} ]"

    text = [
        HEADER,
        *map(unsigned, lines[:2]),
        "I (812) wifi: state: run",
        *map(unsigned, lines[2:]),
    ]
    (tmp_path / "log.csv").write_text("\n".join(text) + "\n")
    _, want = store(convert("esp32", src, tmp_path / "want"))
    m, got = store(convert("esp32", tmp_path / "log.csv", tmp_path / "got"))
    np.testing.assert_array_equal(got["amplitude"], want["amplitude"])
    np.testing.assert_array_equal(got["phase"], want["phase"])
    assert m["csi"]["capture"]["skipped_lines"] == 1
    assert m["csi"]["hardware_profile"]["printed_bytes"].startswith("unsigned")


def test_nexmon_rows_equal_csiread_with_the_default_chip(real, tmp_path):
    """nexmon_csi's example capture was recorded on a bcm4358 (its README), the default chip."""
    src = real(NEXMON)
    m, a = store(convert("nexmon", src, tmp_path / "s"))
    d = csiread.Nexmon(str(src), chip="4358", bw=80, if_report=False)
    d.read()
    assert_capture_basics(m, a, d.count, NEXMON)
    assert_csi(a, d.csi[:, None, :])
    assert m["csi"]["subcarrier_indices"] == [*range(128), *range(-128, 0)]
    profile = m["csi"]["hardware_profile"]
    assert (profile["bandwidth_mhz"], profile["channel"], profile["chanspec"]) == (
        80,
        157,
        "0xe29b",
    )
    assert a["core"][:, 0].tolist() == [0, 0, 1, 1] and a["spatial"][:, 0].tolist() == [0, 1, 0, 1]
    # Every declared null subcarrier (guards, DC) is weaker than every other in the real packets.
    level = np.median(a["amplitude"][:, 0, :, 0], axis=0)
    null = np.isin(m["csi"]["subcarrier_indices"], m["csi"]["null_subcarriers"])
    assert null.sum() == 14 and level[null].max() < level[~null].min()


def test_nexmon_group_antennas_joins_the_cores_and_streams_of_a_frame(real, tmp_path):
    src = real(NEXMON)
    m, a = store(convert("nexmon", src, tmp_path / "s", group_antennas=True))
    d = csiread.Nexmon(str(src), chip="4358", bw=80, if_report=False)
    d.read()
    assert m["csi"]["antennas"]["n_tx"] == m["csi"]["antennas"]["n_rx"] == 2
    # tx-major: antenna = stream * 2 + core; packets are (core, stream) 00, 01, 10, 11.
    assert_csi(a, d.csi[[0, 2, 1, 3]][None])
    assert m["csi"]["capture"]["grouped_antennas"] == {"frames": 1, "packets_dropped": 0}


def test_nexmon_skips_other_packets_and_takes_padding_only_when_told(real, tmp_path):
    """Short foreign packets (csiread.Nexmon loses its place on them: IndexError) are
    skipped and counted; padded CSI needs --bandwidth, its length alone is ambiguous."""
    data = real(NEXMON).read_bytes()
    packets, pos = [], 24
    while pos < len(data):
        caplen = struct.unpack_from("<I", data, pos + 8)[0]
        packets.append(data[pos : pos + 16 + caplen])
        pos += 16 + caplen
    foreign = struct.pack("<IIII", 1, 0, 20, 20) + bytes(20)

    def padded(packet):
        caplen = struct.unpack_from("<I", packet, 8)[0] + 32
        return packet[:8] + struct.pack("<II", caplen, caplen) + packet[16:] + bytes(32)

    (tmp_path / "mixed.pcap").write_bytes(data[:24] + foreign + b"".join(packets) + foreign)
    (tmp_path / "padded.pcap").write_bytes(data[:24] + b"".join(map(padded, packets)))
    _, want = store(convert("nexmon", real(NEXMON), tmp_path / "want"))
    m, got = store(convert("nexmon", tmp_path / "mixed.pcap", tmp_path / "mixed"))
    np.testing.assert_array_equal(got["amplitude"], want["amplitude"])
    assert m["csi"]["capture"]["skipped_packets"] == 2
    with pytest.raises(DataFormatError, match="give --bandwidth for padded packets"):
        convert("nexmon", tmp_path / "padded.pcap", tmp_path / "refused")
    m, got = store(convert("nexmon", tmp_path / "padded.pcap", tmp_path / "pad", bandwidth="80"))
    np.testing.assert_array_equal(got["amplitude"], want["amplitude"])
    assert m["csi"]["capture"]["padding_bytes_ignored"] is True


def test_packets_per_frame_groups_packets_and_reports_the_remainder(real, tmp_path):
    src = real(INTEL_AP)
    _, one = store(convert("intel5300", src, tmp_path / "one"))
    m, seven = store(convert("intel5300", src, tmp_path / "seven", packets_per_frame=7))
    assert m["n_frames"] == 77 and m["csi"]["packets_per_frame"] == 7
    assert (m["csi"]["packets"]["read"], m["csi"]["packets"]["dropped_remainder"]) == (540, 1)
    assert seven["amplitude"].shape == (77, 6, 30, 7)
    for frame, k in [(0, 0), (10, 3), (76, 6)]:
        np.testing.assert_array_equal(
            seven["amplitude"][frame, ..., k], one["amplitude"][7 * frame + k, ..., 0]
        )
        np.testing.assert_array_equal(
            seven["phase"][frame, ..., k], one["phase"][7 * frame + k, ..., 0]
        )
    assert seven["timestamp"].shape == (77, 7) and seven["rssi"].shape == (77, 7, 3)
    np.testing.assert_array_equal(seven["timestamp"].ravel(), one["timestamp"][:539, 0])


# Cuts inside the last packet: (format, file, bytes kept, complete packets before the cut).
CUTS = [
    ("intel5300", INTEL_AP, 213_000, 539),
    ("atheros", ATHEROS, 764_000, 400),
    ("nexmon", NEXMON, 4_000, 3),
    ("esp32", ESP32, 6_000, 12),
]


@pytest.mark.parametrize("fmt, name, keep, complete", CUTS)
def test_a_truncated_capture_is_refused_or_explicitly_cut(
    real, tmp_path, fmt, name, keep, complete
):
    """Refused by default; with --allow-truncated the complete packets are stored and the
    cut is recorded. (csiread itself drops or misreads the cut packet silently, see below.)"""
    cut = tmp_path / name
    cut.write_bytes(real(name).read_bytes()[:keep])
    with pytest.raises(DataFormatError, match=r"truncated capture.*--allow-truncated"):
        convert(fmt, cut, tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
    _, whole = store(convert(fmt, real(name), tmp_path / "whole"))
    m, a = store(convert(fmt, cut, tmp_path / "cut", allow_truncated=True))
    assert m["n_frames"] == complete
    np.testing.assert_array_equal(a["amplitude"], whole["amplitude"][:complete])
    notes = m["csi"]["capture"]
    assert notes["truncated_at_byte"] + notes["truncated_bytes_dropped"] == keep


def test_what_csiread_does_with_the_same_truncated_files(real, tmp_path):
    """The reason the converters check framing themselves: csiread drops a cut last
    record silently (Intel, Atheros), decodes a cut nexmon packet from stale bytes,
    and fails on a cut ESP32 line with a numpy reshape error."""
    cuts = {}
    for _, name, keep, _ in CUTS:
        cuts[name] = tmp_path / name
        cuts[name].write_bytes(real(name).read_bytes()[:keep])
    d = csiread.Intel(str(cuts[INTEL_AP]), 3, 2, if_report=False)
    d.read()
    assert d.count == 539
    d = csiread.Atheros(str(cuts[ATHEROS]), 3, 3, tones=56, if_report=False)
    d.read()
    assert d.count == 400
    full = csiread.Nexmon(str(real(NEXMON)), "4358", 80, if_report=False)
    full.read()
    d = csiread.Nexmon(str(cuts[NEXMON]), "4358", 80, if_report=False)
    d.read()
    assert d.count == 4 and not np.allclose(d.csi[3], full.csi[3])
    with pytest.raises(ValueError, match="reshape"):
        csiread.ESP32(str(cuts[ESP32]), if_report=False).read()


@pytest.mark.parametrize("fmt", ["intel5300", "atheros", "nexmon", "esp32"])
def test_foreign_and_empty_files_are_data_format_errors(real, tmp_path, fmt):
    others = [INTEL_AP, ATHEROS, NEXMON, ESP32]
    own = {"intel5300": INTEL_AP, "atheros": ATHEROS, "nexmon": NEXMON, "esp32": ESP32}[fmt]
    (tmp_path / "empty").write_bytes(b"")
    # A zero-length bfee record: csiread.Intel crashes the interpreter on this file.
    (tmp_path / "zero.dat").write_bytes(b"\x00\x00\xbb" + bytes(3000))
    for src in [real(n) for n in others if n != own] + [tmp_path / "empty", tmp_path / "zero.dat"]:
        with pytest.raises(DataFormatError, match=str(src.name)):
            convert(fmt, src, tmp_path / "out")
        assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "zero.dat"]


def test_wrong_options_are_data_format_errors(real, tmp_path):
    with pytest.raises(DataFormatError, match="--chip"):
        convert("nexmon", real(NEXMON), tmp_path / "s", chip="4400")
    with pytest.raises(DataFormatError, match=r"--bandwidth 40 needs 512 CSI bytes.* 1024"):
        convert("nexmon", real(NEXMON), tmp_path / "s", bandwidth="40")
    with pytest.raises(DataFormatError, match="--endian"):
        convert("atheros", real(ATHEROS), tmp_path / "s", endian="middle")
    with pytest.raises(DataFormatError, match="--packets-per-frame"):
        convert("esp32", real(ESP32), tmp_path / "s", packets_per_frame=0)
    with pytest.raises(DataFormatError, match="fewer than --packets-per-frame 14"):
        convert("esp32", real(ESP32), tmp_path / "s", packets_per_frame=14)
    with pytest.raises(DataFormatError, match="either byte order"):
        convert("atheros", real(INTEL_AP), tmp_path / "s")
    assert list(tmp_path.iterdir()) == []


def test_records_too_big_for_csiread_are_read_through_a_trimmed_copy(real, tmp_path):
    """An MPDU record over 1024 bytes (Intel) or a payload over 4096 bytes (Atheros) would
    overflow csiread's stack buffers; the converters hand csiread a copy without them."""
    data = real(INTEL_MONITOR).read_bytes()
    length = int.from_bytes(data[:2], "big")  # the first record is an MPDU (0xc1)
    assert data[2] == 0xC1
    grown = (
        (length + 1100).to_bytes(2, "big") + data[2 : 2 + length] + bytes(1100) + data[2 + length :]
    )
    (tmp_path / "intel.dat").write_bytes(grown)
    _, want = store(convert("intel5300", real(INTEL_MONITOR), tmp_path / "want"))
    _, got = store(convert("intel5300", tmp_path / "intel.dat", tmp_path / "got"))
    np.testing.assert_array_equal(got["amplitude"], want["amplitude"])
    np.testing.assert_array_equal(got["src_mac"], want["src_mac"])

    data = real(ATHEROS).read_bytes()
    length, payload = struct.unpack_from("<H", data)[0], struct.unpack_from("<H", data, 2 + 23)[0]
    head = bytearray(data[2 : 2 + 25])
    head[23:25] = struct.pack("<H", payload + 5000)
    first = struct.pack("<H", length + 5000) + head + data[27 : 2 + length] + bytes(5000)
    (tmp_path / "ath.dat").write_bytes(first + data[2 + length :])
    _, want = store(convert("atheros", real(ATHEROS), tmp_path / "want_ath"))
    _, got = store(convert("atheros", tmp_path / "ath.dat", tmp_path / "got_ath"))
    np.testing.assert_array_equal(got["amplitude"], want["amplitude"])


def test_the_cli_converts_and_reports_errors(real, tmp_path, capsys):
    src, out = real(INTEL_AP), tmp_path / "s"
    assert main(["convert", "intel5300", str(src), str(out), "--subject", "S01"]) == 0
    m = manifest.load(out)
    assert m["n_frames"] == 540 and m["metadata"]["subject"] == ["S01"]
    assert m["provenance"]["converter"] == "intel5300"
    assert m["provenance"]["options"]["subject"] == "S01"
    assert main(["convert", "intel5300", str(real(ESP32)), str(tmp_path / "bad")]) == 2
    assert ESP32 in capsys.readouterr().err and not (tmp_path / "bad").exists()


def test_a_failure_while_writing_leaves_no_store(real, tmp_path, monkeypatch):
    calls = []

    def fail_on_second_batch(self, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full")
        return original(self, **kw)

    from csipose.data.writer import StoreWriter

    original = StoreWriter.add_frames
    monkeypatch.setattr(StoreWriter, "add_frames", fail_on_second_batch)
    monkeypatch.setattr(cap, "_BATCH", 100)
    with pytest.raises(OSError, match="disk full"):
        convert("intel5300", real(INTEL_AP), tmp_path / "s")
    assert list(tmp_path.iterdir()) == []


def _capture(csi: np.ndarray) -> cap.Capture:
    return cap.Capture(
        csi=csi,
        n_tx=1,
        n_rx=2,
        antenna_order=cap.TX_MAJOR,
        subcarrier_indices=[-1, 1, 2],
        amplitude_units="test",
        hardware_profile={"name": "test"},
        extra={"timestamp": np.arange(len(csi), dtype=np.float64)},
    )


def test_non_finite_csi_is_repaired_with_the_mmfi_rule_and_reported(tmp_path):
    parser = argparse.ArgumentParser()
    cap.add_arguments(parser)
    args = parser.parse_args([])
    (tmp_path / "src").write_bytes(b"x")
    rng = np.random.default_rng(0)
    csi = rng.normal(size=(6, 2, 3)) + 1j * rng.normal(size=(6, 2, 3))
    m, a = store(cap.write(_capture(csi), tmp_path / "src", tmp_path / "clean", args, "t", b"x"))
    assert m["repair"] == {
        "rule": "none",
        "repaired_values": 0,
        "repaired_frames": 0,
        "all_nan_frames": 0,
        "constant_frames": 0,
        "excluded_frames": 0,
    }
    csi[1, 0, 2] = np.nan  # NaN amplitude and phase
    csi[4] = np.inf  # Inf amplitude (all-NaN after the Inf -> NaN step), phase 0 (constant)
    m, a = store(cap.write(_capture(csi), tmp_path / "src", tmp_path / "dirty", args, "t", b"x"))
    r = m["repair"]
    assert r["rule"].startswith("MM-Fi") and r["repaired_frames"] == 2
    assert r["repaired_values"] == 2 + 6
    assert (r["all_nan_frames"], r["constant_frames"], r["excluded_frames"]) == (1, 1, 1)
    assert a["valid"].tolist() == [True, True, True, True, False, True]
    assert np.isfinite(a["amplitude"]).all() and np.isfinite(a["phase"]).all()
    others = np.abs(csi[1])[np.isfinite(csi[1])]  # the packet slice's finite amplitudes
    assert a["amplitude"][1, 0, 2, 0] == pytest.approx(others.mean(), rel=1e-6)
