"""``gazal grpo``: GRPO with TRL's ``GRPOTrainer``, gazal's clinical reward, fast DoRA
generation, monitors and guards, into one run directory that resumes.

Run directory::

    RUN/config.yaml          the resolved recipe (a re-run must match it to resume)
    RUN/data_fingerprint.json what was trained on (a resume refuses other data)
    RUN/skipped.jsonl        rows skipped with on_malformed: skip (source, row, field, reason)
    RUN/overlap.jsonl        training questions left out (data.on_overlap: drop)
    RUN/metrics.jsonl        one record per logged step: every monitor (docs/grpo.md); the
                             step-0 record holds the held-out baseline
    RUN/alarms.jsonl         every alarm that fired (step, name, action, message)
    RUN/reward_curve.png     reward, accuracy, format pass rate, held-out accuracy
    RUN/checkpoints/         checkpoint-N folders (adapter, optimizer, scheduler, RNG, state)
    RUN/adapter/             the final adapter + tokenizer
    RUN/summary.json         what was trained, the last monitors, held-out accuracy, why it
                             stopped
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gazal.config import ConfigError, config_to_dict
from gazal.data.rl_data import (
    LoadedItems,
    check_overlap,
    items_fingerprint,
    load_rl_items,
    sample_items,
    to_trl_rows,
)
from gazal.distributed import (
    broadcast_from_main,
    multi_process_without_accelerator,
    sharded_weights_engine,
)
from gazal.formatting import SYSTEM_PROMPT
from gazal.io import (
    DataError,
    ResumableJsonlWriter,
    atomic_write_json,
    atomic_write_jsonl,
    iter_jsonl,
)
from gazal.train.callbacks import LossCurveCallback, MetricsJsonlCallback
from gazal.train.checkpoints import find_resume_checkpoint, save_final_adapter
from gazal.train.grpo_config import (
    RESUMABLE_KEYS,
    GRPORecipe,
    check_batch_arithmetic,
    world_size_from_env,
)
from gazal.train.run_scaffold import (
    check_data_fingerprint,
    open_training_run,
    versions,
    whole_run_train_loss,
)

log = logging.getLogger("gazal")

__all__ = [
    "build_grpo_config",
    "build_reward_funcs",
    "build_trainer",
    "load_heldout_items",
    "load_policy",
    "load_training_items",
    "run_grpo",
    "trainer_class",
]

CHECKPOINTS = "checkpoints"
ADAPTER = "adapter"
METRICS = "metrics.jsonl"
CURVE_SERIES = {"reward": "reward (weighted total)", "monitor/accuracy": "accuracy (train)",
                "monitor/format_pass_rate": "format pass rate",
                "heldout/accuracy": "held-out accuracy"}


# --------------------------------------------------------------------------- configs


def build_grpo_config(recipe: GRPORecipe, output_dir: str | Path, *,
                      check_only: bool = False, world_size: int = 1) -> Any:
    """TRL ``GRPOConfig`` of a recipe (no model or data needed). ``check_only`` validates a
    GPU recipe on a machine without a GPU (``use_cpu``), for ``world_size`` processes; never
    train with that object."""
    import dataclasses

    import torch
    from trl import GRPOConfig

    t, g = recipe.train, recipe.grpo
    known = {f.name for f in dataclasses.fields(GRPOConfig)}
    # every grpo: / train: key was checked against GRPOConfig's fields when the recipe loaded
    kwargs = t.to_trainer_kwargs(GRPOConfig)
    kwargs.update(g.to_trl_kwargs())
    kwargs.update(
        output_dir=str(output_dir),
        reward_weights=recipe.reward.weights(),
        eval_strategy="no",  # gazal's held-out evaluation (heldout.*) replaces TRL's
        logging_nan_inf_filter=False,  # a NaN loss must reach the logs and the guard
        remove_unused_columns=False,  # the rewards read the answer and options columns
        disable_tqdm=False,
    )
    # the recipe's own GRPOConfig keys win over gazal's defaults above (disable_tqdm); the
    # ones gazal must set are refused when the recipe loads (GRPO_REFUSED)
    kwargs.update(g.extra)
    kwargs.update(t.extra)
    if t.gradient_checkpointing:
        name = "activation_checkpointing_kwargs" if "activation_checkpointing_kwargs" in known \
            else "gradient_checkpointing_kwargs"  # transformers < 5.20
        kwargs.setdefault(name, {"use_reentrant": False})
    if check_only and not torch.cuda.is_available():
        kwargs["use_cpu"] = True  # transformers refuses bf16 without a GPU otherwise
    if not check_only and multi_process_without_accelerator():
        # several CPU processes (accelerate launch / torchrun without GPUs): without use_cpu
        # transformers starts a process group but every process trains alone on all the data
        # (it only logs a warning); use_cpu makes them data parallel over gloo
        kwargs["use_cpu"] = True
    if check_only and world_size > 1:
        # TRL sizes the generation batch with this process's world size (1 here): give it
        # the batch of `world_size` processes, as check_batch_arithmetic resolved it.
        sizes = check_batch_arithmetic(g, t, world_size)
        kwargs.update(generation_batch_size=sizes["generation_batch_size"],
                      steps_per_generation=None)
    try:
        return GRPOConfig(**kwargs)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"invalid GRPO settings: {err}") from None


def build_reward_funcs(recipe: GRPORecipe, tokenizer: Any) -> tuple[list[Any], list[float]]:
    """gazal's reward components for TRL, the first wrapped to log the batch monitors."""
    from gazal.rewards import build_reward_functions
    from gazal.train.monitors import MonitoredReward

    funcs, weights = build_reward_functions(recipe.reward, tokenizer)
    funcs = [MonitoredReward(funcs[0]), *funcs[1:]]
    return funcs, weights


