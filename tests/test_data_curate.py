"""`gazal data curate` end to end: reasons, outputs, reports, malformed lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gazal.benchmarks import Item
from gazal.cli import main
from gazal.config import ConfigError
from gazal.data.config import CurateConfig, load_data_config
from gazal.data.curate import REASONS, curate
from gazal.data.decontam import BenchmarkIndex
from gazal.io import DataError

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "gazal-r1-32b" / "data.yaml"

BENCH_ITEM = Item(
    id="toy-1", benchmark="toy",
    question="A 41-year-old woman has episodic headaches, palpitations and sweating; her blood "
             "pressure is 190/110 mm Hg during an episode and plasma free metanephrines are "
             "markedly elevated. Which is the most appropriate first step before surgery?",
    options={"A": "Beta blockade", "B": "Alpha blockade", "C": "Diuretic",
             "D": "Observation"}, answer="B")

TOPICS = ["community-acquired pneumonia", "diabetic ketoacidosis", "acute pancreatitis",
          "pulmonary embolism", "infective endocarditis", "thyroid storm", "gout",
          "nephrotic syndrome", "meningitis", "heart failure", "sarcoidosis", "cholecystitis"]


def reply(topic: str, n_steps: int = 3, letter: str = "B") -> str:
    steps = "\n".join(
        f"Step {i}: For {topic}, consideration number {i} weighs finding {i * 7} against the "
        f"history, the examination and the laboratory values reported for {topic} today."
        for i in range(1, n_steps + 1))
    return (f"<think>\n{steps}\n</think>\n\n## Clinical Assessment\nThe picture fits {topic}."
            f"\n\n**Final answer: ({letter}) {topic.capitalize()}**")


def row(i: int, topic: str, category: str = "diagnostic_reasoning", **extra) -> dict:
    return {"id": f"ex-{i}", "category": category,
            "messages": [{"role": "system", "content": "You are a careful medical expert."},
                         {"role": "user", "content": f"Case {i}: a patient with suspected "
                                                     f"{topic}. What is the diagnosis?"},
                         {"role": "assistant", "content": extra.pop("content", reply(topic))}],
            **extra}


def write_input(path: Path) -> dict[str, int]:
    """Rows with one planted problem each; returns line numbers of the malformed ones."""
    rows = [row(i, t, "diagnostic_reasoning" if i % 2 else "treatment_planning")
            for i, t in enumerate(TOPICS)]  # ex-0 .. ex-11: clean
    dup = json.loads(json.dumps(rows[0]))
    dup["id"] = "dup-exact"
    dup["messages"][1]["content"] = dup["messages"][1]["content"].upper().replace(" ", "  ")
    near = json.loads(json.dumps(rows[1]))
    near["id"] = "dup-near"
    near["messages"][2]["content"] = near["messages"][2]["content"].replace("today", "now", 1)
    contaminated = row(20, "pheochromocytoma")
    contaminated["id"] = "contaminated"
    opts = list(BENCH_ITEM.options.values())[::-1]
    contaminated["messages"][1]["content"] = (
        "A question from my exam prep. " + BENCH_ITEM.question.upper().replace(",", "")
        + "\n" + "\n".join(f"({c}) {o}" for c, o in zip("ABCD", opts, strict=True)))
    bad_format = row(21, "sepsis", content=reply("sepsis").replace("Step 2", "Step 5"))
    bad_format["id"] = "bad-format"
    wrong = row(22, "anemia", options=["Iron deficiency", "Thalassemia"], answer="A")
    wrong["id"] = "wrong-answer"  # reply says (B)
    short = row(23, "gout", content="<think>\nStep 1: Gout.\nStep 2: Yes.\n</think>\n\n"
                                    "## Clinical Assessment\nGout.\n\n**Final answer: (B)**")
    short["id"] = "too-short"
    same_id = row(24, "hyponatremia")
    same_id["id"] = "ex-3"
    no_id = row(25, "appendicitis")
    del no_id["id"]
    lines = [json.dumps(r) for r in rows]
    lines += [json.dumps(r) for r in (dup, near, contaminated, bad_format, wrong, short,
                                      same_id, no_id)]
    lines.insert(5, '{"id": "broken", "messages": [')  # line 6
    lines.insert(9, "")  # blank lines are ignored
    lines.insert(10, json.dumps({"id": "x", "messages": "not a list"}))  # line 11
    lines.append(json.dumps({"id": "y", "messages": [{"role": "user", "content": "hi"}]}))
    path.write_text("\n".join(lines) + "\n")
    return {"broken": 6, "not-a-list": 11, "no-assistant": len(lines)}


@pytest.fixture
def index() -> BenchmarkIndex:
    return BenchmarkIndex([BENCH_ITEM])


def cfg(**overrides) -> CurateConfig:
    args = []
    for k, v in overrides.items():
        args += [f"--{k}", str(v)]
    return load_data_config(CurateConfig, "curate", RECIPE, args)


def read(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_curate_removes_each_planted_problem_with_its_reason(tmp_path, index):
    malformed = write_input(tmp_path / "in.jsonl")
    result = curate(tmp_path / "in.jsonl", tmp_path / "out", cfg(), progress=False,
                    index=index)
    kept = read(tmp_path / "out" / "kept.jsonl")
    removed = {r.get("id", f"line-{r['line']}"): r for r in read(tmp_path / "out" /
                                                                 "removed.jsonl")}
    assert {r["id"] for r in kept} == {f"ex-{i}" for i in range(12)} | \
        {next(r["id"] for r in kept if r["id"].startswith("sha1-"))}
    reasons = {k: v["reason"] for k, v in removed.items()}
    assert reasons == {
        "dup-exact": "exact_duplicate", "dup-near": "near_duplicate",
        "contaminated": "contaminated", "bad-format": "format", "wrong-answer": "wrong_answer",
        "too-short": "too_short", "ex-3": "duplicate_id",
        f"line-{malformed['broken']}": "malformed",
        f"line-{malformed['not-a-list']}": "malformed",
        f"line-{malformed['no-assistant']}": "malformed"}
    c = removed["contaminated"]["removal"]
    assert (c["benchmark"], c["item_id"], c["kind"]) == ("toy", "toy-1", "distinctive")
    assert c["score"] > 0.9 and c["matched_spans"]
    assert c["matched_spans"][0] in c["matched_text"] or \
        c["matched_text"] == c["matched_spans"][0]
    assert removed["dup-exact"]["removal"]["duplicate_of"] == "ex-0"
    assert removed["dup-near"]["removal"]["duplicate_of"] == "ex-1"
    assert removed["dup-near"]["removal"]["similarity"] >= 0.8
    assert removed["bad-format"]["removal"]["format_error"] == "step_numbering"
    assert removed["wrong-answer"]["removal"] == {"gold": "A", "extracted": "B",
                                                 "extraction_rule": "final_answer"}
    assert removed["ex-3"]["line"] == 22 and removed["ex-3"]["messages"]  # the row is kept whole
    assert removed[f"line-{malformed['broken']}"]["raw"].startswith('{"id": "broken"')
    # malformed lines are reported by line number
    errors = [str(e) for e in result.malformed]
    assert any(e.startswith(f"{tmp_path / 'in.jsonl'}:6: invalid JSON") for e in errors)
    assert any(":11: field 'messages': expected a non-empty list" in e for e in errors)
    assert any("the last message must be the assistant turn" in e for e in errors)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["kept"] == 13 and report["removed"] == 10
    assert set(report["removed_by_reason"]) == set(REASONS)
    assert report["by_category"]["treatment_planning"]["input"] == 7  # 6 + its copy
    assert report["contamination"]["by_benchmark"] == {"toy": 1}
    assert [m["line"] for m in report["malformed_lines"]] == [6, 11, malformed["no-assistant"]]
    md = (tmp_path / "out" / "report.md").read_text()
    assert "| contaminated | 1 |" in md and "line 6:" in md and "length_histogram.png" in md
    png = (tmp_path / "out" / "length_histogram.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    # kept rows are the input lines unchanged (an id added only where there was none)
    src = {json.loads(x).get("id"): x for x in (tmp_path / "in.jsonl").read_text().splitlines()
           if x.startswith('{"id": "ex-')}
    kept_lines = (tmp_path / "out" / "kept.jsonl").read_text().splitlines()
    assert kept_lines[0] == src["ex-0"]
    assert not [p.name for p in (tmp_path / "out").iterdir() if p.name.endswith(".tmp")]


def test_contamination_is_counted_over_all_rows(tmp_path, index):
    """A row removed earlier (too short, bad format) that holds a benchmark question keeps its
    reason, records the match, and counts in the contamination report."""
    question = ("A question from my exam prep. " + BENCH_ITEM.question + "\n"
                + "\n".join(f"({c}) {o}" for c, o in BENCH_ITEM.options.items()))
    rows = [row(i, t) for i, t in enumerate(TOPICS[:4])]
    for r in rows[1:4]:
        r["messages"][1]["content"] = question + f" (copy {r['id']})"
    rows[2]["messages"][2]["content"] = "<think>\nStep 1: Alpha.\nStep 2: Yes.\n</think>\n\n" \
        "## Clinical Assessment\nAlpha.\n\n**Final answer: (B)**"  # too short
    rows[3]["messages"][2]["content"] = reply("x").replace("Step 2", "Step 5")  # format
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = curate(tmp_path / "in.jsonl", tmp_path / "out", cfg(), progress=False,
                    index=index)
    removed = {r["id"]: r for r in read(tmp_path / "out" / "removed.jsonl")}
    assert {k: v["reason"] for k, v in removed.items()} == {
        "ex-1": "contaminated", "ex-2": "too_short", "ex-3": "format"}
    assert "contamination" not in removed["ex-1"]
    for rid in ("ex-2", "ex-3"):
        c = removed[rid]["contamination"]
        assert (c["benchmark"], c["item_id"]) == ("toy", "toy-1")
        assert c["score"] >= 0.46 and c["matched_spans"]
    con = result.report["contamination"]
    assert con["rows"] == 3 and con["by_benchmark"] == {"toy": 3}
    assert con["removed_as_contaminated"] == {"toy": 1}
    assert con["removed_earlier_for_another_reason"] == {"toy": 2}
    assert {e["reason"] for e in con["examples"]} == {"contaminated", "too_short", "format"}
    md = (tmp_path / "out" / "report.md").read_text()
    assert "**3 rows contain an evaluation question**" in md
    assert "removed earlier for another reason 2" in md


def test_strict_mode_stops_at_the_first_malformed_line(tmp_path, index):
    write_input(tmp_path / "in.jsonl")
    with pytest.raises(DataError, match=r"in.jsonl:6: invalid JSON"):
        curate(tmp_path / "in.jsonl", tmp_path / "out", cfg(strict="true"), progress=False,
               index=index)
    assert not (tmp_path / "out" / "kept.jsonl").exists()


def test_an_input_without_rows_is_an_error_and_writes_nothing(tmp_path, index):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(DataError, match=r"empty.jsonl: holds no rows"):
        curate(empty, tmp_path / "out", CurateConfig(), index=index, progress=False)
    with pytest.raises(DataError, match="is a folder"):
        curate(tmp_path, tmp_path / "out", CurateConfig(), index=index, progress=False)
    assert not (tmp_path / "out").exists()


def test_category_cap_and_length_bounds(tmp_path, index):
    rows = [row(i, t, "diagnostic_reasoning" if i < 8 else "prognostic_assessment")
            for i, t in enumerate(TOPICS)]
    rows.append(row(99, "asthma", content=reply("asthma", n_steps=40)))
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = curate(tmp_path / "in.jsonl", tmp_path / "out",
                    cfg(max_per_category=3, **{"length.max_words": 600}), progress=False,
                    index=index)
    by_cat = result.report["by_category"]
    assert by_cat["diagnostic_reasoning"]["kept"] == 3
    assert by_cat["diagnostic_reasoning"]["removed"] == {"category_cap": 5, "too_long": 1}
    assert by_cat["prognostic_assessment"] == {"input": 4, "kept": 3,
                                               "removed": {"category_cap": 1}}
    # the cap is a seeded random choice: the same seed keeps the same rows
    again = curate(tmp_path / "in.jsonl", tmp_path / "out2",
                   cfg(max_per_category=3, **{"length.max_words": 600}), progress=False,
                   index=index)
    assert (tmp_path / "out" / "kept.jsonl").read_text() == \
        (tmp_path / "out2" / "kept.jsonl").read_text()
    assert again.report["kept"] == 6


def test_cli_against_the_real_benchmarks(tmp_path, data_dir):
    from gazal.benchmarks import load_benchmark

    item = next(it for it in load_benchmark("mmlu_pro_medical", data_dir).items
                if len(it.question.split()) > 40)
    rows = [row(i, t) for i, t in enumerate(TOPICS)]
    rows[4]["messages"][1]["content"] = "Practice:  " + item.question.lower()
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows)
                                       + "{oops\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "gazal", "data", "curate",
                           str(tmp_path / "in.jsonl"), "--out", str(tmp_path / "out"),
                           "--data-dir", str(data_dir), "--recipe", str(RECIPE),
                           "--no-progress"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "kept 11 of 13 rows; removed malformed 1, contaminated 1" in done.stdout
    assert f"{tmp_path / 'in.jsonl'}:13: invalid JSON" in done.stderr
    removed = read(tmp_path / "out" / "removed.jsonl")
    hit = next(r for r in removed if r["reason"] == "contaminated")
    assert hit["removal"]["benchmark"] == "mmlu_pro_medical"
    assert hit["removal"]["item_id"] == item.id
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    checked = {b["name"] for b in report["decontamination"]["benchmarks"] if b["checked"]}
    assert checked == {"medqa", "medmcqa", "pubmedqa", "pubmedqa_500", "mmlu_pro_medical",
                       "gpqa_medical"}


def test_cli_errors_are_clear(tmp_path, capsys):
    assert main(["data", "curate", str(tmp_path / "missing.jsonl"), "--out",
                 str(tmp_path / "o")]) == 2
    assert "missing.jsonl: file not found" in capsys.readouterr().err
    (tmp_path / "in.jsonl").write_text("{}\n")
    assert main(["data", "curate", str(tmp_path / "in.jsonl"), "--out", str(tmp_path / "o"),
                 "--decontam.ngram", "8"]) == 2
    assert "did you mean --decontam.ngram_n" in capsys.readouterr().err


def test_semantic_stage_judges_only_the_near_misses(tmp_path):
    """decontam.semantic: the near misses of the distinctive rule go to a judge model (here
    a scripted OpenAI-compatible server); its "yes" removes the row as contaminated (kind
    semantic), its "no" keeps it; the cost is reported. Off: nothing is sent."""
    import random

    from support.openai_server import ScriptedServer, completion

    from gazal.data.decontam import DecontamSettings
    from gazal.data.plants import plant

    index = BenchmarkIndex([BENCH_ITEM, *(Item(
        id=f"toy-{i}", benchmark="toy", question=f"A {30 + i}-year-old man has {t} for {i} "
        "days and a fever. Which of the following is the most likely diagnosis?",
        options={"A": t.capitalize(), "B": "Gout"}, answer="A") for i, t in enumerate(TOPICS))],
        DecontamSettings(candidate_score=0.25))
    rows = [row(i, t) for i, t in enumerate(TOPICS[:6])]
    # the benchmark item with 60% of its words edited: under min_score, over candidate_score
    rows[1]["messages"][1]["content"] = plant(BENCH_ITEM, 0.6, random.Random(0))
    # the same topic, not the question: a near miss too, which the judge clears
    rows[2]["messages"][1]["content"] = (
        "A woman with episodic headaches, palpitations and sweating has markedly elevated "
        "plasma free metanephrines; alpha blockade before surgery is the first step.")
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    first = index.scan(*_scan_args([rows[1]["messages"][1]["content"]]), [])
    assert first == [None]  # the first stage alone keeps it

    def handler(req, n):
        text = req["messages"][0]["content"].split("TRAINING TEXT:")[1]
        return completion("yes" if "190/110" in text or "Diuretic" in text else "no",
                          prompt_tokens=100, completion_tokens=1)

    with ScriptedServer(handler) as srv:
        args = {"decontam.semantic.enabled": "true", "decontam.semantic.judge.model": "judge-1",
                "decontam.semantic.judge.base_url": srv.url,
                "decontam.semantic.judge.price_input_per_1m": "1.0"}
        result = curate(tmp_path / "in.jsonl", tmp_path / "out", cfg(**args), progress=False,
                        index=index)
        n_requests = len(srv.requests)
    removed = read(tmp_path / "out" / "removed.jsonl")
    assert [(r["id"], r["reason"], r["removal"]["kind"]) for r in removed] == [
        ("ex-1", "contaminated", "semantic")]
    assert removed[0]["removal"]["judge"] == "judge-1"
    assert removed[0]["removal"]["score"] < index.settings.min_score
    sem = result.report["decontamination"]["semantic"]
    assert n_requests == sem["judged"] >= 2 and sem["flagged"] == 1
    assert sem["prompt_tokens"] == 100 * sem["judged"]
    assert sem["estimated_cost"] == pytest.approx(100 * sem["judged"] / 1e6)
    md = (tmp_path / "out" / "report.md").read_text()
    assert f"Semantic stage (judge `judge-1`): {sem['near_misses']} near misses" in md
    off = curate(tmp_path / "in.jsonl", tmp_path / "out2", cfg(), progress=False, index=index)
    assert off.report["removed_by_reason"]["contaminated"] == 0
    assert off.report["decontamination"]["semantic"] == {"enabled": False}
    with pytest.raises(ConfigError, match=r"decontam\.semantic\.judge\.model is required"):
        curate(tmp_path / "in.jsonl", tmp_path / "out3",
               cfg(**{"decontam.semantic.enabled": "true"}), progress=False, index=index)


def _scan_args(texts):
    from gazal.data.ngrams import tokenize

    batch, _ = tokenize(texts)
    return batch, texts
