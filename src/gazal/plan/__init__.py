"""``gazal plan``: parameters and memory per GPU of a training recipe, before a GPU is touched.

What it estimates (every formula is explained, with sources, in ``docs/plan.md``):

- parameters: the exact count of a decoder-only transformer (Qwen3 / Qwen2 / Llama / Mistral
  ``config.json``, or the built-in Qwen3 table) and of its PEFT adapter (LoRA, DoRA, trained
  token rows, modules saved in full);
- training memory per GPU: frozen weights, adapter, gradients, optimizer states (ZeRO's
  2 + 2 + 12 bytes per trained parameter in mixed precision, Rajbhandari et al. 2020), split
  as the ZeRO stage / FSDP strategy and world size say; activations from per-token
  coefficients fitted on measured tiny models (``coefficients.json``, written by
  ``bench/plan_calibrate.py``; the form follows
  Korthikanti et al. 2022); the LM-head working memory of TRL's fused log-prob kernel; DoRA's
  per-module weight-sized temporaries; gradient checkpointing;
- vLLM generation memory per GPU: weights / tensor parallel + KV cache
  (2 x layers x kv_heads x head_dim x bytes per token, as vLLM sizes its cache);
- a verdict per GPU and what to change when it does not fit.

Recipes are turned into a :class:`Workload` by a small adapter per recipe kind
(:data:`WORKLOAD_BUILDERS`); ``gazal grpo`` recipes plug in there.

Modules, in the order data flows through them:

- :mod:`~gazal.plan.shapes`: model shapes, exact parameter counts, the adapter (:class:`LoraSpec`);
- :mod:`~gazal.plan.parallel`: :class:`Parallelism` from an accelerate config;
- :mod:`~gazal.plan.workload`: a recipe -> :class:`Workload` (no weights, no data);
- :mod:`~gazal.plan.coefficients`: the fitted tables, read from ``coefficients.json``;
- :mod:`~gazal.plan.activations`: activations, recomputation, DoRA and loss-head transients;
- :mod:`~gazal.plan.memory`: :class:`MemoryRow` (one line of a memory table) and :data:`GIB`;
- :mod:`~gazal.plan.training`: the training step's memory rows, verdict and advice;
- :mod:`~gazal.plan.generation`: vLLM's weights, activation peak and KV cache;
- :mod:`~gazal.plan.report`: the text ``gazal plan`` prints;
- :mod:`~gazal.plan.measure`: measurement on the CPU, for the calibration and the tests.

The planner reads recipes through ``gazal.train``'s config classes; ``gazal.train`` never
imports it.
"""

from gazal.plan.activations import activation_bytes, dora_transient_bytes, head_transient_bytes
from gazal.plan.coefficients import load_coefficients
from gazal.plan.generation import (
    VLLM_RUNTIME_GIB,
    GenerationEstimate,
    estimate_generation,
    kv_bytes_per_token,
)
from gazal.plan.memory import GIB, MemoryRow
from gazal.plan.parallel import Parallelism, parallelism_from_accelerate
from gazal.plan.report import format_report
from gazal.plan.shapes import (
    BUILTIN_SHAPES,
    LoraSpec,
    ModelShape,
    count_parameters,
    count_trainable,
    resolve_shape,
    shape_from_config,
)
from gazal.plan.training import TrainingEstimate, estimate_training
from gazal.plan.workload import (
    DEFAULT_GRPO_PROMPT_LEN,
    WORKLOAD_BUILDERS,
    GenerationSpec,
    Workload,
    load_workload,
)

__all__ = [
    "BUILTIN_SHAPES",
    "DEFAULT_GRPO_PROMPT_LEN",
    "GIB",
    "VLLM_RUNTIME_GIB",
    "WORKLOAD_BUILDERS",
    "GenerationEstimate",
    "GenerationSpec",
    "LoraSpec",
    "MemoryRow",
    "ModelShape",
    "Parallelism",
    "TrainingEstimate",
    "Workload",
    "activation_bytes",
    "count_parameters",
    "count_trainable",
    "dora_transient_bytes",
    "estimate_generation",
    "estimate_training",
    "format_report",
    "head_transient_bytes",
    "kv_bytes_per_token",
    "load_coefficients",
    "load_workload",
    "parallelism_from_accelerate",
    "resolve_shape",
    "shape_from_config",
]
