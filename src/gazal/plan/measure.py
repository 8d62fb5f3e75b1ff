"""Measure, on the CPU, the training memory that :mod:`gazal.plan` estimates.

Used by ``bench/plan_calibrate.py`` (which fits the activation coefficients of
:mod:`gazal.plan`) and by the tests (which check the estimates against measurements
on tiny models not used in the fit).

- :class:`LiveBytes`: a ``TorchDispatchMode`` that tracks the bytes of every tensor storage
  created while it is active and still alive, and the peak of that sum. Storages that existed
  before (parameters, inputs) are never counted. Allocations inside one fused kernel that do
  not outlive it are not seen; everything that outlives an operator is.
- :func:`build_training_model`: a tiny Qwen3 wrapped as ``gazal sft`` trains it (frozen base,
  PEFT adapter, TRL's fused LM head when the output head is plain) in one of the precisions of
  :data:`gazal.plan.coefficients.PRECISIONS`.
- :func:`measure_training_step`: the bytes held for backward after the forward (the
  activations), the peak during forward + backward, and the exact bytes of weights,
  gradients and AdamW states after one optimizer step.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from gazal.plan.shapes import LoraSpec, ModelShape

__all__ = ["LiveBytes", "StepMemory", "build_training_model", "measure_training_step"]


def _dispatch_mode_base() -> type:
    from torch.utils._python_dispatch import TorchDispatchMode

    return TorchDispatchMode


class LiveBytes:
    """Context manager: live bytes of storages created inside it (``live()``) and their peak.

    ``exclude`` tensors (and anything sharing their storage, e.g. a transposed view of a
    weight) are never counted.
    """

    def __new__(cls, exclude: Any = ()):
        import torch
        from torch.multiprocessing.reductions import StorageWeakRef
        from torch.utils._pytree import tree_flatten

        base = _dispatch_mode_base()

        class _Mode(base):
            def __init__(self) -> None:
                super().__init__()
                self.excluded = {t.untyped_storage().data_ptr() for t in exclude}
                self.refs: dict[int, tuple[Any, int]] = {}
                self.current = 0
                self.peak = 0

            def live(self) -> int:
                dead = [k for k, (ref, _) in self.refs.items() if ref.expired()]
                for k in dead:
                    self.current -= self.refs.pop(k)[1]
                return self.current

            def reset_peak(self) -> None:
                self.peak = self.live()

            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                self.live()  # drop what this op freed before adding what it made
                for t in tree_flatten(out)[0]:
                    if not isinstance(t, torch.Tensor) or t.device.type == "meta":
                        continue
                    storage = t.untyped_storage()
                    key = storage.data_ptr()
                    if key == 0 or key in self.excluded or key in self.refs:
                        continue
                    n = storage.nbytes()
                    self.refs[key] = (StorageWeakRef(storage), n)
                    self.current += n
                self.peak = max(self.peak, self.current)
                return out

        return _Mode()


@dataclass
class StepMemory:
    """What one training step held, in bytes."""

    weights: int            # every parameter (frozen base + adapter)
    trainable: int          # the trainable parameters alone
    gradients: int          # .grad of the trainable parameters after backward
    optimizer: int          # AdamW state after one step (exp_avg, exp_avg_sq, step)
    activations: int        # created in the forward and still alive at its end
    forward_peak: int       # peak of created-and-alive bytes during the forward
    peak: int               # peak during forward + backward (gradients included)
    tokens: int


def _set_fused_head(model: Any) -> None:
    from trl.trainer.utils import add_fused_lm_head

    # the outputs TRL 1.16's SFTTrainer asks for (log_probs; entropy and is_top1 for metrics)
    add_fused_lm_head(model, outputs=("log_probs", "entropy", "is_top1"))


def build_training_model(shape: ModelShape, lora: LoraSpec | None, precision: str, *,
                         fused_head: bool = True, trainable_token_indices: list[int] | None = None,
                         gradient_checkpointing: bool = False, seed: int = 0) -> Any:
    """A random tiny model as ``gazal sft`` trains it.

    ``precision``: ``fp32`` (CPU), ``bf16-amp`` (bf16 base, fp32 adapter, run under bf16
    autocast: single GPU, DDP, FSDP) or ``bf16`` (everything bf16, no autocast: DeepSpeed).
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen3Config, Qwen3ForCausalLM

    config = Qwen3Config(
        vocab_size=shape.vocab_size, hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size, num_hidden_layers=shape.num_layers,
        num_attention_heads=shape.num_heads, num_key_value_heads=shape.num_kv_heads,
        head_dim=shape.head_dim, tie_word_embeddings=shape.tie_word_embeddings,
        max_position_embeddings=4096, attn_implementation="sdpa")
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(config)
    if precision != "fp32":
        model = model.to(torch.bfloat16)
    if fused_head:
        _set_fused_head(model)
    if gradient_checkpointing:
        model.activation_checkpointing_enable(
            activation_checkpointing_kwargs={"use_reentrant": False})
    if lora is None:
        return model
    peft_config = LoraConfig(
        r=lora.r, lora_alpha=2 * lora.r, lora_dropout=lora.dropout, use_dora=lora.use_dora,
        use_rslora=True, target_modules=lora.peft_targets(),
        trainable_token_indices=trainable_token_indices or None, task_type="CAUSAL_LM")
    model = get_peft_model(model, peft_config,
                           autocast_adapter_dtype=precision == "bf16-amp")
    if gradient_checkpointing:
        model.enable_input_require_grads()
    model.train()
    return model


