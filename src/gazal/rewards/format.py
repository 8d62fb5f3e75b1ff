"""``format``: the reasoning format of DESIGN.md, exactly once.

Four parts, each worth 1/4 (``format.partial_credit``; otherwise all or nothing):

1. thinking block: exactly one ``<think>`` (the first thing in the completion) and exactly one
   ``</think>`` (with ``format.think_in_prompt``: no ``<think>``, one ``</think>``);
2. steps: numbered ``Step 1:``, ``Step 2:``, ... in order, none empty (each has a word of two
   or more letters); form only: whether steps carry content is judged by the gates and by
   ``structure``;
3. assessment: one ``## Clinical Assessment`` heading after the thinking with at least
   ``format.min_assessment_words`` words after it (up to the final answer line, if any);
4. final answer line: exactly one canonical ``**Final answer: (X) text**`` line
   (gazal.formatting.FINAL_ANSWER_LINE) in the completion, after the thinking, naming exactly
   one option, read the same by the shared extractor, and the last line of the completion.

    r_fmt = (p1 + p2 + p3 + p4) / 4        (0 for a truncated completion)

Range [0, 1] in steps of 0.25. Source: the format rewards of DeepSeek-R1 / open-r1 (tags
present), extended to gazal's full format and to "exactly once".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .analysis import Analysis

NAME = "format"
RANGE = (0.0, 1.0)


def parts(a: Analysis) -> tuple[bool, bool, bool, bool]:
    """(thinking block, steps, assessment, final answer line) of a completion."""
    final_ok = a.final_line_ok and a.final.is_last
    return a.think_ok, a.steps_ok, a.assessment_ok, final_ok


def layout_pass_rate(completions: Sequence[str], answers: Sequence[str],
                     options: Sequence[Any]) -> float:
    """Fraction of completions whose layout follows the reasoning format
    (:attr:`Analysis.layout_ok`: the format's four parts, the final line present and last,
    whether or not it names an option). Reported as the "format pass rate" of a model."""
    from .analysis import Analyzer
    from .config import RewardConfig

    if not completions:
        return 0.0
    batch = Analyzer(RewardConfig()).batch(list(completions),
                                           {"answer": list(answers), "options": list(options)})
    return sum(a.layout_ok for a in batch) / len(batch)


def score(a: Analysis) -> float:
    """Sum of the parts / 4 (or 1/0 without partial credit); 0 when truncated."""
    if a.truncated:
        return 0.0
    got = parts(a)
    if a.cfg.format.partial_credit:
        return sum(got) / 4.0
    return 1.0 if all(got) else 0.0
