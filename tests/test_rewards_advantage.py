"""GRPO advantages (gazal.rewards.advantage): the rules of issue 15 on the built-in groups
under the recipes' settings, the shaping scale, and TRL's formula."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gazal.config import ConfigError
from gazal.rewards import RewardConfig, build_reward_functions, load_reward_config
from gazal.rewards.advantage import check_rules, grpo_advantages
from gazal.rewards.audit_groups import audit_groups, builtin_groups_path, load_groups

ROOT = Path(__file__).resolve().parents[1]
GPU_RECIPES = ["recipes/gazal-r1-32b/grpo.yaml", "recipes/qwen3-0.6b/grpo.yaml"]


def _audit(cfg: RewardConfig, scale_rewards: str):
    funcs, weights = build_reward_functions(cfg)
    return audit_groups(load_groups(builtin_groups_path()), funcs, weights,
                        scale_rewards)  # type: ignore[arg-type]


def test_shaping_scale_scales_every_weight_but_accuracy():
    cfg = RewardConfig(shaping_scale=0.5)
    assert cfg.weights() == [1.0, 0.25, 0.25, 0.25, 0.125]
    assert RewardConfig().weights() == [1.0, 0.5, 0.5, 0.5, 0.25]
    with pytest.raises(ConfigError, match="shaping_scale must be >= 0"):
        load_reward_config(None, ["--shaping_scale", "-1"])


@pytest.mark.parametrize("recipe", GPU_RECIPES)
def test_gpu_recipes_meet_the_advantage_rules_on_the_builtin_groups(recipe):
    path = ROOT / recipe
    cfg = load_reward_config(path)
    cfg.length.max_tokens = 4096  # the groups span the 32B recipe's length range
    scale = yaml.safe_load(path.read_text())["grpo"]["scale_rewards"]
    assert (scale, cfg.shaping_scale) == ("none", 0.5)
    result = _audit(cfg, scale)
    assert result.passed, result.summary()
    wrong = [r for r in result.results if r.group.name.startswith("all_wrong")]
    assert len(wrong) == 3 and max(abs(a) for r in wrong for a in r.advantages) <= 0.2


def test_trl_default_settings_break_the_all_wrong_rule():
    """What issue 15 measured: group scaling blows shaping-only differences up."""
    result = _audit(RewardConfig(), "group")
    broken = {r.group.name: [f.rule for f in r.failures] for r in result.results if r.failures}
    assert broken["all_wrong_steps"] == ["all_wrong"]
    steps = next(r for r in result.results if r.group.name == "all_wrong_steps")
    assert min(steps.advantages) < -1.5 and max(steps.advantages) > 0.9


def test_demo_recipe_keeps_its_published_settings():
    data = yaml.safe_load((ROOT / "recipes/demo/grpo.yaml").read_text())
    assert data["grpo"]["scale_rewards"] == "group"
    assert load_reward_config(ROOT / "recipes/demo/grpo.yaml").weights() == [1.0, 0.5]


def test_each_rule_can_fail():
    wrong = [{"accuracy": 0.0, "format": 1.0}] * 2
    assert [f.rule for f in check_rules(wrong, [0.3, -0.3])] == ["all_wrong"]
    assert check_rules(wrong, [0.2, -0.2]) == []
    mixed = [{"accuracy": 1.0, "format": 1.0}, {"accuracy": 0.0, "format": 1.0}]
    assert [f.rule for f in check_rules(mixed, [0.2, -0.2])] == ["mixed"]
    assert check_rules(mixed, [0.3, -0.3]) == []
    mal = [{"accuracy": 1.0, "format": 1.0}, {"accuracy": 1.0, "format": 0.75},
           {"accuracy": 0.0, "format": 1.0}]
    assert [f.rule for f in check_rules(mal, [0.5, 0.6, -1.1])] == ["malformed"]
    assert check_rules(mal, [0.6, 0.5, -1.1]) == []


def test_grpo_advantages_formula_by_hand():
    g = [[1.0, 0.0], [2.0, 2.0]]
    assert grpo_advantages(g, "none") == [[0.5, -0.5], [0.0, 0.0]]
    std = 2 ** -0.5  # Bessel-corrected std of (1, 0)
    a = grpo_advantages(g, "group")
    assert a[0][0] == pytest.approx(0.5 / (std + 1e-4)) and a[1] == [0.0, 0.0]
    b = grpo_advantages(g, "batch")
    import statistics
    assert b[0][0] == pytest.approx(0.5 / (statistics.stdev([1, 0, 2, 2]) + 1e-4))
    assert grpo_advantages([[1.0, float("nan"), 0.0]], "none")[0][1] == 0.0
    with pytest.raises(ValueError, match="scale_rewards"):
        grpo_advantages(g, "std")  # type: ignore[arg-type]


def test_the_candidate_table_of_the_docs_is_what_the_bench_measures():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, str(ROOT / "bench" / "advantage_candidates.py")],
                         capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(ROOT / "src"), "PATH": ""})
    rows = {line.split("  ")[0].strip(): line.split() for line in out.stdout.splitlines()}
    assert rows["group (TRL default, recipes before)"][-1] == "3/9"
    chosen = rows["none, shaping x0.5"]
    assert chosen[-1] == "0/9" and chosen[-6] == "+0.13"  # all-wrong max|A| (docs/rewards.md)
