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
* ``val_people`` (pose stores only, ``people_val=True``): the second-to-last
  subject of each training room: held-out people in the training rooms, for
  early stopping and checkpoint selection of a single run. Choosing the
  checkpoint on the validation room picks the first epochs' near-mean-pose
  weights (docs/generalisation.md), which loses what the model learns in the
  training rooms; the validation room stays for choosing between approaches.
* ``train``: everything else of the training rooms.

``data.split = "auto"`` (the default of ``csipose train`` and ``csipose count
train``) resolves to this split when a store has it (:func:`resolve_split`).

The simulator writes this split (named ``rooms``) into every store with at
least ``unseen + val + 1`` rooms; :func:`check` proves on a store that no
unseen room reaches the train, val or test parts.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import numpy as np

#: The split's name in a store's manifest.
NAME = "rooms"
#: Rooms held out as unseen, and held-out training rooms used for validation.
UNSEEN_ROOMS = 4
VAL_ROOMS = 1
#: The parts a model may look at (everything but the unseen rooms).
SEEN_PARTS = ("train", "val", "test", "val_people")
#: The split a store falls back to without this one (the simulator's "default").
FALLBACK = "default"


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
          unseen: int = UNSEEN_ROOMS, val: int = VAL_ROOMS,
          people_val: bool = False) -> dict[str, np.ndarray]:  # fmt: skip
    """Boolean masks over sequences (``room`` [n] in 0..rooms-1, ``group`` [n] in
    0..groups-1) for the parts train / val / test / unseen (and ``val_people``
    with ``people_val``); every sequence is in exactly one part. ``test`` holds
    each training room's last group (empty when a room has a single group),
    ``val_people`` the second-to-last (empty with fewer than 3 groups)."""
    roles = np.array(room_roles(rooms, unseen, val))
    room = np.asarray(room, np.int64)
    group = np.asarray(group, np.int64)
    role = roles[room]
    held = (role == "train") & (group == groups - 1) & (groups >= 2)
    out = {
        "train": (role == "train") & ~held,
        "val": role == "val",
        "test": held,
        "unseen": role == "unseen",
    }
    if people_val:
        out["val_people"] = (role == "train") & (group == groups - 2) & (groups >= 3)
        out["train"] = out["train"] & ~out["val_people"]
    return out


def resolve_split(split: str, splits: Collection[str]) -> str:
    """``split`` with "auto" resolved against the store's split names ``splits``: this
    protocol when the store has it, else ``"default"``."""
    if split == "auto":
        return NAME if NAME in splits else FALLBACK
    return split


def resolve_parts(val_part: str, test_parts: list[str],
                  names: Sequence[str]) -> tuple[str, list[str]]:  # fmt: skip
    """(val part, test parts) with the defaults filled in from the split's part ``names``
    (in the split's order):

    * val part "auto": ``val_people`` (held-out people of the training rooms) when the
      split has it, else ``val``;
    * test parts ``["auto"]``: every other part except ``train`` (for this protocol: the
      validation room, the in-room test and the unseen rooms, each reported on its own).
    """
    if val_part == "auto":
        val_part = "val_people" if "val_people" in names else "val"
    if test_parts == ["auto"]:
        test_parts = [p for p in names if p not in ("train", val_part)]
    return val_part, test_parts


def definition(rooms: int, unseen: int = UNSEEN_ROOMS, val: int = VAL_ROOMS,
               people_val: bool = False) -> str:  # fmt: skip
    first_val = rooms - unseen - val
    people = (
        "; val_people: the second-to-last subject of each (in-room early stopping)"
        if people_val
        else ""
    )
    return (
        f"leave-rooms-out: train: rooms 1..{first_val} without each room's last subject (or "
        f"counting repeat){people}; test: that last one (in-room, held-out people); val: rooms "
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


__all__ = ["FALLBACK", "NAME", "SEEN_PARTS", "UNSEEN_ROOMS", "VAL_ROOMS", "check", "definition",
           "parts", "resolve_parts", "resolve_split", "room_roles"]  # fmt: skip
