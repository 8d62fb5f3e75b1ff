"""What one training process does, independent of the recipe format: a :class:`Workload`
built from a recipe by one adapter per recipe kind (:data:`WORKLOAD_BUILDERS`), read without
weights or data (:func:`load_workload`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gazal.config import ConfigError
from gazal.plan.shapes import LoraSpec, ModelShape, resolve_shape


def planned_attn(name: str | None) -> str:
    """The attention kernel a plan assumes: null = transformers' default (sdpa); ``auto`` =
    flash_attention_2, what ``auto`` picks on a GPU machine with flash-attn installed (the
    planning machine may have neither)."""
    if name == "auto":
        return "flash_attention_2"
    return name or "sdpa"

@dataclass(frozen=True)
class GenerationSpec:
    """What vLLM generates at once: sequences and tokens per sequence (prompt + completion)."""

    sequences: int
    length: int
    tensor_parallel: int = 1
    gpu_memory_utilization: float = 0.9
    kv_cache_bytes: int = 2           # bf16/fp16 cache; 1 with kv_cache_dtype fp8
    max_num_batched_tokens: int = 8192
    note: str = ""


@dataclass(frozen=True)
class Workload:
    """What one training process does, independent of the recipe format."""

    kind: str
    model: ModelShape
    lora: LoraSpec
    weights_dtype: str                # float32 / bfloat16 / float16
    mixed_precision: str              # "no", "bf16" or "fp16" (the trainer's autocast)
    gradient_checkpointing: bool
    micro_batch: int                  # sequences per GPU per forward
    seq_len: int                      # tokens per sequence (the longest the recipe allows)
    optim: str = "adamw_torch"
    padded: bool = True               # padded batches (an attention mask per row)
    attn_implementation: str = "sdpa"
    fused_head: bool = True           # TRL's chunked log-prob head (plain nn.Linear head)
    generation: GenerationSpec | None = None
    notes: tuple[str, ...] = ()
    # GRPO: a colocated vLLM engine in every training process ("awake": it keeps its
    # gpu_memory_utilization share through training; "asleep": vllm_enable_sleep_mode frees its
    # weights and KV cache during training); "" = none (no vLLM, or server mode)
    colocated_vllm: str = ""
    # GRPO without vLLM: transformers generates the round's completions in the training
    # process (its KV cache, alive while the training activations are not)
    inprocess_generation: GenerationSpec | None = None
    reference_model: str = ""         # GRPO with beta > 0: how the reference policy is held
    prompt_len: int = 0               # GRPO: the prompt part of seq_len (the rest: completion)
    length_flag: str = "--sft.max_length"  # the recipe key that sets seq_len (for advice)

    @property
    def tokens(self) -> int:
        return self.micro_batch * self.seq_len


def _dtype_of(name: str, shape: ModelShape) -> str:
    return shape.dtype if name == "auto" else name


def workload_from_sft(recipe: Any, shape: ModelShape) -> Workload:
    """The :class:`Workload` of a ``gazal sft`` recipe (:class:`gazal.train.config.SFTRecipe`)."""
    t, s, lora = recipe.train, recipe.sft, recipe.lora
    spec = LoraSpec.from_section(lora)
    # gazal's SFTTrainer falls back to full logits when PEFT wraps the head
    # (gazal.train.sft.GazalSFTTrainer): trained token rows on tied embeddings, a saved
    # lm_head, or an adapter on it
    head_wrapped = bool(spec.n_trainable_tokens and shape.tie_word_embeddings) or \
        "lm_head" in spec.modules_to_save or "lm_head" in spec.target_modules
    packed = s.packing or s.padding_free
    attn = planned_attn(recipe.model.attn_implementation)
    notes = []
    if packed:
        notes.append("packed / padding-free rows: one row of sft.max_length tokens per "
                     "sequence slot")
    return Workload(
        kind="sft", model=shape, lora=spec, weights_dtype=_dtype_of(recipe.model.dtype, shape),
        mixed_precision="bf16" if t.bf16 else "fp16" if t.fp16 else "no",
        gradient_checkpointing=t.gradient_checkpointing,
        micro_batch=t.per_device_train_batch_size, seq_len=s.max_length, optim=t.optim,
        padded=not packed, attn_implementation=attn, fused_head=not head_wrapped,
        generation=GenerationSpec(sequences=64, length=s.max_length,
                                  note="gazal eval / generation with the trained model"),
        notes=tuple(notes))


def lora_spec_of(lora: Any) -> tuple[LoraSpec, str]:
    """The adapter a GRPO recipe trains, and a note for the report (or "").

    ``lora.init: continue`` trains the saved SFT adapter in ``lora.adapter`` with its own r,
    alpha, DoRA, rsLoRA, target and saved modules (``gazal grpo`` loads it as saved, only
    ``lora_dropout`` replaced by the recipe's): they are read from its
    ``adapter_config.json``, not from the recipe's ``lora`` keys. An adapter not yet written
    (planning before the SFT run) falls back to those keys, and the note says so."""
    if getattr(lora, "init", "fresh") != "continue":
        return LoraSpec.from_section(lora), ""
    folder = Path(lora.adapter)
    config_file = folder / "adapter_config.json"
    if not config_file.is_file():
        return LoraSpec.from_section(lora), (
            f"lora.adapter {folder} has no adapter_config.json yet: the recipe's lora.r, "
            "alpha, use_dora and target_modules assumed; plan again once the SFT adapter "
            "exists")
    from peft import PeftConfig

    try:
        config = PeftConfig.from_pretrained(str(folder))
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{config_file}: not a PEFT adapter config ({err})") from None
    if config.peft_type != "LORA":  # PeftType is a str enum
        raise ConfigError(f"{config_file}: a {config.peft_type} adapter; gazal trains LoRA")
    spec = LoraSpec.from_peft_config(config, dropout=lora.dropout, where=str(config_file))
    return spec, (f"lora.init continue: the adapter's own settings from {config_file} "
                  f"(r={spec.r}, alpha={spec.alpha:g}, DoRA {spec.use_dora}, rsLoRA "
                  f"{spec.use_rslora}), lora_dropout {spec.dropout:g} from the recipe")


# GRPO prompts have no length limit in TRL 1.16 (no max_prompt_length): the longest prompt is
# vllm_max_model_length - max_completion_length when the recipe sets the former, else this
# (a medical multiple-choice question with the system prompt is 200-600 tokens with Qwen3's
# tokenizer); `gazal plan --prompt-len` overrides it.
DEFAULT_GRPO_PROMPT_LEN = 512


def workload_from_grpo(recipe: Any, shape: ModelShape, prompt_len: int | None = None
                       ) -> Workload:
    """The :class:`Workload` of a ``gazal grpo`` recipe
    (:class:`gazal.train.grpo_config.GRPORecipe`).

    Training: ``per_device_train_batch_size`` completions per forward, each prompt +
    ``max_completion_length`` tokens, through TRL's fused log-prob head. Generation: each
    process generates its share of a round (``per_device_train_batch_size x
    steps_per_generation`` completions): with vLLM colocated, a TP group's engine serves its
    ``vllm_tensor_parallel_size`` processes; in server mode the server takes the whole round;
    without vLLM, transformers generates in the training process."""
    t, g = recipe.train, recipe.grpo
    spec, lora_note = lora_spec_of(recipe.lora)
    notes: list[str] = [lora_note] if lora_note else []
    if prompt_len is None:
        if g.vllm_max_model_length and g.vllm_max_model_length > g.max_completion_length:
            prompt_len = g.vllm_max_model_length - g.max_completion_length
            notes.append(f"prompt length {prompt_len} = grpo.vllm_max_model_length - "
                         "grpo.max_completion_length (set --prompt-len to change)")
        else:
            prompt_len = DEFAULT_GRPO_PROMPT_LEN
            notes.append(f"prompt length {prompt_len} tokens assumed (TRL does not cap prompts; "
                         "set --prompt-len to your longest)")
    seq_len = prompt_len + g.max_completion_length
    if g.generation_batch_size is not None:
        per_process = g.generation_batch_size
        notes.append("grpo.generation_batch_size is global: generation rows count the whole "
                     "round on one process (divide by the processes for the real share)")
    else:
        per_process = t.per_device_train_batch_size * (g.steps_per_generation
                                                       or t.gradient_accumulation_steps)
    generation = inprocess = None
    colocated = ""
    if g.use_vllm and g.vllm_mode == "colocate":
        tp = g.vllm_tensor_parallel_size
        generation = GenerationSpec(
            sequences=per_process * tp, length=seq_len, tensor_parallel=tp,
            gpu_memory_utilization=g.vllm_gpu_memory_utilization,
            max_num_batched_tokens=4096,  # TRL 1.16 colocate's LLM(max_num_batched_tokens=4096)
            note="colocated: one engine per TP group of training processes")
        colocated = "asleep" if g.vllm_enable_sleep_mode else "awake"
    elif g.use_vllm:
        # the server's settings are trl vllm-serve's flags, not the recipe's
        generation = GenerationSpec(
            sequences=per_process, length=seq_len,
            note="`trl vllm-serve` on other GPUs: pass --tensor-parallel and "
                 "--gpu-memory-utilization as launched, --gen-seqs N x processes for a round")
    else:
        inprocess = GenerationSpec(sequences=per_process, length=seq_len,
                                   note="transformers generate() in the training process")
    reference = ""
    if g.beta > 0:
        # gazal always trains a PEFT adapter: TRL then takes the reference log-probs from the
        # same model with the adapter disabled, no second copy (GRPOTrainer: ref_model None
        # for PEFT models), in a no-grad forward before the training forward
        reference = "adapter disabled (PEFT): no copy; its no-grad forward precedes training's"
    return Workload(
        kind="grpo", model=shape, lora=spec,
        weights_dtype=_dtype_of(recipe.model.dtype, shape),
        mixed_precision="bf16" if t.bf16 else "fp16" if t.fp16 else "no",
        gradient_checkpointing=t.gradient_checkpointing,
        micro_batch=t.per_device_train_batch_size, seq_len=seq_len, optim=t.optim,
        padded=True, attn_implementation=planned_attn(recipe.model.attn_implementation),
        fused_head=True,  # TRL 1.16 GRPO: model(..., fused_lm_head=True) for every log-prob
        generation=generation, inprocess_generation=inprocess, colocated_vllm=colocated,
        reference_model=reference, length_flag="--grpo.max_completion_length",
        prompt_len=prompt_len,
        notes=tuple(notes))


# Recipe kind -> workload builder (recipe, shape) -> Workload.
WORKLOAD_BUILDERS: dict[str, Callable[..., Workload]] = {
    "sft": workload_from_sft,
    "grpo": workload_from_grpo,
}



def detect_kind(data: Mapping[str, Any], path: str = "recipe") -> str:
    """``sft`` or ``grpo`` from a recipe's top-level keys."""
    if "grpo" in data:
        return "grpo"
    if "sft" in data or (isinstance(data.get("data"), Mapping) and "train" in data["data"]):
        return "sft"
    raise ConfigError(f"{path}: cannot tell the recipe kind from its keys "
                      f"({', '.join(sorted(data)) or 'none'}); pass --kind sft")


def load_workload(recipe_path: str, overrides: Sequence[str] = (), *, kind: str | None = None,
                  model_config: str | None = None, prompt_len: int | None = None) -> Workload:
    """Read a recipe into a :class:`Workload` (no weights, no data)."""
    from gazal.config import load_config, load_yaml_mapping

    data = load_yaml_mapping(recipe_path)
    kind = kind or detect_kind(data, recipe_path)
    if kind not in WORKLOAD_BUILDERS:
        raise ConfigError(f"gazal plan does not read {kind} recipes yet (known: "
                          f"{', '.join(WORKLOAD_BUILDERS)})")
    if kind == "sft":
        from gazal.train.config import SFTRecipe

        recipe = load_config(SFTRecipe, recipe_path, list(overrides))
        shape = resolve_shape(recipe.model.name_or_path, model_config)
        return WORKLOAD_BUILDERS[kind](recipe, shape)
    from gazal.train.grpo_config import GRPORecipe

    recipe = load_config(GRPORecipe, recipe_path, list(overrides))
    shape = resolve_shape(recipe.model.name_or_path, model_config)
    return WORKLOAD_BUILDERS[kind](recipe, shape, prompt_len)
