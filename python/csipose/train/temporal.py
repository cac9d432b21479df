"""Training and prediction of the temporal pose model (``model.temporal = "sparse"``).

The model (:class:`csipose.models.temporal.TemporalPoseModel`) sees T
consecutive windows of one sequence (:mod:`csipose.train.sequences`) and
predicts every window's pose, causally. What differs from single-frame
training, and nothing else:

* a batch holds ``max(1, batch_size // T)`` sequences of T windows, so a step
  sees as many windows as a single-frame step (``train.batch_size`` counts
  windows in both), and an epoch draws one sequence per recording (or
  ``ceil(training windows / T)`` when recordings are longer than T): about as
  many windows, and as many steps, as a single-frame epoch;
* the loss is ``csipose.models.pose_loss`` over all B x T frames (a mean over
  frames), padding frames of short recordings masked out;
* prediction runs each run of consecutive windows of the part causally from its
  first window, so every window gets one prediction from itself and the windows
  before it, exactly what the model's stream returns window by window; the
  metrics are over the same windows as the single-frame model's.
"""

from __future__ import annotations

import json
from typing import Any, cast

import numpy as np
import torch

from csipose.train.config import Config
from csipose.train.data import PoseData
from csipose.train.loop import PoseTask, input_fields, model_input, scaled
from csipose.train.sequences import (
    SequenceDataset,
    SequenceSampler,
    per_epoch,
    runs,
    training_sequences,
)

#: model.temporal_options defaults: the upstream head (4 query heads sharing 1 key/value
#: head of dim 32; csipose.nn.SparsePattern's window 32, blocks of 16 with landmarks,
#: token 0 global, log-stride, causal) on a 64-wide residual stream.
DEFAULTS: dict[str, Any] = {"dim": 64, "q_heads": 4, "kv_heads": 1, "head_dim": 32}


def options(cfg: Config) -> dict[str, Any]:
    """The temporal block's resolved options: sizes, the pattern's fields, the sequence length."""
    from csipose.nn import SparsePattern

    o = {**DEFAULTS, **cfg.model.temporal_options}
    fields = {k: o.pop(k) for k in list(o) if k not in DEFAULTS}
    pattern = SparsePattern(**{**fields, "globals": tuple(fields.get("globals", (0,)))})
    return {**o, "pattern": {**pattern.native_args()}, "sequence": cfg.model.sequence}


def wrap(frame: torch.nn.Module, data: PoseData, cfg: Config) -> torch.nn.Module:
    """The temporal model around the single-frame model ``frame``."""
    from csipose.models.temporal import TemporalPoseModel
    from csipose.nn import SparsePattern

    o = options(cfg)
    p = o["pattern"]
    pattern = SparsePattern(**{**p, "globals": tuple(p["globals"])})
    return TemporalPoseModel(frame, data.keypoints, data.dims, dim=o["dim"], q_heads=o["q_heads"],
                             kv_heads=o["kv_heads"], head_dim=o["head_dim"], pattern=pattern)  # fmt: skip


def describe(cfg: Config) -> str:
    """One line naming the model kind, for reports."""
    if cfg.model.temporal == "none":
        return f"{cfg.model.name}, single-frame (one window -> its pose)"
    o = options(cfg)
    return (f"{cfg.model.name} + causal sparse temporal attention (dim {o['dim']}, {o['q_heads']} query / "
            f"{o['kv_heads']} key-value heads of {o['head_dim']}, pattern {json.dumps(o['pattern'])}); "
            "each window predicted from itself and the windows before it in its sequence")  # fmt: skip


def sequence_input(
    batch: dict[str, torch.Tensor], device: torch.device, features: Any, rooms: Any = None
) -> torch.Tensor:
    """Batches of sequences ``[B, T, L, A, S, P]`` as the temporal model's ``[B, T, C, W]``."""
    b, t = batch["amplitude"].shape[:2]
    x = model_input({k: v.flatten(0, 1) for k, v in batch.items()}, device, features, rooms)
    return x.reshape(b, t, *x.shape[1:])