# --------------------------------------------------------------------------- data


def load_training_items(recipe: GRPORecipe) -> LoadedItems:
    """The training questions of a recipe (sources, de-duplication, option shuffle, limit)."""
    d = recipe.data
    seed = d.shuffle_seed if d.shuffle_seed is not None else recipe.train.seed
    loaded = load_rl_items(d.train, d.data_dir, shuffle=d.shuffle_options, seed=seed,
                           dedupe=d.dedupe)
    if d.limit is not None:
        loaded.items = loaded.items[: d.limit]
    return loaded


def load_heldout_items(recipe: GRPORecipe) -> list[Any]:
    """The held-out subset (seeded sample of the held-out sources); [] when none."""
    h = recipe.heldout
    if not h.sources:
        return []
    loaded = load_rl_items(h.sources, recipe.data.data_dir, dedupe=True)
    return sample_items(loaded.items, h.size, h.sample_seed)


def check_all_overlap(recipe: GRPORecipe, train: Sequence[Any], heldout: Sequence[Any]
                      ) -> tuple[list[Any], list[dict[str, Any]]]:
    """Training questions must not be in the held-out subset nor in ``data.overlap_with``:
    an error (``data.on_overlap: error``), or ``(kept items, dropped records)`` (``drop``)."""
    from gazal.data.rl_data import find_overlap

    d = recipe.data
    against: list[tuple[str, Sequence[Any]]] = [("held-out evaluation subset", heldout)]
    if d.overlap_with:
        from gazal.benchmarks import load_benchmark

        against += [(f"benchmark '{name}'", load_benchmark(name, d.data_dir).items)
                    for name in d.overlap_with]
    dropped: list[dict[str, Any]] = []
    kept = list(train)
    for what, items in against:
        if d.on_overlap == "error":
            check_overlap(kept, items, d.overlap, what=what)
            continue
        hits = find_overlap(kept, items, d.overlap)
        gone = {id(t) for t, _, _ in hits}
        dropped += [{"train_id": t.id, "against": what, "match_id": h.id, "why": why,
                     "question": t.question[:200]} for t, h, why in hits]
        kept = [t for t in kept if id(t) not in gone]
    return kept, dropped


def _system_prompt(recipe: GRPORecipe) -> str | None:
    value = recipe.data.system_prompt
    return SYSTEM_PROMPT if value is None else (value or None)


# --------------------------------------------------------------------------- model


def load_policy(recipe: GRPORecipe, tokenizer: Any) -> tuple[Any, Any]:
    """(model, peft_config): the merged SFT model and a fresh adapter config, or the SFT
    adapter loaded trainable on its base (``lora.init: continue``; peft_config None)."""
    from gazal.generation.loading import load_adapter_model
    from gazal.train.model import build_lora_config, load_model

    model = load_model(recipe.model, tokenizer)
    lora = recipe.lora
    if lora.init == "continue":
        model = load_adapter_model(model, lora.adapter, is_trainable=True,  # type: ignore[arg-type]
                                   overrides={"lora_dropout": lora.dropout})
        return model, None
    return model, build_lora_config(lora, tokenizer)


