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


def survives(fn, *args, clear=CLEAR, **kwargs):
    try:
        with np.errstate(all="ignore"):
            fn(*args, **kwargs)
    except clear:
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


# --- signal, simulator, store and shuffle bindings -----------------------------------
# Each draws either well-formed arrays with hostile values (so the kernel itself runs)
# or anything at all in each argument (so the argument checks run).


def f32_4d(draw, shape=None):
    shape = shape or tuple(draw(st.integers(0, 3)) for _ in range(4))
    with np.errstate(over="ignore", invalid="ignore"):
        return draw(hnp.arrays(np.float32, shape, elements=st.sampled_from(VALUES)))


@st.composite
def subcarrier_maps(draw, n_src):
    """(start, index, weight) in the binding's dtypes: usually a consistent CSR map,
    sometimes broken (index past n_src, start not monotone or not ending at nnz)."""
    n_out = draw(st.integers(0, 4))
    counts = draw(st.lists(st.integers(0, 3), min_size=n_out, max_size=n_out))
    start = np.concatenate([[0], np.cumsum(counts)]).astype(np.uint32)
    nnz = int(start[-1])
    index = np.array(
        draw(st.lists(st.integers(0, max(n_src - 1, 0)), min_size=nnz, max_size=nnz)), np.uint32
    )
    weight = np.array(draw(st.lists(st.sampled_from(VALUES), min_size=nnz, max_size=nnz)))
    breakage = draw(st.sampled_from(["none", "none", "index", "start", "short", "dtype"]))
    if breakage == "index" and nnz:
        index[0] = n_src + draw(st.sampled_from([0, 1, 2**31]))
    elif breakage == "start" and n_out:
        start[-1] = start[-1] + 5
    elif breakage == "short":
        weight = weight[:-1]
    elif breakage == "dtype":
        start = start.astype(np.int64)
    return start, index, weight


@given(data=st.data())
def test_sanitize_binding_never_panics(data):
    frames = f32_4d(data.draw) if data.draw(st.integers(0, 3)) else data.draw(arrays())
    survives(_native.sanitize_mmfi, frames)
    if isinstance(frames, np.ndarray) and frames.dtype == np.float32 and frames.ndim == 4:
        from csipose import signal

        survives(signal.sanitize, frames.copy())


@given(data=st.data())
def test_apply_subcarrier_map_binding_never_panics(data):
    x = f32_4d(data.draw) if data.draw(st.integers(0, 3)) else data.draw(arrays())
    n_src = x.shape[2] if isinstance(x, np.ndarray) and x.ndim == 4 else 3
    start, index, weight = data.draw(subcarrier_maps(n_src))
    n_out = max(len(start) - 1, 0) + data.draw(st.sampled_from([0, 0, 0, 1]))
    if isinstance(x, np.ndarray) and x.ndim == 4:
        out = np.zeros((x.shape[0], x.shape[1], n_out, x.shape[3]), np.float32)
    else:
        out = data.draw(arrays())
    if data.draw(st.integers(0, 5)) == 0:
        out = data.draw(arrays())
    survives(_native.apply_subcarrier_map, x, start, index, weight, out)


@given(data=st.data())
def test_multipath_response_binding_never_panics(data):
    if data.draw(st.integers(0, 3)):
        n, p = data.draw(st.integers(0, 4)), data.draw(st.integers(0, 4))
        mats = [
            data.draw(hnp.arrays(np.float64, (n, p), elements=st.sampled_from(VALUES)))
            for _ in range(3)
        ]
        if data.draw(st.booleans()):
            mats[data.draw(st.integers(0, 2))] = np.zeros((n + 1, p))
        index = data.draw(
            hnp.arrays(
                np.int32, data.draw(st.integers(0, 6)), elements=st.integers(-(2**31), 2**31 - 1)
            )
        )
    else:
        mats = [data.draw(arrays(ndim=2)) for _ in range(3)]
        index = data.draw(arrays(ndim=1))
    fc = data.draw(st.sampled_from([5.32e9, 0.0, -1.0, float("nan"), float("inf"), 1e300]))
    df = data.draw(st.sampled_from([312.5e3, 0.0, float("nan"), -1e300]))
    survives(_native.multipath_response, *mats, fc, df, index)


