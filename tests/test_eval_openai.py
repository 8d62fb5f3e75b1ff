"""``gazal eval --backend openai`` against a real local OpenAI-compatible HTTP server: a 429
then success, a timeout, a malformed reply, failed requests retried on re-run, and the API key
never written anywhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

from support.openai_server import Reply, ScriptedServer, completion
from support.tiny_eval import clinical_items, loaded

from gazal.benchmarks import load_benchmark
from gazal.config import load_config
from gazal.eval.config import EvalConfig
from gazal.eval.runner import run_eval
from gazal.eval.subset import limit_items
from gazal.formatting import render_assistant
from gazal.io import read_jsonl

SRC = str(Path(__file__).resolve().parents[1] / "src")
KEY = "sk-gazal-TEST-KEY-0123456789"


def question_of(request):
    user = request["messages"][-1]["content"]
    return user.split("Question: ", 1)[1].split("\nOptions:", 1)[0].strip()


def test_openai_backend_end_to_end_with_faults(tmp_path, data_dir):
    # --limit 3 takes the stratified sample (gazal.eval.subset), the same every run
    items = [it for name in ("medqa", "pubmedqa")
             for it in limit_items(load_benchmark(name, data_dir).items, 3, benchmark=name)]
    by_question = {it.question.strip(): (k, it) for k, it in enumerate(items)}
    seen: dict[int, int] = {}
    lock = threading.Lock()

    def handler(req, n):
        k, item = by_question[question_of(req)]
        with lock:
            seen[k] = seen.get(k, 0) + 1
            first = seen[k] == 1
        if k == 0 and first:  # rate limited, with the key echoed back: it must be scrubbed
            return Reply(429, {"error": f"slow down {KEY}"}, headers={"Retry-After": "0"})
        if k == 1 and first:
            return Reply(200, completion("late").body, delay=1.5)  # client times out
        if k == 2 and first:
            return Reply(200, b'{"choices": [}')  # malformed JSON
        if k == 4:  # cut at the token limit while thinking
            return completion("<think>\nStep 1: long", finish_reason="length")
        letter = item.answer if k % 2 == 0 else next(x for x in item.options if x != item.answer)
        return completion(render_assistant(["Weigh the findings."], "Fits best.", letter,
                                           item.options[letter]), prompt_tokens=50)

    out = tmp_path / "run"
    env = dict(os.environ, GAZAL_TEST_KEY=KEY, PYTHONPATH=SRC)
    with ScriptedServer(handler) as srv:
        res = subprocess.run(
            [sys.executable, "-m", "gazal", "-v", "eval", "--backend", "openai",
             "--model", "served-model", "--benchmarks", "medqa,pubmedqa", "--limit", "3",
             "--data-dir", str(data_dir), "--out", str(out), "--max-new-tokens", "64",
             "--openai.base_url", srv.url, "--openai.api_key_env", "GAZAL_TEST_KEY",
             "--openai.timeout_s", "0.5", "--openai.backoff_base_s", "0.01",
             "--openai.backoff_max_s", "0.02", "--openai.concurrency", "2"],
            capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr
    assert all(h["Authorization"] == f"Bearer {KEY}" for h in srv.headers)
    assert srv.requests[0]["model"] == "served-model" and srv.requests[0]["max_tokens"] == 64
    # the 429, the timeout and the malformed reply were each retried once
    assert seen[0] == 2 and seen[1] == 2 and seen[2] == 2 and seen[3] == 1
    assert "retry" in res.stderr  # -v logs each retry
    records = read_jsonl(out / "responses.jsonl")
    assert [r["id"] for r in records] == [it.id for it in items]
    # correct for k = 0, 2 (k = 4 is truncated), wrong for odd k
    assert [r["correct"] for r in records] == [True, False, True, False, False, False]
    assert records[4]["truncated"] and records[4]["finish_reason"] == "length"
    assert records[0]["n_prompt_tokens"] == 50
    summary = json.loads((out / "summary.json").read_text())
    assert summary["accuracy"] == 2 / 6 and summary["benchmarks"]["pubmedqa"]["truncated"] == 1 / 3

    # gazal score on the responses gives the same numbers
    rescored = subprocess.run([sys.executable, "-m", "gazal", "score",
                               str(out / "responses.jsonl"), "--out", str(tmp_path / "s")],
                              capture_output=True, text=True, env=env)
    assert rescored.returncode == 0, rescored.stderr
    theirs = json.loads((tmp_path / "s" / "summary.json").read_text())
    for key in ("accuracy", "accuracy_ci95", "missing", "truncated", "benchmarks"):
        assert summary[key] == theirs[key], key

    # the key is nowhere: not in any output file, not in the config, logs or console
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"config.yaml", "eval.log", "responses.jsonl",
                                       "summary.json", "results.md", "plan.json"}
    assert "slow down ***" in (out / "eval.log").read_text()  # the echo was logged, scrubbed
    for p in files:
        assert KEY not in p.read_text(errors="replace"), p
    assert KEY not in res.stdout and KEY not in res.stderr
    assert "api_key_env: GAZAL_TEST_KEY" in (out / "config.yaml").read_text()


def test_failed_requests_are_not_recorded_and_rerun_retries_them(tmp_path):
    items = [loaded(clinical_items(4))]
    broken = {"on": True}

    def handler(req, n):
        if broken["on"] and question_of(req).startswith("Case 2."):
            return Reply(400, {"error": "context length exceeded"})
        return completion("The answer is (B).")

    with ScriptedServer(handler) as srv:
        args = ["--model", "m", "--backend", "openai", "--openai.base_url", srv.url,
                "--openai.api_key_env", "null", "--out", str(tmp_path / "run"),
                "--progress", "false"]
        cfg = load_config(EvalConfig, None, args)
        summary = run_eval(cfg, benchmarks=items)
        assert not summary["complete"] and summary["failed"] == 1 and summary["n"] == 3
        assert "context length exceeded" in summary["errors"][0]
        assert "Incomplete run" in (tmp_path / "run" / "results.md").read_text()
        sent = len(srv.requests)
        broken["on"] = False
        summary = run_eval(cfg, benchmarks=items)
        assert summary["complete"] and summary["n"] == 4
        assert len(srv.requests) == sent + 1  # only the failed one was asked again
