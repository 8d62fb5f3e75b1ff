from __future__ import annotations

import json

import pytest

from gazal.benchmarks.item import gold_letter
from gazal.cli import main
from gazal.eval.metrics import macro_average, mean_std, summarize, wilson_interval
from gazal.eval.score import score_file
from gazal.io import DataError, read_jsonl

OPTS = {"A": "Flu", "B": "Cold", "C": "Sepsis"}


def write(tmp_path, rows, name="r.jsonl"):
    p = tmp_path / name
    p.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return p


def test_wilson_known_values():
    lo, hi = wilson_interval(81, 100)
    assert lo == pytest.approx(0.7222, abs=1e-4) and hi == pytest.approx(0.8748, abs=1e-4)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == pytest.approx(1.0)
    assert wilson_interval(0, 0) == (0.0, 0.0)
    with pytest.raises(ValueError):
        wilson_interval(5, 3)


def test_mean_std_macro():
    assert mean_std([0.5, 0.7]) == pytest.approx((0.6, 0.1414213), abs=1e-6)
    assert mean_std([0.4]) == (0.4, 0.0)
    assert macro_average({"a": 0.2, "b": 0.8}) == pytest.approx(0.5)


def test_summarize_samples_and_categories():
    recs = [{"benchmark": "medqa", "correct": c, "extracted": "A", "sample_index": s,
             "meta": {"step": st}}
            for s, c, st in [(0, True, "step1"), (0, False, "step2&3"), (1, True, "step1"),
                             (1, True, "step2&3")]]
    s = summarize(recs, {"medqa": "step"})
    m = s["benchmarks"]["medqa"]
    assert m["accuracy"] == 0.75 and m["samples"] == 2
    assert m["accuracy_mean"] == 0.75 and m["accuracy_std"] == pytest.approx(0.353553, 1e-5)
    assert m["categories"]["step1"]["accuracy"] == 1.0


def test_gold_letter():
    assert gold_letter("b", OPTS) == "B" and gold_letter("(C)", OPTS) == "C"
    assert gold_letter("maybe", {"A": "yes", "B": "no", "C": "maybe"}) == "C"
    with pytest.raises(ValueError, match="neither an option letter"):
        gold_letter("Z", OPTS)


def test_score_file_end_to_end(tmp_path):
    rows = [
        {"id": "1", "benchmark": "medqa", "options": OPTS, "answer": "B",
         "response": "<think>x</think>\n**Final answer: (B) Cold**"},
        {"id": "2", "benchmark": "medqa", "options": ["Flu", "Cold", "Sepsis"], "answer": "A",
         "response": "The answer is (C)."},
        {"id": "3", "benchmark": "pubmedqa", "options": {"A": "yes", "B": "no", "C": "maybe"},
         "answer": "no", "response": "<think>unfinished"},
        {"id": "4", "benchmark": "pubmedqa", "options": {"A": "yes", "B": "no", "C": "maybe"},
         "answer": "yes", "response": "Yes, it does.", "truncated": True},
    ]
    out = tmp_path / "out"
    res = score_file(write(tmp_path, rows), out)
    scored = read_jsonl(out / "scored.jsonl")
    assert [r["correct"] for r in scored] == [True, False, False, True]
    assert [r["extraction_rule"] for r in scored] == ["final_answer", "answer_is", "truncated",
                                                      "option_text"]
    assert scored[2]["answer"] == "B" and scored[1]["options"]["C"] == "Sepsis"
    s = json.loads((out / "summary.json").read_text())
    assert s == res.summary
    assert s["n"] == 4 and s["accuracy"] == 0.5 and s["missing"] == 0.25
    assert s["truncated"] == 0.5  # one unclosed thinking, one cut at its token limit
    assert s["benchmarks"]["medqa"]["accuracy"] == 0.5


def test_malformed_line_stops_with_line_number(tmp_path):
    rows = [{"options": OPTS, "answer": "A", "response": "A"}, "{broken",
            {"options": OPTS, "response": "A"}, {"options": OPTS, "answer": "Q", "response": "A"}]
    p = write(tmp_path, rows)
    with pytest.raises(DataError, match=r"r.jsonl:2: invalid JSON"):
        score_file(p, tmp_path / "o")
    assert not (tmp_path / "o" / "scored.jsonl").exists()  # nothing half-written
    res = score_file(p, tmp_path / "o", skip_invalid=True)
    assert [e.line for e in res.skipped] == [2, 3, 4]
    assert "field 'answer'" in str(res.skipped[1]) and res.summary["n"] == 1