def trainer_class() -> type:
    """``GazalGRPOTrainer`` (built lazily: TRL is a heavy import)."""
    from trl import GRPOTrainer

    from gazal.distributed import gather_lists
    from gazal.train.fast_generation import fast_generation_mode
    from gazal.train.monitors import (
        TrainingStopped,
        accuracy_spread,
        drop_groups,
        nonfinite_message,
    )

    class GazalGRPOTrainer(GRPOTrainer):
        """``GRPOTrainer`` with three changes.

        1. Fast generation. TRL 1.16 generates with the policy in train mode, where PEFT
           recomputes every DoRA layer's weight norm (and B@A) at each decoded token. Here
           generation runs in eval mode inside ``peft.helpers.DoraCaching()`` (computed once
           per generation round, dropped when the model returns to train mode), then train
           mode is restored. Skipped with vLLM, which generates from merged weights.
           Same distribution with lora.dropout 0: see gazal.train.fast_generation.
        2. Groups without signal: the share of prompt groups whose accuracy does not vary
           (``monitor/frac_accuracy_zero_std``, ``monitor/frac_all_correct``,
           ``monitor/frac_all_wrong``) beside TRL's ``frac_reward_zero_std``, from the
           gathered rewards TRL's ``_calculate_rewards`` returns; with
           ``grpo.drop_constant_accuracy_groups`` those groups leave the loss
           (:func:`gazal.train.monitors.drop_groups`).
        3. The non-finite guard. A NaN/inf loss or gradient norm stops the run *before* the
           optimizer step (transformers calls ``_get_grad_norm`` between backward and
           ``optimizer.step()``), so neither the weights nor a checkpoint take the update.
        """

        fast_generation = True
        guard_nonfinite = True
        drop_constant_accuracy_groups = False
        _bad_loss: float | None = None
        _rewards_per_func: Any = None

        def _calculate_rewards(self, *args: Any, **kwargs: Any) -> Any:
            # TRL returns every process's rewards gathered, in prompt-group order: kept for
            # the accuracy-spread monitors below
            self._rewards_per_func = super()._calculate_rewards(*args, **kwargs)
            return self._rewards_per_func

        def _generate_and_score_completions(self, *args: Any, **kwargs: Any) -> Any:
            output = super()._generate_and_score_completions(*args, **kwargs)
            rewards = self._rewards_per_func
            if rewards is None or "accuracy" not in self.reward_func_names:
                return output
            mode = "train" if self.model.training else "eval"
            size = self.num_generations if mode == "train" else self.num_generations_eval
            acc = rewards[:, self.reward_func_names.index("accuracy")]
            stats = accuracy_spread(acc, size)
            for key, value in stats.items():
                if key != "constant":
                    self._metrics[mode][key].append(value)
            drop = self.drop_constant_accuracy_groups and mode == "train"
            if drop:
                drop_groups(self, output, stats["constant"], size)
            self._metrics[mode]["monitor/frac_groups_dropped"].append(
                stats["monitor/frac_accuracy_zero_std"] if drop else 0.0)
            return output

        def _generate_single_turn(self, *args: Any, **kwargs: Any) -> Any:
            if self.use_vllm or not self.fast_generation:
                return super()._generate_single_turn(*args, **kwargs)
            with fast_generation_mode(self.model):
                return super()._generate_single_turn(*args, **kwargs)

        def training_step(self, model: Any, inputs: Any, num_items_in_batch: Any = None) -> Any:
            loss = super().training_step(model, inputs, num_items_in_batch)
            if self.guard_nonfinite and self._bad_loss is None:
                value = float(loss.detach().float().sum())
                if not math.isfinite(value):
                    self._bad_loss = value  # checked (on every process) before the step
            return loss

        def _get_grad_norm(self, model: Any, grad_norm: Any = None) -> Any:
            norm = super()._get_grad_norm(model, grad_norm)
            if self.guard_nonfinite:
                value = float(norm) if norm is not None else None
                step = self.state.global_step + 1
                message = nonfinite_message(step, self._bad_loss, value)
                # every process must stop at the same step, or the others would wait forever
                # in the next collective: any process's message stops them all
                if self.accelerator.num_processes > 1:
                    rank = self.accelerator.process_index
                    messages = gather_lists([f"{message} (process {rank})"] if message else [])
                    message = messages[0] if messages else None
                if message:
                    raise TrainingStopped("nonfinite", step, message)
            return norm

    return GazalGRPOTrainer


