"""Trainer callbacks shared by SFT and GRPO: durable ``metrics.jsonl`` and a loss-curve PNG.

``metrics.jsonl`` gets one record per trainer log (``step``, ``epoch``, every numeric log
value, wall ``time``), appended, flushed and fsynced as it happens, so a crash loses at most
the line being written. On resume, records logged after the checkpoint being resumed are
dropped first: those steps run again and log again, so the file never holds a step twice.

The loss curve (``loss_curve.png``) is redrawn from ``metrics.jsonl`` at every checkpoint
and at the end, with matplotlib's non-interactive Agg backend, and written atomically.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from gazal.io import ResumableJsonlWriter, atomic_write_jsonl, iter_jsonl
from gazal.report.plots import line_plot, metric_series

__all__ = ["LossCurveCallback", "MetricsJsonlCallback", "plot_loss_curve"]


class MetricsJsonlCallback(TrainerCallback):
    """Append every trainer log to ``path`` durably (see the module docstring)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._writer: ResumableJsonlWriter | None = None

    def _open(self, state) -> None:
        # Called at the first step, not at on_train_begin: transformers fires on_train_begin
        # before it loads the resumed checkpoint's state, so global_step is only right here.
        if self.path.exists():
            with ResumableJsonlWriter(self.path) as previous:
                records = previous.records
            keep = [r for r in records if int(r.get("step", 0)) <= state.global_step]
            if len(keep) != len(records):
                atomic_write_jsonl(self.path, keep)
        self._writer = ResumableJsonlWriter(self.path)

    def on_step_begin(self, args, state, control, **kwargs):
        if self._writer is None and state.is_world_process_zero:
            self._open(state)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or not state.is_world_process_zero:
            return
        if self._writer is None:
            self._open(state)
        record: dict[str, Any] = {"step": state.global_step,
                                  "epoch": round(state.epoch or 0.0, 6)}
        for key, value in logs.items():
            if isinstance(value, bool | int | str) or value is None:
                record[key] = value
            elif isinstance(value, float):
                record[key] = value if math.isfinite(value) else str(value)
        record["time"] = round(time.time(), 3)
        self._writer.append(record)

    def on_train_end(self, args, state, control, **kwargs):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class LossCurveCallback(TrainerCallback):
    """Redraw ``png_path`` from ``metrics_path`` at each checkpoint and at the end."""

    def __init__(self, metrics_path: str | Path, png_path: str | Path, title: str = "",
                 series: Mapping[str, str] | None = None, ylabel: str = "loss"):
        self.metrics_path, self.png_path, self.title = Path(metrics_path), Path(png_path), title
        self.series, self.ylabel = series, ylabel

    def _draw(self, state) -> None:
        if not state.is_world_process_zero or not self.metrics_path.exists():
            return
        records = [r for _, r in iter_jsonl(self.metrics_path, skip_invalid=True)]
        plot_loss_curve(records, self.png_path, title=self.title, series=self.series,
                        ylabel=self.ylabel)

    def on_save(self, args, state, control, **kwargs):
        self._draw(state)

    def on_train_end(self, args, state, control, **kwargs):
        self._draw(state)


LOSS_SERIES = {"loss": "train loss", "eval_loss": "eval loss"}


def plot_loss_curve(records: Sequence[Mapping[str, Any]], png_path: str | Path,
                    title: str = "", series: Mapping[str, str] | None = None,
                    ylabel: str = "loss") -> bool:
    """Draw metrics against step (default: training ``loss`` and ``eval_loss``; ``series``
    maps other record keys to labels); False when nothing to draw."""
    labels = dict(series or LOSS_SERIES)
    return line_plot({label: metric_series(records, key) for key, label in labels.items()},
                     png_path, title=title, ylabel=ylabel)
