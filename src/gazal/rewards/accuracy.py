"""``accuracy``: is the committed answer the gold one?

    r_acc = 1  if the response is valid (every enabled gate passes, see analysis.Analysis.gate)
               and gazal.extraction.extract_answer reads the gold letter
    r_acc = 0  otherwise (wrong, no answer, hedged, conflicting, invalid, truncated)

Range {0, 1}. Source: the rule-based accuracy reward of DeepSeek-R1 (Guo et al. 2025) and
open-r1, with gazal's shared extractor, so what GRPO rewards is what evaluation scores.
"""

from __future__ import annotations

from .analysis import Analysis

NAME = "accuracy"
RANGE = (0.0, 1.0)


def score(a: Analysis) -> float:
    """1.0 for a valid response whose extracted letter is the gold letter, else 0.0."""
    return 1.0 if a.correct else 0.0
