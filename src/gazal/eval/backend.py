"""The generation backend an eval config names (the backends live in :mod:`gazal.generation`).

``get_backend(cfg)`` builds the one an :class:`~gazal.eval.config.EvalConfig` names; the
classes (:class:`~gazal.generation.hf.HFBackend`,
:class:`~gazal.generation.vllm.VLLMBackend`,
:class:`~gazal.generation.openai.OpenAIBackend`) can be used directly too. Heavy
libraries (torch, transformers, vllm) load only when a backend is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gazal.generation.base import Backend

if TYPE_CHECKING:
    from gazal.eval.config import EvalConfig

__all__ = ["check_backend_available", "get_backend", "openai_settings"]


def openai_settings(cfg: EvalConfig) -> Any:
    """:class:`OpenAISettings` from an eval config (the served model name is ``cfg.model``)."""
    from gazal.generation.openai import OpenAISettings

    o = cfg.openai
    return OpenAISettings(base_url=o.base_url, model=cfg.model, api_key_env=o.api_key_env,
                          concurrency=o.concurrency, requests_per_minute=o.requests_per_minute,
                          max_retries=o.max_retries, timeout_s=o.timeout_s,
                          backoff_base_s=o.backoff_base_s, backoff_max_s=o.backoff_max_s,
                          extra_body=dict(o.extra_body))


def check_backend_available(cfg: EvalConfig) -> None:
    """Fail at once, before any work, when the backend's optional library is missing."""
    if cfg.backend == "vllm":
        from gazal.generation.vllm import import_vllm

        import_vllm()  # raises VLLMMissingError with the install command


def get_backend(cfg: EvalConfig) -> Backend:
    """The backend ``cfg.backend`` names, built from the config's settings."""
    if cfg.backend == "hf":
        from gazal.generation.hf import HFBackend, HFContinuousBackend

        cls = HFContinuousBackend if cfg.batching == "continuous" else HFBackend
        return cls(cfg.model, cfg.tokenizer, adapter=cfg.adapter, dtype=cfg.dtype,
                   device=cfg.device, batch_size=cfg.batch_size,
                   max_batch_size=cfg.max_batch_size, batch_tokens=cfg.batch_tokens,
                   trust_remote_code=cfg.trust_remote_code,
                   attn_implementation=cfg.attn_implementation)
    if cfg.backend == "vllm":
        from gazal.generation.vllm import VLLMBackend

        v = cfg.vllm
        return VLLMBackend(cfg.model, tokenizer=cfg.tokenizer, adapter=cfg.adapter,
                           adapter_mode=v.adapter_mode, merge_dir=v.merge_dir, dtype=cfg.dtype,
                           tensor_parallel_size=v.tensor_parallel_size,
                           gpu_memory_utilization=v.gpu_memory_utilization,
                           max_model_len=v.max_model_len, max_lora_rank=v.max_lora_rank,
                           enforce_eager=v.enforce_eager,
                           trust_remote_code=cfg.trust_remote_code, seed=cfg.seed)
    if cfg.backend == "openai":
        from gazal.generation.openai import OpenAIBackend

        return OpenAIBackend(openai_settings(cfg))
    raise ValueError(f"unknown backend {cfg.backend!r}")
