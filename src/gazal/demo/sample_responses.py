"""Synthetic model responses in the styles real LLMs use, for exercising ``gazal score``.

Used by ``bench/score_throughput.py`` and tests. Each response answers an item correctly
with probability ``p_correct`` and is written in one of many styles (gazal's format,
"The answer is (C).", ``\\boxed{C}``, "**Answer: C**", a bare letter, option text, a hedge,
a truncated thinking block, ...), so scoring sees the variety it meets in practice.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from gazal.benchmarks import Item, load_benchmark
from gazal.benchmarks.builtin import builtin_items
from gazal.benchmarks.item import LETTERS
from gazal.formatting import render_assistant
from gazal.io import atomic_write_jsonl

_FILLER = ("The presentation and timeline matter here. Consider the pathophysiology, the key "
           "finding on examination, and how each option fits the vignette. ")


def _style(rng: random.Random, item: Item, letter: str, n_words: int) -> str:
    text = item.options[letter]
    thinking = " ".join([_FILLER] * max(1, n_words // 30))
    styles = [
        lambda: render_assistant([thinking, f"The findings fit {text}."], "It fits best.",
                                 letter, text),
        lambda: f"<think>\n{thinking}\n</think>\n\nThe answer is ({letter}).",
        lambda: f"<think>{thinking}</think>\n\n$\\boxed{{{letter}}}$",
        lambda: f"**Answer: {letter}. {text}**\n\nExplanation: {thinking}",
        lambda: f"{thinking}\n\nTherefore, the correct answer is {letter}) {text}.",
        lambda: f"{letter}",
        lambda: f"{text}",
        lambda: f"{thinking}\nFinal Answer: {letter}",
        lambda: f"<think>\n{thinking}",  # truncated: thinking never closed
        lambda: f"{thinking}\nThe answer is either {letter} or "
                f"{LETTERS[(LETTERS.index(letter) + 1) % len(item.options)]}.",  # hedged
    ]
    weights = [30, 15, 10, 10, 10, 5, 5, 5, 5, 5]
    return rng.choices(styles, weights=weights)[0]()


def generate(items: Sequence[Item], *, seed: int = 0, p_correct: float = 0.6,
             words: int = 60, samples: int = 1) -> Iterator[dict[str, Any]]:
    """Response records (``gazal score`` input) for ``items``."""
    rng = random.Random(seed)
    for s in range(samples):
        for item in items:
            letters = list(item.options)
            if rng.random() < p_correct:
                letter = item.answer
            else:
                letter = rng.choice([x for x in letters if x != item.answer] or letters)
            yield {"id": item.id, "benchmark": item.benchmark, "options": item.options,
                   "answer": item.answer, "meta": item.meta, "sample_index": s,
                   "response": _style(rng, item, letter, words)}


def main(argv: Sequence[str] | None = None) -> int:
    """Write a sample of responses over benchmark items (or built-in items when no data)."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", required=True, help="JSONL file to write")
    p.add_argument("--data-dir", help="benchmark files (default: $GAZAL_DATA_DIR)")
    p.add_argument("--per-benchmark", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    items: list[Item] = []
    from gazal.benchmarks import benchmark_names, resolve_data_dir

    root = resolve_data_dir(args.data_dir)
    if root is not None and root.exists():
        for name in benchmark_names():
            if name == "pubmedqa_500":
                continue
            items += load_benchmark(name, root, limit=args.per_benchmark).items
    else:
        items = builtin_items() * 25
    n = atomic_write_jsonl(Path(args.out), generate(items, seed=args.seed))
    print(json.dumps({"wrote": str(args.out), "responses": n}))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
