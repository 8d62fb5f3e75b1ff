"""GRPO reward throughput: 10,000 completions of ~2,000 tokens (goal: under 5 s here).

Side by side in one run, over the same completions, called the way TRL calls reward functions
(batches of 512 with ``prompts``, ``completion_ids``, ``answer`` and ``options``):

- baseline: the shared extractor alone (``extract_answer`` + comparison with the gold letter),
  the least any accuracy reward must do;
- gazal: the full combined reward (accuracy, format, length, repetition, structure, with
  every gate), one shared analysis per batch;
- gazal without the shared analysis (each of the five components parses the batch itself),
  to show what sharing saves.

Completions are synthetic clinical reasoning in gazal's format (~1,100 words of numbered
steps over a medical vocabulary), mixed as a GRPO batch is: valid correct and wrong answers,
malformed final lines, answers left in the thinking, truncated and padded generations. Token
ids come from the real Qwen3 tokenizer when ``../shared/assets/qwen3-tokenizer`` (or
``$GAZAL_ASSETS_DIR/qwen3-tokenizer``) exists, else from gazal's tiny demo tokenizer; a
finished generation ends with the EOS id, as TRL's ids do. Tokenizing is not timed.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

from gazal.benchmarks.builtin import builtin_items
from gazal.extraction import extract_answer
from gazal.formatting import SYSTEM_PROMPT, build_messages, render_question
from gazal.rewards import RewardConfig, build_reward_functions

BATCH = 512
VOCAB_EXTRA = ["patient", "presents", "with", "acute", "chronic", "pain", "fever", "tachycardia", "hypotension", "dyspnoea", "cough", "sputum", "haemoptysis", "jaundice", "ascites", "oedema", "rash", "pruritus", "headache", "vomiting", "diarrhoea", "renal", "hepatic", "cardiac", "pulmonary", "neurological", "endocrine", "haematological", "infectious", "inflammatory", "ischaemic", "neoplastic", "autoimmune", "congenital", "metabolic", "toxic", "traumatic", "suggests", "indicates", "excludes", "supports", "argues", "against", "because", "therefore", "however", "although", "likely", "unlikely", "consistent", "inconsistent", "finding", "examination", "history", "laboratory", "imaging", "ultrasound", "radiograph", "computed", "tomography", "biopsy", "culture", "serology", "troponin", "lactate", "creatinine", "sodium", "potassium", "bilirubin", "lipase", "amylase", "haemoglobin", "platelets", "leukocytosis", "management", "treatment", "first-line", "contraindicated", "dose", "antibiotic", "anticoagulation", "surgery", "resuscitation", "fluids", "insulin", "steroids", "monitoring", "referral", "prognosis", "complication", "mechanism", "pathophysiology", "receptor", "enzyme", "deficiency", "obstruction", "perforation", "infarction", "the", "a", "an", "of", "in", "on", "with", "without", "after", "before", "during", "is", "are", "was", "were", "be", "this", "that", "which"]


def assets_tokenizer() -> Path | None:
    candidates = [Path(os.environ.get("GAZAL_ASSETS_DIR", "")) / "qwen3-tokenizer",
                  Path(__file__).resolve().parents[2] / "shared" / "assets" / "qwen3-tokenizer",
                  Path("/work/shared/assets/qwen3-tokenizer")]
    return next((c for c in candidates if (c / "tokenizer.json").exists()), None)


def load_tokenizer() -> tuple[Any, str]:
    from transformers import AutoTokenizer

    path = assets_tokenizer()
    if path is not None:
        return AutoTokenizer.from_pretrained(str(path)), f"Qwen3 ({path})"
    from gazal.demo.tiny import build_tokenizer

    return build_tokenizer(vocab_size=2048), "gazal tiny demo tokenizer (no Qwen3 assets)"


def sentence(rng: random.Random, vocab: list[str]) -> str:
    words = [rng.choice(vocab) for _ in range(rng.randint(10, 22))]
    return " ".join(words).capitalize() + "."


def completion(rng: random.Random, item: Any, vocab: list[str], words: int) -> tuple[str, bool]:
    """One completion and whether it finished (False: cut at the token limit)."""
    letters = list(item.options)
    kind = rng.choices(["correct", "wrong", "no_final", "two_finals", "in_thinking", "hedged",
                        "truncated", "padded"], weights=[40, 30, 5, 5, 5, 5, 5, 5])[0]
    steps, n = [], 0
    while n < words:
        s = " ".join(sentence(rng, vocab) for _ in range(rng.randint(2, 5)))
        steps.append(s)
        n += len(s.split())
    if kind == "padded":
        steps = steps[:3] + [steps[0]] * (len(steps) - 3)
    letter = item.answer if kind in ("correct", "padded") else rng.choice(letters)
    thinking = "<think>\n" + "\n".join(f"Step {i}: {s}" for i, s in enumerate(steps, 1))
    if kind == "truncated":
        return thinking, False
    if kind == "in_thinking":
        thinking += f"\nStep {len(steps) + 1}: So the answer is ({letter})."
    final = f"**Final answer: ({letter}) {item.options[letter]}**"
    if kind == "two_finals":
        final = f"**Final answer: ({letters[0]})**\n" + final
    if kind == "hedged":
        final = f"**Final answer: ({letters[0]}) or ({letters[1]})**"
    if kind == "no_final":
        final = ""
    body = f"\n</think>\n\n## Clinical Assessment\n{sentence(rng, vocab)}\n\n{final}"
    return thinking + body, True


def timed(fn: Any, repeats: int) -> tuple[float, float]:
    """Best of ``repeats`` (wall seconds, CPU seconds of this process). The machine is shared:
    the best run is the least disturbed, and CPU time leaves out the time other jobs held the
    cores (the work is single-threaded), so it estimates the wall time of a quiet machine."""
    best_wall = best_cpu = float("inf")
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        best_wall = min(best_wall, time.perf_counter() - w)
        best_cpu = min(best_cpu, time.process_time() - c)
    return best_wall, best_cpu


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("-n", type=int, default=10_000, help="completions (default 10,000)")
    p.add_argument("--words", type=int, default=1100, help="words of thinking per completion")
    p.add_argument("--repeats", type=int, default=3, help="timed runs; the best is reported")
    args = p.parse_args()

    rng = random.Random(0)
    items = builtin_items()
    vocab = sorted(w for w in {w.lower().strip(".,?:;()'") for it in items
                               for w in render_question(it).split()} | set(VOCAB_EXTRA)
                   | {w.lower().strip(".,'") for w in SYSTEM_PROMPT.split()}
                   if w.isalpha() or "-" in w)
    rows = []
    for i in range(args.n):
        it = items[i % len(items)]
        text, finished = completion(rng, it, vocab, args.words)
        rows.append((it, text, finished))
    texts = [r[1] for r in rows]

    tok, tok_name = load_tokenizer()
    t = time.perf_counter()
    ids = tok(texts, add_special_tokens=False)["input_ids"]
    eos = tok.eos_token_id
    ids = [[*x, eos] if finished else x for x, (_, _, finished) in zip(ids, rows, strict=True)]
    tokenize_s = time.perf_counter() - t
    n_tokens = [len(x) for x in ids]

    cfg = RewardConfig()
    cfg.length.max_tokens = max(n_tokens) + 1  # like max_completion_length: nothing over it
    batches = []
    for s in range(0, args.n, BATCH):
        chunk = rows[s:s + BATCH]
        batches.append({
            "completions": texts[s:s + BATCH],
            "prompts": [build_messages(it) for it, _, _ in chunk],
            "completion_ids": ids[s:s + BATCH],
            "answer": [it.answer for it, _, _ in chunk],
            "options": [dict(it.options) for it, _, _ in chunk],
        })

    def baseline() -> None:
        for b in batches:
            [extract_answer(c, o).letter == a
             for c, o, a in zip(b["completions"], b["options"], b["answer"], strict=True)]

    def run_rewards(cache: bool) -> Any:
        def go() -> None:
            funcs, _ = build_reward_functions(cfg, tok, cache=cache)
            for b in batches:
                cols = dict(b)  # TRL builds new lists per step; the functions share them
                for f in funcs:
                    f(**cols)
        return go

    gates: Counter[str] = Counter()
    funcs, _ = build_reward_functions(cfg, tok)
    for b in batches:
        funcs[0](**b)
        gates.update(a.gate for a in funcs[0].analyzer.batch(b["completions"], b))

    base_s = timed(baseline, args.repeats)
    full_s = timed(run_rewards(True), args.repeats)
    uncached_s = timed(run_rewards(False), args.repeats)

    print(f"completions: {args.n:,}; tokens per completion: mean "
          f"{statistics.mean(n_tokens):,.0f}, min {min(n_tokens):,}, max {max(n_tokens):,} "
          f"({tok_name}; tokenizing took {tokenize_s:.1f} s, not timed)")
    print("gates: " + ", ".join(f"{k} {v}" for k, v in gates.most_common()))
    print(f"{'what':58s} {'wall s':>7s} {'CPU s':>7s} {'per CPU s':>10s}")
    for name, (wall, cpu) in [
            ("baseline: extract_answer + compare (accuracy floor)", base_s),
            ("gazal: full combined reward (5 components, all gates)", full_s),
            ("gazal without the shared analysis (each parses alone)", uncached_s)]:
        print(f"{name:58s} {wall:7.2f} {cpu:7.2f} {args.n / cpu:10,.0f}")
    scale = 10_000 / args.n
    print(f"full reward / extraction floor: {full_s[1] / base_s[1]:.2f}x (CPU); the shared "
          f"analysis saves {uncached_s[1] / full_s[1]:.2f}x")
    print(f"per 10,000 completions: {full_s[0] * scale:.2f} s wall, {full_s[1] * scale:.2f} s "
          f"CPU; goal < 5 s: {'met' if full_s[0] * scale < 5 else 'NOT met'} (wall), "
          f"{'met' if full_s[1] * scale < 5 else 'NOT met'} (CPU)")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
