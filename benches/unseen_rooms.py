"""The leave-rooms-out experiment: today's inputs against each environment-robust
input and against domain-randomised training rooms, for pose and counting.

    python benches/unseen_rooms.py --root runs/unseen            # small, CPU, 1 thread
    python benches/unseen_rooms.py --root $OUT --device cuda --pose-model wiflow-quarter \
        --environments 14 --subjects 6 --frames 32 --epochs 20

Every choice between variants is made on the validation room (held-out
*training* room); a pose run stops early on the held-out people of its training
rooms (``val_people``, ``--val-part``). The four unseen rooms are reported room by
room (mean, std, min, max over rooms of model / baseline); with ``--unseen
chosen`` only the variant chosen on the validation room is evaluated on them, once,
at the end. Writes ``ROOT/results.json`` and ``ROOT/results.md`` and prints the
tables.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from csipose.data.simulate import simulate_once

POSE_VARIANTS: list[tuple[str, str, list[str]]] = [
    ("baseline (today's inputs)", "fixed", []),
    ("static_removal", "fixed", ["static_removal"]),
    ("temporal_diff", "fixed", ["temporal_diff"]),
    ("conj_product", "fixed", ["conj_product"]),
    ("augment", "fixed", ["augment"]),
    ("capture_norm", "fixed", ["capture_norm"]),
    ("domain-randomised rooms", "per_sequence", []),
    ("domain-randomised + static_removal + augment", "per_sequence", ["static_removal", "augment"]),
]
COUNT_VARIANTS: list[tuple[str, str, list[str]]] = [
    ("baseline (today's inputs)", "fixed", []),
    ("static_removal", "fixed", ["static_removal"]),
    ("capture_norm", "fixed", ["capture_norm"]),
    ("static_removal + capture_norm", "fixed", ["static_removal", "capture_norm"]),
    ("domain-randomised rooms", "per_sequence", []),
    ("domain-randomised + capture_norm", "per_sequence", ["capture_norm"]),
    ("domain-randomised + static_removal", "per_sequence", ["static_removal"]),
]


def _fmt(s: dict[str, Any], digits: int = 3) -> str:
    if s.get("mean") is None:
        return "n/a"
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f} [{s['min']:.{digits}f}, {s['max']:.{digits}f}]"


def _seed(args: argparse.Namespace) -> str:
    return f"-seed{args.seed}" if args.seed else ""


def _ratio(rep: Any, key: str) -> float:
    return rep.model[key].value / rep.mean_pose_baseline[key].value


def pose(args: argparse.Namespace) -> list[dict[str, Any]]:
    from csipose.train import config
    from csipose.train.evaluate import evaluate
    from csipose.train.loop import train

    rows = []
    for name, draw, features in POSE_VARIANTS:
        if (args.variants and name not in args.variants) or (args.rooms and draw != args.rooms):
            continue
        store = simulate_once(
            Path(args.root) / f"pose-{draw}-e{args.environments}-s{args.subjects}-f{args.frames}",
            f"pose data ({draw} rooms)", profile="mmfi", environments=args.environments,
            subjects=args.subjects, frames=args.frames, spot_jitter=0.0, heading_jitter=0.0,
            room_draw=draw, progress=False,
        )  # fmt: skip
        if args.simulate_only:
            continue
        run = (
            Path(args.root)
            / "runs"
            / f"pose-{args.pose_model}-{draw}-{'+'.join(features) or 'plain'}{_seed(args)}{args.tag}"
        )
        cfg = config.load(None, [
            'data.source="store"', f'data.store="{store}"', "data.split=rooms",
            'data.test_parts=["test","unseen"]', f"data.features={json.dumps(features)}",
            f'model.name="{args.pose_model}"', f"train.epochs={args.epochs}", "train.time_budget_min=0",
            f'data.val_part="{args.val_part}"', f'train.amp="{args.amp}"', f"train.early_stop={args.early_stop}",
            f"train.batch_scale={args.batch_scale}",
            f"train.batch_size={args.batch_size}", f'train.device="{args.device}"',
            f"train.threads={args.threads}", f'train.run_dir="{run}"', f"train.seed={args.seed}",
            *([f"model.options={args.model_options}"] if args.model_options else []),
        ])  # fmt: skip
        t0 = time.time()
        train(cfg, progress=False)
        took = time.time() - t0
        reps = {part: evaluate(run, part, device=args.device) for part in ("val", "test")}
        rows.append({
            "variant": name, "rooms": draw, "features": features, "train_s": round(took, 1),
            "run": str(run), "val_mpjpe_ratio": _ratio(reps["val"], "mpjpe"),
            "val_pck20_ratio": _ratio(reps["val"], "pck@20"), "test_mpjpe_ratio": _ratio(reps["test"], "mpjpe"),
        })  # fmt: skip
        if args.unseen == "all":
            rows[-1].update(_pose_unseen(run, args))
        print(json.dumps(rows[-1]), flush=True)
    if rows and args.unseen == "chosen":
        best = min(rows, key=lambda r: r["val_mpjpe_ratio"])
        best.update(_pose_unseen(Path(best["run"]), args))
        print(json.dumps(best), flush=True)
    return rows


def _pose_unseen(run: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The unseen rooms of one run, room by room (evaluated here and nowhere before)."""
    from csipose.train.evaluate import evaluate

    evaluate(run, "unseen", device=args.device)
    rooms = json.loads((run / "eval" / "unseen" / "report.json").read_text())["by_room"]
    return {
        "unseen_mpjpe_ratio": rooms["summary"]["mpjpe"]["ratio"],
        "unseen_pck20_ratio": rooms["summary"]["pck@20"]["ratio"],
        "unseen_pck20_model": rooms["summary"]["pck@20"]["model"],
        "unseen_pck20_baseline": rooms["summary"]["pck@20"]["baseline"],
        "unseen_mpjpe_model": rooms["summary"]["mpjpe"]["model"],
        "unseen_by_room": rooms["groups"],
    }


