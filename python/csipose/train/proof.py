"""``csipose proof``: a reproducibility proof. A fixed small training run (CountNet
through the shared training engine on a tiny simulated ESP32 store: seeded, CPU,
one thread, a few dozen optimiser steps) whose final weights and buffers are
hashed and compared with the hash committed in ``proof_hashes.json`` for this
environment.

The hash (:func:`weights_hash`) is SHA-256 over the model's ``state_dict`` in
sorted name order; for each tensor it takes the name in UTF-8, a NUL byte, the
dtype and shape as text (``float32[8, 56]``), a NUL byte, then the values as
little-endian bytes in C order.

The environment (:func:`fingerprint`) is what can change the arithmetic: the
torch and numpy versions, torch's CPU kernel level, csipose's SIMD level, the machine and
operating system. A fingerprint with a committed hash gives PASS or FAIL; an
unknown one gives NEW-ENVIRONMENT, prints the hash to commit, and passes only
if two runs in this process agree bit for bit and the training loss fell.
"""

from __future__ import annotations

import hashlib
import json
import platform
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

HASHES = Path(__file__).with_name("proof_hashes.json")

#: The fixed run. Changing any of this changes every committed hash.
STORE: dict[str, Any] = {
    "profile": "esp32",
    "environments": 2,
    "subjects": 3,
    "frames": 40,
    "sequences": 3,
    "seed": 1,
}
OVERRIDES = ["train.epochs=6", "train.batch_size=16", "train.threads=1", "train.seed=0", "train.early_stop=0",
             'train.device="cpu"', "train.time_budget_min=0", "data.train_stride=2",
             "data.features=[]"]  # fmt: skip


def weights_hash(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and little-endian values, in sorted name order."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        a = t.view(torch.int16).numpy() if t.dtype == torch.bfloat16 else t.numpy()
        h.update(
            name.encode()
            + b"\0"
            + f"{str(t.dtype).removeprefix('torch.')}{list(t.shape)}".encode()
            + b"\0"
        )
        h.update(np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<"), copy=False).tobytes())
    return h.hexdigest()


def fingerprint() -> dict[str, str]:
    """What the arithmetic of the proof run depends on besides csipose's own code."""
    import csipose

    return {
        "torch": torch.__version__,
        "numpy": np.__version__,
        "torch_cpu": torch.backends.cpu.get_cpu_capability(),
        "csipose_simd": csipose.simd_level(),
        "machine": platform.machine(),
        "system": platform.system(),
    }


def key(fp: dict[str, str]) -> str:
    return " ".join(f"{k}={fp[k]}" for k in sorted(fp))


def run_once(store: Path, run_dir: Path) -> tuple[str, list[float], int]:
    """(hash of the final weights and buffers, train loss per epoch, steps) of one run."""
    from csipose.count import config
    from csipose.count.train import CountTask
    from csipose.train.engine import Engine

    cfg = config.load(None, [*OVERRIDES, 'data.source="store"', f'data.store="{store}"',
                             f'train.run_dir="{run_dir}"'])  # fmt: skip
    task = CountTask(cfg)
    threads = torch.get_num_threads()
    try:
        Engine(task).run(progress=False)
    finally:
        torch.set_num_threads(threads)
    state = json.loads((run_dir / "checkpoints" / "best" / "trainer_state.json").read_text())
    return (
        weights_hash(task.model.state_dict()),
        [h["train_loss"] for h in state["history"]],
        state["step"],
    )


def prove(
    *, runs_dir: str | Path | None = None, hashes: Path | None = None
) -> tuple[str, dict[str, Any]]:
    """Run the proof; returns (verdict, details). Verdict: PASS, FAIL, NEW-ENVIRONMENT
    (two runs agreed and the loss fell) or NEW-ENVIRONMENT-FAIL."""
    import contextlib
    import io

    import csipose
    from csipose.data.simulate import simulate

    fp = fingerprint()
    hashes = hashes or HASHES
    expected = json.loads(hashes.read_text()) if hashes.exists() else {}
    rayon = csipose.get_num_threads()
    csipose.set_num_threads(1)
    try:
        with tempfile.TemporaryDirectory(dir=runs_dir) as tmp:
            root = Path(tmp)
            with contextlib.redirect_stdout(io.StringIO()):
                store = simulate(root / "store", **STORE)
                digest, losses, steps = run_once(store, root / "a")
                known = expected.get(key(fp))
                second = None if known else run_once(store, root / "b")[0]
    finally:
        csipose.set_num_threads(rayon)
    details: dict[str, Any] = {"fingerprint": fp, "key": key(fp), "hash": digest, "steps": steps,
                               "train_loss": losses}  # fmt: skip
    if known:
        details["expected"] = known["hash"]
        return ("PASS" if known["hash"] == digest else "FAIL"), details
    details["second_hash"] = second
    details["loss_fell"] = bool(losses[-1] < losses[0])
    ok = second == digest and details["loss_fell"]
    return ("NEW-ENVIRONMENT" if ok else "NEW-ENVIRONMENT-FAIL"), details


def main(args: Any) -> int:
    verdict, d = prove()
    print(f"environment: {d['key']}")
    print(
        f"run: {d['steps']} steps, train loss per epoch {', '.join(f'{x:.4f}' for x in d['train_loss'])}"
    )
    print(f"weights hash: {d['hash']}")
    if verdict in ("PASS", "FAIL"):
        print(f"expected:     {d['expected']}")
        print(
            verdict
            if verdict == "PASS"
            else "FAIL: the weights differ from the hash committed for this environment"
        )
        return 0 if verdict == "PASS" else 1
    print(
        f"second run:   {d['second_hash']} ({'identical' if d['second_hash'] == d['hash'] else 'DIFFERENT'})"
    )
    print(f"loss fell:    {'yes' if d['loss_fell'] else 'NO'}")
    entry = {d["key"]: {"hash": d["hash"], "fingerprint": d["fingerprint"], "steps": d["steps"]}}
    print(f"NEW-ENVIRONMENT: no hash committed for this environment; add to {HASHES.name}:")
    print(json.dumps(entry, indent=1))
    return 0 if verdict == "NEW-ENVIRONMENT" else 1
