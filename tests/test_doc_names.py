"""Docs stay true: every dotted ``csipose.<module>.<name>`` that README.md, docs/*.md
or a docstring or comment in python/csipose mentions must import (a module) or
resolve (an attribute of one)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    *sorted((ROOT / "python" / "csipose").rglob("*.py")),
]
NAME = re.compile(r"(?<![\w./-])csipose(?:\.[A-Za-z_]\w*)+")

# Names of the planned layout (docs/architecture.md, "Planned layout"): documented
# before they exist. Remove an entry when its module lands; the test then checks it.
PLANNED: set[str] = set()  # modules a doc may name before they exist (none now)


def mentioned() -> dict[str, list[str]]:
    names: dict[str, list[str]] = {}
    for doc in DOCS:
        for m in NAME.finditer(doc.read_text()):
            name = m.group(0).rstrip(".")
            names.setdefault(name, []).append(str(doc.relative_to(ROOT)))
    return names


def resolves(name: str) -> bool:
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return False
        return True
    return False


NAMES = mentioned()


def test_the_docs_mention_names_at_all():
    assert len(NAMES) > 20  # the regex found them


@pytest.mark.parametrize("name", sorted(NAMES))
def test_every_documented_name_exists(name):
    if any(name == p or name.startswith(p + ".") for p in PLANNED):
        pytest.skip(f"{name} is part of the planned layout")
    assert resolves(name), f"{name} (in {', '.join(sorted(set(NAMES[name])))}) does not exist"
