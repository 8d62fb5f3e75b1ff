"""SFT data: load rows of several shapes, convert them to gazal's reasoning format, and
validate every example.

Shapes read (``DataSource.format``):

``messages``    gazal's own SFT examples ``{"id", "category", "messages", "source"}`` (and
                any chat dataset with ``messages`` or ShareGPT-style ``conversations``); the
                last message must be the assistant turn in the reasoning format. Optional
                ``options`` / ``answer`` fields are used to check the final answer.
``medical_o1``  ``Question``, ``Complex_CoT``, ``Response`` and optional ``options`` /
                ``answer_idx`` (FreedomIntelligence/medical-o1-reasoning-SFT and the MCQ
                variant in ``shared/data/sft``), converted as described below.
``columns``     any columns renamed to gazal fields by ``DataSource.columns``; a row with
                ``question`` + ``reasoning`` + ``response`` is converted like medical-o1, a row
                with ``question`` + ``assistant`` (a full reasoning-format reply) is used as is.
``auto``        detected per row, in that order.

Conversion of a reasoning text into numbered steps (documented in docs/sft.md):

1. a reasoning that already has ``Step N:`` lines keeps those steps;
2. otherwise it is split into paragraphs at blank lines, each paragraph one step (its line
   breaks folded into spaces);
3. a reasoning that is a single paragraph is split into sentences, and every
   ``SENTENCES_PER_STEP`` consecutive sentences form a step.

The response becomes the ``## Clinical Assessment`` section; when the row has options and a
gold letter, the final answer line ``**Final answer: (X) option text**`` ends the turn, and
the prompt is the question rendered with its lettered options under gazal's system prompt,
exactly what evaluation sends.

Every example, converted or given, is validated (:func:`check_assistant`); failures are
*rejects*, counted by reason and written with their source row. Rows whose structure is wrong
(a missing column, a field of the wrong type) are *malformed*: an error naming the file and
row, or a reject when ``on_malformed: reject``.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from gazal import published
from gazal.benchmarks.item import Item, options_from
from gazal.config import cfg
from gazal.extraction import extract_answer, normalize_option_text
from gazal.formatting import (
    ASSESSMENT_HEADING,
    FINAL_ANSWER_LINE,
    STEP_LINE,
    SYSTEM_PROMPT,
    THINK_CLOSE,
    THINK_OPEN,
    build_messages,
    parse_response,
    parse_steps,
    render_final_answer,
)
from gazal.io import DataError, iter_jsonl, read_json

__all__ = [
    "SENTENCES_PER_STEP",
    "DataSource",
    "LoadedData",
    "Reject",
    "RowReject",
    "SFTExample",
    "check_assistant",
    "convert_row",
    "load_sft_data",
    "load_source",
    "reasoning_assistant",
    "split_reasoning",
]

SENTENCES_PER_STEP = 3

DataFormat = Literal["auto", "messages", "medical_o1", "columns"]


@dataclass
class DataSource:
    """One SFT data source (the ``data.train`` / ``data.eval`` entries of a ``gazal sft``
    recipe); its GRPO twin is :class:`gazal.data.rl_data.RLSource`."""

    path: str = cfg(help="a local .json (list of rows) or .jsonl file, or a Hub dataset name "
                         "(e.g. FreedomIntelligence/medical-o1-reasoning-SFT)")
    format: DataFormat = cfg(
        "auto", "row shape: 'messages' (gazal SFT examples / chat), 'medical_o1' "
                "(Question, Complex_CoT, Response, optional options/answer_idx), 'columns' "
                "(any columns, renamed by `columns`), or 'auto' (detected per row)")
    name: str | None = cfg(None, "Hub dataset config name (e.g. 'en' for medical-o1)")
    split: str = cfg("train", "Hub dataset split")
    revision: str | None = cfg(None, "Hub dataset revision to pin")
    columns: dict[str, str] = cfg(
        {}, "rename source columns to gazal fields: id, category, messages, system, question, "
            "reasoning, response, assistant, options, answer (e.g. {question: input, "
            "assistant: output})")
    require_final_answer: bool | None = cfg(
        None, "whether every example must end with the final answer line; null = when the "
              "row has options, or for gazal 'messages' rows")
    limit: int | None = cfg(None, "read only the first N rows")
    on_malformed: Literal["error", "reject"] = cfg(
        "error", "a structurally malformed row (wrong types, missing columns) stops the run "
                 "with an error naming the row, or is counted as a reject")


ROLES = ("system", "user", "assistant")
GAZAL_FIELDS = ("id", "category", "messages", "system", "question", "reasoning", "response",
                "assistant", "options", "answer")
# Column names of the medical-o1 shape, mapped to gazal fields.
MEDICAL_O1_COLUMNS = {"Question": "question", "Complex_CoT": "reasoning",
                      "Response": "response", "answer_idx": "answer"}
# Columns auto-detection accepts as the prompt / the full assistant reply.
PROMPT_COLUMNS = ("question", "Question", "instruction", "prompt", "input")
ASSISTANT_COLUMNS = ("assistant", "output", "completion", "response", "Response", "answer")

_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]?\s+(?=[\"'(\[]?[A-Z0-9])")


class RowReject(Exception):
    """An example that does not meet the format; ``reason`` is a short, countable key."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail


@dataclass
class SFTExample:
    """One validated training example (the SFT example contract of DESIGN.md)."""

    id: str
    category: str | None
    messages: list[dict[str, str]]
    source: str
    row: int

    def to_record(self) -> dict[str, Any]:
        """The JSON shape gazal writes and reads back (``format: messages``)."""
        return {"id": self.id, "category": self.category, "messages": self.messages,
                "source": self.source}

    def to_trl(self, assistant_only_loss: bool) -> dict[str, Any]:
        """A TRL row: conversational prompt-completion (loss on the completion only) or
        conversational language modelling (loss on every token)."""
        if assistant_only_loss:
            return {"prompt": self.messages[:-1], "completion": self.messages[-1:]}
        return {"messages": self.messages}


@dataclass
class Reject:
    """A row that was not used, and why."""

    source: str
    row: int
    reason: str
    detail: str = ""
    id: str | None = None
    split: str = "train"

    def to_record(self) -> dict[str, Any]:
        return {"split": self.split, "source": self.source, "row": self.row,
                "reason": self.reason, "detail": self.detail, "id": self.id}


@dataclass
class LoadedData:
    """Examples and rejects of one split."""

    examples: list[SFTExample] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    n_rows: int = 0

    @property
    def reject_counts(self) -> dict[str, int]:
        return dict(Counter(r.reason for r in self.rejects).most_common())

    def extend(self, other: LoadedData) -> None:
        self.examples.extend(other.examples)
        self.rejects.extend(other.rejects)
        self.n_rows += other.n_rows


# --------------------------------------------------------------------------- reading rows


def _is_local(path: str) -> bool:
    return Path(path).exists() or Path(path).suffix.lower() in (".json", ".jsonl")