def _silent_progress_callback() -> type:
    from transformers.trainer_callback import ProgressCallback

    class GRPOProgressCallback(ProgressCallback):
        """transformers' progress bar without its dump of every log dict (the monitor prints
        one line per step instead)."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            return None

    return GRPOProgressCallback


def build_trainer(recipe: GRPORecipe, model: Any, tokenizer: Any, rows: Sequence[dict[str, Any]],
                  run_dir: str | Path, *, peft_config: Any = None,
                  callbacks: Sequence[Any] = (), args: Any = None) -> Any:
    """The GRPO trainer of a recipe on prepared rows (:func:`gazal.data.rl_data.to_trl_rows`).
    ``callbacks`` go before the metrics writer, so what they add to logs is recorded.
    ``args``: the ``GRPOConfig`` when already built (run_grpo builds it before the weights
    load); default: built here."""
    from datasets import Dataset
    from transformers.trainer_callback import ProgressCallback

    run_dir = Path(run_dir)
    if args is None:
        args = build_grpo_config(recipe, run_dir / CHECKPOINTS)
    funcs, _ = build_reward_funcs(recipe, tokenizer)
    metrics_path = run_dir / METRICS
    try:
        trainer = trainer_class()(
            model=model, reward_funcs=funcs, args=args, train_dataset=Dataset.from_list(list(rows)),
            processing_class=tokenizer, peft_config=peft_config,
            callbacks=[*callbacks, MetricsJsonlCallback(metrics_path),
                       LossCurveCallback(metrics_path, run_dir / "reward_curve.png",
                                         title=f"GRPO {recipe.model.name_or_path}",
                                         series=CURVE_SERIES, ylabel="value")])
    except ValueError as err:  # TRL's own checks of the model and adapter
        raise ConfigError(f"GRPOTrainer refused the setup: {err}") from None
    trainer.fast_generation = recipe.grpo.fast_generation
    trainer.drop_constant_accuracy_groups = recipe.grpo.drop_constant_accuracy_groups
    trainer.guard_nonfinite = recipe.guards.stop_on_nonfinite
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(_silent_progress_callback())
    return trainer


# --------------------------------------------------------------------------- run


def _records(path: Path, up_to: int | None = None) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [r for _, r in iter_jsonl(path, skip_invalid=True)
            if up_to is None or int(r.get("step", 0)) <= up_to]


def _last_metrics(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    keys = ("reward", "monitor/accuracy", "monitor/format_pass_rate", "frac_reward_zero_std",
            "monitor/frac_accuracy_zero_std",
            "completions/mean_length", "completions/clipped_ratio", "answer_letters/entropy",
            "gold_letters/entropy", "kl", "grad_norm")
    out: dict[str, Any] = {}
    for key in keys:
        values = [r[key] for r in records if isinstance(r.get(key), int | float)]
        if values:
            out[key] = {"first": values[0], "last": values[-1],
                        "mean_last_10": sum(values[-10:]) / len(values[-10:])}
    return out


def run_grpo(recipe: GRPORecipe, *, callbacks: Sequence[Any] = (),
             echo: Callable[[str], None] = print,
             console: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train (or resume) the recipe; returns the summary written to ``summary.json``.

    Raises :class:`gazal.train.monitors.TrainingStopped` when a guard stopped the run (the
    summary is written first, with ``complete: false`` and the reason).

    Under ``accelerate launch`` / ``torchrun`` every process runs this; only the main process
    (global rank 0) writes the run directory and prints. Every process reads the data and the
    checkpoints and makes the same checks, so a bad input stops them all; a guard stops every
    process at the same step (the verdict is shared), and the held-out evaluation is split
    over the processes.
    """
    from gazal.generation.base import GenerationParams
    from gazal.train.model import load_tokenizer
    from gazal.train.monitors import GRPOMonitorCallback, HeldoutEvaluator, TrainingStopped

    engine = sharded_weights_engine()
    if recipe.heldout.sources and engine:
        raise ConfigError(
            f"heldout.sources: the held-out evaluation generates with the live policy, which "
            f"{engine} shards over the processes (every forward pass is a collective, and "
            "the processes would generate different numbers of tokens); set heldout.sources: "
            "[] and evaluate checkpoints with `gazal eval --adapter RUN/checkpoints/"
            "checkpoint-N`, or train with recipes/accelerate/ddp.yaml")
    run = open_training_run(recipe, resumable_keys=RESUMABLE_KEYS, command="grpo",
                            adapter=ADAPTER, echo=echo)
    if run.finished is not None:
        return run.finished
    run_dir, main, echo = run.dir, run.main, run.echo
    summary_path = run.summary_path

    # the newest complete checkpoint; a partial or damaged newer one is set aside first
    resume = find_resume_checkpoint(run_dir / CHECKPOINTS, set_aside=main)
    from transformers import set_seed

    # the launcher's WORLD_SIZE: accelerate's state is not started yet (the GRPOConfig built
    # below starts it, with use_cpu on a machine without GPUs)
    world = world_size_from_env()
    sizes = check_batch_arithmetic(recipe.grpo, recipe.train, world)
    set_seed(recipe.train.seed)
    started = time.time()
    tok = load_tokenizer(recipe.model)  # data first: bad rows fail before the weights load

    train = load_training_items(recipe)
    heldout = load_heldout_items(recipe)
    train.items, overlapping = check_all_overlap(recipe, train.items, heldout)
    if overlapping and main:
        atomic_write_jsonl(run_dir / "overlap.jsonl", overlapping)
        log.warning("left %d training question(s) out: they are in the held-out subset or "
                    "data.overlap_with (see %s)", len(overlapping), run_dir / "overlap.jsonl")
    if train.skipped and main:
        atomic_write_jsonl(run_dir / "skipped.jsonl", train.skipped)
    need = sizes["prompts_per_generation"]
    if len(train.items) < need:
        raise DataError(f"{len(train.items)} training question(s), but one generation round "
                        f"takes {need} prompts; add data or lower the batch")
    echo(f"data: {len(train.items)} training questions ({train.duplicates} duplicates dropped, "
         f"{len(train.skipped)} rows skipped, options shuffled in {train.shuffled}), "
         f"{len(heldout)} held-out; {sizes['prompts_per_generation']} prompts x "
         f"{recipe.grpo.num_generations} completions per generation round")
    check_data_fingerprint(run_dir, {"train": items_fingerprint(train.items),
                                     "n_train": len(train.items),
                                     "heldout": items_fingerprint(heldout),
                                     "n_heldout": len(heldout)}, resuming=resume is not None,
                           counts={"n_train": "train", "n_heldout": "held-out"},
                           what="the training or held-out questions", write=main)

    system_prompt = _system_prompt(recipe)
    rows = to_trl_rows(train.items, system_prompt)
    # The trainer's config is built before the weights load: under DeepSpeed ZeRO-3
    # (zero3_init_flag) and FSDP (cpu_ram_efficient_loading) it is what makes from_pretrained
    # load the model sharded / on rank 0 only instead of one full copy per process; reading
    # .device starts the process group (data parallel over gloo for CPU processes).
    args = build_grpo_config(recipe, run_dir / CHECKPOINTS)
    _ = args.device
    model, peft_config = load_policy(recipe, tok)

    h = recipe.heldout
    evaluator = None
    if heldout:
        thinking = bool((recipe.grpo.chat_template_kwargs or {}).get("enable_thinking", True))
        params = GenerationParams(max_new_tokens=h.max_new_tokens or
                                  recipe.grpo.max_completion_length,
                                  temperature=h.temperature, seed=recipe.train.seed,
                                  thinking=thinking)
        evaluator = HeldoutEvaluator(heldout, params, system_prompt, h.batch_size)
    metrics_path = run_dir / METRICS
    monitor = GRPOMonitorCallback(
        recipe.guards, sizes["completions_per_optimizer_step"], heldout=evaluator,
        heldout_every=h.every_steps, heldout_at_end=h.at_end,
        history=lambda step: _records(metrics_path, step), echo=console or _tqdm_write)
    trainer = build_trainer(recipe, model, tok, rows, run_dir, peft_config=peft_config,
                            callbacks=[monitor, *callbacks], args=args)
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in trainer.model.parameters())
    # the trained adapter's own config: with lora.init continue it is the SFT adapter's
    # (its r, alpha, DoRA, rsLoRA), not the recipe's lora keys
    adapter_config = trainer.model.peft_config[trainer.model.active_adapter]

    # whether the step-0 baseline is still to do: the main process's reading of metrics.jsonl
    # decides for all (the evaluation below is a collective every process must join)
    baseline_due = broadcast_from_main(evaluator is not None and h.at_start and not any(
        "heldout/accuracy" in r and r.get("step") == 0 for r in _records(metrics_path, 0)))
    if baseline_due:
        baseline = monitor.run_heldout(trainer.model, tok)
        if trainer.is_world_process_zero():
            with ResumableJsonlWriter(metrics_path) as writer:
                writer.append({"step": 0, "epoch": 0.0, **baseline,
                               "time": round(time.time(), 3)})
        echo(f"held-out baseline: accuracy {baseline['heldout/accuracy']:.3f} on "
             f"{baseline['heldout/n']} questions")
    if resume is not None:
        echo(f"resuming from {resume}")

    def write_summary(complete: bool, stopped: TrainingStopped | None = None,
                      train_loss: float | None = None) -> dict[str, Any]:
        records = _records(metrics_path)
        heldout_points = [(r["step"], r["heldout/accuracy"]) for r in records
                          if isinstance(r.get("heldout/accuracy"), int | float)]
        lora = recipe.lora
        summary = {
            "complete": complete,
            "command": "grpo",
            "model": recipe.model.name_or_path,
            "adapter_dir": str(run_dir / ADAPTER) if complete else None,
            "adapter_init": lora.init,
            "continued_from": lora.adapter,
            "resumed_from": str(resume) if resume else None,
            "global_step": trainer.state.global_step,
            "stopped": None if stopped is None else {
                "reason": stopped.reason, "step": stopped.step, "message": stopped.message,
                "last_checkpoint": _last_checkpoint(run_dir / CHECKPOINTS)},
            "alarms": [a.to_dict() for a in monitor.fired],
            "train_loss": whole_run_train_loss(records, train_loss,
                                               resumed=resume is not None),
            "heldout": {"n": len(heldout), "points": heldout_points,
                        "first": heldout_points[0][1] if heldout_points else None,
                        "last": heldout_points[-1][1] if heldout_points else None},
            "monitors": _last_metrics([r for r in records if r.get("step", 0) > 0]),
            "data": {"train": len(train.items), "duplicates_dropped": train.duplicates,
                     "overlap_dropped": len(overlapping),
                     "rows_skipped": len(train.skipped), "options_shuffled": train.shuffled,
                     "options_kept_in_order": train.kept_order, "sources": train.sources},
            "batch": {**sizes, "num_generations": recipe.grpo.num_generations,
                      "processes": world},
            "adapter": {"trainable_params": trainable, "total_params": total,
                        "use_dora": adapter_config.use_dora,
                        "use_rslora": adapter_config.use_rslora,
                        "r": adapter_config.r, "alpha": adapter_config.lora_alpha},
            "fast_generation": recipe.grpo.fast_generation and not recipe.grpo.use_vllm,
            "runtime_s": round(time.time() - started, 2),
            "versions": versions(),
            "config": config_to_dict(recipe),
        }
        if trainer.is_world_process_zero():
            atomic_write_json(summary_path, summary)
            atomic_write_jsonl(run_dir / "alarms.jsonl", (a.to_dict() for a in monitor.fired))
        return summary

    try:
        result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    except TrainingStopped as stop:
        write_summary(False, stop)
        raise
    if monitor.stop is not None:
        write_summary(False, monitor.stop)
        raise monitor.stop
    save_final_adapter(trainer, run_dir / ADAPTER)
    summary = write_summary(True, train_loss=result.training_loss)
    echo(f"done: step {summary['global_step']}; adapter in {run_dir / ADAPTER}"
         + (f"; held-out accuracy {summary['heldout']['first']:.3f} -> "
            f"{summary['heldout']['last']:.3f}" if summary["heldout"]["points"] else ""))
    return summary


def _last_checkpoint(checkpoints: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    if not checkpoints.is_dir():
        return None
    return get_last_checkpoint(str(checkpoints))


def _tqdm_write(line: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(line)
