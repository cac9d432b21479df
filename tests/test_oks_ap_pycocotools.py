"""csipose.metrics.oks_ap against pycocotools' COCOeval(iouType='keypoints') on the same data."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from csipose import metrics
from csipose.metrics import Detections, GroundTruth
from csipose.skeleton import COCO17

pytest.importorskip("pycocotools")
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

K = 17


def coco_eval(dets: list[Detections], gts: list[GroundTruth], max_dets: int = 20) -> COCOeval:
    """Run COCOeval evaluate/accumulate/summarize in memory on our per-image arrays."""
    images = [{"id": i + 1} for i in range(len(gts))]
    anns = []
    for i, g in enumerate(gts):
        for j in range(len(g.areas)):
            kp = np.concatenate([g.keypoints[j], g.visibility[j][:, None]], axis=1)
            anns.append(
                {
                    "id": len(anns) + 1, "image_id": i + 1, "category_id": 1,
                    "iscrowd": int(g.iscrowd[j]), "keypoints": kp.reshape(-1).tolist(),
                    "num_keypoints": int((g.visibility[j] > 0).sum()),
                    "area": float(g.areas[j]), "bbox": [float(x) for x in g.bboxes[j]],
                }
            )  # fmt: skip
    categories = [{"id": 1, "name": "person"}]
    results = [
        {
            "image_id": i + 1, "category_id": 1, "score": float(s),
            "keypoints": np.concatenate([kp, np.ones((K, 1))], axis=1).reshape(-1).tolist(),
        }
        for i, d in enumerate(dets) for kp, s in zip(d.keypoints, d.scores, strict=True)
    ]  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = {"images": images, "annotations": anns, "categories": categories}
        coco_gt.createIndex()
        if results:
            coco_dt = coco_gt.loadRes(results)
        else:  # loadRes cannot take an empty list; an empty result set is this
            coco_dt = COCO()
            coco_dt.dataset = {"images": images, "annotations": [], "categories": categories}
            coco_dt.createIndex()
        ev = COCOeval(coco_gt, coco_dt, "keypoints")
        ev.params.maxDets = [max_dets]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def nan_for_minus_one(x: np.ndarray) -> np.ndarray:
    x = np.array(x, dtype=np.float64)
    x[x == -1] = np.nan
    return x


@st.composite
def scenes(draw):
    """Images with 0-5 people and 0-7 detections: near-copies of people (noise on
    the scale of the person), strays, duplicates; visibility flags 0/1/2 with
    some people unlabelled (ignored, scored against their bbox); crowds; areas
    small, medium and large including the exact range ends; tied scores."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_images = draw(st.integers(1, 6))
    tied_scores = draw(st.booleans())
    dets, gts = [], []
    for _ in range(n_images):
        g = int(rng.integers(0, 6))
        kp = rng.uniform(0, 400, (g, K, 2))
        vis = rng.choice([0, 1, 2], size=(g, K), p=[0.3, 0.3, 0.4])
        vis[rng.random(g) < 0.15] = 0
        areas = np.where(
            rng.random(g) < 0.2,
            rng.choice([32.0**2, 96.0**2, 0.0, 1e10], size=g),
            10 ** rng.uniform(2.0, 4.6, g),
        )
        bboxes = np.column_stack([rng.uniform(0, 300, (g, 2)), rng.uniform(1, 150, (g, 2))])
        crowd = rng.random(g) < 0.2
        gts.append(GroundTruth(kp, vis, areas, bboxes, crowd))
        p = int(rng.integers(0, 8))
        src = rng.integers(0, max(g, 1), p)
        noise = rng.choice([0.5, 3.0, 15.0, 60.0], size=(p, 1, 1))
        dk = rng.uniform(0, 400, (p, K, 2))
        if g:
            near = rng.random(p) < 0.75
            dk[near] = kp[src[near]] + rng.normal(0, 1, (near.sum(), K, 2)) * noise[near]
        scores = rng.choice([0.2, 0.5, 0.9], p) if tied_scores else rng.random(p)
        dets.append(Detections(dk, scores))
    return dets, gts


