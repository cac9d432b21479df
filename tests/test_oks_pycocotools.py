"""csipose.metrics.oks against pycocotools' own COCOeval.computeOks."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from csipose import metrics
from csipose.skeleton import COCO17

pycocotools = pytest.importorskip("pycocotools")
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402


def coco_oks(pred, gt, flags, area, bbox) -> np.ndarray:
    """OKS of detection i against ground truth i, one image each, through COCOeval."""
    n = len(gt)
    images = [{"id": i + 1} for i in range(n)]
    anns = []
    for i in range(n):
        kp = np.concatenate([gt[i].astype(np.float64), flags[i][:, None]], axis=1)
        anns.append(
            {
                "id": i + 1, "image_id": i + 1, "category_id": 1, "iscrowd": 0,
                "keypoints": kp.reshape(-1).tolist(), "num_keypoints": int((flags[i] > 0).sum()),
                "area": float(area[i]), "bbox": [float(x) for x in bbox[i]],
            }
        )  # fmt: skip
    coco_gt = COCO()
    coco_gt.dataset = {
        "images": images,
        "annotations": anns,
        "categories": [{"id": 1, "name": "person"}],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt.createIndex()
        dets = [
            {
                "image_id": i + 1, "category_id": 1, "score": 1.0,
                "keypoints": np.concatenate([pred[i].astype(np.float64), np.ones((17, 1))], 1)
                .reshape(-1).tolist(),
            }
            for i in range(n)
        ]  # fmt: skip
        coco_dt = coco_gt.loadRes(dets)
        ev = COCOeval(coco_gt, coco_dt, "keypoints")
        ev.params.imgIds = [i + 1 for i in range(n)]
        ev._prepare()
    return np.array([ev.computeOks(i + 1, 1)[0, 0] for i in range(n)])


@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 12))
def test_oks_equals_pycocotools(seed, n):
    rng = np.random.default_rng(seed)
    gt = rng.uniform(0, 200, (n, 17, 2)).astype(np.float32)
    pred = (gt + rng.normal(0, rng.uniform(0.1, 30), gt.shape)).astype(np.float32)
    flags = rng.choice([0, 1, 2], size=(n, 17), p=[0.3, 0.3, 0.4])
    flags[0] = 0  # one ground truth without a labelled joint: COCO's ignore-box rule
    area = rng.uniform(10, 4e4, n)
    bbox = np.column_stack([rng.uniform(0, 100, (n, 2)), rng.uniform(1, 100, (n, 2))])
    ours = metrics.oks(pred, gt, visible=flags, area=area, sigmas=COCO17, bbox=bbox)
    np.testing.assert_allclose(ours, coco_oks(pred, gt, flags, area, bbox), rtol=1e-12, atol=1e-300)
