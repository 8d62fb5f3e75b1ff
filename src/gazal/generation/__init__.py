"""Text generation for every package that generates: evaluation (``gazal eval``), synthetic
data teachers (``gazal data synth``) and the GRPO held-out monitor.

- :mod:`~gazal.generation.base`: the :class:`Backend` protocol (chat conversations in,
  completions out) and :class:`BatchingBackend`, the protocol of a backend that plans its own
  batches (hf);
- backends: :mod:`~gazal.generation.hf` (transformers, batched), :mod:`~gazal.generation.vllm`
  (optional extra) and :mod:`~gazal.generation.openai` (any OpenAI-compatible endpoint);
- :mod:`~gazal.generation.prompts`: chat prompts as token ids and the stop tokens;
- :mod:`~gazal.generation.batching`: length-sorted batch plans;
- :mod:`~gazal.generation.loading`: THE model loader (safetensors only) and the in-memory
  adapter merge, used by training too.

This package imports nothing of gazal's but ``config`` (errors) and itself; heavy libraries
(torch, transformers, vllm) load only when a backend or model is built.
"""

from __future__ import annotations

from gazal.generation.base import (
    Backend,
    BatchingBackend,
    Conversation,
    Generation,
    GenerationParams,
    Message,
)

__all__ = ["Backend", "BatchingBackend", "Conversation", "Generation", "GenerationParams",
           "Message"]
