"""Budget forcing: give a response that ran out of thinking budget a chance to answer.

A response that reaches ``max_new_tokens`` (the thinking budget) with its thinking still open
extracts to nothing and is wrong. With ``force_answer_tokens: N`` the runner then appends
``</think>`` and gazal's final-answer prefix (``**Final answer: (``) to that response and
lets the model write up to N more tokens, the budget forcing of s1 (Muennighoff et al. 2025,
"s1: Simple test-time scaling") and m1 (Huang et al. 2025, medical test-time scaling).

The forced answer is reported *beside* the unforced one, never instead of it: the record
keeps ``response``, ``extracted`` and ``correct`` as generated and gains ``forced_answer``
(the appended prefix plus the model's continuation), ``forced_extracted``,
``forced_correct`` and ``n_forced_tokens``; ``summary.json``'s ``forcing`` and
``results.md``'s *Budget forcing* table give both accuracies.

Resume. The continuations are saved to ``forced.jsonl`` as they finish, batch by batch; the
batches are planned over the responses that need forcing in the fixed order, and a batch cut
short is generated again as a whole (as in the main pass), so a resumed run gives the same
records as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from gazal.eval.score import score_response
from gazal.formatting import THINK_CLOSE
from gazal.generation.base import BatchingBackend, Conversation, GenerationParams
from gazal.io import ResumableJsonlWriter

__all__ = ["FORCED_FILE", "FORCE_SUFFIX", "apply_forcing", "forcing_summary", "needs_forcing",
           "run_forcing"]

FORCED_FILE = "forced.jsonl"
# What is appended to a response whose thinking ran out: close the thinking and open the
# canonical final-answer line, so the next tokens are the letter (and the option text).
FORCE_SUFFIX = f"\n{THINK_CLOSE}\n\n**Final answer: ("

Key = tuple[str, int]


def needs_forcing(record: Mapping[str, Any]) -> bool:
    """A response cut at its token limit with its thinking still open."""
    return record.get("finish_reason") == "length" and THINK_CLOSE not in (
        record.get("response") or "")


def run_forcing(records: Sequence[Mapping[str, Any]],
                conversations: Mapping[Key, Conversation], get_backend: Callable[[], Any],
                params: GenerationParams, answer_tokens: int, run_dir: Path,
                seed_of: Callable[[int], int]) -> dict[Key, dict[str, Any]]:
    """Generate (or read back) the forced continuations of ``records`` that need one;
    returns them by (id, sample_index). ``get_backend()`` is called only when some are
    missing (a finished run loads no model)."""
    todo = [r for r in records if needs_forcing(r)]
    with ResumableJsonlWriter(run_dir / FORCED_FILE) as writer:
        done = {(r["id"], r["sample_index"]): r for r in writer.records}
        if any((r["id"], r["sample_index"]) not in done for r in todo):
            backend = get_backend()
            if not isinstance(backend, BatchingBackend) or not hasattr(backend, "tokenizer"):
                raise ValueError("budget forcing needs a backend that generates from token "
                                 "ids (the hf backend)")
            fparams = dataclasses.replace(params, max_new_tokens=answer_tokens)
            ids = []
            for r in todo:
                key = (r["id"], r["sample_index"])
                prompt = backend.prompt_ids([conversations[key]], params)[0]
                tail = backend.tokenizer(r["response"] + FORCE_SUFFIX,
                                         add_special_tokens=False)["input_ids"]
                ids.append(list(prompt) + list(tail))
            for b, batch in enumerate(backend.plan_batches([len(x) for x in ids], fparams)):
                keys = [(todo[i]["id"], todo[i]["sample_index"]) for i in batch]
                if all(k in done for k in keys):
                    continue
                gens = backend.generate_batch([ids[i] for i in batch],
                                              dataclasses.replace(fparams, seed=seed_of(b)))
                for key, gen in zip(keys, gens, strict=True):
                    if key in done:
                        continue
                    rec = {"id": key[0], "sample_index": key[1], "continuation": gen.text,
                           "n_forced_tokens": gen.n_completion_tokens,
                           "finish_reason": gen.finish_reason}
                    writer.append(rec)
                    done[key] = rec
    wanted = {(r["id"], r["sample_index"]) for r in todo}
    return {k: v for k, v in done.items() if k in wanted}


def apply_forcing(record: dict[str, Any], forced: Mapping[str, Any] | None) -> dict[str, Any]:
    """The record with its forced answer scored (unforced fields untouched); a record that
    needed no forcing gets ``forced_answer: null`` and its own result as the forced one."""
    out = dict(record)
    if forced is None:
        out.update(forced_answer=None, forced_extracted=record.get("extracted"),
                   forced_correct=record.get("correct"), n_forced_tokens=0)
        return out
    answer = FORCE_SUFFIX + forced["continuation"]
    scored = score_response(record["response"] + answer, record["options"], record["answer"])
    out.update(forced_answer=answer, forced_extracted=scored["extracted"],
               forced_correct=scored["correct"], n_forced_tokens=forced["n_forced_tokens"])
    return out


def _stats(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    n = len(records)
    forced = [r for r in records if r.get("forced_answer") is not None]
    return {"n": n, "forced": len(forced), "forced_share": len(forced) / n if n else 0.0,
            "forced_correct": sum(bool(r.get("forced_correct")) for r in forced),
            "accuracy_unforced": sum(bool(r.get("correct")) for r in records) / n if n else 0.0,
            "accuracy_with_forcing": sum(bool(r.get("forced_correct")) for r in records) / n
            if n else 0.0}


def forcing_summary(records: Sequence[Mapping[str, Any]], answer_tokens: int
                    ) -> dict[str, Any]:
    """Overall and per-benchmark counts and both accuracies."""
    by: dict[str, list[Mapping[str, Any]]] = {}
    for r in records:
        by.setdefault(str(r.get("benchmark")), []).append(r)
    return {"answer_tokens": answer_tokens, **_stats(records),
            "benchmarks": {name: _stats(v) for name, v in by.items()}}
