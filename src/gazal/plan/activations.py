"""Activation memory of a training step: what the forward keeps for the backward (from the
fitted coefficients in ``coefficients.json``), the one layer recomputed under gradient
checkpointing, DoRA's per-module temporaries and the loss head's working memory."""

from __future__ import annotations

from gazal.config import ConfigError
from gazal.plan.coefficients import load_coefficients
from gazal.plan.parallel import Parallelism
from gazal.plan.shapes import LoraSpec, ModelShape
from gazal.plan.workload import Workload

# TRL 1.16's fused log-prob head (trl/kernels/chunked_logprob.py) projects tiles of
# TOKEN_CHUNK_SIZE tokens x _CHUNKED_LOGPROB_CHUNK_SIZE vocabulary entries.
TRL_TOKEN_CHUNK = 4096
TRL_VOCAB_CHUNK = 32768


def precision_mode(workload: Workload, parallel: Parallelism) -> tuple[str, list[str]]:
    """The calibrated precision closest to how the trainer will run, and notes."""
    notes = []
    low = workload.weights_dtype in ("bfloat16", "float16")
    if parallel.deepspeed and (workload.mixed_precision != "no" or low):
        return "bf16", notes  # DeepSpeed casts the whole model (adapter included) to bf16
    if workload.mixed_precision != "no":
        if not low:
            notes.append("float32 weights with bf16 autocast: activations estimated as for "
                         "bf16 weights")
        return "bf16-amp", notes
    if low:
        notes.append(f"{workload.weights_dtype} weights without train.bf16: the fp32 adapter "
                     "casts its inputs to fp32; estimated as bf16 autocast; set train.bf16: "
                     "true on GPUs")
        return "bf16-amp", notes
    return "fp32", notes


def _coefficients(precision: str, lora: LoraSpec, fused_head: bool) -> tuple[float, ...]:
    key = (precision, "dora" if lora.use_dora else "lora", lora.dropout > 0,
           "fused" if fused_head else "full")
    try:
        return load_coefficients().activation[key]
    except KeyError:
        raise ConfigError(f"gazal/plan/coefficients.json: no activation coefficients for "
                          f"{key}; run bench/plan_calibrate.py --write") from None


def activation_bytes(shape: ModelShape, lora: LoraSpec, precision: str, tokens: int, *,
                     fused_head: bool = True, checkpointing: bool = False) -> tuple[float, float]:
    """(bytes held for the backward pass at the end of the forward, bytes of the one layer
    recomputed during the backward), from the fitted tables of
    :func:`gazal.plan.coefficients.load_coefficients` (formulas in ``coefficients.json``).

    Without gradient ``checkpointing`` every layer's activations are held and nothing is
    recomputed. With it (HF checkpoints every decoder layer) the layer inputs and the
    embedding / head terms are held, and one layer at a time is recomputed in the backward.
    """
    c = _coefficients(precision, lora, fused_head)
    mods = lora.adapted(shape)
    per_layer_token = (c[0] * shape.hidden_size + c[1] * shape.intermediate_size
                       + c[2] * shape.q_dim + c[3] * shape.kv_dim + c[4] * shape.num_heads
                       + c[5] * lora.r * len(mods))
    global_token = (c[6] * shape.hidden_size + c[7] * shape.head_dim + c[8] * shape.vocab_size
                    + c[9])
    weights = sum(m.in_features * m.out_features for m in mods)
    per_layer_const = (c[10] * weights + c[11] * sum(lora.r * (m.in_features + m.out_features)
                                                     for m in mods)
                       + c[12] * sum(m.out_features for m in mods))
    # the first layer's q/k/v input does not require grad (frozen embedding), so no weight
    # copy is kept for them (bench/plan_calibrate.py)
    first_qkv = sum(m.in_features * m.out_features for m in mods
                    if m.name in ("q_proj", "k_proj", "v_proj"))
    global_const = c[13] * shape.vocab_size * shape.hidden_size + c[14] - c[10] * first_qkv
    if not checkpointing:
        return (tokens * (shape.num_layers * per_layer_token + global_token)
                + shape.num_layers * per_layer_const + global_const), 0.0
    e = load_coefficients().checkpointed[(precision, "fused" if fused_head else "full")]
    held = tokens * (e[0] * shape.num_layers * shape.hidden_size + e[1] * shape.hidden_size
                     + e[2] * shape.head_dim + e[3] * shape.vocab_size + e[4]) \
        + e[5] * shape.vocab_size * shape.hidden_size + e[6]
    return held, tokens * per_layer_token + per_layer_const


def dora_transient_bytes(shape: ModelShape, lora: LoraSpec, precision: str) -> int:
    """Peak of PEFT 0.21's DoRA temporaries for one adapted module in one forward.

    ``DoraLinearLayer.get_lora_weight`` multiplies an (in x in) identity through lora_A and
    lora_B to get B@A (in x out, adapter dtype), casts it to the activation dtype, and
    ``get_weight_norm`` adds it to the (out x in) base weight before taking the row norms:
    in^2*a + in*r*a + in*out*a (+ in*out*b for the cast) + 2*out*in*b, where a is the adapter's
    and b the activations' bytes per element. The largest module (down_proj: in = I) decides.
    """
    if not lora.use_dora:
        return 0
    a = 4 if precision in ("fp32", "bf16-amp") else 2
    b = 4 if precision == "fp32" else 2
    worst = 0
    for m in lora.adapted(shape):
        i, o = m.in_features, m.out_features
        cast = i * o * b if a != b else 0
        worst = max(worst, i * i * a + i * lora.r * a + i * o * a + cast + 2 * o * i * b)
    return worst


def head_transient_bytes(shape: ModelShape, tokens: int, precision: str, fused: bool,
                         device: str = "cuda") -> int:
    """Working memory of the loss head in the backward pass.

    Fused (TRL 1.16 ``ChunkedLogProbFunction``): one (min(N, 4096) x 32768) tile in the compute
    dtype, plus the fp32 gradient of the hidden states (N x h) and its cast back. On CUDA a
    Triton kernel works on the tile in place; elsewhere TRL's torch fallback makes about 7.2
    fp32 temporaries of the tile's used columns (measured, docs/plan.md). Full logits
    (``Trainer.compute_loss`` when PEFT wraps the head): the fp32 gradient of the (N x V)
    log-softmax and the gradient of the logits in the compute dtype.
    """
    b = 4 if precision == "fp32" else 2
    h, v = shape.hidden_size, shape.vocab_size
    if not fused:
        return tokens * v * (4 + b)
    rows = min(tokens, TRL_TOKEN_CHUNK)
    out = rows * TRL_VOCAB_CHUNK * b + tokens * h * (4 + b)
    if device != "cuda":
        out += int(7.2 * rows * min(v, TRL_VOCAB_CHUNK) * 4)
    return out

