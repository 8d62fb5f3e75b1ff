"""Batch planning: prompts sorted by length (longest first) and cut into batches.

Sorting by length keeps the left padding in each batch small, so little compute is spent on
padding, and putting the longest batch first makes an out-of-memory error happen at once
rather than hours in (lm-evaluation-harness orders its requests the same way).

Two rules cut the sorted list:

- a fixed ``batch_size``: every batch holds that many prompts (the last one fewer);
- a token budget (``batch_size: auto``): a batch takes prompts while
  ``prompts x (its longest prompt + max_new_tokens) <= batch_tokens`` and
  ``prompts <= max_batch_size``: the padded batch's KV cache at the end of generation fits
  the budget. A single prompt over the budget still gets a batch of its own.

Ties in length keep input order, so a plan depends only on the lengths and the settings.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["plan_batches"]


def plan_batches(lengths: Sequence[int], max_new_tokens: int, *, batch_size: int | None = None,
                 batch_tokens: int | None = None, max_batch_size: int = 64
                 ) -> list[list[int]]:
    """Indices into ``lengths`` grouped into batches, longest prompts first.

    Give ``batch_size`` for fixed batches, or ``batch_tokens`` for the token-budget rule
    (capped at ``max_batch_size`` prompts).
    """
    if (batch_size is None) == (batch_tokens is None):
        raise ValueError("give exactly one of batch_size and batch_tokens")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        if current:
            if batch_size is not None:
                full = len(current) >= batch_size
            else:
                longest = lengths[current[0]]  # sorted: the first is the longest
                full = (len(current) >= max_batch_size
                        or (len(current) + 1) * (longest + max_new_tokens) > batch_tokens)  # type: ignore[operator]
            if full:
                batches.append(current)
                current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches
