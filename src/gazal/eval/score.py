"""Scoring responses: the per-response rule used by ``gazal eval`` and ``gazal score``, and the
``gazal score`` file pipeline (any model's responses, gazal's or not)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gazal import published
from gazal.benchmarks import PAPER_ACCURACY, options_from
from gazal.benchmarks.item import gold_letter
from gazal.benchmarks.registry import BENCHMARKS
from gazal.extraction import extract_answer
from gazal.formatting import parse_response
from gazal.io import DataError, atomic_open, atomic_write_json, iter_jsonl
from gazal.report.tables import fmt_ci, fmt_pct, text_table

from .metrics import summarize

__all__ = ["ScoreResult", "score_file", "score_response", "summary_table"]


def score_response(response: str, options: Mapping[str, str], gold: str) -> dict[str, Any]:
    """``extracted``, ``correct``, ``extraction_rule`` and ``truncated`` for one response."""
    ext = extract_answer(response, options)
    return {"extracted": ext.letter, "correct": ext.letter is not None and ext.letter == gold,
            "extraction_rule": ext.rule, "truncated": parse_response(response).truncated}


def category_keys() -> dict[str, str]:
    """Meta key to break each benchmark's accuracy down by."""
    return {n: s.categories_key for n, s in BENCHMARKS.items() if s.categories_key}


@dataclass
class ScoreResult:
    """What ``score_file`` produced."""

    summary: dict[str, Any]
    skipped: list[DataError] = field(default_factory=list)


def score_file(path: str | Path, out_dir: str | Path, *, skip_invalid: bool = False
               ) -> ScoreResult:
    """Score a JSONL of responses into ``out_dir/scored.jsonl`` and ``out_dir/summary.json``.

    Each line needs ``response`` (text), ``options`` (letter -> text object, or a list) and
    ``answer`` (gold letter, or the gold option's text such as yes/no/maybe); ``id``,
    ``benchmark``, ``sample_index`` and ``meta`` are kept. An input ``truncated: true`` (a
    generation cut at its token limit) is kept even if the text parses.
    A malformed line stops the run naming its line, unless ``skip_invalid``; so does a line
    repeating an earlier one (same ``benchmark``, ``id``, ``sample_index`` and ``response``:
    it would be counted twice).
    """
    path, out_dir = Path(path), Path(out_dir)
    skipped: list[DataError] = []
    scored: list[dict[str, Any]] = []
    first_seen: dict[str, int] = {}
    out_dir.mkdir(parents=True, exist_ok=True)
    published.begin(out_dir, "score")  # scored.jsonl and summary.json: one set
    with atomic_open(out_dir / "scored.jsonl") as out:
        for lineno, rec in iter_jsonl(path, skip_invalid=skip_invalid, on_skip=skipped.append):
            try:
                row = _score_record(rec, path, lineno)
                if "id" in rec:
                    key = json.dumps([rec.get("benchmark"), rec["id"],
                                      rec.get("sample_index", 0), rec["response"]])
                    if key in first_seen:
                        raise DataError(f"repeats line {first_seen[key]} (same id, "
                                        "sample_index and response); it would be counted "
                                        "twice", path, lineno, "id")
                    first_seen[key] = lineno
            except DataError as err:
                if not skip_invalid:
                    raise
                skipped.append(err)
                continue
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            scored.append(row)
    if not scored:
        raise DataError("no valid responses to score", path)
    summary = summarize(scored, category_keys())
    summary["input"] = str(path)
    summary["skipped_lines"] = [e.line for e in skipped]
    atomic_write_json(out_dir / "summary.json", summary)
    published.publish(out_dir, ("scored.jsonl", "summary.json"), "score")
    return ScoreResult(summary=summary, skipped=skipped)


def _score_record(rec: dict[str, Any], path: Path, line: int) -> dict[str, Any]:
    response = rec.get("response")
    if not isinstance(response, str):
        raise DataError("expected text" if "response" in rec else "missing", path, line,
                        "response")
    if "options" not in rec:
        raise DataError("missing", path, line, "options")
    try:
        options = options_from(rec["options"])
    except ValueError as err:
        raise DataError(str(err), path, line, "options") from None
    answer = rec.get("answer")
    if not isinstance(answer, str) or not answer.strip():
        raise DataError("expected the gold letter or option text" if "answer" in rec
                        else "missing", path, line, "answer")
    try:
        gold = gold_letter(answer, options)
    except ValueError as err:
        raise DataError(str(err), path, line, "answer") from None
    if "truncated" in rec and not isinstance(rec["truncated"], bool):
        raise DataError(f"expected true or false, got {rec['truncated']!r}", path, line,
                        "truncated")
    index = rec.get("sample_index", 0)
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise DataError(f"expected an integer >= 0, got {index!r}", path, line, "sample_index")
    result = score_response(response, options, gold)
    if rec.get("truncated") is True:
        result["truncated"] = True
    out = dict(rec)
    out["options"] = options
    out["answer"] = gold
    out.update(result)
    return out


def summary_table(summary: Mapping[str, Any]) -> str:
    """Console table: overall and per benchmark (with the paper's number where it has one)."""
    headers = ["set", "n", "accuracy", "95% CI", "missing", "truncated", "paper"]

    def row(name: str, s: Mapping[str, Any], paper: float | None) -> list[Any]:
        acc = fmt_pct(s["accuracy"])
        if "accuracy_std" in s:
            acc = f"{fmt_pct(s['accuracy_mean'])} ± {fmt_pct(s['accuracy_std'])}"
        return [name, s["n"], acc, fmt_ci(s["accuracy_ci95"]), fmt_pct(s["missing"]),
                fmt_pct(s["truncated"]), f"{paper:.1f}" if paper else "-"]

    rows = []
    for name, s in (summary.get("benchmarks") or {}).items():
        rows.append(row(name, s, PAPER_ACCURACY.get(name)))
        for cat, cs in (s.get("categories") or {}).items():
            rows.append(row(f"  {cat}", cs, None))
    rows.append(row("all", summary, None))
    table = text_table(headers, rows)
    if summary.get("macro_accuracy") is not None and len(summary.get("benchmarks", {})) > 1:
        table += f"\nmacro accuracy over benchmarks: {fmt_pct(summary['macro_accuracy'])}"
    return table

