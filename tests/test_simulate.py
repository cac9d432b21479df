"""The CSI simulator: physics kernels against oracles, determinism, profiles,
the MM-Fi round trip, and that pose is learnable in a room but not across rooms."""

from __future__ import annotations

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from csipose import _native, metrics
from csipose.cli import main
from csipose.data import Store
from csipose.data.convert import convert
from csipose.data.simulate import PROFILES, simulate
from csipose.data.simulate.actions import ACTIONS, perform
from csipose.data.simulate.body import Subject, forward_kinematics
from csipose.data.simulate.channel import SHADOW_FLOOR, shadowing, static_paths
from csipose.data.simulate.room import make_environment
from csipose.skeleton import H36M17

import reference as ref


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp("sim")
    out = simulate(root / "store", environments=2, subjects=2, actions=["walk", "squat"], frames=8,
                   seed=5, mmfi_tree=root / "tree")  # fmt: skip
    return out, root / "tree"


def test_same_seed_same_data_and_seeds_differ(tmp_path, small):
    path, _ = small
    again = simulate(
        tmp_path / "a", environments=2, subjects=2, actions=["walk", "squat"], frames=8, seed=5
    )
    other = simulate(
        tmp_path / "b", environments=2, subjects=2, actions=["walk", "squat"], frames=8, seed=6
    )
    for name in ("amplitude", "phase", "keypoints", "valid"):
        a, b = Store.open(path).array(name), Store.open(again).array(name)
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(
        Store.open(path).array("amplitude"), Store.open(other).array("amplitude")
    )


def test_mmfi_profile_store(small):
    path, _ = small
    s = Store.open(path)
    m = s.manifest
    assert m["arrays"]["amplitude"]["shape"][1:] == [3, 114, 10]
    assert m["labels"]["skeleton"] == "h36m17" and m["labels"]["units"] == "m"
    assert len(m["provenance"]["environments"]) == 2 and m["repair"]["rule"].startswith(
        "MM-Fi toolkit"
    )
    amp = s.array("amplitude")
    assert np.isfinite(amp).all() and (amp >= 0).all()
    kp = s.array("keypoints")
    assert 1.5 < np.median(kp[..., 2]) < 4.5  # depth in front of the camera, as MM-Fi's ~3.1 m
    parts = s.split("default")
    assert set(parts) == {"train", "val", "test", "test_unseen_env"}
    seq = np.array(m["metadata"]["sequence"])[s.array("sequence")[s.windows]]
    assert all(n.startswith("E02/") for n in seq[parts["test_unseen_env"]])
    assert all(n.startswith("E01/") for n in seq[parts["train"]])


def test_mmfi_tree_converts_to_the_same_store(small, tmp_path):
    path, tree = small
    conv = Store.open(convert("mmfi", tree, tmp_path / "conv"))
    sim = Store.open(path)
    key = lambda s: [  # noqa: E731
        (n.split("/")[0], n.split("/")[1], n.split("/")[2])
        for n in np.array(s.manifest["metadata"]["sequence"])
    ]
    acts = {"walk": "A01", "squat": "A02"}
    order = {(e, sub, a): i for i, (e, sub, a) in enumerate(key(conv))}
    mapping = np.array([order[(e, sub, acts[a])] for e, sub, a in key(sim)])
    c_rows = {
        (q, f): i
        for i, (q, f) in enumerate(
            zip(conv.array("sequence"), conv.array("frame_index"), strict=True)
        )
    }
    rows = [
        c_rows[(mapping[q], f)]
        for q, f in zip(sim.array("sequence"), sim.array("frame_index"), strict=True)
    ]
    for name in ("amplitude", "phase", "keypoints", "valid"):
        np.testing.assert_array_equal(sim.array(name), conv.array(name)[rows])


def test_esp32_profile_counts_people_and_zeroes_null_subcarriers(tmp_path):
    path = simulate(
        tmp_path / "e", profile="esp32", environments=2, subjects=3, sequences=1, frames=40
    )
    s = Store.open(path)
    assert s.window.length == 20
    counts = s.array("person_count")
    assert sorted(np.unique(counts).tolist()) == list(range(PROFILES["esp32"].max_people + 1))
    csi = s.manifest["csi"]
    nulls = np.isin(csi["subcarrier_indices"], csi["null_subcarriers"])
    assert nulls.sum() == 12 and np.all(s.array("amplitude")[:, :, nulls] == 0)
    vis = s.array("visibility")
    assert vis.shape[1:] == (5, 17)
    present = vis.any(axis=2).sum(axis=1)
    assert np.all(present <= counts)


