"""Compression of trained pose models: ``csipose quantize RUN --method ...``.

Methods: ``ptq`` (int8 post-training, PT2E), ``qat`` (int8 quantization-aware
training from the trained weights), ``fp16`` (half precision), ``mixed`` (int8
with the most sensitive modules kept float32, chosen by a measured scan on the
validation part), ``all`` (every one). Each writes a deployable directory
``OUT/METHOD`` (see :mod:`csipose.quantize.artifact`); :func:`csipose.quantize.report.report` then
compares them with the fp32 model on the run's test parts. The fp32 run is only
read. See docs/quantize.md.
"""

from __future__ import annotations

from typing import Any

__all__ = ["METHODS", "default_out", "quantize"]


def __getattr__(name: str) -> Any:  # torch is imported on first use, not by `csipose --help`
    if name in ("METHODS", "default_out", "quantize"):
        from csipose.quantize import pipeline

        return getattr(pipeline, name)
    raise AttributeError(name)
