"""gazal pipeline: stages run into subfolders, complete ones are skipped on re-run, a changed
stage is refused, a failed one is re-entered; wiring between stages."""

from __future__ import annotations

import json

import pytest
import yaml

from gazal.cli import main
from gazal.config import ConfigError, load_config
from gazal.demo.stages import register_stages
from gazal.pipeline import PipelineConfig, StageContext, StageSpec, run_pipeline, wiring


def recipe(tmp_path, stages, name="p.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"output_dir": str(tmp_path / "run"), "stages": stages}))
    return path


TINY_PRETRAIN = {"steps": 2, "hidden_size": 32, "num_layers": 1, "num_heads": 2,
                 "num_kv_heads": 1, "batch_size": 4, "vocab_size": 400}


def test_runs_skips_and_resumes(tmp_path, capsys):
    stages = [{"name": "task", "kind": "toy_task", "overrides": {"pretrain_paragraphs": 40}},
              {"name": "pretrain", "kind": "pretrain", "overrides": TINY_PRETRAIN},
              {"name": "report", "kind": "report"}]
    path = recipe(tmp_path, stages)
    assert main(["pipeline", str(path)]) == 0
    run = tmp_path / "run"
    manifest = json.loads((run / "pipeline.json").read_text())
    assert [s["status"] for s in manifest["stages"]] == ["complete"] * 3
    assert manifest["stages"][0]["numbers"]["heldout"] == 320
    assert (run / "pretrain" / "model" / "config.json").exists()
    assert (run / "pretrain" / "new_token_ids.json").exists()
    assert (run / "report" / "report.md").exists()
    out = capsys.readouterr().out
    assert "stage" in out and "key numbers" in out  # the closing table

    # A re-run skips every complete stage.
    mtime = (run / "pretrain" / "model" / "model.safetensors").stat().st_mtime
    assert main(["pipeline", str(path)]) == 0
    assert "[pretrain] complete, skipped" in capsys.readouterr().out
    assert (run / "pretrain" / "model" / "model.safetensors").stat().st_mtime == mtime

    # A changed stage is refused, naming it.
    stages[1]["overrides"] = {**TINY_PRETRAIN, "steps": 3}
    assert main(["pipeline", str(recipe(tmp_path, stages))]) == 2
    assert "stage 'pretrain' was completed with a different configuration" in \
        capsys.readouterr().err


def test_failed_stage_is_reentered(tmp_path, monkeypatch):
    from gazal import pipeline

    calls = []

    def flaky(ctx, pairs):
        calls.append(ctx.spec.name)
        if len(calls) == 1:
            raise RuntimeError("killed")
        return {"ok": 1}

    monkeypatch.setitem(pipeline.RUNNERS, "report", flaky)
    register_stages()  # the demo's toy_task kind (gazal pipeline and gazal demo do this)
    cfg = load_config(PipelineConfig, None, base={
        "output_dir": str(tmp_path / "run"),
        "stages": [{"name": "task", "kind": "toy_task",
                    "overrides": {"pretrain_paragraphs": 4}},
                   {"name": "r", "kind": "report"}]})
    with pytest.raises(RuntimeError, match="killed"):
        run_pipeline(cfg, echo=lambda s: None)
    state = json.loads((tmp_path / "run" / "pipeline.json").read_text())
    assert [s["status"] for s in state["stages"]] == ["complete", "failed"]
    assert "killed" in state["stages"][1]["error"]
    lines = []
    run_pipeline(cfg, echo=lines.append)
    assert calls == ["r", "r"] and "[r] resuming report" in lines


def test_wiring_between_stages(tmp_path):
    specs = [StageSpec(name=n, kind=k) for n, k in (
        ("syn", "synth"), ("cur", "curate"), ("sft", "sft"), ("m1", "merge"),
        ("grpo", "grpo"), ("ev", "eval"))]
    run = tmp_path / "run"

    def wired(i):
        return dict(wiring(StageContext(specs[i], run, specs[:i], echo=print)))

    assert wired(1)["input"] == str(run / "syn" / "examples.jsonl")
    assert wired(2)["data.train"] == [{"path": str(run / "cur" / "kept.jsonl"),
                                       "format": "messages"}]
    assert wired(3)["adapter"] == str(run / "sft" / "adapter")
    assert wired(4)["model.name_or_path"] == str(run / "m1" / "model")
    assert wired(5) == {"out": str(run / "ev"), "model": str(run / "m1" / "model"),
                        "adapter": str(run / "grpo" / "adapter")}


def test_the_demo_pretrain_stage_wires_sft(tmp_path):
    register_stages()
    specs = [StageSpec(name="pre", kind="pretrain"), StageSpec(name="s", kind="sft"),
             StageSpec(name="m", kind="merge")]
    run = tmp_path / "run"
    (run / "pre").mkdir(parents=True)
    (run / "pre" / "new_token_ids.json").write_text("[7, 9]")
    sft = wiring(StageContext(specs[1], run, specs[:1], echo=print))
    assert sft == [("output_dir", str(run / "s")),
                   ("model.name_or_path", str(run / "pre" / "model")),
                   ("lora.trainable_token_indices", [7, 9])]
    merge = dict(wiring(StageContext(specs[2], run, specs[:2], echo=print)))
    assert merge == {"adapter": str(run / "s" / "adapter")}  # pretrain wires SFT only


def test_config_errors():
    with pytest.raises(ConfigError, match="stage names repeat: a"):
        load_config(PipelineConfig, None, base={"output_dir": "x", "stages": [
            {"name": "a", "kind": "sft"}, {"name": "a", "kind": "eval"}]})
    with pytest.raises(ConfigError, match=r"'stages\[0\]\.kind'.*did you mean 'grpo'"):
        load_config(PipelineConfig, None, base={"output_dir": "x", "stages": [
            {"name": "a", "kind": "gpro"}]})
    register_stages()
    with pytest.raises(ConfigError, match=r"unknown stage kind 'pretrian'; did you mean "
                                          r"'pretrain'\? Registered stage kinds: synth, .*, "
                                          r"report, toy_task, pretrain"):
        load_config(PipelineConfig, None, base={"output_dir": "x", "stages": [
            {"name": "a", "kind": "pretrian"}]})
    with pytest.raises(ConfigError, match="stage name 'a b'"):
        load_config(PipelineConfig, None, base={"output_dir": "x", "stages": [
            {"name": "a b", "kind": "sft"}]})


def test_register_stage(monkeypatch):
    from gazal import pipeline

    def mine(ctx, pairs):
        return {}

    monkeypatch.setattr(pipeline, "RUNNERS", dict(pipeline.RUNNERS))
    with pytest.raises(ConfigError, match=r"'stages\[0\]\.kind': unknown stage kind 'mine'"):
        load_config(PipelineConfig, None, base={"output_dir": "x", "stages": [
            {"name": "a", "kind": "mine"}]})
    pipeline.register_stage("mine", mine)
    pipeline.register_stage("mine", mine)  # the same runner again: a no-op
    assert "mine" in pipeline.stage_kinds()
    cfg = load_config(PipelineConfig, None, base={"output_dir": "x", "stages": [
        {"name": "a", "kind": "mine"}]})
    assert cfg.stages[0].kind == "mine"
    with pytest.raises(ValueError, match="'sft' is already registered"):
        pipeline.register_stage("sft", mine)