def iter_rows(source: DataSource) -> Iterator[tuple[int, str, Any]]:
    """Yield ``(row_number, location, row)``; row numbers are 1-based (JSONL: line numbers).

    ``location`` is what error messages print: ``file:LINE`` for JSONL, ``file row N`` for a
    JSON list, ``name[split] row N`` for a Hub dataset.
    """
    path = source.path
    if _is_local(path):
        p = Path(path)
        if p.suffix.lower() == ".jsonl":
            published.verify_if_listed(p)  # a curated kept.jsonl: from a finished run
            # Malformed JSON lines are errors here: a reject needs a parsed row to describe.
            for n, (lineno, row) in enumerate(iter_jsonl(p, require_object=False)):
                if source.limit is not None and n >= source.limit:
                    return
                yield lineno, f"{p}:{lineno}", row
            return
        data = read_json(p)
        if isinstance(data, Mapping):  # {"data": [...]} or {id: row, ...}
            rows = data.get("data") if isinstance(data.get("data"), list) else list(data.values())
        elif isinstance(data, list):
            rows = data
        else:
            raise DataError(f"expected a JSON list of rows, got {type(data).__name__}", p)
        for i, row in enumerate(rows[: source.limit] if source.limit is not None else rows):
            yield i + 1, f"{p} row {i + 1}", row
        return
    # Hub dataset: loaded through `datasets` (cached as Arrow by the library).
    from gazal.hub import load_hub_dataset

    ds = load_hub_dataset(path, source.name, split=source.split, revision=source.revision,
                          offline=f"No local file is named {path!r} either; point the source "
                                  "at a local .jsonl / .json file.")
    if source.limit is not None:
        ds = ds.select(range(min(source.limit, len(ds))))
    label = f"{path}" + (f"/{source.name}" if source.name else "") + f"[{source.split}]"
    for i, row in enumerate(ds):
        yield i + 1, f"{label} row {i + 1}", row


# --------------------------------------------------------------------------- conversion


def split_reasoning(text: str) -> list[str]:
    """Split a free-text reasoning into step bodies (see the module docstring)."""
    text = text.strip()
    if not text:
        return []
    existing = parse_steps(text)
    if existing and [n for n, _ in existing] == list(range(1, len(existing) + 1)) \
            and not text[: STEP_LINE.search(text).start()].strip():
        return [_one_line(body) for _, body in existing]
    paragraphs = [_one_line(p) for p in re.split(r"\n[ \t]*\n", text) if p.strip()]
    if len(paragraphs) > 1:
        return paragraphs
    sentences = [s.strip() for s in _SENTENCE_END.split(paragraphs[0]) if s.strip()]
    return [" ".join(sentences[i:i + SENTENCES_PER_STEP])
            for i in range(0, len(sentences), SENTENCES_PER_STEP)]


def _one_line(text: str) -> str:
    return " ".join(text.split())


def reasoning_assistant(reasoning: str, response: str, *, letter: str | None = None,
                        option_text: str | None = None) -> str:
    """An assistant turn in the reasoning format from a free-text reasoning and a response.

    With ``letter`` (and its option text) the turn ends with the final answer line; without,
    the response alone closes it (open-ended questions have no options to answer with).
    """
    for name, value in (("reasoning", reasoning), ("response", response)):
        if THINK_OPEN in value or THINK_CLOSE in value:
            raise RowReject("think_tag_in_text", f"the {name} contains a <think> tag")
    steps = split_reasoning(reasoning)
    if not steps:
        raise RowReject("empty_reasoning")
    response = response.strip()
    if not response:
        raise RowReject("empty_response")
    thinking = "\n".join(f"Step {i}: {s}" for i, s in enumerate(steps, start=1))
    text = f"{THINK_OPEN}\n{thinking}\n{THINK_CLOSE}\n\n{ASSESSMENT_HEADING}\n{response}"
    if letter:
        text += "\n\n" + render_final_answer(letter, option_text)
    return text


def _detect_format(row: Mapping[str, Any]) -> str:
    if "messages" in row or "conversations" in row:
        return "messages"
    if all(c in row for c in ("Question", "Complex_CoT", "Response")):
        return "medical_o1"
    return "columns"


def _auto_columns(row: Mapping[str, Any], where: str) -> dict[str, str]:
    """Guess a prompt column and a full-reply column (one holding a </think> block)."""
    prompt = next((c for c in PROMPT_COLUMNS if isinstance(row.get(c), str)), None)
    reply = next((c for c in ASSISTANT_COLUMNS
                  if isinstance(row.get(c), str) and THINK_CLOSE in row[c]), None)
    if prompt and reply:
        return {"question": prompt, "assistant": reply}
    raise DataError("cannot tell the shape of this row (columns: "
                    f"{', '.join(sorted(map(str, row)))}); set format: columns and map them "
                    "with `columns:` (question, reasoning, response, assistant, options, "
                    "answer, ...)", where)


