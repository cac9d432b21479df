"""The data layer: one on-disk store for every dataset, and converters into it.

* :class:`Store` -- open a store, window it, gather batches (Rust, memory-mapped).
* :class:`StoreWriter` -- build a store (atomically); the format is in :mod:`csipose.data.manifest`.
* :class:`WindowSpec`, :class:`CsiTransform`, :class:`ZScore` -- windows and load-time transforms.
* :mod:`csipose.data.convert` -- ``csipose convert <format> SRC OUT``.
* :mod:`csipose.data.loader` -- a torch Dataset and samplers over the Rust gather.
"""

from csipose.data.store import Store
from csipose.data.transform import CsiTransform, ZScore
from csipose.data.windows import WindowSpec
from csipose.data.writer import StoreWriter

__all__ = ["CsiTransform", "Store", "StoreWriter", "WindowSpec", "ZScore"]
