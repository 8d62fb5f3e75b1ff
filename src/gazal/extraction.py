"""Answer extraction: ONE implementation, used by evaluation, ``gazal score`` and the accuracy
reward, so what GRPO rewards is exactly what evaluation scores.

Only the answer section counts: the text after the last ``</think>`` (see
:func:`gazal.formatting.parse_response`); a response whose thinking never closed is
truncated and extracts to nothing.

Rules, strongest first. *Explicit statements* are collected from three rules:

``final_answer``  "Final answer: (C)", "**Final Answer:** C", "### Final answer\\nC. text"
``boxed``         ``\\boxed{C}``, ``\\boxed{\\text{C}}``
``answer_is``     "The answer is (C).", "Answer: C", "The correct option is C",
                  "Option C is correct", "C is the correct answer", "Correct answer: C"

A statement's answer is a letter (optionally followed by the option text), or an option's
exact text (case, spacing and punctuation aside; yes/no/maybe for PubMedQA). If the explicit
statements name more than one option the result is a *conflict* and extracts to nothing; a
statement that names alternatives ("B or C", "either...") is *hedged* and extracts to
nothing; a statement whose letter and text name different options is a conflict.

Only without any explicit statement, the answer section itself is read:

``leading_letter`` the section starts with "C." / "C)" / "(C)" / "**C.** text" or is just "C"
``option_text``    the section (or its first line) is exactly one option's text;
                   one-word options (yes/no/maybe) also count as the section's first word
                   ("No, the data show...")

Nothing else: no "last letter mentioned" fallback. The rule that fired is reported.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

from gazal.formatting import parse_response

__all__ = ["Extraction", "extract_answer", "normalize_option_text"]

RULES = ("final_answer", "boxed", "answer_is", "leading_letter", "option_text")
NO_ANSWER = ("none", "conflict", "hedged", "truncated", "empty")


@dataclass(frozen=True)
class Extraction:
    """The extracted gold-comparable letter (or None) and the rule that decided it."""

    letter: str | None
    rule: str
    evidence: str = ""

    @property
    def found(self) -> bool:
        return self.letter is not None


# --------------------------------------------------------------------------- cleaning

_FULLWIDTH = str.maketrans({"（": "(", "）": ")", "：": ":", "，": ",", "。": ".", "【": "[",
                            "】": "]", "\u00a0": " ", "\u2009": " ", "\u202f": " "})
_LATEX_WRAP = re.compile(r"\\(?:text|textbf|mathrm|mathbf|textit|mbox)\s*\{([^{}]*)\}")
_MARKUP = re.compile(r"(\*\*|__|\*|`+|~~|</?(?:b|strong|em|i|u|mark)>)")
_HEADING = re.compile(r"^[ \t]*#{1,6}[ \t]*", re.MULTILINE)
_WORD = re.compile(r"[a-z0-9]+")


def _clean(text: str) -> str:
    """Remove presentation (markdown emphasis, headings, LaTeX text wrappers) but not content."""
    text = text.translate(_FULLWIDTH)
    text = _LATEX_WRAP.sub(r"\1", text)
    text = _MARKUP.sub("", text)
    text = _HEADING.sub("", text)
    return text.replace("$", "")


def normalize_option_text(text: str) -> str:
    """Lowercase words and digits only: how option texts are compared."""
    text = unicodedata.normalize("NFKC", text).lower()
    return " ".join(_WORD.findall(text))


# --------------------------------------------------------------------------- statements

_ANS = r"(?:\n[ \t]*){0,2}(?P<ans>[^\n]*)"
_GOOD = r"(?:most[ \t]+)?(?:correct|right|best|appropriate|accurate)"
# A bare letter may start a sentence ("C is the correct answer"), not follow a word
# ("Hepatitis B is the correct answer" names no option).
_SENTENCE_START = (r"(?:^|(?<=\n)|(?<=[.!?:] )|(?<=, )|(?<=[Ss]o )|(?<=[Tt]hus )|"
                   r"(?<=[Hh]ence )|(?<=[Tt]herefore ))")
_TRIGGERS: list[tuple[str, re.Pattern[str]]] = [
    ("final_answer", re.compile(
        r"(?i:\bfinal[ \t]+answer)[ \t]*(?i:is|was)?[ \t]*[:\-=]?[ \t]*(?i:is[ \t]*)?" + _ANS)),
    ("boxed", re.compile(r"\\boxed\s*\{(?P<ans>[^{}]*)\}")),
    # "The (correct) answer is C", "the best option is C", "the answer would be option C"
    ("answer_is", re.compile(
        r"(?i:\b(?:(?:most[ \t]+)?(?:correct|best|right|appropriate|likely|accurate)[ \t]+)?"
        r"(?:answer|option|choice|response)(?:[ \t]+choice)?[ \t]+"
        r"(?:is|would[ \t]+be[ \t]+(?=option|choice|\(?[A-J]\b)))[ \t]*[:\-]?[ \t]*" + _ANS)),
    # "Answer: C", "Correct answer: C" at the start of a line or sentence
    ("answer_is", re.compile(
        r"(?:^|(?<=[\n.!?]))[ \t]*(?i:(?:the[ \t]+)?(?:(?:correct|best|right|final)[ \t]+)?"
        r"(?:answer|choice|option))[ \t]*[:=][ \t]*" + _ANS)),
    # "Option C is correct", "Option C (text) is the best answer"
    ("answer_is", re.compile(
        r"(?i:\b(?:option|choice|answer))[ \t]+\(?(?P<ans>[A-J])\)?[ \t]*(?:\([^)\n]*\)[ \t]*)?"
        r"(?i:is|would[ \t]+be|seems)[ \t]+(?i:the[ \t]+)?(?i:" + _GOOD + r")\b")),
    # "C is the correct answer"
    ("answer_is", re.compile(
        _SENTENCE_START + r"\(?(?P<ans>[A-J])\)?[ \t]+is[ \t]+the[ \t]+(?i:" + _GOOD
        + r")[ \t]+(?i:answer|option|choice)\b")),
    # "(C) Acute cholecystitis is the correct answer", "C. Acute ... is the best option"
    ("answer_is", re.compile(
        r"(?:\((?P<ans>[A-J])\)|(?:^|(?<=\n))(?P<ans2>[A-J])[.)])[ \t]+[^\n.;()]{1,80}?[ \t]"
        r"is[ \t]+the[ \t]+(?i:" + _GOOD + r")[ \t]+(?i:answer|option|choice)\b")),
]

_NEGATION = re.compile(r"^(?:not|never|neither|n't|incorrect|wrong|false)\b", re.IGNORECASE)
_HEDGE_WORDS = re.compile(
    r"^(?:either\b|possibly[ \t]+(?:either|both)\b|both\b|one[ \t]+of\b|unclear\b|uncertain\b|"
    r"not[ \t]+(?:sure|certain|clear|determinable|possible)|cannot\b|can'?t\b|undetermin|"
    r"indeterminate\b|unknown\b|none\b)", re.IGNORECASE)
_ALTERNATIVE = re.compile(r"^[ \t]*(?:,|/|(?i:\bor\b|\band(?:/or)?\b|\bvs\.?)|&)[ \t]*"
                          r"(?:(?i:option|choice)[ \t]+)?\(?[A-J]\)?(?![A-Za-z])")
_LETTER = re.compile(r"^[ \t]*(?:(?i:option|choice|letter)[ \t]+)?(?P<open>[(\[]?)[ \t]*"
                     r"(?P<letter>[A-Ja-j])(?P<close>[ \t]*[)\]])?(?P<after>.*)$", re.DOTALL)
_TEXT_THEN_LETTER = re.compile(r"^(?P<text>.+?)[ \t]*[(\[](?:option[ \t]+)?(?P<letter>[A-J])"
                               r"[)\]][ \t]*[.!]?[ \t]*$", re.DOTALL)
_CONNECTIVE = {"because", "since", "as", "which", "given", "due", "with", "from", "per",
               "this", "that", "here", "and", "or", "is", "was", "for"}


@dataclass(frozen=True)
class _Statement:
    rule: str
    letter: str | None
    status: str  # "ok", "hedged", "conflict", "none"
    evidence: str


def _option_by_text(text: str, norm_options: Mapping[str, str], *, prefix: bool
                    ) -> str | None:
    """The letter whose option text equals ``text`` (or starts it, if ``prefix``)."""
    t = normalize_option_text(text)
    if not t:
        return None
    exact = [k for k, v in norm_options.items() if v and v == t]
    if len(exact) == 1:
        return exact[0]
    if len(exact) > 1:  # duplicated option texts: ambiguous
        return None
    if prefix:
        hits = [k for k, v in norm_options.items() if v and (t.startswith(v + " "))]
        if hits:
            longest = max(len(norm_options[k]) for k in hits)
            best = [k for k in hits if len(norm_options[k]) == longest]
            return best[0] if len(best) == 1 else None
    return None


def _resolve(rule: str, capture: str, options: Mapping[str, str],
             norm_options: Mapping[str, str]) -> _Statement:
    """What option a statement's capture names."""
    cap = capture.strip().strip("\"'“”‘’").strip()
    if rule == "boxed":
        cap = cap.strip()
    if _HEDGE_WORDS.match(cap):
        return _Statement(rule, None, "hedged", capture)
    if not cap or _NEGATION.match(cap):
        return _Statement(rule, None, "none", capture)
    m = _LETTER.match(cap)
    if m:
        letter_raw, after = m.group("letter"), m.group("after")
        enclosed = bool(m.group("open")) and bool(m.group("close"))
        letter = letter_raw.upper()
        is_letter = _letter_plausible(letter_raw, after, enclosed or bool(m.group("close")),
                                      options)
        if is_letter and letter in options:
            if _ALTERNATIVE.match(after):
                return _Statement(rule, None, "hedged", capture)
            # A text after the letter that names a different option is a conflict.
            rest = re.sub(r"^[ \t]*[.):\-–—,]?[ \t]*", "", after).split("\n", 1)[0]
            rest = re.split(r"(?<=[a-z0-9)])[.;](?:\s|$)", rest, maxsplit=1)[0]
            named = _option_by_text(rest, norm_options, prefix=False) if rest else None
            if named is not None and named != letter:
                return _Statement(rule, None, "conflict", capture)
            return _Statement(rule, letter, "ok", capture)
    # Text, possibly followed by its letter in brackets: "Acute cholecystitis (C)".
    first = cap.split("\n", 1)[0]
    m2 = _TEXT_THEN_LETTER.match(first)
    if m2 and m2.group("letter") in options:
        letter = m2.group("letter")
        named = _option_by_text(m2.group("text"), norm_options, prefix=False)
        if named is not None and named != letter:
            return _Statement(rule, None, "conflict", capture)
        return _Statement(rule, letter, "ok", capture)
    sentence = re.split(r"(?<=[A-Za-z0-9)])[.;!](?:\s|$)", first, maxsplit=1)[0]
    letter = _option_by_text(sentence, norm_options, prefix=True)
    if letter is not None:
        rest = normalize_option_text(sentence)[len(norm_options[letter]):]
        if _ALTERNATIVE.match(rest) or re.match(r"^\s*(or|and)\b", rest):
            return _Statement(rule, None, "hedged", capture)
        return _Statement(rule, letter, "ok", capture)
    return _Statement(rule, None, "none", capture)


