"""Response records (DESIGN.md's data contract): one per item and sample, scored with the one
extractor, so ``gazal score responses.jsonl`` reproduces ``gazal eval``'s numbers exactly."""

from __future__ import annotations

from typing import Any

from gazal.benchmarks import Item
from gazal.eval.score import score_response
from gazal.generation.base import Generation

__all__ = ["RECORD_FIELDS", "response_record"]

RECORD_FIELDS = ("id", "benchmark", "question", "options", "answer", "context", "meta",
                 "response", "extracted", "correct", "truncated", "n_prompt_tokens",
                 "n_completion_tokens", "extraction_rule", "sample_index", "finish_reason")


def response_record(item: Item, sample_index: int, gen: Generation) -> dict[str, Any]:
    """The item's fields plus the response and its score.

    ``truncated`` is true when the thinking never closed or the generation was cut at its
    token limit (``finish_reason == "length"``); ``gazal score`` keeps an input
    ``truncated: true``, so both agree.
    """
    scored = score_response(gen.text, item.options, item.answer)
    record = item.to_dict()
    record.update(
        response=gen.text,
        extracted=scored["extracted"],
        correct=scored["correct"],
        truncated=bool(scored["truncated"] or gen.finish_reason == "length"),
        n_prompt_tokens=gen.n_prompt_tokens,
        n_completion_tokens=gen.n_completion_tokens,
        extraction_rule=scored["extraction_rule"],
        sample_index=sample_index,
        finish_reason=gen.finish_reason,
    )
    return record
