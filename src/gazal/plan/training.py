"""``gazal plan``: parameters and memory per GPU of a training recipe, before a GPU is touched.

What it estimates (every formula is explained, with sources, in ``docs/plan.md``):

- parameters: the exact count of a decoder-only transformer (Qwen3 / Qwen2 / Llama / Mistral
  ``config.json``, or the built-in Qwen3 table) and of its PEFT adapter (LoRA, DoRA, trained
  token rows, modules saved in full);
- training memory per GPU: frozen weights, adapter, gradients, optimizer states (ZeRO's
  2 + 2 + 12 bytes per trained parameter in mixed precision, Rajbhandari et al. 2020), split
  as the ZeRO stage / FSDP strategy and world size say; activations from per-token
  coefficients fitted on measured tiny models (``bench/plan_calibrate.py``; the form follows
  Korthikanti et al. 2022); the LM-head working memory of TRL's fused log-prob kernel; DoRA's
  per-module weight-sized temporaries; gradient checkpointing;
- vLLM generation memory per GPU: weights / tensor parallel + KV cache
  (2 x layers x kv_heads x head_dim x bytes per token, as vLLM sizes its cache);
- a verdict per GPU and what to change when it does not fit.

Recipes are turned into a :class:`Workload` by a small adapter per recipe kind
(:data:`WORKLOAD_BUILDERS`); ``gazal grpo`` recipes plug in there.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from gazal.config import ConfigError

__all__ = [
    "ACTIVATION_COEFFICIENTS",
    "BUILTIN_SHAPES",
    "GenerationSpec",
    "LoraSpec",
    "MemoryRow",
    "ModelShape",
    "Parallelism",
    "TrainingEstimate",
    "Workload",
    "activation_bytes",
    "count_parameters",
    "count_trainable",
    "estimate_generation",
    "estimate_training",
    "parallelism_from_accelerate",
    "resolve_shape",
]

GIB = 1024 ** 3

# --------------------------------------------------------------------------- model shapes

SUPPORTED_MODEL_TYPES = ("qwen3", "qwen2", "llama", "mistral")


@dataclass(frozen=True)
class ModelShape:
    """The sizes that determine parameters and memory of a decoder-only transformer."""

    name: str
    model_type: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    tie_word_embeddings: bool
    qk_norm: bool = True            # Qwen3: RMSNorm on q and k per head (head_dim weights each)
    qkv_bias: bool = False          # Qwen2: bias on q, k, v
    o_bias: bool = False            # Llama attention_bias: bias on o too
    mlp_bias: bool = False          # Llama mlp_bias
    dtype: str = "bfloat16"         # the checkpoint's dtype (config.json torch_dtype)

    @property
    def q_dim(self) -> int:
        return self.num_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.num_kv_heads * self.head_dim


def _qwen3(name: str, hidden: int, inter: int, layers: int, heads: int, tied: bool) -> ModelShape:
    return ModelShape(name=name, model_type="qwen3", vocab_size=151936, hidden_size=hidden,
                      intermediate_size=inter, num_layers=layers, num_heads=heads, num_kv_heads=8,
                      head_dim=128, tie_word_embeddings=tied)


# The Qwen3 dense models' config.json values (Hugging Face model cards, Qwen/Qwen3-*); with
# them the counts below reproduce the cards' parameter counts (0.6B: 596,049,920; 8B:
# 8,190,735,360; 32B: 32,762,123,264; tests/test_plan.py builds each on the meta device).
BUILTIN_SHAPES: dict[str, ModelShape] = {s.name: s for s in (
    _qwen3("Qwen/Qwen3-0.6B", 1024, 3072, 28, 16, True),
    _qwen3("Qwen/Qwen3-1.7B", 2048, 6144, 28, 16, True),
    _qwen3("Qwen/Qwen3-4B", 2560, 9728, 36, 32, True),
    _qwen3("Qwen/Qwen3-8B", 4096, 12288, 36, 32, False),
    _qwen3("Qwen/Qwen3-14B", 5120, 17408, 40, 40, False),
    _qwen3("Qwen/Qwen3-32B", 5120, 25600, 64, 64, False),
)}


def shape_from_config(config: Mapping[str, Any], name: str = "config.json") -> ModelShape:
    """A :class:`ModelShape` from a Hugging Face ``config.json`` mapping."""
    model_type = config.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ConfigError(f"{name}: model_type {model_type!r} is not one gazal plan knows "
                          f"(supported: {', '.join(SUPPORTED_MODEL_TYPES)})")
    try:
        hidden = int(config["hidden_size"])
        heads = int(config["num_attention_heads"])
        shape = ModelShape(
            name=name, model_type=model_type, vocab_size=int(config["vocab_size"]),
            hidden_size=hidden, intermediate_size=int(config["intermediate_size"]),
            num_layers=int(config["num_hidden_layers"]), num_heads=heads,
            num_kv_heads=int(config.get("num_key_value_heads") or heads),
            head_dim=int(config.get("head_dim") or hidden // heads),
            tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
            qk_norm=model_type == "qwen3",
            qkv_bias=model_type == "qwen2" or bool(config.get("attention_bias", False)),
            o_bias=model_type in ("llama", "mistral") and bool(config.get("attention_bias")),
            mlp_bias=bool(config.get("mlp_bias", False)),
            dtype=str(config.get("torch_dtype") or config.get("dtype") or "bfloat16"))
    except KeyError as err:
        raise ConfigError(f"{name}: missing key {err.args[0]!r}") from None
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{name}: {err}") from None
    return shape


def resolve_shape(name_or_path: str, override: str | None = None) -> ModelShape:
    """The shape of a model: ``override`` (a config.json, a folder holding one, or a built-in
    name) when given, else a local folder's ``config.json``, else the built-in table."""
    source = override or name_or_path
    path = Path(source)
    if path.is_dir():
        path = path / "config.json"
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ConfigError(f"{path}: not valid JSON ({err})") from None
        return shape_from_config(data.get("text_config", data) if isinstance(data, dict) else {},
                                 str(path))
    for key, shape in BUILTIN_SHAPES.items():
        if source.lower() in (key.lower(), key.split("/")[1].lower()):
            return shape
    known = ", ".join(BUILTIN_SHAPES)
    raise ConfigError(f"no config.json for {source!r} (not a local folder or file, and not a "
                      f"built-in shape: {known}); pass --model-config PATH/TO/config.json")


# --------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class Linear:
    """One linear layer of a decoder layer."""

    name: str
    in_features: int
    out_features: int
    bias: bool = False

    @property
    def params(self) -> int:
        return self.in_features * self.out_features + (self.out_features if self.bias else 0)


