"""Teachers are generation backends (:mod:`gazal.generation`): the OpenAI-compatible HTTP
backend or the local transformers backend, built from the recipe's ``synth.teacher``."""

from __future__ import annotations

from gazal.config import ConfigError
from gazal.data.config import TeacherConfig
from gazal.generation.base import Backend, GenerationParams

__all__ = ["generation_params", "get_teacher"]


def get_teacher(cfg: TeacherConfig) -> Backend:
    """The backend named by ``cfg.backend``; heavy imports happen only here."""
    if not cfg.model:
        raise ConfigError("synth.teacher.model is required (the served model name, or a local "
                          "model path for the hf backend)")
    if cfg.backend == "openai":
        from gazal.generation.openai import OpenAIBackend, OpenAISettings

        return OpenAIBackend(OpenAISettings(
            base_url=cfg.base_url, model=cfg.model, api_key_env=cfg.api_key_env,
            concurrency=cfg.concurrency, requests_per_minute=cfg.requests_per_minute,
            max_retries=cfg.max_retries, timeout_s=cfg.timeout_s,
            backoff_base_s=cfg.backoff_base_s, backoff_max_s=cfg.backoff_max_s,
            extra_body=dict(cfg.extra_body)))
    if cfg.backend == "hf":
        try:  # transformers and torch load only when a local teacher is asked for
            from gazal.generation import hf
        except ImportError as err:
            raise ConfigError(f"the local transformers teacher needs gazal's hf generation "
                              f"backend (gazal.generation.hf): {err}") from None
        return hf.HFBackend(model=cfg.model, **cfg.hf)
    raise ConfigError(f"unknown teacher backend {cfg.backend!r}")  # config validation stops this


def generation_params(cfg: TeacherConfig, seed: int) -> GenerationParams:
    """Sampling settings of one attempt."""
    return GenerationParams(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature,
                            top_p=cfg.top_p, seed=seed, thinking=cfg.thinking)
