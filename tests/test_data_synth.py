"""`gazal data synth`: against a real local OpenAI-compatible server with scripted replies, and
with a small fake backend."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import types
from collections import Counter
from pathlib import Path

import pytest
from support.openai_server import Reply, ScriptedServer, completion

from gazal.benchmarks import load_items_file
from gazal.cli import main
from gazal.config import ConfigError
from gazal.data.config import SynthConfig, load_data_config
from gazal.data.synth import (
    REJECTED,
    TeacherUnavailable,
    build_units,
    example_id,
    request_seed,
    synthesize,
)
from gazal.data.teachers import get_teacher
from gazal.generation.base import Generation

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "gazal-r1-32b" / "data.yaml"

# Seed questions written for these tests (not benchmark questions).
QUESTIONS = {
    "q1": ("A 30-year-old runner has calf pain after a long flight.", "Deep vein thrombosis", 1),
    "q2": ("A 60-year-old smoker has painless jaundice.", "Pancreatic cancer", 2),
    "q3": ("A child has a barking cough and stridor.", "Croup", 0),
    "q4": ("A woman has heat intolerance and weight loss.", "Graves disease", 3),
    "q5": ("A man has crushing chest pain radiating to the jaw.", "Myocardial infarction", 1),
    "q6": ("A teenager has fever, neck stiffness and a petechial rash.", "Meningococcemia", 2),
}
OPTIONS = ["Tension headache", "Viral rhinitis", "Iron deficiency", "Gastritis"]


def write_seeds(path: Path, keys: list[str]) -> dict[str, dict]:
    rows = {}
    with path.open("w") as f:
        for k in keys:
            q, ans, idx = QUESTIONS[k]
            opts = list(OPTIONS)
            opts[idx] = ans
            row = {"id": k, "benchmark": "tests", "question": q, "options": opts,
                   "answer": "ABCD"[idx]}
            rows[q] = row
            f.write(json.dumps(row) + "\n")
    return rows


def reply(letter: str, text: str = "") -> str:
    final = f"({letter}) {text}".strip()
    return ("<think>\nStep 1: The findings point to one diagnosis.\nStep 2: The alternatives "
            "do not explain them.\n</think>\n\n## Clinical Assessment\nThe findings fit best."
            f"\n\n**Final answer: {final}**")


def seed_ids(path: Path) -> dict[str, str]:
    """Seed item id (content-derived by load_items_file) -> the test's key (q1, ...)."""
    by_question = {v[0]: k for k, v in QUESTIONS.items()}
    return {it.id: by_question[it.question] for it in load_items_file(path)}


def make_cfg(tmp_path: Path, seeds: Path, url: str, **overrides) -> SynthConfig:
    args = ["--seeds.path", str(seeds), "--teacher.model", "tiny-teacher",
            "--teacher.base_url", url, "--teacher.api_key_env", "GAZAL_TEST_KEY",
            "--teacher.backoff_base_s", "0.01", "--teacher.backoff_max_s", "0.05",
            "--teacher.max_retries", "2", "--teacher.concurrency", "4",
            "--data_dir", str(tmp_path / "no-benchmarks")]
    for k, v in overrides.items():
        args += [f"--{k}", str(v)]
    return load_data_config(SynthConfig, "synth", RECIPE, args)


def question_of(request: dict) -> str:
    user = request["messages"][-1]["content"]
    for q in QUESTIONS.values():
        if q[0] in user:
            return q[0]
    raise AssertionError(f"unknown prompt: {user[:200]}")


def read_jsonl(path: Path) -> list[dict]:
    """Complete records (a line torn by a kill is left out)."""
    rows = []
    for x in path.read_text().splitlines():
        try:
            rows.append(json.loads(x))
        except json.JSONDecodeError:
            continue
    return rows


