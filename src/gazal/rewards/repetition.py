"""``repetition``: n-gram repetition penalty (Yeo et al. 2025, section 4.2; their sparse
``get_repetition_penalty``, also open-r1's ``repetition_penalty`` reward).

With the completion's n-grams (n = ``repetition.ngram_size``) over lowercased words (or token
ids with ``repetition.unit: tokens``):

    r_rep = max_penalty * (1 - distinct n-grams / all n-grams)      (0 with fewer than n units)

Range [max_penalty, 0] (default [-1, 0]); never positive, so it cannot reward a truncated
completion either. Counted with 64-bit n-gram keys and a numpy sort (see
analysis.ngram_keys), not Python tuples, so 2,000-token completions cost microseconds.
"""

from __future__ import annotations

from .analysis import Analysis

NAME = "repetition"


def score(a: Analysis) -> float:
    """max_penalty times the fraction of repeated n-grams (<= 0)."""
    c = a.cfg.repetition
    fraction = a.repetition_fraction
    return c.max_penalty * fraction if fraction > 0 and c.max_penalty else 0.0