def test_wiflow_profile_yields_540_by_20_windows(tmp_path):
    path = simulate(
        tmp_path / "w", profile="wiflow", environments=1, subjects=2, actions=["wave"], frames=40
    )
    s = Store.open(path)
    b = s.gather([0])
    window = b["amplitude"][0, :, :, :, 0].reshape(20, -1).T
    assert window.shape == (540, 20)
    assert b["keypoints"].shape == (1, 15, 2) and s.manifest["labels"]["units"] == "px/1000"


def test_bones_keep_their_length_and_feet_stay_on_the_floor():
    rng = np.random.default_rng(0)
    subject = Subject.random("S", rng)
    t = np.arange(200) / 10
    for action in ACTIONS:
        j = forward_kinematics(subject, perform(action, t, rng, np.array([2.0, 2.0]), 0.3))
        thigh = np.linalg.norm(j[:, 1] - j[:, 2], axis=-1)
        forearm = np.linalg.norm(j[:, 15] - j[:, 16], axis=-1)
        np.testing.assert_allclose(thigh, subject.thigh, rtol=1e-9)
        np.testing.assert_allclose(forearm, subject.forearm, rtol=1e-9)
        floor = np.minimum(j[:, 3, 2], j[:, 6, 2])
        assert np.all(floor >= subject.ankle_height - 1e-9), action
        if action != "jump":
            np.testing.assert_allclose(floor, subject.ankle_height, atol=1e-9)
    assert len(H36M17.bones) == 16


@given(data=st.data())
def test_shadowing_kernel_matches_the_numpy_oracle(data):
    links, p, n = (
        data.draw(st.integers(1, 2)),
        data.draw(st.integers(1, 3)),
        data.draw(st.integers(1, 2)),
    )
    q, segs = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 3))
    coords = st.floats(-3, 3)
    pieces = data.draw(hnp.arrays(np.float64, (links, p, 2, 2, 3), elements=coords))
    pieces[:, :, 1, 0] = pieces[:, :, 0, 1]  # the path is continuous
    first = np.linalg.norm(pieces[:, :, 0, 1] - pieces[:, :, 0, 0], axis=-1)
    length = first + np.linalg.norm(pieces[:, :, 1, 1] - pieces[:, :, 1, 0], axis=-1) + 1e-3
    offset = np.stack([np.zeros_like(first), first], -1)
    points = data.draw(hnp.arrays(np.float64, (n, q, 3), elements=coords))
    seg = data.draw(hnp.arrays(np.uint32, (q,), elements=st.integers(0, segs - 1)))
    radius = data.draw(hnp.arrays(np.float64, (segs,), elements=st.floats(0.01, 0.2)))
    block = data.draw(hnp.arrays(np.float64, (segs,), elements=st.floats(0, 0.9)))
    got = _native.shadowing(pieces, offset, length, points, seg, radius, block, 0.056, SHADOW_FLOOR)
    want = ref.shadowing(pieces, offset, length, points, seg, radius, block, 0.056, SHADOW_FLOOR)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


@given(data=st.data())
def test_multipath_kernel_matches_the_direct_sum(data):
    n, p = data.draw(st.integers(1, 4)), data.draw(st.integers(0, 20))
    tau = data.draw(hnp.arrays(np.float64, (n, p), elements=st.floats(1e-9, 1e-7)))
    g = data.draw(
        hnp.arrays(np.complex128, (n, p), elements=st.complex_numbers(max_magnitude=1e-2))
    )
    index = np.array(
        sorted(data.draw(st.sets(st.integers(-64, 64), min_size=1, max_size=20))), np.int32
    )
    re, im = _native.multipath_response(tau, np.ascontiguousarray(g.real), np.ascontiguousarray(g.imag),
                                        5.31e9, 312_500.0, index)  # fmt: skip
    np.testing.assert_allclose(
        re + 1j * im, ref.multipath(tau, g, 5.31e9, 312_500.0, index), atol=2e-8
    )


