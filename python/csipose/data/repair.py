"""The NaN/Inf repair of CSI amplitude and phase, tallied over a whole store.

Converters and the simulator repair each sequence with the MM-Fi toolkit rule
(:func:`csipose.signal.sanitize`) and record the totals in the manifest.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from csipose.signal import sanitize


class RepairTally:
    """Sums the per-sequence sanitize reports of amplitude and phase into ``writer.repair``."""

    def __init__(self) -> None:
        self.parts: dict[str, dict[str, Any]] = {}
        self.frames = self.excluded = self.skipped = 0

    def add(
        self, amplitude: np.ndarray, phase: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sanitize one sequence's frames; returns amplitude, phase and the ``valid`` mask."""
        raw = amplitude, phase
        (amp, ra), (phase, rp) = sanitize(raw[0]), sanitize(raw[1])
        for name, report in (("amplitude", ra), ("phase", rp)):
            total = self.parts.setdefault(name, {})
            for key, value in report.to_dict().items():
                total[key] = value if key == "rule" else total.get(key, 0) + value
        # Amplitude is the toolkit's input; phase is unused there, so only an
        # all-NaN phase slice (set to 0 by the repair) excludes a frame as well.
        valid = ra.valid
        valid[rp.all_nan_frames] = False
        repaired = np.zeros(len(valid), bool)
        for x in raw:
            repaired |= ~np.isfinite(x).reshape(len(x), -1).all(axis=1)
        self.frames += int(repaired.sum())
        self.excluded += int((~valid).sum())
        return amp, phase, valid

    def to_dict(self) -> dict[str, Any]:
        amp = self.parts.get("amplitude", {})
        return {
            "rule": f"{amp.get('rule', '')}; applied to amplitude and phase separately; a frame "
            "is excluded when its amplitude is, or when a phase packet slice is all NaN",
            "repaired_values": sum(p.get("repaired_values", 0) for p in self.parts.values()),
            "repaired_frames": self.frames,
            "excluded_frames": self.excluded,
            "skipped_empty_frame_files": self.skipped,
            **self.parts,
        }
