"""Counting people in a capture: ``csipose count predict CAPTURE --model RUN``.

A capture (an ESP32 CSI log in any format ``csipose convert esp32`` reads, a
csipose store, or a live stream of log lines on stdin) becomes CountNet's input
the way the checkpoint was trained: its LLTF through the checkpoint's
subcarrier rule (ESP32 LLTF -> 56), then windows of 20 packets. When the
capture's packet rate differs from the training data's by more than 10 %, the
amplitudes are resampled onto the training rate by the packets' timestamps
(linear interpolation per subcarrier), and the output says so.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from csipose.errors import CsiposeError, DataFormatError
from csipose.signal import SubcarrierMap, index_map

N_SUBCARRIERS, N_FRAMES = 56, 20
#: Relative packet-rate difference above which a capture is resampled.
RATE_TOLERANCE = 0.10


def lltf_map(indices: list[int], null: Iterable[int], start: int = 0, stop: int | None = None,
             field: str = "lltf") -> SubcarrierMap:  # fmt: skip
    """The ESP32 LLTF rule of ``csipose.count.data.esp32_map`` for any declared layout:
    the non-null subcarriers of -26..26 in entries ``start..stop`` (one 20 MHz field, any
    order) linearly interpolated onto 56 points evenly spaced over [-26, 26]."""
    stop = len(indices) if stop is None else stop
    nulls = set(null)
    keep = [j for j in range(start, stop) if indices[j] not in nulls and -26 <= indices[j] <= 26]
    if len(keep) < 2:
        raise CsiposeError(
            f"the {field} has {len(keep)} non-null subcarriers in -26..26: nothing to map to 56"
        )
    inner = index_map([indices[j] for j in keep], np.linspace(-26.0, 26.0, N_SUBCARRIERS))
    w = np.zeros((N_SUBCARRIERS, len(indices)))
    w[:, keep] = inner.dense()
    return SubcarrierMap.from_dense(
        w,
        f"ESP32 capture {field} (entries {start}..{stop - 1} of {len(indices)}, declared subcarrier indices) "
        "-> 56: the non-null subcarriers of -26..26 linearly interpolated in subcarrier-index units onto "
        "56 points evenly spaced over [-26, 26]",
        kind="esp32-capture",
        field=field,
    )


def capture_map(manifest: dict[str, Any]) -> SubcarrierMap | None:
    """The map to 56 of an ESP32 capture store (None: not one): its LLTF, or else its
    20 MHz HT-LTF (the C5 without --force-lltf reports no LLTF)."""
    csi = manifest.get("csi", {})
    segs = (csi.get("capture") or {}).get("segments")
    if not segs:
        return None
    indices = list(csi["subcarrier_indices"])
    for want in ("lltf", "htltf"):
        for s in segs:
            if s["field"] == want and str(s.get("grid", "")).startswith("20"):
                return lltf_map(indices, s["null_subcarriers"], s["start"], s["stop"], want)
    raise CsiposeError("the capture holds no 20 MHz LLTF or HT-LTF (a 40 MHz HT-LTF only): CountNet's "
                       "56 subcarriers come from a 20 MHz field; convert with --segments lltf")  # fmt: skip


@dataclass
class Checkpoint:
    """What predicting needs from a counting checkpoint."""

    net: Any  # csipose.CountNet
    map_kind: str  # "esp32", "esp32-capture", "none" or another kind
    rate_hz: float | None  # packets per second of the training data (None: unknown)
    rate_source: str
    #: The run's data.features: the model was trained on windows with these applied.
    features: tuple[str, ...] = ()

    def model_input(self, windows: np.ndarray) -> np.ndarray:
        """Raw windows [n, 56, 20] as the model was trained on them (its data.features)."""
        return features_input(windows, self.features)


def features_input(windows: np.ndarray, features: Any) -> np.ndarray:
    """``windows`` [n, 56, 20] (or one [56, 20]) with a counting run's per-window features
    applied; capture_norm needs a room's statistics, which one prediction does not have."""
    from csipose.signal_features import static_removal_np

    if "capture_norm" in features:
        raise CsiposeError("the model was trained with data.features 'capture_norm' (per-capture "
                           "statistics); count predict cannot apply it to single windows")  # fmt: skip
    x = windows
    floats = isinstance(x, np.ndarray) and x.ndim >= 2 and x.dtype.kind == "f"
    if "static_removal" in features and floats:
        x = static_removal_np(x)  # other inputs go on to CountNet.predict's own checks
    return x


def run_features(meta: dict[str, str]) -> tuple[str, ...]:
    """data.features of a counting checkpoint's metadata (() for runs from before them)."""
    return tuple(json.loads(meta.get("data", "{}") or "{}").get("features") or ())