def test_server_failures_are_retried_and_wrong_answers_resampled(tmp_path, monkeypatch):
    monkeypatch.setenv("GAZAL_TEST_KEY", "sk-test-SECRET")
    seeds = write_seeds(tmp_path / "seeds.jsonl", list(QUESTIONS))
    gold = {q: (row["answer"], row["options"]["ABCD".index(row["answer"])])
            for q, row in seeds.items()}
    calls: Counter = Counter()
    lock = threading.Lock()
    q = {k: v[0] for k, v in QUESTIONS.items()}

    def handler(req, n):
        question = question_of(req)
        with lock:
            calls[question] += 1
            i = calls[question]
        letter, text = gold[question]
        wrong = "A" if letter != "A" else "B"
        if question == q["q1"] and i == 1:
            return Reply(429, {"error": "rate limited"}, headers={"Retry-After": "0"})
        if question == q["q2"] and i == 1:
            return Reply(500, {"error": "internal"})
        if question == q["q3"] and i == 1:
            return Reply(200, completion(reply(letter, text)).body, delay=1.5)  # times out
        if question == q["q4"] and i == 1:
            return completion(reply(wrong))  # well formed, wrong answer: resampled
        if question == q["q5"] and i == 1:
            return Reply(200, b"{not json")  # malformed reply: retried by the backend
        if question == q["q5"] and i == 2:
            return completion("The answer is probably the second one.")  # not the format
        if question == q["q6"]:
            return completion(reply(wrong))  # always wrong: given up after k attempts
        return completion(reply(letter, text), prompt_tokens=100, completion_tokens=50)

    with ScriptedServer(handler) as srv:
        cfg = make_cfg(tmp_path, tmp_path / "seeds.jsonl", srv.url,
                       **{"teacher.timeout_s": 0.5, "max_attempts": 3,
                          "teacher.price_input_per_1m": 1.0,
                          "teacher.price_output_per_1m": 2.0})
        cfg.categories = {"diagnostic_reasoning": cfg.categories["diagnostic_reasoning"]}
        summary = synthesize(cfg, tmp_path / "run", progress=False)

    ids = seed_ids(tmp_path / "seeds.jsonl")
    rows = {ids[r["seed_id"]]: r for r in read_jsonl(tmp_path / "run" / "examples.jsonl")}
    rejected = read_jsonl(tmp_path / "run" / "rejected.jsonl")
    assert sorted(rows) == ["q1", "q2", "q3", "q4", "q5"]
    assert rows["q1"]["attempt"] == 1 and rows["q4"]["attempt"] == 2  # wrong answer resampled
    assert rows["q5"]["attempt"] == 2  # malformed HTTP reply retried, bad format resampled
    assert [ids[r["seed_id"]] for r in rejected] == ["q6"]
    assert rejected[0]["attempts"] == ["wrong_answer"] * 3
    this = summary["this_run"]
    assert this["outcomes"] == {"kept": 5, "wrong_answer": 4, "format:no_thinking": 1}
    assert this["attempts"] == 10 and summary["examples"] == 5 and summary["given_up"] == 1
    # HTTP-level failures never reached rejection sampling: the backend retried them
    assert calls[q["q1"]] == 2 and calls[q["q2"]] == 2 and calls[q["q3"]] == 2
    assert calls[q["q5"]] == 3 and calls[q["q6"]] == 3
    assert this["estimated_cost"] > 0
    # every kept example is in the format, with the gold letter, and carries its seed
    ex = rows["q4"]
    assert ex["id"] == example_id("seeds", ex["seed_id"], "diagnostic_reasoning")
    assert [m["role"] for m in ex["messages"]] == ["system", "user", "assistant"]
    assert ex["messages"][-1]["content"].startswith("<think>\nStep 1:")
    assert ex["answer"] == seeds[q["q4"]]["answer"]
    assert "Answer with the letter" in ex["messages"][1]["content"]
    # the key reached the server and nothing on disk holds it
    assert srv.headers[0]["Authorization"] == "Bearer sk-test-SECRET"
    for f in (tmp_path / "run").iterdir():
        assert "sk-test-SECRET" not in f.read_text()


