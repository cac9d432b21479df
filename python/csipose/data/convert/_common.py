"""What every converter shares: opening the writer, reading .npy, progress bars, non-finite values."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from csipose.data.writer import StoreWriter
from csipose.errors import DataFormatError

T = TypeVar("T")


def open_store(
    out: Path, src: Path, args: argparse.Namespace, *, converter: str, options: dict[str, Any],
    **layout: Any,
) -> StoreWriter:  # fmt: skip
    """A StoreWriter at ``out`` whose provenance names the converter, the source and the options.

    ``overwrite`` comes from the CLI flag; ``convert()`` callers may set it as an option.
    """
    if not src.exists():
        raise FileNotFoundError(f"{src}: no such file or directory")
    return StoreWriter(
        out,
        provenance={"converter": converter, "source": str(src.resolve()), "options": options},
        overwrite=bool(getattr(args, "overwrite", False)),
        **layout,
    )


def load_npy(path: Path, mmap: bool = False) -> np.ndarray:
    """A .npy without pickles (memory-mapped if ``mmap``); a bad file is a DataFormatError naming it."""
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except FileNotFoundError:
        raise DataFormatError(f"{path}: missing") from None
    except (OSError, ValueError, EOFError) as e:
        raise DataFormatError(f"{path}: cannot read as .npy: {e}") from e


def progress(items: Iterable[T], *, total: int, desc: str, unit: str) -> Iterable[T]:
    """``items`` with a tqdm bar on stderr, only when stderr is a terminal."""
    if not sys.stderr.isatty():
        return items
    from tqdm import tqdm

    return tqdm(items, total=total, desc=desc, unit=unit)


def zero_nonfinite(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Set NaN/Inf in ``x`` (rows on axis 0) to 0 in place.

    Returns ``x``, the rows that held a non-finite value and how many values were set.
    """
    bad = ~np.isfinite(x)
    n = int(bad.sum())
    if n:
        x[bad] = 0
    return x, bad.reshape(len(x), -1).any(axis=1), n
