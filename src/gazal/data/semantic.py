"""Optional second decontamination stage: an LLM judge on the near misses.

n-gram rules miss rephrased copies (Yang et al. 2023, "Rethinking Benchmark and
Contamination for Language Models with Rephrased Samples", arXiv 2311.04850: an LLM judge on
the nearest benchmark item catches them). Here the first stage (the distinctive rule) already
names each example's best item and its score; examples that score at least
``semantic.candidate_score`` but under ``min_score`` are *near misses*, and only those (up to
``max_candidates``, highest scores first) are sent to a judge model through gazal's
generation backends (the teacher backends: any OpenAI-compatible server, or a local
transformers model), greedily, with :data:`JUDGE_PROMPT`. A reply starting with "yes" makes
the example contaminated (``kind: semantic``). The cost (requests, tokens, seconds, price at
the judge's prices) is reported. Off by default: on the 2-core CPU machine there is no model
to ask.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from gazal.data.config import SemanticConfig
from gazal.data.decontam import BenchmarkIndex, Match
from gazal.formatting import render_question
from gazal.generation.base import Backend, GenerationParams

__all__ = ["JUDGE_PROMPT", "SemanticResult", "judge_near_misses"]

JUDGE_PROMPT = (
    "You check training data for benchmark contamination.\n\n"
    "BENCHMARK ITEM:\n{item}\n\nTRAINING TEXT:\n{text}\n\n"
    "Does the training text contain this benchmark question itself, possibly reworded, "
    "shortened, translated or with its details reordered (the same case and the same "
    "question)? A text that is only about the same topic, disease or drug does not. Answer "
    "with one word: yes or no.")


@dataclass
class SemanticResult:
    flagged: list[int]  # indices into the near-miss list the judge said yes to
    cost: dict[str, Any] = field(default_factory=dict)


def judge_near_misses(near: list[tuple[str, Match]], index: BenchmarkIndex,
                      cfg: SemanticConfig, judge: Backend) -> SemanticResult:
    """Ask ``judge`` about each (text, first-stage match) of ``near`` (highest scores first,
    at most ``cfg.max_candidates``)."""
    order = sorted(range(len(near)), key=lambda i: -near[i][1].score)[:cfg.max_candidates]
    convs = []
    for i in order:
        text, m = near[i]
        item = index.item_of(m)
        shown = render_question(item) if item is not None else m.text
        if item is not None and item.context:
            shown = f"{item.context}\n{shown}"
        convs.append([{"role": "user", "content": JUDGE_PROMPT.format(
            item=shown, text=text[:cfg.max_chars])}])
    t0 = time.perf_counter()
    gens = judge.generate(convs, GenerationParams(max_new_tokens=8, temperature=0.0,
                                                  top_p=1.0, seed=0, thinking=False)) \
        if convs else []
    seconds = time.perf_counter() - t0
    flagged = [i for i, g in zip(order, gens, strict=True)
               if g.finish_reason != "error" and g.text.strip().lower().startswith("yes")]
    p_tok = sum(g.n_prompt_tokens or sum(len(m["content"]) for m in c) // 4
                for g, c in zip(gens, convs, strict=True))
    c_tok = sum(g.n_completion_tokens or len(g.text) // 4 for g in gens)
    j = cfg.judge
    return SemanticResult(flagged=flagged, cost={
        "model": j.model, "near_misses": len(near), "judged": len(convs),
        "not_judged": len(near) - len(convs),
        "errors": sum(g.finish_reason == "error" for g in gens), "flagged": len(flagged),
        "prompt_tokens": p_tok, "completion_tokens": c_tok, "seconds": round(seconds, 2),
        "estimated_cost": round((p_tok * j.price_input_per_1m
                                 + c_tok * j.price_output_per_1m) / 1e6, 4)})