def _store_rate(path: Path) -> tuple[float | None, str]:
    """The training store's packet rate: the simulator's declared rate, else the median
    spacing of its timestamps."""
    from csipose.data import Store

    try:
        store = Store.open(path)
    except (OSError, ValueError, CsiposeError) as e:  # an unreadable store: the rate is unknown
        return None, f"the training store {path} cannot be opened ({type(e).__name__})"
    csi = store.manifest.get("csi", {})
    hw = csi.get("hardware_profile") or {}
    if hw.get("frame_rate_hz"):
        rate = float(hw["frame_rate_hz"]) * int(csi.get("packets_per_frame", 1))
        return rate, f"declared by the training store ({path}: {rate:g} packets/s)"
    if "timestamp" in store.manifest["arrays"]:
        t = np.load(Path(path) / store.manifest["arrays"]["timestamp"]["file"], mmap_mode="r")
        d = np.diff(np.asarray(t, np.float64).reshape(-1))
        d = d[d > 0]
        if len(d):
            rate = 1.0 / float(np.median(d))
            return (
                rate,
                f"median packet spacing of the training store ({path}: {rate:.4g} packets/s)",
            )
    return None, f"the training store {path} declares no packet rate"


def load_checkpoint(run: str | Path, rate: float | None = None) -> Checkpoint:
    from csipose import CountNet

    net = CountNet.load(run)
    meta = net.metadata()
    data = json.loads(meta.get("data", "{}") or "{}")
    m = data.get("subcarriers")
    kind = "none" if m is None else str((m.get("params") or {}).get("kind", "unknown"))
    feats = run_features(meta)
    if rate is not None:
        return Checkpoint(net, kind, float(rate), f"--train-rate {rate:g}", feats)
    store = data.get("store")
    r, source = (
        _store_rate(Path(store)) if store else (None, "the checkpoint names no training store")
    )
    return Checkpoint(net, kind, r, source, feats)


def amplitudes(manifest: dict[str, Any], amplitude: np.ndarray, ck: Checkpoint) -> np.ndarray:
    """[n, 56] float32 CountNet input rows of one-antenna, one-packet rows ``amplitude [n, S]``."""
    if ck.map_kind not in ("esp32", "esp32-capture"):
        raise CsiposeError(f"the checkpoint's subcarrier map is {ck.map_kind!r}; predicting on a capture needs "
                           "a model trained on ESP32 LLTF data (map 'esp32', the simulated default)")  # fmt: skip
    m = capture_map(manifest)
    if m is None:
        from csipose.count.data import subcarrier_map

        m = subcarrier_map("auto", manifest, Path("capture"))
    if m is None:
        return np.ascontiguousarray(amplitude, np.float32)
    return (np.asarray(amplitude, np.float64) @ m.dense().T).astype(np.float32)


class Windower:
    """Windows of 20 rows, one every ``stride`` rows; resampled onto ``rate`` packets/s by
    timestamps when given (the same code for a file and a live stream)."""

    def __init__(self, rate: float | None, stride: int = N_FRAMES):
        self.rate, self.stride = rate, stride
        self.t: list[float] = []
        self.x: list[np.ndarray] = []
        self.next_start: float | None = None

    def push(self, t: np.ndarray, x: np.ndarray) -> Iterator[tuple[float, float, np.ndarray]]:
        """(start, end, window [56, 20]) for every window complete after these rows."""
        self.t.extend(float(v) for v in t)
        self.x.extend(x)
        if self.rate is None:
            while len(self.x) >= N_FRAMES:
                w = np.stack(self.x[:N_FRAMES]).T
                yield self.t[0], self.t[N_FRAMES - 1], w
                del self.t[: self.stride], self.x[: self.stride]
            return
        span = (N_FRAMES - 1) / self.rate
        if self.next_start is None and self.t:
            self.next_start = self.t[0]
        while self.next_start is not None and self.t and self.t[-1] >= self.next_start + span:
            grid = self.next_start + np.arange(N_FRAMES) / self.rate
            tt, xx = np.asarray(self.t), np.stack(self.x)
            w = np.stack([np.interp(grid, tt, xx[:, k]) for k in range(xx.shape[1])]).astype(
                np.float32
            )
            yield float(grid[0]), float(grid[-1]), w
            self.next_start += self.stride / self.rate
            keep = max(
                int(np.searchsorted(tt, self.next_start)) - 1, 0
            )  # one row before, to interpolate
            del self.t[:keep], self.x[:keep]


def rate_of(t: np.ndarray) -> float | None:
    d = np.diff(np.asarray(t, np.float64))
    d = d[d > 0]
    return 1.0 / float(np.median(d)) if len(d) else None


def decide_rate(capture_rate: float | None, ck: Checkpoint) -> tuple[float | None, str]:
    """The rate to resample to (None: keep packets as they are) and the sentence that says why."""
    if ck.rate_hz is None:
        return (
            None,
            f"training packet rate unknown ({ck.rate_source}): windows of 20 packets, not resampled",
        )
    if capture_rate is None:
        return (
            None,
            "capture packet rate unknown (no increasing timestamps): windows of 20 packets, not resampled",
        )
    if abs(capture_rate / ck.rate_hz - 1) <= RATE_TOLERANCE:
        return None, (f"capture {capture_rate:.4g} packets/s, training {ck.rate_hz:.4g} ({ck.rate_source}): "
                      "within 10 %, windows of 20 packets, not resampled")  # fmt: skip
    return ck.rate_hz, (f"capture {capture_rate:.4g} packets/s, training {ck.rate_hz:.4g} ({ck.rate_source}): "
                        f"RESAMPLED by timestamps onto {ck.rate_hz:.4g} packets/s (linear interpolation)")  # fmt: skip