def test_kill_and_resume_loses_nothing_and_duplicates_nothing(tmp_path):
    keys = list(QUESTIONS)
    seeds = write_seeds(tmp_path / "seeds.jsonl", keys)
    gold = {q: row["answer"] for q, row in seeds.items()}

    def handler(req, n):
        return Reply(200, completion(reply(gold[question_of(req)])).body, delay=0.15)

    with ScriptedServer(handler) as srv:
        recipe = tmp_path / "data.yaml"
        recipe.write_text(RECIPE.read_text())
        args = [sys.executable, "-m", "gazal", "-q", "data", "synth", str(recipe), "--out",
                str(tmp_path / "run"), "--no-progress", "--seeds.path",
                str(tmp_path / "seeds.jsonl"), "--teacher.model", "t", "--teacher.base_url",
                srv.url, "--teacher.concurrency", "2", "--teacher.api_key_env", "NO_KEY",
                "--data_dir", str(tmp_path / "none")]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
        proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        out = tmp_path / "run" / "examples.jsonl"
        deadline = time.time() + 60
        while time.time() < deadline:
            if out.exists() and len(out.read_text().splitlines()) >= 5:
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        first = read_jsonl(out)
        assert 5 <= len(first) < len(keys) * 4, "the run was not killed mid-way"
        # a crash can tear the last line: simulate one
        with out.open("a") as f:
            f.write('{"id": "syn-torn", "categ')
        done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    rows = read_jsonl(out)
    ids = [r["id"] for r in rows]
    expected = {example_id("seeds", k, c) for k in seed_ids(tmp_path / "seeds.jsonl") for c in
                ("diagnostic_reasoning", "treatment_planning", "decision_under_uncertainty",
                 "prognostic_assessment")}
    assert len(ids) == len(set(ids)) == len(expected)
    assert set(ids) == expected
    assert all(r["id"] in ids for r in first)  # nothing kept before the kill was lost
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["complete"] and summary["this_run"]["already_done"] == len(first)


def test_dry_run_prints_prompts_and_sends_nothing(tmp_path, capsys):
    write_seeds(tmp_path / "seeds.jsonl", ["q1", "q2"])
    with ScriptedServer(lambda req, n: completion("x")) as srv:
        code = main(["data", "synth", str(RECIPE), "--dry-run", "--seeds.path",
                     str(tmp_path / "seeds.jsonl"), "--teacher.model", "t",
                     "--teacher.base_url", srv.url, "--data-dir", str(tmp_path),
                     "--teacher.price_input_per_1m", "3"])
    assert code == 0 and srv.requests == []
    out, err = capsys.readouterr()
    assert out.count("=== syn-") == 8  # 2 seeds x 4 categories
    assert "Work through this problem as treatment planning" in out
    assert QUESTIONS["q2"][0] in out and "Nothing was sent" in err
    assert not (tmp_path / "run").exists()


def test_refuses_evaluation_benchmark_seeds(tmp_path):
    with pytest.raises(ConfigError, match="refusing to synthesise from 'medqa'"):
        synthesize(make_cfg(tmp_path, tmp_path / "x.jsonl", "http://127.0.0.1:9",
                            **{"seeds.path": "null", "seeds.benchmark": "medqa"}),
                   tmp_path / "run", dry=True)
    code = main(["data", "synth", str(RECIPE), "--dry-run", "--seeds.benchmark", "medqa",
                 "--teacher.model", "t"])
    assert code == 2


def test_refuses_seed_files_holding_evaluation_questions(tmp_path, data_dir, caplog):
    from gazal.benchmarks import load_benchmark

    item = load_benchmark("medqa", data_dir).items[3]
    row = {"id": "x", "benchmark": "mine", "question": item.question.upper() + "  ",
           "options": item.options, "answer": item.answer}
    (tmp_path / "seeds.jsonl").write_text(json.dumps(row) + "\n")
    cfg = make_cfg(tmp_path, tmp_path / "seeds.jsonl", "http://127.0.0.1:9",
                   data_dir=str(data_dir))
    with pytest.raises(ConfigError, match=r"1 seed question\(s\) are evaluation benchmark "
                                          r"questions or near-duplicates of them \(1 in medqa"):
        synthesize(cfg, None, dry=True)
    allowed = make_cfg(tmp_path, tmp_path / "seeds.jsonl", "http://127.0.0.1:9",
                       data_dir=str(data_dir), **{"seeds.allow_eval_benchmark": "true"})
    with caplog.at_level(logging.WARNING, logger="gazal"):
        synthesize(allowed, None, dry=True, out=open(os.devnull, "w"))  # noqa: SIM115
    assert "CONTAMINATION" in caplog.text


