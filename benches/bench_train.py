"""Training throughput and the data loader's share of step time.

    python benches/bench_train.py [section.key=value ...] [--steps N] [--device cpu,cuda]

Trains the configured model (default: the built-in job's, on its cached
simulated data) for N steps and reports windows per second and the share of
each step spent waiting for the batch. Side by side it times the batches alone
from (a) csipose's loader (one Rust gather per batch) and (b) the usual
baseline: a map-style Dataset over the same memory-mapped .npy arrays that
indexes one window at a time, transforms it in numpy, and lets DataLoader's
default collate stack the batch. Target (issue 5): the loader takes at most
10% of step time.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

import csipose
from csipose.data.loader import EpochSampler, WindowDataset, make_loader
from csipose.models import pose_loss
from csipose.train import config
from csipose.train.data import dataset_path, prepare
from csipose.train.loop import build_model, input_fields, model_input

from _bench import cpu_name


class NumpyWindows(torch.utils.data.Dataset):
    """The baseline: one window per __getitem__ from the store's memory-mapped .npy
    arrays, per-frame min-max and z-score in numpy."""

    def __init__(self, store, indices, fields):
        self.starts, self.labels = store.windows[indices], store.label_frames(indices)
        self.length = store.window.length
        self.arrays = {f: store.array(f) for f in fields}
        z = store.transform["amplitude"].zscore
        self.mean, self.scale = (
            (z.mean[:, :, None], z.scale[:, :, None]) if z is not None else (0.0, 1.0)
        )

    def __len__(self):
        return len(self.starts)

    def __getitem__(self, i):
        out = {}
        for name, arr in self.arrays.items():
            if name in ("amplitude", "phase"):
                x = np.array(arr[self.starts[i] : self.starts[i] + self.length])
                if name == "amplitude":
                    lo = x.min(axis=(1, 2, 3), keepdims=True)
                    hi = x.max(axis=(1, 2, 3), keepdims=True)
                    x = (((x - lo) / np.maximum(hi - lo, 1e-12) - self.mean) / self.scale).astype(
                        np.float32
                    )
            else:
                x = np.array(arr[self.labels[i]])
            out[name] = torch.from_numpy(x)
        return out


def time_batches(loader, n: int) -> float:
    it = iter(loader)
    next(it)  # warm-up (worker start, page cache)
    t = time.perf_counter()
    for _ in range(n):
        next(it)
    return (time.perf_counter() - t) / n


def train_steps(cfg, data, loader, device: torch.device, n: int) -> tuple[float, float]:
    """(step, wait) seconds summed over ``n`` training steps on ``device`` after 3 warm-up steps."""
    torch.manual_seed(0)
    model = build_model(data, cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr)
    mean = torch.tensor(data.mean_pose, dtype=torch.float32, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    wait = step = 0.0
    done = 0
    while done < n + 3:
        t_wait = time.perf_counter()
        for batch in loader:
            t0 = time.perf_counter()
            y = (batch["keypoints"].to(device) - mean) / data.target_scale
            loss = pose_loss(model(model_input(batch, device, data.features)), y, data.skeleton,
                             visible=batch["visibility"].to(device))  # fmt: skip
            opt.zero_grad()
            loss.backward()
            opt.step()
            sync()  # the step is done when the device is
            t1 = time.perf_counter()
            if done >= 3:  # skip warm-up steps
                wait += t0 - t_wait
                step += t1 - t_wait
            done += 1
            if done >= n + 3:
                break
            t_wait = time.perf_counter()
    return step, wait


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("overrides", nargs="*")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--device", default="cpu",
                    help="comma-separated devices to time the training step on (cpu, cuda); a device "
                    "torch does not see is reported and skipped")  # fmt: skip
    args = ap.parse_args()
    cfg = config.load(None, args.overrides)
    threads = cfg.train.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    data = prepare(cfg, dataset_path(cfg))
    idx = data.parts[cfg.data.train_part]
    fields = [*input_fields(data), "keypoints", "visibility"]
    bs = cfg.train.batch_size
    loader = make_loader(WindowDataset(data.store, idx, fields=fields), bs,
                         sampler=EpochSampler(len(idx), seed=0), num_workers=cfg.data.workers)  # fmt: skip
    devices = []
    for name in args.device.split(","):
        if name.startswith("cuda") and not torch.cuda.is_available():
            print(f"device {name}: torch sees no CUDA device; skipped")
            continue
        devices.append(torch.device(name))
    n = args.steps
    timed = {dev: train_steps(cfg, data, loader, dev, n) for dev in devices}
    model = build_model(data, cfg)
    rust = time_batches(loader, n)
    base_loader = torch.utils.data.DataLoader(
        NumpyWindows(data.store, idx, fields),
        batch_size=bs,
        shuffle=True,
        num_workers=cfg.data.workers,
    )
    base = time_batches(base_loader, n)

    print(f"csipose {csipose.__version__}, torch {torch.__version__}, {cpu_name()}, "
          f"{threads} threads, data.workers = {cfg.data.workers}")  # fmt: skip
    print(f"model {cfg.model.name} ({sum(p.numel() for p in model.parameters()):,} parameters), input "
          f"[{data.in_channels}, {data.time_steps}] ({cfg.data.inputs}), batch {bs}, {n} steps\n")  # fmt: skip
    print("| measurement | value |")
    print("|---|---:|")
    for dev, (step, wait) in timed.items():
        print(
            f"| {dev}: training step (data + forward + backward + AdamW) | {1e3 * step / n:.1f} ms |"
        )
        print(f"| {dev}: windows per second | {n * bs / step:,.0f} |")
        print(f"| {dev}: waiting for data, share of step time | {100 * wait / step:.1f}% |")
    if len(timed) > 1:
        (d0, (s0, _)), (d1, (s1, _)) = list(timed.items())[:2]
        print(f"| {d1} / {d0} windows per second | {s0 / s1:.1f}x |")
    print(f"| csipose loader alone, per batch | {1e3 * rust:.2f} ms |")
    print(
        f"| baseline loader (numpy per window + default collate), per batch | {1e3 * base:.2f} ms |"
    )
    print(f"| baseline / csipose | {base / rust:.1f}x |")


if __name__ == "__main__":
    main()
