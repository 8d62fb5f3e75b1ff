"""Per-GPU memory of one training step, row by row (frozen weights, adapter, gradients,
optimizer states, activations, loss head, DoRA temporaries, colocated vLLM), the verdict, and
what to change when it does not fit."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from gazal.plan.activations import (
    activation_bytes,
    dora_transient_bytes,
    head_transient_bytes,
    precision_mode,
)
from gazal.plan.generation import VLLM_RUNTIME_GIB, kv_bytes_per_token
from gazal.plan.memory import GIB, MemoryRow
from gazal.plan.parallel import Parallelism
from gazal.plan.shapes import count_parameters, count_trainable
from gazal.plan.workload import Workload


def _bytes(dtype: str) -> int:
    return 4 if dtype == "float32" else 2


@dataclass
class TrainingEstimate:
    """Per-GPU training memory, row by row, and the verdict."""

    rows: list[MemoryRow]
    total: float
    gpu_memory: float
    fits: bool
    params_total: int
    params_trainable: int
    precision: str
    parallel: Parallelism
    tokens: int
    advice: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def row(self, name: str) -> float:
        return next(r.bytes for r in self.rows if r.name == name)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["rows"] = [asdict(r) for r in self.rows]
        return d


def optimizer_state_bytes(optim: str) -> tuple[int, str]:
    """Optimizer state bytes per trained parameter (moments only; masters are separate)."""
    name = optim.lower()
    if "8bit" in name:
        return (1 if "lion" in name else 2), "8-bit states (bitsandbytes)"
    if "lion" in name:
        return 4, "Lion: one fp32 moment"
    if "adafactor" in name:
        return 0, "Adafactor: factored second moment (~0 per parameter)"
    if name.startswith("sgd"):
        return 0, "SGD without momentum"
    if "adam" in name or "rmsprop" in name:
        return (8 if "adam" in name else 4), "fp32 moments"
    return 8, f"unknown optimizer {optim!r}: assumed AdamW (two fp32 moments)"


def estimate_training(workload: Workload, parallel: Parallelism, *, gpu_memory_gib: float = 80.0,
                      overhead_gib: float = 2.0, device: str = "cuda",
                      advise: bool = True) -> TrainingEstimate:
    """Per-GPU memory of one training step (see docs/plan.md for each row).

    ``device='cpu'`` models TRL's torch fallback of the fused head (the tests measure on CPU).
    """
    shape, lora = workload.model, workload.lora
    params = count_parameters(shape)
    trainable = count_trainable(shape, lora)
    precision, notes = precision_mode(workload, parallel)
    notes = list(workload.notes) + notes
    n_total, n_train = params.total, trainable.params
    b_w = _bytes(workload.weights_dtype)
    stage, shard = parallel.zero_stage, max(1, parallel.shard_size)
    if parallel.engine in ("single", "ddp"):
        stage, shard = 0, 1
    rows: list[MemoryRow] = []

    # weights of the frozen base; sharded from stage 3 on
    frozen = (n_total - trainable.saved_modules) * b_w
    w_div = shard if stage >= 3 else 1
    if parallel.offload_params and stage >= 3:
        rows.append(MemoryRow("base weights", 0, "offloaded to CPU"))
    else:
        rows.append(MemoryRow("base weights", frozen / w_div,
                              f"{n_total / 1e9:.2f}B x {b_w} B" + (f" / {w_div} GPUs"
                                                                   if w_div > 1 else "")))
    if stage >= 3 and not parallel.offload_params:
        layer = params.per_layer * b_w
        head = max(params.lm_head, params.embedding) * b_w
        gathered = max(2 * layer, layer + head)
        rows.append(MemoryRow("gathered weights", gathered,
                              "working set of all-gathered layers (current + prefetched, or "
                              "a layer and the embedding / head)"))

    # the adapter: weights, gradients, optimizer states
    state_bytes, state_note = optimizer_state_bytes(workload.optim)
    if precision == "bf16":  # DeepSpeed: bf16 weights and gradients, fp32 master + moments
        w_t, g_t, master = 2, 2, 4
    else:  # fp32 adapter (PEFT autocast_adapter_dtype, FSDP upcast): fp32 weights and grads
        w_t, g_t, master = 4, 4, 0
    rows.append(MemoryRow("adapter weights", n_train * w_t / w_div,
                          f"{n_train / 1e6:.1f}M trainable x {w_t} B"))
    g_div = shard if stage >= 2 else 1
    rows.append(MemoryRow("gradients", n_train * g_t / g_div,
                          f"{g_t} B per trained parameter" + (f" / {g_div}" if g_div > 1 else "")))
    o_div = shard if stage >= 1 else 1
    opt = n_train * (state_bytes + master) + 4 * trainable.tensors  # + AdamW step counters
    if parallel.offload_optimizer:
        rows.append(MemoryRow("optimizer states", 0, "offloaded to CPU"))
    else:
        rows.append(MemoryRow("optimizer states", opt / o_div,
                              f"{state_bytes + master} B per trained parameter ({state_note}"
                              + (", fp32 master copy" if master else "") + ")"
                              + (f" / {o_div}" if o_div > 1 else "")))
    if parallel.engine == "ddp" and parallel.world_size > 1:
        rows.append(MemoryRow("communication buffers", n_train * g_t,
                              "DDP gradient buckets (a copy of the gradients)"))
    elif parallel.deepspeed and parallel.world_size > 1:
        bucket = min(5e8, n_train) * g_t  # DeepSpeed default reduce / allgather buckets
        rows.append(MemoryRow("communication buffers", bucket * (2 if stage <= 2 else 1),
                              "DeepSpeed reduce (and allgather) buckets, 5e8 elements max"))

    # activations
    tokens = workload.tokens
    act, recompute = activation_bytes(shape, lora, precision, tokens,
                                      fused_head=workload.fused_head,
                                      checkpointing=workload.gradient_checkpointing)
    if workload.gradient_checkpointing:
        rows.append(MemoryRow("activations", act,
                              f"checkpointed: the {shape.num_layers} layer inputs, {tokens} "
                              f"tokens ({workload.micro_batch} x {workload.seq_len})"))
        rows.append(MemoryRow("recomputed layer", recompute,
                              "one layer's activations, rebuilt in the backward"))
    else:
        rows.append(MemoryRow("activations", act, f"{tokens} tokens ({workload.micro_batch} x "
                                                  f"{workload.seq_len}), all layers kept"))
    if workload.padded and workload.attn_implementation != "flash_attention_2":
        mask = workload.micro_batch * workload.seq_len ** 2
        rows.append(MemoryRow("attention mask", mask, "padded batch: a (b, 1, s, s) boolean "
                                                      "mask for SDPA"))
    head = head_transient_bytes(shape, tokens, precision, workload.fused_head, device)
    dora = dora_transient_bytes(shape, lora, precision)
    rows.append(MemoryRow("logits / loss", head,
                          "TRL fused log-prob tiles + fp32 hidden-state gradient"
                          if workload.fused_head else "full (N x V) logits: fp32 gradient "
                                                      "of the log-softmax + logits gradient"))
    if dora:
        rows.append(MemoryRow("DoRA temporaries", dora,
                              "largest module's identity x B@A and W + s*B@A (per forward, "
                              "transient)"))
    rows.append(MemoryRow("CUDA context + allocator", overhead_gib * GIB,
                          "CUDA/NCCL context, workspaces, fragmentation (assumed)"))
    if workload.reference_model:
        rows.append(MemoryRow("reference model", 0, workload.reference_model))
    if workload.colocated_vllm == "awake" and workload.generation is not None:
        share = workload.generation.gpu_memory_utilization
        rows.append(MemoryRow("colocated vLLM", share * gpu_memory_gib * GIB,
                              f"gpu_memory_utilization {share} x {gpu_memory_gib:g} GiB, held "
                              "through training (no sleep mode)"))
    elif workload.colocated_vllm == "asleep":
        rows.append(MemoryRow("colocated vLLM (asleep)", VLLM_RUNTIME_GIB * GIB,
                              "sleep mode frees its weights and KV cache while training; CUDA "
                              "graphs + runtime stay (assumed)"))
    generation_kv = 0.0
    if workload.inprocess_generation is not None:
        g = workload.inprocess_generation
        b_kv = 4 if precision == "fp32" else 2
        generation_kv = (kv_bytes_per_token(shape, 1, b_kv) * g.sequences * g.length
                         + g.sequences * shape.vocab_size * 4)
        rows.append(MemoryRow("generation KV cache", generation_kv,
                              f"transformers generate(): {g.sequences} x {g.length} tokens x "
                              f"{kv_bytes_per_token(shape, 1, b_kv) / 1024:.0f} KiB + fp32 "
                              "logits of a step; between training steps, not with activations"))

    # not alive at the same time: the head's backward (first in the backward pass) and the
    # recomputed layer with DoRA's temporaries (forward / recompute): count the larger
    transient = max(head, recompute + dora)
    total = sum(r.bytes for r in rows) - head - dora - recompute + transient - generation_kv
    # GRPO's generation and the training step take turns: the larger of the two phases
    step_only = act + transient + sum(r.bytes for r in rows if r.name == "attention mask")
    generating = 0.0
    if generation_kv:
        generating = total - step_only + generation_kv
    if workload.colocated_vllm == "asleep" and workload.generation is not None:
        awake = workload.generation.gpu_memory_utilization * gpu_memory_gib * GIB
        generating = total - step_only - VLLM_RUNTIME_GIB * GIB + awake
    phase_note = ""
    if generating:
        phase_note = ("generation phase (no training activations; "
                      + ("transformers' KV cache" if generation_kv else "vLLM awake at its "
                         "gpu_memory_utilization share") + f"): {generating / GIB:.2f} GiB, "
                      f"training step: {total / GIB:.2f} GiB; the total is the larger")
        total = max(total, generating)
    gpu_memory = gpu_memory_gib * GIB
    est = TrainingEstimate(rows=rows, total=total, gpu_memory=gpu_memory,
                           fits=total <= gpu_memory, params_total=n_total,
                           params_trainable=n_train, precision=precision, parallel=parallel,
                           tokens=tokens, notes=notes)
    if phase_note:
        est.notes.append(phase_note)
    if workload.colocated_vllm and workload.generation is not None and \
            parallel.world_size % workload.generation.tensor_parallel:
        est.notes.append(f"TRL refuses this: colocated vLLM's tensor parallel size "
                         f"({workload.generation.tensor_parallel}) must divide the number of "
                         f"processes ({parallel.world_size}); set "
                         "--grpo.vllm_tensor_parallel_size")
    if not lora.all_linear:
        est.notes.append("activation coefficients are fitted for adapters on every linear "
                         "layer; with fewer adapted modules the estimate is an upper bound")
    if advise:
        est.advice = advise_training(workload, parallel, est, gpu_memory_gib, overhead_gib,
                                     device)
    return est


def _with(workload: Workload, **changes: Any) -> Workload:
    return replace(workload, **changes)


def advise_training(workload: Workload, parallel: Parallelism, est: TrainingEstimate,
                    gpu_memory_gib: float, overhead_gib: float,
                    device: str = "cuda") -> list[str]:
    """What to change when the estimate does not fit (each suggestion re-estimated)."""
    if est.fits:
        return []
    tips: list[str] = []

    def total(w: Workload, p: Parallelism) -> float:
        return estimate_training(w, p, gpu_memory_gib=gpu_memory_gib,
                                 overhead_gib=overhead_gib, device=device, advise=False).total

    def fmt(x: float) -> str:
        return f"{x / GIB:.1f} GiB"

    if not workload.gradient_checkpointing:
        t = total(_with(workload, gradient_checkpointing=True), parallel)
        tips.append(f"enable gradient checkpointing (--train.gradient_checkpointing true): "
                    f"{fmt(t)}")
    if parallel.zero_stage < 3 and parallel.world_size > 1:
        z3 = replace(parallel, engine="deepspeed", zero_stage=3, shard_size=parallel.world_size)
        t = total(workload, z3)
        tips.append(f"shard the weights (recipes/accelerate/zero3.yaml or fsdp.yaml): {fmt(t)}")
    elif parallel.world_size == 1:
        tips.append("use more GPUs with ZeRO-3 / FSDP (--num-gpus N with "
                    "recipes/accelerate/zero3.yaml)")
    if workload.micro_batch > 1:
        half = max(1, workload.micro_batch // 2)
        t = total(_with(workload, micro_batch=half), parallel)
        tips.append(f"halve the micro-batch (--train.per_device_train_batch_size {half}, double "
                    f"gradient_accumulation_steps to keep the batch): {fmt(t)}")
    if workload.padded and workload.attn_implementation != "flash_attention_2":
        t = total(_with(workload, padded=False, attn_implementation="flash_attention_2"),
                  parallel)
        tips.append(f"flash_attention_2 with packing (no (s x s) mask): {fmt(t)}")
    if workload.colocated_vllm == "awake":
        t = total(_with(workload, colocated_vllm="asleep"), parallel)
        tips.append(f"put colocated vLLM to sleep during training (--grpo.vllm_enable_sleep_mode "
                    f"true), or generate on a `trl vllm-serve` node (--grpo.vllm_mode server): "
                    f"{fmt(t)}")
    if not parallel.offload_optimizer and parallel.engine == "deepspeed":
        t = total(workload, replace(parallel, offload_optimizer=True))
        tips.append(f"offload optimizer states to CPU (offload_optimizer_device: cpu): {fmt(t)}")
    if workload.kind == "grpo":
        half = (workload.seq_len - workload.prompt_len) // 2
        shorter = _with(workload, seq_len=workload.prompt_len + half)
        if workload.inprocess_generation is not None:
            shorter = _with(shorter, inprocess_generation=replace(
                workload.inprocess_generation, length=workload.prompt_len + half))
        tips.append(f"shorter completions ({workload.length_flag} {half}, and "
                    f"--reward.length.max_tokens): {fmt(total(shorter, parallel))}")
    else:
        tips.append(f"shorter sequences ({workload.length_flag} {workload.seq_len // 2}): "
                    f"{fmt(total(_with(workload, seq_len=workload.seq_len // 2), parallel))}")
    return tips