@given(data=st.data())
def test_shadowing_binding_never_panics(data):
    def f64(shape):
        return data.draw(hnp.arrays(np.float64, shape, elements=st.sampled_from(VALUES)))

    if data.draw(st.integers(0, 3)):
        n, links, paths, q, segs = (data.draw(st.integers(0, 3)) for _ in range(5))
        args = [
            f64((links, paths, 2, 2, 3)),
            f64((links, paths, 2)),
            f64((links, paths)),
            f64((n, q, 3)),
            data.draw(hnp.arrays(np.uint32, q, elements=st.integers(0, segs + 1))),
            f64(segs),
            f64(data.draw(st.sampled_from([segs, segs + 1]))),
        ]
        if data.draw(st.integers(0, 4)) == 0:
            args[data.draw(st.integers(0, 6))] = data.draw(arrays())
    else:
        args = [data.draw(arrays()) for _ in range(7)]
    wavelength = data.draw(st.sampled_from([0.056, 0.0, -1.0, float("nan"), float("inf")]))
    floor = data.draw(st.sampled_from([0.05, 0.0, -1.0, 2.0, float("nan")]))
    survives(_native.shadowing, *args, wavelength, floor)
    # Shared points: sample i is point point_index[i]; segments sampled three points each.
    if data.draw(st.booleans()) and isinstance(args[5], np.ndarray) and args[5].ndim == 1:
        args[4] = np.repeat(np.arange(len(args[5]), dtype=np.uint32), 3)
    index = data.draw(st.none() | hnp.arrays(np.uint32, data.draw(st.integers(0, 12)),
                                            elements=st.integers(0, 5)))  # fmt: skip
    survives(_native.shadowing, *args, wavelength, floor, data.draw(st.booleans()), index)


@given(data=st.data())
def test_synthesize_channel_binding_never_panics(data):
    def arr(dtype, shape):
        return data.draw(hnp.arrays(dtype, shape, elements=st.sampled_from(VALUES)))

    if data.draw(st.integers(0, 3)):
        f, pk, links, p, q, k = (data.draw(st.integers(0, 3)) for _ in range(6))
        args = [arr(np.float64, (links, p)) for _ in range(3)]
        args += [arr(np.float64, (f, links, p))]
        args += [arr(np.float64, (f * pk, links, q)) for _ in range(3)]
        args += [arr(np.float32, (links, k)) for _ in range(2)]
        if data.draw(st.integers(0, 4)) == 0:
            args[data.draw(st.integers(0, 8))] = data.draw(arrays())
        index = data.draw(hnp.arrays(np.int32, k, elements=st.integers(-(2**31), 2**31 - 1)))
    else:
        args = [data.draw(arrays()) for _ in range(9)]
        pk, index = data.draw(st.integers(0, 3)), data.draw(arrays(ndim=1))
    fc = data.draw(st.sampled_from([5.32e9, 0.0, float("nan"), 1e300]))
    survives(_native.synthesize_channel, *args, pk, fc, 312.5e3, index)


@given(data=st.data())
def test_impair_channel_binding_never_panics(data):
    if data.draw(st.integers(0, 3)):
        p, links, k, nics = (data.draw(st.integers(0, 3)) for _ in range(4))
        h = data.draw(hnp.arrays(np.float32, (p, links, k, 2), elements=st.sampled_from(VALUES)))
        nic = data.draw(hnp.arrays(np.uint32, links, elements=st.integers(0, 3)))
        s = data.draw(hnp.arrays(np.float64, k, elements=st.sampled_from(VALUES)))
        args = [h, nic, nics, s, data.draw(hnp.arrays(np.bool_, k))]
        if data.draw(st.integers(0, 4)) == 0:
            args[data.draw(st.sampled_from([0, 1, 3, 4]))] = data.draw(arrays())
    else:
        args = [data.draw(arrays()), data.draw(arrays()), data.draw(SMALL_INTS),
                data.draw(arrays()), data.draw(arrays())]  # fmt: skip
    n_fft, snr = (data.draw(st.sampled_from([64.0, 0.0, -1.0, np.nan, np.inf])) for _ in range(2))
    survives(_native.impair_channel, *args, n_fft, snr, data.draw(SMALL_INTS))
    survives(_native.impairment_draws, *(data.draw(SMALL_INTS) for _ in range(4)))


