"""Where each subcarrier sits in an Espressif CSI buffer, per chip and packet type.

Source: ESP-IDF's Wi-Fi guide, "Wi-Fi Channel State Information"
(``docs/en/api-guides/wifi-driver/wifi-vendor-features.rst``). It has one table
for the ESP32, ESP32-S2, ESP32-C3 and ESP32-S3 (one ``.. only:: esp32 or esp32s2
or esp32c3 or esp32s3`` block, chosen by ``rx_ctrl`` secondary_channel,
sig_mode, cwb, stbc and the buffer length) and one for the ESP32-C5 (chosen by
the secondary channel and the length; the C5 reports the LLTF *or* the
HT-LTF, not both). It has no table for the ESP32-C6, so C6 buffers are refused.

Each table entry is a run of subcarrier indices in buffer order. csipose
numbers every 20 MHz field about the centre of the primary 20 MHz channel
(-32..31): the classic table's ``0~63`` (secondary below) and ``-64~-1``
(secondary above) are the primary channel's 64 subcarriers in ascending order
on the 40 MHz grid, shifted by -32 / +32. 40 MHz HT-LTFs keep the 40 MHz grid.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Chips by subcarrier table ("classic": the ESP32 / S2 / S3 / C3 table).
CHIPS = {"esp32": "classic", "esp32s2": "classic", "esp32s3": "classic", "esp32c3": "classic",
         "esp32c5": "c5", "esp32c6": "c6"}  # fmt: skip
SECONDARY = {0: "none", 1: "above", 2: "below"}
SOURCE = "ESP-IDF Wi-Fi guide, 'Wi-Fi Channel State Information' (wifi-vendor-features.rst)"


def _r(*runs: tuple[int, int]) -> tuple[int, ...]:
    return tuple(i for a, b in runs for i in range(a, b + 1))


@dataclass(frozen=True)
class Segment:
    """One training field in a buffer: its name and its subcarrier indices in buffer order."""

    field: str  # "lltf", "htltf" or "stbc-htltf"
    indices: tuple[int, ...]  # csipose's numbering (see the module docstring)
    grid: str  # what the numbering is about
    table: str  # the table entry it came from, as the source writes it

    @property
    def null(self) -> tuple[int, ...]:
        """Indices that carry no channel response: guards and DC (802.11a/g LLTF: data on
        -26..-1, 1..26; HT20: -28..-1, 1..28; HT40: -58..-2, 2..58; the table's companion
        "Sub-carrier range" table)."""
        if self.grid.startswith("40"):
            return tuple(i for i in self.indices if abs(i) > 58 or abs(i) < 2)
        edge = 26 if self.field == "lltf" else 28
        return tuple(i for i in self.indices if abs(i) > edge or i == 0)


_P20 = "20 MHz, about the primary channel's centre"
_W40 = "40 MHz, about the channel's centre"


def _shift(runs: tuple[int, ...], by: int) -> tuple[int, ...]:
    return tuple(i + by for i in runs)


def classic(secondary: int, sig_mode: int, cwb: int, stbc: int) -> tuple[int, list[Segment]] | None:
    """(total bytes, segments) of the ESP32/S2/S3/C3 table entry, or None if it has none."""
    fft = _r((0, 31), (-32, -1))
    if secondary == 0:
        lltf = Segment("lltf", fft, _P20, "0~31, -32~-1")
        if sig_mode == 0:
            return 128, [lltf]
        if sig_mode == 1 and cwb == 0:
            ht = Segment("htltf", fft, _P20, "0~31, -32~-1")
            if not stbc:
                return 256, [lltf, ht]
            return 384, [lltf, ht, Segment("stbc-htltf", fft, _P20, "0~31, -32~-1")]
        return None
    if secondary not in (1, 2):
        return None
    below = secondary == 2
    by = -32 if below else 32
    lltf = Segment("lltf", _shift(_r((0, 63)) if below else _r((-64, -1)), by), _P20,
                   "0~63" if below else "-64~-1")  # fmt: skip
    if sig_mode == 0:
        return 128, [lltf]
    if sig_mode != 1:
        return None
    if cwb == 0:
        if not stbc:
            run, text = (_r((0, 63)), "0~63") if below else (_r((-64, -1)), "-64~-1")
            return 256, [lltf, Segment("htltf", _shift(run, by), _P20, text)]
        run, text = (_r((0, 62)), "0~62") if below else (_r((-62, -1)), "-62~-1")
        seg = [Segment(f, _shift(run, by), _P20, text) for f in ("htltf", "stbc-htltf")]
        return (380 if below else 376), [lltf, *seg]
    if not stbc:
        return 384, [lltf, Segment("htltf", _r((0, 63), (-64, -1)), _W40, "0~63, -64~-1")]
    seg = [
        Segment(f, _r((0, 60), (-60, -1)), _W40, "0~60, -60~-1") for f in ("htltf", "stbc-htltf")
    ]
    return 612, [lltf, *seg]


def c5(secondary: int | None, length: int) -> list[Segment] | None:
    """Segments of an ESP32-C5 buffer of ``length`` bytes (None: no table entry). A 106- or
    114/228-byte buffer needs the secondary channel; 234/468 bytes (HT40) do not."""
    if length in (234, 468):
        ht = Segment("htltf", _r((0, 58), (-58, -1)), _W40, "0~58, -58~-1")
        return [ht] if length == 234 else [ht, Segment("stbc-htltf", ht.indices, _W40, ht.table)]
    if length == 106 and secondary == 0:
        return [Segment("lltf", _r((0, 26), (-26, -1)), _P20, "0~26, -26~-1")]
    if length in (114, 228) and secondary == 0:
        ht = Segment("htltf", _r((0, 28), (-28, -1)), _P20, "0~28, -28~-1")
        return [ht] if length == 114 else [ht, Segment("stbc-htltf", ht.indices, _P20, ht.table)]
    # Secondary below / above: the table writes 0~52 / -53~-1 (LLTF) and 0~56 / -57~-1
    # (HT20), 53 or 57 entries whose position about the primary channel it does not state
    # (unlike the classic table, 53 entries are not a 40 MHz half). Refused, not guessed.
    return None


__all__ = ["CHIPS", "SECONDARY", "SOURCE", "Segment", "c5", "classic"]
