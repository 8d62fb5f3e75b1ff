"""The typed ``gazal grpo`` recipe and its checks, done before any weights load.

Sections: ``model`` (the merged SFT model), ``lora`` (a fresh DoRA + rsLoRA adapter, or
``init: continue`` with the SFT adapter), ``data`` (RL questions), ``reward``
(:class:`gazal.rewards.RewardConfig`), ``grpo`` (open to TRL's ``GRPOConfig`` fields),
``train`` (optimiser, batch, checkpoints: open to its ``TrainingArguments`` fields),
``heldout`` (periodic held-out accuracy) and ``guards`` (non-finite stop, reward-hacking
alarms).

:func:`check_batch_arithmetic` repeats TRL 1.16's batch checks (``GRPOConfig.__post_init__``
and ``GRPOTrainer``) at config time, with a message that says how to fix each.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from gazal.config import ConfigError, OpenSection, OpenTo, cfg
from gazal.data.rl_data import RLSource
from gazal.rewards.config import RewardConfig
from gazal.train.config import (
    LoraSection,
    SchedulerName,
    TrainingRecipe,
    TrainSection,
)

__all__ = [
    "RESUMABLE_KEYS",
    "GRPODataSection",
    "GRPOLoraSection",
    "GRPORecipe",
    "GRPOSection",
    "GRPOTrainSection",
    "GuardsSection",
    "HeldoutSection",
    "check_batch_arithmetic",
    "world_size_from_env",
]

LossType = Literal["grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo"]
AlarmAction = Literal["off", "warn", "stop"]


@dataclass
class GRPOLoraSection(LoraSection):
    """The adapter GRPO trains: a fresh DoRA + rsLoRA adapter on the merged SFT model, or the
    SFT adapter itself (``init: continue``)."""

    dropout: float = cfg(0.0, "dropout on the adapter input (lora_dropout). 0 for GRPO: the "
                              "sampling policy then equals the policy the loss trains (fast "
                              "generation runs in eval mode, which has no dropout; see "
                              "docs/grpo.md); also applied to a continued adapter",
                         aliases=["lora_dropout"])
    init: Literal["fresh", "continue"] = cfg(
        "fresh", "'fresh': a new adapter (lora.* settings) on model.name_or_path, the merged "
                 "SFT model (`gazal merge`); 'continue': keep training the SFT adapter in "
                 "lora.adapter on model.name_or_path, its base (the adapter's own r, alpha, "
                 "DoRA and rsLoRA settings apply)")
    adapter: str | None = cfg(None, "the SFT adapter folder (RUN/adapter of `gazal sft`) when "
                                    "init is 'continue'")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.init == "continue" and not self.adapter:
            raise ValueError("lora.init is 'continue' but lora.adapter is not set (the SFT "
                             "adapter folder, e.g. runs/sft/adapter)")
        if self.init == "fresh" and self.adapter:
            raise ValueError("lora.adapter is set but lora.init is 'fresh'; set lora.init: "
                             "continue to train that adapter, or remove lora.adapter")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"lora.dropout must be in [0, 1), got {self.dropout}")
        if any(m in ("lm_head",) for m in self.target_modules):
            raise ValueError("lora.target_modules: TRL computes GRPO log-probabilities from "
                             "lm_head.weight directly, so an adapter on lm_head would never be "
                             "trained; remove 'lm_head'")


@dataclass
class GRPODataSection:
    """Training questions."""

    train: list[RLSource] = cfg(default_factory=list,
                                help="training sources (at least one), concatenated")
    data_dir: str | None = cfg(None, "local benchmark files for 'benchmark:NAME' sources and "
                                     "overlap_with; null = $GAZAL_DATA_DIR, else the Hub")
    system_prompt: str | None = cfg(None, "system prompt of every question; null = gazal's "
                                          "SYSTEM_PROMPT (what evaluation sends); '' = none")
    shuffle_options: bool = cfg(False, "permute each question's options (seeded by "
                                       "shuffle_seed and the question id) and remap the gold "
                                       "letter, so no letter is favoured by position")
    shuffle_seed: int | None = cfg(None, "seed of the option shuffle; null = train.seed")
    dedupe: bool = cfg(True, "drop repeated questions (same normalised question and options)")
    limit: int | None = cfg(None, "keep at most N training questions (after de-duplication)")
    overlap: Literal["exact", "ngram"] = cfg(
        "exact", "how training questions are checked against the held-out subset (and "
                 "overlap_with): 'exact' = same normalised question, context and option "
                 "texts; 'ngram' = also gazal's 13-gram decontamination (near-duplicates)")
    overlap_with: list[str] = cfg([], "benchmarks (registered names) whose every item is also "
                                      "checked for overlap, e.g. [medqa, pubmedqa]")
    on_overlap: Literal["error", "drop"] = cfg(
        "error", "a training question found in the held-out subset or overlap_with: stop "
                 "with an error naming it ('error'), or leave it out of training and list it "
                 "in RUN/overlap.jsonl ('drop', counted in summary.json)")

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"data.limit must be >= 1, got {self.limit}")


# GRPOConfig fields that gazal sets itself or that would break the run's contract.
GRPO_REFUSED = {
    "auto_find_batch_size": "GRPO cannot shrink the batch on out-of-memory (the generation "
                            "batch must hold whole prompt groups); lower "
                            "train.per_device_train_batch_size instead",
    "eval_strategy": "gazal's held-out evaluation (heldout.*) replaces TRL's eval loop",
    "do_eval": "gazal's held-out evaluation (heldout.*) replaces TRL's eval loop",
    "num_generations_eval": "gazal's held-out evaluation (heldout.*) replaces TRL's eval loop",
    "reward_weights": "weights come from the reward section (reward.<component>.weight)",
    "output_dir": "set output_dir at the top of the recipe",
    "logging_nan_inf_filter": "gazal keeps NaN losses visible so the guard can stop the run",
    "remove_unused_columns": "the reward columns (answer, options) must reach the rewards",
    "sync_ref_model": "TRL does not sync a reference model with a PEFT adapter",
    "save_strategy": "gazal saves a checkpoint every train.save_steps steps",
    "activation_checkpointing": "set train.gradient_checkpointing (gazal passes it on as "
                                "activation_checkpointing)",
}


@dataclass
class GRPOSection(OpenSection):
    """TRL ``GRPOConfig`` settings: the fields that are not ``TrainingArguments`` ones.

    Declared here: gazal's own keys, the ones whose gazal default differs from TRL's, the
    aliases and the keys of gazal's cross-field checks. Any other ``GRPOConfig`` field
    (``beta``, ``epsilon_high``, ``scale_rewards``, ``use_vllm``, ``vllm_*``, ...) may be set
    too: it is checked against TRL's type annotation and passed verbatim (TRL's default
    otherwise; ``gazal grpo --describe`` lists them with TRL's help)."""

    OPEN = OpenTo("trl.GRPOConfig", exclude="transformers.TrainingArguments",
                  elsewhere="train", refused=GRPO_REFUSED)

    num_generations: int = cfg(8, "completions sampled per prompt (G of GRPO); >= 2",
                               aliases=["G"])
    max_completion_length: int = cfg(4096, "longest completion in tokens; a longer one is cut "
                                           "and scored as truncated (must equal "
                                           "reward.length.max_tokens); gazal: room for a "
                                           "clinical reasoning (TRL: 512)")
    temperature: float = cfg(1.0, "sampling temperature (also divides the logits in the loss)",
                             aliases=["temperature"])  # bare --temperature means this one
    loss_type: LossType = cfg("dapo", "GRPO loss aggregation: dapo (token-level over the "
                                      "global batch, DAPO), grpo, dr_grpo, bnpo, cispo, sapo, "
                                      "luspo, vespo (see docs/grpo.md); checked by name here "
                                      "(TRL takes any string)")
    fast_generation: bool = cfg(
        True, "gazal: generate in eval mode with PEFT's DoRA weight-norm cache instead of "
              "TRL's train-mode generation (same distribution with lora.dropout 0; several "
              "times faster with DoRA); ignored with use_vllm")
    drop_constant_accuracy_groups: bool = cfg(
        False, "gazal: leave prompt groups whose accuracy does not vary (all right or all "
               "wrong) out of the loss (advantage 0, loss mask 0, not counted in dapo's token "
               "normaliser); their generation is still paid for and the step trains on fewer "
               "groups (no DAPO-style resampling; docs/grpo.md, \"Groups without signal\"). "
               "Needs the accuracy component")
    extra: dict[str, Any] = cfg({}, "other GRPOConfig fields, passed verbatim: write them "
                                    "directly in grpo: (this mapping is the older form, "
                                    "checked the same way)")

    # gazal-only keys, not GRPOConfig fields
    GAZAL_ONLY = ("fast_generation", "drop_constant_accuracy_groups", "extra")

    def __post_init__(self) -> None:
        # config-time checks with a message naming the key; settings the recipe did not
        # declare read as TRL's defaults (OpenSection)
        if self.num_generations < 2:
            raise ValueError(f"grpo.num_generations must be >= 2, got {self.num_generations}: "
                             "GRPO's advantage compares completions of the same prompt")
        if self.max_completion_length < 1:
            raise ValueError("grpo.max_completion_length must be >= 1")
        if self.temperature <= 0:
            raise ValueError(f"grpo.temperature must be > 0 (GRPO samples), got "
                             f"{self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"grpo.top_p must be in (0, 1], got {self.top_p}")
        if self.beta < 0:
            raise ValueError(f"grpo.beta must be >= 0, got {self.beta}")
        if self.epsilon <= 0 or (self.epsilon_high is not None and self.epsilon_high <= 0):
            raise ValueError("grpo.epsilon and grpo.epsilon_high must be > 0")
        if self.num_iterations < 1:
            raise ValueError("grpo.num_iterations must be >= 1")
        if not 0.0 <= self.top_entropy_quantile <= 1.0:
            raise ValueError("grpo.top_entropy_quantile must be in [0, 1]")
        for name in ("generation_batch_size", "steps_per_generation"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"grpo.{name} must be >= 1 (or null), got {value}")

    def to_trl_kwargs(self) -> dict[str, Any]:
        """GRPOConfig keyword arguments: the declared keys and every other ``grpo:`` key as
        the recipe wrote it (already checked against GRPOConfig's fields)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
               if f.name not in self.GAZAL_ONLY}
        out.update(self.extra)
        return out


@dataclass
class GRPOTrainSection(TrainSection):
    """Optimiser, schedule, batch and checkpoints (``TrainSection`` with GRPO defaults): the
    ``TrainingArguments`` fields of ``GRPOConfig``."""

    OPEN = OpenTo("trl.GRPOConfig", only="transformers.TrainingArguments",
                  refused=GRPO_REFUSED)

    learning_rate: float = cfg(1e-5, "peak learning rate (AdamW); LoRA GRPO runs use "
                                     "1e-6 - 1e-5 on large models, tiny CPU models need more "
                                     "(TRL: 1e-6, a full fine-tuning rate)", aliases=["lr"])
    lr_scheduler_type: SchedulerName = cfg("constant_with_warmup", "learning-rate schedule "
                                           "after warmup (TRL: linear)", aliases=["scheduler"])
    warmup_steps: float = cfg(0.0, "warmup: a step count (>= 1) or a fraction of all steps "
                                   "(< 1)", aliases=["warmup"])
    per_device_train_batch_size: int = cfg(
        8, "completions per device per micro-batch (TRL counts completions, not prompts); with "
           "gradient_accumulation_steps and the processes it must hold whole groups of "
           "grpo.num_generations", aliases=["batch_size"])
    logging_steps: int = cfg(1, "log (and check the monitors and alarms) every N optimizer "
                                "steps; 1 = every step (TRL: 10)")
    save_steps: int = cfg(50, "save a checkpoint every N optimizer steps (TRL: 500)")


@dataclass
class HeldoutSection:
    """Periodic accuracy on held-out questions, generated with the live policy."""

    sources: list[RLSource] = cfg(default_factory=list,
                                  help="held-out question sources (e.g. benchmark:medmcqa, "
                                       "task/heldout.jsonl); empty = no held-out evaluation")
    size: int | None = cfg(None, "evaluate a seeded random subset of N questions; null = all")
    sample_seed: int = cfg(0, "seed of the random subset")
    every_steps: int = cfg(0, "evaluate every N optimizer steps; 0 = only at the start and "
                              "the end")
    at_start: bool = cfg(True, "evaluate before the first step (the baseline the alarms "
                               "compare with)")
    at_end: bool = cfg(True, "evaluate after the last step (into summary.json)")
    max_new_tokens: int | None = cfg(None, "generation budget; null = "
                                           "grpo.max_completion_length")
    temperature: float = cfg(0.0, "0 = greedy (the evaluation protocol)")
    batch_size: int | None = cfg(None, "prompts per generation batch; null = gazal eval's "
                                       "automatic token budget")

    def __post_init__(self) -> None:
        if self.every_steps < 0:
            raise ValueError("heldout.every_steps must be >= 0")
        if self.size is not None and self.size < 1:
            raise ValueError("heldout.size must be >= 1 (or null)")


@dataclass
class GuardsSection:
    """What stops or flags a run: non-finite numbers and reward-hacking signs."""

    stop_on_nonfinite: bool = cfg(
        True, "stop when a loss, gradient norm or trained weight is NaN or infinite, before "
              "the optimizer step applies it (the last checkpoint stays the last good one)")
    window: int = cfg(10, "steps averaged by the alarms; the first `window` steps are the "
                          "reference")
    format_vs_heldout: AlarmAction | bool = cfg(
        "warn", "format pass rate rising while held-out accuracy falls: the policy learns the "
                "form, not the medicine")
    format_rise: float = cfg(0.15, "format alarm: the pass rate (mean of the last `window` "
                                   "steps) rose by at least this since held-out accuracy "
                                   "peaked ...")
    heldout_drop: float = cfg(0.05, "... while held-out accuracy is at least this far below "
                                    "its peak")
    letter_entropy: AlarmAction | bool = cfg(
        "warn", "answered letters collapse onto few letters: entropy of the answered-letter "
                "distribution (last `window` steps) below letter_entropy_ratio x the gold "
                "letters' entropy")
    letter_entropy_ratio: float = cfg(0.5, "letter alarm threshold (1 = as spread as the gold "
                                           "letters, 0 = one letter)")
    min_answered: int = cfg(32, "letter alarm: judge only with at least this many answered "
                                "completions in the window")
    length: AlarmAction | bool = cfg(
        "warn", "completion length collapse or explosion relative to the first `window` steps")
    length_collapse_ratio: float = cfg(0.3, "length alarm: mean length below this fraction of "
                                            "the reference")
    length_explosion_ratio: float = cfg(3.0, "length alarm: mean length above this multiple "
                                             "of the reference ...")
    max_truncation_rate: float = cfg(0.5, "... or at least this fraction of completions cut at "
                                          "max_completion_length (and more than in the "
                                          "reference)")

    def __post_init__(self) -> None:
        for name in ("format_vs_heldout", "letter_entropy", "length"):
            value = getattr(self, name)
            if value is False:  # YAML 1.1 reads a bare `off` as false
                setattr(self, name, "off")
            elif value is True:
                raise ValueError(f"guards.{name}: expected off, warn or stop, got true")
        if self.window < 1:
            raise ValueError("guards.window must be >= 1")
        for name in ("format_rise", "heldout_drop", "letter_entropy_ratio",
                     "length_collapse_ratio", "max_truncation_rate"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ValueError(f"guards.{name} must be in [0, 1], got {value}")
        if self.length_explosion_ratio <= 1:
            raise ValueError("guards.length_explosion_ratio must be > 1")


@dataclass
class GRPORecipe(TrainingRecipe):
    """A ``gazal grpo`` recipe."""

    lora: GRPOLoraSection = field(default_factory=GRPOLoraSection)
    data: GRPODataSection = field(default_factory=GRPODataSection)
    reward: RewardConfig = field(default_factory=RewardConfig)
    grpo: GRPOSection = field(default_factory=GRPOSection)
    train: GRPOTrainSection = field(default_factory=GRPOTrainSection)
    heldout: HeldoutSection = field(default_factory=HeldoutSection)
    guards: GuardsSection = field(default_factory=GuardsSection)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.reward.length.max_tokens != self.grpo.max_completion_length:
            raise ValueError(
                f"reward.length.max_tokens ({self.reward.length.max_tokens}) must equal "
                f"grpo.max_completion_length ({self.grpo.max_completion_length}): the length "
                "reward's L_max is the generation limit (set --reward.length.max_tokens "
                f"{self.grpo.max_completion_length})")
        if self.grpo.drop_constant_accuracy_groups and "accuracy" not in self.reward.components:
            raise ValueError("grpo.drop_constant_accuracy_groups needs the accuracy reward "
                             "component (reward.components lists no 'accuracy')")
        if self.grpo.multi_objective_aggregation != "sum_then_normalize":
            import logging

            logging.getLogger("gazal").warning(
                "grpo.multi_objective_aggregation is %s: `gazal rewards audit` checks the "
                "weighted sum; audit samples of your model under this aggregation",
                self.grpo.multi_objective_aggregation)
        check_batch_arithmetic(self.grpo, self.train, world_size_from_env())


# Keys a resumed run may change: speed, logging, checkpoint cadence, monitoring and alarms.
RESUMABLE_KEYS = ([f"train.{k}" for k in TrainSection.RESUMABLE]
                  + ["output_dir", "guards", "heldout.every_steps", "heldout.batch_size",
                     "heldout.at_end", "grpo.log_completions", "grpo.num_completions_to_print",
                     "grpo.vllm_server_base_url", "grpo.vllm_server_host",
                     "grpo.vllm_server_port", "grpo.vllm_server_timeout", "grpo.vllm_group_port",
                     "data.data_dir"])


# `gazal grpo --dry-run --world-size N` checks a recipe for N processes without setting
# WORLD_SIZE (which would make transformers try to start a distributed group).
_WORLD_SIZE_FOR_CHECKS: int | None = None


def set_world_size_for_checks(n: int | None) -> None:
    """Check recipes for ``n`` processes (dry runs); None = the environment's."""
    global _WORLD_SIZE_FOR_CHECKS
    _WORLD_SIZE_FOR_CHECKS = n


def world_size_from_env() -> int:
    """Processes of this run: ``WORLD_SIZE`` (set by accelerate / torchrun; MPI launchers'
    names too, see :mod:`gazal.distributed`), else 1."""
    if _WORLD_SIZE_FOR_CHECKS is not None:
        return _WORLD_SIZE_FOR_CHECKS
    from gazal.distributed import world_size

    return max(1, world_size())


def _multiples_hint(current: int, need: int) -> int:
    """The smallest multiple of ``need`` that is >= ``current``."""
    return max(need, math.ceil(current / need) * need)


def check_batch_arithmetic(g: GRPOSection, t: TrainSection, world_size: int = 1
                           ) -> dict[str, int]:
    """Repeat TRL 1.16's batch checks (GRPOConfig.__post_init__, GRPOTrainer) and raise a
    :class:`ConfigError` that says how to fix a failing one. Returns the resolved sizes."""
    per, accum, ws, G = (t.per_device_train_batch_size, t.gradient_accumulation_steps,
                         world_size, g.num_generations)
    micro = per * ws
    if g.generation_batch_size is not None and g.steps_per_generation is not None:
        raise ConfigError("grpo.generation_batch_size and grpo.steps_per_generation cannot "
                          "both be set (each determines the other); set one of them to null")
    if g.generation_batch_size is not None:
        if g.generation_batch_size % micro:
            raise ConfigError(
                f"grpo.generation_batch_size ({g.generation_batch_size}) must be a multiple "
                f"of the global micro-batch (train.per_device_train_batch_size {per} x "
                f"{ws} process(es) = {micro}); set it to "
                f"{_multiples_hint(g.generation_batch_size, micro)}")
        spg = g.generation_batch_size // micro
        gbs = g.generation_batch_size
    else:
        spg = g.steps_per_generation or accum
        gbs = micro * spg
    if gbs % G:
        # per must make per * ws * spg divisible by G
        need = G // math.gcd(G, ws * spg)
        divisors = [d for d in range(2, gbs + 1) if gbs % d == 0]
        alt = max((d for d in divisors if d <= G), default=None)
        how = (f"set train.per_device_train_batch_size to a multiple of {need} (e.g. "
               f"{_multiples_hint(per, need)})")
        if g.generation_batch_size is not None:
            how = f"set grpo.generation_batch_size to a multiple of {math.lcm(G, micro)}"
        if alt is not None:
            how += f", or grpo.num_generations to a divisor of {gbs} (e.g. {alt})"
        raise ConfigError(
            f"the generation batch ({per} per device x {ws} process(es) x {spg} step(s) per "
            f"generation = {gbs} completions) must be divisible by grpo.num_generations ({G}), "
            f"so every prompt gets all its {G} completions in one batch: {how}")
    return {"generation_batch_size": gbs, "steps_per_generation": spg,
            "prompts_per_generation": gbs // G,
            "completions_per_optimizer_step": micro * accum}
