"""``csipose proof``: the documented weight hash, the verdicts, and one real run
that must PASS in an environment with a committed hash."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from csipose.cli import main
from csipose.train import proof

pytestmark = pytest.mark.usefixtures("restore_torch_threads")


def test_weights_hash_is_the_documented_formula():
    state = {
        "b": torch.tensor([1.0, -2.0]),
        "a.w": torch.arange(6, dtype=torch.int64).reshape(2, 3),
    }
    h = hashlib.sha256()
    h.update(b"a.w\0int64[2, 3]\0" + np.arange(6, dtype="<i8").tobytes())
    h.update(b"b\0float32[2]\0" + np.array([1.0, -2.0], dtype="<f4").tobytes())
    assert proof.weights_hash(state) == h.hexdigest()
    assert proof.weights_hash(dict(reversed(state.items()))) == h.hexdigest()  # sorted by name
    changed = {**state, "b": torch.tensor([1.0, np.nextafter(-2.0, 0, dtype=np.float32)])}
    assert proof.weights_hash(changed) != h.hexdigest()  # one ulp of one value


def test_fingerprint_names_what_changes_the_arithmetic():
    fp = proof.fingerprint()
    assert set(fp) == {"torch", "numpy", "torch_cpu", "csipose_simd", "machine", "system"}
    assert proof.key(fp) == " ".join(f"{k}={fp[k]}" for k in sorted(fp))


@pytest.fixture
def fake_runs(monkeypatch):
    """prove() with the store and the training replaced: each run returns the next result."""
    results: list = []
    monkeypatch.setattr("csipose.data.simulate.simulate", lambda path, **k: path)
    monkeypatch.setattr(proof, "run_once", lambda store, run: results.pop(0))
    return results


def test_verdicts(fake_runs, tmp_path):
    hashes = tmp_path / "h.json"
    k = proof.key(proof.fingerprint())
    hashes.write_text(json.dumps({k: {"hash": "aa"}}))
    fake_runs += [("aa", [2.0, 1.0], 30), ("bb", [2.0, 1.0], 30)]
    assert proof.prove(hashes=hashes)[0] == "PASS"
    verdict, d = proof.prove(hashes=hashes)
    assert verdict == "FAIL" and (d["hash"], d["expected"]) == ("bb", "aa")
    hashes.write_text("{}")
    fake_runs += [("cc", [2.0, 1.0], 30), ("cc", [2.0, 1.0], 30)]
    assert proof.prove(hashes=hashes)[0] == "NEW-ENVIRONMENT"
    fake_runs += [("cc", [2.0, 1.0], 30), ("dd", [2.0, 1.0], 30)]  # two runs disagree
    assert proof.prove(hashes=hashes)[0] == "NEW-ENVIRONMENT-FAIL"
    fake_runs += [("cc", [1.0, 2.0], 30), ("cc", [1.0, 2.0], 30)]  # the loss rose
    assert proof.prove(hashes=hashes)[0] == "NEW-ENVIRONMENT-FAIL"


def test_the_command_exit_status(fake_runs, monkeypatch, tmp_path, capsys):
    k = proof.key(proof.fingerprint())
    monkeypatch.setattr(proof, "HASHES", tmp_path / "h.json")
    (tmp_path / "h.json").write_text(json.dumps({k: {"hash": "aa"}}))
    fake_runs += [("aa", [2.0, 1.0], 30), ("bb", [2.0, 1.0], 30)]
    assert main(["proof"]) == 0 and capsys.readouterr().out.rstrip().endswith("PASS")
    assert main(["proof"]) == 1 and "FAIL" in capsys.readouterr().out
    (tmp_path / "h.json").write_text("{}")
    fake_runs += [("cc", [2.0, 1.0], 30), ("cc", [2.0, 1.0], 30)]
    assert main(["proof"]) == 0
    out = capsys.readouterr().out
    assert "NEW-ENVIRONMENT" in out and f'"{k}"' in out and '"hash": "cc"' in out


def test_the_committed_hash_holds_here():
    """The real run (about 30 steps, one thread). In an environment without a committed
    hash it must still be reproducible within the process and learn."""
    verdict, d = proof.prove()
    assert d["steps"] >= 24
    if d["key"] in json.loads(proof.HASHES.read_text()):
        assert verdict == "PASS", d
    else:
        assert verdict == "NEW-ENVIRONMENT", d
