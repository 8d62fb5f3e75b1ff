"""Normalisers: each upstream schema of a benchmark row -> the fields of an :class:`Item`.

A normaliser takes one raw record and returns ``(question, options, answer, context, meta)``
or raises ``ValueError`` saying which field is wrong (the loader adds file and row).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from gazal.benchmarks.item import LETTERS, options_from

Row = tuple[str, dict[str, str], str, str | None, dict[str, Any]]
Normaliser = Callable[[Mapping[str, Any]], Row]

PUBMEDQA_OPTIONS = {"A": "yes", "B": "no", "C": "maybe"}
_PUBMEDQA_LETTER = {v: k for k, v in PUBMEDQA_OPTIONS.items()}

# The normalised PubMedQA file (HuatuoGPT-o1's evaluation data) puts the abstract inside
# ``question`` followed by this instruction; splitting on it recovers (context, question).
PUBMEDQA_INSTRUCTION = ("\n\nUsing the above document as a reference, please review the "
                        "following question and choose the option you find most appropriate.\n")


class FieldError(ValueError):
    """A row's field is missing or malformed."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"field '{field}': {message}")


def _text(rec: Mapping[str, Any], field: str) -> str:
    value = rec.get(field)
    if not isinstance(value, str) or not value.strip():
        raise FieldError(field, "expected non-empty text" if field in rec else "missing")
    return value


def _options(rec: Mapping[str, Any], field: str = "options") -> dict[str, str]:
    if field not in rec:
        raise FieldError(field, "missing")
    try:
        return options_from(rec[field])
    except ValueError as err:
        raise FieldError(field, str(err)) from None


def _letter(rec: Mapping[str, Any], field: str, options: Mapping[str, str]) -> str:
    value = rec.get(field)
    if not isinstance(value, str) or value.strip().upper() not in options:
        raise FieldError(field, f"expected one of {list(options)}, got {value!r}")
    return value.strip().upper()


def normalized(rec: Mapping[str, Any]) -> Row:
    """``{question, options (dict), answer_idx, answer}``: the HuatuoGPT-o1 / m1 eval shape."""
    question = _text(rec, "question")
    options = _options(rec)
    answer = _letter(rec, "answer_idx", options)
    return question, options, answer, None, {}


def pubmedqa_normalized(rec: Mapping[str, Any]) -> Row:
    """The normalised PubMedQA shape: abstract + instruction + question in ``question``."""
    question, options, answer, _, meta = normalized(rec)
    context = None
    if PUBMEDQA_INSTRUCTION in question:
        context, question = question.split(PUBMEDQA_INSTRUCTION, 1)
    return question.strip(), options, answer, context, meta


def medqa(rec: Mapping[str, Any]) -> Row:
    """MedQA 4-option jsonl / ``GBaker/MedQA-USMLE-4-options``: ``meta_info`` is the step."""
    question = _text(rec, "question")
    options = _options(rec)
    answer = _letter(rec, "answer_idx", options)
    meta = {}
    if isinstance(rec.get("meta_info"), str):
        meta["step"] = rec["meta_info"]
    return question, options, answer, None, meta


def pubmedqa_pqal(rec: Mapping[str, Any]) -> Row:
    """PubMedQA ``ori_pqal.json`` value (``QUESTION``, ``CONTEXTS``, ``final_decision``)."""
    question = _text(rec, "QUESTION")
    contexts = rec.get("CONTEXTS")
    if not isinstance(contexts, list) or not all(isinstance(c, str) for c in contexts):
        raise FieldError("CONTEXTS", "expected a list of text")
    decision = rec.get("final_decision")
    if decision not in _PUBMEDQA_LETTER:
        raise FieldError("final_decision", f"expected yes, no or maybe, got {decision!r}")
    meta = {k: rec[k] for k in ("pmid", "YEAR") if k in rec}
    return (question, dict(PUBMEDQA_OPTIONS), _PUBMEDQA_LETTER[decision], " ".join(contexts),
            meta)


