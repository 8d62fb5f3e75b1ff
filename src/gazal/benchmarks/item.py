"""The one normalised shape of every multiple-choice question: :class:`Item`."""

from __future__ import annotations

import hashlib
import json
import re
import string
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gazal.io import DataError

LETTERS = string.ascii_uppercase

__all__ = ["LETTERS", "Item", "assign_ids", "content_key", "gold_field", "gold_letter",
           "items_checksum", "normalize_option_text", "options_field", "options_from"]

_WORD = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class Item:
    """A multiple-choice question after normalisation.

    ``options`` maps letters (``A``, ``B``, ...) to option text in order; ``answer`` is the
    gold letter; ``context`` holds e.g. a PubMedQA abstract; ``meta`` is free (MedQA step,
    MMLU-Pro category, PubMedQA PMID, ...).
    """

    id: str
    benchmark: str
    question: str
    options: dict[str, str]
    answer: str
    context: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        letters = list(self.options)
        if not letters:
            raise ValueError(f"item {self.id}: no options")
        if letters != list(LETTERS[: len(letters)]):
            raise ValueError(f"item {self.id}: option letters must be A, B, C, ... in order, "
                             f"got {letters}")
        if self.answer not in self.options:
            raise ValueError(f"item {self.id}: answer {self.answer!r} is not one of {letters}")

    @property
    def answer_text(self) -> str:
        """The gold option's text."""
        return self.options[self.answer]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (the field order of the data contract)."""
        return {"id": self.id, "benchmark": self.benchmark, "question": self.question,
                "options": dict(self.options), "answer": self.answer,
                "context": self.context, "meta": dict(self.meta)}

    @classmethod
    def from_dict(cls, record: Mapping[str, Any], *, path: str | Path | None = None,
                  line: int | None = None) -> Item:
        """Build from a dict in the Item shape; errors name file, line and field."""
        for name, types in (("id", str), ("benchmark", str), ("question", str),
                            ("answer", str)):
            if not isinstance(record.get(name), types):
                got = type(record.get(name)).__name__ if name in record else "missing"
                raise DataError(f"expected {types.__name__}, got {got}", path, line, name)
        options = options_field(record, path, line)
        context = record.get("context")
        if context is not None and not isinstance(context, str):
            raise DataError(f"expected str or null, got {type(context).__name__}", path, line,
                            "context")
        meta = record.get("meta") or {}
        if not isinstance(meta, dict):
            raise DataError(f"expected an object, got {type(meta).__name__}", path, line, "meta")
        try:
            return cls(id=record["id"], benchmark=record["benchmark"],
                       question=record["question"], options=options,
                       answer=record["answer"].strip().upper(), context=context, meta=meta)
        except ValueError as err:
            raise DataError(str(err), path, line, "answer") from None


def options_from(value: Any) -> dict[str, str]:
    """Options as an ordered letter -> text dict, from a dict or a list."""
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str) or not isinstance(v, str | int | float):
                raise ValueError(f"option {k!r}: expected a letter mapped to text")
            out[k.strip().upper()] = str(v)
        if list(out) != list(LETTERS[: len(out)]):
            # Some sources store options unordered; sort when the letters are A.. contiguous.
            if sorted(out) == list(LETTERS[: len(out)]):
                out = {k: out[k] for k in sorted(out)}
            else:
                raise ValueError(f"option letters must be A, B, C, ...; got {list(out)}")
        if not out:
            raise ValueError("no options")
        return out
    if isinstance(value, Sequence) and not isinstance(value, str):
        if not value:
            raise ValueError("no options")
        if len(value) > len(LETTERS):
            raise ValueError(f"too many options ({len(value)})")
        return {LETTERS[i]: str(v) for i, v in enumerate(value)}
    raise ValueError(f"expected an object of letter -> text or a list, got {type(value).__name__}")


def options_field(record: Mapping[str, Any], path: str | Path | None = None,
                  line: int | None = None, key: str = "options") -> dict[str, str]:
    """``record[key]`` as options (:func:`options_from`); errors name file, line and field."""
    try:
        return options_from(record.get(key))
    except ValueError as err:
        raise DataError(str(err), path, line, key) from None


def normalize_option_text(text: str) -> str:
    """Lowercase words and digits only: how option texts are compared."""
    text = unicodedata.normalize("NFKC", text).lower()
    return " ".join(_WORD.findall(text))


def gold_letter(answer: str, options: Mapping[str, str]) -> str:
    """The gold letter from a letter or an option's text (``yes``/``no``/``maybe``)."""
    a = answer.strip()
    if a.upper() in options and len(a) == 1:
        return a.upper()
    if a.startswith("(") and a.endswith(")") and a[1:-1].upper() in options:
        return a[1:-1].upper()
    norm = normalize_option_text(a)
    hits = [k for k, v in options.items() if normalize_option_text(v) == norm]
    if len(hits) == 1:
        return hits[0]
    raise ValueError(f"gold answer {answer!r} is neither an option letter "
                     f"({', '.join(options)}) nor an option's text")


def gold_field(record: Mapping[str, Any], options: Mapping[str, str],
               path: str | Path | None = None, line: int | None = None,
               key: str = "answer") -> str:
    """``record[key]`` (a letter or an option's text) as the gold letter of ``options``
    (:func:`gold_letter`); errors name file, line and field."""
    answer = record.get(key)
    if not isinstance(answer, str):
        raise DataError(f"expected a string, got {type(answer).__name__}", path, line, key)
    try:
        return gold_letter(answer, options)
    except ValueError as err:
        raise DataError(str(err), path, line, key) from None


def content_key(question: str, options: Mapping[str, str], context: str | None) -> str:
    """Hash of what makes a question itself (not its source file or position)."""
    payload = json.dumps([question.strip(), list(options.items()), (context or "").strip()],
                         ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def assign_ids(benchmark: str, rows: Iterable[tuple[str, dict[str, str], str | None]]
               ) -> list[str]:
    """Stable ids ``<benchmark>-<hash12>`` from content; repeats get ``-r2``, ``-r3``, ...

    Ids depend only on the question, options and context, so the same question gets the same
    id whichever file or Hub copy it was loaded from. Benchmarks that repeat rows (GPQA
    medical repeats each of its 78 questions five times) keep every copy, numbered in order.
    """
    seen: dict[str, int] = {}
    ids = []
    for question, options, context in rows:
        key = content_key(question, options, context)[:12]
        seen[key] = seen.get(key, 0) + 1
        ids.append(f"{benchmark}-{key}" + (f"-r{seen[key]}" if seen[key] > 1 else ""))
    return ids


def items_checksum(items: Iterable[Item]) -> str:
    """sha256 identifying an exact item set (order-independent; ``meta`` excluded)."""
    canon = sorted(
        json.dumps([it.id, it.question, list(it.options.items()), it.answer, it.context or ""],
                   ensure_ascii=False, separators=(",", ":"))
        for it in items)
    h = hashlib.sha256()
    for line in canon:
        h.update(line.encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()
