"""RL data for ``gazal grpo``: multiple-choice questions as :class:`Item` s, rendered as TRL
conversational prompts with the columns gazal's rewards read.

Sources (:class:`RLSource`), by ``path``:

``benchmark:NAME``   a registered evaluation set (:func:`gazal.benchmarks.load_benchmark`,
                     local files under ``data_dir`` first, else the Hub);
a local file         ``.json`` / ``.jsonl`` in any benchmark schema (detected per row) or any
                     columns through ``columns``;
a Hub dataset id     ``datasets.load_dataset(path, name, split=split, revision=revision)``;
                     known sets have a preset schema (:data:`HUB_PRESETS`), others are detected
                     per row or mapped with ``columns``.

Generic rows (a ``columns`` mapping, or a shape no benchmark schema knows) need a question,
options and an answer. Options: a letter -> text mapping, a list, a JSON string, one column
per option (``option_columns``), or lettered lines at the end of the question text
(``A. ...`` / ``(A) ...`` / ``A) ...``). Answer: a letter (``C``, ``(C)``, ``C.``,
``Answer: C``), an option index (0-based unless ``answer_format: index1``) or the text of one
option.

Each training row becomes ``{"prompt": [system, user messages], "answer": gold letter,
"options": JSON text of letter -> option, "id", "source"}``: the prompt is exactly what
evaluation sends (:func:`gazal.formatting.build_messages`), ``answer`` and ``options`` are
what :mod:`gazal.rewards` reads. Options travel as JSON text so sets with different option
letters share one Arrow column.

Option-order shuffling (:func:`shuffle_options`) permutes each item's options with a seed
derived from the item id, re-letters them and remaps the gold letter; items whose options
point at other options ("all of the above", "both A and B") keep their order.

:func:`check_overlap` fails when a training question is also in the held-out evaluation subset
(same normalised question, context and option texts in any order; or, with ``ngram``, the
n-gram decontamination of :mod:`gazal.data.decontam`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from gazal.benchmarks.item import LETTERS, Item, assign_ids, options_from
from gazal.config import ConfigError, cfg
from gazal.formatting import SYSTEM_PROMPT, build_messages
from gazal.io import DataError, read_rows

log = logging.getLogger("gazal")

__all__ = [
    "HUB_PRESETS",
    "LoadedItems",
    "RLSource",
    "check_overlap",
    "find_overlap",
    "items_fingerprint",
    "load_rl_items",
    "load_source_items",
    "overlap_key",
    "sample_items",
    "shuffle_options",
    "to_trl_rows",
]

AnswerFormat = Literal["auto", "letter", "index0", "index1", "text"]

# Hub datasets whose schema is known: path -> (gazal benchmark schema, default split note).
HUB_PRESETS: dict[str, str] = {
    "GBaker/MedQA-USMLE-4-options": "medqa",
    "openlifescienceai/medmcqa": "medmcqa_hub",
}

# Column names auto-detection tries for generic rows, in order.
QUESTION_COLUMNS = ("question", "Question", "prompt", "problem", "input", "instruction", "query")
OPTIONS_COLUMNS = ("options", "choices", "Options", "Choices", "opts")
ANSWER_COLUMNS = ("answer_idx", "answer_letter", "answer", "Answer", "label", "correct_answer",
                  "correct_option", "gold", "target", "solution", "cop")
CONTEXT_COLUMNS = ("context", "Context", "abstract")
ID_COLUMNS = ("id", "qid", "question_id", "uid")
GAZAL_COLUMN_FIELDS = ("question", "options", "answer", "context", "id")

# Lettered option lines at the end of a question ("A. text", "(A) text", "A) text", "A: text").
_OPTION_LINE = re.compile(r"^[ \t]*\(?(?P<letter>[A-Z])[).:][ \t]+(?P<text>\S.*?)[ \t]*$",
                          re.MULTILINE)
# An answer given as a letter: "C", "(C)", "C.", "C)", "Answer: C", "The answer is (C)".
_ANSWER_LETTER = re.compile(
    r"^\s*(?:(?:the\s+)?(?:correct\s+)?(?:answer|option)(?:\s+is)?\s*[:\-]?\s*)?"
    r"\(?(?P<letter>[A-Z])\)?[.)]?\s*$", re.IGNORECASE)
# Options that refer to other options: shuffling them would change their meaning.
_POSITIONAL = re.compile(
    r"\b(?:all|none|both|neither|any)\s+of\s+(?:the\s+)?(?:above|following|these)\b"
    r"|\b(?:options?|choices?)\s+[A-J]\b"
    r"|\b[A-J]\s*(?:,\s*[A-J]\s*)*(?:and|or|&)\s*[A-J]\b"
    r"|^\s*(?:both|neither)\b", re.IGNORECASE)


@dataclass
class RLSource:
    """One source of multiple-choice questions (training or held-out)."""

    path: str = cfg(help="'benchmark:NAME' (a registered evaluation set), a local .json/.jsonl "
                         "file (e.g. the CPU demo's task files, task/rl.jsonl), or a "
                         "Hub dataset id (e.g. GBaker/MedQA-USMLE-4-options)")
    name: str | None = cfg(None, "Hub dataset config name")
    split: str = cfg("train", "Hub dataset split")
    revision: str | None = cfg(None, "Hub dataset revision (commit) to pin")
    schema: str | None = cfg(
        None, "row schema: a gazal benchmark schema (normalized, medqa, medmcqa_hub, mmlu_pro, "
              "pubmedqa_hub, item, ...) or 'columns' (generic, see `columns`); null = the "
              "preset of a known Hub set, else detected per row")
    columns: dict[str, str] = cfg(
        {}, "generic rows: gazal field -> source column, for question, options, answer, "
            "context, id (e.g. {question: prompt, answer: label}); unnamed fields are detected")
    option_columns: list[str] = cfg(
        [], "generic rows: one column per option, in letter order (e.g. [opa, opb, opc, opd])")
    answer_format: AnswerFormat = cfg(
        "auto", "generic rows: how the answer column gives the gold option: a letter, a "
                "0-based or 1-based index, or the option text; 'auto' = letter, else "
                "0-based integer index, else the text of exactly one option")
    limit: int | None = cfg(None, "read only the first N questions of this source")
    on_malformed: Literal["error", "skip"] = cfg(
        "error", "a row that cannot be read as a question stops the run with an error naming "
                 "the source, row and field ('error'), or is skipped and counted ('skip')")

    def __post_init__(self) -> None:
        if not self.path:
            raise ValueError("a data source needs a path")
        unknown = sorted(set(self.columns) - set(GAZAL_COLUMN_FIELDS))
        if unknown:
            raise ValueError(f"columns: unknown gazal field(s) {unknown}; expected some of "
                             f"{', '.join(GAZAL_COLUMN_FIELDS)} (field: source column)")
        if self.option_columns and "options" in self.columns:
            raise ValueError("set either columns.options or option_columns, not both")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1, got {self.limit}")


@dataclass
class LoadedItems:
    """Questions read from sources, and the rows skipped (``on_malformed: skip``) or dropped."""

    items: list[Item] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    duplicates: int = 0
    shuffled: int = 0
    kept_order: int = 0
    sources: list[dict[str, Any]] = field(default_factory=list)


# --------------------------------------------------------------------------- generic rows


def _first(rec: Mapping[str, Any], names: Sequence[str]) -> str | None:
    return next((n for n in names if n in rec and rec[n] is not None), None)


def split_options_from_text(text: str) -> tuple[str, dict[str, str]] | None:
    """(question, options) when ``text`` ends with lettered option lines A, B, C, ...;
    None when it does not (fewer than two, or not A.. in order)."""
    matches = list(_OPTION_LINE.finditer(text))
    if len(matches) < 2:
        return None
    # the option block is the last run of consecutive lines starting at "A"
    start = max((i for i, m in enumerate(matches) if m.group("letter") == "A"), default=None)
    if start is None:
        return None
    block = matches[start:]
    letters = [m.group("letter") for m in block]
    if letters != list(LETTERS[: len(letters)]) or len(letters) < 2:
        return None
    if text[block[-1].end():].strip():  # text after the options: not an option block
        trailing = text[block[-1].end():].strip()
        if len(trailing.split()) > 12:  # allow a short instruction ("Answer with a letter.")
            return None
    question = text[: block[0].start()].rstrip()
    question = re.sub(r"\n\s*(?:options|choices|answer choices)\s*:?\s*$", "", question,
                      flags=re.IGNORECASE).strip()
    if not question:
        return None
    return question, {m.group("letter"): m.group("text") for m in block}


def _options_value(value: Any) -> dict[str, str]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise ValueError("expected a letter -> text mapping, a list, or JSON of either; "
                             f"got text {value[:60]!r}") from None
    if isinstance(value, Mapping):
        value = {k: v for k, v in value.items() if v is not None}  # Arrow fills missing keys
    return options_from(value)


def resolve_answer(value: Any, options: Mapping[str, str], fmt: AnswerFormat = "auto") -> str:
    """The gold letter from an answer cell (see :class:`RLSource` ``answer_format``)."""
    from gazal.extraction import normalize_option_text

    letters = list(options)
    if isinstance(value, bool):
        raise ValueError(f"expected a letter, index or option text, got {value!r}")
    if fmt in ("auto", "letter") and isinstance(value, str):
        m = _ANSWER_LETTER.match(value)
        if m and m.group("letter").upper() in options:
            return m.group("letter").upper()
        if fmt == "letter":
            raise ValueError(f"expected one of the letters {letters}, got {value!r}")
    if fmt in ("auto", "index0", "index1"):
        index = value
        if isinstance(value, str) and value.strip().isdigit() and fmt != "auto":
            index = int(value.strip())
        if isinstance(index, int | float) and float(index).is_integer():
            i = int(index) - (1 if fmt == "index1" else 0)
            if 0 <= i < len(letters):
                return letters[i]
            raise ValueError(f"option index {value!r} is outside 0..{len(letters) - 1}"
                             if fmt != "index1" else
                             f"option index {value!r} is outside 1..{len(letters)}")
        if fmt != "auto":
            raise ValueError(f"expected an integer option index, got {value!r}")
    if fmt in ("auto", "text") and isinstance(value, str):
        norm = normalize_option_text(value)
        hits = [k for k, v in options.items() if normalize_option_text(v) == norm and norm]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise ValueError(f"answer text {value!r} matches several options {hits}")
    raise ValueError(f"cannot read the gold option from {value!r}: not a letter of "
                     f"{letters}, an option index, or the text of one option")


class _FieldError(ValueError):
    def __init__(self, field_name: str, message: str):
        super().__init__(message)
        self.field = field_name


def generic_row(rec: Mapping[str, Any], src: RLSource
                ) -> tuple[str, dict[str, str], str, str | None, dict[str, Any]]:
    """(question, options, answer, context, meta) of a generic row."""
    cols = src.columns
    q_col = cols.get("question") or _first(rec, QUESTION_COLUMNS)
    if q_col is None or not isinstance(rec.get(q_col), str) or not rec[q_col].strip():
        raise _FieldError(q_col or "question",
                          "missing or empty question (name it with columns.question; columns "
                          f"seen: {sorted(rec)})")
    question = rec[q_col].strip()
    if src.option_columns:
        missing = [c for c in src.option_columns if not isinstance(rec.get(c), str | int | float)]
        if missing:
            raise _FieldError(missing[0], "missing option text")
        options = {LETTERS[i]: str(rec[c]) for i, c in enumerate(src.option_columns)}
    else:
        o_col = cols.get("options") or _first(rec, OPTIONS_COLUMNS)
        if o_col is not None:
            try:
                options = _options_value(rec[o_col])
            except ValueError as err:
                raise _FieldError(o_col, str(err)) from None
        else:
            split = split_options_from_text(question)
            if split is None:
                raise _FieldError("options", "no options column (name it with "
                                  "columns.options or option_columns) and no lettered option "
                                  "lines (A. ..., B. ...) at the end of the question")
            question, options = split
    a_col = cols.get("answer") or _first(rec, ANSWER_COLUMNS)
    if a_col is None:
        raise _FieldError("answer", f"no answer column (name it with columns.answer; columns "
                                    f"seen: {sorted(rec)})")
    try:
        answer = resolve_answer(rec[a_col], options, src.answer_format)
    except ValueError as err:
        raise _FieldError(a_col, str(err)) from None
    c_col = cols.get("context") or _first(rec, CONTEXT_COLUMNS)
    context = rec.get(c_col) if c_col else None
    if context is not None and not isinstance(context, str):
        if isinstance(context, Sequence) and all(isinstance(c, str) for c in context):
            context = " ".join(context)
        else:
            raise _FieldError(c_col or "context", "expected text or a list of texts")
    meta: dict[str, Any] = {}
    id_col = cols.get("id") or _first(rec, ID_COLUMNS)
    if id_col is not None and isinstance(rec.get(id_col), str | int):
        meta["source_id"] = str(rec[id_col])
    return question, options, answer, (context or None), meta


# --------------------------------------------------------------------------- sources


def is_local(path: str) -> bool:
    return Path(path).suffix in (".json", ".jsonl") or Path(path).exists()


def _rows_of(src: RLSource, data_dir: str | Path | None) -> tuple[list[tuple[Any, Any]], str]:
    """Raw rows ``(label, record)`` and an origin string for messages."""
    if is_local(src.path):
        path = Path(src.path)
        if not path.is_file():
            raise DataError(f"data file not found (looked for {path.resolve()})", path)
        return read_rows(path), str(path)
    from gazal.hub import load_hub_dataset

    ds = load_hub_dataset(src.path, src.name, split=src.split, revision=src.revision,
                          offline="Point the source at a local .json / .jsonl file.")
    return [(f"row {i + 1}", dict(rec)) for i, rec in enumerate(ds)], f"hf://{src.path}"


def _normalise(rows: list[tuple[Any, Any]], src: RLSource, origin: str, benchmark: str,
               skipped: list[dict[str, Any]]) -> list[Item]:
    from gazal.benchmarks.schemas import SCHEMAS, FieldError, detect_schema

    schema = src.schema or HUB_PRESETS.get(src.path)
    if schema is not None and schema != "columns" and schema not in SCHEMAS:
        raise ConfigError(f"data source {src.path}: unknown schema '{schema}'; known: "
                          f"{', '.join([*SCHEMAS, 'columns'])}")
    generic = schema == "columns" or bool(src.columns) or bool(src.option_columns)
    parsed = []
    for label, rec in rows:
        line = label if isinstance(label, int) else None
        where = origin if line is not None else f"{origin} [{label}]"
        try:
            if not isinstance(rec, Mapping):
                raise _FieldError("(row)", f"expected an object, got {type(rec).__name__}")
            if generic:
                parsed.append(generic_row(rec, src))
            else:
                try:
                    fn = SCHEMAS[schema or detect_schema(rec)]
                except ValueError:  # no benchmark schema fits: read it as generic columns
                    parsed.append(generic_row(rec, src))
                    continue
                parsed.append(fn(rec))
        except (FieldError, _FieldError, ValueError) as err:
            fname = getattr(err, "field", None)
            message = str(err).split(": ", 1)[1] if isinstance(err, FieldError) else str(err)
            if src.on_malformed == "skip":
                skipped.append({"source": src.path, "row": str(label), "field": fname,
                                "reason": message})
                continue
            raise DataError(message, where, line, fname) from None
        if src.limit is not None and len(parsed) >= src.limit:
            break
    ids = assign_ids(benchmark, ((q, o, c) for q, o, _, c, _ in parsed))
    return [Item(id=i, benchmark=benchmark, question=q, options=o, answer=a, context=c, meta=m)
            for i, (q, o, a, c, m) in zip(ids, parsed, strict=True)]


def _source_label(path: str) -> str:
    stem = Path(path).stem if is_local(path) else path.rsplit("/", 1)[-1]
    return re.sub(r"[^A-Za-z0-9_]+", "_", stem).strip("_").lower() or "data"


def load_source_items(src: RLSource, data_dir: str | Path | None = None,
                      skipped: list[dict[str, Any]] | None = None) -> list[Item]:
    """The questions of one source (see the module docstring)."""
    skipped = skipped if skipped is not None else []
    if src.path.startswith("benchmark:"):
        from gazal.benchmarks import load_benchmark

        name = src.path.split(":", 1)[1]
        items = load_benchmark(name, data_dir).items
    elif re.match(r"[A-Za-z][\w.+-]*:(?!//)", src.path) and not is_local(src.path):
        # Hub ids have no scheme; a 'toy:' source (removed: the demo passes its task files)
        # or a typo would otherwise surface as a confusing Hub error.
        raise ConfigError(f"data source {src.path!r}: unknown source kind "
                          f"'{src.path.split(':', 1)[0]}:'; a source is 'benchmark:NAME', a "
                          "local .json/.jsonl file or a Hub dataset id")
    else:
        rows, origin = _rows_of(src, data_dir)
        items = _normalise(rows, src, origin, _source_label(src.path), skipped)
    if src.limit is not None:
        items = items[: src.limit]
    return items


def load_rl_items(sources: Sequence[RLSource], data_dir: str | Path | None = None, *,
                  shuffle: bool = False, seed: int = 0, dedupe: bool = True) -> LoadedItems:
    """Questions of every source, concatenated, optionally de-duplicated (same
    :func:`overlap_key`) and option-shuffled."""
    out = LoadedItems()
    seen: set[str] = set()
    for src in sources:
        items = load_source_items(src, data_dir, out.skipped)
        kept = 0
        for it in items:
            if dedupe:
                key = overlap_key(it)
                if key in seen:
                    out.duplicates += 1
                    continue
                seen.add(key)
            if shuffle:
                new = shuffle_options(it, seed)
                if new is it:
                    out.kept_order += 1
                else:
                    out.shuffled += 1
                it = new
            out.items.append(it)
            kept += 1
        out.sources.append({"path": src.path, "questions": kept})
    return out


def sample_items(items: Sequence[Item], size: int | None, seed: int) -> list[Item]:
    """A seeded random subset of ``size`` items in their original order (all when None)."""
    if size is None or size >= len(items):
        return list(items)
    chosen = sorted(random.Random(seed).sample(range(len(items)), size))
    return [items[i] for i in chosen]


# --------------------------------------------------------------------------- shuffling


def _item_rng(item: Item, seed: int) -> random.Random:
    digest = hashlib.sha256(f"{seed}:{item.benchmark}:{item.id}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def has_positional_options(options: Mapping[str, str]) -> bool:
    """Whether an option refers to other options by position or letter ("all of the above",
    "both A and B"); such items keep their option order."""
    return any(_POSITIONAL.search(text) for text in options.values())


def shuffle_options(item: Item, seed: int) -> Item:
    """``item`` with its options in a seeded random order (seed and item id), re-lettered, and
    the gold letter remapped; the same object when its options must keep their order."""
    if len(item.options) < 2 or has_positional_options(item.options):
        return item
    texts = list(item.options.values())
    order = list(range(len(texts)))
    _item_rng(item, seed).shuffle(order)
    options = {LETTERS[i]: texts[j] for i, j in enumerate(order)}
    gold_index = list(item.options).index(item.answer)
    answer = LETTERS[order.index(gold_index)]
    meta = {**item.meta, "original_answer": item.answer}
    return Item(item.id, item.benchmark, item.question, options, answer, item.context, meta)


# --------------------------------------------------------------------------- overlap


def _norm(text: str | None) -> str:
    from gazal.data.ngrams import normalize_words

    return b" ".join(normalize_words(text or "")).decode("utf-8", "replace")


def overlap_key(item: Item) -> str:
    """What makes two questions the same: normalised question and context (case, spacing and
    punctuation aside) and the set of normalised option texts (in any order or lettering)."""
    payload = json.dumps([_norm(item.question), _norm(item.context),
                          sorted(_norm(v) for v in item.options.values())],
                         ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def find_overlap(train: Sequence[Item], heldout: Sequence[Item],
                 mode: Literal["exact", "ngram"] = "exact") -> list[tuple[Item, Item, str]]:
    """(training item, held-out item, why) for every training question also in ``heldout``.

    ``exact``: the same :func:`overlap_key`; ``ngram``: also the n-gram decontamination rules
    of :mod:`gazal.data.decontam` (near-duplicates, a question inside a longer text).
    """
    if not heldout or not train:
        return []
    index = {overlap_key(h): h for h in heldout}
    hits: list[tuple[Item, Item, str]] = [(t, index[k], "same question and options")
                                          for t in train if (k := overlap_key(t)) in index]
    if mode == "ngram":
        from gazal.data.decontam import BenchmarkIndex, DecontamSettings
        from gazal.data.ngrams import tokenize

        by_id = {(h.benchmark, h.id): h for h in heldout}
        # the 13-gram rule this mode names (the distinctive rule's rarity weights need the
        # whole benchmark pool, not a held-out subset of a few hundred questions)
        bindex = BenchmarkIndex(heldout, DecontamSettings(rule="ngram"))
        found = {id(t) for t, _, _ in hits}
        texts = [" ".join([t.context or "", t.question, *t.options.values()]) for t in train]
        chunk = 2048
        for start in range(0, len(texts), chunk):
            part = texts[start:start + chunk]
            batch, _ = tokenize(part)
            for t, match in zip(train[start:start + chunk], bindex.scan(batch, part),
                                strict=True):
                if match is not None and id(t) not in found:
                    h = by_id.get((match.benchmark, match.item_id))
                    if h is not None:
                        hits.append((t, h, f"{match.kind} match, coverage "
                                           f"{match.coverage:.2f}"))
    return hits


def check_overlap(train: Sequence[Item], heldout: Sequence[Item],
                  mode: Literal["exact", "ngram"] = "exact", *,
                  what: str = "held-out evaluation subset") -> None:
    """Raise :class:`DataError` when a training question is also in ``heldout``
    (:func:`find_overlap`)."""
    hits = find_overlap(train, heldout, mode)
    if hits:
        t, h, why = hits[0]
        raise DataError(
            f"{len(hits)} training question(s) also appear in the {what} ({len(heldout)} "
            f"questions), e.g. training '{t.id}' = held-out '{h.id}' ({why}): "
            f"{t.question[:100]!r}. Held-out accuracy would measure memorisation. Remove them "
            "from the training data (`gazal data curate` decontaminates; or set "
            "data.on_overlap: drop to leave them out of training, listed in overlap.jsonl), "
            "or choose a held-out subset the training data does not contain.")


def items_fingerprint(items: Iterable[Item]) -> str:
    """sha256 over the items as trained (order, text, options, gold letter)."""
    h = hashlib.sha256()
    for it in items:
        h.update(json.dumps([it.id, it.question, it.context or "", list(it.options.items()),
                             it.answer], ensure_ascii=False, separators=(",", ":"))
                 .encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


# --------------------------------------------------------------------------- TRL rows


def to_trl_rows(items: Sequence[Item], system_prompt: str | None = SYSTEM_PROMPT
                ) -> list[dict[str, Any]]:
    """TRL conversational prompt rows with the reward columns ``answer`` and ``options``."""
    return [{"prompt": build_messages(it, system_prompt), "answer": it.answer,
             "options": json.dumps(it.options, ensure_ascii=False), "id": it.id,
             "source": it.benchmark} for it in items]
