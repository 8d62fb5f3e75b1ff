"""Budget forcing: a response cut at its budget with open thinking gets `</think>` and the
final-answer prefix and a few more tokens; reported beside the unforced result; resumable."""

from __future__ import annotations

import json

import pytest
from support.tiny_eval import clinical_items, loaded, tiny_model_dir

from gazal.config import ConfigError, load_config
from gazal.eval.config import EvalConfig
from gazal.eval.forcing import FORCE_SUFFIX, apply_forcing, needs_forcing
from gazal.eval.runner import run_eval
from gazal.io import read_jsonl


def test_needs_forcing_and_scoring_of_the_forced_answer():
    base = {"id": "q", "sample_index": 0, "options": {"A": "x", "B": "y"}, "answer": "B",
            "extracted": None, "correct": False}
    cut = {**base, "response": "<think>\nStep 1: long", "finish_reason": "length"}
    assert needs_forcing(cut)
    assert not needs_forcing({**cut, "finish_reason": "stop"})
    assert not needs_forcing({**cut, "response": "<think>\nok\n</think>\n\nmore"})
    rec = apply_forcing(cut, {"continuation": "B) y**", "n_forced_tokens": 4})
    assert rec["forced_answer"] == FORCE_SUFFIX + "B) y**"
    assert rec["forced_extracted"] == "B" and rec["forced_correct"] is True
    assert rec["correct"] is False and rec["response"] == cut["response"]  # unforced kept
    plain = apply_forcing({**base, "extracted": "B", "correct": True}, None)
    assert plain["forced_answer"] is None and plain["forced_correct"] is True


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    from gazal.generation.hf import HFBackend

    return HFBackend(str(tiny_model_dir(str(tmp_path_factory.mktemp("forcing")))),
                     batch_size=2)


def config(backend, out, **kw):
    values = {"model": backend.model.name_or_path, "out": str(out), "max_new_tokens": 4,
              "batch_size": 2, "progress": False, **kw}
    return load_config(EvalConfig, None, [f"--{k}={v}" for k, v in values.items()])


def test_forced_run_reports_both_and_resumes(backend, tmp_path, monkeypatch):
    items = [loaded(clinical_items(4))]
    run_eval(config(backend, tmp_path / "plain"), backend=backend, benchmarks=items)
    calls = []
    original = backend.generate_batch
    monkeypatch.setattr(backend, "generate_batch",
                        lambda ids, p: calls.append((ids, p)) or original(ids, p))
    out = tmp_path / "forced"
    summary = run_eval(config(backend, out, force_answer_tokens=3), backend=backend,
                       benchmarks=items)
    plain = read_jsonl(tmp_path / "plain" / "responses.jsonl")
    records = read_jsonl(out / "responses.jsonl")
    # the unforced results are exactly those of a run without forcing
    for a, b in zip(plain, records, strict=True):
        assert {k: b[k] for k in a} == a
    forced = [r for r in records if r["forced_answer"] is not None]
    assert forced and all(needs_forcing(r) for r in forced)
    assert all(r["forced_answer"].startswith(FORCE_SUFFIX) and 0 < r["n_forced_tokens"] <= 3
               for r in forced)
    # the forced prompts: chat prompt + the response + the suffix, at most 3 new tokens
    forced_calls = [(ids, p) for ids, p in calls if p.max_new_tokens == 3]
    assert sum(len(ids) for ids, _ in forced_calls) == len(forced)
    tok = backend.tokenizer
    texts = [tok.decode(x) for ids, _ in forced_calls for x in ids]
    assert all(t.endswith(FORCE_SUFFIX) or t.endswith(FORCE_SUFFIX.strip()) for t in texts)
    assert any(r["response"] in t for r in forced for t in texts)
    f = summary["forcing"]
    assert f["forced"] == len(forced) and f["answer_tokens"] == 3
    assert f["accuracy_unforced"] == summary["accuracy"]
    assert "## Budget forcing" in (out / "results.md").read_text()
    assert len(read_jsonl(out / "forced.jsonl")) == len(forced)
    # a re-run of the finished run generates nothing and writes the same file
    before = (out / "responses.jsonl").read_bytes()
    calls.clear()
    run_eval(config(backend, out, force_answer_tokens=3), backend=backend, benchmarks=items)
    assert calls == [] and (out / "responses.jsonl").read_bytes() == before
    # a forced pass cut short: the batch is regenerated whole, the result the same
    lines = (out / "forced.jsonl").read_text().splitlines()
    (out / "forced.jsonl").write_text("\n".join(lines[:1]) + "\n")
    run_eval(config(backend, out, force_answer_tokens=3), backend=backend, benchmarks=items)
    assert (out / "responses.jsonl").read_bytes() == before
    assert json.loads((out / "summary.json").read_text())["forcing"] == f


def test_forcing_needs_a_backend_that_continues_token_ids():
    with pytest.raises(ConfigError, match="the hf and vllm backends do"):
        load_config(EvalConfig, None, ["--model", "m", "--backend", "openai",
                                       "--force-answer-tokens", "16"])
    with pytest.raises(ConfigError, match="key 'force_answer_tokens'"):
        load_config(EvalConfig, None, ["--model", "m", "--force-answer-tokens", "0"])
