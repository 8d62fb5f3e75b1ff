"""The ``hf`` backend: batched generation with transformers, on CPU or GPU.

- prompts are the tokenizer's chat template (thinking on or off), left-padded in batches
  sorted by prompt length (see :mod:`gazal.generation.batching`);
- generation stops at the end-of-turn token (``<|im_end|>`` for Qwen3) or at
  ``max_new_tokens`` (``finish_reason="length"``);
- decoding uses only the settings given (greedy, or temperature + top-p + top-k + min-p as
  given, no repetition penalty), never sampling defaults a checkpoint's ``generation_config.json``
  carries, so a run means the same thing for every model;
- an adapter (DoRA or LoRA) is merged into the weights in memory with PEFT's
  ``merge_and_unload()`` before generation: an unmerged DoRA layer recomputes its weight
  norm at every forward pass, i.e. at every decoded token;
- sampling is reproducible: each batch draws from torch's RNG seeded with the batch's seed
  (the global RNG state is restored afterwards).

Use it as a library too: ``HFBackend("Qwen/Qwen3-0.6B", adapter="runs/sft/adapter")`` or
``HFBackend(model, tokenizer)`` with objects already in memory.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from gazal.generation.base import Conversation, Generation, GenerationParams
from gazal.generation.batching import plan_batches
from gazal.generation.loading import load_model, load_tokenizer, merge_adapter
from gazal.generation.prompts import chat_prompt_ids, stop_token_ids

log = logging.getLogger("gazal")

__all__ = ["HFBackend", "HFContinuousBackend", "auto_batch_tokens", "kv_bytes_per_token"]

# Share of free memory the KV cache of one batch may take with batch_size auto; the rest is
# headroom for activations, logits and allocator fragmentation.
AUTO_MEMORY_FRACTION = 0.5
# Default caps on prompts per batch with batch_size auto. On CPU, batches beyond ~16 were
# slower per token in bench/eval_throughput.py (attention over long padded prompts); GPUs
# keep gaining from larger batches until memory runs out, which the token budget guards.
CPU_MAX_BATCH = 16
GPU_MAX_BATCH = 128


def kv_bytes_per_token(config: Any, dtype: Any) -> int:
    """KV-cache bytes one token takes: 2 (K and V) x layers x KV heads x head dim x dtype size."""
    import torch

    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    heads = text.num_attention_heads
    kv_heads = getattr(text, "num_key_value_heads", None) or heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
    size = torch.tensor([], dtype=dtype).element_size()
    return 2 * text.num_hidden_layers * kv_heads * head_dim * size


def _free_memory_bytes(device: Any) -> int | None:
    import torch

    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:  # Linux: MemAvailable counts reclaimable page cache, unlike free pages
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def auto_batch_tokens(model: Any, device: Any) -> int:
    """Token budget of a batch for ``batch_size: auto``: half the free memory (GPU memory
    after the weights are loaded; available RAM on CPU) divided by the KV-cache bytes per
    token. Falls back to 16,384 tokens when free memory cannot be read."""
    free = _free_memory_bytes(device)
    if not free:
        return 16_384
    per_token = kv_bytes_per_token(model.config, next(model.parameters()).dtype)
    return max(1, int(AUTO_MEMORY_FRACTION * free / per_token))


class HFBackend:
    """Batched transformers generation. ``model`` is a path / Hub id or a loaded model."""

    name = "hf"
    chunk_size = CPU_MAX_BATCH  # not used by the eval runner, which asks for plan_batches
    # Results depend on which prompts share a batch (padding changes the float arithmetic
    # slightly), so a resumed run must regenerate exactly the saved batches.
    batch_dependent = True

    def __init__(self, model: Any, tokenizer: Any = None, *, adapter: str | Path | None = None,
                 dtype: str = "auto", device: str = "auto",
                 batch_size: int | Literal["auto"] = "auto", max_batch_size: int | None = None,
                 batch_tokens: int | None = None, trust_remote_code: bool = False,
                 attn_implementation: str | None = None):
        if isinstance(model, str | Path):
            self.model = load_model(model, adapter=adapter, dtype=dtype, device=device,
                                    trust_remote_code=trust_remote_code,
                                    attn_implementation=attn_implementation)
            model_id: str | Path | None = model
        else:
            self.model = merge_adapter(model, adapter) if adapter else model
            self.model.eval()
            model_id = getattr(self.model, "name_or_path", None)
            _warn_if_unmerged_dora(self.model)
        if tokenizer is None or isinstance(tokenizer, str | Path):
            if tokenizer is None and not model_id:
                raise ValueError("pass a tokenizer with a model object that has no name_or_path")
            tokenizer = load_tokenizer(model_id, adapter=adapter, tokenizer=tokenizer,  # type: ignore[arg-type]
                                       trust_remote_code=trust_remote_code)
        tokenizer.padding_side = "left"
        self.tokenizer = tokenizer
        self.device = next(self.model.parameters()).device
        self.stop_ids = stop_token_ids(tokenizer, getattr(self.model, "generation_config", None))
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None \
            else self.stop_ids[0]
        self.batch_size = None if batch_size == "auto" else int(batch_size)
        self.max_batch_size = max_batch_size or (
            CPU_MAX_BATCH if self.device.type == "cpu" else GPU_MAX_BATCH)
        self.batch_tokens = batch_tokens
        if self.batch_size is None and self.batch_tokens is None:
            self.batch_tokens = auto_batch_tokens(self.model, self.device)
            log.info("batch_size auto: %d tokens per batch, at most %d prompts",
                     self.batch_tokens, self.max_batch_size)

    # ------------------------------------------------------------------ prompts and plans

    def prompt_ids(self, conversations: Sequence[Conversation], params: GenerationParams
                   ) -> list[list[int]]:
        """Token ids of each conversation's chat prompt."""
        return [chat_prompt_ids(self.tokenizer, c, params.thinking) for c in conversations]

    def plan_batches(self, lengths: Sequence[int], params: GenerationParams) -> list[list[int]]:
        """Batches (indices into ``lengths``) by this backend's batch-size rule."""
        return plan_batches(lengths, params.max_new_tokens, batch_size=self.batch_size,
                            batch_tokens=None if self.batch_size else self.batch_tokens,
                            max_batch_size=self.max_batch_size)

    # ------------------------------------------------------------------ generation

    def generate(self, conversations: Sequence[Conversation], params: GenerationParams,
                 on_result: Callable[[int, Generation], None] | None = None,
                 seeds: Sequence[int] | None = None) -> list[Generation]:
        """Completions in input order, generated in length-sorted batches.

        ``params.seed`` seeds the first batch (the next ones get seed + 1, ...); per-request
        ``seeds`` are not used: batched sampling draws from one RNG stream.
        """
        ids = self.prompt_ids(conversations, params)
        results: list[Generation | None] = [None] * len(conversations)
        for b, batch in enumerate(self.plan_batches([len(x) for x in ids], params)):
            seed = None if params.seed is None else params.seed + b
            batch_params = dataclasses.replace(params, seed=seed)
            for i, gen in zip(batch, self.generate_batch([ids[i] for i in batch], batch_params),
                              strict=True):
                results[i] = gen
                if on_result is not None:
                    on_result(i, gen)
        return [r for r in results if r is not None]

    def generate_batch(self, prompt_ids: Sequence[Sequence[int]], params: GenerationParams
                       ) -> list[Generation]:
        """Generate for exactly these prompts as one left-padded batch."""
        import torch

        if not prompt_ids:
            return []
        width = max(len(p) for p in prompt_ids)
        input_ids = torch.full((len(prompt_ids), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompt_ids), width), dtype=torch.long)
        for row, p in enumerate(prompt_ids):
            if p:
                input_ids[row, width - len(p):] = torch.tensor(list(p), dtype=torch.long)
                mask[row, width - len(p):] = 1
        config = self._generation_config(params)
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.inference_mode(), torch.random.fork_rng(devices=devices,
                                                           enabled=not params.greedy):
            if not params.greedy and params.seed is not None:
                torch.manual_seed(params.seed)
            out = self.model.generate(input_ids=input_ids.to(self.device),
                                      attention_mask=mask.to(self.device),
                                      generation_config=config)
        new_tokens = out[:, width:].tolist()
        return [self._completion(p, row) for p, row in zip(prompt_ids, new_tokens, strict=True)]

    def _completion(self, prompt: Sequence[int], row: Sequence[int]) -> Generation:
        """A :class:`Generation` from the generated token ids (cut at the first stop token)."""
        stop = set(self.stop_ids)
        end = next((k for k, t in enumerate(row) if t in stop), None)
        if end is None:
            kept, n, finish = list(row), len(row), "length"
        else:
            kept, n, finish = list(row[:end]), end + 1, "stop"  # the stop token counts, as in APIs
        return Generation(text=self.tokenizer.decode(kept, skip_special_tokens=True),
                          finish_reason=finish,  # type: ignore[arg-type]
                          n_prompt_tokens=len(prompt), n_completion_tokens=n)

    def _generation_config(self, params: GenerationParams) -> Any:
        from transformers import GenerationConfig

        # Every decoding knob is set explicitly: unset (None) ones would be filled from the
        # checkpoint's generation_config.json (Qwen3 ships do_sample with top_k=20), so "off"
        # is top_k 0 and min_p 0.0, not None.
        kwargs: dict[str, Any] = dict(
            max_new_tokens=params.max_new_tokens, do_sample=not params.greedy, num_beams=1,
            repetition_penalty=1.0, no_repeat_ngram_size=0,
            eos_token_id=list(self.stop_ids), pad_token_id=self.pad_id, use_cache=True)
        if params.greedy:
            kwargs.update(temperature=1.0, top_p=1.0, top_k=50)  # unused by greedy search
        else:
            kwargs.update(temperature=params.temperature, top_p=params.top_p,
                          top_k=params.top_k or 0,
                          min_p=params.min_p if params.min_p is not None else 0.0)
        return GenerationConfig(**kwargs)

    def close(self) -> None:
        """Drop the model and free GPU memory."""
        import gc

        import torch

        self.model = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


class HFContinuousBackend(HFBackend):
    """Continuous batching with transformers' own engine (``model.generate_batch``, paged KV
    cache): a finished request leaves the batch at once and a waiting one takes its place, so
    one long response no longer holds a static batch of short ones for its whole length.

    Measured on SmolLM2-135M-Instruct, 16 real MedQA prompts, up to 128 new tokens, 2-core
    CPU (``bench/continuous_batching.py``): identical greedy texts; at parity with static
    batching on a quiet machine and 1.4-1.7x on a shared one, as that model's answers are short
    (6-27 tokens); an option, not the default, until long reasoning traces are measured.

    It schedules requests itself, so it follows :class:`~gazal.generation.base.Backend`, not
    ``BatchingBackend``: the eval runner hands it chunks of ``chunk_size`` requests and saves
    after each. The paged cache is sized from the same token budget as static batching
    (``batch_tokens``; transformers' own sizing probes GPU memory and took ~45 s on CPU).
    Sampling draws from one seeded stream per call (``params.seed``); per-request ``seeds``
    are not used, as with static batching.
    """

    name = "hf"
    chunk_size = 256
    PAGE_SIZE = 64  # tokens per cache page; small pages waste little on short answers

    # Not a BatchingBackend: the runner must not plan batches for it.
    plan_batches = None  # type: ignore[assignment]
    generate_batch = None  # type: ignore[assignment]

    def _engine_config(self, prompts: Sequence[Sequence[int]], params: GenerationParams) -> Any:
        """The paged cache: no more pages than these requests can fill at once (prompt +
        max_new_tokens each), and no more than the token budget. A cache sized to the whole
        budget (512 pages for 16 MedQA prompts that need 96) measured 0.82x static batching's
        speed on CPU, against parity or better when sized to the requests (BENCHMARKS.md)."""
        import math

        from transformers.generation.configuration_utils import ContinuousBatchingConfig

        page = self.PAGE_SIZE
        budget = self.batch_tokens or (self.batch_size or self.max_batch_size) * 2048
        per_request = [math.ceil((len(p) + params.max_new_tokens) / page) for p in prompts]
        needed = sum(per_request)
        blocks = max(min(needed, math.ceil(budget / page)), max(per_request))
        return ContinuousBatchingConfig(
            page_size=page, num_blocks=blocks, max_batch_tokens=min(budget, 1024),
            max_requests_per_batch=min(self.batch_size or self.max_batch_size, len(prompts)),
            use_cuda_graph=False, seed=params.seed)

    def generate(self, conversations: Sequence[Conversation], params: GenerationParams,
                 on_result: Callable[[int, Generation], None] | None = None,
                 seeds: Sequence[int] | None = None) -> list[Generation]:
        """Completions in input order, scheduled by the engine."""
        return self.generate_ids(self.prompt_ids(conversations, params), params, on_result)

    def generate_ids(self, ids: Sequence[Sequence[int]], params: GenerationParams,
                     on_result: Callable[[int, Generation], None] | None = None,
                     seeds: Sequence[int] | None = None) -> list[Generation]:
        """Completions of prompts given as token ids (budget forcing uses this)."""
        import torch

        if not ids:
            return []
        prompts = [list(p) for p in ids]
        with torch.inference_mode():
            out = self.model.generate_batch(
                inputs=prompts, generation_config=self._generation_config(params),
                continuous_batching_config=self._engine_config(prompts, params),
                progress_bar=False, warmup=False)
        # request ids are "req_<input index>"
        by_index = {int(rid.rsplit("_", 1)[-1]): o for rid, o in out.items()}
        results = []
        for i, prompt in enumerate(prompts):
            o = by_index.get(i)
            if o is None or getattr(o, "error", None):
                gen = Generation(text="", finish_reason="error",
                                 error=f"continuous batching: {getattr(o, 'error', 'no output')}")
            else:
                gen = self._completion(prompt, o.generated_tokens)
            results.append(gen)
            if on_result is not None:
                on_result(i, gen)
        return results


def _warn_if_unmerged_dora(model: Any) -> None:
    peft_config = getattr(model, "peft_config", None)
    if isinstance(peft_config, dict) and any(getattr(c, "use_dora", False)
                                             for c in peft_config.values()):
        log.warning("generating with an unmerged DoRA adapter: PEFT recomputes the weight norm "
                    "at every decoded token; merge it (merge_and_unload) for full speed")
