"""Plain-text and markdown tables (console output and reports share one renderer)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["fmt_ci", "fmt_pct", "markdown_table", "text_table"]


def fmt_pct(x: float | None, digits: int = 1) -> str:
    """0.871 -> '87.1'; None -> '-'."""
    return "-" if x is None else f"{100 * x:.{digits}f}"


def fmt_ci(ci: Sequence[float] | None, digits: int = 1) -> str:
    """[0.85, 0.89] -> '85.0–89.0'."""
    if not ci:
        return "-"
    return f"{100 * ci[0]:.{digits}f}–{100 * ci[1]:.{digits}f}"


def _cells(rows: Sequence[Sequence[Any]]) -> list[list[str]]:
    return [["-" if c is None else str(c) for c in row] for row in rows]


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured markdown table."""
    body = _cells(rows)
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join("---" for _ in headers) + " |"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in body]
    return "\n".join(lines)


def _numeric(cell: str) -> bool:
    head = cell.strip().split(" ")[0].replace(",", "").replace("–", "").replace(".", "")
    return head == "-" or head.lstrip("+-").isdigit()


def text_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """An aligned plain-text table for the console."""
    body = _cells(rows)
    widths = [max(len(str(h)), *(len(r[i]) for r in body)) if body else len(str(h))
              for i, h in enumerate(headers)]
    numeric = [bool(body) and all(_numeric(r[i]) for r in body) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if numeric[i] else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()
    out = [line([str(h) for h in headers]), line(["-" * w for w in widths])]
    out += [line(r) for r in body]
    return "\n".join(out)
