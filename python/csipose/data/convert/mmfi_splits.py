"""MM-Fi's protocols and the toolkit's S1 ``random_split`` subject lists.

The toolkit seeds numpy's legacy global RNG with ``seed + p`` for the action
at position ``p`` of the protocol's action list, draws
``np.random.permutation(40)`` over subject indices (0 = S01) and trains on
the first ``floor(ratio * 40)``; the rest validate. The lists are shipped as
data (``csipose/data/mmfi_splits.json``) so conversion never depends on
numpy's legacy generator; regenerate them with::

    python -m csipose.data.convert.mmfi_splits
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

PROTOCOLS: dict[str, list[str]] = {
    # decode_config: P1 daily activities, P2 rehabilitation exercises, P3 all 27.
    "p1": [f"A{a:02d}" for a in (2, 3, 4, 5, 13, 14, 17, 18, 19, 20, 21, 22, 23, 27)],
    "p2": [f"A{a:02d}" for a in (1, 6, 7, 8, 9, 10, 11, 12, 15, 16, 24, 25, 26)],
    "p3": [f"A{a:02d}" for a in range(1, 28)],
}
N_SUBJECTS = 40
SEED = 0
RATIOS = (0.8, 0.7)
PATH = Path(__file__).parent.parent / "mmfi_splits.json"


def val_subjects(position: int, ratio: float, seed: int = SEED) -> list[str]:
    """Validation subjects of the action at ``position`` in its protocol's list."""
    perm = np.random.RandomState(seed + position).permutation(N_SUBJECTS)
    return sorted(f"S{i + 1:02d}" for i in perm[math.floor(ratio * N_SUBJECTS) :])


def generate() -> dict[str, Any]:
    return {
        "definition": (
            "MM-Fi toolkit S1 random_split: for the action at 0-based position p of the "
            f"protocol's action list, numpy.random.seed({SEED} + p), permutation({N_SUBJECTS}) "
            "of subject indices (0 = S01); the first floor(ratio * 40) subjects train, the "
            "rest (listed here) validate"
        ),
        "generator": "python -m csipose.data.convert.mmfi_splits",
        "seed": SEED,
        "n_subjects": N_SUBJECTS,
        "protocols": PROTOCOLS,
        "val_subjects": {
            proto: {
                str(ratio): {a: val_subjects(p, ratio) for p, a in enumerate(actions)}
                for ratio in RATIOS
            }
            for proto, actions in PROTOCOLS.items()
        },
    }


def dumps(data: dict[str, Any]) -> str:
    """JSON with each list on one line, so a diff shows which action's subjects changed."""
    text = json.dumps(data, indent=1)
    return (
        re.sub(r"\[\s+([^\[\]]*?)\s+\]", lambda m: "[" + " ".join(m[1].split()) + "]", text) + "\n"
    )


def load() -> dict[str, Any]:
    return json.loads(PATH.read_text())


if __name__ == "__main__":
    PATH.write_text(dumps(generate()))
    print(f"wrote {PATH}")
