"""``gazal sft``: supervised fine-tuning with TRL's ``SFTTrainer`` and a PEFT DoRA + rsLoRA
adapter, into one run directory that resumes.

Run directory::

    RUN/config.yaml         the resolved recipe (a re-run must match it to resume)
    RUN/rejects.jsonl       every example not used: source, row, reason, detail
    RUN/metrics.jsonl       one record per trainer log (loss, grad_norm, learning_rate, ...)
    RUN/loss_curve.png      redrawn at every checkpoint and at the end
    RUN/checkpoints/        checkpoint-N folders (adapter, optimizer, scheduler, RNG, state)
    RUN/adapter/            the final adapter + tokenizer (chat template included)
    RUN/summary.json        what was trained, on what, the losses, where the adapter is

Re-running the same command resumes from the newest checkpoint (after checking it can be
read); a finished run is reported and not retrained.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gazal.config import ConfigError, config_to_dict
from gazal.data.sft_data import LoadedData, Reject, SFTExample, load_sft_data
from gazal.distributed import multi_process_without_accelerator
from gazal.io import DataError, atomic_write_jsonl, iter_jsonl
from gazal.train.callbacks import LossCurveCallback, MetricsJsonlCallback
from gazal.train.checkpoints import find_resume_checkpoint, save_final_adapter
from gazal.train.config import SFTRecipe, TrainSection
from gazal.train.model import build_lora_config, load_model, load_tokenizer
from gazal.train.run_scaffold import (
    check_data_fingerprint,
    open_training_run,
    versions,
    whole_run_train_loss,
)

log = logging.getLogger("gazal")

__all__ = [
    "RESUMABLE_KEYS",
    "build_sft_config",
    "build_trainer",
    "build_trl_configs",
    "run_sft",
]

# Keys a resumed run may change: they affect speed, logging or checkpoint cadence only.
RESUMABLE_KEYS = [f"train.{k}" for k in TrainSection.RESUMABLE] + ["sft.dataset_num_proc",
                                                                  "output_dir"]
CHECKPOINTS = "checkpoints"
ADAPTER = "adapter"


# --------------------------------------------------------------------------- configs


def build_sft_config(recipe: SFTRecipe, output_dir: str | Path, *, has_eval: bool,
                     check_only: bool = False) -> Any:
    """TRL ``SFTConfig`` of a recipe (no model or data needed).

    ``check_only`` builds it on a machine without the recipe's accelerator (``use_cpu``), so
    a GPU recipe (bf16) can be validated on a CPU machine; never train with that object.
    """
    import torch
    from trl import SFTConfig

    s, t = recipe.sft, recipe.train
    # Examples longer than max_length are dropped before training (never truncated), so
    # padding-free batches without packing need no max_length (TRL refuses one there).
    max_length = None if (s.padding_free and not s.packing) else s.max_length
    kwargs = t.to_trainer_kwargs(SFTConfig)
    kwargs.update(
        output_dir=str(output_dir),
        max_length=max_length,
        # Assistant-only loss is done as conversational prompt-completion with TRL's
        # completion-only loss: it needs no {% generation %} markers in the chat template
        # (the real Qwen3 template has none) and keeps the end-of-turn token in the labels.
        completion_only_loss=s.assistant_only_loss,
        assistant_only_loss=False,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=(t.eval_steps or t.save_steps) if has_eval else None,
        logging_first_step=True,
        disable_tqdm=False,
    )
    # the recipe's other SFTConfig keys (packing, padding_free, loss_type, ...), checked
    # against SFTConfig's fields when it loaded; they win over gazal's defaults above
    # (disable_tqdm), and the keys gazal must set are refused there (SFT_REFUSED)
    kwargs.update(s.extra)
    kwargs.update(t.extra)
    if t.gradient_checkpointing:
        kwargs.setdefault("activation_checkpointing_kwargs", {"use_reentrant": False})
    if check_only and not torch.cuda.is_available():
        kwargs["use_cpu"] = True  # transformers refuses bf16 without a GPU otherwise
    if multi_process_without_accelerator():
        # several CPU processes (accelerate launch / torchrun on a machine without GPUs):
        # without use_cpu transformers initialises a process group but each process trains
        # alone on all the data (it only logs a warning); use_cpu makes it data parallel (gloo)
        kwargs["use_cpu"] = True
    try:
        return SFTConfig(**kwargs)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"invalid training settings: {err}") from None


def build_trl_configs(recipe: SFTRecipe, output_dir: str | Path = "unused",
                      tokenizer: Any = None, has_eval: bool = False,
                      check_only: bool = False) -> tuple[Any, Any]:
    """(``SFTConfig``, ``LoraConfig``) of a recipe, built without any weights or data.

    ``lora.trainable_tokens`` need the tokenizer; without one they are left out. With
    ``check_only`` a GPU recipe is validated on a CPU machine (see :func:`build_sft_config`).
    """
    lora = recipe.lora
    if tokenizer is None and lora.trainable_tokens:
        import dataclasses

        lora = dataclasses.replace(lora, trainable_tokens=[])
    return (build_sft_config(recipe, output_dir, has_eval=has_eval, check_only=check_only),
            build_lora_config(lora, tokenizer))


# --------------------------------------------------------------------------- data


def drop_too_long(data: LoadedData, tokenizer: Any, max_length: int, split: str,
                  batch: int = 512, progress: bool = True) -> None:
    """Move examples longer than ``max_length`` tokens (chat template applied) to rejects."""
    from tqdm.auto import tqdm

    keep: list[SFTExample] = []
    examples = data.examples
    for start in tqdm(range(0, len(examples), batch), desc=f"measuring {split} lengths",
                      disable=not progress or len(examples) < 5 * batch, unit="batch"):
        chunk = examples[start:start + batch]
        texts = [tokenizer.apply_chat_template(e.messages, tokenize=False) for e in chunk]
        lengths = [len(ids) for ids in
                   tokenizer(texts, add_special_tokens=False)["input_ids"]]
        for ex, n in zip(chunk, lengths, strict=True):
            if n > max_length:
                data.rejects.append(Reject(ex.source, ex.row, "too_long",
                                           f"{n} tokens > sft.max_length {max_length}", ex.id,
                                           split))
            else:
                keep.append(ex)
    data.examples = keep


def _to_dataset(examples: Sequence[SFTExample], assistant_only_loss: bool) -> Any:
    from datasets import Dataset

    return Dataset.from_list([e.to_trl(assistant_only_loss) for e in examples])


# --------------------------------------------------------------------------- trainer


def _trainer_class() -> type:
    from transformers import Trainer
    from trl import SFTTrainer

    from gazal.train.model import output_head_is_plain

    class GazalSFTTrainer(SFTTrainer):
        """SFTTrainer that falls back to the model's own loss when PEFT wraps the output
        head.

        TRL 1.16 computes the loss with a fused LM head that reads ``lm_head.weight``
        directly; when PEFT wraps the head (trainable tokens on tied embeddings,
        ``modules_to_save``, LoRA on ``lm_head``) that skips the adapter's change to the head
        (and fails on the wrapper). The model's own forward applies it; the loss is the same
        token-level NLL (summed over label tokens / tokens in the batch).
        """

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if output_head_is_plain(model) or self.args.loss_type != "nll":
                return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                            num_items_in_batch=num_items_in_batch)
            inputs = {**inputs, "use_cache": False}
            return Trainer.compute_loss(self, model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)

    return GazalSFTTrainer


def _count_params(model: Any) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def build_trainer(recipe: SFTRecipe, model: Any, tokenizer: Any,
                  train_examples: Sequence[SFTExample], eval_examples: Sequence[SFTExample],
                  run_dir: str | Path, *, callbacks: Sequence[Any] = (),
                  configs: tuple[Any, Any] | None = None) -> Any:
    """The SFT trainer of a recipe on validated examples (datasets tokenised by TRL).

    ``configs``: the (``SFTConfig``, ``LoraConfig``) pair when already built (run_sft builds
    them before loading the weights); default: built here.
    """
    run_dir = Path(run_dir)
    has_eval = bool(eval_examples)
    sft_config, lora_config = configs or build_trl_configs(
        recipe, run_dir / CHECKPOINTS, tokenizer=tokenizer, has_eval=has_eval)
    train_ds = _to_dataset(train_examples, recipe.sft.assistant_only_loss)
    eval_ds = _to_dataset(eval_examples, recipe.sft.assistant_only_loss) if has_eval else None
    metrics_path = run_dir / "metrics.jsonl"
    return _trainer_class()(
        model=model, args=sft_config, train_dataset=train_ds, eval_dataset=eval_ds,
        processing_class=tokenizer, peft_config=lora_config,
        callbacks=[MetricsJsonlCallback(metrics_path),
                   LossCurveCallback(metrics_path, run_dir / "loss_curve.png",
                                     title=f"SFT {recipe.model.name_or_path}"),
                   *callbacks])


# --------------------------------------------------------------------------- run


def _loss_points(metrics_path: Path) -> list[tuple[int, float]]:
    if not metrics_path.exists():
        return []
    return [(r["step"], r["loss"]) for _, r in iter_jsonl(metrics_path, skip_invalid=True)
            if isinstance(r.get("loss"), int | float)]


def run_sft(recipe: SFTRecipe, *, callbacks: Sequence[Any] = (),
            echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Train (or resume) the recipe; returns the summary written to ``summary.json``.

    Under ``accelerate launch`` / ``torchrun`` every process runs this; only the main process
    (global rank 0) writes the run directory and prints. Every process reads the data and
    the checkpoints and makes the same checks, so a bad input stops them all.
    """
    run = open_training_run(recipe, resumable_keys=RESUMABLE_KEYS, command="sft",
                            adapter=ADAPTER, echo=echo)
    if run.finished is not None:
        return run.finished
    run_dir, main, echo = run.dir, run.main, run.echo

    checkpoints = run_dir / CHECKPOINTS
    # the newest complete checkpoint; a partial or damaged newer one is set aside first
    resume = find_resume_checkpoint(checkpoints, set_aside=main)

    from transformers import set_seed

    set_seed(recipe.train.seed)
    started = time.time()
    tok = load_tokenizer(recipe.model)  # data first: a bad row fails before the weights load

    d = recipe.data
    train_data, eval_data = load_sft_data(d.train, d.eval, eval_fraction=d.eval_fraction,
                                          seed=recipe.train.seed,
                                          system_prompt=d.system_prompt, limit=None)
    drop_too_long(train_data, tok, recipe.sft.max_length, "train", progress=main)
    drop_too_long(eval_data, tok, recipe.sft.max_length, "eval", progress=main)
    if d.limit is not None:
        train_data.examples = train_data.examples[: d.limit]
    rejects = train_data.rejects + eval_data.rejects
    if main:
        atomic_write_jsonl(run_dir / "rejects.jsonl", (r.to_record() for r in rejects))
    counts = _reject_counts(rejects)
    echo(f"data: {len(train_data.examples)} train / {len(eval_data.examples)} eval examples "
         f"from {train_data.n_rows + eval_data.n_rows} rows; {len(rejects)} rejected"
         + (f" ({', '.join(f'{k}: {v}' for k, v in counts.items())}; see "
            f"{run_dir / 'rejects.jsonl'})" if rejects else ""))
    if not train_data.examples:
        raise DataError("no valid training examples (every row was rejected; see "
                        f"{run_dir / 'rejects.jsonl'})")

    check_data_fingerprint(
        run_dir, {"train": _fingerprint(train_data.examples), "n_train": len(train_data.examples),
                  "eval": _fingerprint(eval_data.examples), "n_eval": len(eval_data.examples)},
        resuming=resume is not None, counts={"n_train": "train", "n_eval": "eval"},
        what="the training data", unit="examples", write=main)
    has_eval = bool(eval_data.examples)
    metrics_path = run_dir / "metrics.jsonl"
    # The trainer's config is built before the weights are loaded: under DeepSpeed ZeRO-3
    # (zero3_init_flag) and FSDP (fsdp_cpu_ram_efficient_loading) it is what makes
    # from_pretrained load the model sharded / on rank 0 only instead of one full copy per
    # process; reading .device initialises the process group FSDP's check needs.
    configs = build_trl_configs(recipe, run_dir / CHECKPOINTS, tokenizer=tok, has_eval=has_eval)
    _ = configs[0].device
    model = load_model(recipe.model, tok)
    trainer = build_trainer(recipe, model, tok, train_data.examples, eval_data.examples,
                            run_dir, callbacks=callbacks, configs=configs)
    trainable, total = _count_params(trainer.model)
    if resume is not None:
        echo(f"resuming from {resume}")
    result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    final_eval: dict[str, Any] = {}
    if has_eval:
        # The trainer may have just evaluated at the last step; do not log it twice.
        done = [r for _, r in iter_jsonl(metrics_path, skip_invalid=True)
                if r.get("step") == trainer.state.global_step and "eval_loss" in r]
        final_eval = done[-1] if done else trainer.evaluate()

    save_final_adapter(trainer, run_dir / ADAPTER)
    losses = _loss_points(metrics_path)
    lora = recipe.lora
    summary = {
        "complete": True,
        "command": "sft",
        "base_model": recipe.model.name_or_path,
        "adapter_dir": str(run_dir / ADAPTER),
        "resumed_from": str(resume) if resume else None,
        "global_step": trainer.state.global_step,
        "epoch": trainer.state.epoch,
        # over every step: transformers' value covers only the steps since the resume
        "train_loss": whole_run_train_loss(
            ({"step": st, "loss": lo} for st, lo in losses), result.training_loss,
            resumed=resume is not None),
        "first_logged_loss": losses[0][1] if losses else None,
        "last_logged_loss": losses[-1][1] if losses else None,
        "eval_loss": final_eval.get("eval_loss"),
        "examples": {"train": len(train_data.examples), "eval": len(eval_data.examples),
                     "rows_read": train_data.n_rows + eval_data.n_rows,
                     "rejected": len(rejects), "rejects_by_reason": counts},
        "adapter": {"r": lora.r, "alpha": lora.alpha, "use_dora": lora.use_dora,
                    "use_rslora": lora.use_rslora,
                    "scaling": lora.alpha / (math.sqrt(lora.r) if lora.use_rslora else lora.r),
                    "trainable_params": trainable, "total_params": total},
        "runtime_s": round(time.time() - started, 2),
        "versions": versions(),
        "config": config_to_dict(recipe),
    }
    run.write_summary(summary)
    echo(f"done: step {summary['global_step']}, train loss {summary['train_loss']:.4f}; "
         f"adapter in {run_dir / ADAPTER}")
    return summary


def _fingerprint(examples: Sequence[SFTExample]) -> str:
    import hashlib

    h = hashlib.sha256()
    for ex in examples:
        h.update(json.dumps(ex.messages, ensure_ascii=False, sort_keys=True).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


def _reject_counts(rejects: Sequence[Reject]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rejects:
        out[r.reason] = out.get(r.reason, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))