def _rename(row: Mapping[str, Any], mapping: Mapping[str, str], where: str) -> dict[str, Any]:
    """Gazal fields from a row through ``{gazal_field: source_column}``."""
    out: dict[str, Any] = {}
    for gazal_field, column in mapping.items():
        if gazal_field not in GAZAL_FIELDS:
            raise DataError(f"unknown gazal field {gazal_field!r} in `columns` (valid: "
                            f"{', '.join(GAZAL_FIELDS)})")
        if column not in row:
            raise DataError(f"missing column {column!r} (mapped to {gazal_field!r}); the row "
                            f"has: {', '.join(sorted(map(str, row)))}", where)
        out[gazal_field] = row[column]
    return out


def _str_field(fields: Mapping[str, Any], name: str, where: str, *,
               required: bool = True) -> str | None:
    value = fields.get(name)
    if value is None:
        if required:
            raise DataError("missing", where, field=name)
        return None
    if not isinstance(value, str):
        raise DataError(f"expected a string, got {type(value).__name__}", where, field=name)
    return value


def convert_row(row: Any, source: DataSource, where: str, *,
                system_prompt: str | None = None) -> tuple[list[dict[str, str]],
                                                           dict[str, Any]]:
    """Messages of one row plus facts for validation (``options``, ``gold``, ``id``,
    ``category``, ``require_answer``).

    Raises :class:`DataError` for a malformed row and :class:`RowReject` for one that
    cannot be brought into the format.
    """
    if not isinstance(row, Mapping):
        raise DataError(f"expected a JSON object, got {type(row).__name__}", where)
    fmt = source.format if source.format != "auto" else _detect_format(row)
    if fmt == "messages":
        fields = _rename(row, source.columns, where) if source.columns else dict(row)
        if "messages" not in fields and "conversations" in row:
            fields["messages"] = row["conversations"]
        messages = _messages(fields.get("messages"), where)
        default_require = True
    elif fmt == "medical_o1":
        for column in ("Question", "Complex_CoT", "Response"):
            if column not in row:
                raise DataError(f"missing (the medical-o1 shape needs Question, Complex_CoT "
                                f"and Response; the row has: {', '.join(sorted(map(str, row)))})",
                                where, field=column)
            if not isinstance(row[column], str):
                raise DataError(f"expected a string, got {type(row[column]).__name__}", where,
                                field=column)
        fields = {gazal: row.get(column) for column, gazal in MEDICAL_O1_COLUMNS.items()}
        fields.update({k: row.get(k) for k in ("id", "category", "options", "system")})
        if source.columns:
            fields.update(_rename(row, source.columns, where))
        messages = None
        default_require = None
        # The MCQ variant keeps the original vignette with its options in `question`; the
        # open-ended rewrite is `Question`. The options belong to the former.
        if fields.get("options") is not None and isinstance(row.get("question"), str):
            fields["question"] = row["question"]
    else:
        fields = _rename(row, source.columns or _auto_columns(row, where), where)
        messages = _messages(fields["messages"], where) if "messages" in fields else None
        default_require = True if messages is not None else None

    options = gold = None
    if fields.get("options") is not None:
        try:
            options = options_from(fields["options"])
        except ValueError as err:
            raise DataError(str(err), where, field="options") from None
    answer = fields.get("answer")
    if answer is not None and options is not None:
        if not isinstance(answer, str):
            raise DataError(f"expected a letter, got {type(answer).__name__}", where,
                            field="answer")
        gold = answer.strip().upper()
        if gold not in options:
            raise RowReject("answer_not_in_options",
                            f"gold {answer!r} is not one of {', '.join(options)}")
        text = row.get("answer") if fmt == "medical_o1" else None
        if isinstance(text, str) and text.strip() and \
                normalize_option_text(text) != normalize_option_text(options[gold]):
            raise RowReject("answer_text_mismatch",
                            f"answer {text!r} is not option {gold} ({options[gold]!r})")
    elif options is not None:
        raise RowReject("no_gold_answer", "the row has options but no gold letter")

    if messages is None:
        question = _str_field(fields, "question", where)
        system = _str_field(fields, "system", where, required=False)
        if "assistant" in fields:
            assistant = _str_field(fields, "assistant", where)
            if assistant is None or not assistant.strip():
                raise RowReject("empty_response")
        else:
            reasoning = _str_field(fields, "reasoning", where)
            response = _str_field(fields, "response", where)
            assistant = reasoning_assistant(
                reasoning or "", response or "", letter=gold,
                # one line: an option text with line breaks would break the answer line
                option_text=_one_line(options[gold]) if gold and options else None)
        if options is not None and gold is not None:
            item = Item(id="sft", benchmark="sft", question=(question or "").strip(),
                        options=options, answer=gold)
            sys_prompt = system if system is not None else (
                SYSTEM_PROMPT if system_prompt is None else system_prompt)
            messages = build_messages(item, system_prompt=sys_prompt or None)
        else:
            messages = []
            sys_prompt = system if system is not None else system_prompt
            if sys_prompt:
                messages.append({"role": "system", "content": sys_prompt})
            messages.append({"role": "user", "content": (question or "").strip()})
        if not messages[-1]["content"]:
            raise RowReject("empty_question")
        messages.append({"role": "assistant", "content": assistant.strip()})

    require = source.require_final_answer
    if require is None:
        require = bool(options) or bool(default_require)
    facts = {"options": options, "gold": gold, "require_answer": require,
             "id": fields.get("id") if isinstance(fields.get("id"), str | int) else None,
             "category": fields.get("category") if isinstance(fields.get("category"), str)
             else None}
    return messages, facts


