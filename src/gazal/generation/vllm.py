"""The ``vllm`` backend: offline generation with vLLM's ``LLM`` engine on GPUs.

vLLM is an optional extra (``pip install 'gazal[vllm]'``); it is imported only when this
backend is built. Prompts are rendered with the tokenizer's chat template here (so thinking
on/off and the system prompt mean the same as in the hf backend) and handed to vLLM as token
ids. An adapter is applied in one of two ways:

- ``merge`` (default): PEFT merges it into the base weights (any adapter: DoRA included),
  the merged model is saved as safetensors into ``merge_dir`` and vLLM serves that at full
  speed;
- ``lora_request``: vLLM applies the adapter per request (``enable_lora``). vLLM's LoRA
  kernels do not implement DoRA, so a DoRA adapter is refused in this mode.

Each request gets its own seed, so sampled results do not depend on how requests are batched.
"""

from __future__ import annotations

import importlib
import json
import logging
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gazal.generation.base import Conversation, Generation, GenerationParams
from gazal.generation.prompts import chat_prompt_ids, stop_token_ids

log = logging.getLogger("gazal")

__all__ = ["VLLMBackend", "VLLMMissingError", "import_vllm", "merge_adapter_to_dir"]

INSTALL_HINT = "pip install 'gazal[vllm]'"


class VLLMMissingError(ImportError):
    """vLLM is not installed; the message names the install command."""


def import_vllm() -> Any:
    """Import vLLM or fail with the install command."""
    try:
        return importlib.import_module("vllm")
    except ImportError as err:
        raise VLLMMissingError(
            f"the vllm backend needs vLLM, which is not installed ({err}). Install it with: "
            f"{INSTALL_HINT}   (GPU machines only; or use --backend hf)") from None


def _adapter_config(adapter: str | Path) -> dict[str, Any]:
    path = Path(adapter) / "adapter_config.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{adapter}: not a PEFT adapter folder "
                                "(no adapter_config.json)") from None


def merge_adapter_to_dir(model: str, adapter: str | Path, out_dir: str | Path, *,
                         tokenizer: Any = None, dtype: str = "bfloat16",
                         trust_remote_code: bool = False) -> Path:
    """Merge ``adapter`` into ``model`` with PEFT (on CPU) and save it as safetensors with
    the tokenizer, for vLLM to load."""
    from gazal.generation.loading import load_model, load_tokenizer

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    merged = load_model(model, adapter=adapter, dtype=dtype, device="cpu",
                        trust_remote_code=trust_remote_code)
    merged.save_pretrained(str(out), safe_serialization=True)
    tok = tokenizer or load_tokenizer(model, adapter=adapter, trust_remote_code=trust_remote_code)
    tok.save_pretrained(str(out))
    log.info("merged %s + %s into %s", model, adapter, out)
    return out


