"""The capture converters on files the tests write themselves (tests/capture_writers.py):
known CSI in, the same amplitudes, phases and subcarrier grid out, with nothing from
outside the repository. (The real recordings are tests/test_convert_captures.py.)"""

from __future__ import annotations

import numpy as np
import pytest

import capture_writers as w
from csipose.data import manifest
from csipose.data.convert import convert
from csipose.signal import SUBCARRIERS

pytest.importorskip("csiread")


def read_store(path):
    m = manifest.load(path)
    return m, {k: np.load(path / v["file"]) for k, v in m["arrays"].items()}


def tx_major(csi: np.ndarray) -> np.ndarray:
    """[n, S, n_rx, n_tx] -> the store's [n, tx * n_rx + rx, S]."""
    n, s, n_rx, n_tx = csi.shape
    return csi.transpose(0, 3, 2, 1).reshape(n, n_tx * n_rx, s)


def assert_rows(arrays: dict, expected: np.ndarray) -> None:
    assert arrays["amplitude"].shape == (*expected.shape, 1)
    np.testing.assert_allclose(arrays["amplitude"][..., 0], np.abs(expected), rtol=1e-6)
    nonzero = np.abs(expected) > 0
    np.testing.assert_allclose(
        arrays["phase"][..., 0][nonzero], np.angle(expected)[nonzero], rtol=0, atol=1e-6
    )


@pytest.mark.parametrize(("n_rx", "n_tx"), [(1, 1), (3, 1), (2, 2), (3, 3)])
def test_intel5300_reads_back_what_was_written(tmp_path, n_rx, n_tx):
    rng = np.random.default_rng(n_rx * 10 + n_tx)
    packets = [w.random_csi(rng, (30, n_rx, n_tx), -128, 127) for _ in range(5)]
    src = w.intel5300_file(tmp_path / "log.dat", packets)
    m, a = read_store(convert("intel5300", src, tmp_path / "s"))
    assert m["n_frames"] == 5
    assert m["csi"]["subcarrier_indices"] == SUBCARRIERS["intel5300-ht20"]
    assert m["csi"]["antennas"]["n_rx"] == n_rx and m["csi"]["antennas"]["n_tx"] == n_tx
    want = tx_major(np.stack(packets))
    assert_rows(a, want)
    np.testing.assert_array_equal(a["bfee_count"][:, 0], np.arange(5))
    np.testing.assert_array_equal(a["rssi"][:, 0], [[40, 41, 42]] * 5)
    np.testing.assert_allclose(a["timestamp"][:, 0], np.arange(5) * 1e-3)


def test_intel5300_ht40_rate_selects_the_40_mhz_grid(tmp_path):
    rng = np.random.default_rng(3)
    packets = [w.random_csi(rng, (30, 2, 1), -20, 20) for _ in range(2)]
    src = w.intel5300_file(tmp_path / "log.dat", packets, rate=0x4101 | 0x800)
    m, a = read_store(convert("intel5300", src, tmp_path / "s"))
    assert m["csi"]["subcarrier_indices"] == SUBCARRIERS["intel5300-ht40"]
    assert_rows(a, tx_major(np.stack(packets)))


def test_intel5300_undoes_the_receive_antenna_permutation(tmp_path):
    # antenna_sel 0b000110: NIC chain 0 is antenna C (3), chain 1 is B (2), chain 2 is A (1).
    rng = np.random.default_rng(4)
    packets = [w.random_csi(rng, (30, 3, 1), -50, 50) for _ in range(2)]
    src = w.intel5300_file(tmp_path / "log.dat", packets, antenna_sel=0b000110)
    _, a = read_store(convert("intel5300", src, tmp_path / "s"))
    assert_rows(a, tx_major(np.stack(packets)[:, :, ::-1]))


@pytest.mark.parametrize(
    ("tones", "nr", "nc", "endian"),
    [(56, 1, 1, "little"), (56, 3, 2, "big"), (114, 2, 2, "little"), (56, 2, 3, "big")],
)
def test_atheros_reads_back_what_was_written(tmp_path, tones, nr, nc, endian):
    rng = np.random.default_rng(tones + nr * 3 + nc)
    packets = [w.random_csi(rng, (tones, nr, nc), -512, 511) for _ in range(4)]
    src = w.atheros_file(tmp_path / "log.dat", packets, endian=endian, payload=b"\x01\x02")
    m, a = read_store(convert("atheros", src, tmp_path / "s"))
    assert m["n_frames"] == 4
    assert m["csi"]["subcarrier_indices"] == SUBCARRIERS[f"atheros-ht{20 if tones == 56 else 40}"]
    assert m["csi"]["antennas"]["n_rx"] == nr and m["csi"]["antennas"]["n_tx"] == nc
    assert_rows(a, tx_major(np.stack(packets)))


@pytest.mark.parametrize("nfft", [64, 128, 256])
def test_nexmon_reads_back_what_was_written(tmp_path, nfft):
    rng = np.random.default_rng(nfft)
    packets = [w.random_csi(rng, (nfft,), -2000, 2000) for _ in range(3)]
    frames = [w.nexmon_packet(c, seq=16 * (i + 1), rssi=-40 - i) for i, c in enumerate(packets)]
    # A foreign UDP packet between them is skipped and counted.
    frames.insert(1, b"\xff" * 6 + b"OTHER!" + b"\x08\x00" + bytes(60))
    src = w.pcap_file(tmp_path / "cap.pcap", frames)
    m, a = read_store(convert("nexmon", src, tmp_path / "s", chip="43455c0"))
    assert m["n_frames"] == 3
    assert m["csi"]["subcarrier_indices"] == [*range(nfft // 2), *range(-nfft // 2, 0)]
    assert_rows(a, np.stack(packets)[:, None, :])
    np.testing.assert_array_equal(a["seq_ctrl"][:, 0], [16, 32, 48])
    np.testing.assert_array_equal(a["rssi"][:, 0], [-40, -41, -42])
    np.testing.assert_allclose(a["timestamp"][:, 0] - 1_700_000_000, [0, 0.02, 0.03], atol=1e-6)