def _messages(value: Any, where: str) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise DataError("expected a non-empty list of messages", where, field="messages")
    out = []
    for i, m in enumerate(value):
        if not isinstance(m, Mapping):
            raise DataError(f"message {i}: expected an object", where, field="messages")
        role = m.get("role", m.get("from"))
        content = m.get("content", m.get("value"))
        role = {"human": "user", "gpt": "assistant"}.get(role, role)
        if role not in ROLES:
            raise DataError(f"message {i}: role {role!r} is not one of {', '.join(ROLES)}",
                            where, field="messages")
        if not isinstance(content, str):
            raise DataError(f"message {i}: content must be a string, got "
                            f"{type(content).__name__}", where, field="messages")
        out.append({"role": role, "content": content})
    return out


# --------------------------------------------------------------------------- validation


def check_assistant(text: str, *, require_answer: bool,
                    options: Mapping[str, str] | None = None, gold: str | None = None) -> None:
    """Raise :class:`RowReject` unless ``text`` is a valid assistant turn.

    Checks: exactly one ``<think>`` opening the turn and one ``</think>``; numbered steps
    ``Step 1..n`` with content and nothing before Step 1; a non-empty section after the
    thinking; where an answer is required, exactly one final answer line, none inside the
    thinking; with options, gazal's extractor must read the gold letter from the turn.
    """
    n_open, n_close = text.count(THINK_OPEN), text.count(THINK_CLOSE)
    if n_open != 1 or n_close != 1:
        raise RowReject("think_tags", f"{n_open} <think> and {n_close} </think> (need one each)")
    if not text.lstrip().startswith(THINK_OPEN):
        raise RowReject("text_before_think")
    parsed = parse_response(text)
    thinking = parsed.thinking or ""
    steps = parse_steps(thinking)
    if not steps:
        raise RowReject("no_steps", "no 'Step N:' lines inside <think>")
    numbers = [n for n, _ in steps]
    if numbers != list(range(1, len(steps) + 1)):
        raise RowReject("step_numbering", f"steps numbered {numbers[:8]}")
    if thinking[: STEP_LINE.search(thinking).start()].strip():
        raise RowReject("text_before_first_step")
    empty = [n for n, body in steps if not body.strip()]
    if empty:
        raise RowReject("empty_step", f"step {empty[0]} has no content")
    if not parsed.answer.strip():
        raise RowReject("empty_answer_section", "nothing after </think>")
    if FINAL_ANSWER_LINE.search(thinking):
        raise RowReject("final_answer_in_thinking")
    finals = list(FINAL_ANSWER_LINE.finditer(parsed.answer))
    if not require_answer:
        return
    if not finals:
        raise RowReject("no_final_answer", "no '**Final answer: ...**' line after </think>")
    if len(finals) > 1:
        raise RowReject("multiple_final_answers", f"{len(finals)} final answer lines")
    if options:
        got = extract_answer(text, options)
        if got.letter is None:
            raise RowReject("unextractable_answer", f"extraction rule {got.rule!r}")
        if gold and got.letter != gold:
            raise RowReject("wrong_answer", f"the turn answers {got.letter}, gold is {gold}")