def _letter_plausible(raw: str, after: str, bracketed: bool, options: Mapping[str, str]) -> bool:
    """Is this single character an option letter, not the article 'A'/'a' or pronoun 'I'?"""
    if bracketed:
        return True
    nxt = after[:1]
    if nxt == "" or nxt in ".:,;!?)]-–—*\n/&":
        # "the answer is a." is fine; "a)" is bracketed above.
        return raw.isupper() or nxt in ("", ".", "\n")
    if nxt in " \t":
        word = re.match(r"[ \t]+([A-Za-z]+)", after)
        if word is None:
            return raw.isupper()
        w = word.group(1)
        if not raw.isupper():
            return False
        if raw in ("A", "I"):
            # "A because..." vs "A 45-year-old man..."; "I think..." is not a letter.
            return w.lower() in _CONNECTIVE
        return True
    return False


def _statements(text: str, options: Mapping[str, str], norm_options: Mapping[str, str]
                ) -> list[_Statement]:
    """Every explicit statement in ``text`` (several patterns may see the same words; they
    then agree, and duplicates do not matter)."""
    found = []
    for rule, pattern in _TRIGGERS:
        for m in pattern.finditer(text):
            groups = m.groupdict()
            capture = groups.get("ans") or groups.get("ans2") or ""
            found.append(_resolve(rule, capture, options, norm_options))
    return found


