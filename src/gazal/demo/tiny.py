"""Tiny Qwen3-architecture models and tokenizers, built offline from a config.

No weights can be downloaded on the CPU machines, so tests, benches and the demo build
their models here: a byte-level BPE tokenizer trained on the given texts (any text
tokenizes) with Qwen3's special tokens and a ChatML chat template with thinking support,
and a randomly initialised ``Qwen3ForCausalLM`` of a few layers.

The chat template renders exactly like Qwen3's for single-turn conversations
(``<|im_start|>role\\n...<|im_end|>``; ``enable_thinking=False`` adds an empty think block to
the generation prompt) and marks assistant content with ``{% generation %}`` so TRL's
``assistant_only_loss`` works with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "CHAT_TEMPLATE",
    "SPECIAL_TOKENS",
    "build_model",
    "build_tiny",
    "build_tokenizer",
    "default_corpus",
]

PAD, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
THINK_TOKENS = ("<think>", "</think>")
SPECIAL_TOKENS = (PAD, IM_START, IM_END)

CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{{- '<|im_start|>assistant\\n' -}}"
    "{%- generation -%}{{- message['content'] + '<|im_end|>' -}}{%- endgeneration -%}"
    "{{- '\\n' -}}"
    "{%- else -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{- '<|im_start|>assistant\\n' -}}"
    "{%- if enable_thinking is defined and enable_thinking is false -%}"
    "{{- '<think>\\n\\n</think>\\n\\n' -}}"
    "{%- endif -%}"
    "{%- endif -%}"
)


def default_corpus() -> list[str]:
    """A little clinical and format text, so a tokenizer built with no texts is usable."""
    from gazal.benchmarks.builtin import builtin_items
    from gazal.formatting import SYSTEM_PROMPT, render_assistant, render_question

    texts = [SYSTEM_PROMPT]
    for item in builtin_items():
        texts.append(render_question(item))
        texts.append(render_assistant(["The findings point to one diagnosis.",
                                       "Compare each option with the vignette."],
                                      "It fits best.", item.answer, item.answer_text))
    return texts


def build_tokenizer(texts: Iterable[str] | None = None, vocab_size: int = 1024,
                    out_dir: str | Path | None = None) -> Any:
    """A byte-level BPE ``PreTrainedTokenizerFast`` trained on ``texts``.

    ``<think>``/``</think>`` are added tokens that survive ``skip_special_tokens`` (as in
    Qwen3); ``<|im_end|>`` is the end-of-turn and EOS token, ``<|endoftext|>`` the pad.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AddedToken, PreTrainedTokenizerFast

    corpus = list(texts) if texts is not None else default_corpus()
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=IM_END, pad_token=PAD,
                                   padding_side="left")
    fast.add_tokens([AddedToken(t, special=False, normalized=False) for t in THINK_TOKENS])
    fast.chat_template = CHAT_TEMPLATE
    if out_dir is not None:
        fast.save_pretrained(str(out_dir))
    return fast


def build_model(tokenizer: Any, *, hidden_size: int = 64, num_layers: int = 2,
                num_heads: int = 4, num_kv_heads: int = 2, head_dim: int = 16,
                intermediate_size: int = 128, max_position_embeddings: int = 2048,
                tie_word_embeddings: bool = True, seed: int = 0) -> Any:
    """A randomly initialised ``Qwen3ForCausalLM`` sized for the CPU (fp32)."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    config = Qwen3Config(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=intermediate_size,
        num_hidden_layers=num_layers, num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads, head_dim=head_dim,
        max_position_embeddings=max_position_embeddings, tie_word_embeddings=tie_word_embeddings,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None, dtype="float32")
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def build_tiny(out_dir: str | Path, texts: Sequence[str] | None = None, *,
               vocab_size: int = 1024, seed: int = 0, **model_kwargs: Any) -> Path:
    """Build and save a tiny tokenizer + model into ``out_dir`` (loadable by path)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(texts, vocab_size=vocab_size, out_dir=out)
    model = build_model(tok, seed=seed, **model_kwargs)
    model.save_pretrained(str(out), safe_serialization=True)
    return out
