"""Model shapes and exact parameter counts: the base model (from a ``config.json`` or the
built-in Qwen3 table) and its PEFT adapter (LoRA, DoRA, trained token rows, saved modules)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gazal.config import ConfigError

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
    """The adapter, as a recipe's :class:`gazal.train.config.LoraSection` describes it
    (:meth:`from_section`) or as a saved adapter's PEFT config does (:meth:`from_peft_config`)."""

    r: int = 16
    use_dora: bool = True
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ("all-linear",)
    modules_to_save: tuple[str, ...] = ()
    n_trainable_tokens: int = 0
    bias: str = "none"
    alpha: float = 32               # lora_alpha and rsLoRA scale the update, not the memory
    use_rslora: bool = True

    @classmethod
    def from_section(cls, lora: Any) -> LoraSpec:
        """From a recipe's ``lora`` section (trainable tokens counted, not resolved)."""
        n_tokens = len(set(lora.trainable_token_indices)) + len(lora.trainable_tokens)
        return cls(r=lora.r, use_dora=lora.use_dora, dropout=lora.dropout,
                   target_modules=tuple(lora.target_modules),
                   modules_to_save=tuple(lora.modules_to_save), n_trainable_tokens=n_tokens,
                   bias=lora.bias, alpha=lora.alpha, use_rslora=lora.use_rslora)

    @classmethod
    def from_peft_config(cls, config: Any, *, dropout: float | None = None,
                         where: str = "adapter_config.json") -> LoraSpec:
        """From a saved adapter's PEFT ``LoraConfig`` (``PeftConfig.from_pretrained``);
        ``dropout`` replaces its ``lora_dropout`` (as ``gazal grpo`` does for a continued
        adapter)."""
        targets = config.target_modules
        if isinstance(targets, str):
            if targets != "all-linear":
                raise ConfigError(f"{where}: target_modules is the pattern {targets!r}; gazal "
                                  "plan needs module names (or 'all-linear')")
            targets = ("all-linear",)
        else:
            # PEFT saves a resolved 'all-linear' as full module paths
            # ('model.layers.0.mlp.down_proj'); it matches targets by their last component
            targets = {t.rsplit(".", 1)[-1] for t in targets}
        tokens = config.trainable_token_indices or []
        if isinstance(tokens, dict):  # {layer name: ids}: the same rows of each layer
            tokens = {i for ids in tokens.values() for i in ids}
        return cls(r=int(config.r), use_dora=bool(config.use_dora),
                   dropout=float(config.lora_dropout if dropout is None else dropout),
                   target_modules=tuple(sorted(targets)),
                   modules_to_save=tuple(config.modules_to_save or ()),
                   n_trainable_tokens=len(set(tokens)), bias=str(config.bias),
                   alpha=config.lora_alpha, use_rslora=bool(config.use_rslora))

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