def test_refuses_seeds_that_are_near_duplicates_of_evaluation_questions(tmp_path, data_dir):
    """A MedQA test question with one word in five edited, options shuffled, is refused with
    the item it copies; an unrelated seed with a MedQA vital-signs line is not."""
    import random

    from gazal.benchmarks import load_benchmark
    from gazal.data.plants import template_sentences, word_edit

    items = load_benchmark("medqa", data_dir).items
    item = items[10]
    rnd = random.Random(0)
    options = list(item.options.values())
    rnd.shuffle(options)
    edited = {"id": "edited", "benchmark": "mine",
              "question": word_edit(item.question, 0.2, rnd, reorder_sentences=True),
              "options": dict(zip("ABCDE", options, strict=False)), "answer": "A"}
    vitals = next(s for it in items for s in template_sentences(it)["vitals"])
    clean = {"id": "clean", "benchmark": "mine",
             "question": f"A 33-year-old carpenter has a splinter under a fingernail. {vitals} "
                         "What is the best way to remove it?",
             "options": {"A": "Soak and lift", "B": "Leave it"}, "answer": "A"}
    (tmp_path / "seeds.jsonl").write_text(json.dumps(edited) + "\n" + json.dumps(clean) + "\n")
    cfg = make_cfg(tmp_path, tmp_path / "seeds.jsonl", "http://127.0.0.1:9",
                   data_dir=str(data_dir))
    with pytest.raises(ConfigError, match=rf"1 seed question\(s\) .* near-duplicates .*seed "
                                          rf"\S+ ~ medqa:{item.id} \(score"):
        synthesize(cfg, None, dry=True)
    (tmp_path / "seeds.jsonl").write_text(json.dumps(clean) + "\n")
    synthesize(cfg, None, dry=True, out=open(os.devnull, "w"))  # noqa: SIM115


class FakeTeacher:
    """A Backend that answers from a function of the conversation."""

    name = "fake"

    def __init__(self, answer):
        self.answer = answer
        self.conversations: list = []
        self.seeds: list = []

    def generate(self, conversations, params, on_result=None, seeds=None):
        out = []
        for i, conv in enumerate(conversations):
            self.conversations.append(conv)
            self.seeds.append(None if seeds is None else seeds[i])
            gen = self.answer(conv, params)
            if on_result:
                on_result(i, gen)
            out.append(gen)
        return out

    def close(self):
        pass


def test_vignette_seeds_with_a_fake_teacher(tmp_path):
    (tmp_path / "cases.jsonl").write_text(
        json.dumps({"id": "c1", "text": "A 70-year-old has new confusion and fever."}) + "\n"
        + json.dumps({"text": "A 25-year-old has sudden pleuritic chest pain."}) + "\n")

    def answer(conv, params):
        user = conv[-1]["content"]
        if "prognosis" in user and "70-year-old" in user:
            return Generation(text="<think>\nStep 1: x\n", finish_reason="length")
        if params.seed == 0 and "next step" in user:
            return Generation(text="", finish_reason="error", error="boom")
        return Generation(text="Step 1: Look at the findings.\nStep 2: Decide.\n</think>\n\n"
                               "## Clinical Assessment\nBecause.\n\n**Final answer: Sepsis**",
                          finish_reason="stop", n_prompt_tokens=None,
                          n_completion_tokens=None)

    cfg = make_cfg(tmp_path, tmp_path / "cases.jsonl", "http://127.0.0.1:9",
                   max_attempts=2)
    teacher = FakeTeacher(answer)
    summary = synthesize(cfg, tmp_path / "run", progress=False, teacher=teacher)
    rows = read_jsonl(tmp_path / "run" / "examples.jsonl")
    assert len(rows) == 7 and summary["given_up"] == 1  # the 70-year-old's prognosis
    r = next(r for r in rows if r["seed_id"] == "c1" and r["category"] == "treatment_planning")
    assert r["messages"][0]["content"].endswith("**Final answer: concise answer**.")
    assert r["messages"][1]["content"].endswith("Justify the choice and the order of steps.")
    # canonical thinking block although the teacher left out the opening tag
    assert r["messages"][2]["content"].startswith("<think>\nStep 1: Look")
    assert "options" not in r
    outcomes = summary["this_run"]["outcomes"]
    assert outcomes["truncated"] == 2 and outcomes["backend_error"] == 2
    assert summary["this_run"]["estimated_token_counts"] > 0