def test_a_person_on_the_line_of_sight_shadows_it():
    p = PROFILES["mmfi"]
    env = make_environment(p, 0, 0)
    static = static_paths(env, p, np.random.default_rng(0))
    subject = Subject.random("S", np.random.default_rng(1))
    middle = (env.tx.mean(axis=0) + env.rx.mean(axis=0))[:2] / 2
    pose = perform("wave", np.zeros(1), np.random.default_rng(2), middle, env.heading)
    pose.position[:] = middle  # exactly on the line of sight
    here = forward_kinematics(subject, pose)
    away = here + np.array([0.0, 0.0, 10.0])  # lifted far above the room
    on, off = (shadowing(static, j[:, None], subject.height, p.wavelength) for j in (here, away))
    assert on[0, :, 0].max() < 0.6  # line of sight of every link
    np.testing.assert_allclose(off, 1.0, atol=1e-4)


def krr_ratio(path, seed_subjects: int) -> tuple[float, float]:
    """Kernel ridge on amplitude and inter-antenna phase features, trained on the
    first room's first subjects: MPJPE over the mean-pose baseline's on the
    room's held-out subjects and on the second room."""
    s = Store.open(path, window={"length": 1})
    b = s.gather(
        np.arange(len(s)), fields=["amplitude", "phase", "keypoints", "environment", "subject"]
    )
    a, ph = b["amplitude"][:, 0].astype(np.float64), b["phase"][:, 0].astype(np.float64)
    amp = (a / np.sqrt((a**2).mean(axis=(1, 2, 3), keepdims=True))).mean(-1)
    rel = np.unwrap(ph, axis=2)
    rel = rel[:, 1:] - rel[:, :1]  # antenna differences cancel the carrier and timing offsets
    x = np.concatenate([amp.reshape(len(a), -1), np.cos(rel).mean(-1).reshape(len(a), -1),
                        np.sin(rel).mean(-1).reshape(len(a), -1)], axis=1)  # fmt: skip
    y = b["keypoints"].reshape(len(a), -1).astype(np.float64)
    env, subj = b["environment"], b["subject"]
    first = sorted(set(subj[env == 0]))
    train = (env == 0) & np.isin(subj, first[:seed_subjects])
    test, unseen = (env == 0) & ~train, env == 1
    ym, mu, sd = y[train].mean(0), x[train].mean(0), x[train].std(0) + 1e-9
    z = (x[train] - mu) / sd
    sq = (z**2).sum(1)

    def kernel(q):
        return np.exp(-0.5 * ((q**2).sum(1)[:, None] - 2 * q @ z.T + sq[None]) / z.shape[1])

    alpha = np.linalg.solve(kernel(z) + 0.1 * np.eye(len(z)), y[train] - ym)

    def ratio(mask):
        pred = (kernel((x[mask] - mu) / sd) @ alpha + ym).reshape(-1, 17, 3)
        gt = y[mask].reshape(-1, 17, 3)
        base = np.broadcast_to(ym.reshape(17, 3), gt.shape)
        return float(metrics.mpjpe(pred, gt)) / float(metrics.mpjpe(base, gt))

    return ratio(test), ratio(unseen)


def test_pose_is_learnable_in_a_room_and_shifts_between_rooms(tmp_path):
    path = simulate(tmp_path / "learn", environments=2, subjects=10, frames=40, seed=0)
    held_out, unseen = krr_ratio(path, 8)
    print(
        f"kernel ridge MPJPE / mean-pose MPJPE: held-out subjects {held_out:.3f}, unseen room {unseen:.3f}"
    )
    assert held_out <= 0.7
    assert unseen >= held_out + 0.25


def test_cli_simulate(tmp_path, capsys):
    assert main(["simulate", str(tmp_path / "c"), "--environments", "1", "--subjects", "1",
                 "--actions", "wave", "--frames", "4"]) == 0  # fmt: skip
    assert "wrote store" in capsys.readouterr().out
    assert main(["simulate", str(tmp_path / "d"), "--profile", "nope"]) == 2
    assert "unknown profile" in capsys.readouterr().err
