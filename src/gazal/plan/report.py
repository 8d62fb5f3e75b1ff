"""The text ``gazal plan`` prints."""

from __future__ import annotations

from gazal.plan.generation import GenerationEstimate
from gazal.plan.memory import GIB
from gazal.plan.training import TrainingEstimate
from gazal.plan.workload import Workload


def _gib(x: float) -> str:
    return f"{x / GIB:7.2f}"


def format_report(workload: Workload, train: TrainingEstimate,
                  gen: GenerationEstimate | None) -> str:
    """The text ``gazal plan`` prints."""
    shape, p = workload.model, train.parallel
    lines = [f"model: {shape.name} ({shape.model_type}, {shape.num_layers} layers, hidden "
             f"{shape.hidden_size}, vocab {shape.vocab_size})",
             f"parameters: {train.params_total:,} total, {train.params_trainable:,} trainable "
             f"({100 * train.params_trainable / train.params_total:.2f}%: "
             f"{'DoRA' if workload.lora.use_dora else 'LoRA'} r={workload.lora.r})",
             f"parallelism: {p.source}; {p.world_size} GPU(s)",
             f"precision: weights {workload.weights_dtype}, mixed precision "
             f"{workload.mixed_precision} -> {train.precision}; gradient checkpointing "
             f"{'on' if workload.gradient_checkpointing else 'off'}; micro-batch "
             f"{workload.micro_batch} x {workload.seq_len} tokens",
             "", "training memory per GPU (GiB):"]
    width = max(len(r.name) for r in train.rows)
    for r in train.rows:
        lines.append(f"  {r.name:<{width}} {_gib(r.bytes)}  {r.note}")
    lines.append(f"  {'total':<{width}} {_gib(train.total)}  (transients: the larger of "
                 "logits / loss and " + ("recomputed layer + " if workload.gradient_checkpointing
                                         else "") + "DoRA temporaries)")
    verdict = "fits" if train.fits else "DOES NOT FIT"
    lines.append(f"  -> {verdict} in {train.gpu_memory / GIB:.0f} GiB "
                 f"({100 * train.total / train.gpu_memory:.0f}%)")
    for tip in train.advice:
        lines.append(f"     try: {tip}")
    for note in train.notes:
        lines.append(f"  note: {note}")
    if gen is not None:
        s = gen.spec
        lines += ["", f"vLLM generation per GPU (GiB): {s.sequences} sequences x {s.length} "
                      f"tokens, tensor parallel {s.tensor_parallel}, gpu_memory_utilization "
                      f"{s.gpu_memory_utilization}" + (f" ({s.note})" if s.note else "")]
        width = max(len(r.name) for r in gen.rows)
        for r in gen.rows:
            lines.append(f"  {r.name:<{width}} {_gib(r.bytes)}  {r.note}")
        lines.append(f"  KV cache room: {gen.kv_available / GIB:.2f} GiB = {gen.max_sequences} "
                     f"sequences of {s.length} tokens at once")
        lines.append("  -> " + ("fits" if gen.fits else "does not fit all at once"))
        for tip in gen.advice:
            lines.append(f"     try: {tip}")
    return "\n".join(lines)