@pytest.mark.parametrize("bad, message", [
    ({"sample_index": "zero"}, r"r.jsonl:1: field 'sample_index': expected an integer >= 0"),
    ({"sample_index": -1}, r"field 'sample_index': expected an integer >= 0, got -1"),
    ({"truncated": "yes"}, r"r.jsonl:1: field 'truncated': expected true or false, got 'yes'"),
])
def test_wrong_types_are_named_not_ignored(tmp_path, bad, message):
    p = write(tmp_path, [{"id": "q1", "options": OPTS, "answer": "A", "response": "A", **bad}])
    with pytest.raises(DataError, match=message):
        score_file(p, tmp_path / "o")


def test_a_repeated_record_is_not_counted_twice(tmp_path):
    row = {"id": "q1", "options": OPTS, "answer": "A", "response": "The answer is A"}
    other = {**row, "response": "The answer is B"}  # another response to the same item: kept
    p = write(tmp_path, [row, {**row, "sample_index": 1}, other, row, row])
    with pytest.raises(DataError, match=r"r.jsonl:4: field 'id': repeats line 1"):
        score_file(p, tmp_path / "o")
    res = score_file(p, tmp_path / "o", skip_invalid=True)
    assert res.summary["n"] == 3 and [e.line for e in res.skipped] == [4, 5]


def test_cli_score(tmp_path, capsys):
    p = write(tmp_path, [{"options": OPTS, "answer": "A", "response": "Answer: A"},
                         {"options": OPTS, "answer": "A", "response": "bad"}, "{"])
    assert main(["score", str(p), "--out", str(tmp_path / "o")]) == 2
    assert "r.jsonl:3" in capsys.readouterr().err
    assert main(["score", str(p), "--out", str(tmp_path / "o"), "--skip-invalid"]) == 0
    captured = capsys.readouterr()
    assert "50.0" in captured.out and "skipped 1 invalid line" in captured.err


def test_cli_benchmarks_json(data_dir, capsys):
    assert main(["data", "benchmarks", "--data-dir", str(data_dir), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"]: r["n"] for r in rows} == {
        "medqa": 1273, "medmcqa": 4183, "pubmedqa": 1000, "pubmedqa_500": 500,
        "mmlu_pro_medical": 1535, "gpqa_medical": 390}
    assert all(len(r["sha256"]) == 64 for r in rows)


def test_sample_responses_score_with_expected_accuracy(tmp_path):
    from gazal.benchmarks.builtin import builtin_items
    from gazal.demo.sample_responses import generate
    from gazal.io import atomic_write_jsonl

    p = tmp_path / "s.jsonl"
    atomic_write_jsonl(p, generate(builtin_items(), seed=1, p_correct=0.6, samples=250))
    s = score_file(p, tmp_path / "o").summary
    # 10% of styles extract nothing (hedged or truncated), so accuracy is about 0.6 * 0.9
    assert 0.50 < s["accuracy"] < 0.58 and 0.07 < s["missing"] < 0.13


def test_pass_at_k_and_majority_vote():
    from gazal.eval.metrics import majority_correct, pass_at_k, summarize

    # n = 4, c = 1: pass@1 = 1/4, pass@2 = 1 - C(3,2)/C(4,2) = 1 - 3/6, pass@4 = 1
    assert pass_at_k(4, 1, 1) == 0.25 and pass_at_k(4, 1, 2) == 0.5 and pass_at_k(4, 1, 4) == 1
    assert pass_at_k(4, 0, 4) == 0.0 and pass_at_k(4, 3, 2) == 1.0

    def rec(item, s, extracted, correct):
        return {"id": item, "benchmark": "b", "sample_index": s, "extracted": extracted,
                "correct": correct}

    # item x: B, B, A(gold), None -> majority B, wrong; item y: A, C, C, A -> tie, A first: right
    x = [rec("x", 0, "B", False), rec("x", 1, "B", False), rec("x", 2, "A", True),
         rec("x", 3, None, False)]
    y = [rec("y", 0, "A", True), rec("y", 1, "C", False), rec("y", 2, "C", False),
         rec("y", 3, "A", True)]
    assert majority_correct(x) is False and majority_correct(y) is True
    assert majority_correct([rec("z", 0, None, False)]) is False
    s = summarize(x + y)
    assert s["majority_accuracy"] == 0.5
    assert s["pass_at_k"] == {"1": (0.25 + 0.5) / 2, "2": ((1 - 3 / 6) + (1 - 1 / 6)) / 2,
                              "4": 1.0}
