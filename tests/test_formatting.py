from __future__ import annotations

import pytest

from gazal.benchmarks import Item
from gazal.formatting import (
    FINAL_ANSWER_LINE,
    build_messages,
    completion_text,
    parse_response,
    parse_steps,
    render_assistant,
    render_final_answer,
    render_question,
)

ITEM = Item("x-1", "medqa", "What is it?", {"A": "Flu", "B": "Cold"}, "B")


def test_render_question_and_messages():
    text = render_question(ITEM)
    assert "Question: What is it?" in text and "A. Flu\nB. Cold" in text
    assert "Context" not in text
    ctx = Item("p-1", "pubmedqa", "Does it?", {"A": "yes", "B": "no", "C": "maybe"}, "A",
               context="Abstract text.")
    assert render_question(ctx).startswith("Context:\nAbstract text.")
    msgs = build_messages(ITEM)
    assert [m["role"] for m in msgs] == ["system", "user"]
    assert [m["role"] for m in build_messages(ITEM, system_prompt=None)] == ["user"]


def test_render_and_parse_round_trip():
    text = render_assistant(["Fever.", "", "Cough."], "Viral.", "B", "Cold")
    parsed = parse_response(text)
    assert not parsed.truncated and parsed.has_thinking
    assert parse_steps(parsed.thinking) == [(1, "Fever."), (2, "Cough.")]
    assert parsed.answer.endswith("**Final answer: (B) Cold**")
    m = FINAL_ANSWER_LINE.search(parsed.answer)
    assert m and m.group("letter") == "B" and m.group("text") == "Cold"
    assert render_final_answer(text="Cold") == "**Final answer: Cold**"
    with pytest.raises(ValueError):
        render_final_answer()
    with pytest.raises(ValueError):
        render_assistant(["", " "], "x", "A")


def test_parse_response_cases():
    assert parse_response("<think>abc").truncated
    p = parse_response("no tags here")
    assert p.thinking is None and p.answer == "no tags here" and not p.truncated
    p = parse_response("reasoning</think>\n\nAnswer")
    assert p.thinking == "reasoning" and p.answer == "Answer"
    p = parse_response("<think>a</think>x<think>b</think>y")
    assert p.answer == "y"


def test_multiline_steps():
    steps = parse_steps("Step 1: first\ncontinued\nStep 2. second\n  Step 3) third")
    assert steps == [(1, "first\ncontinued"), (2, "second"), (3, "third")]


def test_completion_text_accepts_conversational():
    assert completion_text("x") == "x"
    assert completion_text([{"role": "assistant", "content": "hi"}]) == "hi"


def test_qwen3_chat_template_renders_thinking(tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    msgs = build_messages(ITEM)
    prompt = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True,
                                     enable_thinking=True)
    assert prompt.endswith("<|im_start|>assistant\n")
    full = tok.apply_chat_template(
        [*msgs, {"role": "assistant", "content": render_assistant(["a"], "b", "B")}],
        tokenize=False)
    assert "<think>\nStep 1: a\n</think>\n\n## Clinical Assessment" in full
