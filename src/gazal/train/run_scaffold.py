"""The scaffolding every training run shares (``gazal sft``, ``gazal grpo``): opening the run
directory, the data fingerprint a resume must match, the library versions, the summary.

- :func:`open_training_run`: ``recipe.output_dir`` opened for one run (a changed config is
  refused, a finished run is reported, not retrained; only the main process writes);
- :func:`check_data_fingerprint`: record what the run trains on in
  ``RUN/data_fingerprint.json``; a resume onto other data is refused (a recipe can stay the
  same while the file or Hub dataset behind it changes);
- :func:`versions`: the training libraries' versions, for ``summary.json``;
- :meth:`TrainingRun.write_summary`: ``RUN/summary.json``, written by the main process;
- :func:`whole_run_train_loss`: the summary's ``train_loss`` over every step, resumed or not.

Importable without torch: the training libraries are imported only by :func:`versions`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gazal.config import ConfigError
from gazal.io import atomic_write_json

__all__ = ["DATA_FINGERPRINT", "SUMMARY", "TrainingRun", "check_data_fingerprint",
           "finished_run_summary", "open_training_run", "versions", "whole_run_train_loss"]

SUMMARY = "summary.json"
DATA_FINGERPRINT = "data_fingerprint.json"


def finished_run_summary(run_dir: Path, adapter: str, echo: Any) -> dict[str, Any] | None:
    """The ``summary.json`` of a training run that already finished in ``run_dir`` (its
    adapter saved), after telling the user so; None when there is training left to do."""
    summary_path = run_dir / SUMMARY
    if not (summary_path.exists() and (run_dir / adapter / "adapter_config.json").exists()):
        return None
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    if not summary.get("complete"):
        return None
    echo(f"{run_dir} holds a finished run (step {summary.get('global_step')}); "
         f"its adapter is {run_dir / adapter}. Use a new output folder to train again.")
    return summary


@dataclass
class TrainingRun:
    """An opened training run directory (:func:`open_training_run`)."""

    dir: Path
    main: bool  # this process writes the run directory (global rank 0)
    echo: Callable[[str], None]  # the caller's echo on the main process, silent elsewhere
    finished: dict[str, Any] | None  # the summary of a run that already finished here

    @property
    def summary_path(self) -> Path:
        """``RUN/summary.json``."""
        return self.dir / SUMMARY

    def write_summary(self, summary: Mapping[str, Any]) -> None:
        """Write ``summary.json`` (atomically; on the main process only)."""
        if self.main:
            atomic_write_json(self.summary_path, summary)


def open_training_run(recipe: Any, *, resumable_keys: Any, command: str, adapter: str,
                      echo: Callable[[str], None]) -> TrainingRun:
    """Open ``recipe.output_dir`` for ``gazal sft`` / ``gazal grpo``: under several processes
    only the main one writes and prints; a changed config is refused
    (:func:`gazal.rundir.prepare_run_dir`); a finished run is reported, not retrained."""
    from gazal.distributed import is_main_process
    from gazal.rundir import prepare_run_dir

    main = is_main_process()
    if not main:
        echo = _silent
    run_dir = prepare_run_dir(recipe.output_dir, recipe, resumable_keys=resumable_keys,
                              command=command, write=main)
    return TrainingRun(run_dir, main, echo, finished_run_summary(run_dir, adapter, echo))


def _silent(_message: str) -> None:
    """``echo`` of the non-main processes."""


def check_data_fingerprint(run_dir: Path, now: Mapping[str, Any], *, resuming: bool,
                           counts: Mapping[str, str], what: str, unit: str = "",
                           write: bool = True) -> None:
    """Record ``now`` (fingerprints and counts of what the run trains on) in
    ``RUN/data_fingerprint.json``; when ``resuming``, refuse data other than the saved.

    ``counts`` maps each count key of ``now`` to its label in the message (e.g.
    ``{"n_train": "train", "n_eval": "eval"}``), ``what`` names the data ("the training
    data") and ``unit`` the counted things ("examples"), so each command's error speaks of
    its own data.
    """
    path = run_dir / DATA_FINGERPRINT
    now = dict(now)
    if resuming and path.exists():
        saved = json.loads(path.read_text(encoding="utf-8"))
        if saved != now:
            then = " / ".join(f"{saved.get(k)} {label}" for k, label in counts.items())
            current = " / ".join(str(now.get(k)) for k in counts)
            raise ConfigError(
                f"{run_dir}: {what} changed since the checkpoints were written "
                f"({then}{' ' + unit if unit else ''} then, {current} now, or the same counts "
                "with other content); use a new output folder, or restore the data to resume")
    if write:
        atomic_write_json(path, now)


def versions() -> dict[str, str]:
    """The versions of the training libraries (torch, transformers, peft, trl)."""
    import peft
    import torch
    import transformers
    import trl

    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "peft": peft.__version__, "trl": trl.__version__}


def whole_run_train_loss(records: Any, trainer_loss: float | None, *, resumed: bool
                         ) -> float | None:
    """The mean training loss over every step of the run.

    transformers' ``TrainOutput.training_loss`` averages only the steps this process trained,
    so after a resume it describes the last stretch, not the run. A resumed run's loss is
    therefore taken from ``metrics.jsonl`` (``records``: dicts with ``step`` and ``loss``,
    which hold every logged step once, the resumed ones included): each logged loss is the
    mean over its logging window, so weighting it by the window's length gives transformers'
    own formula over the whole run (exact when ``logging_steps`` divides the step count).
    """
    if not resumed:
        return trainer_loss
    points = sorted((int(r["step"]), float(r["loss"])) for r in records
                    if isinstance(r.get("loss"), int | float)
                    and isinstance(r.get("step"), int) and not isinstance(r["loss"], bool))
    total = steps = 0.0
    previous = 0
    for step, loss in points:
        if step <= previous:
            continue
        total += loss * (step - previous)
        steps += step - previous
        previous = step
    return total / steps if steps else trainer_loss
