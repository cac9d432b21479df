"""No Rust panic may reach Python: every binding of csipose._native, and every
public wrapper, gets random shapes, dtypes, NaN, empty and huge arrays and must
answer with a result or a clear exception."""

from __future__ import annotations

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import csipose
from csipose import _native, metrics

CLEAR = (ValueError, TypeError, OverflowError, csipose.CsiposeError)

DTYPES = [np.float32, np.float64, np.int32, np.uint8, np.bool_, np.complex64, np.float16]
VALUES = [0.0, -0.0, 1.0, -1.5, 3.4e38, -3.4e38, 1e-45, np.nan, np.inf, -np.inf]


@st.composite
def arrays(draw, ndim=None, dims=None):
    """Any small array: a random dtype, rank and shape, with NaN/inf/huge values;
    sometimes non-contiguous, sometimes a huge zero-stride broadcast."""
    kind = draw(
        st.sampled_from(["plain", "plain", "plain", "strided", "broadcast", "scalar", "list"])
    )
    if kind == "scalar":
        return draw(st.sampled_from([None, 0, 3, -1, 2**70, 0.5, "x", (1, 2)]))
    if kind == "list":
        return draw(st.lists(st.sampled_from(VALUES), max_size=6))
    dtype = draw(st.sampled_from(DTYPES))
    nd = draw(st.integers(0, 4)) if ndim is None else ndim
    shape = tuple(draw(st.integers(0, 5)) if dims is None else dims[i] for i in range(nd))
    if kind == "broadcast" and nd >= 1:
        big = (10**7, *shape[1:])
        return np.broadcast_to(np.zeros((1, *shape[1:]), dtype), big)
    elems = st.sampled_from(VALUES) if np.dtype(dtype).kind in "fc" else None
    with np.errstate(over="ignore", invalid="ignore"):
        a = draw(
            hnp.arrays(dtype, shape, elements=elems)
            if elems is not None
            else hnp.arrays(dtype, shape)
        )
    if kind == "strided" and nd >= 1 and shape[0] > 1:
        a = a[::2]
    return a


@st.composite
def pose_like(draw):
    """Mostly valid float32 pose arrays (so the kernels themselves run), sometimes anything."""
    if draw(st.integers(0, 3)) == 0:
        return draw(arrays()), draw(arrays()), draw(arrays())
    n, k, d = draw(st.integers(0, 6)), draw(st.integers(0, 5)), draw(st.sampled_from([1, 2, 3, 4]))
    vals = st.sampled_from(VALUES)
    with np.errstate(over="ignore", invalid="ignore"):
        p = draw(hnp.arrays(np.float32, (n, k, d), elements=vals))
        g = draw(hnp.arrays(np.float32, (n, k, d), elements=vals))
    v = draw(st.none() | hnp.arrays(np.bool_, (n, k)) | arrays())
    return p, g, v


def survives(fn, *args, **kwargs):
    try:
        with np.errstate(all="ignore"):
            fn(*args, **kwargs)
    except CLEAR:
        pass
    except BaseException as e:  # a PanicException derives from BaseException
        pytest.fail(f"{fn.__name__} raised {type(e).__module__}.{type(e).__name__}: {e}")


SMALL_INTS = st.sampled_from([0, 1, 2, 16, -1, 2**63, 10**6])


@given(poses=pose_like(), data=st.data())
def test_joint_errors_binding_never_panics(poses, data):
    p, g, v = poses
    survives(
        _native.joint_errors, p, g, v,
        norm=data.draw(st.sampled_from([None, "torso", "bbox", "mmpose", "absolute", "nope"])),
        torso=data.draw(st.none() | st.tuples(SMALL_INTS, SMALL_INTS)),
        floor=data.draw(st.sampled_from([0.01, 0.0, -1.0, float("nan"), float("inf")])),
        factors=data.draw(st.none() | arrays(ndim=2)),
        thresholds=data.draw(st.none() | arrays(ndim=1)),
        root=data.draw(st.none() | SMALL_INTS),
        per_sample=data.draw(st.booleans()),
    )  # fmt: skip


@given(
    poses=pose_like(),
    alignment=st.sampled_from(["scale", "similarity", "procrustes"]),
    per=st.booleans(),
)
def test_aligned_errors_binding_never_panics(poses, alignment, per):
    p, g, v = poses
    survives(_native.aligned_errors, p, g, v, alignment=alignment, per_sample=per)


@given(poses=pose_like(), data=st.data())
def test_oks_binding_never_panics(poses, data):
    p, g, v = poses
    survives(
        _native.oks, p, g, v,
        sigmas=data.draw(arrays(ndim=1)),
        area=data.draw(st.none() | arrays(ndim=1)),
        bbox=data.draw(st.none() | arrays(ndim=2)),
    )  # fmt: skip


@given(n=st.sampled_from([0, 1, 2, 3, -1, 10**6, 2**64, "2", None, 1.5]))
def test_thread_settings_never_panic(n):
    survives(_native.set_num_threads, n)
    survives(csipose.set_num_threads, n)
    _native.set_num_threads(0)


@given(poses=pose_like(), data=st.data())
def test_public_wrappers_never_panic(poses, data):
    p, g, v = poses
    t = data.draw(st.sampled_from([0.2, 0.0, -1.0, float("nan"), 5.0]))
    norm = data.draw(st.sampled_from(metrics.NORMS))
    skel = data.draw(st.sampled_from([None, "coco17", "body25_15", "h36m17"]))
    survives(metrics.pck, p, g, threshold=t, norm=norm, skeleton=skel, visible=v)
    survives(metrics.pck_curve, p, g, data.draw(arrays()), norm=norm, skeleton=skel, visible=v)
    survives(metrics.mpjpe, p, g, visible=v, root=data.draw(st.none() | SMALL_INTS))
    survives(metrics.n_mpjpe, p, g, visible=v)
    survives(metrics.pa_mpjpe, p, g, visible=v, reduce=False)
    survives(
        metrics.oks, p, g, visible=v, area=data.draw(arrays()), bbox=data.draw(st.none() | arrays())
    )
    survives(metrics.accuracy_report, p, g, skeleton=skel or "coco17", visible=v)


def test_wrong_dtype_and_layout_give_clear_messages():
    p = np.zeros((2, 17, 2), np.float64)
    with pytest.raises(TypeError):
        _native.joint_errors(p, p)
    p32 = np.zeros((4, 17, 2), np.float32)
    with pytest.raises(ValueError, match="C-contiguous"):
        _native.joint_errors(p32[::2], p32[::2])
    with pytest.raises(ValueError, match="gt has shape"):
        _native.joint_errors(p32, np.zeros((4, 2, 17), np.float32))
    with pytest.raises(ValueError, match="2 or 3 coordinates"):
        _native.joint_errors(np.zeros((1, 2, 5), np.float32), np.zeros((1, 2, 5), np.float32))
    with pytest.raises(TypeError, match="real numbers"):
        metrics.mpjpe(np.zeros((1, 2, 2), complex), np.zeros((1, 2, 2)))
