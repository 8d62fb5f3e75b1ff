"""Monitors and guards without training: batch statistics from the reward analyses, the
hacking alarms on scripted metric trajectories, the callback's stop, the non-finite message."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from gazal.formatting import render_assistant
from gazal.rewards import RewardConfig, build_reward_functions
from gazal.train.grpo_config import GuardsSection
from gazal.train.monitors import (
    GRPOMonitorCallback,
    HackingAlarms,
    MonitoredReward,
    batch_statistics,
    console_line,
    entropy_bits,
    nonfinite_message,
)

OPTIONS = {"A": "flu", "B": "measles", "C": "mumps", "D": "rubella"}


def answer(letter: str, text: str | None = None) -> str:
    return render_assistant(["The rash started behind the ears and spread down.",
                             "Koplik spots in the mouth point to one infection."],
                            "The findings fit this infection best.", letter,
                            text or OPTIONS[letter])


def test_entropy_bits():
    assert entropy_bits({"A": 1, "B": 1, "C": 1, "D": 1}) == pytest.approx(2.0)
    assert entropy_bits({"A": 5}) == 0.0 and entropy_bits({}) == 0.0
    assert entropy_bits({"A": 0.5, "B": 0.25, "C": 0.25}) == pytest.approx(1.5)


def test_batch_statistics_come_from_the_reward_analyses_and_reach_log_metric():
    completions = [answer("B"), answer("B"), answer("A"), "The answer is (B).", answer("C"),
                   "<think>\nStep 1: cut off"]
    golds = ["B", "B", "B", "B", "D", "D"]
    funcs, _ = build_reward_functions(RewardConfig())
    logged: dict[str, float] = {}
    wrapped = MonitoredReward(funcs[0])
    assert wrapped.__name__ == "accuracy"
    columns = {"answer": golds, "options": [OPTIONS] * 6,
               "log_metric": lambda k, v: logged.__setitem__(k, v)}
    values = wrapped(completions, **columns)
    assert values == funcs[0](completions, **columns)  # the reward itself is unchanged
    stats = batch_statistics(funcs[0].analyzer.batch(completions, columns))
    assert stats == {k: v for k, v in logged.items() if not k.startswith("gazal/")}
    assert stats["monitor/accuracy"] == pytest.approx(2 / 6)  # two valid B answers
    assert stats["monitor/format_pass_rate"] == pytest.approx(4 / 6)
    # answered letters: B B A B C (the shared extractor reads the unformatted one too); the
    # truncated one has none
    assert stats["answer_letters/B"] == pytest.approx(3 / 6)
    assert stats["answer_letters/none"] == pytest.approx(1 / 6)
    assert stats["answer_letters/entropy"] == pytest.approx(
        entropy_bits({"A": 1, "B": 3, "C": 1}))
    assert stats["gold_letters/entropy"] == pytest.approx(entropy_bits({"B": 4, "D": 2}))
    assert stats["gold_letters/D"] == pytest.approx(2 / 6)


# --------------------------------------------------------------------------- alarms


def record(step: int, *, fmt: float = 0.5, length: float = 60.0, cut: float = 0.0,
           letters: dict[str, float] | None = None, heldout: float | None = None) -> dict:
    letters = letters or {"A": 0.25, "B": 0.25, "C": 0.25, "D": 0.25}
    r = {"step": step, "monitor/format_pass_rate": fmt, "completions/mean_length": length,
         "completions/clipped_ratio": cut, "answer_letters/none": 0.0,
         "answer_letters/entropy": entropy_bits(letters), "gold_letters/entropy": 2.0}
    for k in "ABCD":
        r[f"answer_letters/{k}"] = letters.get(k, 0.0)
        r[f"gold_letters/{k}"] = 0.25
    if heldout is not None:
        r["heldout/accuracy"] = heldout
    return r


def run(alarms: HackingAlarms, records) -> list:
    fired = []
    for r in records:
        fired += alarms.observe(r)
    return fired


def guards(**kw) -> GuardsSection:
    return GuardsSection(window=5, **kw)


def test_a_healthy_run_trips_nothing():
    records = [{"step": 0, "heldout/accuracy": 0.4}]
    for s in range(1, 41):
        records.append(record(s, fmt=0.5 + 0.005 * s, length=60 + (s % 3),
                              heldout=0.4 + 0.005 * s if s % 10 == 0 else None))
    alarms = HackingAlarms(guards(), completions_per_step=32)
    assert run(alarms, records) == []
    assert not any(alarms.flags.values())


def test_format_rising_while_heldout_accuracy_falls_trips_the_alarm_once():
    records = [{"step": 0, "heldout/accuracy": 0.50}]
    for s in range(1, 31):
        fmt = 0.4 if s <= 10 else 0.4 + 0.05 * (s - 10)  # format pass rate climbs after 10
        heldout = {10: 0.55, 20: 0.52, 30: 0.40}.get(s)  # held-out peaks at step 10
        records.append(record(s, fmt=min(fmt, 1.0), heldout=heldout))
    fired = run(HackingAlarms(guards(), 32), records)
    assert [(a.name, a.step, a.action) for a in fired] == [("format_vs_heldout", 30, "warn")]
    assert "fell from 0.550 (step 10) to 0.400 (step 30)" in fired[0].message
    # held-out accuracy falling while format stays flat is not this alarm
    flat = [r if "heldout/accuracy" in r and r["step"] in (0, 10, 20, 30) else
            {**r, "monitor/format_pass_rate": 0.4} for r in records]
    assert run(HackingAlarms(guards(), 32), flat) == []
    # a drop below the threshold is noise
    small = [dict(r) for r in records]
    small[-1]["heldout/accuracy"] = 0.53
    assert run(HackingAlarms(guards(), 32), small) == []


def test_answered_letter_collapse_trips_the_alarm_and_refires_after_clearing():
    spread = {"A": 0.25, "B": 0.25, "C": 0.25, "D": 0.25}
    collapsed = {"A": 0.9, "B": 0.1}
    seq = [record(s, letters=spread) for s in range(1, 11)]
    seq += [record(s, letters=collapsed) for s in range(11, 21)]
    alarms = HackingAlarms(guards(letter_entropy="stop"), 32)
    fired = run(alarms, seq)
    assert [(a.name, a.action) for a in fired] == [("letter_entropy", "stop")]
    assert 11 <= fired[0].step <= 15 and "90% answer A" in fired[0].message
    assert alarms.flags["letter_entropy"]
    more = run(alarms, [record(s, letters=collapsed) for s in range(21, 26)])
    assert more == []  # still the same episode
    run(alarms, [record(s, letters=spread) for s in range(26, 36)])
    assert not alarms.flags["letter_entropy"]
    again = run(alarms, [record(s, letters=collapsed) for s in range(36, 46)])
    assert len(again) == 1
    # too few answered completions to judge
    few = HackingAlarms(guards(min_answered=10_000), 32)
    assert run(few, seq) == []
    off = HackingAlarms(guards(letter_entropy="off"), 32)
    assert run(off, seq) == [] and "alarm" not in str(off.flags)


@pytest.mark.parametrize(("name", "lengths", "cuts", "expect"), [
    ("collapse", [60.0] * 10 + [12.0] * 10, [0.0] * 20, "collapsed"),
    ("explosion", [60.0] * 10 + [250.0] * 10, [0.0] * 20, "exploded"),
    ("truncation", [60.0] * 10 + [90.0] * 10, [0.05] * 10 + [0.7] * 10, "are cut"),
    ("steady", [60.0] * 20, [0.6] * 20, None),  # cut from the start: not a change
])
def test_length_collapse_or_explosion(name, lengths, cuts, expect):
    seq = [record(s + 1, length=ln, cut=c) for s, (ln, c) in enumerate(zip(lengths, cuts,
                                                                           strict=True))]
    fired = run(HackingAlarms(guards(), 32), seq)
    if expect is None:
        assert fired == []
    else:
        assert [a.name for a in fired] == ["length"] and expect in fired[0].message


def test_the_callback_stops_the_run_and_keeps_the_checkpoints_from_before_the_alarm():
    cb = GRPOMonitorCallback(guards(letter_entropy="stop", length="warn"), 32, echo=None)
    control = SimpleNamespace(should_training_stop=False, should_save=True)
    state = SimpleNamespace(global_step=0, num_input_tokens_seen=0, max_steps=100,
                            is_world_process_zero=True)
    collapsed = {"A": 1.0}
    for s in range(1, 8):
        state.global_step = s
        state.num_input_tokens_seen = 1000 * s
        logs = {"loss": 0.1, **record(s, letters=collapsed)}
        logs.pop("step")
        cb.on_log(None, state, control, logs=logs)
        if s < 5:
            assert logs["alarm/letter_entropy"] == 0 and not control.should_training_stop
    assert logs["alarm/letter_entropy"] == 1 and "alarm/format_vs_heldout" in logs
    assert control.should_training_stop and control.should_save is False
    assert cb.stop is not None and cb.stop.reason == "letter_entropy" and cb.stop.step == 5
    assert [a.name for a in cb.fired] == ["letter_entropy"]
    assert logs["monitor/step_s"] >= 0 and "step 7" in console_line({"step": 7, **logs})


def test_nonfinite_message_names_the_step_and_what_was_bad():
    assert nonfinite_message(3, 0.5, 1.2) is None
    msg = nonfinite_message(7, float("nan"), 2.0)
    assert msg.startswith("step 7: loss nan;") and "no checkpoint" in msg
    assert "gradient norm inf" in nonfinite_message(2, None, math.inf)


def test_accuracy_spread_counts_groups_without_correctness_signal():
    import torch

    from gazal.train.monitors import accuracy_spread

    acc = torch.tensor([1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0])  # right, wrong, mixed, mixed
    stats = accuracy_spread(acc, 2)
    assert stats["monitor/frac_accuracy_zero_std"] == 0.5
    assert (stats["monitor/frac_all_correct"], stats["monitor/frac_all_wrong"]) == (0.25, 0.25)
    assert stats["constant"].tolist() == [True, True, False, False]


def test_the_trainer_logs_and_drops_groups_whose_accuracy_does_not_vary(tmp_path):
    """A tiny GRPO step: 4 prompts x 2 completions, one group all right, one all wrong, two
    mixed; the shaping reward makes every total differ, so TRL sees no zero-spread group."""
    import itertools

    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig

    from gazal.benchmarks.builtin import builtin_items
    from gazal.demo.tiny import build_tiny
    from gazal.formatting import build_messages
    from gazal.train.grpo import trainer_class

    path = build_tiny(tmp_path / "tiny", seed=0)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    patterns = ["right", "wrong", "mixed", "mixed"]
    rows = [{"prompt": build_messages(it), "pattern": p}
            for it, p in zip(builtin_items(), patterns, strict=False)]
    counter = itertools.count()

    def accuracy(completions, pattern, **_):
        return [1.0 if p == "right" else 0.0 if p == "wrong" else float(i % 2)
                for i, p in enumerate(pattern)]

    def shaping(completions, **_):
        return [0.01 * next(counter) for _ in completions]

    args = GRPOConfig(
        output_dir=str(tmp_path / "out"), per_device_train_batch_size=8, num_generations=2,
        max_completion_length=6, max_steps=1, learning_rate=1e-5, bf16=False, use_vllm=False,
        report_to="none", logging_steps=1, save_strategy="no", use_cpu=True, seed=0,
        reward_weights=[1.0, 1.0], scale_rewards="none")
    trainer = trainer_class()(model=model, processing_class=tok, args=args,
                              reward_funcs=[accuracy, shaping],
                              train_dataset=Dataset.from_list(rows))
    trainer.fast_generation = False
    trainer.drop_constant_accuracy_groups = True
    trainer.train()
    log = next(h for h in trainer.state.log_history if "reward" in h)
    assert log["frac_reward_zero_std"] == 0.0  # TRL: every group has spread
    assert log["monitor/frac_accuracy_zero_std"] == 0.5
    assert log["monitor/frac_all_correct"] == 0.25 and log["monitor/frac_all_wrong"] == 0.25
    assert log["monitor/frac_groups_dropped"] == 0.5
    batch = trainer._buffered_inputs[0]  # what the loss saw (rows shuffled by TRL)
    dropped = batch["completion_mask"].sum(dim=1) == 0
    assert int(dropped.sum()) == 4
    assert batch["advantages"][dropped].abs().max() == 0
    assert batch["advantages"][~dropped].abs().min() > 0.4  # mixed groups: +-0.5 + shaping
    assert int(batch["num_items_in_batch"]) == int(batch["completion_mask"].sum())
