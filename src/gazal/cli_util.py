"""Small helpers shared by command modules."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from gazal.io import DataError


def print_skipped(skipped: Sequence[DataError]) -> None:
    """Report every skipped input line on stderr."""
    if not skipped:
        return
    print(f"skipped {len(skipped)} invalid line(s):", file=sys.stderr)
    for err in skipped:
        print(f"  {err}", file=sys.stderr)
