"""SFT data: shapes, conversion into the reasoning format, validation, rejects, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gazal.data.sft_data import (
    SENTENCES_PER_STEP,
    DataSource,
    check_assistant,
    load_sft_data,
    load_source,
    reasoning_assistant,
    split_reasoning,
)
from gazal.extraction import extract_answer
from gazal.formatting import (
    FINAL_ANSWER_LINE,
    SYSTEM_PROMPT,
    parse_response,
    parse_steps,
    render_assistant,
)
from gazal.io import DataError

OPTIONS = {"A": "Gout", "B": "Septic arthritis", "C": "Pseudogout", "D": "Cellulitis"}


def o1_row(**over):
    row = {"question": "A 60-year-old man has a hot swollen first toe joint. Diagnosis?",
           "options": dict(OPTIONS), "answer_idx": "A", "answer": "Gout",
           "Question": "A man has a hot, swollen first toe joint. What is the diagnosis?",
           "Complex_CoT": "The first MTP joint is classic.\n\nUrate crystals fit.\n\n"
                          "Septic arthritis is less likely without fever.",
           "Response": "Acute gouty arthritis of the first MTP joint."}
    row.update(over)
    return row


def write_json(tmp_path, rows, name="rows.json"):
    p = tmp_path / name
    p.write_text(json.dumps(rows))
    return p


def write_jsonl(tmp_path, rows, name="rows.jsonl"):
    p = tmp_path / name
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


# --------------------------------------------------------------------------- conversion


def test_split_reasoning_paragraphs_sentences_and_existing_steps():
    assert split_reasoning("First idea\nwraps here.\n\nSecond idea.") == \
        ["First idea wraps here.", "Second idea."]
    one = "One. Two! Three? Four. Five."
    steps = split_reasoning(one)
    assert steps == ["One. Two! Three?", "Four. Five."]
    assert len(steps[0].split()) == SENTENCES_PER_STEP
    assert split_reasoning("Step 1: look\nStep 2: decide\nmore") == ["look", "decide more"]
    assert split_reasoning("   ") == []


def test_medical_o1_mcq_row_becomes_the_evaluation_prompt_and_reasoning_format(tmp_path):
    path = write_json(tmp_path, [o1_row()])
    data = load_source(DataSource(path=str(path), format="medical_o1"))
    assert not data.rejects and len(data.examples) == 1
    ex = data.examples[0]
    system, user, assistant = ex.messages
    assert system == {"role": "system", "content": SYSTEM_PROMPT}
    # the MCQ vignette with its options, not the open-ended rewrite
    assert user["content"].startswith("Question: A 60-year-old man")
    assert "A. Gout" in user["content"] and "D. Cellulitis" in user["content"]
    parsed = parse_response(assistant["content"])
    assert [b for _, b in parse_steps(parsed.thinking)] == [
        "The first MTP joint is classic.", "Urate crystals fit.",
        "Septic arthritis is less likely without fever."]
    assert parsed.answer.startswith("## Clinical Assessment\nAcute gouty arthritis")
    (final,) = FINAL_ANSWER_LINE.finditer(parsed.answer)
    assert final.group(0) == "**Final answer: (A) Gout**"
    assert extract_answer(assistant["content"], OPTIONS).letter == "A"
    assert ex.to_record().keys() == {"id", "category", "messages", "source"}
    trl = ex.to_trl(assistant_only_loss=True)
    assert trl["completion"] == [assistant] and trl["prompt"] == [system, user]
    assert ex.to_trl(assistant_only_loss=False) == {"messages": ex.messages}


def test_open_ended_medical_o1_row_has_no_answer_line_and_no_system_prompt(tmp_path):
    row = {k: v for k, v in o1_row().items() if k in ("Question", "Complex_CoT", "Response")}
    data = load_source(DataSource(path=str(write_json(tmp_path, [row]))))  # auto-detected
    (ex,) = data.examples
    assert [m["role"] for m in ex.messages] == ["user", "assistant"]
    assert ex.messages[0]["content"] == row["Question"]
    assert not FINAL_ANSWER_LINE.search(ex.messages[1]["content"])


def test_option_text_with_line_breaks_keeps_one_answer_line(tmp_path):
    row = o1_row(options={"A": "use\nof gowns", "B": "double\ngloving"}, answer="use\nof gowns")
    (ex,) = load_source(DataSource(path=str(write_json(tmp_path, [row])))).examples
    assert "**Final answer: (A) use of gowns**" in ex.messages[-1]["content"]


def test_real_medical_o1_sample_converts_without_rejects(data_dir):
    path = data_dir / "sft" / "medical_o1_demo.json"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    data = load_source(DataSource(path=str(path), format="medical_o1"))
    assert data.n_rows == 198
    assert data.reject_counts == {}
    assert len(data.examples) == 198 and len({e.id for e in data.examples}) == 198
    for ex in data.examples:
        steps = parse_steps(parse_response(ex.messages[-1]["content"]).thinking)
        assert len(steps) >= 2


def test_gazal_messages_rows_and_columns_mapping(tmp_path):
    reply = render_assistant(["Hot toe.", "Crystals."], "Gout fits.", "A", "Gout")
    gazal = {"id": "x1", "category": "diagnostic_reasoning", "source": "synth",
             "messages": [{"role": "user", "content": "Toe?"},
                          {"role": "assistant", "content": reply}]}
    share = {"conversations": [{"from": "human", "value": "Toe?"},
                               {"from": "gpt", "value": reply}]}
    other = {"input": "Toe?", "cot": "Hot toe.\n\nCrystals.", "output": "Gout fits."}
    p1 = write_jsonl(tmp_path, [gazal, share])
    p2 = write_jsonl(tmp_path, [other], "other.jsonl")
    data = load_source(DataSource(path=str(p1)))
    assert next(e.id for e in data.examples) == "x1"
    assert data.examples[0].category == "diagnostic_reasoning"
    assert data.examples[1].messages == gazal["messages"]
    mapped = load_source(DataSource(path=str(p2), format="columns",
                                    columns={"question": "input", "reasoning": "cot",
                                             "response": "output"}))
    (ex,) = mapped.examples
    assert ex.messages[0] == {"role": "user", "content": "Toe?"}
    assert parse_steps(parse_response(ex.messages[1]["content"]).thinking)[1] == (2, "Crystals.")


def test_auto_detects_prompt_and_full_reply_columns(tmp_path):
    reply = render_assistant(["Hot toe."], "Gout.", "A", "Gout")
    p = write_jsonl(tmp_path, [{"instruction": "Toe?", "output": reply}])
    (ex,) = load_source(DataSource(path=str(p))).examples
    assert ex.messages[-1]["content"] == reply


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(("text", "reason"), [
    ("no thinking at all\n\n**Final answer: (A)**", "think_tags"),
    ("<think>\nStep 1: a\n</think>\n<think>\n</think>\n**Final answer: (A)**", "think_tags"),
    ("Hello <think>\nStep 1: a\n</think>\n\n**Final answer: (A)**", "text_before_think"),
    ("<think>\njust musing\n</think>\n\n**Final answer: (A)**", "no_steps"),
    ("<think>\nStep 1: a\nStep 3: b\n</think>\n\n**Final answer: (A)**", "step_numbering"),
    ("<think>\nPreamble\nStep 1: a\n</think>\n\n**Final answer: (A)**", "text_before_first_step"),
    ("<think>\nStep 1:\nStep 2: b\n</think>\n\n**Final answer: (A)**", "empty_step"),
    ("<think>\nStep 1: a\n</think>\n\n", "empty_answer_section"),
    ("<think>\nStep 1: a\n**Final answer: (A)**\n</think>\n\nSo.\n**Final answer: (A)**",
     "final_answer_in_thinking"),
    ("<think>\nStep 1: a\n</think>\n\nGout it is.", "no_final_answer"),
    ("<think>\nStep 1: a\n</think>\n\n**Final answer: (A)**\n**Final answer: (B)**",
     "multiple_final_answers"),
    ("<think>\nStep 1: a\n</think>\n\n**Final answer: (B) Septic arthritis**", "wrong_answer"),
    ("<think>\nStep 1: a\n</think>\n\n**Final answer: Rheumatic fever**", "unextractable_answer"),
])
def test_check_assistant_rejects_with_reason(text, reason):
    with pytest.raises(Exception) as info:
        check_assistant(text, require_answer=True, options=OPTIONS, gold="A")
    assert getattr(info.value, "reason", None) == reason, info.value


def test_check_assistant_accepts_the_format():
    good = render_assistant(["Hot toe.", "Crystals."], "Gout fits.", "A", "Gout")
    check_assistant(good, require_answer=True, options=OPTIONS, gold="A")
    open_ended = reasoning_assistant("Hot toe.", "It is gout.")
    check_assistant(open_ended, require_answer=False)


def test_rejects_are_counted_by_reason_with_their_rows(tmp_path):
    rows = [o1_row(), o1_row(answer_idx="F"), o1_row(Complex_CoT="  "),
            o1_row(answer="Pseudogout"), o1_row(Response="<think>x</think>"),
            o1_row(answer_idx=None), o1_row()]
    data = load_source(DataSource(path=str(write_json(tmp_path, rows))))
    assert len(data.examples) == 2
    assert {(r.row, r.reason) for r in data.rejects} == {
        (2, "answer_not_in_options"), (3, "empty_reasoning"), (4, "answer_text_mismatch"),
        (5, "think_tag_in_text"), (6, "no_gold_answer")}
    assert data.reject_counts == {"answer_not_in_options": 1, "empty_reasoning": 1,
                                  "answer_text_mismatch": 1, "think_tag_in_text": 1,
                                  "no_gold_answer": 1}
    record = data.rejects[0].to_record()
    assert record["source"] == str(tmp_path / "rows.json") and record["row"] == 2


# --------------------------------------------------------------------------- malformed rows


def test_malformed_rows_name_the_file_and_row(tmp_path):
    bad_type = write_json(tmp_path, [o1_row(), o1_row(Complex_CoT=["a", "list"])])
    with pytest.raises(DataError, match=r"rows\.json row 2: field 'Complex_CoT': expected a "
                                        r"string, got list"):
        load_source(DataSource(path=str(bad_type), format="medical_o1"))
    missing = write_json(tmp_path, [o1_row(), {"Question": "q", "Response": "r"}], "m.json")
    with pytest.raises(DataError, match=r"m\.json row 2: field 'Complex_CoT': missing"):
        load_source(DataSource(path=str(missing), format="medical_o1"))
    jsonl = write_jsonl(tmp_path, [{"messages": [{"role": "user", "content": "q"}]},
                                   {"messages": "not a list"}])
    with pytest.raises(DataError, match=r"rows\.jsonl:2: field 'messages': expected a "
                                        r"non-empty list"):
        load_source(DataSource(path=str(jsonl)))
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps(o1_row()) + '\n{not json\n')
    with pytest.raises(DataError, match=r"broken\.jsonl:2: invalid JSON"):
        load_source(DataSource(path=str(broken)))
    unknown = write_jsonl(tmp_path, [{"foo": 1, "bar": 2}], "u.jsonl")
    with pytest.raises(DataError, match=r"u\.jsonl:1: cannot tell the shape.*bar, foo"):
        load_source(DataSource(path=str(unknown)))
    # ... or counted as rejects when the recipe says so
    data = load_source(DataSource(path=str(bad_type), format="medical_o1",
                                  on_malformed="reject"))
    assert len(data.examples) == 1 and data.reject_counts == {"malformed": 1}
    assert "row 2" in data.rejects[0].detail


def test_hub_datasets_load_through_datasets(monkeypatch):
    import datasets

    calls = []

    def fake_load_dataset(path, name=None, split=None, revision=None):
        calls.append((path, name, split, revision))
        rows = [{k: v for k, v in o1_row().items()
                 if k in ("Question", "Complex_CoT", "Response")}] * 3
        return datasets.Dataset.from_list(rows)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    source = DataSource(path="FreedomIntelligence/medical-o1-reasoning-SFT", name="en",
                        split="train", revision="abc", limit=2)
    train, evald = load_sft_data([source], [], eval_fraction=0.5, seed=1)
    assert calls == [("FreedomIntelligence/medical-o1-reasoning-SFT", "en", "train", "abc")]
    assert len(train.examples) + len(evald.examples) == 2 and len(evald.examples) == 1
    assert train.n_rows == 2

    def bad_rows(path, name=None, split=None, revision=None):
        return datasets.Dataset.from_list([{"Question": "q", "Complex_CoT": 5,
                                            "Response": "r"}])

    monkeypatch.setattr(datasets, "load_dataset", bad_rows)
    with pytest.raises(DataError, match=r"TachyHealth/structured_medical\[train\] row 1: "
                                        r"field 'Complex_CoT'"):
        load_source(DataSource(path="TachyHealth/structured_medical"))

    def missing(path, name=None, split=None, revision=None):
        raise FileNotFoundError(f"Dataset '{path}' doesn't exist on the Hub")

    monkeypatch.setattr(datasets, "load_dataset", missing)
    with pytest.raises(DataError, match=r"could not load org/typo/en \(split train, revision "
                                        r"abc\) from the Hub: Dataset 'org/typo' doesn't exist"
                                        r".*Offline\? No local file is named 'org/typo'"):
        load_source(DataSource(path="org/typo", name="en", revision="abc"))


def test_eval_split_is_seeded_and_disjoint(tmp_path):
    rows = [o1_row(Response=f"Gout, case {i}.") for i in range(20)]
    src = [DataSource(path=str(write_json(tmp_path, rows)))]
    a_train, a_eval = load_sft_data(src, eval_fraction=0.2, seed=3)
    _b_train, b_eval = load_sft_data(src, eval_fraction=0.2, seed=3)
    assert [e.id for e in a_eval.examples] == [e.id for e in b_eval.examples]
    assert len(a_eval.examples) == 4 and len(a_train.examples) == 16
    assert not {e.id for e in a_eval.examples} & {e.id for e in a_train.examples}


def test_missing_local_file_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_source(DataSource(path=str(Path(tmp_path) / "nope.json")))