@given(scene=scenes(), max_dets=st.sampled_from([20, 20, 1, 3]))
def test_oks_ap_equals_cocoeval(scene, max_dets):
    dets, gts = scene
    ours = metrics.oks_ap(dets, gts, max_dets=max_dets)
    ev = coco_eval(dets, gts, max_dets)
    np.testing.assert_allclose(
        ours.precision, nan_for_minus_one(ev.eval["precision"][:, :, 0, :, 0]), rtol=1e-12
    )
    np.testing.assert_allclose(
        ours.recall, nan_for_minus_one(ev.eval["recall"][:, 0, :, 0]), rtol=1e-12
    )
    if max_dets == 20:  # COCOeval.summarize reads maxDets=20 only
        np.testing.assert_allclose(ours.stats, nan_for_minus_one(ev.stats), rtol=1e-12)


def test_special_cases_one_by_one():
    """Each rule on a scene small enough to check by hand, and against COCOeval."""
    rng = np.random.default_rng(3)
    person = rng.uniform(100, 300, (K, 2))
    vis = np.full(K, 2)
    big, medium = 150.0**2, 50.0**2
    box = [[100.0, 100.0, 200.0, 200.0]]
    gts = [
        # 0: one person, one exact detection and one duplicate (a false positive).
        GroundTruth([person], [vis], [big], box, [0]),
        # 1: no detections: the person is missed.
        GroundTruth([person], [vis], [medium], box, [0]),
        # 2: no ground truth: the detection is a false positive.
        GroundTruth(np.empty((0, K, 2)), np.empty((0, K)), [], np.empty((0, 4)), []),
        # 3: a crowd and an unlabelled person (both ignored): matching them is neutral.
        GroundTruth([person, person + 500], [vis, np.zeros(K)], [big, big], box * 2, [1, 0]),
    ]
    dets = [
        Detections([person, person], [0.9, 0.9]),  # tied scores
        Detections([], []),
        Detections([person], [0.95]),
        Detections([person, person + 500], [0.8, 0.7]),
    ]
    ours = metrics.oks_ap(dets, gts)
    ev = coco_eval(dets, gts)
    np.testing.assert_allclose(ours.stats, nan_for_minus_one(ev.stats), rtol=1e-12)
    # 2 people count, 1 is found at every threshold.
    assert ours["AR"] == pytest.approx(0.5) and ours["AR"].count == 2
    assert ours["AR"].excluded == 2
    # Medium range: the one medium person is missed; large: the one large is found.
    assert ours["ARm"] == 0.0 and ours["ARl"] == 1.0
    assert "NaN when no ground truth counts" in ours["AP"].definition
    d = ours.to_dict()
    assert d["AP"]["value"] == pytest.approx(float(ours["AP"])) and d["n_images"] == 4


def test_no_ground_truth_that_counts_gives_nan_where_cocoeval_gives_minus_one():
    person = np.zeros((K, 2))
    gts = [GroundTruth([person], [np.full(K, 2)], [10.0**2])]  # area below every AP range but 'all'
    dets = [Detections([person], [1.0])]
    ours = metrics.oks_ap(dets, gts)
    ev = coco_eval(dets, [g._replace(bboxes=[[0, 0, 1, 1]], iscrowd=[0]) for g in gts])
    assert np.isnan(ours["APm"]) and ev.stats[3] == -1
    np.testing.assert_allclose(ours.stats, nan_for_minus_one(ev.stats), rtol=1e-12)


def test_inputs_are_checked():
    person = np.zeros((K, 2))
    good_gt = GroundTruth([person], [np.ones(K)], [100.0])
    with pytest.raises(ValueError, match="1 detection entries but 2 images"):
        metrics.oks_ap([([person], [1.0])], [good_gt, good_gt])
    with pytest.raises(ValueError, match="finite"):
        metrics.oks_ap([([person + np.nan], [1.0])], [good_gt])
    with pytest.raises(ValueError, match="pass finite bboxes"):
        metrics.oks_ap([([person], [1.0])], [GroundTruth([person], [np.zeros(K)], [100.0])])
    with pytest.raises(ValueError, match=r"keypoints must have shape \[2, 17, 2\]"):
        metrics.oks_ap([([person], [1.0, 2.0])], [good_gt])
    with pytest.raises(ValueError, match="max_dets"):
        metrics.oks_ap([([person], [1.0])], [good_gt], max_dets=0)
    with pytest.raises(ValueError, match="sigmas"):
        metrics.oks_ap([([person], [1.0])], [good_gt], sigmas="h36m17")
    # Other skeletons work with explicit sigmas.
    r = metrics.oks_ap([([person[:3]], [1.0])], [([person[:3]], [np.ones(3)], [100.0])],
                       sigmas=COCO17.sigmas[:3])  # fmt: skip
    assert r["AP"] == pytest.approx(1.0)  # COCO divides by tp + fp + eps: never exactly 1