def count(args: argparse.Namespace) -> list[dict[str, Any]]:
    from csipose.count import config
    from csipose.count.evaluate import evaluate
    from csipose.count.train import train

    rows = []
    for name, draw, features in COUNT_VARIANTS:
        if (args.variants and name not in args.variants) or (args.rooms and draw != args.rooms):
            continue
        store = simulate_once(
            Path(args.root) / (f"count-{draw}-e{args.environments}-s{args.count_subjects}"
                               f"-q{args.count_sequences}-f{args.count_frames}"),
            f"counting data ({draw} rooms)", profile="esp32", environments=args.environments,
            subjects=args.count_subjects, sequences=args.count_sequences, frames=args.count_frames, room_draw=draw,
            progress=False,
        )  # fmt: skip
        if args.simulate_only:
            continue
        run = (
            Path(args.root)
            / "runs"
            / f"count-{draw}-{'+'.join(features) or 'plain'}{_seed(args)}{args.tag}"
        )
        cfg = config.load(None, [
            'data.source="store"', f'data.store="{store}"', "data.split=rooms",
            'data.test_parts=["test","unseen"]', f"data.features={json.dumps(features)}",
            f"train.epochs={args.count_epochs}", "train.time_budget_min=0", f"train.seed={args.seed}",
            f'train.device="{args.device}"', f"train.threads={args.threads}", f'train.run_dir="{run}"',
        ])  # fmt: skip
        t0 = time.time()
        train(cfg, progress=False)
        took = time.time() - t0
        val = evaluate(run, "val", runtime="torch")
        rows.append({
            "variant": name, "rooms": draw, "features": features, "train_s": round(took, 1),
            "run": str(run), "val_mae": val["model"]["mae"]["value"], "val_nll": val["model"]["nll"]["value"],
        })  # fmt: skip
        if args.unseen == "all":
            rows[-1].update(_count_unseen(run))
        print(json.dumps(rows[-1]), flush=True)
    if rows and args.unseen == "chosen":
        best = min(rows, key=lambda r: r["val_mae"])
        best.update(_count_unseen(Path(best["run"])))
        print(json.dumps(best), flush=True)
    return rows


def _count_unseen(run: Path) -> dict[str, Any]:
    """The unseen rooms of one counting run, room by room."""
    from csipose.count.evaluate import evaluate

    rep = evaluate(run, "unseen", runtime="torch")
    s = rep["by_room"]["summary"]
    return {
        **{f"unseen_{k}": s[k]["model"] for k in ("mae", "within_1", "accuracy", "spearman_conf_correct", "ece")},
        "unseen_accuracy_majority": s["accuracy"]["baseline"], "unseen_mae_majority": s["mae"]["baseline"],
        "unseen_by_room": rep["by_room"]["groups"],
    }  # fmt: skip


