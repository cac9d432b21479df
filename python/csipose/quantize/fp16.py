"""Half precision: fp16 (and bf16 where the CPU runs it) weights and activations.

The wrapper keeps the deployed interface float32 (``csi`` in, ``keypoints``
out) and casts at the edges, so every method's ONNX file takes the same input.
"""

from __future__ import annotations

import copy

import torch


class HalfPrecision(torch.nn.Module):
    """``model`` with weights and activations in ``dtype``; float32 in and out."""

    def __init__(self, model: torch.nn.Module, dtype: torch.dtype = torch.float16) -> None:
        super().__init__()
        if dtype not in (torch.float16, torch.bfloat16):
            raise ValueError(f"dtype must be float16 or bfloat16, got {dtype}")
        self.dtype = dtype
        self.model = copy.deepcopy(model).eval().to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.to(self.dtype)).float()


def bf16_supported() -> bool:
    """Whether this CPU has native bf16 arithmetic (AVX512-BF16 or AMX); elsewhere
    torch emulates it and bf16 is only slower."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags
