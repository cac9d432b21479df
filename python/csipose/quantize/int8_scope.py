"""Which layers are int8: the ones onnxruntime runs faster in int8 than in float32.

Measured on the ADR-175 model (wiflow-half, [540, 20]) on an x86-64 AVX2 CPU
without VNNI (benches/bench_quantize.py --profile; docs/quantize.md):

* onnxruntime fuses a QDQ conv into an int8 ``QLinearConv`` (MLAS u8 x s8 kernels)
  only when a QuantizeLinear follows the conv itself; torchao's x86 quantizer puts
  it after the activation (SiLU), so no conv was fused and every conv ran in
  float32 on weights dequantized at each call. The quantizer therefore also
  quantizes each int8 conv's own output (``ptq.quantizer(conv_outputs=True)``);
  SiLU, BatchNorm-free residual adds and the attention run in float32 between a
  DequantizeLinear and a QuantizeLinear.
* The Conv1d layers (the TCN, 97% of the weights, and the attention's q/k/v
  projections) run about 1.5x faster as QLinearConv than in float32.
* The Conv2d layers (the conv stem and decoder, 1-32 channels, 1.5% of the
  weights) run about 2.9x SLOWER as QLinearConv: at so few channels MLAS's int8
  path (im2col into an int8 GEMM with NHWC transposes) loses to its float32
  NCHWc kernels. They stay float32.

So the int8 scope is every Conv1d module; everything else is float32.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def fast_int8_modules(model: torch.nn.Module, skip: Sequence[str] = ()) -> list[str]:
    """Names of the modules to quantize: every Conv1d, except those inside
    a module named in ``skip`` (mixed precision keeps those float32)."""

    def skipped(name: str) -> bool:
        return any(name == s or name.startswith(s + ".") for s in skip)

    return [name for name, m in model.named_modules()
            if isinstance(m, torch.nn.Conv1d) and not skipped(name)]  # fmt: skip


def within(scope: Sequence[str], module: str) -> list[str]:
    """The part of ``scope`` inside ``module`` (the mixed scan's one-module models)."""
    return [n for n in scope if n == module or n.startswith(module + ".")]
