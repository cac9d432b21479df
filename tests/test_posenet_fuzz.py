"""No Rust panic may reach Python through csipose.PoseNet: random files for
``load``, random shapes, dtypes, NaN / inf / huge values and broadcasts for
``predict`` and ``forward`` (the pattern of tests/test_bindings_fuzz.py)."""

from __future__ import annotations

import json
import struct

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import csipose
from posenet_checkpoints import random_checkpoint
from test_bindings_fuzz import CLEAR, VALUES, arrays

CASE = ("wiflow-tiny", 120, 10, 15, 2, {"input_pw_groups": 4})  # windows [B, 10, 4, 30, 1]


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    file, _ = random_checkpoint(tmp_path_factory.mktemp("fuzz"), CASE)
    return csipose.PoseNet.load(file)


def clear_or_result(f, *args):
    try:
        return f(*args)
    except CLEAR:
        return None


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(a=arrays(), p=st.one_of(st.none(), arrays()))
def test_predict_any_input(net, a, p):
    clear_or_result(net.predict, a, p)
    clear_or_result(net.forward, a)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(b=st.integers(0, 3), data=st.data())
def test_predict_valid_shapes_with_any_values(net, b, data):
    with np.errstate(over="ignore", invalid="ignore"):
        x = data.draw(hnp.arrays(np.float32, (b, 10, 4, 30, 1), elements=st.sampled_from(VALUES)))
    out = net.predict(x)
    assert out.shape == (b, 15, 2) and out.dtype == np.float32


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    blob=st.binary(max_size=300),
    meta=st.one_of(
        st.none(), st.dictionaries(st.text(max_size=8), st.text(max_size=20), max_size=4)
    ),
)
def test_load_any_file(tmp_path_factory, blob, meta):
    d = tmp_path_factory.mktemp("blob")
    f = d / "model.safetensors"
    if meta is None:
        f.write_bytes(blob)
    else:  # a valid header whose metadata is anything
        h = json.dumps({"__metadata__": {"format": "csipose-pose-checkpoint", **meta}}).encode()
        f.write_bytes(struct.pack("<Q", len(h)) + h + blob)
    with pytest.raises(csipose.CheckpointError):
        csipose.PoseNet.load(f)
