"""``csipose count predict CAPTURE --model RUN``: counts over time, as CSV, text and a plot."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from csipose._files import write_text_atomic
from csipose.count import capture as cc

HEADER = "window,start_s,end_s,count,confidence," + ",".join(f"p{k}" for k in range(8))


def _row(i: int, start: float, end: float, count: int, conf: float, probs: np.ndarray) -> str:
    return f"{i},{start:.6f},{end:.6f},{count},{conf:.4f}," + ",".join(f"{p:.4f}" for p in probs)


def predict_capture(capture: str, args: argparse.Namespace) -> int:
    ck = cc.load_checkpoint(args.model, getattr(args, "train_rate", None))
    if capture == "-":
        return _stream(args, ck)
    manifest, amp, t = cc.read_capture(Path(capture), args)
    x = cc.amplitudes(manifest, amp, ck)
    target, note = cc.decide_rate(cc.rate_of(t), ck)
    print(note)
    windows = list(cc.Windower(target, args.stride).push(t, x))
    if not windows:
        raise cc.CsiposeError(
            f"{capture}: {len(x)} packets, fewer than one window of {cc.N_FRAMES}"
        )
    start = np.asarray([w[0] for w in windows])
    end = np.asarray([w[1] for w in windows])
    p = ck.net.predict(ck.model_input(np.stack([w[2] for w in windows]).astype(np.float32)))
    rows = [_row(i, start[i], end[i], int(p.counts[i]), float(p.confidences[i]), p.probabilities[i])
            for i in range(len(windows))]  # fmt: skip
    print(
        f"clock: {args.clock} (seconds); {len(windows)} windows of {cc.N_FRAMES} packets from {len(x)} packets"
    )
    print(HEADER)
    for r in rows[: args.show]:
        print(r)
    if len(rows) > args.show:
        print(f"... {len(rows) - args.show} more windows (--out writes them all)")
    hist = np.bincount(p.counts, minlength=8).tolist()
    print(
        f"{len(rows)} windows; counts 0..7: {hist}; mean confidence {float(p.confidences.mean()):.3f}"
    )
    if args.out:
        write_text_atomic(args.out, "\n".join([HEADER, *rows]) + "\n")
        print(f"wrote {args.out}")
    if args.plot:
        how = f"resampled to {target:g} packets/s" if target else "not resampled"
        timeline(start, end, p.counts, p.confidences, Path(args.plot),
                 f"{Path(capture).name}: people per {cc.N_FRAMES}-packet window ({how})")  # fmt: skip
        print(f"wrote {args.plot}")
    return 0


def _stream(args: argparse.Namespace, ck: cc.Checkpoint) -> int:
    """One CSV line per window, flushed, as the packets arrive on stdin."""
    print(HEADER, flush=True)
    i = 0
    for item in cc.stream(sys.stdin, args, ck):
        if isinstance(item, str):
            print(f"# {item}", flush=True)
            continue
        start, end, w = item
        p = ck.net.predict(ck.model_input(w[None].astype(np.float32)))
        print(
            _row(i, start, end, int(p.counts[0]), float(p.confidences[0]), p.probabilities[0]),
            flush=True,
        )
        i += 1
    return 0


def timeline(start: np.ndarray, end: np.ndarray, counts: np.ndarray, conf: np.ndarray, path: Path,
             title: str) -> None:  # fmt: skip
    """Count per window as a step line over time, confidence below."""
    from csipose.train.plots import _pyplot, _save

    plt = _pyplot()
    fig, (ax, cx) = plt.subplots(
        2, 1, figsize=(8, 4.2), sharex=True, gridspec_kw={"height_ratios": [2, 1]}
    )
    mid = (start + end) / 2
    ax.step(mid, counts, where="mid", color="C0")
    ax.scatter(mid, counts, c=conf, cmap="viridis", vmin=0, vmax=1, s=12, zorder=3)
    ax.set(ylabel="people (count)", ylim=(-0.5, max(int(counts.max()), 1) + 0.5), title=title[:110])
    ax.set_yticks(range(0, max(int(counts.max()), 1) + 1))
    ax.grid(alpha=0.3)
    cx.plot(mid, conf, color="C1")
    cx.set(xlabel="time (s, capture clock)", ylabel="confidence", ylim=(0, 1))
    cx.grid(alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    _save(fig, path)
    plt.close(fig)


__all__ = ["predict_capture", "timeline"]
