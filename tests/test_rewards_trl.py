"""gazal's rewards inside TRL's GRPOTrainer: two steps on a tiny model, per-component logs."""

from __future__ import annotations

import pytest

from gazal.benchmarks.builtin import builtin_items
from gazal.demo.tiny import build_tiny
from gazal.formatting import build_messages
from gazal.rewards import COMPONENTS, RewardConfig, build_reward_functions


def test_grpo_trainer_logs_every_component(tmp_path):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    path = build_tiny(tmp_path / "tiny", seed=0)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    rows = [{"prompt": build_messages(it), "answer": it.answer, "options": it.options}
            for it in builtin_items()]
    cfg = RewardConfig()
    cfg.length.max_tokens = 1024  # far above the 16 generated tokens: only EOS says "cut"
    funcs, weights = build_reward_functions(cfg, tok)
    calls = []

    class Spy:  # what TRL passes to reward functions, seen through one extra function
        __name__ = "spy"

        def __call__(self, completions, **kwargs):
            calls.append(kwargs)
            return [None] * len(completions)  # None: no reward from this function

    args = GRPOConfig(
        output_dir=str(tmp_path / "out"), per_device_train_batch_size=4, num_generations=2,
        max_completion_length=16, max_steps=2, learning_rate=1e-5, bf16=False,
        gradient_checkpointing=False, use_vllm=False, report_to="none", logging_steps=1,
        save_strategy="no", use_cpu=True, seed=0, reward_weights=[*weights, 1.0])
    trainer = GRPOTrainer(model=model, processing_class=tok, reward_funcs=[*funcs, Spy()],
                          args=args, train_dataset=Dataset.from_list(rows))
    trainer.train()

    logs = [h for h in trainer.state.log_history if "reward" in h]
    assert len(logs) == 2
    for h in logs:
        for name in COMPONENTS:
            assert f"rewards/{name}/mean" in h and f"rewards/{name}/std" in h
        # TRL's total is the weighted sum of the components we returned
        assert h["reward"] == pytest.approx(
            sum(w * h[f"rewards/{n}/mean"] for n, w in zip(COMPONENTS, weights, strict=True)),
            abs=1e-5)
        # every completion TRL saw cut at max_completion_length we saw truncated too
        assert h["gazal/truncated_fraction"] >= h["completions/clipped_ratio"] - 1e-6
        if h["completions/clipped_ratio"] == 1.0:  # all cut: nothing may be positive
            assert all(h[f"rewards/{n}/mean"] <= 0 for n in COMPONENTS)
    # the columns we rely on reach reward functions
    assert {"answer", "options", "prompts", "completion_ids", "trainer_state",
            "log_metric", "log_extra"} <= set(calls[0])
    assert all(len(ids) <= 16 for ids in calls[0]["completion_ids"])


@pytest.mark.parametrize("scale_rewards", ["group", "batch", "none"])
def test_grpo_advantages_match_trl(tmp_path, scale_rewards):
    """gazal.rewards.advantage.grpo_advantages against the advantages TRL's own trainer
    computed from random rewards (TRL logs both per completion)."""
    import random

    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from gazal.rewards.advantage import grpo_advantages

    path = build_tiny(tmp_path / "tiny", seed=0)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    rows = [{"prompt": build_messages(it)} for it in builtin_items()]
    rng = random.Random(1)

    def noisy(completions, **_):
        return [rng.choice([0.0, 1.0, 1.0]) + rng.random() * 0.3 for _ in completions]

    def coarse(completions, **_):
        return [float(rng.randint(0, 1)) for _ in completions]

    G = 4
    args = GRPOConfig(
        output_dir=str(tmp_path / "out"), per_device_train_batch_size=8, num_generations=G,
        max_completion_length=4, max_steps=1, learning_rate=1e-5, bf16=False,
        use_vllm=False, report_to="none", logging_steps=1, save_strategy="no", use_cpu=True,
        seed=0, reward_weights=[1.0, 0.5], scale_rewards=scale_rewards)
    trainer = GRPOTrainer(model=model, processing_class=tok, reward_funcs=[noisy, coarse],
                          args=args, train_dataset=Dataset.from_list(rows))
    trainer.train()
    logged = trainer._logs  # TRL's own per-completion record (the completions table)
    totals = [1.0 * a + 0.5 * b for a, b in zip(logged["rewards"]["noisy"],
                                                logged["rewards"]["coarse"], strict=True)]
    assert len(totals) == 8
    groups = [totals[i:i + G] for i in range(0, len(totals), G)]
    ours = [a for g in grpo_advantages(groups, scale_rewards) for a in g]
    assert ours == pytest.approx(list(logged["advantages"]), abs=1e-5)
    assert any(abs(a) > 0.05 for a in ours)  # not trivially all zero
