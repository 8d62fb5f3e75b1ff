"""Line plots of run metrics (matplotlib, non-interactive Agg backend), written atomically."""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from gazal.io import atomic_write_bytes

__all__ = ["line_plot", "metric_series"]

Series = Mapping[str, Sequence[tuple[float, float]]]


def metric_series(records: Iterable[Mapping[str, Any]], key: str, x: str = "step"
                  ) -> list[tuple[float, float]]:
    """(x, value) points of ``key`` over records that hold a finite number for both."""
    points = []
    for r in records:
        v, s = r.get(key), r.get(x)
        if isinstance(v, int | float) and isinstance(s, int | float) and v == v \
                and abs(v) != float("inf"):
            points.append((float(s), float(v)))
    return points


def line_plot(series: Series, png_path: str | Path, *, title: str = "",
              xlabel: str = "optimizer step", ylabel: str = "",
              hlines: Mapping[str, float] | None = None) -> bool:
    """Draw each non-empty series as a line; False (and no file) when there is nothing."""
    series = {k: v for k, v in series.items() if v}
    if not series:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for label, points in series.items():
        xs, ys = zip(*points, strict=True)
        ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, markersize=3, label=label)
    for label, y in (hlines or {}).items():
        ax.axhline(y, linestyle="--", linewidth=1, color="grey", label=label)
    ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if len(series) + len(hlines or {}) > 1:
        ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(png_path, buf.getvalue())
    return True