def read_capture(
    path: Path, args: argparse.Namespace
) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """(manifest-like csi description, amplitude [n, S], time [n]) of a store or an ESP32 log."""
    clock = getattr(args, "clock", "timestamp")
    if path.is_dir():
        from csipose.data import Store

        store = Store.open(path)
        shape = store.manifest["arrays"]["amplitude"]["shape"]
        if shape[1] != 1 or shape[3] != 1:
            raise DataFormatError(f"{path}: CountNet takes one antenna and one packet per row; the store has "
                                  f"{shape[1]} antennas x {shape[3]} packets")  # fmt: skip
        amp = np.load(path / store.manifest["arrays"]["amplitude"]["file"], mmap_mode="r")[
            :, 0, :, 0
        ]
        if clock not in store.manifest["arrays"]:
            raise DataFormatError(f"{path}: no per-packet array {clock!r} for --clock")
        t = np.load(path / store.manifest["arrays"][clock]["file"]).reshape(len(amp), -1)[:, 0]
        return store.manifest, np.asarray(amp, np.float32), np.asarray(t, np.float64)
    from csipose.data.convert import _capture as cap
    from csipose.data.convert import esp32

    data = cap.read_source(path)
    c = esp32.read(path, data, args)
    if clock not in c.extra:
        raise DataFormatError(
            f"{path}: no per-packet time {clock!r} for --clock (have {', '.join(c.extra)})"
        )
    return (
        _as_manifest(c),
        np.abs(c.csi[:, 0, :]).astype(np.float32),
        np.asarray(c.extra[clock], np.float64),
    )


def _as_manifest(c: Any) -> dict[str, Any]:
    return {"csi": {"subcarrier_indices": list(c.subcarrier_indices), "null_subcarriers": list(c.null_subcarriers),
                    "capture": c.notes, "hardware_profile": c.hardware_profile},
            "arrays": {"amplitude": {"shape": [len(c.csi), 1, len(c.subcarrier_indices), 1]}}}  # fmt: skip


def stream(lines: Iterable[str], args: argparse.Namespace, ck: Checkpoint
           ) -> Iterator[tuple[float, float, np.ndarray] | str]:  # fmt: skip
    """Windows of a live stream of log lines (stdin): a line is parsed as it arrives; other
    stations' lines (the first line's MAC, or --mac) and non-CSI lines are skipped. Yields
    notes (str) and windows."""
    from csipose.data.convert import esp32

    src = Path("<stdin>")
    clock = getattr(args, "clock", "timestamp")
    mac = None if getattr(args, "mac", "auto") == "auto" else str(args.mac).upper()
    windower: Windower | None = None
    m: SubcarrierMap | None = None
    first_t: list[float] = []
    pending: list[tuple[float, np.ndarray]] = []
    for number, line in enumerate(lines, 1):
        if "CSI_DATA" not in line or line.lstrip('"').startswith("type,"):
            continue
        parsed = esp32.split_line(src, number, line.rstrip("\r\n"))
        if len(parsed.fields) > 1:
            mac = mac or parsed.fields[1].upper()
            if parsed.fields[1].upper() != mac:
                continue
        c = esp32.build(src, [parsed], {}, args)
        if clock not in c.extra:
            raise DataFormatError(
                f"<stdin>: line {number}: no per-packet time {clock!r} for --clock"
            )
        t = float(c.extra[clock][0])
        if m is None:
            m = capture_map(_as_manifest(c))
            if ck.map_kind not in ("esp32", "esp32-capture"):
                raise CsiposeError(f"the checkpoint's subcarrier map is {ck.map_kind!r}; a stream needs an "
                                   "ESP32 LLTF model")  # fmt: skip
        x = (np.abs(c.csi[0, 0, :]).astype(np.float64) @ m.dense().T).astype(np.float32)  # type: ignore[union-attr]
        if windower is None:
            # The rate is decided on the first 20 packets' timestamps, then fixed.
            first_t.append(t)
            pending.append((t, x))
            if len(first_t) < N_FRAMES:
                continue
            target, note = decide_rate(rate_of(np.asarray(first_t)), ck)
            yield note
            windower = Windower(target, getattr(args, "stride", N_FRAMES))
            ts, xs = zip(*pending, strict=True)
            yield from windower.push(np.asarray(ts), np.stack(xs))
            continue
        yield from windower.push(np.asarray([t]), x[None])


__all__ = ["Checkpoint", "Windower", "capture_map", "decide_rate", "lltf_map", "load_checkpoint", "read_capture",
           "stream"]  # fmt: skip
