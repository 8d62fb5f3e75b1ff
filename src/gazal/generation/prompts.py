"""Chat prompts as token ids and the stop tokens, shared by the local backends (hf, vllm)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gazal.config import ConfigError
from gazal.generation.base import Conversation

__all__ = ["chat_prompt_ids", "chat_prompt_text", "stop_token_ids", "template_has_thinking"]


def chat_prompt_text(tokenizer: Any, conversation: Conversation, thinking: bool) -> str:
    """The prompt string: the tokenizer's chat template with the generation prompt.

    ``enable_thinking`` is passed to the template (Qwen3 reads it; templates that do not
    know it ignore it).
    """
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError("the tokenizer has no chat template; gazal evaluates chat models "
                          "zero-shot with their template (pass --tokenizer with one)")
    return tokenizer.apply_chat_template(conversation, tokenize=False,
                                         add_generation_prompt=True, enable_thinking=thinking)


def chat_prompt_ids(tokenizer: Any, conversation: Conversation, thinking: bool) -> list[int]:
    """Token ids of the chat prompt. The template already holds any BOS or special tokens,
    so nothing is added when tokenizing."""
    text = chat_prompt_text(tokenizer, conversation, thinking)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def template_has_thinking(tokenizer: Any) -> bool | None:
    """Whether the tokenizer's chat template has a thinking switch: it renders a short
    conversation with ``enable_thinking`` on and off and compares (Qwen3's template adds an
    empty ``<think></think>`` when off; templates that never read the variable render the
    same). None when the tokenizer has no chat template."""
    if not getattr(tokenizer, "chat_template", None):
        return None
    probe: Conversation = [{"role": "user", "content": "Which option is correct?"}]
    on, off = (tokenizer.apply_chat_template(probe, tokenize=False, add_generation_prompt=True,
                                             enable_thinking=value) for value in (True, False))
    return on != off


def stop_token_ids(tokenizer: Any, generation_config: Any = None) -> list[int]:
    """End-of-turn ids: the tokenizer's EOS (``<|im_end|>`` for Qwen3 chat models) plus any
    EOS ids of the model's generation config (Qwen3 also lists ``<|endoftext|>``)."""
    ids: list[int] = []

    def add(values: Iterable[Any] | Any) -> None:
        if values is None:
            return
        for v in values if isinstance(values, list | tuple) else [values]:
            if isinstance(v, int) and v not in ids:
                ids.append(v)

    add(getattr(tokenizer, "eos_token_id", None))
    if generation_config is not None:
        add(getattr(generation_config, "eos_token_id", None))
    if not ids:
        raise ValueError("neither the tokenizer nor the model's generation config names an "
                         "end-of-sequence token, so generation could not stop")
    return ids
