"""What the benchmark scripts share: the machine's name and the printed table.

The scripts run as ``python benches/bench_*.py``, so this directory is on
``sys.path`` and they import it as ``_bench``.
"""

from __future__ import annotations

import platform
from collections.abc import Sequence


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def print_table(
    header: Sequence[str], rows: Sequence[Sequence[object]], *, markdown: bool, align: str
) -> None:
    """``rows`` under ``header`` as a markdown table or as aligned plain text;
    ``align`` holds one ``l`` or ``r`` per column."""
    cells = [[str(c) for c in r] for r in rows]
    if markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "".join("---|" if a == "l" else "---:|" for a in align))
        for r in cells:
            print("| " + " | ".join(r) + " |")
        return
    widths = [max(len(c) for c in col) for col in zip(header, *cells, strict=True)]
    for r in [list(header), *cells]:
        print(
            "  ".join(
                c.ljust(w) if a == "l" else c.rjust(w)
                for c, w, a in zip(r, widths, align, strict=True)
            )
        )
