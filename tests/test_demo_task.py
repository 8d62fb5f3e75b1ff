from __future__ import annotations

from collections import Counter

from gazal.demo.task import (
    CATEGORIES,
    CONDITIONS,
    TEMPLATES,
    build_questions,
    pretraining_texts,
    reasoning_trace,
    sft_example,
)
from gazal.extraction import extract_answer
from gazal.formatting import parse_response, parse_steps


def test_splits_use_disjoint_phrasings():
    train, held = build_questions("train"), build_questions("heldout")
    assert Counter(q.category for q in held) == {c: 4 * len(CONDITIONS) for c in CATEGORIES}
    train_prompts = {q.item.question for q in train}
    assert not train_prompts & {q.item.question for q in held}
    for cat in CATEGORIES:
        stems = [t.split("{")[0] for t in TEMPLATES[cat]["heldout"]]
        assert not any(q.item.question.startswith(s) for q in train for s in stems if s)


def test_traces_are_in_the_format_and_extract_to_the_gold_letter():
    for q in build_questions("train") + build_questions("heldout"):
        text = reasoning_trace(q)
        parsed = parse_response(text)
        assert not parsed.truncated and len(parse_steps(parsed.thinking)) >= 2
        assert extract_answer(text, q.item.options).letter == q.item.answer


def test_options_are_distinct_and_answers_balanced():
    qs = build_questions("train", per_template=3, seed=5)
    assert all(len(set(q.item.options.values())) == 4 for q in qs)
    counts = Counter(q.item.answer for q in qs)
    assert min(counts.values()) > 0.15 * len(qs)  # shuffled, not always A
    assert len({q.item.id for q in qs}) == len(qs)


def test_seeded_and_sft_shape():
    a = build_questions("train", seed=1)
    assert [q.item.id for q in a] == [q.item.id for q in build_questions("train", seed=1)]
    assert [q.item.id for q in a] != [q.item.id for q in build_questions("train", seed=2)]
    ex = sft_example(a[0])
    assert [m["role"] for m in ex["messages"]] == ["system", "user", "assistant"]
    assert ex["category"] in CATEGORIES


def test_pretraining_paragraphs_hold_every_fact():
    texts = pretraining_texts(len(CONDITIONS), seed=0)
    for c, t in zip(CONDITIONS, texts, strict=True):
        low = t.lower()
        assert c.treatment.lower() in low and c.prognosis.lower() in low
        assert all(f.lower() in low for f in c.findings)
