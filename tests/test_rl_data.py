"""RL data: sources and schemas, column mapping, Hub loading (monkeypatched), option
shuffling, the overlap check, TRL rows the rewards can read."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from gazal.benchmarks.item import Item
from gazal.config import ConfigError
from gazal.data.rl_data import (
    RLSource,
    check_overlap,
    load_rl_items,
    load_source_items,
    overlap_key,
    resolve_answer,
    sample_items,
    shuffle_options,
    split_options_from_text,
    to_trl_rows,
)
from gazal.formatting import SYSTEM_PROMPT, build_messages
from gazal.io import DataError

OPTS = {"A": "acute cholecystitis", "B": "appendicitis", "C": "pancreatitis",
        "D": "peptic ulcer"}


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def item(i: int, question: str | None = None, answer: str = "A", options=None) -> Item:
    return Item(f"t-{i}", "t", question or f"Question number {i} about the right upper "
                "quadrant pain?", dict(options or OPTS), answer)


# --------------------------------------------------------------------------- schemas


def test_benchmark_schemas_and_generic_columns_from_local_files(tmp_path):
    medqa = _jsonl(tmp_path / "medqa.jsonl", [
        {"question": "Fever and RUQ pain?", "options": OPTS, "answer": "acute cholecystitis",
         "answer_idx": "A", "meta_info": "step1"}])
    generic = _jsonl(tmp_path / "gen.jsonl", [
        {"input": "Which drug first?", "choices": ["aspirin", "heparin", "warfarin"],
         "target": 1, "uid": "q1"},
        {"input": "Which test?", "choices": '["ECG", "CT"]', "target": "CT"}])
    per_col = _jsonl(tmp_path / "cols.jsonl", [
        {"stem": "Vitamin K deficiency causes?", "o1": "bleeding", "o2": "rickets",
         "o3": "scurvy", "gold": "(A)"}])
    a = load_source_items(RLSource(path=str(medqa)))
    assert a[0].answer == "A" and a[0].meta == {"step": "step1"}
    b = load_source_items(RLSource(path=str(generic), columns={"question": "input",
                                                               "answer": "target"}))
    assert [(x.question, x.answer) for x in b] == [("Which drug first?", "B"),
                                                    ("Which test?", "B")]
    assert b[0].options == {"A": "aspirin", "B": "heparin", "C": "warfarin"}
    assert b[0].meta == {"source_id": "q1"}
    c = load_source_items(RLSource(path=str(per_col), columns={"question": "stem"},
                                   option_columns=["o1", "o2", "o3"]))
    assert c[0].options["C"] == "scurvy" and c[0].answer == "A"
    # ids are content-derived and stable
    assert b[0].id == load_source_items(RLSource(path=str(generic), columns={
        "question": "input", "answer": "target"}))[0].id


def test_options_inside_the_question_text_and_answer_formats():
    text = ("A 30-year-old has fever.\nWhich is the diagnosis?\nA. flu\nB) measles\n"
            "C: mumps\n(D) rubella")
    q, opts = split_options_from_text(text)
    assert q == "A 30-year-old has fever.\nWhich is the diagnosis?"
    assert opts == {"A": "flu", "B": "measles", "C": "mumps", "D": "rubella"}
    assert split_options_from_text("No options here.") is None
    assert split_options_from_text("Pick:\nA. one\nC. three") is None  # not A, B, ...
    for value, fmt, want in [("C", "auto", "C"), ("(b)", "auto", "B"), ("Answer: D", "auto", "D"),
                             ("The answer is (A)", "auto", "A"), (2, "auto", "C"),
                             (2, "index1", "B"), ("4", "index1", "D"), ("Mumps", "auto", "C"),
                             ("mumps.", "text", "C")]:
        assert resolve_answer(value, opts, fmt) == want, (value, fmt)
    with pytest.raises(ValueError, match=r"outside 1\.\.4"):
        resolve_answer(0, opts, "index1")
    with pytest.raises(ValueError, match="cannot read the gold option"):
        resolve_answer("smallpox", opts)
    with pytest.raises(ValueError, match="expected one of the letters"):
        resolve_answer("E", opts, "letter")


def test_malformed_rows_name_file_row_and_field_or_are_skipped(tmp_path):
    path = _jsonl(tmp_path / "bad.jsonl", [
        {"question": "Q1?", "options": ["a", "b"], "answer": "A"},
        {"question": "Q2?", "options": ["a", "b"], "answer": "Z"},
        {"question": "Q3?", "answer": "A"}])
    with pytest.raises(DataError, match=r"bad\.jsonl:2: field 'answer': .*'Z'"):
        load_source_items(RLSource(path=str(path), schema="columns"))
    skipped: list = []
    items = load_source_items(RLSource(path=str(path), schema="columns", on_malformed="skip"),
                              skipped=skipped)
    assert [i.question for i in items] == ["Q1?"]
    assert [(s["row"], s["field"]) for s in skipped] == [("2", "answer"), ("3", "options")]
    with pytest.raises(DataError, match="data file not found"):
        load_source_items(RLSource(path=str(tmp_path / "missing.jsonl")))
    with pytest.raises(Exception, match="unknown gazal field"):
        RLSource(path="x.jsonl", columns={"stem": "q"})


# --------------------------------------------------------------------------- Hub


class _FakeHub:
    """``datasets.load_dataset`` for the Hub sets gazal knows, offline."""

    def __init__(self, tables):
        self.tables, self.calls = tables, []

    def __call__(self, path, name=None, split=None, revision=None, **kw):
        from datasets import Dataset

        self.calls.append((path, name, split, revision))
        if path not in self.tables:
            raise FileNotFoundError(f"Dataset '{path}' doesn't exist on the Hub")
        return Dataset.from_list(self.tables[path])


def test_hub_sets_load_with_presets_detection_and_column_mapping(monkeypatch):
    import datasets

    hub = _FakeHub({
        "GBaker/MedQA-USMLE-4-options": [
            {"question": "RUQ pain and fever?", "options": OPTS, "answer": "acute cholecystitis",
             "answer_idx": "A", "meta_info": "step2&3"}],
        "openlifescienceai/medmcqa": [
            {"id": "m1", "question": "Vitamin K?", "opa": "bleeding", "opb": "rickets",
             "opc": "scurvy", "opd": "beriberi", "cop": 0, "subject_name": "Biochem"}],
        # TachyHealth/medical_grpo: schema not known offline; two plausible shapes
        "TachyHealth/medical_grpo": [
            {"prompt": "Which drug treats croup?\nA. dexamethasone\nB. insulin\nC. aspirin",
             "solution": "A"}],
        "org/other_grpo": [{"problem": "Which?", "answer_options": ["x", "y"],
                            "correct": "y"}],
    })
    monkeypatch.setattr(datasets, "load_dataset", hub)
    medqa = load_source_items(RLSource(path="GBaker/MedQA-USMLE-4-options"))
    assert medqa[0].answer == "A" and medqa[0].meta["step"] == "step2&3"
    medmcqa = load_source_items(RLSource(path="openlifescienceai/medmcqa"))
    assert medmcqa[0].options["A"] == "bleeding" and medmcqa[0].meta["subject_name"] == "Biochem"
    tachy = load_source_items(RLSource(path="TachyHealth/medical_grpo"))
    assert tachy[0].question == "Which drug treats croup?"
    assert tachy[0].options == {"A": "dexamethasone", "B": "insulin", "C": "aspirin"}
    assert tachy[0].answer == "A"
    other = load_source_items(RLSource(path="org/other_grpo", split="train", revision="abc",
                                       columns={"options": "answer_options",
                                                "answer": "correct"}))
    assert other[0].answer == "B" and other[0].question == "Which?"
    assert hub.calls[-1] == ("org/other_grpo", None, "train", "abc")
    with pytest.raises(DataError, match=r"could not load org/missing .*Offline"):
        load_source_items(RLSource(path="org/missing"))
    with pytest.raises(DataError, match="no answer column"):
        load_source_items(RLSource(path="org/other_grpo", columns={"options": "answer_options"}))


def test_benchmark_and_task_file_sources(data_dir, toy_task_files):
    medqa = load_source_items(RLSource(path="benchmark:medqa", limit=5), data_dir)
    assert len(medqa) == 5 and medqa[0].benchmark == "medqa"
    from gazal.demo.task import build_questions

    held = load_source_items(RLSource(path=str(toy_task_files[1])))
    assert [(it.question, it.options, it.answer) for it in held] == [
        (q.item.question, q.item.options, q.item.answer) for q in build_questions("heldout")]
    assert len(held) == 320 and held[0].benchmark == "heldout"


def test_an_unknown_source_kind_is_named():
    with pytest.raises(ConfigError, match=r"'toy:heldout': unknown source kind 'toy:'"):
        load_source_items(RLSource(path="toy:heldout"))


# --------------------------------------------------------------------------- shuffling


def test_option_shuffle_is_seeded_and_remaps_the_gold_letter(toy_task_files):
    items = [item(i) for i in range(200)]  # gold always A
    shuffled = [shuffle_options(it, seed=7) for it in items]
    assert [s.options for s in shuffled] == [shuffle_options(it, 7).options for it in items]
    assert any(s.options != t.options for s, t in zip(shuffled, items, strict=True))
    for s, it in zip(shuffled, items, strict=True):
        assert s.answer_text == it.answer_text == "acute cholecystitis"
        assert sorted(s.options.values()) == sorted(it.options.values())
        assert s.meta["original_answer"] == "A"
    counts = Counter(s.answer for s in shuffled)
    assert set(counts) == set("ABCD") and min(counts.values()) > 30  # no longer all A
    assert [s.options for s in shuffled] != [shuffle_options(it, 8).options for it in items]
    positional = item(1, options={"A": "fever", "B": "rash", "C": "both A and B",
                                  "D": "none of the above"}, answer="C")
    assert shuffle_options(positional, 7) is positional
    loaded = load_rl_items([RLSource(path=str(toy_task_files[0]))], shuffle=True, seed=3)
    assert loaded.shuffled + loaded.kept_order == len(loaded.items) == 640


# --------------------------------------------------------------------------- overlap


def test_overlap_with_the_heldout_subset_fails_with_a_clear_message():
    train = [item(i) for i in range(5)]
    heldout = [Item("h-1", "heldout", "QUESTION number 3 about the right-upper quadrant pain",
                    {"A": "Peptic ulcer", "B": "pancreatitis", "C": "Appendicitis",
                     "D": "acute  cholecystitis"}, "D")]
    # same question: case, spacing, punctuation, option order and letters differ
    assert overlap_key(heldout[0]) == overlap_key(train[3])
    with pytest.raises(DataError, match=r"1 training question\(s\) also appear in the held-out "
                                        r"evaluation subset .*'t-3' = held-out 'h-1'"):
        check_overlap(train, heldout)
    clean = [item(9, "A completely different question on renal colic?")]
    check_overlap(train, clean)  # no error
    check_overlap(train, [])  # nothing to check
    # a near-duplicate (a sentence added) passes the exact check; the n-gram check finds it
    long_q = ("A 45 year old woman presents with fever, right upper quadrant pain radiating to "
              "the right shoulder, nausea after fatty meals and a positive Murphy sign on "
              "examination. What is the most likely diagnosis?")
    near = [item(20, "She is otherwise well. " + long_q)]
    held = [item(21, long_q)]
    check_overlap(near, held, "exact")
    with pytest.raises(DataError, match="ngram match"):
        check_overlap(near, held, "ngram")


def test_dedupe_and_seeded_subset(tmp_path):
    rows = [it.to_dict() for it in [item(1), item(1), item(2)]]
    rows[1]["id"] = "copy"
    path = _jsonl(tmp_path / "d.jsonl", rows)
    loaded = load_rl_items([RLSource(path=str(path))])
    assert len(loaded.items) == 2 and loaded.duplicates == 1
    items = [item(i) for i in range(50)]
    a, b = sample_items(items, 10, 0), sample_items(items, 10, 0)
    assert a == b and len(a) == 10 and a != sample_items(items, 10, 1)
    assert [x.id for x in a] == sorted((x.id for x in a), key=lambda s: int(s[2:]))  # in order
    assert sample_items(items, None, 0) == items


# --------------------------------------------------------------------------- TRL rows


def test_trl_rows_carry_the_eval_prompt_and_the_reward_columns():
    from datasets import Dataset

    from gazal.formatting import render_assistant
    from gazal.rewards import RewardConfig, build_reward_functions

    items = [item(1, options={"A": "flu", "B": "measles"}, answer="B"),
             item(2, options={"A": "flu", "B": "measles", "C": "mumps", "D": "rubella",
                              "E": "croup"}, answer="E")]
    rows = to_trl_rows(items)
    assert rows[0]["prompt"] == build_messages(items[0], SYSTEM_PROMPT)
    assert to_trl_rows(items, None)[0]["prompt"][0]["role"] == "user"
    ds = Dataset.from_list(rows)  # different option letters share one column (JSON text)
    assert json.loads(ds[1]["options"])["E"] == "croup"
    funcs, _ = build_reward_functions(RewardConfig())
    right = render_assistant(["The findings point to measles.",
                              "Koplik spots are typical of measles."],
                             "Koplik spots and rash fit measles.", "B", "measles")
    values = funcs[0]([right, right], answer=ds["answer"], options=ds["options"])
    assert values == [1.0, 0.0]  # accuracy: right for item 1, wrong letter for item 2
