"""Converters into the csipose store: ``csipose convert <format> SRC OUT [options]``.

Each converter module defines ``CONVERTER``, a :class:`Converter`; the
modules listed in ``_MODULES`` are loaded on first use. A converter builds the
store with :class:`csipose.data.writer.StoreWriter`, so a failed or
interrupted conversion leaves no partial store behind.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Converter", "convert", "converters"]

_MODULES: tuple[str, ...] = ("mmfi", "wiflow", "jsonl", "esp32", "intel5300", "atheros", "nexmon")


@dataclass(frozen=True)
class Converter:
    """One input format: its name, a help line, its options and the conversion."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[Path, Path, argparse.Namespace], Path]


def converters() -> dict[str, Converter]:
    """Every available converter by format name."""
    found = {}
    for module in _MODULES:
        conv = importlib.import_module(f"csipose.data.convert.{module}").CONVERTER
        found[conv.name] = conv
    return found


def convert(fmt: str, src: str | Path, out: str | Path, **options: object) -> Path:
    """Convert ``src`` in format ``fmt`` into a store at ``out``; options as on the command line."""
    convs = converters()
    if fmt not in convs:
        raise ValueError(f"unknown format {fmt!r}; known: {', '.join(sorted(convs)) or 'none'}")
    parser = argparse.ArgumentParser(prog=f"csipose convert {fmt}")
    convs[fmt].add_arguments(parser)
    args = parser.parse_args([])
    for key, value in options.items():
        if not hasattr(args, key):
            raise TypeError(f"converter {fmt!r} has no option {key!r}")
        setattr(args, key, value)
    return convs[fmt].run(Path(src), Path(out), args)