def test_get_teacher_imports_the_hf_backend_lazily(monkeypatch):
    made = {}

    class HFBackend:
        name = "hf"

        def __init__(self, **kwargs):
            made.update(kwargs)

    fake = types.ModuleType("gazal.generation.hf")
    fake.HFBackend = HFBackend
    import gazal.generation as backends

    monkeypatch.setitem(sys.modules, "gazal.generation.hf", fake)
    monkeypatch.setattr(backends, "hf", fake, raising=False)
    cfg = load_data_config(SynthConfig, "synth", RECIPE,
                           ["--teacher.backend", "hf", "--teacher.model", "/models/tiny",
                            "--teacher.hf", "{batch_size: 4}"])
    assert isinstance(get_teacher(cfg.teacher), HFBackend)
    assert made == {"model": "/models/tiny", "batch_size": 4}
    cfg = load_data_config(SynthConfig, "synth", RECIPE, [])
    with pytest.raises(ConfigError, match=r"teacher\.model is required"):
        get_teacher(cfg.teacher)


def test_recipe_validation_names_the_problem(tmp_path):
    bad = tmp_path / "data.yaml"
    bad.write_text("synth:\n  categories:\n    dx:\n      teacher_prompt: 'no placeholder'\n")
    with pytest.raises(ConfigError, match=r"categories.dx.teacher_prompt must contain "
                                          r"\{problem\}"):
        load_data_config(SynthConfig, "synth", bad)
    bad.write_text("synth: {}\nsynthh: {}\n")
    with pytest.raises(ConfigError, match="unknown top-level key"):
        load_data_config(SynthConfig, "synth", bad)
    with pytest.raises(ConfigError, match="did you mean"):
        load_data_config(SynthConfig, "synth", RECIPE, ["--max_attempt", "3"])


def test_shipped_recipes_load():
    root = ROOT / "recipes"
    synth = load_data_config(SynthConfig, "synth", root / "gazal-r1-32b" / "data.yaml")
    assert list(synth.categories) == ["diagnostic_reasoning", "treatment_planning",
                                      "decision_under_uncertainty", "prognostic_assessment"]
    assert all(c.vignette_task for c in synth.categories.values())
    from gazal.data.config import CurateConfig

    for name in ("gazal-r1-32b", "demo"):
        cur = load_data_config(CurateConfig, "curate", root / name / "data.yaml")
        assert cur.decontam.ngram_n == 13


# --------------------------------------------------------------------------- failing teachers


def _synth_args(tmp_path, url, *extra):
    return ["data", "synth", str(RECIPE), "--out", str(tmp_path / "run"), "--no-progress",
            "--seeds.path", str(tmp_path / "seeds.jsonl"), "--teacher.model", "t",
            "--teacher.base_url", url, "--teacher.api_key_env", "GAZAL_TEST_KEY",
            "--teacher.concurrency", "1", "--teacher.max_retries", "1",
            "--teacher.backoff_base_s", "0.01", "--teacher.backoff_max_s", "0.02",
            "--data_dir", str(tmp_path / "none"), "--max_consecutive_failures", "3", *extra]


@pytest.mark.parametrize("failure", ["bad key", "unreachable"])
def test_a_failing_teacher_stops_the_run_and_a_rerun_retries_everything(
        tmp_path, capsys, monkeypatch, failure):
    monkeypatch.setenv("GAZAL_TEST_KEY", "sk-wrong")
    seeds = write_seeds(tmp_path / "seeds.jsonl", ["q1", "q2", "q3"])
    gold = {q: row["answer"] for q, row in seeds.items()}
    fixed = threading.Event()

    def handler(req, n):
        if not fixed.is_set():
            return Reply(401, {"error": {"message": "Incorrect API key provided"}})
        return completion(reply(gold[question_of(req)]))

    with ScriptedServer(handler) as srv:
        url = srv.url if failure == "bad key" else "http://127.0.0.1:9/v1"  # nothing listens
        assert main(_synth_args(tmp_path, url)) == 2
        err = capsys.readouterr().err
        assert "gazal data: error: the teacher failed 3 requests in a row" in err
        assert ("HTTP 401" if failure == "bad key" else "from http://127.0.0.1:9") in err
        assert "TeacherUnavailable" not in err and "sk-wrong" not in err  # no traceback
        run = tmp_path / "run"
        assert not (run / REJECTED).exists() or read_jsonl(run / REJECTED) == []
        assert read_jsonl(run / "examples.jsonl") == []
        summary = json.loads((run / "summary.json").read_text())
        assert not summary["complete"] and "failed 3 requests in a row" in summary["stopped"]
        assert summary["this_run"]["outcomes"] == {"backend_error": 3}
        # the teacher is fixed: the re-run retries every unit and completes
        fixed.set()
        assert main(_synth_args(tmp_path, srv.url)) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["complete"] and summary["examples"] == 12 and summary["given_up"] == 0
    assert summary["all_runs"]["runs"] == 2 and summary["all_runs"]["attempts"] == 15


