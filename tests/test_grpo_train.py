"""``gazal grpo`` end to end on a tiny policy and the toy task: the reward rises, every monitor
is recorded, a NaN stops the run and keeps the last good checkpoint, resume continues exactly,
the fast generation path samples the same tokens with the same log-probabilities as TRL's,
a continued SFT adapter trains, an alarm set to `stop` stops the run."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from support.tiny_grpo import build_toy_policy, toy_questions, write_items

from gazal.config import load_config
from gazal.io import read_jsonl
from gazal.train.grpo import run_grpo
from gazal.train.grpo_config import GRPORecipe
from gazal.train.monitors import MONITOR_KEYS, TrainingStopped

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def toy(tmp_path_factory, one_torch_thread):
    """A tiny policy briefly supervised on the toy task, and its train / held-out files."""
    root = tmp_path_factory.mktemp("toy")
    return {"policy": build_toy_policy(root / "policy", steps=200, lr=5e-3),
            "train": write_items(root / "train.jsonl", toy_questions("train")),
            "heldout": write_items(root / "heldout.jsonl", toy_questions("heldout"))}


def recipe(toy, out: Path, *extra: str, batch: int = 8, generations: int = 4) -> GRPORecipe:
    """Small batches by default (2 prompts x 4 completions); ``extra`` overrides."""
    return load_config(GRPORecipe, None, [
        "--output_dir", str(out), "--model.name_or_path", str(toy["policy"]),
        "--data.train", f"[{{path: {toy['train']}}}]", "--data.system_prompt", "",
        "--max_completion_length", "96", "--reward.length.max_tokens", "96",
        "--lora.r", "8", "--lora.alpha", "16", "--lr", "1e-3", "--scheduler", "constant",
        "--num_generations", str(generations), "--batch_size", str(batch),
        "--save_steps", "100", "--seed", "0", *extra])


def heldout_args(toy, size: int = 8, every: int = 0) -> list[str]:
    return ["--heldout.sources", f"[{{path: {toy['heldout']}}}]", "--heldout.size", str(size),
            "--heldout.every_steps", str(every)]


def quiet(*_args):
    pass


def steps_of(out: Path, key: str = "reward") -> list[int]:
    return [r["step"] for r in read_jsonl(out / "metrics.jsonl") if key in r]


# --------------------------------------------------------------------------- learning


def test_reward_rises_over_a_fixed_number_of_steps(toy, tmp_path):
    # four questions, every step all four (x 8 completions): the policy answers them by chance
    # at first and must learn which option is right
    out = tmp_path / "learn"
    summary = run_grpo(recipe(toy, out, "--max_steps", "14", "--data.limit", "4", batch=32,
                              generations=8), echo=quiet, console=quiet)
    records = [r for r in read_jsonl(out / "metrics.jsonl") if "reward" in r]
    rewards = [r["reward"] for r in records]
    assert len(rewards) == 14 and summary["complete"] and summary["global_step"] == 14
    first, last = sum(rewards[:4]) / 4, sum(rewards[-4:]) / 4
    print(f"reward first 4 steps {first:.3f}, last 4 {last:.3f}")
    assert last > first + 0.2, (first, last, rewards)
    accuracy = [r["monitor/accuracy"] for r in records]
    assert sum(accuracy[-4:]) / 4 > sum(accuracy[:4]) / 4 + 0.1, accuracy
    assert (out / "adapter" / "adapter_config.json").exists()
    assert (out / "reward_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- monitors


def test_every_monitor_is_in_metrics_and_on_the_console(toy, tmp_path):
    out = tmp_path / "monitors"
    lines: list[str] = []
    summary = run_grpo(recipe(toy, out, "--max_steps", "2", "--beta", "0.04",
                              *heldout_args(toy, size=6, every=1)),
                       echo=quiet, console=lines.append)
    records = read_jsonl(out / "metrics.jsonl")
    assert records[0]["step"] == 0 and "heldout/accuracy" in records[0]  # the baseline
    steps = [r for r in records if "reward" in r]
    assert [r["step"] for r in steps] == [1, 2]
    components = ["accuracy", "format", "length", "repetition", "structure"]
    for r in steps:
        for key in MONITOR_KEYS:
            if "{name}" in key:
                names = [key.format(name=c) for c in components]
            elif "{X}" in key:
                names = [key.format(X=x) for x in "ABCD"] + ["answer_letters/none"]
            else:
                names = [key]
            for name in names:
                assert name in r, f"step {r['step']}: {name} missing"
                assert isinstance(r[name], int | float) and math.isfinite(r[name]), name
        for alarm in ("format_vs_heldout", "letter_entropy", "length"):
            assert r[f"alarm/{alarm}"] in (0, 1)
        assert 0 <= r["monitor/accuracy"] <= 1 and r["kl"] >= 0
        assert r["completions/max_length"] <= 96
    assert len(lines) == 2 and lines[0].startswith("step 1 | reward ")
    assert re.search(r"heldout \d\.\d{3}", lines[1]) and "kl " in lines[1]
    assert [p[0] for p in summary["heldout"]["points"]] == [0, 1, 2]
    assert summary["monitors"]["reward"]["last"] == steps[-1]["reward"]


# --------------------------------------------------------------------------- guards


class InjectNaN:
    """A transformers callback that makes step ``at`` non-finite: ``loss`` (the loss forward
    turns NaN: a hook on the final norm when gradients are on, i.e. not in generation) or
    ``weights`` (a trained weight set to NaN just before the optimizer step)."""

    def __new__(cls, at: int, where: str):
        import torch
        from transformers import TrainerCallback

        class _CB(TrainerCallback):
            handle = None

            def on_step_begin(self, args, state, control, model=None, **kw):
                if where == "loss" and state.global_step + 1 == at:
                    def poison(_module, _inputs, output):
                        return output * float("nan") if torch.is_grad_enabled() else output

                    norm = next(m for n, m in model.named_modules() if n.endswith("model.norm"))
                    self.handle = norm.register_forward_hook(poison)

            def on_pre_optimizer_step(self, args, state, control, model=None, **kw):
                if where == "weights" and state.global_step + 1 == at:
                    p = next(p for p in model.parameters() if p.requires_grad)
                    with torch.no_grad():
                        p.view(-1)[0] = float("nan")

        return _CB()


@pytest.mark.parametrize("where", ["loss", "weights"])
def test_a_nan_stops_the_run_and_keeps_the_last_good_checkpoint(toy, tmp_path, where):
    from safetensors.torch import load_file

    from gazal.train.checkpoints import validate_checkpoint

    out = tmp_path / where
    cfg = recipe(toy, out, "--max_steps", "6", "--save_steps", "2")
    with pytest.raises(TrainingStopped) as stop:
        run_grpo(cfg, callbacks=[InjectNaN(3, where)], echo=quiet, console=quiet)
    assert stop.value.reason == "nonfinite" and stop.value.step == 3
    assert stop.value.message.startswith("step 3: ")
    assert ("loss nan" if where == "loss" else "NaN or infinite values in") in stop.value.message
    ckpts = sorted(p.name for p in (out / "checkpoints").glob("checkpoint-*"))
    assert ckpts == ["checkpoint-2"]
    validate_checkpoint(out / "checkpoints" / "checkpoint-2")
    weights = load_file(str(out / "checkpoints" / "checkpoint-2" / "adapter_model.safetensors"))
    assert all(bool(t.isfinite().all()) for t in weights.values())
    assert steps_of(out) == [1, 2]  # the bad step was never logged
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is False and summary["stopped"]["reason"] == "nonfinite"
    assert summary["stopped"]["last_checkpoint"].endswith("checkpoint-2")
    assert not (out / "adapter").exists()


def test_an_alarm_set_to_stop_stops_the_run(toy, tmp_path, monkeypatch):
    from gazal.train.monitors import HackingAlarms

    def fake_length(self):  # scripted: the length alarm's condition holds from step 2
        return "scripted collapse" if len(self._train_records()) >= 2 else None

    monkeypatch.setattr(HackingAlarms, "_check_length", fake_length)
    out = tmp_path / "alarm"
    with pytest.raises(TrainingStopped) as stop:
        run_grpo(recipe(toy, out, "--max_steps", "5", "--save_steps", "1",
                        "--guards.length", "stop"), echo=quiet, console=quiet)
    assert stop.value.reason == "length" and stop.value.step == 2
    assert sorted(p.name for p in (out / "checkpoints").glob("checkpoint-*")) == \
        ["checkpoint-1"]  # nothing saved at or after the alarm
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stopped"]["reason"] == "length" and summary["alarms"][0]["step"] == 2
    assert read_jsonl(out / "alarms.jsonl")[0]["action"] == "stop"


# --------------------------------------------------------------------------- resume


def test_an_interrupted_run_resumes_from_its_checkpoint_and_matches_an_uninterrupted_one(
        toy, tmp_path):
    from transformers import TrainerCallback

    class Interrupt(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 3:
                raise KeyboardInterrupt

    extra = ["--max_steps", "4", "--save_steps", "2", *heldout_args(toy, size=4)]
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        run_grpo(recipe(toy, out, *extra), callbacks=[Interrupt()], echo=quiet, console=quiet)
    assert steps_of(out) == [1, 2]
    said: list[str] = []
    summary = run_grpo(recipe(toy, out, *extra), echo=said.append, console=quiet)
    assert any("resuming from" in s and "checkpoint-2" in s for s in said)
    assert summary["global_step"] == 4 and summary["resumed_from"].endswith("checkpoint-2")
    assert steps_of(out) == [1, 2, 3, 4]  # continued, no step twice
    assert steps_of(out, "heldout/accuracy") == [0, 4]  # baseline not repeated

    straight = tmp_path / "straight"
    unbroken = run_grpo(recipe(toy, straight, *extra), echo=quiet, console=quiet)
    # train_loss covers every step, not only the two run after the resume
    assert summary["train_loss"] == pytest.approx(unbroken["train_loss"], abs=1e-6)
    a, b = read_jsonl(out / "metrics.jsonl"), read_jsonl(straight / "metrics.jsonl")
    for key in ("reward", "monitor/accuracy", "completions/mean_length", "loss"):
        assert [r.get(key) for r in a if r["step"] > 0] == \
            pytest.approx([r.get(key) for r in b if r["step"] > 0], abs=1e-6), key
    # a resumed run refuses a changed recipe
    from gazal.config import ConfigError

    with pytest.raises(ConfigError, match="different config"):
        run_grpo(recipe(toy, tmp_path / "resumed", *extra, "--lr", "2e-3"), echo=quiet)


# --------------------------------------------------------------------------- fast generation


def test_fast_generation_samples_the_same_tokens_with_the_same_logprobs(toy, tmp_path,
                                                                        monkeypatch):
    import torch

    from gazal.formatting import build_messages
    from gazal.train.grpo import build_trainer, load_policy
    from gazal.train.model import load_tokenizer

    # random A and B, so the DoRA update is not zero
    cfg = recipe(toy, tmp_path / "fast", "--lora.init_lora_weights", "false")
    tok = load_tokenizer(cfg.model)
    model, peft_config = load_policy(cfg, tok)
    rows = [{"prompt": build_messages(q.item, None), "answer": q.item.answer,
             "options": json.dumps(q.item.options)} for q in toy_questions("train")[:8]]
    trainer = build_trainer(cfg, model, tok, rows, tmp_path / "fast", peft_config=peft_config)
    ids = [tok.apply_chat_template(r["prompt"], add_generation_prompt=True, tokenize=True,
                                   return_dict=True)["input_ids"] for r in rows[:2]] * 4
    norms = {"n": 0}
    real_norm = torch.linalg.norm

    def counting_norm(*a, **kw):
        norms["n"] += 1
        return real_norm(*a, **kw)

    monkeypatch.setattr(torch.linalg, "norm", counting_norm)
    out, calls = {}, {}
    for fast in (False, True):
        trainer.fast_generation = fast
        trainer.model.train()
        norms["n"] = 0
        torch.manual_seed(0)
        completions, _ = trainer._generate_single_turn(ids, None, {}, 4)
        calls[fast] = norms["n"]
        assert trainer.model.training  # train mode restored
        out[fast] = completions
    assert out[True] == out[False]  # same seed, same distribution: the same samples
    # plain TRL recomputes every DoRA weight norm at each decoded token; gazal once per round
    n_layers = sum(1 for m in trainer.model.modules() if type(m).__name__ == "DoraLinearLayer")
    assert calls[True] == n_layers and calls[False] > 10 * n_layers

    def token_logps(fast: bool) -> torch.Tensor:
        from gazal.train.fast_generation import fast_generation_mode

        seqs = [torch.tensor(p + c) for p, c in zip(ids, out[True], strict=True)]
        width = max(len(s) for s in seqs)
        batch = torch.full((len(seqs), width), tok.pad_token_id)
        mask = torch.zeros_like(batch)
        for i, s in enumerate(seqs):
            batch[i, :len(s)], mask[i, :len(s)] = s, 1
        model = trainer.model
        model.train()
        with torch.no_grad():
            if fast:
                with fast_generation_mode(model):
                    logits = model(input_ids=batch, attention_mask=mask).logits
            else:
                logits = model(input_ids=batch, attention_mask=mask).logits
        logps = torch.log_softmax(logits[:, :-1].float() / cfg.grpo.temperature, -1)
        picked = logps.gather(-1, batch[:, 1:, None]).squeeze(-1)
        keep = torch.zeros_like(picked, dtype=torch.bool)
        for i, (p, c) in enumerate(zip(ids, out[True], strict=True)):
            keep[i, len(p) - 1:len(p) - 1 + len(c)] = True
        return picked[keep]

    plain, fast = token_logps(False), token_logps(True)
    assert plain.numel() > 100
    torch.testing.assert_close(fast, plain, rtol=0, atol=1e-5)


# --------------------------------------------------------------------------- continue


def test_continuing_an_sft_adapter_trains_it_with_dropout_zero(toy, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    sft = tmp_path / "sft_adapter"
    base = AutoModelForCausalLM.from_pretrained(toy["policy"])
    get_peft_model(base, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.1, use_dora=True,
                                    use_rslora=True, target_modules="all-linear",
                                    task_type="CAUSAL_LM")).save_pretrained(str(sft))
    out = tmp_path / "continued"
    summary = run_grpo(recipe(toy, out, "--max_steps", "1", "--lora.init", "continue",
                              "--lora.adapter", str(sft)), echo=quiet, console=quiet)
    assert summary["complete"] and summary["adapter_init"] == "continue"
    saved = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert saved["r"] == 4 and saved["use_dora"] and saved["lora_dropout"] == 0.0
    # the summary describes the adapter trained, not the recipe's lora keys (r 8, alpha 16)
    adapter = summary["adapter"]
    assert (adapter["r"], adapter["alpha"], adapter["use_dora"], adapter["use_rslora"]) == \
        (4, 8, True, True)


def test_a_continued_plain_lora_adapter_is_summarised_with_its_own_settings(toy, tmp_path):
    """A LoRA adapter (r 4, alpha 8, no DoRA, no rsLoRA) continued from a recipe whose lora
    keys say DoRA + rsLoRA r 8 alpha 16: the summary reports the adapter's settings."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    sft = tmp_path / "sft_adapter"
    base = AutoModelForCausalLM.from_pretrained(toy["policy"])
    get_peft_model(base, LoraConfig(r=4, lora_alpha=8, use_dora=False, use_rslora=False,
                                    target_modules="all-linear",
                                    task_type="CAUSAL_LM")).save_pretrained(str(sft))
    summary = run_grpo(recipe(toy, tmp_path / "continued", "--max_steps", "1", "--lora.init",
                              "continue", "--lora.adapter", str(sft)), echo=quiet,
                       console=quiet)
    adapter = summary["adapter"]
    assert (adapter["r"], adapter["alpha"], adapter["use_dora"], adapter["use_rslora"]) == \
        (4, 8, False, False)
    saved = json.loads((tmp_path / "continued" / "adapter" / "adapter_config.json").read_text())
    assert (saved["r"], saved["lora_alpha"], saved["use_dora"]) == (4, 8, False)