# --------------------------------------------------------------------------- loading


def example_id(messages: Sequence[Mapping[str, str]]) -> str:
    """A content id: the same example gets the same id from any source."""
    payload = json.dumps([[m["role"], m["content"]] for m in messages], ensure_ascii=False)
    return "sft-" + hashlib.sha256(payload.encode("utf-8")).hexdigest()[:12]


def load_source(source: DataSource, *, system_prompt: str | None = None,
                split: str = "train") -> LoadedData:
    """Read, convert and validate every row of one source."""
    out = LoadedData()
    for row_no, where, row in iter_rows(source):
        out.n_rows += 1
        try:
            messages, facts = convert_row(row, source, where, system_prompt=system_prompt)
            if messages[-1]["role"] != "assistant":
                raise RowReject("no_assistant_turn", "the last message is not the assistant's")
            if not any(m["role"] == "user" for m in messages[:-1]):
                raise RowReject("no_user_turn")
            check_assistant(messages[-1]["content"], require_answer=facts["require_answer"],
                            options=facts["options"], gold=facts["gold"])
        except RowReject as rej:
            rid = row.get("id") if isinstance(row, Mapping) else None
            out.rejects.append(Reject(source.path, row_no, rej.reason, rej.detail,
                                      str(rid) if rid is not None else None, split))
            continue
        except DataError as err:
            if source.on_malformed == "error":
                raise
            out.rejects.append(Reject(source.path, row_no, "malformed", str(err), None, split))
            continue
        ex_id = str(facts["id"]) if facts["id"] is not None else example_id(messages)
        out.examples.append(SFTExample(ex_id, facts["category"], messages, source.path,
                                       row_no))
    return out


def load_sft_data(train: Sequence[DataSource], eval_sources: Sequence[DataSource] = (), *,
                  eval_fraction: float = 0.0, seed: int = 42, system_prompt: str | None = None,
                  limit: int | None = None) -> tuple[LoadedData, LoadedData]:
    """Train and eval examples (with their rejects) from the recipe's data section."""
    train_data, eval_data = LoadedData(), LoadedData()
    for source in train:
        train_data.extend(load_source(source, system_prompt=system_prompt, split="train"))
    for source in eval_sources:
        eval_data.extend(load_source(source, system_prompt=system_prompt, split="eval"))
    if not eval_sources and eval_fraction > 0 and train_data.examples:
        order = list(range(len(train_data.examples)))
        random.Random(seed).shuffle(order)
        n_eval = max(1, round(len(order) * eval_fraction))
        held = set(order[:n_eval])
        eval_data.examples = [e for i, e in enumerate(train_data.examples) if i in held]
        train_data.examples = [e for i, e in enumerate(train_data.examples) if i not in held]
    if limit is not None:
        train_data.examples = train_data.examples[:limit]
    return train_data, eval_data