LINEAR_NAMES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def layer_linears(shape: ModelShape) -> list[Linear]:
    """The linear layers of one decoder layer (attention, then the SwiGLU MLP)."""
    h, i = shape.hidden_size, shape.intermediate_size
    return [Linear("q_proj", h, shape.q_dim, shape.qkv_bias),
            Linear("k_proj", h, shape.kv_dim, shape.qkv_bias),
            Linear("v_proj", h, shape.kv_dim, shape.qkv_bias),
            Linear("o_proj", shape.q_dim, h, shape.o_bias),
            Linear("gate_proj", h, i, shape.mlp_bias),
            Linear("up_proj", h, i, shape.mlp_bias),
            Linear("down_proj", i, h, shape.mlp_bias)]


@dataclass(frozen=True)
class ParamCount:
    """Parameters of the base model."""

    total: int
    embedding: int
    lm_head: int          # 0 when tied to the embedding
    per_layer: int
    layers: int
    final_norm: int


def count_parameters(shape: ModelShape) -> ParamCount:
    """Exact parameter count of the base model (what ``sum(p.numel())`` gives)."""
    h = shape.hidden_size
    per_layer = sum(m.params for m in layer_linears(shape)) + 2 * h  # two RMSNorms
    if shape.qk_norm:
        per_layer += 2 * shape.head_dim
    embedding = shape.vocab_size * h
    lm_head = 0 if shape.tie_word_embeddings else shape.vocab_size * h
    layers = shape.num_layers * per_layer
    return ParamCount(total=embedding + layers + h + lm_head, embedding=embedding,
                      lm_head=lm_head, per_layer=per_layer, layers=layers, final_norm=h)


@dataclass(frozen=True)
class LoraSpec:
    """The adapter, as :class:`gazal.train.config.LoraSection` describes it."""

    r: int = 16
    use_dora: bool = True
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ("all-linear",)
    modules_to_save: tuple[str, ...] = ()
    n_trainable_tokens: int = 0
    bias: str = "none"

    @classmethod
    def from_section(cls, lora: Any) -> LoraSpec:
        """From a recipe's ``lora`` section (trainable tokens counted, not resolved)."""
        n_tokens = len(set(lora.trainable_token_indices)) + len(lora.trainable_tokens)
        return cls(r=lora.r, use_dora=lora.use_dora, dropout=lora.dropout,
                   target_modules=tuple(lora.target_modules),
                   modules_to_save=tuple(lora.modules_to_save), n_trainable_tokens=n_tokens,
                   bias=lora.bias)

    @property
    def all_linear(self) -> bool:
        return tuple(self.target_modules) == ("all-linear",) or \
            set(self.target_modules) >= set(LINEAR_NAMES)

    def peft_targets(self) -> str | list[str]:
        return "all-linear" if tuple(self.target_modules) == ("all-linear",) \
            else list(self.target_modules)

    def adapted(self, shape: ModelShape) -> list[Linear]:
        """The linear layers of one decoder layer that get an adapter."""
        linears = layer_linears(shape)
        if tuple(self.target_modules) == ("all-linear",):
            return linears  # PEFT's all-linear: every linear layer except the output head
        unknown = [t for t in self.target_modules if t not in LINEAR_NAMES and t != "lm_head"]
        if unknown:
            raise ConfigError(f"lora.target_modules: {unknown} match no linear layer of a "
                              f"{shape.model_type} decoder layer ({', '.join(LINEAR_NAMES)})")
        return [m for m in linears if m.name in self.target_modules]


@dataclass(frozen=True)
class TrainableCount:
    """Trainable parameters of the adapter."""

    params: int
    tensors: int             # how many trainable tensors (AdamW keeps a step counter each)
    lora: int
    dora_magnitude: int
    tokens: int
    saved_modules: int
    biases: int


def count_trainable(shape: ModelShape, lora: LoraSpec) -> TrainableCount:
    """Exact trainable parameters of a PEFT adapter on ``shape`` (as ``get_peft_model``)."""
    per_layer = lora.adapted(shape)
    layers = shape.num_layers
    a_b = layers * sum(lora.r * (m.in_features + m.out_features) for m in per_layer)
    magnitude = layers * sum(m.out_features for m in per_layer) if lora.use_dora else 0
    tensors = layers * len(per_layer) * (3 if lora.use_dora else 2)
    h, v = shape.hidden_size, shape.vocab_size
    if "lm_head" in lora.target_modules:
        a_b += lora.r * (h + v)
        magnitude += v if lora.use_dora else 0
        tensors += 3 if lora.use_dora else 2
    # PEFT's trainable_token_indices: one (n_tokens x hidden) delta on the input embedding,
    # shared with the output head when the two are tied
    tokens = lora.n_trainable_tokens * h
    tensors += 1 if lora.n_trainable_tokens else 0
    saved = 0
    for name in lora.modules_to_save:
        if name in ("embed_tokens", "lm_head"):
            saved += v * h
            tensors += 1
        elif name == "norm":
            saved += h
            tensors += 1
        else:
            raise ConfigError(f"lora.modules_to_save: gazal plan knows embed_tokens, lm_head "
                              f"and norm, not {name!r}")
    biases = 0
    if lora.bias in ("all", "lora_only"):
        mods = layer_linears(shape) if lora.bias == "all" else per_layer
        with_bias = [m for m in mods if m.bias]
        biases = layers * sum(m.out_features for m in with_bias)
        tensors += layers * len(with_bias)
    return TrainableCount(params=a_b + magnitude + tokens + saved + biases, tensors=tensors,
                          lora=a_b, dora_magnitude=magnitude, tokens=tokens,
                          saved_modules=saved, biases=biases)


# --------------------------------------------------------------------------- parallelism


@dataclass(frozen=True)
class Parallelism:
    """How training is spread over GPUs (from an accelerate config and --num-gpus).

    ``engine``: ``single``, ``ddp``, ``deepspeed`` or ``fsdp``. ``zero_stage`` (0-3) says what
    is sharded: 1 optimizer states, 2 + gradients, 3 + weights (FSDP FULL_SHARD = 3,
    SHARD_GRAD_OP = 2, NO_SHARD = 0). ``shard_size`` is how many GPUs share the shards
    (world size, or GPUs per node for hybrid sharding).
    """

    engine: str = "single"
    world_size: int = 1
    zero_stage: int = 0
    shard_size: int = 1
    offload_optimizer: bool = False
    offload_params: bool = False
    mixed_precision: str = "no"
    source: str = "single process"

    @property
    def deepspeed(self) -> bool:
        return self.engine == "deepspeed"


