"""The data layer: one on-disk store for every dataset, and converters into it.

* :mod:`csipose.data.manifest` -- the store format.
* :class:`StoreWriter` -- build a store (atomically).
* :mod:`csipose.data.convert` -- ``csipose convert <format> SRC OUT``.
"""

from csipose.data.writer import StoreWriter

__all__ = ["StoreWriter"]
