"""Which process am I, before any trainer exists.

``accelerate launch``, ``torchrun`` and ``deepspeed`` export ``RANK`` / ``WORLD_SIZE`` /
``LOCAL_RANK`` to every process they start (MPI launchers export their own names); gazal reads
them so that only the main process writes run files and prints, from the first line of a run
on, not just once the trainer is built. gazal adds no distributed machinery of its own.
"""

from __future__ import annotations

import os

__all__ = ["is_main_process", "multi_process_without_accelerator", "process_rank", "world_size"]

_RANK_VARS = ("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")
_SIZE_VARS = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")


def _first_int(names: tuple[str, ...], default: int) -> int:
    for name in names:
        value = os.environ.get(name)
        if value not in (None, ""):
            try:
                return int(value)
            except ValueError:
                continue
    return default


def process_rank() -> int:
    """Global rank of this process (0 when not launched as several processes)."""
    return _first_int(_RANK_VARS, 0)


def world_size() -> int:
    """Number of processes of the run (1 when not launched as several processes)."""
    return _first_int(_SIZE_VARS, 1)


def is_main_process() -> bool:
    """True on the process that writes the run directory and prints (global rank 0)."""
    return process_rank() == 0


def multi_process_without_accelerator() -> bool:
    """Several processes on a machine with no GPU (or other accelerator).

    transformers only trains data-parallel on CPU when told to (``use_cpu``); otherwise each
    process trains alone on all the data after initialising a process group, with nothing
    but a log warning. gazal turns ``use_cpu`` on in that case.
    """
    if world_size() <= 1:
        return False
    import torch

    accelerator = getattr(torch, "accelerator", None)
    if accelerator is not None and hasattr(accelerator, "is_available"):
        return not accelerator.is_available()
    return not torch.cuda.is_available()
