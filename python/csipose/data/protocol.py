"""The leave-rooms-out protocol: how well a model does in rooms it never saw.

    parts = store.split("rooms")   # {"train", "val", "test", "unseen"}: window indices

* ``unseen``: every sequence of the last ``unseen`` rooms (4 by default). These
  rooms are never used for any choice: not early stopping, not calibration,
  not model selection, not tuning. They are reported once, at the end, room by
  room (:mod:`csipose.metrics.by_group`).
* ``val``: every sequence of the ``val`` rooms before them: held-out
  *training* rooms, so that choices made on validation reward what carries
  over to another room, without ever looking at the unseen ones.
* ``test``: the last group (subject, or counting repeat) of each remaining
  training room: the in-room test of held-out people.
* ``train``: everything else of the training rooms.

The simulator writes this split (named ``rooms``) into every store with at
least ``unseen + val + 1`` rooms; :func:`check` proves on a store that no
unseen room reaches the train, val or test parts.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: The split's name in a store's manifest.
NAME = "rooms"
#: Rooms held out as unseen, and held-out training rooms used for validation.
UNSEEN_ROOMS = 4
VAL_ROOMS = 1
#: The parts a model may look at (everything but the unseen rooms).
SEEN_PARTS = ("train", "val", "test")


def room_roles(rooms: int, unseen: int = UNSEEN_ROOMS, val: int = VAL_ROOMS) -> list[str]:
    """The role of each room 0..rooms-1: "train", "val" or "unseen" (the last ones)."""
    if unseen < 1 or val < 1:
        raise ValueError(f"the protocol needs unseen >= 1 and val >= 1, got {unseen} and {val}")
    if rooms < unseen + val + 1:
        raise ValueError(
            f"the leave-rooms-out protocol needs at least {unseen + val + 1} rooms "
            f"({unseen} unseen, {val} validation, 1 or more training); got {rooms}"
        )
    first_val = rooms - unseen - val
    return [
        "train" if r < first_val else "val" if r < rooms - unseen else "unseen"
        for r in range(rooms)
    ]


def parts(room: np.ndarray, group: np.ndarray, rooms: int, groups: int,
          unseen: int = UNSEEN_ROOMS, val: int = VAL_ROOMS) -> dict[str, np.ndarray]:  # fmt: skip
    """Boolean masks over sequences (``room`` [n] in 0..rooms-1, ``group`` [n] in
    0..groups-1) for the parts train / val / test / unseen; every sequence is in
    exactly one part. ``test`` holds each training room's last group (empty when
    a room has a single group)."""
    roles = np.array(room_roles(rooms, unseen, val))
    room = np.asarray(room, np.int64)
    group = np.asarray(group, np.int64)
    role = roles[room]
    held = (role == "train") & (group == groups - 1) & (groups >= 2)
    return {
        "train": (role == "train") & ~held,
        "val": role == "val",
        "test": held,
        "unseen": role == "unseen",
    }


def definition(rooms: int, unseen: int = UNSEEN_ROOMS, val: int = VAL_ROOMS) -> str:
    first_val = rooms - unseen - val
    return (
        f"leave-rooms-out: train: rooms 1..{first_val} without each room's last subject (or "
        f"counting repeat); test: that last one (in-room, held-out people); val: rooms "
        f"{first_val + 1}..{rooms - unseen} (held-out training rooms, for every choice); unseen: "
        f"rooms {rooms - unseen + 1}..{rooms} (never used for any choice, reported room by room)"
    )


def check(store: Any, split: str = NAME) -> dict[str, set[str]]:
    """The rooms (environment names) of each part of ``split`` in ``store``; raises
    ``ValueError`` when an unseen room also appears in a part a model may look at."""
    p = store.split(split)
    names = np.array(store.manifest["metadata"]["environment"])
    env = store.array("environment")
    rooms = {}
    for part, idx in p.items():
        frames = store.label_frames(idx) if len(idx) else np.zeros(0, np.int64)
        rooms[part] = {str(n) for n in names[np.unique(env[np.asarray(frames).reshape(-1)])]}
    seen = set().union(*(rooms.get(k, set()) for k in SEEN_PARTS))
    leak = seen & rooms.get("unseen", set())
    if leak:
        raise ValueError(
            f"split {split!r}: unseen rooms {sorted(leak)} also appear in train/val/test"
        )
    return rooms


__all__ = ["NAME", "SEEN_PARTS", "UNSEEN_ROOMS", "VAL_ROOMS", "check", "definition", "parts",
           "room_roles"]  # fmt: skip