@given(data=st.data())
def test_pair_distances_binding_never_panics(data):
    if data.draw(st.integers(0, 3)):
        n, m, k, d = (data.draw(st.integers(0, 3)) for _ in range(4))
        poses = [  # float32, the kernel's input (VALUES' extremes become +-inf, 0)
            data.draw(hnp.arrays(np.float64, shape, elements=st.sampled_from(VALUES)))
            for shape in ((n, k, d), (m, k, d))
        ]
        with np.errstate(over="ignore"):
            args = [
                *(p.astype(np.float32) for p in poses),
                data.draw(hnp.arrays(np.bool_, (m, k))),
                np.array(data.draw(st.lists(st.integers(0, 4), max_size=3)), np.uint64),
                np.array(data.draw(st.lists(st.integers(0, 4), max_size=3)), np.uint64),
            ]
    else:
        args = [data.draw(arrays()) for _ in range(5)]
    survives(_native.pair_distances, *args)


@given(
    n=st.sampled_from([0, 1, 5, -1, 2**32 + 1, 2**63, 2**64 - 1, 2**64, "3", None, 2.0]),
    seed=st.sampled_from([0, 1, -1, 2**64 - 1, 2**64, None, "s"]),
)
def test_permutation_binding_never_panics(n, seed):
    survives(_native.permutation, n, seed)


def test_permutation_refuses_a_huge_n_without_allocating():
    # Without the cap this asked for 2^63 x 8 bytes and aborted the process.
    with pytest.raises(ValueError, match="above the limit"):
        _native.permutation(2**63, 0)
    with pytest.raises(ValueError, match="above the limit"):
        _native.permutation(2**32 + 1, 0)
    with pytest.raises(OverflowError):
        _native.permutation(-1, 0)


def test_permutation_releases_the_gil():
    from gil import calls_during

    perm, during, _ = calls_during(lambda: _native.permutation(3_000_000, 1), lambda: 1 + 1)
    assert len(perm) == 3_000_000 and during > 0


@pytest.fixture(scope="module")
def mapped(tmp_path_factory):
    from stores import make_store

    path, _ = make_store(tmp_path_factory.mktemp("fuzz") / "s")
    files = [(p.stem, p) for p in sorted(path.glob("*.npy"))]
    return _native.MappedStore(files), dict(files)


@st.composite
def index_arrays(draw):
    if draw(st.integers(0, 4)) == 0:
        return draw(arrays())
    values = st.sampled_from([0, 1, 2, 20, 21, -1, -(2**63), 2**63 - 1])
    return draw(hnp.arrays(np.int64, draw(st.integers(0, 5)), elements=values))


def test_a_map_to_no_subcarriers_is_an_error_not_a_panic(mapped):
    # Found by the fuzz test below: moments() panicked on a zero chunk size.
    store, _ = mapped
    empty = (np.array([0], np.uint32), np.array([], np.uint32), np.array([], np.float64))
    with pytest.raises(ValueError, match="nothing to compute"):
        store.moments("amplitude", np.array([0, 1], np.int64), minmax=False, map=empty)
    with pytest.raises(ValueError, match="nothing to compute"):
        out = np.zeros((2, 1, 3, 0, 5), np.float32)
        store.gather_windows("amplitude", np.array([0, 1], np.int64), 1, out, map=empty)


@given(data=st.data())
def test_mapped_store_methods_never_panic(mapped, data):
    store, _ = mapped
    # A name the store does not hold is a KeyError by design (a mapping lookup).
    clear = (*CLEAR, KeyError)
    name = data.draw(st.sampled_from(["amplitude", "phase", "keypoints", "valid", "nope", ""]))
    survives(store.shape, name, clear=clear)
    survives(store.dtype, name, clear=clear)
    idx = data.draw(index_arrays())
    length = data.draw(st.sampled_from([0, 1, 2, 5, 10**9, -1]))
    if data.draw(st.integers(0, 3)):
        out_shape = (len(idx) if isinstance(idx, np.ndarray) and idx.ndim == 1 else 1,
                     max(min(length, 3), 0), 3, data.draw(st.sampled_from([8, 3, 0])), 5)  # fmt: skip
        out = np.zeros(out_shape, np.float32)
    else:
        out = data.draw(arrays())
    amap = data.draw(st.none() | subcarrier_maps(8))
    # z-score statistics: per (antenna, output subcarrier) = 24 values when right.
    z_len = data.draw(st.sampled_from([24, 9, 0]))
    z_arr = hnp.arrays(np.float64, z_len, elements=st.sampled_from(VALUES))
    zs = data.draw(st.none() | st.tuples(z_arr, z_arr))
    minmax = data.draw(st.booleans())
    survives(
        store.gather_windows,
        name,
        idx,
        length,
        out,
        minmax=minmax,
        map=amap,
        zscore=zs,
        clear=clear,
    )
    rows_out = (
        np.zeros((len(idx), data.draw(st.sampled_from([480, 4, 0]))), np.uint8)
        if isinstance(idx, np.ndarray) and idx.ndim == 1 and data.draw(st.booleans())
        else data.draw(arrays())
    )
    survives(store.gather_rows, name, idx, rows_out, clear=clear)
    survives(store.moments, name, idx, minmax=minmax, map=amap, clear=clear)


