"""Which items ``--limit N`` evaluates: a seeded sample stratified by the benchmark's
categories (the default), or the first N.

The first N rows of a file are rarely a fair subset: MMLU-Pro Medical's first 30 are all
biology, so a quick look at 30 items says nothing about health. ``stratified`` instead

1. groups the items by the benchmark's category (``BenchmarkSpec.categories_key``: MedQA's
   USMLE step, MMLU-Pro's subject; one group for benchmarks without categories, and items
   missing the key form a group of their own);
2. gives each group a share of N in proportion to its size, by the largest-remainder
   (Hamilton) method: each group gets ``floor(N * size / total)``, and the seats left go to
   the groups with the largest fractional parts (ties: the larger group, then the group
   name), so the shares sum to N exactly and differ from the exact proportion by less than
   one item;
3. draws each group's share uniformly without replacement from a random stream seeded by
   ``(seed, benchmark, group)``, the same on every machine and Python version;
4. returns the chosen items in their original order.

So the same seed gives the same items every run, and a larger N with the same seed is not
guaranteed to contain a smaller N's items (each N is its own sample).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Sequence
from typing import Literal

from gazal.benchmarks import BENCHMARKS, Item

__all__ = ["LimitMode", "allocate", "limit_items", "stratified_sample"]

LimitMode = Literal["stratified", "first"]


def allocate(sizes: dict[str, int], n: int) -> dict[str, int]:
    """Shares of ``n`` for groups of the given sizes, proportional by largest remainders.

    Every share is at most its group's size; with ``n >= sum(sizes)`` every group is taken
    whole.
    """
    total = sum(sizes.values())
    if n >= total:
        return dict(sizes)
    exact = {g: n * s / total for g, s in sizes.items()}
    shares = {g: math.floor(q) for g, q in exact.items()}
    left = n - sum(shares.values())
    order = sorted(sizes, key=lambda g: (-(exact[g] - shares[g]), -sizes[g], g))
    for g in order[:left]:
        shares[g] += 1
    return shares


def _rng(seed: int, benchmark: str, group: str) -> random.Random:
    payload = json.dumps([seed, benchmark, group], separators=(",", ":")).encode("utf-8")
    return random.Random(int.from_bytes(hashlib.sha256(payload).digest()[:8], "big"))


def stratified_sample(items: Sequence[Item], n: int, *, key: str | None, seed: int,
                      benchmark: str = "") -> list[Item]:
    """``n`` items drawn per category ``meta[key]`` in proportion (module docstring), in
    their original order; all of them when ``n >= len(items)``."""
    if n >= len(items):
        return list(items)
    groups: dict[str, list[int]] = {}
    for i, it in enumerate(items):
        value = it.meta.get(key) if key else None
        groups.setdefault("" if value is None else str(value), []).append(i)
    shares = allocate({g: len(v) for g, v in groups.items()}, n)
    chosen: list[int] = []
    for g, members in groups.items():
        chosen += _rng(seed, benchmark, g).sample(members, shares[g])
    return [items[i] for i in sorted(chosen)]


def limit_items(items: Sequence[Item], limit: int | None, *, mode: LimitMode = "stratified",
                seed: int = 0, benchmark: str = "") -> list[Item]:
    """The items ``--limit`` keeps: all (no limit), the first N, or the stratified sample,
    with the categories the registered benchmark ``benchmark`` is broken down by."""
    if limit is None or limit >= len(items):
        return list(items)
    if mode == "first":
        return list(items[:limit])
    if mode != "stratified":
        raise ValueError(f"unknown limit mode {mode!r}; use 'stratified' or 'first'")
    spec = BENCHMARKS.get(benchmark)
    return stratified_sample(items, limit, key=spec.categories_key if spec else None,
                             seed=seed, benchmark=benchmark)