def pubmedqa_hub(rec: Mapping[str, Any]) -> Row:
    """``qiaojin/PubMedQA`` pqa_labeled: ``pubid``, ``question``, ``context.contexts``."""
    question = _text(rec, "question")
    ctx = rec.get("context")
    if not isinstance(ctx, Mapping) or not isinstance(ctx.get("contexts"), list):
        raise FieldError("context", "expected an object with a 'contexts' list")
    decision = rec.get("final_decision")
    if decision not in _PUBMEDQA_LETTER:
        raise FieldError("final_decision", f"expected yes, no or maybe, got {decision!r}")
    meta = {"pmid": str(rec["pubid"])} if "pubid" in rec else {}
    return (question, dict(PUBMEDQA_OPTIONS), _PUBMEDQA_LETTER[decision],
            " ".join(ctx["contexts"]), meta)


def mmlu_pro(rec: Mapping[str, Any]) -> Row:
    """MMLU-Pro test rows (``TIGER-Lab/MMLU-Pro``): options list, letter answer, category."""
    question = _text(rec, "question")
    options = _options(rec)
    answer = _letter(rec, "answer", options)
    meta = {k: rec[k] for k in ("category", "question_id", "src") if k in rec}
    return question, options, answer, None, meta


def medmcqa_hub(rec: Mapping[str, Any]) -> Row:
    """``openlifescienceai/medmcqa``: ``opa``..``opd`` and ``cop`` (0-based correct option)."""
    question = _text(rec, "question")
    options = {}
    for letter, field in zip(LETTERS, ("opa", "opb", "opc", "opd"), strict=False):
        if not isinstance(rec.get(field), str):
            raise FieldError(field, "missing" if field not in rec else "expected text")
        options[letter] = rec[field]
    cop = rec.get("cop")
    if not isinstance(cop, int) or not 0 <= cop < 4:
        raise FieldError("cop", f"expected 0-3, got {cop!r}")
    meta = {k: rec[k] for k in ("subject_name", "topic_name") if rec.get(k)}
    return question, options, LETTERS[cop], None, meta


def item_shaped(rec: Mapping[str, Any]) -> Row:
    """gazal's own :class:`Item` JSON (``question``, ``options``, ``answer`` letter)."""
    question = _text(rec, "question")
    options = _options(rec)
    answer = _letter(rec, "answer", options)
    context = rec.get("context")
    if context is not None and not isinstance(context, str):
        raise FieldError("context", "expected text or null")
    meta = rec.get("meta") or {}
    if not isinstance(meta, dict):
        raise FieldError("meta", "expected an object")
    return question, options, answer, context, dict(meta)


SCHEMAS: dict[str, Normaliser] = {
    "normalized": normalized,
    "pubmedqa_normalized": pubmedqa_normalized,
    "medqa": medqa,
    "pubmedqa_pqal": pubmedqa_pqal,
    "pubmedqa_hub": pubmedqa_hub,
    "mmlu_pro": mmlu_pro,
    "medmcqa_hub": medmcqa_hub,
    "item": item_shaped,
}


def detect_schema(rec: Mapping[str, Any]) -> str:
    """Guess the schema of a row from its keys (for user-supplied files)."""
    keys = set(rec)
    if {"id", "benchmark", "answer", "options"} <= keys:
        return "item"
    if "QUESTION" in keys and "CONTEXTS" in keys:
        return "pubmedqa_pqal"
    if {"opa", "opb", "opc", "opd", "cop"} <= keys:
        return "medmcqa_hub"
    if "pubid" in keys and "final_decision" in keys:
        return "pubmedqa_hub"
    if "meta_info" in keys and "answer_idx" in keys:
        return "medqa"
    if "answer_idx" in keys and isinstance(rec.get("options"), Mapping):
        q = rec.get("question")
        if isinstance(q, str) and PUBMEDQA_INSTRUCTION in q:
            return "pubmedqa_normalized"
        return "normalized"
    if isinstance(rec.get("options"), list) and "answer" in keys:
        return "mmlu_pro"
    if {"question", "options", "answer"} <= keys:
        return "item"
    raise ValueError(f"unrecognised row schema (keys: {sorted(keys)}); expected one of "
                     + ", ".join(SCHEMAS))
