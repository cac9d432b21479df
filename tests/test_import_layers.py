"""The layers at run time: importing the core never loads torch (lint-imports checks
the static imports; this checks what `import` really pulls in, lazy imports aside)."""

from __future__ import annotations

import subprocess
import sys

CORE = ["csipose", "csipose.metrics", "csipose.matching", "csipose.signal", "csipose.skeleton",
        "csipose.data", "csipose.runtime"]  # fmt: skip


def test_importing_the_core_does_not_load_torch():
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in CORE)
        + "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        + "print(len(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0", out
