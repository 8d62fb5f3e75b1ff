"""The unit of every memory table the planner prints: :class:`MemoryRow` and :data:`GIB`."""

from __future__ import annotations

from dataclasses import dataclass

GIB = 1024 ** 3


@dataclass
class MemoryRow:
    """One line of a memory table."""

    name: str
    bytes: float
    note: str = ""
