"""The GRPO recipe: TRL's batch arithmetic rejected at config time (with the fix, and in
agreement with TRL's own checks), extra keys, recipes, the dry run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gazal.config import ConfigError, load_config
from gazal.train.grpo import build_grpo_config
from gazal.train.grpo_config import GRPORecipe, check_batch_arithmetic

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ["recipes/gazal-r1-32b/grpo.yaml", "recipes/qwen3-0.6b/grpo.yaml",
           "recipes/demo/grpo.yaml"]
BASE = ["--output_dir", "x", "--model.name_or_path", "m", "--data.train",
        "[{path: rl.jsonl}]", "--max_completion_length", "64",
        "--reward.length.max_tokens", "64"]


def recipe(*extra: str) -> GRPORecipe:
    return load_config(GRPORecipe, None, [*BASE, *extra])


def trl_accepts(per: int, accum: int, G: int, gbs=None, spg=None) -> bool:
    from trl import GRPOConfig

    try:
        GRPOConfig(output_dir="unused", per_device_train_batch_size=per,
                   gradient_accumulation_steps=accum, num_generations=G,
                   generation_batch_size=gbs, steps_per_generation=spg, bf16=False,
                   report_to="none")
    except ValueError:
        return False
    return True


# (per_device, grad_accum, num_generations, generation_batch_size, steps_per_generation,
#  expected message or None when valid)
CASES = [
    (8, 1, 8, None, None, None),
    (4, 1, 8, None, None, "= 4 completions\\) must be divisible by grpo.num_generations \\(8\\)"
                          ".*per_device_train_batch_size to a multiple of 8 \\(e\\.g\\. 8\\), "
                          "or grpo\\.num_generations to a divisor of 4 \\(e\\.g\\. 4\\)"),
    (4, 2, 8, None, None, None),  # the generation batch spans the accumulation steps
    (4, 2, 8, None, 1, "4 per device x 1 process\\(es\\) x 1 step\\(s\\) per generation"),
    (4, 1, 8, None, 2, None),
    (6, 1, 4, None, None, "= 6 completions\\) must be divisible by grpo.num_generations \\(4\\)"
                          ".*multiple of 4 \\(e\\.g\\. 8\\), or grpo.num_generations to a divisor "
                          "of 6 \\(e\\.g\\. 3\\)"),
    (6, 2, 4, None, None, None),
    (3, 3, 6, None, None, "= 9 completions.*multiple of 2 \\(e\\.g\\. 4\\)"),
    (4, 1, 8, 16, None, None),
    (4, 1, 8, 12, None, "= 12 completions\\) must be divisible.*set "
                        "grpo.generation_batch_size to a multiple of 8"),
    (4, 1, 8, 10, None, "generation_batch_size \\(10\\) must be a multiple of the global "
                        "micro-batch .* set it to 12"),
    (4, 1, 8, 16, 4, "cannot both be set"),
    (8, 1, 1, None, None, "num_generations must be >= 2"),
]


@pytest.mark.parametrize(("per", "accum", "G", "gbs", "spg", "error"), CASES)
def test_batch_arithmetic_is_rejected_at_config_time_like_trl_does(per, accum, G, gbs, spg,
                                                                   error):
    args = ["--per_device_train_batch_size", str(per), "--gradient_accumulation_steps",
            str(accum), "--num_generations", str(G)]
    if gbs is not None:
        args += ["--generation_batch_size", str(gbs)]
    if spg is not None:
        args += ["--steps_per_generation", str(spg)]
    if error is None:
        r = recipe(*args)
        build_grpo_config(r, "unused")  # TRL agrees
    else:
        with pytest.raises(ConfigError, match=error):
            recipe(*args)
    assert trl_accepts(per, accum, G, gbs, spg) == (error is None)


def test_the_suggested_fixes_work_and_processes_count():
    from gazal.train.grpo_config import GRPOSection, GRPOTrainSection

    g, t = GRPOSection(num_generations=16), GRPOTrainSection(per_device_train_batch_size=8)
    with pytest.raises(ConfigError, match=r"8 per device x 3 process\(es\) x 1 step.*"
                                          r"multiple of 16 \(e\.g\. 16\)"):
        check_batch_arithmetic(g, t, world_size=3)
    assert check_batch_arithmetic(g, t, world_size=2)["prompts_per_generation"] == 1
    t16 = GRPOTrainSection(per_device_train_batch_size=16)
    sizes = check_batch_arithmetic(g, t16, world_size=3)
    assert sizes == {"generation_batch_size": 48, "steps_per_generation": 1,
                     "prompts_per_generation": 3, "completions_per_optimizer_step": 48}
    # WORLD_SIZE (set by accelerate launch) is read when the recipe loads
    env = {**os.environ, "WORLD_SIZE": "3"}
    code = ("from gazal.config import load_config; from gazal.train.grpo_config import "
            f"GRPORecipe; load_config(GRPORecipe, None, {[*BASE, '--num_generations', '16']!r})")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.returncode != 0 and "x 3 process(es)" in proc.stderr


def test_other_config_time_errors():
    with pytest.raises(ConfigError, match=r"reward.length.max_tokens \(4096\) must equal "
                                          r"grpo.max_completion_length \(64\)"):
        load_config(GRPORecipe, None, BASE[:-2])
    with pytest.raises(ConfigError, match=r"lora\.init is 'continue' but lora\.adapter"):
        recipe("--lora.init", "continue")
    with pytest.raises(ConfigError, match=r"lora\.adapter is set but lora\.init is 'fresh'"):
        recipe("--lora.adapter", "runs/sft/adapter")
    with pytest.raises(ConfigError, match="lm_head"):
        recipe("--lora.target_modules", "[q_proj, lm_head]")
    with pytest.raises(ConfigError, match="temperature must be > 0"):
        recipe("--temperature", "0")
    with pytest.raises(ConfigError, match=r"grpo.loss_type.*did you mean 'dapo'"):
        recipe("--loss_type", "dappo")
    with pytest.raises(ConfigError, match="auto_find_batch_size: not settable"):
        recipe("--train.auto_find_batch_size", "true")
    with pytest.raises(ConfigError, match="auto_find_batch_size: not settable"):
        recipe("--grpo.extra", "{auto_find_batch_size: true}")
    with pytest.raises(ConfigError, match=r"eval_strategy: not settable.*heldout"):
        recipe("--train.extra", "{eval_strategy: steps}")
    with pytest.raises(ConfigError, match=r"reward_weights: not settable.*reward section"):
        recipe("--grpo.reward_weights", "[1.0]")
    with pytest.raises(ConfigError, match=r"grpo.extra.loss_type: set grpo.loss_type instead"):
        recipe("--grpo.extra", "{loss_type: grpo}")
    with pytest.raises(ConfigError, match=r"grpo.extra.warmup_ratio.*did you mean"):
        recipe("--grpo.extra", "{warmup_ratio: 0.1}")
    # a TrainingArguments field written in grpo: is pointed to train:
    with pytest.raises(ConfigError, match=r"unknown key 'grpo.warmup_steps'.*did you mean "
                                          r"'train.warmup_steps'"):
        load_config(GRPORecipe, None, BASE, base={"grpo": {"warmup_steps": 3}})
    # GRPOConfig fields gazal does not declare are still checked, against TRL's annotation
    with pytest.raises(ConfigError, match=r"key 'grpo.beta': expected float"):
        recipe("--grpo.beta", "high")
    with pytest.raises(ConfigError, match=r"grpo.beta must be >= 0"):
        recipe("--beta", "-1")
    with pytest.raises(ConfigError, match=r"guards.letter_entropy_ratio must be in \[0, 1\]"):
        recipe("--guards.letter_entropy_ratio", "2")
    with pytest.raises(ConfigError, match=r"drop_constant_accuracy_groups needs the accuracy"):
        recipe("--grpo.drop_constant_accuracy_groups", "true", "--reward.components",
               "[format]")
    assert recipe("--grpo.drop_constant_accuracy_groups", "true").grpo \
        .drop_constant_accuracy_groups
    # a gazal key, not passed to TRL's GRPOConfig
    assert "drop_constant_accuracy_groups" not in recipe().grpo.to_trl_kwargs()


def test_grpo_config_maps_every_section():
    r = recipe("--loss_type", "dr_grpo", "--beta", "0.04", "--epsilon_high", "0.28",
               "--scale_rewards", "none", "--mask_truncated_completions", "true",
               "--grpo.chat_template_kwargs", "{enable_thinking: true}",
               "--grpo.extra", "{cast_lm_head_to_fp32: true}", "--lr", "3e-6",
               "--reward.format.weight", "0.25")
    args = build_grpo_config(r, "out")
    assert (args.loss_type, args.beta, args.epsilon_high, args.scale_rewards) == \
        ("dr_grpo", 0.04, 0.28, "none")
    assert args.mask_truncated_completions and args.cast_lm_head_to_fp32
    assert args.chat_template_kwargs == {"enable_thinking": True}
    assert args.reward_weights == [1.0, 0.25, 0.5, 0.5, 0.25]
    assert args.learning_rate == 3e-6 and args.max_completion_length == 64
    assert args.logging_nan_inf_filter is False and args.remove_unused_columns is False
    assert args.logging_steps == 1 and args.eval_strategy == "no" and args.bf16 is False
    # the older grpo.extra form takes the same path; gazal's own keys are set directly
    assert build_grpo_config(recipe("--grpo.extra", "{top_entropy_quantile: 0.2}"),
                             "out").top_entropy_quantile == 0.2
    with pytest.raises(ConfigError, match=r"grpo.extra.num_generations: set "
                                          r"grpo.num_generations instead"):
        recipe("--grpo.extra", "{num_generations: 4}")


def test_saved_config_keeps_trl_keys_and_loads_back(tmp_path):
    import yaml

    from gazal.config import config_from_dict, config_to_dict

    r = recipe("--beta", "0.04", "--grpo.extra", "{cast_lm_head_to_fp32: true}",
               "--train.weight_decay", "0.1", "--max_steps", "3")
    saved = config_to_dict(r)
    assert saved["grpo"]["beta"] == 0.04 and saved["grpo"]["cast_lm_head_to_fp32"] is True
    assert saved["train"]["weight_decay"] == 0.1 and "extra" not in saved["grpo"]
    assert r.train.max_steps == 3 and r.train.seed == 42  # TRL's default when not set
    again = config_from_dict(GRPORecipe, yaml.safe_load(yaml.safe_dump(saved)))
    assert again == r
    assert build_grpo_config(again, "out").weight_decay == 0.1


def test_a_run_saved_with_trl_defaults_spelled_out_still_resumes(tmp_path):
    """Run folders written when gazal re-declared TRL's fields hold them at their defaults
    (grpo.top_p: 1.0, ...); the open sections no longer save those, and resuming still works
    while a real difference is still refused."""
    import yaml

    from gazal.config import config_to_dict
    from gazal.rundir import prepare_run_dir

    r = recipe()
    old = {"command": "grpo", **config_to_dict(r)}
    old["grpo"].update(top_p=1.0, top_k=0, min_p=None, beta=r.grpo.beta)
    old["train"].update(weight_decay=0.0, seed=42)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump(old, sort_keys=False))
    prepare_run_dir(run, r, command="grpo")  # resumes
    old["grpo"]["top_p"] = 0.9
    (run / "config.yaml").write_text(yaml.safe_dump(old, sort_keys=False))
    with pytest.raises(ConfigError, match=r"grpo.top_p: 0.9 \(saved\) != 1.0 \(now\)"):
        prepare_run_dir(run, r, command="grpo")


@pytest.mark.parametrize("path", RECIPES)
def test_recipes_build_grpo_and_lora_configs_without_weights(path):
    from trl import GRPOConfig

    r = load_config(GRPORecipe, ROOT / path)
    args = build_grpo_config(r, "unused", check_only=True)
    assert isinstance(args, GRPOConfig)
    assert r.lora.use_dora and r.lora.use_rslora and r.lora.dropout == 0.0
    assert r.reward.length.max_tokens == r.grpo.max_completion_length
    assert args.reward_weights == r.reward.weights()
    for lineno, line in enumerate((ROOT / path).read_text().splitlines(), start=1):
        body = line.split("#", 1)[0]
        if ":" in body and body.split(":", 1)[1].strip() not in ("", "|"):
            assert "#" in line, f"{path}:{lineno}: value without a source comment: {line}"


def test_big_recipe_uses_vllm_on_the_merged_sft_model():
    r = load_config(GRPORecipe, ROOT / "recipes/gazal-r1-32b/grpo.yaml")
    assert r.grpo.use_vllm and r.train.bf16 and r.lora.init == "fresh"
    assert r.model.name_or_path.endswith("merged") and r.lora.dropout == 0.0
    assert [s.path for s in r.data.train] == ["TachyHealth/medical_grpo"]
    assert set(r.data.overlap_with) >= {"medqa", "mmlu_pro_medical", "pubmedqa"}
    # no in-training held-out generation under ZeRO-3 + vLLM, so its alarm is off
    assert not r.heldout.sources and r.guards.format_vs_heldout == "off"
    args = build_grpo_config(r, "unused", check_only=True)
    assert args.vllm_mode == "colocate" and args.mask_truncated_completions


def test_dry_run_and_describe_from_the_command_line(tmp_path, capsys, toy_task_files):
    from gazal.cli import main

    train, held = toy_task_files  # what the demo's task stage writes (runs/demo/task/)
    args = ["grpo", str(ROOT / "recipes/demo/grpo.yaml"), "--dry-run", "--output_dir",
            str(tmp_path / "run"), "--data.train", f"[{{path: {train}}}]",
            "--heldout.sources", f"[{{path: {held}}}]"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "prompts_per_generation 4" in out
    assert "no training question overlaps the held-out subset" in out
    assert not (tmp_path / "run").exists()  # a dry run writes nothing
    assert main([*args, "--batch_size", "6"]) == 2
    assert "must be divisible by grpo.num_generations" in capsys.readouterr().err
    # 32 completions per device cannot hold a group of 96; three processes can
    assert main([*args, "--num_generations", "96"]) == 2
    assert "x 1 process(es)" in capsys.readouterr().err
    assert main([*args, "--num_generations", "96", "--world-size", "3"]) == 0
    assert "batch (3 process(es)): generation_batch_size 96" in capsys.readouterr().out
    assert main(["grpo", "--describe"]) == 0
    described = capsys.readouterr().out
    assert "guards.letter_entropy_ratio" in described and "grpo.fast_generation" in described
    # the real command line, once
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run([sys.executable, "-m", "gazal", *args, "--lr", "0"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "train.learning_rate must be > 0" in proc.stderr


def test_a_guard_stop_is_exit_status_3_with_the_reason(tmp_path, capsys, monkeypatch):
    import gazal.train.grpo as grpo_module
    from gazal.cli import main
    from gazal.train.monitors import TrainingStopped

    def stopped(recipe, **kw):
        raise TrainingStopped("nonfinite", 7, "step 7: loss nan; stopped before the "
                                              "optimizer step")

    monkeypatch.setattr(grpo_module, "run_grpo", stopped)
    code = main(["grpo", str(ROOT / "recipes/demo/grpo.yaml"), "--output_dir",
                 str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 3 and "stopped by guard 'nonfinite': step 7: loss nan" in err
    assert "summary.json" in err


# every vLLM setting of TRL's GRPOConfig, with a value other than TRL's default; the typed
# ones are grpo.* keys of the recipe, the rest go through grpo.extra
VLLM_VALUES = {
    "use_vllm": True, "vllm_mode": "server", "vllm_model_impl": "transformers",
    "vllm_enable_sleep_mode": True, "vllm_structured_outputs_regex": "Final Answer: [A-E]",
    "vllm_server_base_url": "http://gen-node:8001", "vllm_server_host": "10.0.0.7",
    "vllm_server_port": 8123, "vllm_server_timeout": 600.0, "vllm_group_port": 51300,
    "vllm_gpu_memory_utilization": 0.45, "vllm_max_model_length": 6144,
    "vllm_tensor_parallel_size": 4, "vllm_importance_sampling_correction": False,
    "vllm_importance_sampling_mode": "token_truncate",
    "vllm_importance_sampling_clip_max": 2.0, "vllm_importance_sampling_clip_min": 0.5,
}


def test_every_trl_vllm_setting_reaches_grpo_config():
    import dataclasses

    import yaml
    from trl import GRPOConfig

    from gazal.config import open_fields
    from gazal.train.grpo_config import GRPOSection

    trl = {f.name: f for f in dataclasses.fields(GRPOConfig)
           if "vllm" in f.name and "deprecated" not in str(f.metadata.get("help", "")).lower()}
    assert set(VLLM_VALUES) == set(trl), "TRL's vLLM settings changed: update VLLM_VALUES"
    for name, value in VLLM_VALUES.items():
        assert value != trl[name].default, name
    # every one is a grpo: key (TRL's own field, checked against its annotation); half of
    # them are given as grpo.* overrides, the others in the older grpo.extra mapping
    assert set(VLLM_VALUES) <= set(open_fields(GRPOSection))
    overrides, extra = [], {}
    for i, (name, value) in enumerate(VLLM_VALUES.items()):
        if i % 2:
            overrides += [f"--grpo.{name}", yaml.safe_dump(value).strip().removesuffix("\n...")]
        else:
            extra[name] = value
    overrides += ["--grpo.extra", yaml.safe_dump(extra, default_flow_style=True).strip()]
    args = build_grpo_config(recipe(*overrides), "unused")
    for name, value in VLLM_VALUES.items():
        assert getattr(args, name) == value, name