def tables(p: list[dict[str, Any]], c: list[dict[str, Any]]) -> str:
    out = []
    if p:
        out += ["Pose (MPJPE and torso-PCK@20 as model / mean-pose baseline; unseen: mean ± std "
                "[min, max] over the 4 unseen rooms):", "",
                "| variant | val MPJPE ratio (choice) | in-room test MPJPE ratio | unseen MPJPE ratio | "
                "unseen PCK@20 ratio | unseen PCK@20 model / baseline (mean) | train s |",
                "|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
        for r in p:
            if "unseen_mpjpe_ratio" not in r:  # --unseen chosen: only the chosen one was evaluated
                out.append(f"| {r['variant']} | {r['val_mpjpe_ratio']:.3f} | {r['test_mpjpe_ratio']:.3f} | "
                           f"not evaluated | | | {r['train_s']} |")  # fmt: skip
                continue
            out.append(f"| {r['variant']} | {r['val_mpjpe_ratio']:.3f} | {r['test_mpjpe_ratio']:.3f} | "
                       f"{_fmt(r['unseen_mpjpe_ratio'])} | {_fmt(r['unseen_pck20_ratio'], 2)} | "
                       f"{r['unseen_pck20_model']['mean']:.3f} / {r['unseen_pck20_baseline']['mean']:.3f} | "
                       f"{r['train_s']} |")  # fmt: skip
        best = min(p, key=lambda r: r["val_mpjpe_ratio"])
        out += ["", f"Chosen on the validation room: **{best['variant']}**.", ""]
    if c:
        out += ["Counting (unseen: mean ± std [min, max] over the 4 unseen rooms):", "",
                "| variant | val MAE (choice) | unseen MAE | unseen within ±1 | unseen accuracy | "
                "majority accuracy | unseen Spearman | unseen ECE | train s |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
        for r in c:
            if "unseen_mae" not in r:
                out.append(
                    f"| {r['variant']} | {r['val_mae']:.3f} | not evaluated | | | | | | {r['train_s']} |"
                )
                continue
            out.append(f"| {r['variant']} | {r['val_mae']:.3f} | {_fmt(r['unseen_mae'])} | "
                       f"{_fmt(r['unseen_within_1'])} | {_fmt(r['unseen_accuracy'])} | "
                       f"{r['unseen_accuracy_majority']['mean']:.3f} | {_fmt(r['unseen_spearman_conf_correct'])} | "
                       f"{_fmt(r['unseen_ece'])} | {r['train_s']} |")  # fmt: skip
        best = min(c, key=lambda r: r["val_mae"])
        out += ["", f"Chosen on the validation room: **{best['variant']}**.", ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="runs/unseen")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", choices=["pose", "count"], default=None)
    ap.add_argument("--variants", nargs="*", default=None, help="variant names (default: all)")
    ap.add_argument("--tag", default="", help="appended to the results file and run names")
    ap.add_argument(
        "--rooms",
        choices=["fixed", "per_sequence"],
        default=None,
        help="only the variants on these rooms",
    )
    ap.add_argument("--seed", type=int, default=0, help="train.seed (the data's seed stays 0)")
    ap.add_argument("--simulate-only", action="store_true", help="simulate the data, train nothing")
    ap.add_argument("--environments", type=int, default=10)
    ap.add_argument("--subjects", type=int, default=3)
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--pose-model", default="wiflow-tiny")
    ap.add_argument("--val-part", default="auto",
                    help="pose early stopping: auto = val_people (held-out people of the training "
                         "rooms), or val (the validation room)")  # fmt: skip
    ap.add_argument("--early-stop", type=int, default=6, help="pose train.early_stop")
    ap.add_argument("--amp", default="none", help="train.amp (bf16 on CUDA)")
    ap.add_argument("--batch-scale", type=int, default=1,
                    help="train.batch_scale: batch and learning rate x this (linear scaling)")  # fmt: skip
    ap.add_argument("--unseen", choices=["all", "chosen"], default="all",
                    help="evaluate the unseen rooms for every variant, or only for the one chosen "
                         "on the validation room")  # fmt: skip
    ap.add_argument(
        "--model-options",
        default="{input_pw_groups=2}",
        help="model.options as TOML ('' = the model's own); the default fits wiflow-tiny",
    )
    ap.add_argument("--count-subjects", type=int, default=6)
    ap.add_argument("--count-frames", type=int, default=60)
    ap.add_argument("--count-sequences", type=int, default=3)
    ap.add_argument("--count-epochs", type=int, default=15)
    args = ap.parse_args(argv)
    p = pose(args) if args.only in (None, "pose") else []
    c = count(args) if args.only in (None, "count") else []
    if args.simulate_only:
        return 0
    md = tables(p, c)
    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    (root / f"results-{args.only or 'all'}{args.tag}.json").write_text(
        json.dumps({"pose": p, "count": c, "args": vars(args)}, indent=1)
    )
    (root / f"results-{args.only or 'all'}{args.tag}.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
