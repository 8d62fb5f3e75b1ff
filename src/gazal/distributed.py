"""Which process am I, before any trainer exists.

``accelerate launch``, ``torchrun`` and ``deepspeed`` export ``RANK`` / ``WORLD_SIZE`` /
``LOCAL_RANK`` to every process they start (MPI launchers export their own names); gazal reads
them so that only the main process writes run files and prints, from the first line of a run
on, not just once the trainer is built. gazal adds no distributed machinery of its own.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = [
    "broadcast_from_main",
    "gather_lists",
    "is_main_process",
    "multi_process_without_accelerator",
    "process_rank",
    "sharded_weights_engine",
    "world_size",
]

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


def sharded_weights_engine() -> str | None:
    """The engine's name when ``accelerate launch`` shards the model's weights over the
    processes (DeepSpeed ZeRO-3, FSDP), else None.

    Read from the environment accelerate exports to every process (``ACCELERATE_USE_FSDP``,
    ``ACCELERATE_USE_DEEPSPEED`` with ``ACCELERATE_DEEPSPEED_ZERO_STAGE`` or the stage in
    ``ACCELERATE_DEEPSPEED_CONFIG_FILE``), so it is known before any weights load. Under these
    engines every forward pass is a collective (each layer is all-gathered), so work that only
    some processes do, or that takes a different number of forwards per process, hangs.
    """
    def flag(name: str) -> bool:
        return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")

    if flag("ACCELERATE_USE_FSDP"):
        return "FSDP"
    if not flag("ACCELERATE_USE_DEEPSPEED"):
        return None
    stage = os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE", "").strip()
    config_file = os.environ.get("ACCELERATE_DEEPSPEED_CONFIG_FILE", "").strip()
    if not stage and config_file and config_file.lower() != "none":
        import json

        try:
            with open(config_file, encoding="utf-8") as f:
                stage = str(json.load(f).get("zero_optimization", {}).get("stage", ""))
        except (OSError, ValueError):
            stage = ""
    return "DeepSpeed ZeRO-3" if stage == "3" else None


# ----------------------------------------------------------------------------- collectives
# Small helpers over accelerate's collectives for the decisions every process must share
# (stop or go, a held-out result). Each one is a collective: every process must call it, at
# the same point. With one process they return their input.


def _state() -> Any:
    from accelerate import PartialState

    return PartialState()


def broadcast_from_main(value: Any) -> Any:
    """The main process's ``value`` (any picklable object), on every process."""
    state = _state()
    if state.num_processes <= 1:
        return value
    from accelerate.utils import broadcast_object_list

    box = [value if state.is_main_process else None]
    broadcast_object_list(box, from_process=0)
    return box[0]


def gather_lists(values: list[Any]) -> list[Any]:
    """Every process's list, concatenated in rank order, on every process."""
    state = _state()
    if state.num_processes <= 1:
        return list(values)
    from accelerate.utils import gather_object

    return list(gather_object(list(values)))


def close_process_group() -> None:
    """Wait for every process, then destroy the process group (a no-op without one).

    Call it on every process once a command has finished (or stopped on an agreed guard).
    A process that exits with its gloo or NCCL group still alive while another process is
    still tearing down can abort at interpreter exit (``terminate called without an active
    exception``, exit status -6 instead of the command's own status); the barrier makes the
    processes leave together and the explicit destroy joins the group's threads first.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return
    dist.barrier()
    dist.destroy_process_group()