# --------------------------------------------------------------------------- public


def extract_answer(response: str, options: Mapping[str, str]) -> Extraction:
    """Extract the option letter a response commits to, or None with the reason.

    ``options`` maps letters to texts (A-J). See the module docstring for the rules.
    """
    parsed = parse_response(response)
    if parsed.truncated:
        return Extraction(None, "truncated")
    if not parsed.answer.strip():
        return Extraction(None, "empty")
    text = _clean(parsed.answer)
    norm_options = {k: normalize_option_text(v) for k, v in options.items()}

    statements = _statements(text, options, norm_options)
    decided = [st for st in statements if st.status in ("ok", "hedged", "conflict")]
    if decided:
        if any(st.status == "conflict" for st in decided):
            bad = next(st for st in decided if st.status == "conflict")
            return Extraction(None, "conflict", bad.evidence.strip()[:200])
        letters = {st.letter for st in decided if st.status == "ok"}
        if len(letters) > 1:
            return Extraction(None, "conflict", ", ".join(sorted(letters)))  # type: ignore[arg-type]
        if any(st.status == "hedged" for st in decided):
            hedged = next(st for st in decided if st.status == "hedged")
            return Extraction(None, "hedged", hedged.evidence.strip()[:200])
        best = min((st for st in decided if st.status == "ok"), key=lambda s: RULES.index(s.rule))
        return Extraction(best.letter, best.rule, best.evidence.strip()[:200])

    return _implicit(text, options, norm_options)


