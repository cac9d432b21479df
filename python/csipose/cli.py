"""The ``csipose`` command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from csipose import __version__, metrics
from csipose.errors import CsiposeError


def _demo_poses(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Ground-truth H36M-17 poses (metres) with varied arm and knee angles, and
    a prediction made by adding 4 cm Gaussian noise per coordinate."""
    rng = np.random.default_rng(seed)
    template = np.array(
        [
            [0, 0.95, 0], [-0.13, 0.93, 0], [-0.14, 0.5, 0.02], [-0.15, 0.08, 0],
            [0.13, 0.93, 0], [0.14, 0.5, 0.02], [0.15, 0.08, 0], [0, 1.18, 0],
            [0, 1.42, 0], [0, 1.55, 0.05], [0, 1.68, 0], [0.19, 1.4, 0],
            [0.22, 1.12, 0], [0.24, 0.88, 0.05], [-0.19, 1.4, 0], [-0.22, 1.12, 0],
            [-0.24, 0.88, 0.05],
        ]
    )  # fmt: skip
    poses = np.repeat(template[None], n, axis=0)
    for shoulder, arm in ((11, (12, 13)), (14, (15, 16))):
        angle = rng.uniform(-0.3, 2.8, n)  # raise the arm sideways, about the shoulder
        c, s = np.cos(angle), np.sin(angle)
        side = np.sign(template[shoulder, 0])
        for j in arm:
            rel = poses[:, j] - poses[:, shoulder]
            x, y = rel[:, 0], rel[:, 1]
            poses[:, j, 0] = poses[:, shoulder, 0] + c * x - side * s * y
            poses[:, j, 1] = poses[:, shoulder, 1] + side * s * x + c * y
    yaw = rng.uniform(-np.pi, np.pi, n)
    rot = np.zeros((n, 3, 3))
    rot[:, 0, 0], rot[:, 0, 2], rot[:, 1, 1] = np.cos(yaw), np.sin(yaw), 1
    rot[:, 2, 0], rot[:, 2, 2] = -np.sin(yaw), np.cos(yaw)
    gt = np.einsum("nij,nkj->nki", rot, poses) * rng.uniform(0.9, 1.1, (n, 1, 1))
    gt += rng.uniform(-1, 1, (n, 1, 3)) * [1.5, 0, 1.5] + [0, 0, 3.1]
    pred = gt + rng.normal(0, 0.04, gt.shape)
    return pred.astype(np.float32), gt.astype(np.float32)


def _cmd_demo(args: argparse.Namespace) -> int:
    pred, gt = _demo_poses(args.samples, args.seed)
    print(
        f"csipose {__version__} demo: {args.samples} generated H36M-17 ground-truth poses "
        "(metres) and a simulated model that adds 4 cm Gaussian noise per coordinate.\n"
        "Until `csipose train` lands this is the main job; it exercises every metric kernel.\n"
    )
    report = metrics.accuracy_report(
        pred, gt, skeleton="h36m17", units="m", context={"data": "generated demo poses"}
    )
    print(report.to_markdown())
    if args.json:
        _write(Path(args.json), report.to_json())
    return 0


def _load(path: str | None, name: str) -> np.ndarray | None:
    if path is None:
        return None
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise CsiposeError(f"{path}: cannot read {name} as .npy: {e}") from e


def _write(path: Path, text: str) -> None:
    # Atomic: a reader never sees half a report.
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
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
        mmfi_tree=args.mmfi_tree,
        overwrite=args.overwrite,
    )
    print(f"wrote store {out}")
    return 0


def _cmd_convert(converter, args: argparse.Namespace) -> int:
    out = converter.run(Path(args.src), Path(args.out), args)
    print(f"wrote store {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="csipose", description=__doc__)
    parser.add_argument("--version", action="version", version=f"csipose {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="print the accuracy report of a generated example")
    demo.add_argument("--samples", type=int, default=2000)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--json", help="also write the report as JSON here")
    demo.set_defaults(func=_cmd_demo)

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
    sim.add_argument("--frames", type=int, help="frames per sequence (default 64 for mmfi, else 200)")
    sim.add_argument("--sequences", type=int, default=8, help="counting scenes per room and count (esp32)")
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--mmfi-tree", help="also write the official MM-Fi layout here (profile mmfi)")
    sim.add_argument("--overwrite", action="store_true", help="replace an existing store")
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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (CsiposeError, ValueError, TypeError, FileExistsError, FileNotFoundError) as e:
        print(f"csipose {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
