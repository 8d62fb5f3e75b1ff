"""Is an assistant turn in gazal's reasoning format (DESIGN.md)? Used by ``gazal data synth``
(to reject a teacher reply) and ``gazal data curate`` (to remove a training example).

The format::

    <think>
    Step 1: ...
    Step 2: ...
    </think>

    ## Clinical Assessment
    ...

    **Final answer: (C) option text**

Checked: one thinking block, opened and closed; at least ``min_steps`` numbered steps
(``Step 1:``, ``Step 2:``, ... in order), none empty; after the thinking, the assessment
heading (if required) and exactly one final answer line, which is the last line; no final
answer line inside the thinking.
"""

from __future__ import annotations

from dataclasses import dataclass

from gazal.formatting import (
    ASSESSMENT_HEADING,
    FINAL_ANSWER_LINE,
    STEP_LINE,
    THINK_CLOSE,
    THINK_OPEN,
    parse_response,
    parse_steps,
)

__all__ = ["FORMAT_REASONS", "FormatCheck", "canonical_response", "check_format"]

# Every reason check_format can give, for reports.
FORMAT_REASONS = ("empty", "no_thinking", "truncated", "think_tags", "no_steps", "empty_step",
                  "step_numbering", "final_answer_in_thinking", "final_answer_missing",
                  "final_answer_multiple", "final_answer_not_last", "no_assessment")


@dataclass(frozen=True)
class FormatCheck:
    """``reason`` is None when the text is in the format; ``detail`` says more."""

    reason: str | None
    detail: str = ""
    n_steps: int = 0

    @property
    def ok(self) -> bool:
        return self.reason is None


def check_format(text: str, *, min_steps: int = 1, require_assessment: bool = True
                 ) -> FormatCheck:
    """Check one assistant turn against the reasoning format."""
    if not text or not text.strip():
        return FormatCheck("empty")
    parsed = parse_response(text)
    if parsed.truncated:
        return FormatCheck("truncated", "the thinking opens but never closes")
    if parsed.thinking is None:
        return FormatCheck("no_thinking", f"no {THINK_CLOSE}")
    n_open, n_close = text.count(THINK_OPEN), text.count(THINK_CLOSE)
    if n_open != 1 or n_close != 1 or not text.lstrip().startswith(THINK_OPEN):
        return FormatCheck("think_tags", f"expected the text to start with one {THINK_OPEN} "
                                         f"and hold one {THINK_CLOSE}; found {n_open} and "
                                         f"{n_close}")
    # The step lines' numbers and first-line text (findall is several times faster than
    # parse_steps, which copies each step's whole body); parse_steps only decides whether a
    # step with nothing on its own line has content on the lines below.
    lines = STEP_LINE.findall(parsed.thinking)
    n_steps = len(lines)
    if n_steps < max(1, min_steps):
        return FormatCheck("no_steps", f"{n_steps} numbered step(s), need {max(1, min_steps)}",
                           n_steps)
    numbers = [int(n) for n, _ in lines]
    if numbers != list(range(1, n_steps + 1)):
        return FormatCheck("step_numbering", f"steps numbered {numbers[:12]}", n_steps)
    if not all(body.strip() for _, body in lines):
        empty = [n for n, body in parse_steps(parsed.thinking) if not body.strip()]
        if empty:
            return FormatCheck("empty_step", f"step {empty[0]} is empty", n_steps)
    if "Final answer:" in parsed.thinking and FINAL_ANSWER_LINE.search(parsed.thinking):
        return FormatCheck("final_answer_in_thinking", "", n_steps)
    finals = list(FINAL_ANSWER_LINE.finditer(parsed.answer))
    if not finals:
        return FormatCheck("final_answer_missing", "no '**Final answer: ...**' line after the "
                                                   "thinking", n_steps)
    if len(finals) > 1:
        return FormatCheck("final_answer_multiple", f"{len(finals)} final answer lines",
                           n_steps)
    if parsed.answer[finals[0].end():].strip():
        return FormatCheck("final_answer_not_last", "text follows the final answer line",
                           n_steps)
    if require_assessment and ASSESSMENT_HEADING not in parsed.answer[:finals[0].start()]:
        return FormatCheck("no_assessment", f"no '{ASSESSMENT_HEADING}' before the final answer",
                           n_steps)
    return FormatCheck(None, "", n_steps)


def canonical_response(text: str) -> str:
    """The response with its thinking block written canonically (``<think>\\n...\\n</think>
    \\n\\n...``), e.g. when a server returned the thinking separately or without the opening
    tag. Text without a closed thinking block is returned stripped."""
    parsed = parse_response(text)
    if parsed.thinking is None or parsed.truncated:
        return text.strip()
    return f"{THINK_OPEN}\n{parsed.thinking.strip()}\n{THINK_CLOSE}\n\n{parsed.answer.strip()}"
