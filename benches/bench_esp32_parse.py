"""Reading an ESP32-CSI-Tool log: csipose's parser against csiread's ESP32 reader, one process.

    python benches/bench_esp32_parse.py [--lines 100000] [--rounds 3] [--markdown]

One file of ``--lines`` ESP32-CSI-Tool lines (128 LLTF values each, no header,
so csiread can read it) is written once; each reader is timed ``--rounds``
times in turn (median, wall clock and process CPU time):

* csipose: ``csipose.data.convert.esp32.read`` (lines, fields, layout checks,
  CSI as complex; no store written);
* csiread.ESP32 (the field's parser; Cython; marked experimental by its
  author): ``read()`` into its CSI array.

Both are single-threaded. The memory floor is reading the file's bytes once.
Ratios are time / csiread's time (> 1: slower than csiread).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _bench import cpu_name, print_table

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def _time(fn, rounds: int) -> tuple[float, float]:
    wall, cpu = [], []
    for _ in range(rounds):
        w, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lines", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()

    import argparse as _ap

    import csiread
    import numpy as np

    import esp32_writer as ew
    from csipose.data.convert import esp32

    b, _ = ew.buffer(np.random.default_rng(0), ew.CLASSIC[(1, 1, 1, 0)][:3])
    line = ew.tool_line(b[:128], secondary=1, sig_mode=1, cwb=1, length=384)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "tool.csv"
        src.write_text((line + "\n") * args.lines)
        ns = _ap.Namespace()

        def ours() -> None:
            esp32.read(src, src.read_bytes(), ns)

        def theirs() -> None:
            csiread.ESP32(str(src), if_report=False).read()

        rows, base = [], None
        floor = _time(lambda: src.read_bytes(), args.rounds)
        timed = {
            "csiread.ESP32 read()": _time(theirs, args.rounds),
            "csipose esp32.read": _time(ours, args.rounds),
        }
        base = timed["csiread.ESP32 read()"]
        for name, (w, c) in timed.items():
            rows.append([name, f"{w:.2f}", f"{c:.2f}", f"{w / base[0]:.2f}", f"{c / base[1]:.2f}"])
        rows.append(["memory floor (read the bytes)", f"{floor[0]:.3f}", f"{floor[1]:.3f}", "", ""])
        size = src.stat().st_size / 1e6
    print(
        f"{args.lines:,} ESP32-CSI-Tool lines x 128 values ({size:.1f} MB), median of {args.rounds}; {cpu_name()}"
    )
    print_table(["reader", "wall s", "CPU s", "wall / csiread", "CPU / csiread"], rows,
                markdown=args.markdown, align="lrrrr")  # fmt: skip


if __name__ == "__main__":
    main()
