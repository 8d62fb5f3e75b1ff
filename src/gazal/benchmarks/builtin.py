"""A few clinical MCQs that ship with gazal (``builtin_items.jsonl`` beside this module), for
when no benchmark files are present: merge's check batch, the demo's tiny tokenizer, the
sample responses of ``bench/`` and tests."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

from gazal.benchmarks.item import Item
from gazal.io import iter_jsonl

__all__ = ["builtin_items", "builtin_items_path"]


def builtin_items_path() -> Path:
    """The packaged file (src/gazal/benchmarks/builtin_items.jsonl)."""
    return Path(str(resources.files("gazal.benchmarks").joinpath("builtin_items.jsonl")))


@lru_cache(maxsize=1)
def _load() -> tuple[Item, ...]:
    path = builtin_items_path()
    return tuple(Item.from_dict(rec, path=path, line=line) for line, rec in iter_jsonl(path))


def builtin_items() -> list[Item]:
    """The built-in items, in file order (a new list each call)."""
    return list(_load())
