"""Skeleton tables: the torso is the right-shoulder / left-hip diagonal everywhere."""

import pytest

from csipose import skeleton
from csipose.skeleton import BODY25_15, COCO17, H36M17, Skeleton


@pytest.mark.parametrize(
    ("skel", "torso", "names"),
    [
        (BODY25_15, (2, 12), ("right_shoulder", "left_hip")),
        (COCO17, (6, 11), ("right_shoulder", "left_hip")),
        (H36M17, (14, 4), ("right_shoulder", "left_hip")),
    ],
)
def test_torso_pairs(skel, torso, names):
    assert skel.torso == torso
    assert (skel.joints[torso[0]], skel.joints[torso[1]]) == names


def test_tables_are_complete():
    assert [s.num_joints for s in (COCO17, H36M17, BODY25_15)] == [17, 17, 15]
    assert len(COCO17.bones) == 19 and len(H36M17.bones) == 16 and len(BODY25_15.bones) == 14
    assert COCO17.sigmas is not None and COCO17.sigmas[11] == 0.107
    assert H36M17.root == 0 and BODY25_15.root == 8 and COCO17.root is None
    assert H36M17.sigmas is None
    # Every joint of H36M-17 and BODY25-15 is reached by a bone (trees).
    for s in (H36M17, BODY25_15):
        assert {j for b in s.bones for j in b} == set(range(s.num_joints))
        assert len(s.bones) == s.num_joints - 1


def test_lookup_by_name_or_object():
    assert skeleton.get("coco17") is COCO17
    assert skeleton.get("BODY25-15") is BODY25_15
    assert skeleton.get(H36M17) is H36M17
    with pytest.raises(ValueError, match="known: coco17, h36m17, body25_15"):
        skeleton.get("openpose")
    with pytest.raises(TypeError):
        skeleton.get(17)  # type: ignore[arg-type]


def test_custom_skeletons_are_checked():
    with pytest.raises(ValueError, match="out of range"):
        Skeleton("bad", ("a", "b"), ((0, 2),), (0, 1))
    with pytest.raises(ValueError, match="sigmas"):
        Skeleton("bad", ("a", "b"), (), (0, 1), sigmas=(0.1,))
    with pytest.raises(ValueError, match="no joints"):
        Skeleton("bad", (), (), (0, 0))