def predict(model: torch.nn.Module, data: PoseData, indices: np.ndarray, batch_size: int,
            device: torch.device) -> np.ndarray:  # fmt: skip
    """Predictions [N, K, D] for windows ``indices`` (any order), in the data's units:
    each run of consecutive windows run causally from its first window."""
    idx = np.asarray(indices, np.int64)
    order = np.argsort(idx, kind="stable")
    pieces = runs(data.store, idx[order])
    pred = np.zeros((len(idx), data.keypoints, data.dims), np.float32)
    at = np.cumsum([0, *(len(r) for r in pieces)])  # where each run sits in idx[order]
    by_length: dict[int, list[int]] = {}
    for i, r in enumerate(pieces):
        by_length.setdefault(len(r), []).append(i)
    model.eval()
    with torch.no_grad():
        for n, members in sorted(by_length.items()):
            step = max(1, batch_size // n)
            for s in range(0, len(members), step):
                chunk = members[s : s + step]
                rows = np.concatenate([pieces[i] for i in chunk])
                g = data.store.gather(rows, fields=input_fields(data))
                b = {
                    k: torch.from_numpy(v.reshape(len(chunk), n, *v.shape[1:]))
                    for k, v in g.items()
                }
                out = (
                    model(sequence_input(b, device, data.features, data.rooms))
                    .float()
                    .cpu()
                    .numpy()
                )
                for j, i in enumerate(chunk):
                    pred[order[at[i] : at[i + 1]]] = out[j]
    return (pred * data.target_scale + data.mean_pose).astype(np.float32)


class TemporalPoseTask(PoseTask):
    """:class:`~csipose.train.loop.PoseTask` on sequences of T windows (module docstring)."""

    def start(self) -> None:
        super().start()  # DDP wrapper; the single-window loader is replaced below
        cfg, data = self.cfg, self.data
        t = cfg.model.sequence
        train_idx = data.parts[cfg.data.train_part]
        table, real = training_sequences(data.store, train_idx, t)
        self.sampler = SequenceSampler(len(table), per_epoch(data.store, train_idx, t), seed=cfg.train.seed,
                                       rank=self.rank, world_size=self.world)  # fmt: skip
        fields = [*input_fields(data), "keypoints", "visibility"]
        from csipose.data.loader import WindowDataset, make_loader

        # make_loader needs only __getitems__ (batches from one gather), which SequenceDataset has.
        dataset = cast(WindowDataset, SequenceDataset(data.store, table, real, fields))
        self.loader = make_loader(dataset, max(1, scaled(cfg)[0] // t),
                                  sampler=self.sampler, num_workers=cfg.data.workers,
                                  pin_memory=self.device.type == "cuda")  # fmt: skip
        # Validation is sharded by runs, never inside one: a window needs the ones before it.
        val = runs(data.store, data.parts[cfg.data.val_part])[self.rank :: self.world]
        self.val_idx = np.concatenate(val) if val else np.zeros(0, np.int64)

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        from csipose.models import pose_loss

        device, data = self.device, self.data
        x = sequence_input({k: v for k, v in batch.items() if k != "real"}, device, data.features,
                           data.rooms)  # fmt: skip
        y = (batch["keypoints"].to(device, non_blocking=True) - self.offset) / data.target_scale
        # Padding windows (the end of a short run) weigh nothing.
        v = batch["visibility"]
        vis = (v * batch["real"][..., None].to(v.dtype)).to(device, non_blocking=True)
        pred = self.net(x)
        return {
            "loss": pose_loss(
                pred.flatten(0, 1), y.flatten(0, 1), data.skeleton, visible=vis.flatten(0, 1)
            )
        }

    def metadata(self) -> dict[str, str]:
        # Resolved sizes and pattern, so a loader needs no copy of the defaults.
        return {**self.meta, "temporal": json.dumps(options(self.cfg), sort_keys=True)}