def test_units_that_met_a_failed_request_are_left_to_do_not_given_up(tmp_path):
    seeds = write_seeds(tmp_path / "seeds.jsonl", ["q1", "q2"])
    gold = {q: row["answer"] for q, row in seeds.items()}
    cfg = make_cfg(tmp_path, tmp_path / "seeds.jsonl", "http://127.0.0.1:9", max_attempts=2)
    cfg.categories = {"diagnostic_reasoning": cfg.categories["diagnostic_reasoning"]}
    q1, q2 = QUESTIONS["q1"][0], QUESTIONS["q2"][0]

    def answer(conv, params):
        user = conv[-1]["content"]
        if q1 in user:  # never reaches the teacher, but the failures are not in a row
            return Generation(text="", finish_reason="error", error="HTTP 503")
        return Generation(text=reply("A" if gold[q2] != "A" else "B"), finish_reason="stop")

    summary = synthesize(cfg, tmp_path / "run", progress=False, teacher=FakeTeacher(answer))
    assert summary["given_up"] == 1 and summary["this_run"]["unanswered"] == 1
    assert not summary["complete"]
    [rejected] = read_jsonl(tmp_path / "run" / REJECTED)
    assert seed_ids(tmp_path / "seeds.jsonl")[rejected["seed_id"]] == "q2"

    def good(conv, params):
        user = conv[-1]["content"]
        return Generation(text=reply(gold[q1 if q1 in user else q2]), finish_reason="stop")

    teacher = FakeTeacher(good)
    summary = synthesize(cfg, tmp_path / "run", progress=False, teacher=teacher)
    assert len(teacher.conversations) == 1 and q1 in teacher.conversations[0][-1]["content"]
    assert summary["complete"] and summary["examples"] == 1 and summary["given_up"] == 1


def test_units_given_up_by_failed_requests_before_the_fix_are_retried(tmp_path, caplog):
    seeds = write_seeds(tmp_path / "seeds.jsonl", ["q1", "q2"])
    gold = {q: row["answer"] for q, row in seeds.items()}
    cfg = make_cfg(tmp_path, tmp_path / "seeds.jsonl", "http://127.0.0.1:9", max_attempts=2)
    cfg.categories = {"diagnostic_reasoning": cfg.categories["diagnostic_reasoning"]}
    ids = {k: example_id("seeds", i, "diagnostic_reasoning")
           for i, k in seed_ids(tmp_path / "seeds.jsonl").items()}
    run = tmp_path / "run"
    run.mkdir()
    (run / REJECTED).write_text(
        json.dumps({"id": ids["q1"], "attempts": ["backend_error", "backend_error"]}) + "\n"
        + json.dumps({"id": ids["q2"], "attempts": ["wrong_answer", "wrong_answer"]}) + "\n")

    def good(conv, params):
        user = conv[-1]["content"]
        q = next(q for q in gold if q in user)
        return Generation(text=reply(gold[q]), finish_reason="stop")

    teacher = FakeTeacher(good)
    with caplog.at_level(logging.WARNING, logger="gazal"):
        summary = synthesize(cfg, run, progress=False, teacher=teacher)
    assert "1 unit(s) were given up only because requests to the teacher failed" in caplog.text
    assert len(teacher.conversations) == 1  # q1 only; q2 had real replies
    assert [r["id"] for r in read_jsonl(run / REJECTED)] == [ids["q2"]]
    assert [r["id"] for r in read_jsonl(run / "examples.jsonl")] == [ids["q1"]]
    assert summary["complete"]


