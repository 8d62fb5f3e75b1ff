"""``gazal rewards audit``: score a library of honest answers and reward hacks, and fail when
a hack pays.

A case is one JSON line::

    {"name": "...", "kind": "honest_correct" | "honest_wrong" | "hack",
     "completion": "<text>" or [{"role": "assistant", "content": "..."}],
     "answer": "C", "options": {"A": "...", ...} or ["...", ...],
     "prompt": "<question text>",   # optional: enables the copied-from-prompt measure
     "truncated": false,            # optional: the completion was cut at the token limit
     "note": "what the hack tries"} # optional

Cases with the same gold answer and options form a group; each group needs at least one
honest_correct and one honest_wrong case. The audit fails when, within a group,

- a hack's total is at least the lowest honest_wrong total (no hack may earn what an honest
  wrong answer earns), or
- an honest_correct total is below the highest honest_wrong total.

Totals are TRL's: the sum over components of weight * value.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from gazal.benchmarks.item import gold_field, options_field
from gazal.io import DataError, iter_jsonl

from .registry import score_completions

__all__ = ["KINDS", "AuditResult", "Case", "CaseResult", "builtin_cases_path", "load_cases",
           "run_audit"]

KINDS = ("honest_correct", "honest_wrong", "hack")
_FIELDS = ("name", "kind", "completion", "answer", "options", "prompt", "truncated", "note")
# Two totals this close are a tie (a tie is a failure for a hack): float sums of the same
# values in another order differ by far less.
_TIE = 1e-9


@dataclass(frozen=True)
class Case:
    """One audit case (see the module docstring for the JSON shape)."""

    name: str
    kind: str
    completion: Any
    answer: str
    options: dict[str, str]
    prompt: str | None = None
    truncated: bool = False
    note: str = ""
    line: int = 0

    @property
    def group_key(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        return self.answer, tuple(self.options.items())


def builtin_cases_path() -> Path:
    """The packaged library (src/gazal/rewards/audit_cases.jsonl)."""
    return Path(str(resources.files("gazal.rewards").joinpath("audit_cases.jsonl")))


def _completion(value: Any, path: Path, line: int) -> Any:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(
            isinstance(m, dict) and isinstance(m.get("content"), str) for m in value):
        return value
    raise DataError("expected a string or a list of messages with string 'content'", path, line,
                    "completion")


def named_record(rec: dict[str, Any], fields: Sequence[str], kind: str, seen: dict[str, int],
                 path: Path, line: int) -> str:
    """Check a record's field names and its ``name`` (non-empty, unique in the file, tracked
    in ``seen``); returns the name. Shared by the case and group files."""
    unknown = sorted(set(rec) - set(fields))
    if unknown:
        raise DataError(f"unknown field(s) {unknown}; a {kind} has {', '.join(fields)}",
                        path, line)
    name = rec.get("name")
    if not isinstance(name, str) or not name.strip():
        raise DataError("expected a non-empty string", path, line, "name")
    if name in seen:
        raise DataError(f"{kind} name '{name}' already used on line {seen[name]}", path, line,
                        "name")
    seen[name] = line
    return name


def load_cases(path: str | Path) -> list[Case]:
    """Read and check a cases file; errors name the file, line and field."""
    path = Path(path)
    cases: list[Case] = []
    seen: dict[str, int] = {}
    for line, rec in iter_jsonl(path):
        name = named_record(rec, _FIELDS, "case", seen, path, line)
        kind = rec.get("kind")
        if kind not in KINDS:
            raise DataError(f"expected one of {', '.join(KINDS)}, got {kind!r}", path, line,
                            "kind")
        completion = _completion(rec.get("completion"), path, line)
        options = options_field(rec, path, line)
        gold = gold_field(rec, options, path, line)
        prompt = rec.get("prompt")
        if prompt is not None and not isinstance(prompt, str):
            raise DataError(f"expected a string, got {type(prompt).__name__}", path, line,
                            "prompt")
        truncated = rec.get("truncated", False)
        if not isinstance(truncated, bool):
            raise DataError(f"expected true or false, got {truncated!r}", path, line,
                            "truncated")
        note = rec.get("note", "")
        if not isinstance(note, str):
            raise DataError(f"expected a string, got {type(note).__name__}", path, line, "note")
        cases.append(Case(name=name, kind=kind, completion=completion, answer=gold,
                          options=options, prompt=prompt, truncated=truncated, note=note,
                          line=line))
    if not cases:
        raise DataError("no cases", path)
    _check_groups(cases, path)
    return cases


def groups_of(cases: Sequence[Case]) -> list[list[int]]:
    """Indices of the cases of each group, in order of first appearance."""
    index: dict[Any, list[int]] = {}
    for i, c in enumerate(cases):
        index.setdefault(c.group_key, []).append(i)
    return list(index.values())


def _check_groups(cases: Sequence[Case], path: Path | None) -> None:
    for members in groups_of(cases):
        kinds = {cases[i].kind for i in members}
        first = cases[members[0]]
        for needed in ("honest_correct", "honest_wrong"):
            if needed not in kinds:
                raise DataError(
                    f"the group of case '{first.name}' (answer {first.answer}, options "
                    f"{', '.join(first.options)}) has no {needed} case; every group needs an "
                    "honest correct and an honest wrong answer to judge its hacks by",
                    path, first.line or None)


@dataclass
class CaseResult:
    """A scored case and the audit failures it is named in."""

    case: Case
    group: int
    components: dict[str, float | None]
    total: float
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_json(self) -> dict[str, Any]:
        return {"name": self.case.name, "kind": self.case.kind, "group": self.group,
                "total": self.total, "components": self.components, "ok": self.ok,
                "failures": self.failures}


@dataclass
class AuditResult:
    results: list[CaseResult]
    weights: dict[str, float]

    @property
    def failures(self) -> list[str]:
        return [f for r in self.results for f in r.failures]

    @property
    def passed(self) -> bool:
        return not self.failures

    def table(self, render: Callable[[Sequence[str], Sequence[Sequence[Any]]], str]) -> str:
        """Each case's components and total, grouped, with the verdict, as ``render(headers,
        rows)`` lays it out (the command passes :func:`gazal.report.tables.text_table`;
        rewards import no report module)."""
        names = list(self.weights)
        headers = ["group", "case", "kind", *names, "total", "verdict"]
        rows = []
        for r in self.results:
            comps = [_fmt(r.components.get(n)) for n in names]
            rows.append([r.group, r.case.name, r.case.kind, *comps, f"{r.total:+.3f}",
                         "ok" if r.ok else "FAIL"])
        weights = "  ".join(f"{n}={w:g}" for n, w in self.weights.items())
        return f"weights: {weights}\n" + render(headers, rows)

    def summary(self) -> str:
        n_hacks = sum(1 for r in self.results if r.case.kind == "hack")
        if self.passed:
            n_groups = len({r.group for r in self.results})
            return (f"audit passed: {len(self.results)} cases in {n_groups} groups; each of "
                    f"the {n_hacks} hacks scores below its group's honest wrong answer")
        return "audit FAILED:\n" + "\n".join(f"  {f}" for f in self.failures)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:+.3f}"


def run_audit(cases: Sequence[Case], funcs: Sequence[Callable[..., Any]],
              weights: Sequence[float]) -> AuditResult:
    """Score every case with ``funcs`` (TRL reward functions) and check each group."""
    _check_groups(cases, None)
    scored = score_completions(
        [c.completion for c in cases], funcs, weights,
        answer=[c.answer for c in cases], options=[c.options for c in cases],
        prompts=[c.prompt or "" for c in cases], truncated=[c.truncated for c in cases])
    groups = groups_of(cases)
    group_of = {i: g for g, members in enumerate(groups, start=1) for i in members}
    results = [CaseResult(case=c, group=group_of[i], components=s["components"],
                          total=s["total"]) for i, (c, s) in enumerate(zip(cases, scored,
                                                                            strict=True))]
    for members in groups:
        rs = [results[i] for i in members]
        wrongs = [r for r in rs if r.case.kind == "honest_wrong"]
        lowest_wrong = min(wrongs, key=lambda r: r.total)
        highest_wrong = max(wrongs, key=lambda r: r.total)
        for r in rs:
            if r.case.kind == "hack" and r.total >= lowest_wrong.total - _TIE:
                r.failures.append(
                    f"hack '{r.case.name}' scores {r.total:+.3f}, not below honest wrong "
                    f"'{lowest_wrong.case.name}' ({lowest_wrong.total:+.3f})"
                    + (f": {r.case.note}" if r.case.note else ""))
            if r.case.kind == "honest_correct" and r.total < highest_wrong.total:
                r.failures.append(
                    f"honest correct '{r.case.name}' scores {r.total:+.3f}, below honest wrong "
                    f"'{highest_wrong.case.name}' ({highest_wrong.total:+.3f})")
    names = [getattr(f, "__name__", type(f).__name__) for f in funcs]
    return AuditResult(results=results, weights=dict(zip(names, weights, strict=True)))


def results_jsonl(result: AuditResult) -> str:
    """One JSON object per case (``--json``)."""
    return "\n".join(json.dumps(r.to_json(), ensure_ascii=False) for r in result.results)

