"""``length``: cosine length-scaled accuracy (Yeo et al. 2025, "Demystifying Long
Chain-of-Thought Reasoning in LLMs", section 4.2, the "cosine reward").

With L the completion length in tokens, t = clip((L - min_tokens) / (max_tokens - min_tokens),
0, 1) and

    cos_fn(t; r_0, r_L) = r_L + (r_0 - r_L) * (1 + cos(pi * t)) / 2      (r_0 at t=0, r_L at t=1)

    r_len = r_exceed                    truncated, or L >= max_tokens
          = cos_fn(t; r_c_0, r_c_L)     correct (a valid response with the gold letter)
          = cos_fn(t; r_w_0, r_w_L)     valid but wrong
          = min(r_w_0, r_w_L)           invalid (a gate failed): never better than the
                                        shortest valid wrong answer, however long it is

Short correct > long correct (r_c_0 >= r_c_L); long wrong > short wrong (r_w_L >= r_w_0);
every correct > every wrong (r_c_L > r_w_L); r_exceed <= min(r_w_0, 0). Range
[r_exceed, r_c_0] (defaults [-1, 1]). Lengths: ``completion_ids`` from the trainer (without
the final EOS), else the tokenizer, else ceil(characters / length.chars_per_token).
"""

from __future__ import annotations

import math

from .analysis import Analysis

NAME = "length"


def cos_fn(t: float, r_0: float, r_L: float) -> float:
    """r_0 at t=0 falling (or rising) along half a cosine to r_L at t=1."""
    return r_L + (r_0 - r_L) * (1.0 + math.cos(math.pi * t)) / 2.0


def score(a: Analysis) -> float:
    """The cosine length reward of one completion (see the module docstring)."""
    c = a.cfg.length
    if a.truncated:
        return c.r_exceed
    if not a.valid:
        return min(c.r_w_0, c.r_w_L)
    t = (a.n_tokens - c.min_tokens) / (c.max_tokens - c.min_tokens)
    t = min(max(t, 0.0), 1.0)
    if a.correct:
        return cos_fn(t, c.r_c_0, c.r_c_L)
    return cos_fn(t, c.r_w_0, c.r_w_L)