class VLLMBackend:
    """Generation with ``vllm.LLM``. Arguments map one to one onto vLLM's engine arguments."""

    name = "vllm"
    chunk_size = 1024  # large enough for vLLM's continuous batching to stay full

    def __init__(self, model: str, *, tokenizer: str | None = None, adapter: str | None = None,
                 adapter_mode: str = "merge", merge_dir: str | None = None, dtype: str = "auto",
                 tensor_parallel_size: int = 1, gpu_memory_utilization: float = 0.9,
                 max_model_len: int | None = None, max_lora_rank: int = 64,
                 enforce_eager: bool = False, trust_remote_code: bool = False, seed: int = 0):
        vllm = import_vllm()
        from gazal.generation.loading import (
            load_tokenizer,
            require_safetensors,
            tokenizer_source,
        )

        self._tmp_dir: str | None = None
        self.lora_request = None
        self.tokenizer = load_tokenizer(model, adapter=adapter, tokenizer=tokenizer,
                                        trust_remote_code=trust_remote_code)
        engine_model = model
        engine_tokenizer = tokenizer_source(model, adapter, tokenizer)
        engine_kwargs: dict[str, Any] = {}
        if adapter and adapter_mode == "merge":
            if merge_dir is None:
                self._tmp_dir = tempfile.mkdtemp(prefix="gazal-merged-")
                merge_dir = self._tmp_dir
            engine_model = engine_tokenizer = str(merge_adapter_to_dir(
                model, adapter, merge_dir, tokenizer=self.tokenizer,
                dtype="bfloat16" if dtype == "auto" else dtype,
                trust_remote_code=trust_remote_code))
        elif adapter and adapter_mode == "lora_request":
            conf = _adapter_config(adapter)
            if conf.get("use_dora"):
                raise ValueError(f"{adapter} is a DoRA adapter; vLLM's LoRA serving does not "
                                 "implement DoRA. Use vllm.adapter_mode: merge")
            rank = int(conf.get("r") or 0)
            if rank > max_lora_rank:
                raise ValueError(f"{adapter} has rank {rank} > vllm.max_lora_rank "
                                 f"{max_lora_rank}; raise --vllm.max_lora_rank")
            require_safetensors(adapter, "adapter", stem="adapter_model")
            engine_kwargs.update(enable_lora=True, max_lora_rank=max_lora_rank, max_loras=1)
            lora_module = importlib.import_module("vllm.lora.request")
            self.lora_request = lora_module.LoRARequest("gazal-adapter", 1, str(adapter))
        elif adapter:
            raise ValueError(f"vllm.adapter_mode must be 'merge' or 'lora_request', "
                             f"got {adapter_mode!r}")
        if max_model_len is not None:
            engine_kwargs["max_model_len"] = max_model_len
        self._vllm = vllm
        self.llm = vllm.LLM(
            model=engine_model, tokenizer=engine_tokenizer,
            dtype=dtype, tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization, enforce_eager=enforce_eager,
            trust_remote_code=trust_remote_code, seed=seed,
            load_format="safetensors",  # never unpickle weights (gazal.generation.loading)
            **engine_kwargs)
        self.stop_ids = stop_token_ids(self.tokenizer)

    def prompt_ids(self, conversations: Sequence[Conversation], params: GenerationParams
                   ) -> list[list[int]]:
        """Token ids of each conversation's chat prompt."""
        return [chat_prompt_ids(self.tokenizer, c, params.thinking) for c in conversations]

    def sampling_params(self, params: GenerationParams, seed: int | None) -> Any:
        """vLLM ``SamplingParams`` for one request (greedy: temperature 0)."""
        kwargs: dict[str, Any] = dict(
            n=1, max_tokens=params.max_new_tokens, stop_token_ids=list(self.stop_ids),
            skip_special_tokens=True,
            temperature=0.0 if params.greedy else params.temperature,
            top_p=1.0 if params.greedy else params.top_p)
        if seed is not None and not params.greedy:
            kwargs["seed"] = seed
        # Only when set: vLLM's defaults are off (its "off" top_k was -1 before 0.8, 0 since).
        if params.top_k and not params.greedy:
            kwargs["top_k"] = params.top_k
        if params.min_p and not params.greedy:
            kwargs["min_p"] = params.min_p
        return self._vllm.SamplingParams(**kwargs)

    def generate(self, conversations: Sequence[Conversation], params: GenerationParams,
                 on_result: Callable[[int, Generation], None] | None = None,
                 seeds: Sequence[int] | None = None) -> list[Generation]:
        """Completions in input order; request ``i`` samples with ``seeds[i]`` (default:
        ``params.seed + i``)."""
        if not conversations:
            return []
        return self.generate_ids(self.prompt_ids(conversations, params), params,
                                 on_result=on_result, seeds=seeds)

    def generate_ids(self, ids: Sequence[Sequence[int]], params: GenerationParams,
                     on_result: Callable[[int, Generation], None] | None = None,
                     seeds: Sequence[int] | None = None) -> list[Generation]:
        """Completions of prompts given as token ids (e.g. a chat prompt plus the start of
        the answer, for budget forcing); seeds as in :meth:`generate`."""
        if not ids:
            return []
        ids = [list(p) for p in ids]
        if seeds is None:
            seeds = [params.seed + i if params.seed is not None else None  # type: ignore[misc]
                     for i in range(len(ids))]
        prompts = [{"prompt_token_ids": p} for p in ids]
        sampling = [self.sampling_params(params, s) for s in seeds]
        kwargs: dict[str, Any] = {"use_tqdm": False}
        if self.lora_request is not None:
            kwargs["lora_request"] = self.lora_request
        outputs = self.llm.generate(prompts, sampling, **kwargs)
        results = []
        for i, (p, out) in enumerate(zip(ids, outputs, strict=True)):
            completion = out.outputs[0]
            finish = "length" if completion.finish_reason == "length" else "stop"
            # Decoded here, like the hf backend does: vLLM's incremental detokenizer holds
            # back an unfinished UTF-8 sequence at the end of a cut generation, so its text
            # can differ from the same tokens decoded at once.
            text = self.tokenizer.decode(list(completion.token_ids), skip_special_tokens=True)
            gen = Generation(text=text, finish_reason=finish,
                             n_prompt_tokens=len(p),
                             n_completion_tokens=len(completion.token_ids))
            results.append(gen)
            if on_result is not None:
                on_result(i, gen)
        return results

    def close(self) -> None:
        """Release the engine and remove a temporary merged model."""
        self.llm = None
        if self._tmp_dir:
            shutil.rmtree(self._tmp_dir, ignore_errors=True)
            self._tmp_dir = None