def test_request_seeds_follow_the_unit_not_the_batch(tmp_path):
    write_seeds(tmp_path / "seeds.jsonl", ["q1", "q2", "q3", "q4"])
    cfg = make_cfg(tmp_path, tmp_path / "seeds.jsonl", "http://127.0.0.1:9",
                   **{"seed": 7, "chunk_size": 3})

    def bad(conv, params):  # every reply rejected: each unit gets all its attempts
        return Generation(text="no format", finish_reason="stop")

    def sent(teacher):
        return Counter((c[-1]["content"], s) for c, s in zip(teacher.conversations,
                                                              teacher.seeds, strict=True))

    whole = FakeTeacher(bad)
    synthesize(cfg, tmp_path / "whole", progress=False, teacher=whole)
    # a resumed run: the first units were done by an earlier run
    from gazal.data.seeds import load_seeds

    units = build_units(load_seeds(cfg.seeds, cfg.data_dir), cfg)
    resumed_dir = tmp_path / "resumed"
    resumed_dir.mkdir()
    (resumed_dir / "examples.jsonl").write_text(
        "".join(json.dumps({"id": u.id}) + "\n" for u in units[:5]))
    resumed = FakeTeacher(bad)
    synthesize(cfg, resumed_dir, progress=False, teacher=resumed)
    left = {u.teacher_messages[-1]["content"] for u in units[5:]}
    expected = Counter({k: v for k, v in sent(whole).items() if k[0] in left})
    assert sent(resumed) == expected and len(expected) == len(left) * cfg.max_attempts
    for u in units:
        prompt = u.teacher_messages[-1]["content"]
        assert {s for text, s in sent(whole) if text == prompt} == \
            {request_seed(7, u.id, a) for a in range(cfg.max_attempts)}
    assert len(set(whole.seeds)) == len(whole.seeds)  # no two requests share a seed


def test_teacher_unavailable_is_a_config_error():
    assert issubclass(TeacherUnavailable, ConfigError)  # one line and exit 2 everywhere


def test_cost_totals_survive_a_kill(tmp_path):
    write_seeds(tmp_path / "seeds.jsonl", ["q1", "q2", "q3"])
    cfg = make_cfg(tmp_path, tmp_path / "seeds.jsonl", "http://127.0.0.1:9",
                   **{"teacher.price_input_per_1m": 1.0, "chunk_size": 2})
    seeds = {r["question"]: r for r in map(json.loads,
                                            (tmp_path / "seeds.jsonl").read_text().splitlines())}

    def answer(conv, params):
        q = next(q for q in seeds if q in conv[-1]["content"])
        return Generation(text=reply(seeds[q]["answer"]), finish_reason="stop",
                          n_prompt_tokens=1000, n_completion_tokens=10)

    class Killed(BaseException):
        pass

    class DiesAfter(FakeTeacher):
        def __init__(self, n):
            super().__init__(answer)
            self.left = n

        def generate(self, conversations, params, on_result=None, seeds=None):
            def counted(i, gen):
                if self.left == 0:
                    raise Killed  # like a kill -9: no summary is written
                self.left -= 1
                on_result(i, gen)
            return super().generate(conversations, params, counted, seeds)

    unbroken = synthesize(cfg, tmp_path / "whole", progress=False, teacher=FakeTeacher(answer))
    with pytest.raises(Killed):
        synthesize(cfg, tmp_path / "run", progress=False, teacher=DiesAfter(5))
    assert not (tmp_path / "run" / "summary.json").exists()
    resumed = synthesize(cfg, tmp_path / "run", progress=False, teacher=FakeTeacher(answer))
    assert resumed["this_run"]["attempts"] == 12 - 5
    for key in ("attempts", "prompt_tokens", "completion_tokens", "estimated_cost", "outcomes"):
        assert resumed["all_runs"][key] == unbroken["all_runs"][key], key
    assert resumed["all_runs"]["estimated_cost"] == 0.012

    # a folder written before attempts.jsonl existed carries its totals over
    old = tmp_path / "old"
    old.mkdir()
    (old / "summary.json").write_text(json.dumps({"all_runs": {
        "attempts": 7, "prompt_tokens": 70, "completion_tokens": 7, "outcomes": {"kept": 7},
        "seconds": 1.0, "runs": 1}}))
    carried = synthesize(cfg, old, progress=False, teacher=FakeTeacher(answer))
    assert carried["all_runs"]["attempts"] == 19 and carried["all_runs"]["runs"] == 2
    assert carried["all_runs"]["prompt_tokens"] == 12070
    assert carried["all_runs"]["outcomes"] == {"kept": 19}
