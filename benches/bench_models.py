"""Pose models: parameters, MACs per window and training-step time, side by side.

    python benches/bench_models.py [--rounds 5] [--threads 2] [--batch 64] [--markdown]

For each model of csipose.models.MODEL_NAMES at its natural input (WiFlow-STD
presets [540, 20] -> [15, 2]; the MM-Fi variant [342, 10] -> [17, 3]):
trainable parameters, multiply-accumulates of one window (torch.utils.flop_counter
at batch 1: convolutions and the attention's matrix products, FLOPs / 2; BatchNorm,
activations, softmax and pooling not counted), and the median time of one
forward + backward pass (WiFlow's loss) over a batch, after one warm-up pass.
Ratios are against wiflow-full.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from csipose.models import MODEL_NAMES, build_pose_model, pose_loss

from _bench import cpu_name, print_table

SHAPES = {"wiflow-mmfi": (342, 10, 17, 3, "h36m17")}
WIFLOW = (540, 20, 15, 2, "body25_15")


def macs(model: torch.nn.Module, channels: int, window: int) -> int:
    model.eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.rand(1, channels, window))
    return counter.get_total_flops() // 2


def step_seconds(name: str, batch: int, rounds: int) -> tuple[torch.nn.Module, float]:
    channels, window, k, d, skeleton = SHAPES.get(name, WIFLOW)
    torch.manual_seed(0)
    model = build_pose_model(name, in_channels=channels, window=window, keypoints=k, dims=d)
    x, y = torch.rand(batch, channels, window), torch.rand(batch, k, d)
    times = []
    for r in range(rounds + 1):
        model.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        pose_loss(model.train()(x), y, skeleton).backward()
        if r:  # the first pass warms up the allocator
            times.append(time.perf_counter() - t0)
    return model, statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {cpu_name()}, {args.threads} threads, batch {args.batch}")
    rows = []
    for name in MODEL_NAMES:
        model, seconds = step_seconds(name, args.batch, args.rounds)
        channels, window = SHAPES.get(name, WIFLOW)[:2]
        params = sum(p.numel() for p in model.parameters())
        rows.append(
            (name, f"[{channels}, {window}]", params, macs(model, channels, window), seconds)
        )
    full = rows[0]
    header = ("model", "input", "params", "MACs/window", "fwd+bwd ms/batch", "time vs full")
    lines = [
        (n, shape, f"{p:,}", f"{m / 1e6:.2f}M", f"{s * 1e3:.1f}", f"{s / full[4]:.2f}")
        for n, shape, p, m, s in rows
    ]
    print_table(header, lines, markdown=args.markdown, align="l" * len(header))


if __name__ == "__main__":
    main()
