"""``gazal eval`` with a real pretrained chat model (SmolLM2-135M-Instruct, no thinking mode) on
real MedQA items: its answers are extracted and scored, and results.md does not claim a
thinking mode the template lacks."""

from __future__ import annotations

import json

from gazal.config import load_config
from gazal.eval.config import EvalConfig
from gazal.eval.runner import run_eval
from gazal.io import read_jsonl


def test_a_non_thinking_chat_model_is_scored(smollm2_dir, data_dir, tmp_path):
    out = tmp_path / "eval"
    cfg = load_config(EvalConfig, None, [
        "--model", str(smollm2_dir), "--out", str(out), "--benchmarks", "medqa",
        "--limit", "8", "--max_new_tokens", "48", "--batch_size", "8", "--device", "cpu",
        "--data_dir", str(data_dir), "--progress", "false"])
    summary = run_eval(cfg)
    records = read_jsonl(out / "responses.jsonl")
    assert len(records) == 8 and summary["generation"]["template_thinking"] is False
    assert "no thinking mode" in (out / "results.md").read_text()
    # a real model, not noise: it answers, and names options that extraction finds
    assert all(r["response"].strip() for r in records)
    extracted = [r for r in records if r["extraction_rule"] != "none"]
    assert len(extracted) >= 4, [r["response"][:80] for r in records]
    assert not any("<think>" in r["response"] for r in records)
    saved = json.loads((out / "summary.json").read_text())
    assert saved["generation"]["template_thinking"] is False
