"""``structure``: credit for numbered clinical steps that carry content, capped.

    k     = steps (``Step N:``) inside the thinking with at least structure.min_step_words
            words of two or more letters, not repeating an earlier step
    r_str = min(k, cap) / cap

    r_str = 0 unless the response is valid (every enabled gate passes: not truncated, one
            well-formed thinking block with content, not degenerate, one well-formed final
            answer line): an answer that does not count earns no reasoning credit either, so
            no hack can buy with steps what it lost with its answer

Range [0, 1]. Source: open-r1's ``reasoning_steps`` reward (min(1, count / 3) over "Step N:"
markers), with gazal's content test and a recipe cap.
"""

from __future__ import annotations

from .analysis import Analysis

NAME = "structure"
RANGE = (0.0, 1.0)


def score(a: Analysis) -> float:
    """Capped share of contentful steps."""
    c = a.cfg.structure
    if not a.valid:
        return 0.0
    return min(a.n_content_steps, c.cap) / c.cap