def _read_deepspeed_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"deepspeed_config_file not found: {path}") from None
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}: not valid JSON ({err})") from None


def parallelism_from_accelerate(path: str | Path | None, num_gpus: int | None = None,
                                gpus_per_node: int | None = None) -> Parallelism:
    """Read an ``accelerate`` config YAML (``recipes/accelerate/*.yaml``); ``num_gpus``
    overrides its ``num_processes`` (the total over all machines)."""
    from gazal.config import load_yaml_mapping

    if path is None:
        n = num_gpus or 1
        return Parallelism(engine="ddp" if n > 1 else "single", world_size=n,
                           source="no accelerate config: " + ("DDP" if n > 1 else "one GPU"))
    path = Path(path)
    data = load_yaml_mapping(path)
    dist = str(data.get("distributed_type", "NO")).upper()
    n = int(num_gpus or data.get("num_processes") or 1)
    machines = int(data.get("num_machines") or 1)
    per_node = gpus_per_node or max(1, n // machines)
    mp = str(data.get("mixed_precision", "no"))
    if dist in ("NO", "MULTI_GPU", "MULTI_CPU", "MULTI_XPU", "MULTI_NPU"):
        return Parallelism(engine="ddp" if n > 1 else "single", world_size=n,
                           mixed_precision=mp, source=f"{path} ({dist})")
    if dist == "DEEPSPEED":
        ds = dict(data.get("deepspeed_config") or {})
        stage = ds.get("zero_stage")
        off_opt = str(ds.get("offload_optimizer_device", "none")).lower()
        off_par = str(ds.get("offload_param_device", "none")).lower()
        if ds.get("deepspeed_config_file"):
            ds_path = Path(ds["deepspeed_config_file"])
            if not ds_path.is_absolute():
                ds_path = path.parent / ds_path
            zero = _read_deepspeed_json(ds_path).get("zero_optimization", {})
            stage = zero.get("stage", stage)
            off_opt = str((zero.get("offload_optimizer") or {}).get("device", off_opt)).lower()
            off_par = str((zero.get("offload_param") or {}).get("device", off_par)).lower()
        if stage not in (0, 1, 2, 3):
            raise ConfigError(f"{path}: deepspeed_config.zero_stage must be 0-3, got {stage!r}")
        return Parallelism(engine="deepspeed", world_size=n, zero_stage=int(stage),
                           shard_size=n, offload_optimizer=off_opt not in ("none", ""),
                           offload_params=off_par not in ("none", ""), mixed_precision=mp,
                           source=f"{path} (DeepSpeed ZeRO-{stage})")
    if dist == "FSDP":
        fsdp = dict(data.get("fsdp_config") or {})
        strategy = str(fsdp.get("fsdp_sharding_strategy", "")).upper()
        reshard = fsdp.get("fsdp_reshard_after_forward")
        if isinstance(reshard, str) and not reshard.isdigit():
            strategy = strategy or reshard.upper()
            reshard = None
        if not strategy:
            strategy = "FULL_SHARD" if reshard in (None, True, "true", 1) else "SHARD_GRAD_OP"
        stage = {"FULL_SHARD": 3, "HYBRID_SHARD": 3, "SHARD_GRAD_OP": 2,
                 "_HYBRID_SHARD_ZERO2": 2, "NO_SHARD": 0}.get(strategy.lstrip("0123456789_"))
        if stage is None:
            raise ConfigError(f"{path}: unknown FSDP sharding strategy {strategy!r}")
        shard = per_node if "HYBRID" in strategy else n
        return Parallelism(engine="fsdp", world_size=n, zero_stage=stage, shard_size=shard,
                           offload_params=bool(fsdp.get("fsdp_offload_params", False)),
                           offload_optimizer=bool(fsdp.get("fsdp_offload_params", False)),
                           mixed_precision=mp, source=f"{path} (FSDP {strategy})")
    raise ConfigError(f"{path}: distributed_type {dist!r} is not one gazal plan models "
                      "(NO, MULTI_GPU, DEEPSPEED, FSDP)")


# --------------------------------------------------------------------------- workloads


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
    attn = recipe.model.attn_implementation or "sdpa"
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
    spec = LoraSpec.from_section(recipe.lora)
    notes: list[str] = []
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
        padded=True, attn_implementation=recipe.model.attn_implementation or "sdpa",
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


# --------------------------------------------------------------------------- activations

# Bytes held for the backward pass at the end of the forward, for a frozen base with a PEFT
# adapter on every linear layer, as
#   tokens * (L * (c_h*h + c_i*I + c_q*(heads*head_dim) + c_kv*(kv_heads*head_dim) + c_n*heads
#                  + c_r*r*m) + g_h*h + g_d*head_dim + g_v*V + g_0)
#   + L * (k_w * sum(in*out) + k_a * sum(r*(in+out)) + k_o * sum(out)) + k_v * V*h + k_0
# (m = adapted modules per layer, the sums over them; k_w is nonzero only for DoRA with
# dropout under autocast, where PEFT recomputes the base output and keeps a bf16 copy of each
# weight; k_a covers autocast's cached bf16 copies of the adapter; k_v only on the full-logits
# path, where trained token rows materialise the embedding). Fitted by bench/plan_calibrate.py on measured tiny Qwen3
# models (CPU, SDPA, TRL 1.16 / PEFT 0.21 / transformers 5.24); key = (precision, adapter,
# dropout > 0, head). Re-run that script after upgrading those libraries and paste its output.
# fmt: off
ACTIVATION_COEFFICIENTS: dict[tuple[str, str, bool, str], tuple[float, ...]] = {
    ('bf16', 'dora', False, 'full'): (20.06, 16, 12.03, 16.16, 8.104, 1.978, 5.807, 2.277, 5.997, 22.96, 0, -0.00584, 6.077, 2, -747.9),
    ('bf16', 'dora', False, 'fused'): (20.06, 16, 12.03, 16.16, 8.104, 1.978, 1.816, 1.33, 0, 62.24, 0, -0.00584, 6.077, 0, -747.9),
    ('bf16', 'dora', True, 'full'): (36.1, 17.99, 15.95, 16.11, 10.19, 1.943, 5.807, 2.277, 5.997, 22.96, 0, 0.001403, 5.971, 2, -659.8),
    ('bf16', 'dora', True, 'fused'): (36.1, 17.99, 15.95, 16.11, 10.19, 1.943, -4.165, 2.034, 0, 43.54, 0, 0.001403, 5.971, 0, -659.8),
    ('bf16', 'lora', False, 'full'): (12.07, 8.006, 7.916, 8.168, 10.02, 2.021, 5.807, 2.277, 5.997, 22.96, 0, 3.744e-15, -1.443e-14, 2, 40),
    ('bf16', 'lora', False, 'fused'): (12.07, 7.999, 7.956, 8.136, 9.913, 1.992, 1.894, 1.864, 0, 40.46, 0, 0.0002059, 0.04717, 0, -421),
    ('bf16', 'lora', True, 'full'): (28.07, 9.999, 11.95, 8.246, 8.485, 1.996, 5.807, 2.277, 5.997, 22.96, 0, -0.002213, -0.05532, 2, -322.6),
    ('bf16', 'lora', True, 'fused'): (28.07, 9.999, 11.95, 8.246, 8.485, 1.996, -4.174, 1.484, 0, 59.32, 0, -0.002213, -0.05532, 0, -322.6),
    ('bf16-amp', 'dora', False, 'full'): (26.09, 16, 13.98, 16.14, 8.551, 2.018, 5.931, 1.998, 5.999, 19.35, 0, 1.819, 14.63, 2.005, -5206),
    ('bf16-amp', 'dora', False, 'fused'): (26.09, 16, 13.98, 16.14, 8.551, 2.018, 1.843, 1.585, 0, 51.08, 0, 1.819, 14.63, 0, -5206),
    ('bf16-amp', 'dora', True, 'full'): (46.06, 20.01, 17.97, 16.32, 8.531, 2.005, 5.931, 1.998, 5.999, 19.35, 1.971, 1.872, 17.54, 2.005, -6039),
    ('bf16-amp', 'dora', True, 'fused'): (46.06, 20.01, 17.97, 16.32, 8.531, 2.005, -10.14, 1.464, 0, 48.09, 1.971, 1.872, 17.54, 0, -6039),
    ('bf16-amp', 'lora', False, 'full'): (18.04, 8, 9.923, 8.224, 9.916, 2.022, 5.931, 1.998, 5.999, 19.35, 0, 1.994, 0.1597, 2.005, 373.5),
    ('bf16-amp', 'lora', False, 'fused'): (18.05, 8.004, 9.947, 8.111, 10.22, 2.014, 1.938, 2.187, 0, 29.96, 0, 1.764, 3.431, 0, -5094),
    ('bf16-amp', 'lora', True, 'full'): (38.08, 11.99, 13.93, 8.094, 10.16, 2.039, 5.931, 1.998, 5.999, 19.35, 0, 1.921, 1.313, 2.005, -5085),
    ('bf16-amp', 'lora', True, 'fused'): (38.08, 11.99, 13.93, 8.094, 10.16, 2.039, -10.1, 2.283, 0, 31.76, 0, 1.921, 1.313, 0, -5085),
    ('fp32', 'dora', False, 'full'): (32.05, 32.01, 19.89, 28.29, 11.11, 3.959, 7.853, 3.522, 7.999, 28.83, 0, -0.01565, 12.06, 4, -1120),
    ('fp32', 'dora', False, 'fused'): (32.05, 32.01, 19.89, 28.29, 11.11, 3.959, 3.923, 3.621, 0, 42.16, 0, -0.01565, 12.06, 0, -1120),
    ('fp32', 'dora', True, 'full'): (64.07, 36, 28.02, 28.19, 7.814, 4.005, 7.853, 3.522, 7.999, 28.83, 0, -0.0002996, 11.69, 4, -1013),
    ('fp32', 'dora', True, 'fused'): (64.07, 36, 28.02, 28.19, 7.814, 4.005, -8.146, 3.585, 0, 49.82, 0, -0.0002996, 11.69, 0, -1013),
    ('fp32', 'lora', False, 'full'): (16.16, 16.01, 12.08, 11.92, 7.671, 3.979, 7.853, 3.522, 7.999, 28.83, 0, 5.991e-16, -3.508e-14, 4, 40),
    ('fp32', 'lora', False, 'fused'): (16.05, 16.01, 11.97, 12.23, 8.45, 3.999, 3.967, 3.661, 0, 38.03, 0, 0.009477, -0.3039, 0, -665.5),
    ('fp32', 'lora', True, 'full'): (48.03, 20.01, 19.92, 12.27, 9.305, 4.042, 7.853, 3.522, 7.999, 28.83, 0, 0.01, -0.2234, 4, -643.3),
    ('fp32', 'lora', True, 'fused'): (48.03, 20.01, 19.92, 12.27, 9.305, 4.042, -8.031, 3.554, 0, 41.41, 0, 0.01, -0.2234, 0, -643.3),
}
# Gradient checkpointing: bytes held at the end of the forward, as
#   tokens * (e_l*L*h + e_h*h + e_d*head_dim + e_v*V + e_0) + f_v*V*h + f_0
# key = (precision, head); same script.
CHECKPOINTED_COEFFICIENTS: dict[tuple[str, str], tuple[float, ...]] = {
    ('bf16', 'full'): (2, 6, 2, 6, 16, 2, 40),
    ('bf16', 'fused'): (2, 6, 2, 0, 36, 0, -377.7),
    ('bf16-amp', 'full'): (2, 6, 2, 6, 16, 2.002, 809.1),
    ('bf16-amp', 'fused'): (2, 6, 2, 0, 36, 0, -423.4),
    ('fp32', 'full'): (4, 8, 4, 8, 16, 4, 40),
    ('fp32', 'fused'): (4, 8, 4, 0, 36, 0, -784.6),
}
# fmt: on
GC_NAMES = ("e_l", "e_h", "e_d", "e_v", "e_0", "f_v", "f_0")
COEFFICIENT_NAMES = ("c_h", "c_i", "c_q", "c_kv", "c_n", "c_r", "g_h", "g_d", "g_v", "g_0",
                     "k_w", "k_a", "k_o", "k_v", "k_0")

# TRL 1.16's fused log-prob head (trl/kernels/chunked_logprob.py) projects tiles of
# TOKEN_CHUNK_SIZE tokens x _CHUNKED_LOGPROB_CHUNK_SIZE vocabulary entries.
TRL_TOKEN_CHUNK = 4096
TRL_VOCAB_CHUNK = 32768

PRECISIONS = ("fp32", "bf16-amp", "bf16")


def precision_mode(workload: Workload, parallel: Parallelism) -> tuple[str, list[str]]:
    """The calibrated precision closest to how the trainer will run, and notes."""
    notes = []
    low = workload.weights_dtype in ("bfloat16", "float16")
    if parallel.deepspeed and (workload.mixed_precision != "no" or low):
        return "bf16", notes  # DeepSpeed casts the whole model (adapter included) to bf16
    if workload.mixed_precision != "no":
        if not low:
            notes.append("float32 weights with bf16 autocast: activations estimated as for "
                         "bf16 weights")
        return "bf16-amp", notes
    if low:
        notes.append(f"{workload.weights_dtype} weights without train.bf16: the fp32 adapter "
                     "casts its inputs to fp32; estimated as bf16 autocast; set train.bf16: "
                     "true on GPUs")
        return "bf16-amp", notes
    return "fp32", notes


def _coefficients(precision: str, lora: LoraSpec, fused_head: bool) -> tuple[float, ...]:
    key = (precision, "dora" if lora.use_dora else "lora", lora.dropout > 0,
           "fused" if fused_head else "full")
    try:
        return ACTIVATION_COEFFICIENTS[key]
    except KeyError:
        raise ConfigError(f"no activation coefficients for {key}; run "
                          "bench/plan_calibrate.py") from None


def activation_bytes(shape: ModelShape, lora: LoraSpec, precision: str, tokens: int, *,
                     fused_head: bool = True, checkpointing: bool = False) -> tuple[float, float]:
    """(bytes held for the backward pass at the end of the forward, bytes of the one layer
    recomputed during the backward) (see :data:`ACTIVATION_COEFFICIENTS`).

    Without gradient ``checkpointing`` every layer's activations are held and nothing is
    recomputed. With it (HF checkpoints every decoder layer) the layer inputs and the
    embedding / head terms are held, and one layer at a time is recomputed in the backward.
    """
    c = _coefficients(precision, lora, fused_head)
    mods = lora.adapted(shape)
    per_layer_token = (c[0] * shape.hidden_size + c[1] * shape.intermediate_size
                       + c[2] * shape.q_dim + c[3] * shape.kv_dim + c[4] * shape.num_heads
                       + c[5] * lora.r * len(mods))
    global_token = (c[6] * shape.hidden_size + c[7] * shape.head_dim + c[8] * shape.vocab_size
                    + c[9])
    weights = sum(m.in_features * m.out_features for m in mods)
    per_layer_const = (c[10] * weights + c[11] * sum(lora.r * (m.in_features + m.out_features)
                                                     for m in mods)
                       + c[12] * sum(m.out_features for m in mods))
    # the first layer's q/k/v input does not require grad (frozen embedding), so no weight
    # copy is kept for them (bench/plan_calibrate.py)
    first_qkv = sum(m.in_features * m.out_features for m in mods
                    if m.name in ("q_proj", "k_proj", "v_proj"))
    global_const = c[13] * shape.vocab_size * shape.hidden_size + c[14] - c[10] * first_qkv
    if not checkpointing:
        return (tokens * (shape.num_layers * per_layer_token + global_token)
                + shape.num_layers * per_layer_const + global_const), 0.0
    e = CHECKPOINTED_COEFFICIENTS[(precision, "fused" if fused_head else "full")]
    held = tokens * (e[0] * shape.num_layers * shape.hidden_size + e[1] * shape.hidden_size
                     + e[2] * shape.head_dim + e[3] * shape.vocab_size + e[4]) \
        + e[5] * shape.vocab_size * shape.hidden_size + e[6]
    return held, tokens * per_layer_token + per_layer_const


def _bytes(dtype: str) -> int:
    return 4 if dtype == "float32" else 2


def dora_transient_bytes(shape: ModelShape, lora: LoraSpec, precision: str) -> int:
    """Peak of PEFT 0.21's DoRA temporaries for one adapted module in one forward.

    ``DoraLinearLayer.get_lora_weight`` multiplies an (in x in) identity through lora_A and
    lora_B to get B@A (in x out, adapter dtype), casts it to the activation dtype, and
    ``get_weight_norm`` adds it to the (out x in) base weight before taking the row norms:
    in^2*a + in*r*a + in*out*a (+ in*out*b for the cast) + 2*out*in*b, where a is the adapter's
    and b the activations' bytes per element. The largest module (down_proj: in = I) decides.
    """
    if not lora.use_dora:
        return 0
    a = 4 if precision in ("fp32", "bf16-amp") else 2
    b = 4 if precision == "fp32" else 2
    worst = 0
    for m in lora.adapted(shape):
        i, o = m.in_features, m.out_features
        cast = i * o * b if a != b else 0
        worst = max(worst, i * i * a + i * lora.r * a + i * o * a + cast + 2 * o * i * b)
    return worst


def head_transient_bytes(shape: ModelShape, tokens: int, precision: str, fused: bool,
                         device: str = "cuda") -> int:
    """Working memory of the loss head in the backward pass.

    Fused (TRL 1.16 ``ChunkedLogProbFunction``): one (min(N, 4096) x 32768) tile in the compute
    dtype, plus the fp32 gradient of the hidden states (N x h) and its cast back. On CUDA a
    Triton kernel works on the tile in place; elsewhere TRL's torch fallback makes about 7.2
    fp32 temporaries of the tile's used columns (measured, docs/plan.md). Full logits
    (``Trainer.compute_loss`` when PEFT wraps the head): the fp32 gradient of the (N x V)
    log-softmax and the gradient of the logits in the compute dtype.
    """
    b = 4 if precision == "fp32" else 2
    h, v = shape.hidden_size, shape.vocab_size
    if not fused:
        return tokens * v * (4 + b)
    rows = min(tokens, TRL_TOKEN_CHUNK)
    out = rows * TRL_VOCAB_CHUNK * b + tokens * h * (4 + b)
    if device != "cuda":
        out += int(7.2 * rows * min(v, TRL_VOCAB_CHUNK) * 4)
    return out


# --------------------------------------------------------------------------- estimates


@dataclass
class MemoryRow:
    """One line of a memory table."""

    name: str
    bytes: float
    note: str = ""


@dataclass
class TrainingEstimate:
    """Per-GPU training memory, row by row, and the verdict."""

    rows: list[MemoryRow]
    total: float
    gpu_memory: float
    fits: bool
    params_total: int
    params_trainable: int
    precision: str
    parallel: Parallelism
    tokens: int
    advice: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def row(self, name: str) -> float:
        return next(r.bytes for r in self.rows if r.name == name)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["rows"] = [asdict(r) for r in self.rows]
        return d


def optimizer_state_bytes(optim: str) -> tuple[int, str]:
    """Optimizer state bytes per trained parameter (moments only; masters are separate)."""
    name = optim.lower()
    if "8bit" in name:
        return (1 if "lion" in name else 2), "8-bit states (bitsandbytes)"
    if "lion" in name:
        return 4, "Lion: one fp32 moment"
    if "adafactor" in name:
        return 0, "Adafactor: factored second moment (~0 per parameter)"
    if name.startswith("sgd"):
        return 0, "SGD without momentum"
    if "adam" in name or "rmsprop" in name:
        return (8 if "adam" in name else 4), "fp32 moments"
    return 8, f"unknown optimizer {optim!r}: assumed AdamW (two fp32 moments)"


def estimate_training(workload: Workload, parallel: Parallelism, *, gpu_memory_gib: float = 80.0,
                      overhead_gib: float = 2.0, device: str = "cuda",
                      advise: bool = True) -> TrainingEstimate:
    """Per-GPU memory of one training step (see docs/plan.md for each row).

    ``device='cpu'`` models TRL's torch fallback of the fused head (the tests measure on CPU).
    """
    shape, lora = workload.model, workload.lora
    params = count_parameters(shape)
    trainable = count_trainable(shape, lora)
    precision, notes = precision_mode(workload, parallel)
    notes = list(workload.notes) + notes
    n_total, n_train = params.total, trainable.params
    b_w = _bytes(workload.weights_dtype)
    stage, shard = parallel.zero_stage, max(1, parallel.shard_size)
    if parallel.engine in ("single", "ddp"):
        stage, shard = 0, 1
    rows: list[MemoryRow] = []

    # weights of the frozen base; sharded from stage 3 on
    frozen = (n_total - trainable.saved_modules) * b_w
    w_div = shard if stage >= 3 else 1
    if parallel.offload_params and stage >= 3:
        rows.append(MemoryRow("base weights", 0, "offloaded to CPU"))
    else:
        rows.append(MemoryRow("base weights", frozen / w_div,
                              f"{n_total / 1e9:.2f}B x {b_w} B" + (f" / {w_div} GPUs"
                                                                   if w_div > 1 else "")))
    if stage >= 3 and not parallel.offload_params:
        layer = params.per_layer * b_w
        head = max(params.lm_head, params.embedding) * b_w
        gathered = max(2 * layer, layer + head)
        rows.append(MemoryRow("gathered weights", gathered,
                              "working set of all-gathered layers (current + prefetched, or "
                              "a layer and the embedding / head)"))

    # the adapter: weights, gradients, optimizer states
    state_bytes, state_note = optimizer_state_bytes(workload.optim)
    if precision == "bf16":  # DeepSpeed: bf16 weights and gradients, fp32 master + moments
        w_t, g_t, master = 2, 2, 4
    else:  # fp32 adapter (PEFT autocast_adapter_dtype, FSDP upcast): fp32 weights and grads
        w_t, g_t, master = 4, 4, 0
    rows.append(MemoryRow("adapter weights", n_train * w_t / w_div,
                          f"{n_train / 1e6:.1f}M trainable x {w_t} B"))
    g_div = shard if stage >= 2 else 1
    rows.append(MemoryRow("gradients", n_train * g_t / g_div,
                          f"{g_t} B per trained parameter" + (f" / {g_div}" if g_div > 1 else "")))
    o_div = shard if stage >= 1 else 1
    opt = n_train * (state_bytes + master) + 4 * trainable.tensors  # + AdamW step counters
    if parallel.offload_optimizer:
        rows.append(MemoryRow("optimizer states", 0, "offloaded to CPU"))
    else:
        rows.append(MemoryRow("optimizer states", opt / o_div,
                              f"{state_bytes + master} B per trained parameter ({state_note}"
                              + (", fp32 master copy" if master else "") + ")"
                              + (f" / {o_div}" if o_div > 1 else "")))
    if parallel.engine == "ddp" and parallel.world_size > 1:
        rows.append(MemoryRow("communication buffers", n_train * g_t,
                              "DDP gradient buckets (a copy of the gradients)"))
    elif parallel.deepspeed and parallel.world_size > 1:
        bucket = min(5e8, n_train) * g_t  # DeepSpeed default reduce / allgather buckets
        rows.append(MemoryRow("communication buffers", bucket * (2 if stage <= 2 else 1),
                              "DeepSpeed reduce (and allgather) buckets, 5e8 elements max"))

    # activations
    tokens = workload.tokens
    act, recompute = activation_bytes(shape, lora, precision, tokens,
                                      fused_head=workload.fused_head,
                                      checkpointing=workload.gradient_checkpointing)
    if workload.gradient_checkpointing:
        rows.append(MemoryRow("activations", act,
                              f"checkpointed: the {shape.num_layers} layer inputs, {tokens} "
                              f"tokens ({workload.micro_batch} x {workload.seq_len})"))
        rows.append(MemoryRow("recomputed layer", recompute,
                              "one layer's activations, rebuilt in the backward"))
    else:
        rows.append(MemoryRow("activations", act, f"{tokens} tokens ({workload.micro_batch} x "
                                                  f"{workload.seq_len}), all layers kept"))
    if workload.padded and workload.attn_implementation != "flash_attention_2":
        mask = workload.micro_batch * workload.seq_len ** 2
        rows.append(MemoryRow("attention mask", mask, "padded batch: a (b, 1, s, s) boolean "
                                                      "mask for SDPA"))
    head = head_transient_bytes(shape, tokens, precision, workload.fused_head, device)
    dora = dora_transient_bytes(shape, lora, precision)
    rows.append(MemoryRow("logits / loss", head,
                          "TRL fused log-prob tiles + fp32 hidden-state gradient"
                          if workload.fused_head else "full (N x V) logits: fp32 gradient "
                                                      "of the log-softmax + logits gradient"))
    if dora:
        rows.append(MemoryRow("DoRA temporaries", dora,
                              "largest module's identity x B@A and W + s*B@A (per forward, "
                              "transient)"))
    rows.append(MemoryRow("CUDA context + allocator", overhead_gib * GIB,
                          "CUDA/NCCL context, workspaces, fragmentation (assumed)"))
    if workload.reference_model:
        rows.append(MemoryRow("reference model", 0, workload.reference_model))
    if workload.colocated_vllm == "awake" and workload.generation is not None:
        share = workload.generation.gpu_memory_utilization
        rows.append(MemoryRow("colocated vLLM", share * gpu_memory_gib * GIB,
                              f"gpu_memory_utilization {share} x {gpu_memory_gib:g} GiB, held "
                              "through training (no sleep mode)"))
    elif workload.colocated_vllm == "asleep":
        rows.append(MemoryRow("colocated vLLM (asleep)", VLLM_RUNTIME_GIB * GIB,
                              "sleep mode frees its weights and KV cache while training; CUDA "
                              "graphs + runtime stay (assumed)"))
    generation_kv = 0.0
    if workload.inprocess_generation is not None:
        g = workload.inprocess_generation
        b_kv = 4 if precision == "fp32" else 2
        generation_kv = (kv_bytes_per_token(shape, 1, b_kv) * g.sequences * g.length
                         + g.sequences * shape.vocab_size * 4)
        rows.append(MemoryRow("generation KV cache", generation_kv,
                              f"transformers generate(): {g.sequences} x {g.length} tokens x "
                              f"{kv_bytes_per_token(shape, 1, b_kv) / 1024:.0f} KiB + fp32 "
                              "logits of a step; between training steps, not with activations"))

    # not alive at the same time: the head's backward (first in the backward pass) and the
    # recomputed layer with DoRA's temporaries (forward / recompute): count the larger
    transient = max(head, recompute + dora)
    total = sum(r.bytes for r in rows) - head - dora - recompute + transient - generation_kv
    # GRPO's generation and the training step take turns: the larger of the two phases
    step_only = act + transient + sum(r.bytes for r in rows if r.name == "attention mask")
    generating = 0.0
    if generation_kv:
        generating = total - step_only + generation_kv
    if workload.colocated_vllm == "asleep" and workload.generation is not None:
        awake = workload.generation.gpu_memory_utilization * gpu_memory_gib * GIB
        generating = total - step_only - VLLM_RUNTIME_GIB * GIB + awake
    phase_note = ""
    if generating:
        phase_note = ("generation phase (no training activations; "
                      + ("transformers' KV cache" if generation_kv else "vLLM awake at its "
                         "gpu_memory_utilization share") + f"): {generating / GIB:.2f} GiB, "
                      f"training step: {total / GIB:.2f} GiB; the total is the larger")
        total = max(total, generating)
    gpu_memory = gpu_memory_gib * GIB
    est = TrainingEstimate(rows=rows, total=total, gpu_memory=gpu_memory,
                           fits=total <= gpu_memory, params_total=n_total,
                           params_trainable=n_train, precision=precision, parallel=parallel,
                           tokens=tokens, notes=notes)
    if phase_note:
        est.notes.append(phase_note)
    if workload.colocated_vllm and workload.generation is not None and \
            parallel.world_size % workload.generation.tensor_parallel:
        est.notes.append(f"TRL refuses this: colocated vLLM's tensor parallel size "
                         f"({workload.generation.tensor_parallel}) must divide the number of "
                         f"processes ({parallel.world_size}); set "
                         "--grpo.vllm_tensor_parallel_size")
    if not lora.all_linear:
        est.notes.append("activation coefficients are fitted for adapters on every linear "
                         "layer; with fewer adapted modules the estimate is an upper bound")
    if advise:
        est.advice = advise_training(workload, parallel, est, gpu_memory_gib, overhead_gib,
                                     device)
    return est


def _with(workload: Workload, **changes: Any) -> Workload:
    return replace(workload, **changes)


def advise_training(workload: Workload, parallel: Parallelism, est: TrainingEstimate,
                    gpu_memory_gib: float, overhead_gib: float,
                    device: str = "cuda") -> list[str]:
    """What to change when the estimate does not fit (each suggestion re-estimated)."""
    if est.fits:
        return []
    tips: list[str] = []

    def total(w: Workload, p: Parallelism) -> float:
        return estimate_training(w, p, gpu_memory_gib=gpu_memory_gib,
                                 overhead_gib=overhead_gib, device=device, advise=False).total

    def fmt(x: float) -> str:
        return f"{x / GIB:.1f} GiB"

    if not workload.gradient_checkpointing:
        t = total(_with(workload, gradient_checkpointing=True), parallel)
        tips.append(f"enable gradient checkpointing (--train.gradient_checkpointing true): "
                    f"{fmt(t)}")
    if parallel.zero_stage < 3 and parallel.world_size > 1:
        z3 = replace(parallel, engine="deepspeed", zero_stage=3, shard_size=parallel.world_size)
        t = total(workload, z3)
        tips.append(f"shard the weights (recipes/accelerate/zero3.yaml or fsdp.yaml): {fmt(t)}")
    elif parallel.world_size == 1:
        tips.append("use more GPUs with ZeRO-3 / FSDP (--num-gpus N with "
                    "recipes/accelerate/zero3.yaml)")
    if workload.micro_batch > 1:
        half = max(1, workload.micro_batch // 2)
        t = total(_with(workload, micro_batch=half), parallel)
        tips.append(f"halve the micro-batch (--train.per_device_train_batch_size {half}, double "
                    f"gradient_accumulation_steps to keep the batch): {fmt(t)}")
    if workload.padded and workload.attn_implementation != "flash_attention_2":
        t = total(_with(workload, padded=False, attn_implementation="flash_attention_2"),
                  parallel)
        tips.append(f"flash_attention_2 with packing (no (s x s) mask): {fmt(t)}")
    if workload.colocated_vllm == "awake":
        t = total(_with(workload, colocated_vllm="asleep"), parallel)
        tips.append(f"put colocated vLLM to sleep during training (--grpo.vllm_enable_sleep_mode "
                    f"true), or generate on a `trl vllm-serve` node (--grpo.vllm_mode server): "
                    f"{fmt(t)}")
    if not parallel.offload_optimizer and parallel.engine == "deepspeed":
        t = total(workload, replace(parallel, offload_optimizer=True))
        tips.append(f"offload optimizer states to CPU (offload_optimizer_device: cpu): {fmt(t)}")
    if workload.kind == "grpo":
        half = (workload.seq_len - workload.prompt_len) // 2
        shorter = _with(workload, seq_len=workload.prompt_len + half)
        if workload.inprocess_generation is not None:
            shorter = _with(shorter, inprocess_generation=replace(
                workload.inprocess_generation, length=workload.prompt_len + half))
        tips.append(f"shorter completions ({workload.length_flag} {half}, and "
                    f"--reward.length.max_tokens): {fmt(total(shorter, parallel))}")
    else:
        tips.append(f"shorter sequences ({workload.length_flag} {workload.seq_len // 2}): "
                    f"{fmt(total(_with(workload, seq_len=workload.seq_len // 2), parallel))}")
    return tips


def kv_bytes_per_token(shape: ModelShape, tensor_parallel: int = 1, bytes_per_value: int = 2
                       ) -> int:
    """KV-cache bytes per token per GPU: keys and values of every layer, the KV heads split
    over tensor parallelism (replicated when there are more GPUs than KV heads)."""
    kv_heads = math.ceil(shape.num_kv_heads / max(1, tensor_parallel))
    return 2 * shape.num_layers * kv_heads * shape.head_dim * bytes_per_value


# vLLM's memory besides weights, activations and KV cache (CUDA graphs, NCCL, runtime):
# an assumption, as for the training's CUDA context
VLLM_RUNTIME_GIB = 1.5


@dataclass
class GenerationEstimate:
    """Per-GPU vLLM memory for a batch of sequences."""

    rows: list[MemoryRow]
    kv_bytes_per_token: float
    kv_needed: float
    kv_available: float
    max_sequences: int
    budget: float
    fits: bool
    spec: GenerationSpec
    advice: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["rows"] = [asdict(r) for r in self.rows]
        return d


def estimate_generation(shape: ModelShape, spec: GenerationSpec, *, gpu_memory_gib: float = 80.0,
                        weights_bytes: int = 2,
                        runtime_gib: float = VLLM_RUNTIME_GIB) -> GenerationEstimate:
    """vLLM's memory per GPU: weights / TP, a profiling activation peak, CUDA graphs and
    runtime, and the KV cache that gets what is left of ``gpu_memory_utilization``."""
    tp = max(1, spec.tensor_parallel)
    params = count_parameters(shape).total
    weights = params * weights_bytes / tp
    kv_per_token = kv_bytes_per_token(shape, tp, spec.kv_cache_bytes)
    # vLLM profiles one forward of max_num_batched_tokens to size its activation peak: the
    # MLP's (gate, up) output and the residual stream dominate; the sampler's fp32 logits
    acts = spec.max_num_batched_tokens * (
        2 * shape.intermediate_size / tp + 4 * shape.hidden_size) * weights_bytes \
        + min(spec.sequences, 256) * shape.vocab_size * 4
    runtime = runtime_gib * GIB
    budget = spec.gpu_memory_utilization * gpu_memory_gib * GIB
    available = budget - weights - acts - runtime
    needed = kv_per_token * spec.sequences * spec.length
    max_seqs = max(0, int(available // (kv_per_token * spec.length))) if available > 0 else 0
    rows = [MemoryRow("weights", weights, f"{params / 1e9:.2f}B x {weights_bytes} B"
                                          + (f" / TP {tp}" if tp > 1 else "")),
            MemoryRow("activation peak", acts, f"profiled at {spec.max_num_batched_tokens} "
                                               "batched tokens + sampler logits"),
            MemoryRow("CUDA graphs + runtime", runtime, "assumed"),
            MemoryRow("KV cache", needed,
                      f"{spec.sequences} seqs x {spec.length} tokens x "
                      f"{kv_per_token / 1024:.0f} KiB/token")]
    est = GenerationEstimate(rows=rows, kv_bytes_per_token=kv_per_token, kv_needed=needed,
                             kv_available=max(0.0, available), max_sequences=max_seqs,
                             budget=budget, fits=needed <= available, spec=spec)
    if available <= 0:
        est.advice.append(f"the weights alone exceed gpu_memory_utilization x memory; use "
                          f"tensor parallelism (--tensor-parallel {tp * 2})")
    elif not est.fits:
        # vLLM does not fail here: it schedules what fits and queues (or preempts) the rest
        est.advice.append(f"to run all {spec.sequences} at once (vLLM queues the rest): "
                          f"--tensor-parallel {tp * 2}, kv_cache_dtype fp8, or a higher "
                          "gpu_memory_utilization")
    return est


# --------------------------------------------------------------------------- report


def _gib(x: float) -> str:
    return f"{x / GIB:7.2f}"


def format_report(workload: Workload, train: TrainingEstimate,
                  gen: GenerationEstimate | None) -> str:
    """The text ``gazal plan`` prints."""
    shape, p = workload.model, train.parallel
    lines = [f"model: {shape.name} ({shape.model_type}, {shape.num_layers} layers, hidden "
             f"{shape.hidden_size}, vocab {shape.vocab_size})",
             f"parameters: {train.params_total:,} total, {train.params_trainable:,} trainable "
             f"({100 * train.params_trainable / train.params_total:.2f}%: "
             f"{'DoRA' if workload.lora.use_dora else 'LoRA'} r={workload.lora.r})",
             f"parallelism: {p.source}; {p.world_size} GPU(s)",
             f"precision: weights {workload.weights_dtype}, mixed precision "
             f"{workload.mixed_precision} -> {train.precision}; gradient checkpointing "
             f"{'on' if workload.gradient_checkpointing else 'off'}; micro-batch "
             f"{workload.micro_batch} x {workload.seq_len} tokens",
             "", "training memory per GPU (GiB):"]
    width = max(len(r.name) for r in train.rows)
    for r in train.rows:
        lines.append(f"  {r.name:<{width}} {_gib(r.bytes)}  {r.note}")
    lines.append(f"  {'total':<{width}} {_gib(train.total)}  (transients: the larger of "
                 "logits / loss and " + ("recomputed layer + " if workload.gradient_checkpointing
                                         else "") + "DoRA temporaries)")
    verdict = "fits" if train.fits else "DOES NOT FIT"
    lines.append(f"  -> {verdict} in {train.gpu_memory / GIB:.0f} GiB "
                 f"({100 * train.total / train.gpu_memory:.0f}%)")
    for tip in train.advice:
        lines.append(f"     try: {tip}")
    for note in train.notes:
        lines.append(f"  note: {note}")
    if gen is not None:
        s = gen.spec
        lines += ["", f"vLLM generation per GPU (GiB): {s.sequences} sequences x {s.length} "
                      f"tokens, tensor parallel {s.tensor_parallel}, gpu_memory_utilization "
                      f"{s.gpu_memory_utilization}" + (f" ({s.note})" if s.note else "")]
        width = max(len(r.name) for r in gen.rows)
        for r in gen.rows:
            lines.append(f"  {r.name:<{width}} {_gib(r.bytes)}  {r.note}")
        lines.append(f"  KV cache room: {gen.kv_available / GIB:.2f} GiB = {gen.max_sequences} "
                     f"sequences of {s.length} tokens at once")
        lines.append("  -> " + ("fits" if gen.fits else "does not fit all at once"))
        for tip in gen.advice:
            lines.append(f"     try: {tip}")
    return "\n".join(lines)


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
