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
records as an uninterrupted one. On vllm, whose requests are independent, each request has
its own seed and only the missing ones are sent. The openai backend cannot continue a
response from token ids, so forcing is refused there.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
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
                seed_of: Callable[[int], int],
                seed_of_request: Callable[[Key], int] | None = None
                ) -> dict[Key, dict[str, Any]]:
    """Generate (or read back) the forced continuations of ``records`` that need one;
    returns them by (id, sample_index). ``get_backend()`` is called only when some are
    missing (a finished run loads no model). ``seed_of(batch)`` seeds a batch (hf);
    ``seed_of_request((id, sample))`` a request of a backend that samples per request
    (vllm)."""
    todo = [r for r in records if needs_forcing(r)]
    if seed_of_request is None:
        def seed_of_request(key: Key) -> int:  # stable across processes, unlike hash()
            digest = hashlib.sha256(json.dumps(list(key)).encode("utf-8")).digest()
            return seed_of(int.from_bytes(digest[:4], "big") & 0x7FFFFFFF)
    with ResumableJsonlWriter(run_dir / FORCED_FILE) as writer:
        done = {(r["id"], r["sample_index"]): r for r in writer.records}
        if any((r["id"], r["sample_index"]) not in done for r in todo):
            backend = get_backend()
            batching = isinstance(backend, BatchingBackend)
            if not hasattr(backend, "tokenizer") or not (
                    batching or hasattr(backend, "generate_ids")):
                raise ValueError("budget forcing needs a backend that generates from token "
                                 "ids (hf, vllm)")
            fparams = dataclasses.replace(params, max_new_tokens=answer_tokens)
            ids = []
            for r in todo:
                key = (r["id"], r["sample_index"])
                prompt = backend.prompt_ids([conversations[key]], params)[0]
                tail = backend.tokenizer(r["response"] + FORCE_SUFFIX,
                                         add_special_tokens=False)["input_ids"]
                ids.append(list(prompt) + list(tail))
            keys = [(r["id"], r["sample_index"]) for r in todo]

            def accept(key: Key, gen: Any) -> None:
                rec = {"id": key[0], "sample_index": key[1], "continuation": gen.text,
                       "n_forced_tokens": gen.n_completion_tokens,
                       "finish_reason": gen.finish_reason}
                writer.append(rec)
                done[key] = rec

            if batching:
                # As the main pass: whole planned batches, one seeded stream per batch.
                for b, batch in enumerate(backend.plan_batches([len(x) for x in ids],
                                                               fparams)):
                    if all(keys[i] in done for i in batch):
                        continue
                    gens = backend.generate_batch(
                        [ids[i] for i in batch], dataclasses.replace(fparams, seed=seed_of(b)))
                    for i, gen in zip(batch, gens, strict=True):
                        if keys[i] not in done:
                            accept(keys[i], gen)
            else:
                # Independent requests (vllm): only the missing ones, each its own seed.
                missing = [i for i in range(len(todo)) if keys[i] not in done]
                step = max(1, backend.chunk_size)
                for start in range(0, len(missing), step):
                    chunk = missing[start:start + step]
                    backend.generate_ids(
                        [ids[i] for i in chunk], fparams,
                        seeds=[seed_of_request(keys[i]) for i in chunk],
                        on_result=lambda j, gen, chunk=chunk: accept(keys[chunk[j]], gen))
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
