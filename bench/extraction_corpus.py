"""Which extraction rule decides how often, and how often nothing is extracted, on a mixed corpus.

Sources, each reported on its own:

* ``cases``: ``tests/data/extraction_cases.jsonl``, responses written in the styles public LLMs
  use (with the expected letter, so agreement is printed too);
* ``sample``: ``gazal.demo.sample_responses`` over the real benchmark items (the mix
  ``bench/score_throughput.py`` scores: gazal's format, "The answer is (C).", boxed, bare
  letters, option texts, hedges, truncated thinking);
* ``medical_o1``: the 198 GPT-4o style responses of ``sft/medical_o1_demo.json`` (real model
  text that answers the open-ended form of each question, scored against its MCQ options:
  most of them name no option, so a high no-answer rate is the honest result there).

Needs ``$GAZAL_DATA_DIR`` (or ``--data-dir``) for the last two.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from gazal.benchmarks import benchmark_names, load_benchmark, resolve_data_dir
from gazal.demo.sample_responses import generate
from gazal.extraction import NO_ANSWER, RULES, extract_answer

CASES = Path(__file__).resolve().parents[1] / "tests" / "data" / "extraction_cases.jsonl"


def report(name: str, rows: list[tuple[str, dict, str | None]]) -> None:
    """rows: (response, options, expected letter or None when unknown)."""
    rules: Counter[str] = Counter()
    agree = known = 0
    for response, options, expected in rows:
        got = extract_answer(response, options)
        rules[got.rule] += 1
        if expected != "?":
            known += 1
            agree += got.letter == expected
    n = len(rows)
    missing = sum(rules[r] for r in NO_ANSWER)
    print(f"\n{name}: {n:,} responses, no answer {missing / n:.1%}"
          + (f", agrees with the expected letter {agree / known:.1%}" if known else ""))
    for rule in (*RULES, *NO_ANSWER):
        if rules[rule]:
            print(f"  {rule:15} {rules[rule]:6,}  {rules[rule] / n:6.1%}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data-dir", help="benchmark files (default: $GAZAL_DATA_DIR)")
    p.add_argument("-n", type=int, default=10_000, help="sample responses to generate")
    args = p.parse_args()

    with CASES.open(encoding="utf-8") as f:
        cases = [json.loads(line) for line in f]
    report("cases", [(c["response"], c["options"], c["letter"]) for c in cases])

    root = resolve_data_dir(args.data_dir)
    if root is None or not root.exists():
        print("\n(no data dir: sample and medical_o1 skipped)")
        return
    items = []
    for name in benchmark_names():
        if name != "pubmedqa_500":
            items += load_benchmark(name, root).items
    items = (items * (args.n // len(items) + 1))[: args.n]
    report("sample", [(r["response"], r["options"], "?") for r in generate(items, seed=0)])

    o1 = json.loads((root / "sft" / "medical_o1_demo.json").read_text(encoding="utf-8"))
    rows = [(r["Response"], r["options"], "?") for r in o1]
    report("medical_o1", rows)
    extracted = [(extract_answer(r["Response"], r["options"]).letter, r["answer_idx"]) for r in o1]
    hits = [(got, gold) for got, gold in extracted if got is not None]
    if hits:
        right = sum(got == gold for got, gold in hits)
        print(f"  of the {len(hits)} extracted, {right} equal the gold letter")


if __name__ == "__main__":
    main()
