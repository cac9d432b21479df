"""The ``csipose`` command."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from csipose import __version__, metrics
from csipose._files import write_text_atomic
from csipose.errors import CsiposeError


def _load(path: str | None, name: str) -> np.ndarray | None:
    if path is None:
        return None
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise CsiposeError(f"{path}: cannot read {name} as .npy: {e}") from e


def _write(path: Path, text: str) -> None:
    write_text_atomic(path, text)
    print(f"wrote {path}")


def _cmd_report(args: argparse.Namespace) -> int:
    report = metrics.accuracy_report(
        _load(args.pred, "pred"),
        _load(args.gt, "gt"),
        skeleton=args.skeleton,
        visible=_load(args.visible, "visible"),
        units=args.units,
        mean_pose=_load(args.mean_pose, "mean pose"),
    )
    print(report.to_markdown())
    if args.json:
        _write(Path(args.json), report.to_json())
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from csipose.data.simulate import simulate

    out = simulate(
        args.out,
        profile=args.profile,
        environments=args.environments,
        subjects=args.subjects,
        actions=None if args.actions is None else [a.strip() for a in args.actions.split(",")],
        frames=args.frames,
        sequences=args.sequences,
        seed=args.seed,
        spot_jitter=args.spot_jitter,
        heading_jitter=args.heading_jitter,
        mmfi_tree=args.mmfi_tree,
        overwrite=args.overwrite,
        room_draw=args.rooms,
    )
    print(f"wrote store {out}")
    return 0


def _cmd_convert(converter, args: argparse.Namespace) -> int:
    out = converter.run(Path(args.src), Path(args.out), args)
    print(f"wrote store {out}")
    return 0


def _split_train_args(items: list[str]) -> tuple[str | None, list[str]]:
    config = [i for i in items if "=" not in i]
    if len(config) > 1:
        raise CsiposeError(f"one configuration file at most, got {', '.join(config)}")
    return (config[0] if config else None), [i for i in items if "=" in i]


def _cmd_train(args: argparse.Namespace) -> int:
    from csipose.train import config
    from csipose.train.evaluate import evaluate
    from csipose.train.loop import train

    path, overrides = _split_train_args(args.items)
    if args.device:
        overrides.append(f'train.device="{args.device}"')
    cfg = config.load(path, overrides)
    if args.print_config:
        print(cfg.to_toml(), end="")
        return 0
    run = train(cfg, resume=args.resume)
    if os.environ.get("RANK", "0") != "0" or args.no_eval:
        return 0
    from csipose.train.evaluate import summary

    reports = {part: evaluate(run, part, device=cfg.train.device) for part in cfg.data.test_parts}
    text = summary(reports)
    _write(run / "eval" / "summary.md", text)
    print(f"\nEvaluation of the best checkpoint of {run} on split {cfg.data.split!r}"
          f" (full reports: {run / 'eval'}/PART/report.md)\n\n{text}", end="")  # fmt: skip
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from csipose.train.evaluate import evaluate

    rep = evaluate(args.run, args.split, out=args.out, store=args.store, device=args.device)
    print(rep.to_markdown())
    return 0


def _cmd_proof(args: argparse.Namespace) -> int:
    from csipose.train import proof

    return proof.main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="csipose", description=__doc__)
    parser.add_argument("--version", action="version", version=f"csipose {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    tr = sub.add_parser(
        "train",
        help="train a pose model (no arguments: the built-in simulated MM-Fi job)",
        description="Train a pose model from a TOML configuration with dotted overrides (docs/training.md).",
    )
    tr.add_argument("items", nargs="*", metavar="CONFIG.toml | section.key=value",
                    help="an optional configuration file, then overrides such as optim.lr=1e-3")  # fmt: skip
    tr.add_argument(
        "--resume", help="'auto' (the run's latest checkpoint, if any) or a checkpoint directory"
    )
    tr.add_argument("--device", help="cpu, cuda or cuda:N (same as train.device=...)")
    tr.add_argument(
        "--print-config", action="store_true", help="print the resolved configuration and exit"
    )
    tr.add_argument("--no-eval", action="store_true", help="skip the evaluation on data.test_parts")
    tr.set_defaults(func=_cmd_train)

    ev = sub.add_parser("eval", help="evaluate a trained run against the mean-pose baseline")
    ev.add_argument(
        "run", help="a run directory, a checkpoint directory or a model.safetensors file"
    )
    ev.add_argument(
        "--split", default="test", help="the part of the run's split to evaluate (default test)"
    )
    ev.add_argument("--store", help="evaluate on this store instead of the one the run trained on")
    ev.add_argument("--out", help="write the report here (default RUN/eval/PART)")
    ev.add_argument("--device", default="cpu", help="cpu or cuda")
    ev.set_defaults(func=_cmd_eval)

    rep = sub.add_parser(
        "report", help="accuracy report of predictions against ground truth (.npy)"
    )
    rep.add_argument("pred", help="predictions [N, K, D] .npy")
    rep.add_argument("gt", help="ground truth [N, K, D] .npy")
    rep.add_argument("--skeleton", required=True, help="coco17, h36m17 or body25_15")
    rep.add_argument("--visible", help="visibility [N, K] .npy")
    rep.add_argument("--units", help="units of the coordinates, e.g. m")
    rep.add_argument("--mean-pose", help="training-set mean pose [K, D] .npy for the baseline")
    rep.add_argument("--json", help="also write the report as JSON here")
    rep.set_defaults(func=_cmd_report)

    sim = sub.add_parser(
        "simulate",
        help="simulate a CSI dataset (people, rooms, a multipath channel) into a store",
        description="Simulate a dataset with csipose's physically based CSI simulator (docs/simulator.md).",
    )
    sim.add_argument("out", help="the store directory to create")
    sim.add_argument("--profile", default="mmfi", help="mmfi, esp32 or wiflow (default mmfi)")
    sim.add_argument("--environments", type=int, default=4, help="rooms (default 4)")
    sim.add_argument("--subjects", type=int, default=10, help="people per room (default 10)")
    sim.add_argument("--actions", help="comma-separated actions (default all 10)")
    sim.add_argument(
        "--frames", type=int, help="frames per sequence (default 64 for mmfi, else 200)"
    )
    sim.add_argument(
        "--sequences", type=int, default=8, help="counting scenes per room and count (esp32)"
    )
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--spot-jitter", type=float, default=0.15,
                     help="std of where a person stands, per sequence, in m (default 0.15)")  # fmt: skip
    sim.add_argument("--heading-jitter", type=float, default=15.0,
                     help="std of where a person faces, per sequence, in degrees (default 15)")  # fmt: skip
    sim.add_argument("--mmfi-tree", help="also write the official MM-Fi layout here (profile mmfi)")
    sim.add_argument("--overwrite", action="store_true", help="replace an existing store")
    sim.add_argument("--rooms", choices=["fixed", "per_sequence"], default="fixed",
                     help="per_sequence: domain randomisation, every training sequence in a room "
                     "of its own (needs >= 6 environments; docs/simulator.md)")  # fmt: skip
    sim.set_defaults(func=_cmd_simulate)

    from csipose.data.convert import converters

    conv = sub.add_parser("convert", help="convert a dataset or capture into a csipose store")
    formats = conv.add_subparsers(dest="format", required=True)
    for c in converters().values():
        p = formats.add_parser(c.name, help=c.help, description=c.help)
        p.add_argument("src", help="the input file or directory")
        p.add_argument("out", help="the store directory to create")
        p.add_argument("--overwrite", action="store_true", help="replace an existing store")
        c.add_arguments(p)
        p.set_defaults(func=lambda a, c=c: _cmd_convert(c, a))

    from csipose.count import cli as count_cli
    from csipose.deploy import export, parity, predict

    count_cli.add_parser(sub)
    pf = sub.add_parser("proof", help="reproducibility proof: a fixed tiny training run against a committed hash",
                        description="Train a fixed tiny CountNet run (CPU, one thread) and compare the hash of its "
                        "weights with the one committed for this environment (docs/training.md).")  # fmt: skip
    pf.set_defaults(func=_cmd_proof)
    export.add_parser(sub)
    parity.add_parser(sub)
    from csipose.quantize import cli as quantize_cli

    quantize_cli.add_parser(sub)
    predict.add_parser(sub)
    return parser


#: Errors that say the input is wrong: exit 2 with one line. Anything else is a bug
#: and keeps its traceback.
_USER_ERRORS = (
    CsiposeError,
    FileExistsError,
    FileNotFoundError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
)
_PACKAGE = Path(__file__).resolve().parent


def _is_user_error(e: BaseException) -> bool:
    """CsiposeError and file errors, and a ValueError that csipose raised on purpose
    (its innermost Python frame is in the package, a Rust binding's argument check
    included). A ValueError from inside numpy or torch, or any TypeError, is a bug."""
    if isinstance(e, _USER_ERRORS):
        return True
    if not isinstance(e, ValueError):
        return False
    tb, last = e.__traceback__, None
    while tb is not None:
        last, tb = tb, tb.tb_next
    return last is not None and Path(last.tb_frame.f_code.co_filename).resolve().is_relative_to(
        _PACKAGE
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except Exception as e:
        if not _is_user_error(e):
            raise
        print(f"csipose {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
