"""``gazal rewards audit --groups``: score GRPO prompt groups, compute their advantages as the
trainer would, and flag groups that break the advantage rules (:mod:`gazal.rewards.advantage`).

A group is one JSON line::

    {"name": "...", "prompt": "<question as the model saw it>", "answer": "C",
     "options": {"A": "...", ...} or ["...", ...],
     "completions": ["<text>" or [{"role": "assistant", "content": "..."}], ...],
     "note": "what the group shows"}          # optional

The groups of a file are one generation batch (``scale_rewards: batch`` divides by the std of
all their totals); each group is its own prompt group (``group`` divides by its own std).
The built-in groups are ``src/gazal/rewards/audit_groups.jsonl`` (written by
tools/build_advantage_groups.py).
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

from .advantage import RuleFailure, ScaleRewards, check_rules, grpo_advantages
from .audit import _completion
from .registry import score_completions

__all__ = ["Group", "GroupResult", "GroupsAudit", "audit_groups", "builtin_groups_path",
           "load_groups"]

_FIELDS = ("name", "prompt", "answer", "options", "completions", "note")


@dataclass(frozen=True)
class Group:
    """One prompt group (module docstring)."""

    name: str
    prompt: str
    answer: str
    options: dict[str, str]
    completions: list[Any]
    note: str = ""
    line: int = 0


def builtin_groups_path() -> Path:
    """The packaged groups (src/gazal/rewards/audit_groups.jsonl)."""
    return Path(str(resources.files("gazal.rewards").joinpath("audit_groups.jsonl")))


def load_groups(path: str | Path) -> list[Group]:
    """Read and check a groups file; errors name the file, line and field."""
    path = Path(path)
    groups: list[Group] = []
    seen: dict[str, int] = {}
    for line, rec in iter_jsonl(path):
        unknown = sorted(set(rec) - set(_FIELDS))
        if unknown:
            raise DataError(f"unknown field(s) {unknown}; a group has {', '.join(_FIELDS)}",
                            path, line)
        name = rec.get("name")
        if not isinstance(name, str) or not name.strip():
            raise DataError("expected a non-empty string", path, line, "name")
        if name in seen:
            raise DataError(f"group name '{name}' already used on line {seen[name]}", path,
                            line, "name")
        seen[name] = line
        prompt = rec.get("prompt")
        if not isinstance(prompt, str):
            raise DataError(f"expected a string, got {type(prompt).__name__}", path, line,
                            "prompt")
        options = options_field(rec, path, line)
        gold = gold_field(rec, options, path, line)
        completions = rec.get("completions")
        if not isinstance(completions, list) or len(completions) < 2:
            raise DataError("expected a list of at least 2 completions (GRPO compares the "
                            "completions of one prompt)", path, line, "completions")
        for i, c in enumerate(completions):
            try:
                _completion(c, path, line)
            except DataError as err:
                raise DataError(f"completion {i}: {err.reason}", path, line,
                                "completions") from None
        note = rec.get("note", "")
        if not isinstance(note, str):
            raise DataError(f"expected a string, got {type(note).__name__}", path, line, "note")
        groups.append(Group(name=name, prompt=prompt, answer=gold, options=options,
                            completions=list(completions), note=note, line=line))
    if not groups:
        raise DataError("no groups", path)
    return groups


@dataclass
class GroupResult:
    """A scored group: per completion its components, total and advantage."""

    group: Group
    components: list[dict[str, float | None]]
    totals: list[float]
    advantages: list[float] = field(default_factory=list)
    failures: list[RuleFailure] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.group.name,
                "completions": [{"total": t, "advantage": a, "components": c}
                                for t, a, c in zip(self.totals, self.advantages,
                                                   self.components, strict=True)],
                "failures": [{"rule": f.rule, "message": f.message} for f in self.failures]}


@dataclass
class GroupsAudit:
    results: list[GroupResult]
    weights: dict[str, float]
    scale_rewards: str

    @property
    def passed(self) -> bool:
        return not any(r.failures for r in self.results)

    def to_json(self) -> dict[str, Any]:
        return {"scale_rewards": self.scale_rewards, "weights": self.weights,
                "passed": self.passed, "groups": [r.to_json() for r in self.results]}

    def table(self, render: Callable[[Sequence[str], Sequence[Sequence[Any]]], str]) -> str:
        """Per completion every component, the total and the advantage, as ``render``
        lays it out (the command passes gazal.report.tables.text_table)."""
        names = list(self.weights)
        headers = ["group", "#", *names, "total", "advantage"]
        rows = []
        for r in self.results:
            for i, (c, t, a) in enumerate(zip(r.components, r.totals, r.advantages,
                                              strict=True)):
                rows.append([r.group.name if i == 0 else "", i,
                             *("-" if c.get(n) is None else f"{c[n]:+.3f}" for n in names),
                             f"{t:+.3f}", f"{a:+.3f}"])
        weights = "  ".join(f"{n}={w:g}" for n, w in self.weights.items())
        return (f"weights: {weights}; scale_rewards: {self.scale_rewards}\n"
                + render(headers, rows))

    def summary(self) -> str:
        bad = [(r.group.name, f) for r in self.results for f in r.failures]
        if not bad:
            return (f"advantage rules hold: {len(self.results)} groups "
                    f"(scale_rewards: {self.scale_rewards})")
        return (f"advantage rules BROKEN in {len({n for n, _ in bad})} of {len(self.results)} "
                f"groups (scale_rewards: {self.scale_rewards}):\n"
                + "\n".join(f"  {n}: {f.rule}: {f.message}" for n, f in bad))


def score_groups(groups: Sequence[Group], funcs: Sequence[Callable[..., Any]],
                 weights: Sequence[float]) -> list[GroupResult]:
    """Components and totals of every completion (no advantages yet)."""
    out = []
    for g in groups:
        n = len(g.completions)
        scored = score_completions(g.completions, funcs, weights, answer=[g.answer] * n,
                                   options=[g.options] * n, prompts=[g.prompt] * n,
                                   truncated=[False] * n)
        out.append(GroupResult(group=g, components=[s["components"] for s in scored],
                               totals=[s["total"] for s in scored]))
    return out


def audit_groups(groups: Sequence[Group], funcs: Sequence[Callable[..., Any]],
                 weights: Sequence[float], scale_rewards: ScaleRewards = "group"
                 ) -> GroupsAudit:
    """Score the groups, compute TRL's advantages with ``scale_rewards`` (the file is one
    batch) and check the rules of :mod:`gazal.rewards.advantage` on each group."""
    results = score_groups(groups, funcs, weights)
    advs = grpo_advantages([r.totals for r in results], scale_rewards)
    for r, a in zip(results, advs, strict=True):
        r.advantages = a
        r.failures = check_rules(r.components, a,
                                 names=[f"#{i}" for i in range(len(a))])
    names = [getattr(f, "__name__", type(f).__name__) for f in funcs]
    return GroupsAudit(results=results, weights=dict(zip(names, weights, strict=True)),
                       scale_rewards=scale_rewards)


def groups_json(audit: GroupsAudit) -> str:
    """``--groups --json``: one JSON object."""
    return json.dumps(audit.to_json(), ensure_ascii=False)