def measure_training_step(model: Any, batch_size: int, seq_len: int, precision: str, *,
                          fused_head: bool = True, prompt_fraction: float = 0.25,
                          optimizer_step: bool = True, seed: int = 0) -> StepMemory:
    """Run forward + backward (+ one AdamW step) on random tokens and report the bytes.

    The first ``prompt_fraction`` of each row is masked out of the loss (labels -100), as in
    assistant-only SFT. Gradients are cleared (set to None) first, so their allocation is part
    of the measured peak.
    """
    import torch

    g = torch.Generator().manual_seed(seed)
    vocab = model.config.vocab_size
    ids = torch.randint(0, vocab, (batch_size, seq_len), generator=g)
    labels = ids.clone()
    labels[:, : int(seq_len * prompt_fraction)] = -100
    mask = torch.ones_like(ids)
    params = list(model.parameters())
    trainable = [p for p in params if p.requires_grad]
    for p in params:
        p.grad = None
    autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16-amp"
                else contextlib.nullcontext())
    kwargs = {"fused_lm_head": True} if fused_head else {"use_cache": False}
    mode = LiveBytes(exclude=[*params, *model.buffers(), ids, labels, mask])
    with mode:
        with autocast:
            out = model(input_ids=ids, attention_mask=mask, labels=labels, **kwargs)
        loss = out.loss
        activations = mode.live()
        forward_peak = mode.peak
        loss.backward()
        del out, loss
        peak = mode.peak
    grads = sum(p.grad.numel() * p.grad.element_size() for p in trainable if p.grad is not None)
    optimizer_bytes = 0
    if optimizer_step:
        opt = torch.optim.AdamW(trainable, lr=1e-3, foreach=False)
        opt.step()
        for state in opt.state.values():
            optimizer_bytes += sum(v.numel() * v.element_size() for v in state.values()
                                   if isinstance(v, torch.Tensor))
    return StepMemory(
        weights=sum(p.numel() * p.element_size() for p in params),
        trainable=sum(p.numel() * p.element_size() for p in trainable),
        gradients=grads, optimizer=optimizer_bytes, activations=activations,
        forward_peak=forward_peak, peak=peak, tokens=batch_size * seq_len)
