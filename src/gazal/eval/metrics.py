"""Accuracy metrics: Wilson 95% intervals, mean ± std over repeated samples, macro averages,
and the summary shared by ``gazal score`` and ``gazal eval`` (so both give the same numbers).
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["macro_average", "majority_correct", "mean_std", "pass_at_k", "summarize",
           "wilson_interval"]

Z95 = 1.959963984540054


def wilson_interval(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (Wilson 1927); (0, 0) when n is 0.

    Unlike the normal approximation it stays inside [0, 1] and behaves at 0% and 100%.
    """
    if n <= 0:
        return (0.0, 0.0)
    if not 0 <= correct <= n:
        raise ValueError(f"correct={correct} must be between 0 and n={n}")
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n-1); std is 0 for a single value."""
    if not values:
        raise ValueError("mean_std of no values")
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return mean, std


def macro_average(per_benchmark: Mapping[str, float]) -> float | None:
    """Unweighted mean over benchmarks (each counts once whatever its size)."""
    return statistics.fmean(per_benchmark.values()) if per_benchmark else None


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one item with ``c`` correct among ``n`` samples: the chance that at
    least one of ``k`` samples drawn without replacement is correct,
    ``1 - C(n - c, k) / C(n, k)`` (Chen et al. 2021, "Evaluating Large Language Models
    Trained on Code", eq. 1)."""
    if not 1 <= k <= n:
        raise ValueError(f"pass@k needs 1 <= k <= n, got k={k}, n={n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def majority_correct(samples: Sequence[Mapping[str, Any]]) -> bool:
    """Whether the majority vote over an item's samples is right: the most frequent extracted
    answer (samples with none do not vote; a tie goes to the answer given first, by
    ``sample_index``), right when the samples that gave it are marked correct. No vote at
    all is wrong."""
    votes: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for r in sorted(samples, key=lambda r: int(r.get("sample_index") or 0)):
        if r.get("extracted") is not None:
            votes[str(r["extracted"])].append(r)
    if not votes:
        return False
    winner = max(votes.values(), key=len)  # max keeps the first of equal counts
    return bool(winner[0].get("correct"))


def _over_samples(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """pass@k for k = 1, 2, 4, ... up to the fewest samples any item has, and the
    majority-vote accuracy, over items (grouped by ``benchmark`` and ``id``)."""
    items: dict[tuple[Any, Any], list[Mapping[str, Any]]] = defaultdict(list)
    for r in records:
        items[(r.get("benchmark"), r.get("id"))].append(r)
    fewest = min(len(v) for v in items.values())
    ks = sorted({1, fewest} | {2 ** j for j in range(1, fewest.bit_length()) if 2 ** j <= fewest})
    out: dict[str, Any] = {"pass_at_k": {}}
    for k in ks:
        out["pass_at_k"][str(k)] = statistics.fmean(
            pass_at_k(len(v), sum(bool(r.get("correct")) for r in v), k)
            for v in items.values())
    out["majority_accuracy"] = statistics.fmean(majority_correct(v) for v in items.values())
    return out


def _group_stats(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    n = len(records)
    correct = sum(1 for r in records if r.get("correct"))
    missing = sum(1 for r in records if r.get("extracted") is None)
    truncated = sum(1 for r in records if r.get("truncated"))
    lo, hi = wilson_interval(correct, n)
    out: dict[str, Any] = {
        "n": n,
        "correct": correct,
        "accuracy": correct / n if n else 0.0,
        "accuracy_ci95": [lo, hi],
        "missing": missing / n if n else 0.0,
        "truncated": truncated / n if n else 0.0,
    }
    by_sample: dict[int, list[bool]] = defaultdict(list)
    for r in records:
        by_sample[int(r.get("sample_index") or 0)].append(bool(r.get("correct")))
    if len(by_sample) > 1:
        accs = [sum(v) / len(v) for _, v in sorted(by_sample.items())]
        mean, std = mean_std(accs)
        out.update(samples=len(accs), accuracy_mean=mean, accuracy_std=std,
                   accuracy_per_sample=accs)
        if all(r.get("id") is not None for r in records):  # samples are told apart by item
            out.update(_over_samples(records))
    return out


def summarize(records: Iterable[Mapping[str, Any]], category_keys: Mapping[str, str] | None = None
              ) -> dict[str, Any]:
    """Summary of scored records (each with ``correct``, ``extracted``, ``truncated`` and
    optional ``benchmark``, ``sample_index``, ``meta``).

    Returns overall stats plus ``benchmarks`` (per benchmark, with ``categories`` when
    ``category_keys[benchmark]`` names a meta key) and ``macro_accuracy``.
    """
    records = list(records)
    out = _group_stats(records)
    groups: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for r in records:
        if r.get("benchmark"):
            groups[str(r["benchmark"])].append(r)
    if groups:
        per: dict[str, Any] = {}
        for name, recs in groups.items():
            stats = _group_stats(recs)
            key = (category_keys or {}).get(name)
            if key:
                cats: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
                for r in recs:
                    value = (r.get("meta") or {}).get(key)
                    if value is not None:
                        cats[str(value)].append(r)
                if cats:
                    stats["categories"] = {c: _group_stats(v) for c, v in sorted(cats.items())}
            per[name] = stats
        out["benchmarks"] = per
        out["macro_accuracy"] = macro_average({k: v["accuracy"] for k, v in per.items()})
    return out
