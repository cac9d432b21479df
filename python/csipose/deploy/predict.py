"""``csipose predict RUN --store PATH [--split PART] --out pred.npy [--report] [--plot]``:
keypoints from the Rust runtime (``csipose.PoseNet``), no torch needed.

Reads the raw windows of ``--store`` with the checkpoint's window settings
(every window, or those of part ``--split`` of the checkpoint's split), writes
the predictions [N, K, D] in the data's units to ``--out`` (atomically) and the
window indices beside it (``*.indices.npy``). ``--report`` writes the accuracy
report of the Rust predictions beside the mean-pose baseline (``report.json``,
``report.md`` next to ``--out``); ``--plot`` draws ``skeletons.png`` (best,
median, worst windows by MPJPE) and ``joint_errors.png``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from csipose import metrics, skeleton
from csipose._files import write_text_atomic
from csipose.data import Store
from csipose.errors import CsiposeError
from csipose.runtime.posenet import PoseNet

BATCH = 256


def predict_store(net: PoseNet, store: Store, indices: np.ndarray) -> np.ndarray:
    """Predictions [N, K, D] for windows ``indices`` of a store opened without transforms."""
    fields = ["amplitude", "phase"] if net.data["inputs"] == "amplitude+phase" else ["amplitude"]
    k, d = net.output_shape
    out = np.zeros((len(indices), k, d), np.float32)
    for start in range(0, len(indices), BATCH):
        b = store.gather(indices[start : start + BATCH], fields=fields)
        out[start : start + BATCH] = net.predict(b["amplitude"], b.get("phase"))
    return out


def _save_npy(path: Path, a: np.ndarray) -> None:
    """np.save into a temporary file, flushed, renamed over ``path`` (atomic)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.save(f, a, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _cmd_predict(args: argparse.Namespace) -> int:
    net = PoseNet.load(args.run)
    data = net.data
    cfg = json.loads(net.metadata()["config"])
    store = Store.open(args.store, window=data["window"])
    if args.split:
        split = cfg["data"]["split"]
        try:
            parts = store.split(split)
        except KeyError as e:
            raise CsiposeError(f"{args.store}: {e.args[0]}") from None
        if args.split not in parts:
            raise CsiposeError(
                f"split {split!r} has no part {args.split!r} (it has {', '.join(parts)})"
            )
        idx = parts[args.split]
    else:
        idx = np.arange(len(store))
    pred = predict_store(net, store, idx)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    _save_npy(out, pred)
    _save_npy(out.with_suffix(".indices.npy"), np.asarray(idx, np.int64))
    print(
        f"wrote {out}: {len(idx)} windows x {pred.shape[1]} keypoints x {pred.shape[2]} ({data['units']})"
    )
    if args.report or args.plot:
        lab = store.gather(idx, fields=["keypoints", "visibility"])
        gt, vis = lab["keypoints"], lab["visibility"]
        skel = skeleton.get(data["skeleton"])
        title = f"{Path(args.store).name} / {args.split or 'all windows'}"
        if args.report:
            rep = metrics.accuracy_report(
                pred, gt, skeleton=skel, visible=vis, units=data["units"],
                mean_pose=np.asarray(data["mean_pose"], np.float32),
                context={"runtime": "rust (csipose.PoseNet)", "checkpoint": str(net.path),
                         "store": str(args.store), "part": args.split or "all"},
            )  # fmt: skip
            write_text_atomic(out.parent / "report.json", json.dumps(rep.to_dict(), indent=2))
            write_text_atomic(out.parent / "report.md", rep.to_markdown())
            print(rep.to_markdown())
        if args.plot:
            from csipose.metrics.plots import pose_pictures

            for p in pose_pictures(pred, gt, skeleton=skel, visible=vis, units=data["units"], title=title,
                                   out_dir=out.parent):  # fmt: skip
                print(f"wrote {p}")
    return 0


def add_parser(sub: Any) -> None:
    """Add ``predict`` to the main parser's subparsers."""
    p = sub.add_parser("predict", help="pose predictions of a checkpoint with the Rust runtime (no torch)",
                       description=__doc__)  # fmt: skip
    p.add_argument("run", help="a run directory, checkpoint directory or model.safetensors")
    p.add_argument("--store", required=True, help="the store to predict")
    p.add_argument("--split", help="a part of the checkpoint's split (default: every window)")
    p.add_argument("--out", required=True, help="the .npy file to write")
    p.add_argument("--report", action="store_true", help="write report.json/report.md beside --out")
    p.add_argument(
        "--plot", action="store_true", help="draw skeletons.png and joint_errors.png beside --out"
    )
    p.set_defaults(func=_cmd_predict)


__all__ = ["add_parser", "predict_store"]
