"""Model, tokenizer and adapter loading shared by SFT, merge and GRPO.

- :func:`load_tokenizer` / :func:`load_model_and_tokenizer`: from a Hub id or a local folder,
  safetensors only, ``trust_remote_code`` off unless the config turns it on;
- :func:`build_lora_config`: the PEFT ``LoraConfig`` of a :class:`LoraSection` (DoRA +
  rsLoRA by default), with format tokens resolved to their ids for
  ``trainable_token_indices``;
- weights load through :mod:`gazal.generation.loading` (the one loader; its
  :func:`~gazal.generation.loading.load_adapter_model` puts a saved adapter on a base).

Heavy imports stay inside the functions so ``gazal --help`` is fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gazal.config import ConfigError
from gazal.generation.loading import load_causal_lm, torch_dtype
from gazal.train.config import LoraSection, ModelConfig

__all__ = [
    "build_lora_config",
    "load_model",
    "load_model_and_tokenizer",
    "load_tokenizer",
    "output_head_is_plain",
    "resolve_token_ids",
]


def load_tokenizer(cfg: ModelConfig) -> Any:
    """The tokenizer of ``cfg`` with a pad token set (EOS when the tokenizer has none)."""
    from transformers import AutoTokenizer

    source = cfg.tokenizer or cfg.name_or_path
    from gazal.generation.loading import check_local_source

    check_local_source(source, "model.tokenizer" if cfg.tokenizer else "model.name_or_path",
                       tokenizer=True)
    try:
        tok = AutoTokenizer.from_pretrained(source, revision=cfg.revision,
                                            trust_remote_code=cfg.trust_remote_code)
    except OSError as err:
        raise ConfigError(f"model.tokenizer: cannot load a tokenizer from {source!r}: {err}"
                          ) from None
    if cfg.chat_template:
        path = Path(cfg.chat_template)
        if not path.is_file():
            raise ConfigError(f"model.chat_template: file not found: {path}")
        tok.chat_template = path.read_text(encoding="utf-8")
    if not getattr(tok, "chat_template", None):
        raise ConfigError(f"the tokenizer of {source!r} has no chat template; set "
                          "model.chat_template to a Jinja file")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model_and_tokenizer(cfg: ModelConfig, *, device_map: Any = None) -> tuple[Any, Any]:
    """Load the causal LM and its tokenizer from a Hub id or a local folder (safetensors)."""
    tok = load_tokenizer(cfg)
    return load_model(cfg, tok, device_map=device_map), tok


def load_model(cfg: ModelConfig, tokenizer: Any, *, device_map: Any = None) -> Any:
    """Load the causal LM of ``cfg`` (safetensors only); its pad id follows ``tokenizer``."""
    model = load_causal_lm(cfg.name_or_path, dtype=torch_dtype(cfg.dtype), revision=cfg.revision,
                           trust_remote_code=cfg.trust_remote_code,
                           attn_implementation=cfg.attn_implementation, device_map=device_map,
                           setting="model.name_or_path")
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model


def resolve_token_ids(tokenizer: Any, tokens: list[str]) -> list[int]:
    """Ids of tokens that must each be one token of the vocabulary."""
    ids = []
    vocab = tokenizer.get_vocab()
    for t in tokens:
        if t not in vocab:
            pieces = tokenizer.tokenize(t)
            raise ConfigError(f"lora.trainable_tokens: {t!r} is not a single token of this "
                              f"tokenizer (it splits into {pieces}); add it as a token first "
                              "or list token ids in lora.trainable_token_indices")
        ids.append(vocab[t])
    return ids


def build_lora_config(lora: LoraSection, tokenizer: Any = None) -> Any:
    """A PEFT ``LoraConfig`` (task CAUSAL_LM) from the recipe's ``lora`` section."""
    from peft import LoraConfig

    targets: list[str] | str = list(lora.target_modules)
    if targets == ["all-linear"]:
        targets = "all-linear"
    elif "all-linear" in targets:
        raise ConfigError("lora.target_modules: 'all-linear' cannot be combined with names")
    indices = list(lora.trainable_token_indices)
    if lora.trainable_tokens:
        if tokenizer is None:
            raise ConfigError("lora.trainable_tokens needs the tokenizer to resolve token ids")
        indices += resolve_token_ids(tokenizer, list(lora.trainable_tokens))
    indices = sorted(set(indices))
    if tokenizer is not None:
        bad = [i for i in indices if not 0 <= i < len(tokenizer)]
        if bad:
            raise ConfigError(f"lora.trainable_token_indices: {bad} outside the vocabulary "
                              f"(size {len(tokenizer)})")
    if indices and any(m in ("embed_tokens", "lm_head") for m in lora.modules_to_save):
        raise ConfigError("lora.trainable_tokens and lora.modules_to_save both train the "
                          "embeddings; use one of them")
    return LoraConfig(
        r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=targets,
        use_dora=lora.use_dora, use_rslora=lora.use_rslora, bias=lora.bias,
        modules_to_save=list(lora.modules_to_save) or None,
        trainable_token_indices=indices or None, init_lora_weights=lora.init_lora_weights,
        task_type="CAUSAL_LM")


def output_head_is_plain(model: Any) -> bool:
    """Whether the (PEFT-wrapped) model's output head is an ordinary ``nn.Linear``.

    False when PEFT wrapped it (trainable tokens on tied embeddings, ``modules_to_save``,
    LoRA on the head): code that reads ``lm_head.weight`` directly would then miss the
    adapter's contribution.
    """
    import torch

    inner = model
    for attr in ("module", "base_model", "model"):  # DDP / PeftModel / LoraModel layers
        if hasattr(inner, "get_output_embeddings"):
            break
        inner = getattr(inner, attr, inner)
    head = inner.get_output_embeddings() if hasattr(inner, "get_output_embeddings") else None
    return type(head) is torch.nn.Linear
