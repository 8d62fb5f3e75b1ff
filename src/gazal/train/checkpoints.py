"""Checkpoints and final adapters, shared by SFT and GRPO.

- :func:`find_resume_checkpoint`: the newest *complete* ``checkpoint-N`` of a run, validated
  before any training; a partial one (a kill mid-save) or a damaged one is set aside into
  ``checkpoints/.partial/`` with one log line, and training resumes from the one before;
- :func:`validate_checkpoint`: what "readable" means (state JSON parses, every adapter
  tensor reads, optimizer and scheduler states exist);
- :func:`save_final_adapter`: write the trained adapter + tokenizer atomically (temp
  folder, then rename), correct under multi-process training.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path
from typing import Any

from gazal.io import DataError

log = logging.getLogger("gazal")

__all__ = ["PARTIAL", "find_resume_checkpoint", "save_final_adapter", "validate_checkpoint"]

PARTIAL = ".partial"  # checkpoints/.partial/: where incomplete checkpoints are set aside
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")  # transformers' PREFIX_CHECKPOINT_DIR-N


def _engine_states(path: Path) -> tuple[bool, bool]:
    """(model weights, optimizer + scheduler) saved by DeepSpeed or FSDP in ``path``.

    transformers writes those instead of ``optimizer.pt`` / ``scheduler.pt``: DeepSpeed a
    ``global_stepN/`` folder named by a ``latest`` file (model, optimizer and scheduler),
    FSDP with SHARDED_STATE_DICT ``pytorch_model_fsdp_0/`` and ``optimizer_0/``.
    """
    latest = path / "latest"
    deepspeed = latest.is_file() and (path / latest.read_text().strip()).is_dir()
    fsdp_model = any(path.glob("pytorch_model_fsdp_*"))
    fsdp_optim = any(p.name.startswith("optimizer_") for p in path.iterdir())
    return deepspeed or fsdp_model, deepspeed or fsdp_optim


def validate_checkpoint(path: str | Path) -> None:
    """Raise :class:`DataError` unless ``path`` holds a checkpoint that can be resumed
    (plain, DeepSpeed or FSDP-sharded, as transformers writes them)."""
    path = Path(path)
    hint = (f"; delete {path} to resume from the previous checkpoint (or use a new output "
            "folder to start over)")
    state_file = path / "trainer_state.json"
    try:
        state = json.loads(state_file.read_text(encoding="utf-8"))
        int(state["global_step"])
    except FileNotFoundError:
        raise DataError(f"unreadable checkpoint: no trainer_state.json{hint}", path) from None
    except (ValueError, KeyError, TypeError) as err:
        raise DataError(f"unreadable checkpoint: trainer_state.json is damaged ({err}){hint}",
                        path) from None
    engine_model, engine_optim = _engine_states(path)
    weights = path / "adapter_model.safetensors"
    if not weights.is_file():
        if engine_model:
            return _check_plain_states(path, hint, engine_optim)
        raise DataError(f"unreadable checkpoint: no adapter_model.safetensors{hint}", path)
    try:
        from safetensors import safe_open

        with safe_open(str(weights), framework="pt") as handle:
            names = list(handle.keys())
            for name in names:  # reads every tensor: a torn file fails here, not mid-run
                handle.get_tensor(name)
    except Exception as err:  # safetensors raises its own error types
        raise DataError(f"unreadable checkpoint: adapter_model.safetensors cannot be read "
                        f"({err}){hint}", path) from None
    _check_plain_states(path, hint, engine_optim)


def _check_plain_states(path: Path, hint: str, engine_optim: bool) -> None:
    if engine_optim:  # DeepSpeed / FSDP keep optimizer (and DeepSpeed scheduler) states
        return
    for name in ("optimizer.pt", "scheduler.pt"):
        if not (path / name).is_file():
            raise DataError(f"unreadable checkpoint: no {name} (resuming without it would "
                            f"restart the optimizer){hint}", path)


def find_resume_checkpoint(checkpoints_dir: str | Path, *, set_aside: bool = True
                           ) -> Path | None:
    """The newest complete ``checkpoint-N`` in ``checkpoints_dir`` (validated), or None.

    A newer one that does not validate (a kill while the trainer saved it leaves no
    ``trainer_state.json``, which transformers writes last; a torn or damaged file) is moved
    to ``checkpoints_dir/.partial/checkpoint-N`` with one warning, so the trainer's own
    checkpoint search and rotation never see it, and the search goes on with the one before.
    ``set_aside=False`` (the non-main processes of a multi-process run) only skips such
    folders: the main process moves them, and every process reaches the same answer.
    """
    checkpoints_dir = Path(checkpoints_dir)
    if not checkpoints_dir.is_dir():
        return None
    found = sorted(((int(m.group(1)), p) for p in checkpoints_dir.iterdir()
                    if (m := _CHECKPOINT.match(p.name)) and p.is_dir()), reverse=True)
    for _step, path in found:
        try:
            validate_checkpoint(path)
        except (DataError, OSError) as err:  # OSError: the main process moved it meanwhile
            if set_aside:
                _set_aside(path, err)
            continue
        return path
    return None


def _set_aside(path: Path, err: Exception) -> None:
    """Move an incomplete checkpoint into ``.partial/`` beside it (kept for inspection)."""
    dest_dir = path.parent / PARTIAL
    dest_dir.mkdir(exist_ok=True)
    dest, n = dest_dir / path.name, 1
    while dest.exists():
        n += 1
        dest = dest_dir / f"{path.name}.{n}"
    try:
        path.rename(dest)
    except FileNotFoundError:
        return
    reason = getattr(err, "reason", str(err)).split("; delete")[0]
    log.warning("%s is incomplete (%s, as a kill while it was saved leaves it); set it aside "
                "as %s and resuming from the previous checkpoint; delete it when not needed",
                path, reason, dest)


def save_final_adapter(trainer: Any, dest: Path) -> None:
    """Save the final adapter + tokenizer into a temp folder beside ``dest``, then rename.

    Every process calls ``trainer.save_model`` (DeepSpeed ZeRO-3 / FSDP gather the weights
    there); only the main process writes and renames. Under FSDP with sharded state dicts
    (fast checkpoints) transformers' ``save_model`` writes nothing, so the final save switches
    to a full state dict first, as PEFT's FSDP examples do. A save that produced no adapter
    is an error, not an empty folder.
    """
    tmp = dest.with_name(f".{dest.name}.tmp")
    main = trainer.is_world_process_zero()
    if main and tmp.exists():
        shutil.rmtree(tmp)
    trainer.accelerator.wait_for_everyone()
    if getattr(trainer, "is_fsdp_enabled", False):
        plugin = trainer.accelerator.state.fsdp_plugin
        if "FULL_STATE_DICT" not in str(plugin.state_dict_type):
            plugin.set_state_dict_type("FULL_STATE_DICT")
    trainer.save_model(str(tmp))  # adapter (safetensors) + tokenizer + chat template
    if main and not (tmp / "adapter_model.safetensors").is_file():
        raise DataError("the trainer saved no adapter_model.safetensors (under DeepSpeed "
                        "ZeRO-3 set zero3_save_16bit_model: true in the accelerate config)",
                        tmp)
    if main:
        # the pickled TrainingArguments stay in the checkpoints; the adapter folder holds only
        # safetensors, JSON and text
        (tmp / "training_args.bin").unlink(missing_ok=True)
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
    trainer.accelerator.wait_for_everyone()