def _implicit(text: str, options: Mapping[str, str], norm_options: Mapping[str, str]
              ) -> Extraction:
    stripped = text.strip()
    first_line = stripped.split("\n", 1)[0].strip()
    m = re.match(r"^(?:option[ \t]+)?\(?(?P<letter>[A-J])\)?(?P<after>[.):][ \t]?.*|$)",
                 first_line, re.IGNORECASE)
    if m and m.group("letter") in options:
        st = _resolve("leading_letter", first_line, options, norm_options)
        if st.status == "ok":
            return Extraction(st.letter, "leading_letter", first_line[:200])
        if st.status in ("hedged", "conflict"):
            return Extraction(None, st.status, first_line[:200])
    for candidate in (stripped, first_line):
        letter = _option_by_text(candidate, norm_options, prefix=False)
        if letter is not None:
            return Extraction(letter, "option_text", candidate[:200])
    # One-word options (yes / no / maybe) as the first word: "No, the data show ...".
    word = re.match(r"^([A-Za-z]+)(?:[ \t]*[,.;:!\n—–-]|$)", stripped)
    if word:
        w = word.group(1).lower()
        hits = [k for k, v in norm_options.items() if v == w]
        if len(hits) == 1:
            return Extraction(hits[0], "option_text", word.group(0))
    return Extraction(None, "none")
