"""The generation backend interface shared by evaluation (``gazal eval``) and synthetic data
teachers (``gazal data synth``): chat conversations in, completions out.

Backends: ``hf`` (transformers), ``vllm`` (optional extra) and ``openai`` (any
OpenAI-compatible HTTP endpoint). Every backend returns the completion text in gazal's
convention: when a server returns the reasoning separately (``reasoning_content``), it is put
back as ``<think>...</think>`` before the answer so extraction treats all backends alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

Message = dict[str, str]
Conversation = list[Message]
FinishReason = Literal["stop", "length", "error"]

__all__ = ["Backend", "BatchingBackend", "Conversation", "Generation", "GenerationParams",
           "Message"]


@dataclass(frozen=True)
class GenerationParams:
    """Sampling settings. ``temperature == 0`` means greedy decoding; ``top_p``, ``top_k``
    and ``min_p`` apply only when sampling (``top_k`` / ``min_p`` None: off)."""

    max_new_tokens: int = 2048
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    thinking: bool = True  # chat template's enable_thinking
    top_k: int | None = None  # keep the k most likely tokens (None: all)
    min_p: float | None = None  # drop tokens below min_p x the top token's probability

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


@dataclass(frozen=True)
class Generation:
    """One completion. ``finish_reason`` is ``length`` when cut at ``max_new_tokens`` and
    ``error`` when the backend gave up (``error`` then says why; ``text`` is empty)."""

    text: str
    finish_reason: FinishReason
    n_prompt_tokens: int | None = None
    n_completion_tokens: int | None = None
    error: str | None = None


@runtime_checkable
class Backend(Protocol):
    """Generates completions for chat conversations.

    ``chunk_size`` is how many requests a caller that saves progress (the eval runner) should
    hand over per :meth:`generate` call when the backend schedules requests itself (vllm's
    continuous batching, openai's concurrent requests): large enough to keep it busy, small
    enough that an interruption loses little.
    """

    name: str
    chunk_size: int

    def generate(self, conversations: Sequence[Conversation], params: GenerationParams,
                 on_result: Callable[[int, Generation], None] | None = None,
                 seeds: Sequence[int] | None = None) -> list[Generation]:
        """Completions in input order; ``on_result(index, generation)`` is called as each one
        finishes (in any order), so callers can save progress and update progress bars.
        ``seeds`` gives each request its own sampling seed where the backend samples per
        request (vllm, openai); the hf backend samples a batch from one seeded stream."""
        ...

    def close(self) -> None:
        """Release resources (threads, GPU memory)."""
        ...


@runtime_checkable
class BatchingBackend(Backend, Protocol):
    """A backend that generates in batches it plans itself (``hf``): the eval runner asks it
    for the prompts' token ids and the batch plan, saves the plan, and resumes an interrupted
    run batch by batch with :meth:`generate_batch`."""

    #: True when a completion depends on which prompts share its batch (padding changes the
    #: float arithmetic), so a resumed run must regenerate exactly the saved batches.
    batch_dependent: bool
    #: the token budget per batch the backend resolved (``batch_size: auto``), else None.
    batch_tokens: int | None

    def prompt_ids(self, conversations: Sequence[Conversation], params: GenerationParams
                   ) -> list[list[int]]:
        """Token ids of each conversation's chat prompt."""
        ...

    def plan_batches(self, lengths: Sequence[int], params: GenerationParams
                     ) -> list[list[int]]:
        """Batches (indices into ``lengths``, the prompts' token counts)."""
        ...

    def generate_batch(self, prompt_ids: Sequence[Sequence[int]], params: GenerationParams
                       ) -> list[Generation]:
        """Generate for exactly these prompts as one batch."""
        ...
