"""Fast generation with an unmerged DoRA adapter: eval mode plus PEFT's DoRA cache.

Why. A DoRA layer computes ``m * (W + s*B@A) / ||W + s*B@A||``. PEFT recomputes ``B@A`` and the
column norm ``||W + s*B@A||`` at every forward in train mode, and TRL's ``GRPOTrainer``
generates with the policy in train mode, so every decoded token pays a pass over every adapted
weight matrix: generation, most of a GRPO step, runs several times slower than with plain
weights (BENCHMARKS.md, ``bench/grpo_step.py``).

What. In eval mode, inside ``peft.helpers.DoraCaching()``, PEFT computes ``B@A`` and the norm
once and reuses them for every token. The cache lives only in eval mode: PEFT clears it when
a layer is set back to train mode (and here on leaving the context too), so it never holds
values of weights that have since changed.

Distribution. Eval mode also turns dropout off. With ``lora.dropout: 0`` (gazal's GRPO
default) and a model without active dropout (Qwen3: attention dropout 0) the eval-mode forward
is the train-mode forward, so the completions are sampled from exactly the policy TRL trains
(a test compares per-token log-probabilities of sampled completions on both paths). With
dropout > 0 the fast path samples from the dropout-free policy, while TRL's train-mode path
samples each token under a fresh dropout mask (not the policy the loss evaluates either).

Memory. The cache holds one ``B@A`` (the size of the base weight) and one norm vector per
adapted layer for as long as generation runs: about one extra copy of the adapted weights.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["fast_generation_mode"]


@contextmanager
def fast_generation_mode(model: Any) -> Iterator[Any]:
    """Run the body with ``model`` in eval mode and DoRA's weight-norm cache on; restore the
    model's mode (and drop the cache) afterwards, also on errors."""
    from peft.helpers import DoraCaching

    was_training = model.training
    model.eval()
    try:
        with DoraCaching():
            yield model
    finally:
        model.train(True)  # PEFT drops every DoRA cache on entering train mode
        model.train(was_training)
