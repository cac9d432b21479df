"""Kernels release the GIL: Python threads run them concurrently."""

from __future__ import annotations

import numpy as np
import pytest

import csipose
from csipose import _native

from gil import calls_during


@pytest.fixture(autouse=True)
def restore_threads():
    yield
    csipose.set_num_threads(0)


def test_set_num_threads():
    csipose.set_num_threads(1)
    assert csipose.get_num_threads() == 1
    csipose.set_num_threads(3)
    assert csipose.get_num_threads() == 3
    with pytest.raises(ValueError):
        csipose.set_num_threads(-1)
    with pytest.raises(TypeError):
        csipose.set_num_threads(1.5)  # type: ignore[arg-type]


def test_two_threads_run_kernels_concurrently():
    """While one thread is inside a long kernel, the other completes kernel calls.

    The switch interval is raised to 100 s, so Python never preempts a thread
    that holds the GIL: if the long kernel kept the GIL, no other thread could
    run between its start and end stamps, and the count below would be 0.
    """
    csipose.set_num_threads(1)
    rng = np.random.default_rng(0)
    big_gt = rng.normal(size=(300_000, 17, 3)).astype(np.float32)
    big_pred = (big_gt + 0.1).astype(np.float32)
    small = rng.normal(size=(8, 17, 3)).astype(np.float32)
    pa, overlapping, calls = calls_during(
        lambda: _native.aligned_errors(big_pred, big_gt, alignment="similarity")["dist_count"],
        lambda: _native.joint_errors(small, small),
    )
    assert pa == 300_000 * 17
    assert overlapping >= 10, (overlapping, calls)
