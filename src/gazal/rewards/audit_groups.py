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

from .advantage import RuleFailure, ScaleRewards, check_rules, grpo_advantages, sequence_weights
from .audit import _completion, named_record
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
        name = named_record(rec, _FIELDS, "group", seen, path, line)
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
    tokens: list[int]
    truncated: list[bool]
    advantages: list[float] = field(default_factory=list)
    push: list[float] = field(default_factory=list)
    failures: list[RuleFailure] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.group.name,
                "completions": [{"total": t, "advantage": a, "push": p, "tokens": n,
                                 "truncated": cut, "components": c}
                                for t, a, p, n, cut, c in zip(
                                    self.totals, self.advantages, self.push, self.tokens,
                                    self.truncated, self.components, strict=True)],
                "failures": [{"rule": f.rule, "message": f.message} for f in self.failures]}


@dataclass
class GroupsAudit:
    results: list[GroupResult]
    weights: dict[str, float]
    scale_rewards: str
    loss_type: str = "dapo"

    @property
    def passed(self) -> bool:
        return not any(r.failures for r in self.results)

    @property
    def settings(self) -> str:
        return f"scale_rewards: {self.scale_rewards}, loss_type: {self.loss_type}"

    def to_json(self) -> dict[str, Any]:
        return {"scale_rewards": self.scale_rewards, "loss_type": self.loss_type,
                "weights": self.weights, "passed": self.passed,
                "groups": [r.to_json() for r in self.results]}

    def table(self, render: Callable[[Sequence[str], Sequence[Sequence[Any]]], str]) -> str:
        """Per completion every component, the total and the advantage, as ``render``
        lays it out (the command passes gazal.report.tables.text_table)."""
        names = list(self.weights)
        headers = ["group", "#", *names, "total", "advantage", "tokens", "push", "rules"]
        rows = []
        for r in self.results:
            rules = ",".join(f.rule for f in r.failures) or "ok"
            for i, (c, t, a) in enumerate(zip(r.components, r.totals, r.advantages,
                                              strict=True)):
                rows.append([r.group.name if i == 0 else "", i,
                             *("-" if c.get(n) is None else f"{c[n]:+.3f}" for n in names),
                             f"{t:+.3f}", f"{a:+.3f}", r.tokens[i], f"{r.push[i]:+.3f}",
                             rules if i == 0 else ""])
        weights = "  ".join(f"{n}={w:g}" for n, w in self.weights.items())
        return (f"weights: {weights}; {self.settings}\n" + render(headers, rows)
                + "\npush: the completion's share of the loss gradient under loss_type, "
                  "advantage x tokens x per-token weight x completions (= advantage for "
                  "loss_type grpo)")

    def summary(self) -> str:
        bad = [(r.group.name, f) for r in self.results for f in r.failures]
        if not bad:
            return f"advantage rules hold: {len(self.results)} groups ({self.settings})"
        return (f"advantage rules BROKEN in {len({n for n, _ in bad})} of {len(self.results)} "
                f"groups ({self.settings}):\n"
                + "\n".join(f"  {n}: {f.rule}: {f.message}" for n, f in bad))


def score_groups(groups: Sequence[Group], funcs: Sequence[Callable[..., Any]],
                 weights: Sequence[float]) -> list[GroupResult]:
    """Components and totals of every completion (no advantages yet), with its length in
    tokens and whether it counts as cut (from gazal's analysis when the first function is a
    gazal reward, else ~4 characters per token)."""
    import math

    from gazal.formatting import completion_text

    out = []
    for g in groups:
        n = len(g.completions)
        columns: dict[str, Any] = {"answer": [g.answer] * n, "options": [g.options] * n,
                                   "prompts": [g.prompt] * n, "truncated": [False] * n}
        scored = score_completions(g.completions, funcs, weights, **columns)
        analyzer = getattr(funcs[0], "analyzer", None) if funcs else None
        if analyzer is not None:
            analyses = analyzer.batch(g.completions, columns)
            tokens = [a.n_tokens for a in analyses]
            cut = [a.truncated for a in analyses]
        else:
            tokens = [math.ceil(len(completion_text(c)) / 4) for c in g.completions]
            cut = [False] * n
        out.append(GroupResult(group=g, components=[s["components"] for s in scored],
                               totals=[s["total"] for s in scored], tokens=tokens,
                               truncated=cut))
    return out


def audit_groups(groups: Sequence[Group], funcs: Sequence[Callable[..., Any]],
                 weights: Sequence[float], scale_rewards: ScaleRewards = "group", *,
                 loss_type: str = "dapo", max_completion_length: int = 4096,
                 mask_truncated_completions: bool = False) -> GroupsAudit:
    """Score the groups, compute TRL's advantages with ``scale_rewards`` (the file is one
    batch), each completion's ``push`` under ``loss_type`` (0 for a cut completion with
    ``mask_truncated_completions``), and check the rules of :mod:`gazal.rewards.advantage`
    on each group."""
    results = score_groups(groups, funcs, weights)
    advs = grpo_advantages([r.totals for r in results], scale_rewards)
    # TRL's loss mask: a cut completion has no loss tokens with mask_truncated_completions
    lengths = [0 if mask_truncated_completions and cut else n
               for r in results for n, cut in zip(r.tokens, r.truncated, strict=True)]
    per_token = sequence_weights(lengths, loss_type, max_completion_length)
    k = 0
    for r, a in zip(results, advs, strict=True):
        r.advantages = a
        r.push = []
        for adv in a:
            r.push.append(adv * lengths[k] * per_token[k] * len(lengths))
            k += 1
        r.failures = check_rules(r.components, a, r.truncated,
                                 names=[f"#{i}" for i in range(len(a))])
    names = [getattr(f, "__name__", type(f).__name__) for f in funcs]
    return GroupsAudit(results=results, weights=dict(zip(names, weights, strict=True)),
                       scale_rewards=scale_rewards, loss_type=loss_type)


def groups_json(audit: GroupsAudit) -> str:
    """``--groups --json``: one JSON object."""
    return json.dumps(audit.to_json(), ensure_ascii=False)
