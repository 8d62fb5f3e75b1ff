"""vLLM generation memory per GPU: weights / tensor parallel, the profiled activation peak,
runtime, and the KV cache that gets what is left of ``gpu_memory_utilization``."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from gazal.plan.memory import GIB, MemoryRow
from gazal.plan.shapes import ModelShape, count_parameters
from gazal.plan.workload import GenerationSpec


def kv_bytes_per_token(shape: ModelShape, tensor_parallel: int = 1, bytes_per_value: int = 2
                       ) -> int:
    """KV-cache bytes per token per GPU: keys and values of every layer, the KV heads split
    over tensor parallelism (replicated when there are more GPUs than KV heads)."""
    kv_heads = math.ceil(shape.num_kv_heads / max(1, tensor_parallel))
    return 2 * shape.num_layers * kv_heads * shape.head_dim * bytes_per_value


# vLLM's memory besides weights, activations and KV cache (CUDA graphs, NCCL, runtime):
# an assumption, as for the training's CUDA context
VLLM_RUNTIME_GIB = 1.5


@dataclass
class GenerationEstimate:
    """Per-GPU vLLM memory for a batch of sequences."""

    rows: list[MemoryRow]
    kv_bytes_per_token: float
    kv_needed: float
    kv_available: float
    max_sequences: int
    budget: float
    fits: bool
    spec: GenerationSpec
    advice: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["rows"] = [asdict(r) for r in self.rows]
        return d


def estimate_generation(shape: ModelShape, spec: GenerationSpec, *, gpu_memory_gib: float = 80.0,
                        weights_bytes: int = 2,
                        runtime_gib: float = VLLM_RUNTIME_GIB) -> GenerationEstimate:
    """vLLM's memory per GPU: weights / TP, a profiling activation peak, CUDA graphs and
    runtime, and the KV cache that gets what is left of ``gpu_memory_utilization``."""
    tp = max(1, spec.tensor_parallel)
    params = count_parameters(shape).total
    weights = params * weights_bytes / tp
    kv_per_token = kv_bytes_per_token(shape, tp, spec.kv_cache_bytes)
    # vLLM profiles one forward of max_num_batched_tokens to size its activation peak: the
    # MLP's (gate, up) output and the residual stream dominate; the sampler's fp32 logits
    acts = spec.max_num_batched_tokens * (
        2 * shape.intermediate_size / tp + 4 * shape.hidden_size) * weights_bytes \
        + min(spec.sequences, 256) * shape.vocab_size * 4
    runtime = runtime_gib * GIB
    budget = spec.gpu_memory_utilization * gpu_memory_gib * GIB
    available = budget - weights - acts - runtime
    needed = kv_per_token * spec.sequences * spec.length
    max_seqs = max(0, int(available // (kv_per_token * spec.length))) if available > 0 else 0
    rows = [MemoryRow("weights", weights, f"{params / 1e9:.2f}B x {weights_bytes} B"
                                          + (f" / TP {tp}" if tp > 1 else "")),
            MemoryRow("activation peak", acts, f"profiled at {spec.max_num_batched_tokens} "
                                               "batched tokens + sampler logits"),
            MemoryRow("CUDA graphs + runtime", runtime, "assumed"),
            MemoryRow("KV cache", needed,
                      f"{spec.sequences} seqs x {spec.length} tokens x "
                      f"{kv_per_token / 1024:.0f} KiB/token")]
    est = GenerationEstimate(rows=rows, kv_bytes_per_token=kv_per_token, kv_needed=needed,
                             kv_available=max(0.0, available), max_sequences=max_seqs,
                             budget=budget, fits=needed <= available, spec=spec)
    if available <= 0:
        est.advice.append(f"the weights alone exceed gpu_memory_utilization x memory; use "
                          f"tensor parallelism (--tensor-parallel {tp * 2})")
    elif not est.fits:
        # vLLM does not fail here: it schedules what fits and queues (or preempts) the rest
        est.advice.append(f"to run all {spec.sequences} at once (vLLM queues the rest): "
                          f"--tensor-parallel {tp * 2}, kv_cache_dtype fp8, or a higher "
                          "gpu_memory_utilization")
    return est
