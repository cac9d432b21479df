"""CountNet: person count (0..7) and a confidence from one CSI window [B, 56, 20].

The architecture and tensor names are upstream ``cog-person-count``'s
(reference section 2.1): three dilated Conv1d layers over the 20 frames with
the 56 subcarriers as channels, a mean over time, a count head (8 logits) and
a confidence head (1 logit); 97,737 parameters. csipose adds buffers that
travel in the same ``model.safetensors``, so the Rust runtime applies exactly
the preprocessing and calibration torch does:

* ``preprocess.mean``, ``preprocess.std`` [56] -- the training split's
  per-subcarrier z-score (``std`` is the divisor: population std + 1e-6);
* ``calibration.temperature`` [1] -- divides the count logits (fitted on the
  validation split by NLL of the count);
* ``calibration.confidence_temperature`` [1] -- divides the confidence logit
  (fitted on the validation split by NLL of "the count is right").

``forward`` returns uncalibrated logits (for training); :meth:`CountNet.calibrated`
and :meth:`CountNet.predict` apply the temperatures.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from csipose.runtime.countnet import CLASSES, FRAMES, SUBCARRIERS  # one home, torch-free

#: Learned parameters (upstream's figure).
PARAMETERS = 97_737
#: (padding = dilation) of enc.c1, enc.c2, enc.c3.
DILATIONS = (1, 2, 4)


class CountLogits(NamedTuple):
    count: torch.Tensor  # [B, 8]
    confidence: torch.Tensor  # [B]


class CountOutput(NamedTuple):
    probabilities: torch.Tensor  # [B, 8], calibrated
    counts: torch.Tensor  # [B] int64, argmax (first maximum)
    confidences: torch.Tensor  # [B], calibrated P(count is right)


class _Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv1d(SUBCARRIERS, 64, 3, padding=1, dilation=1)
        self.c2 = nn.Conv1d(64, 128, 3, padding=2, dilation=2)
        self.c3 = nn.Conv1d(128, 128, 3, padding=4, dilation=4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.c1(x))
        x = torch.relu(self.c2(x))
        return torch.relu(self.c3(x))


class _Head(nn.Module):
    def __init__(self, hidden: int, out: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(128, hidden)
        self.fc2 = nn.Linear(hidden, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


class _Preprocess(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(SUBCARRIERS))
        self.register_buffer("std", torch.ones(SUBCARRIERS))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean[:, None]) / self.std[:, None]


class _Calibration(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("temperature", torch.ones(1))
        self.register_buffer("confidence_temperature", torch.ones(1))


class CountNet(nn.Module):
    """CountNet on raw windows ``[B, 56 subcarriers, 20 frames]`` (amplitude after
    the declared subcarrier map; the z-score is inside the model)."""

    def __init__(self) -> None:
        super().__init__()
        self.preprocess = _Preprocess()
        self.enc = _Encoder()
        self.count_head = _Head(64, CLASSES)
        self.conf_head = _Head(32, 1)
        self.calibration = _Calibration()

    def check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 3 or tuple(x.shape[1:]) != (SUBCARRIERS, FRAMES):
            raise ValueError(
                f"CountNet takes windows [batch, {SUBCARRIERS} subcarriers, {FRAMES} frames]; "
                f"got shape {list(x.shape)}"
            )

    def forward(self, x: torch.Tensor) -> CountLogits:
        """Uncalibrated count logits [B, 8] and confidence logits [B]."""
        self.check_input(x)
        h = self.enc(self.preprocess(x)).mean(dim=2)
        return CountLogits(self.count_head(h), self.conf_head(h)[:, 0])

    def calibrated(self, x: torch.Tensor) -> CountLogits:
        """The logits divided by the calibration temperatures (what ONNX exports)."""
        logits = self(x)
        return CountLogits(
            logits.count / self.calibration.temperature,
            logits.confidence / self.calibration.confidence_temperature,
        )

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> CountOutput:
        """Calibrated probabilities, counts and confidences (what the Rust runtime returns)."""
        logits = self.calibrated(x)
        probs = torch.softmax(logits.count, dim=1)
        return CountOutput(probs, probs.argmax(dim=1), torch.sigmoid(logits.confidence))

    def set_preprocess(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Per-subcarrier z-score statistics [56]; ``std`` is the divisor and must be > 0."""
        mean = torch.as_tensor(mean, dtype=torch.float32).reshape(-1)
        std = torch.as_tensor(std, dtype=torch.float32).reshape(-1)
        if mean.shape != (SUBCARRIERS,) or std.shape != (SUBCARRIERS,):
            raise ValueError(f"z-score statistics must have {SUBCARRIERS} entries each")
        if not (torch.isfinite(mean).all() and torch.isfinite(std).all() and (std > 0).all()):
            raise ValueError("z-score statistics must be finite with std > 0")
        self.preprocess.mean.copy_(mean)
        self.preprocess.std.copy_(std)

    def set_temperatures(self, count: float, confidence: float) -> None:
        for name, t in (("count", count), ("confidence", confidence)):
            if not (t > 0 and torch.isfinite(torch.tensor(t))):
                raise ValueError(f"the {name} temperature must be finite and > 0, got {t}")
        self.calibration.temperature.fill_(float(count))
        self.calibration.confidence_temperature.fill_(float(confidence))


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = [
    "CLASSES",
    "DILATIONS",
    "FRAMES",
    "PARAMETERS",
    "SUBCARRIERS",
    "CountLogits",
    "CountNet",
    "CountOutput",
    "parameter_count",
]
