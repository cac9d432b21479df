"""The load path's vector rows (rust/core/src/store/fused_lanes.rs) on frames of
8 or more packets, which the stores of the other tests (5 packets) never reach:
every row is covered by 8-lane vectors, the last one overlapping the one before.

- the stated float32 bound against the float64 oracle holds for them too;
- the baseline build gives the same bits as the AVX2 build, including frames
  whose minimum is a signed zero (the min-max's tie rule) and NaN-free edges.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import csipose
from csipose.data import CsiTransform, Store, StoreWriter, ZScore
from test_load_path_bound import MAPS, STYLES, expected_and_bound

PACKETS = (8, 10, 13, 17, 24)


def zero_edges(r: np.random.Generator, s: tuple[int, ...]) -> np.ndarray:
    """Frames whose minimum (or maximum) is a mix of +0 and -0."""
    x = r.uniform(0, 5, s) * r.choice([1.0, -1.0])
    x.reshape(-1)[r.choice(x.size, 6, replace=False)] = [0.0, -0.0, 0.0, -0.0, -0.0, 0.0]
    return x


def write_store(path, packets: int, seed: int = 3):
    rng = np.random.default_rng(seed)
    styles = [*STYLES, zero_edges]
    amp = np.stack(
        [styles[f % len(styles)](rng, (3, 8, packets)) for f in range(2 * len(styles))]
    ).astype(np.float32)
    csi = {
        "layout": ["frame", "antenna", "subcarrier", "packet"],
        "antennas": {"n_tx": 1, "n_rx": 3, "order": "tx-major"},
        "subcarrier_indices": list(range(-4, 4)),
        "packets_per_frame": packets,
        "units": {"amplitude": "arbitrary"},
        "hardware_profile": {"name": "test"},
    }
    with StoreWriter(
        path,
        csi=csi,
        default_window={"length": 1, "stride": 1, "label": "first"},
        provenance={"converter": "tests/test_load_path_lanes.py"},
    ) as w:
        w.add_frames(
            amplitude=amp,
            sequence=w.code("sequence", "s"),
            frame_index=np.arange(len(amp)),
            environment=w.code("environment", "E"),
            subject=w.code("subject", "S"),
            action=w.code("action", "A"),
        )
    return amp


@pytest.fixture(scope="module")
def lane_stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("lanes")
    return {p: (root / f"p{p}", write_store(root / f"p{p}", p)) for p in PACKETS}


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    packets=st.sampled_from(PACKETS),
    minmax=st.booleans(),
    kind=st.sampled_from(list(MAPS)),
    zscore=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_vector_rows_are_within_the_stated_bound(lane_stores, packets, minmax, kind, zscore, seed):
    path, amp = lane_stores[packets]
    m = MAPS[kind]
    t_out = 8 if m is None else m.n_out
    rng = np.random.default_rng(seed)
    mean, std = np.zeros((3, t_out)), np.ones((3, t_out))
    z = None
    if zscore:
        mean, std = rng.uniform(-1e3, 1e3, (3, t_out)), 10.0 ** rng.uniform(-3, 3, (3, t_out))
        z = ZScore(mean, std, eps=0.0, source="test")
    t = CsiTransform(minmax=minmax, subcarriers=m, zscore=z)
    store = Store.open(path, window={"length": 1, "stride": 1}, transform={"amplitude": t})
    got = store.gather(np.arange(len(store)), fields=["amplitude"])["amplitude"][:, 0]
    for g, x in zip(got.astype(np.float64), amp.astype(np.float64), strict=True):
        expect, bound = expected_and_bound(x, minmax, m, mean, std)
        assert np.all(np.abs(g - expect) <= bound)


SCRIPT = r"""
import json, sys
import numpy as np
from csipose import signal
from csipose.data import CsiTransform, Store, ZScore
rng = np.random.default_rng(11)
out = {}
for path in sys.argv[1:]:
    for i, (minmax, m) in enumerate([(True, signal.linear_map(8, 5)), (True, signal.gaussian_map(8, 6)),
                                     (False, signal.select_map(8, [0, 2, 7])), (True, None)]):
        t_out = 8 if m is None else m.n_out
        for z in (None, ZScore(rng.uniform(-1, 1, (3, t_out)), rng.uniform(0.1, 2, (3, t_out)),
                               eps=0.0, source="t")):
            t = CsiTransform(minmax=minmax, subcarriers=m, zscore=z)
            s = Store.open(path, window={"length": 1, "stride": 1}, transform={"amplitude": t})
            a = s.gather(np.arange(len(s)), fields=["amplitude"])["amplitude"]
            out[f"{path}/{i}/{z is None}"] = a.tobytes().hex()
json.dump(out, sys.stdout)
"""


def run(level: str | None, paths: list[str]) -> dict:
    env = dict(os.environ)
    env.pop("CSIPOSE_SIMD", None)
    if level:
        env["CSIPOSE_SIMD"] = level
    res = subprocess.run(
        [sys.executable, "-c", SCRIPT, *paths], env=env, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_baseline_build_gives_the_vector_rows_bits(lane_stores):
    if csipose.simd_level() == "base":
        pytest.skip("this CPU runs the baseline build; nothing to compare")
    paths = [str(p) for p, _ in lane_stores.values()]
    best, base = run(None, paths), run("base", paths)
    assert best.keys() == base.keys()
    for key, value in best.items():
        assert base[key] == value, key
