"""THE reasoning format (DESIGN.md): system prompt, prompt rendering, assistant rendering and
parsing of a response into (thinking, answer section, truncated).

An assistant turn looks like::

    <think>
    Step 1: ...
    Step 2: ...
    </think>

    ## Clinical Assessment
    ...short justification...

    **Final answer: (C)**

The final answer line is the one canonical, machine-checked statement. It may give the letter,
the option text, or both (``**Final answer: (C) Acute cholecystitis**``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gazal.benchmarks.item import Item

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
ASSESSMENT_HEADING = "## Clinical Assessment"

SYSTEM_PROMPT = (
    "You are a careful medical expert. Think through the problem step by step inside "
    "<think></think>, writing numbered steps (Step 1:, Step 2:, ...) of clinical reasoning. "
    "After thinking, write '## Clinical Assessment' with a short justification, then end with "
    "exactly one line of the form **Final answer: (X) option text**, where X is the letter of "
    "the single best option."
)

# Canonical final answer line: **Final answer: (C)**, **Final answer: (C) text**,
# or **Final answer: text**.
FINAL_ANSWER_LINE = re.compile(
    r"^\*\*Final answer:[ \t]*(?:\((?P<letter>[A-Z])\))?[ \t]*(?P<text>[^*\n]*?)[ \t]*\*\*[ \t]*$",
    re.MULTILINE)
STEP_LINE = re.compile(r"^[ \t]*Step[ \t]+(?P<n>\d+)[ \t]*[:.)][ \t]*(?P<body>.*)$", re.MULTILINE)

__all__ = [
    "ASSESSMENT_HEADING",
    "FINAL_ANSWER_LINE",
    "SYSTEM_PROMPT",
    "THINK_CLOSE",
    "THINK_OPEN",
    "ParsedResponse",
    "build_messages",
    "completion_text",
    "parse_response",
    "parse_steps",
    "render_assistant",
    "render_final_answer",
    "render_question",
]


def render_question(item: Item) -> str:
    """The user prompt of an item: context (if any), question, lettered options, instruction."""
    parts = []
    if item.context:
        parts.append(f"Context:\n{item.context.strip()}\n")
    parts.append(f"Question: {item.question.strip()}\n")
    parts.append("Options:")
    parts.extend(f"{letter}. {text}" for letter, text in item.options.items())
    parts.append("\nAnswer with the letter of the single best option.")
    return "\n".join(parts)


def build_messages(item: Item, system_prompt: str | None = SYSTEM_PROMPT) -> list[dict[str, str]]:
    """Chat messages (system + user) for an item."""
    messages = []
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    messages.append({"role": "user", "content": render_question(item)})
    return messages


def render_final_answer(letter: str | None = None, text: str | None = None) -> str:
    """The canonical final answer line from a letter, an option text, or both."""
    if not letter and not text:
        raise ValueError("a final answer needs a letter or an option text")
    inner = " ".join(p for p in ((f"({letter})" if letter else ""), (text or "").strip()) if p)
    return f"**Final answer: {inner}**"


def render_assistant(steps: Sequence[str], assessment: str, letter: str | None = None,
                     text: str | None = None) -> str:
    """An assistant turn in the reasoning format from its parts (steps without numbers)."""
    clean = [s.strip() for s in steps if s and s.strip()]
    if not clean:
        raise ValueError("at least one non-empty reasoning step is required")
    thinking = "\n".join(f"Step {i}: {s}" for i, s in enumerate(clean, start=1))
    body = f"{ASSESSMENT_HEADING}\n{assessment.strip()}\n\n" if assessment.strip() else ""
    return f"{THINK_OPEN}\n{thinking}\n{THINK_CLOSE}\n\n{body}{render_final_answer(letter, text)}"


@dataclass(frozen=True)
class ParsedResponse:
    """A response split at its thinking.

    ``thinking`` is the text inside the thinking block (None when the response has none);
    ``answer`` is the text after the last ``</think>`` (the whole response when there is no
    thinking); ``truncated`` means the thinking opened but never closed, so there is no answer.
    """

    thinking: str | None
    answer: str
    truncated: bool

    @property
    def has_thinking(self) -> bool:
        return self.thinking is not None


def completion_text(completion: Any) -> str:
    """Text of a completion given as a string or as TRL's conversational list of messages."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        return str(completion.get("content", ""))
    if isinstance(completion, Sequence):
        return "".join(completion_text(m) for m in completion
                       if not isinstance(m, Mapping) or m.get("role", "assistant") == "assistant")
    raise TypeError(f"expected a completion string or list of messages, got {type(completion)}")


def parse_response(text: str) -> ParsedResponse:
    """Split a response into thinking and answer section.

    The answer section is everything after the last ``</think>``, so nothing inside the
    thinking can count as the answer. A response with ``<think>`` but no ``</think>`` is
    truncated. A response with ``</think>`` but no ``<think>`` (templates that put ``<think>``
    in the prompt) has its thinking before the ``</think>``.
    """
    close = text.rfind(THINK_CLOSE)
    if close == -1:
        if THINK_OPEN in text:
            start = text.find(THINK_OPEN) + len(THINK_OPEN)
            return ParsedResponse(thinking=text[start:].strip(), answer="", truncated=True)
        return ParsedResponse(thinking=None, answer=text.strip(), truncated=False)
    head = text[:close]
    open_at = head.find(THINK_OPEN)
    thinking = head[open_at + len(THINK_OPEN):] if open_at != -1 else head
    return ParsedResponse(thinking=thinking.strip(), answer=text[close + len(THINK_CLOSE):].strip(),
                          truncated=False)


def parse_steps(thinking: str) -> list[tuple[int, str]]:
    """Numbered steps (``Step N: ...``) of a thinking block as (number, body) pairs.

    A step's body runs until the next step line, so multi-line steps keep their content.
    """
    matches = list(STEP_LINE.finditer(thinking))
    steps = []
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(thinking)
        body = (m.group("body") + thinking[m.end():end]).strip()
        steps.append((int(m.group("n")), body))
    return steps
