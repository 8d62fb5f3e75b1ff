"""gazal demo: the demo pipeline's configuration (seeds, --set, recipe paths) and its summary;
the reduced end-to-end demo (real learning gain with a fixed seed) is in
test_demo_end_to_end.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from gazal.config import ConfigError
from gazal.demo.run import DEMO_RECIPE, SEEDED, demo_config


def _stage(cfg, name):
    return next(s for s in cfg.stages if s.name == name)


def test_demo_recipe_is_found_and_every_seed_is_set(tmp_path):
    assert DEMO_RECIPE.exists()
    cfg = demo_config(tmp_path / "out", 7)
    assert cfg.output_dir == str(tmp_path / "out")
    kinds = [s.kind for s in cfg.stages]
    assert kinds == ["toy_task", "pretrain", "sft", "merge", "eval", "grpo", "eval", "report"]
    for stage in cfg.stages:
        for key in SEEDED.get(stage.kind, ()):
            assert stage.overrides[key] == 7, (stage.name, key)
        if stage.recipe:  # absolute: the demo runs from any working directory
            assert Path(stage.recipe).is_absolute() and Path(stage.recipe).exists()


def test_set_changes_one_stage_with_yaml_values(tmp_path):
    cfg = demo_config(tmp_path, 0, settings=["grpo.train.max_steps=3",
                                             "pretrain.learning_rate=0.001",
                                             "sft.lora.r=4"])
    assert _stage(cfg, "grpo").overrides["train.max_steps"] == 3
    assert _stage(cfg, "pretrain").overrides["learning_rate"] == pytest.approx(1e-3)
    assert _stage(cfg, "sft").overrides["lora.r"] == 4


@pytest.mark.parametrize("setting, message", [
    ("grpo", "expected STAGE.KEY=VALUE"),
    ("grpo.train.max_steps", "expected STAGE.KEY=VALUE"),
    ("nosuch.x=1", "no stage 'nosuch'"),
])
def test_bad_set_is_a_clear_error(tmp_path, setting, message):
    with pytest.raises(ConfigError, match=message):
        demo_config(tmp_path, 0, settings=[setting])


def test_missing_recipe_says_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match="runs from a clone"):
        demo_config(tmp_path, 0, recipe=tmp_path / "nope.yaml")


@pytest.mark.parametrize("recipe", ["recipes/demo/pipeline.yaml", "recipes/qwen3-0.6b/pipeline.yaml"])
def test_pipeline_recipes_resolve_every_stage(tmp_path, recipe):
    """Each stage's own recipe + wiring + overrides loads into its typed config (no weights)."""
    from gazal.config import load_config
    from gazal.demo.stages import register_stages
    from gazal.eval.config import EvalConfig
    from gazal.pipeline import PipelineConfig, StageContext, stage_settings
    from gazal.train.config import SFTRecipe
    from gazal.train.grpo_config import GRPORecipe

    register_stages()  # the demo recipe names toy_task and pretrain
    root = DEMO_RECIPE.parents[2]
    cfg = load_config(PipelineConfig, root / recipe)
    classes = {"sft": SFTRecipe, "grpo": GRPORecipe, "eval": EvalConfig}
    checked = 0
    for i, spec in enumerate(cfg.stages):
        if spec.kind not in classes:
            continue
        ctx = StageContext(spec=spec, run_dir=tmp_path, before=cfg.stages[:i], echo=print)
        path = root / spec.recipe if spec.recipe else None
        loaded = load_config(classes[spec.kind], path, stage_settings(ctx))
        if spec.kind == "grpo":
            assert loaded.model.name_or_path == str(tmp_path / "merge" / "model")
        if spec.kind == "sft" and "demo" in recipe:  # wired by the demo's pretrain stage
            assert loaded.model.name_or_path == str(tmp_path / "pretrain" / "model")
        checked += 1
    assert checked >= 3