@given(
    files=st.lists(
        st.tuples(
            st.sampled_from(["a", "b"]), st.sampled_from(["empty", "text", "missing", "npy"])
        ),
        max_size=3,
    )
)
def test_mapped_store_open_never_panics(tmp_path_factory, files):
    d = tmp_path_factory.mktemp("open")
    (d / "empty.npy").write_bytes(b"")
    (d / "text.npy").write_bytes(b"\x93NUMPY\x01\x00{'descr': '<f4', 'fortran_order': True, }")
    np.save(d / "npy.npy", np.zeros((2, 3), np.float32))
    survives(_native.MappedStore, [(n, d / f"{kind}.npy") for n, kind in files])
    survives(_native.MappedStore, files)


@given(data=st.data())
def test_window_gather_never_panics(mapped, data):
    store, _ = mapped
    # A name the store does not hold is a KeyError by design (a mapping lookup).
    clear = (*CLEAR, KeyError, IndexError)
    # Mostly a valid table (21 frames), sometimes anything.
    valid = st.sampled_from([0, 1, 2, 15])
    starts = data.draw(index_arrays() | hnp.arrays(np.int64, st.integers(0, 6), elements=valid))
    length = data.draw(st.sampled_from([0, 1, 2, 5, 10**9, -1]))
    offsets = data.draw(index_arrays() | st.sampled_from([np.array([0]), np.array([0, 1])]))
    fields = ["amplitude", "keypoints", "valid"]
    if data.draw(st.integers(0, 3)) == 0:
        fields = data.draw(st.lists(st.sampled_from(["amplitude", "keypoints", "valid", "nope"])))
    amap = data.draw(st.none() | subcarrier_maps(8))
    z_arr = hnp.arrays(np.float64, data.draw(st.sampled_from([24, 9, 0])),
                       elements=st.sampled_from(VALUES))  # fmt: skip
    zs = data.draw(st.none() | st.tuples(z_arr, z_arr))
    names = data.draw(st.lists(st.sampled_from(["amplitude", "phase", "valid", "nope"]), max_size=2)
                      | st.just(["amplitude"]))  # fmt: skip
    transforms = [(n, data.draw(st.booleans()), amap, zs) for n in names]
    try:
        g = _native.WindowGather(
            store, starts, length, offsets, data.draw(st.booleans()), fields, transforms
        )
    except clear:
        return
    except BaseException as e:  # a PanicException derives from BaseException
        pytest.fail(f"WindowGather raised {type(e).__name__}: {e}")
    idx = data.draw(index_arrays() | hnp.arrays(np.int64, st.integers(0, 4), elements=valid))
    gather = data.draw(st.lists(st.sampled_from(["amplitude", "keypoints", "valid", "nope"]),
                                max_size=3))  # fmt: skip
    outs = [data.draw(st.none() | arrays()) for _ in gather]
    if data.draw(st.booleans()) and isinstance(idx, np.ndarray) and idx.ndim == 1:
        n = len(idx)
        shapes = {"amplitude": (n, max(min(length, 3), 0), 3, 8, 5), "keypoints": (n, 17, 2),
                  "valid": (n,)}  # fmt: skip
        dtypes = {"amplitude": np.float32, "keypoints": np.float32, "valid": np.bool_}
        outs = [np.zeros(shapes.get(f, (n,)), dtypes.get(f, np.float32)) for f in gather]
    survives(g.gather, idx, gather, outs, clear=clear)
