"""GRPO monitors and guards.

Monitors (every logged step, into ``metrics.jsonl`` and one console line):

- from TRL: each reward component's ``rewards/<name>/mean`` and ``/std``, the weighted total
  ``reward`` / ``reward_std``, ``frac_reward_zero_std`` (groups whose completions all earned
  the same reward: no learning signal), ``completions/mean_length`` / ``max_length`` /
  ``clipped_ratio`` (truncation rate), ``kl`` (when beta > 0), ``entropy``, ``step_time``;
  from transformers: ``loss``, ``grad_norm``, ``learning_rate``;
- from gazal's rewards (:class:`MonitoredReward`, statistics of the analyses the reward
  components already made, so nothing is scored twice, handed to TRL's ``log_metric``):
  ``monitor/accuracy``, ``monitor/format_pass_rate``, ``answer_letters/<X>`` and
  ``answer_letters/none`` (share of completions answering each letter, or none),
  ``answer_letters/entropy`` beside ``gold_letters/entropy`` (bits), ``gold_letters/<X>``;
- from :class:`GRPOMonitorCallback`: ``monitor/tokens_per_s`` (prompt + completion tokens
  processed per second of wall time), ``monitor/step_s``, ``heldout/accuracy`` (every
  ``heldout.every_steps``) and ``alarm/<name>`` (1 while an alarm's condition holds).

Guards:

- non-finite numbers (:func:`nonfinite_message`, used by the trainer before the optimizer
  step and by :class:`GRPOMonitorCallback` after it): the run stops with
  :class:`TrainingStopped`; no checkpoint is written after the bad step;
- reward-hacking alarms (:class:`HackingAlarms`, a pure function of the logged records, so it
  is rebuilt from ``metrics.jsonl`` on resume): ``format_vs_heldout``, ``letter_entropy``,
  ``length``; each ``warn`` s or ``stop`` s as the recipe says.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from transformers import TrainerCallback

from gazal.train.grpo_config import GuardsSection

log = logging.getLogger("gazal")

__all__ = [
    "MONITOR_KEYS",
    "Alarm",
    "GRPOMonitorCallback",
    "HackingAlarms",
    "HeldoutEvaluator",
    "MonitoredReward",
    "TrainingStopped",
    "accuracy_spread",
    "batch_statistics",
    "drop_groups",
    "entropy_bits",
    "nonfinite_message",
]

# Every monitor and where it lives in metrics.jsonl ({name}: each reward component).
MONITOR_KEYS: dict[str, str] = {
    "rewards/{name}/mean": "mean of each reward component over the step's completions (TRL)",
    "rewards/{name}/std": "its standard deviation (TRL)",
    "reward": "mean weighted total reward (TRL)",
    "reward_std": "its standard deviation (TRL)",
    "monitor/accuracy": "share of completions whose answer counts and is the gold letter",
    "monitor/format_pass_rate": "share of completions with the whole format (all four parts)",
    "frac_reward_zero_std": "share of prompt groups whose completions all got the same reward "
                            "(TRL)",
    "monitor/frac_accuracy_zero_std": "share of prompt groups whose accuracy does not vary "
                                      "(all right or all wrong): no correctness signal, "
                                      "whatever the shaping gives",
    "monitor/frac_all_correct": "share of prompt groups answered right by every completion",
    "monitor/frac_all_wrong": "share of prompt groups answered wrong by every completion",
    "monitor/frac_groups_dropped": "share of prompt groups left out of the loss "
                                   "(grpo.drop_constant_accuracy_groups; 0 when off)",
    "completions/mean_length": "mean completion length in tokens (TRL)",
    "completions/max_length": "longest completion in tokens (TRL)",
    "completions/clipped_ratio": "truncation rate: share cut at max_completion_length (TRL)",
    "answer_letters/{X}": "share of completions whose extracted answer is letter X "
                          "(answer_letters/none: no answer)",
    "answer_letters/entropy": "entropy (bits) of the answered-letter distribution",
    "gold_letters/entropy": "entropy (bits) of the gold letters of the same completions",
    "kl": "mean per-token KL to the reference policy, when grpo.beta > 0 (TRL)",
    "grad_norm": "gradient norm before clipping (transformers)",
    "step_time": "seconds of the step's training_step calls (TRL)",
    "monitor/step_s": "wall seconds between two logged steps, divided by the steps between",
    "monitor/tokens_per_s": "prompt + completion tokens processed per wall second",
    "heldout/accuracy": "accuracy on the held-out subset, greedy, with the live policy",
}


class TrainingStopped(RuntimeError):
    """A guard stopped the run; ``reason`` is ``nonfinite`` or an alarm name."""

    def __init__(self, reason: str, step: int, message: str):
        super().__init__(message)
        self.reason, self.step, self.message = reason, step, message


# --------------------------------------------------------------------------- reward statistics


def entropy_bits(counts: Mapping[Any, float]) -> float:
    """Shannon entropy (bits) of a distribution given by non-negative counts or shares."""
    total = sum(v for v in counts.values() if v > 0)
    if total <= 0:
        return 0.0
    return -sum((v / total) * math.log2(v / total) for v in counts.values() if v > 0)


def batch_statistics(analyses: Sequence[Any]) -> dict[str, float]:
    """Per-batch monitors from gazal's reward analyses (:class:`gazal.rewards.analysis.
    Analysis`): accuracy, format pass rate, answered and gold letter shares and entropies."""
    from gazal.rewards import format as format_reward

    n = len(analyses)
    if not n:
        return {}
    out: dict[str, float] = {}
    out["monitor/accuracy"] = sum(1 for a in analyses if a.correct) / n
    out["monitor/format_pass_rate"] = sum(
        1 for a in analyses if not a.truncated and all(format_reward.parts(a))) / n
    letters: set[str] = set()
    for a in analyses:
        letters.update(a.options)
    answered = Counter(a.extraction.letter for a in analyses)
    gold = Counter(a.gold for a in analyses)
    for letter in sorted(letters):
        out[f"answer_letters/{letter}"] = answered.get(letter, 0) / n
        out[f"gold_letters/{letter}"] = gold.get(letter, 0) / n
    out["answer_letters/none"] = answered.get(None, 0) / n
    out["answer_letters/entropy"] = entropy_bits({k: v for k, v in answered.items() if k})
    out["gold_letters/entropy"] = entropy_bits(gold)
    return out


def accuracy_spread(accuracy: Any, group_size: int) -> dict[str, Any]:
    """Shares of prompt groups whose accuracy does not vary, from the gathered accuracy
    rewards of a generation batch (a tensor, TRL's group order: ``group_size`` consecutive
    completions per prompt). ``constant`` is the per-group boolean tensor."""
    correct = accuracy.view(-1, group_size) > 0.5
    all_correct = correct.all(dim=1)
    all_wrong = (~correct).all(dim=1)
    constant = all_correct | all_wrong
    return {"monitor/frac_accuracy_zero_std": constant.float().mean().item(),
            "monitor/frac_all_correct": all_correct.float().mean().item(),
            "monitor/frac_all_wrong": all_wrong.float().mean().item(),
            "constant": constant}


def drop_groups(trainer: Any, output: dict[str, Any], constant: Any, group_size: int) -> None:
    """Leave the prompt groups flagged in ``constant`` (one bool per group of the whole,
    gathered batch) out of the loss: on this process's slice of TRL's
    ``_generate_and_score_completions`` output, advantage 0 and loss mask 0 (as TRL's
    ``mask_truncated_completions`` does), and their tokens out of ``num_items_in_batch``
    (dapo's normaliser, gathered over processes)."""
    import torch

    per_completion = constant.repeat_interleave(group_size)
    n_local = output["advantages"].shape[0]
    start = trainer.accelerator.process_index * n_local
    local = per_completion[start:start + n_local].to(output["advantages"].device)
    mask = output["completion_mask"]
    dropped_tokens = (mask * local.unsqueeze(1).to(mask.dtype)).sum()
    output["advantages"] = torch.where(local, torch.zeros_like(output["advantages"]),
                                       output["advantages"])
    output["completion_mask"] = mask * (~local).unsqueeze(1).to(mask.dtype)
    if "num_items_in_batch" in output:
        gone = trainer.accelerator.gather(dropped_tokens.reshape(1)).sum()
        output["num_items_in_batch"] = output["num_items_in_batch"] - gone


class MonitoredReward:
    """A gazal reward function that also hands :func:`batch_statistics` to TRL's
    ``log_metric`` hook (TRL 1.16 passes it to reward functions and averages what it gets per
    logged step). The statistics read the analyses the components made for this batch (the
    components share one cached :class:`~gazal.rewards.analysis.Analyzer`), so nothing is
    parsed or scored twice. Wrap one component (the first); the others stay as they are."""

    def __init__(self, func: Any):
        self.func = func
        self.__name__ = func.__name__  # TRL logs rewards/<__name__>/mean

    def __call__(self, completions: Sequence[Any], **columns: Any) -> list[float | None]:
        values = self.func(completions, **columns)
        log_metric = columns.get("log_metric")
        if callable(log_metric):
            for key, value in batch_statistics(self.func.analyzer.batch(completions,
                                                                        columns)).items():
                log_metric(key, value)
        return values

    def __repr__(self) -> str:
        return f"MonitoredReward({self.func!r})"


# --------------------------------------------------------------------------- alarms


@dataclass(frozen=True)
class Alarm:
    """An alarm that fired at ``step``."""

    name: str
    action: str  # warn | stop
    step: int
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"alarm": self.name, "action": self.action, "step": self.step,
                "message": self.message}


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _values(records: Sequence[Mapping[str, Any]], key: str) -> list[float]:
    return [float(r[key]) for r in records
            if isinstance(r.get(key), int | float) and math.isfinite(float(r[key]))]


class HackingAlarms:
    """Reward-hacking alarms over the sequence of logged records (one per logged step).

    Feed records in step order to :meth:`observe`; it returns the alarms that start at that
    record (an alarm fires once when its condition becomes true and again only after it has
    cleared) and sets :attr:`flags` (alarm name -> whether its condition holds now). Formulas
    (W = guards.window, "mean" over the last W records that have the value):

    - ``format_vs_heldout``: held-out accuracy is at least ``heldout_drop`` below its peak
      (a later measurement than the peak), and the format pass rate rose by at least
      ``format_rise``: mean of the last W steps minus the mean of the W steps up to the peak
      (the first W steps when the peak is the step-0 baseline);
    - ``letter_entropy``: over the last W steps, H(answered letters) < letter_entropy_ratio x
      H(gold letters), both from the pooled shares, with at least ``min_answered`` answered
      completions (``completions_per_step`` x pooled answered share x steps);
    - ``length``: mean length of the last W steps < length_collapse_ratio x the reference
      (the first W steps), or > length_explosion_ratio x the reference, or a truncation rate
      >= max_truncation_rate that is above the reference's.
    """

    NAMES = ("format_vs_heldout", "letter_entropy", "length")

    def __init__(self, cfg: GuardsSection, completions_per_step: int):
        self.cfg = cfg
        self.completions_per_step = completions_per_step
        self.records: list[Mapping[str, Any]] = []
        self.flags: dict[str, bool] = dict.fromkeys(self.NAMES, False)

    def observe(self, record: Mapping[str, Any]) -> list[Alarm]:
        self.records.append(record)
        step = int(record.get("step", len(self.records)))
        fired = []
        for name in self.NAMES:
            action = getattr(self.cfg, name)
            if action == "off":
                continue
            message = getattr(self, f"_check_{name}")()
            holds = message is not None
            if holds and not self.flags[name]:
                fired.append(Alarm(name, action, step, message))  # type: ignore[arg-type]
            self.flags[name] = holds
        return fired

    # -------------------------------------------------------------- conditions

    def _train_records(self) -> list[Mapping[str, Any]]:
        return [r for r in self.records if int(r.get("step", 0)) > 0]

    def _check_format_vs_heldout(self) -> str | None:
        c = self.cfg
        points = [(int(r.get("step", 0)), float(r["heldout/accuracy"])) for r in self.records
                  if isinstance(r.get("heldout/accuracy"), int | float)]
        if len(points) < 2:
            return None
        peak_step, peak = max(points, key=lambda p: (p[1], -p[0]))
        last_step, last = points[-1]
        if last_step <= peak_step or peak - last < c.heldout_drop:
            return None
        train = [r for r in self._train_records() if "monitor/format_pass_rate" in r]
        now = _mean(_values(train[-c.window:], "monitor/format_pass_rate"))
        upto = [r for r in train if int(r["step"]) <= peak_step]
        then_records = upto[-c.window:] if upto else train[:c.window]
        then = _mean(_values(then_records, "monitor/format_pass_rate"))
        if now is None or then is None or now - then < c.format_rise:
            return None
        return (f"format pass rate rose from {then:.2f} to {now:.2f} while held-out accuracy "
                f"fell from {peak:.3f} (step {peak_step}) to {last:.3f} (step {last_step}): "
                "the policy may be learning the form instead of the answers")

    def _check_letter_entropy(self) -> str | None:
        c = self.cfg
        recent = [r for r in self._train_records() if "answer_letters/entropy" in r][-c.window:]
        if len(recent) < c.window:
            return None
        answered: Counter[str] = Counter()
        gold: Counter[str] = Counter()
        for r in recent:
            for key, value in r.items():
                if not isinstance(value, int | float):
                    continue
                if key.startswith("answer_letters/") and key[15:] not in ("none", "entropy"):
                    answered[key[15:]] += float(value)
                elif key.startswith("gold_letters/") and key[13:] != "entropy":
                    gold[key[13:]] += float(value)
        n_answered = sum(answered.values()) * self.completions_per_step
        if n_answered < c.min_answered:
            return None
        h_ans, h_gold = entropy_bits(answered), entropy_bits(gold)
        if h_gold <= 0 or h_ans >= c.letter_entropy_ratio * h_gold:
            return None
        top, share = max(answered.items(), key=lambda kv: kv[1])
        share /= sum(answered.values())
        return (f"answered letters collapsed: entropy {h_ans:.2f} bits vs {h_gold:.2f} for the "
                f"gold letters over the last {len(recent)} steps ({share:.0%} answer {top}); "
                "the policy may be guessing one letter")

    def _check_length(self) -> str | None:
        c = self.cfg
        train = [r for r in self._train_records() if "completions/mean_length" in r]
        if len(train) < 2 * c.window:
            return None
        ref_len = _mean(_values(train[:c.window], "completions/mean_length"))
        now_len = _mean(_values(train[-c.window:], "completions/mean_length"))
        ref_cut = _mean(_values(train[:c.window], "completions/clipped_ratio")) or 0.0
        now_cut = _mean(_values(train[-c.window:], "completions/clipped_ratio")) or 0.0
        if not ref_len or now_len is None:
            return None
        ratio = now_len / ref_len
        if ratio < c.length_collapse_ratio:
            return (f"completion length collapsed to {now_len:.1f} tokens ({ratio:.2f} x the "
                    f"first {c.window} steps' {ref_len:.1f})")
        if ratio > c.length_explosion_ratio:
            return (f"completion length exploded to {now_len:.1f} tokens ({ratio:.2f} x the "
                    f"first {c.window} steps' {ref_len:.1f})")
        if now_cut >= c.max_truncation_rate and now_cut > ref_cut:
            return (f"{now_cut:.0%} of completions are cut at max_completion_length (first "
                    f"{c.window} steps: {ref_cut:.0%})")
        return None


# --------------------------------------------------------------------------- non-finite


def nonfinite_message(step: int, loss: float | None, grad_norm: float | None) -> str | None:
    """The guard's message when the loss or gradient norm is NaN or infinite, else None."""
    bad = []
    if loss is not None and not math.isfinite(loss):
        bad.append(f"loss {loss}")
    if grad_norm is not None and not math.isfinite(grad_norm):
        bad.append(f"gradient norm {grad_norm}")
    if not bad:
        return None
    return (f"step {step}: {' and '.join(bad)}; stopped before the optimizer step, so no "
            "weight took the update and no checkpoint was written after it. Resume would "
            "restart from the last checkpoint; lower train.learning_rate or "
            "train.max_grad_norm, or check the data of this step, then start a new output "
            "folder")


def nonfinite_parameters(model: Any) -> list[str]:
    """Names of trainable parameters holding NaN or infinite values (at most 5).

    Under DeepSpeed ZeRO-3 a parameter is an empty placeholder and this process's shard is in
    ``ds_tensor``: the shard is what is checked (other processes check theirs)."""
    import torch

    bad = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        values = getattr(p, "ds_tensor", None)
        values = p if values is None else values
        if not torch.isfinite(values.detach()).all():
            bad.append(name)
            if len(bad) >= 5:
                break
    return bad


# --------------------------------------------------------------------------- held-out


class HeldoutEvaluator:
    """Accuracy of the live policy on held-out items: greedy generation in eval mode with
    DoRA's cache (:func:`gazal.train.fast_generation.fast_generation_mode`), scored by the
    evaluation protocol (:func:`gazal.eval.runner.evaluate_items`).

    With several processes (``rank``, ``world``) each one generates every ``world``-th item
    with its own copy of the policy (data-parallel training keeps the copies identical), the
    scored records are gathered on every process and summarised together: the same numbers
    as one process evaluating them all, in 1/world of the time, and no process waits idle in
    a collective while another generates."""

    def __init__(self, items: Sequence[Any], params: Any, system_prompt: str | None,
                 batch_size: int | None = None):
        self.items = list(items)
        self.params = params
        self.system_prompt = system_prompt
        self.batch_size = batch_size

    def records(self, model: Any, tokenizer: Any, items: Sequence[Any]) -> list[dict[str, Any]]:
        """Scored records of ``items`` (the evaluation protocol's), generated with ``model``."""
        from gazal.eval.runner import evaluate_items
        from gazal.generation.hf import HFBackend
        from gazal.train.fast_generation import fast_generation_mode

        if not items:
            return []
        side = tokenizer.padding_side
        with fast_generation_mode(model), _quiet_backend_logs():
            backend = HFBackend(model, tokenizer, batch_size=self.batch_size or "auto")
            records, _ = evaluate_items(items, backend, self.params,
                                        system_prompt=self.system_prompt, seed=0)
        tokenizer.padding_side = side  # HFBackend pads prompts on the left
        return records

    def __call__(self, model: Any, tokenizer: Any, rank: int = 0, world: int = 1
                 ) -> dict[str, float]:
        from gazal.distributed import gather_lists
        from gazal.eval.metrics import summarize
        from gazal.eval.score import category_keys

        started = time.perf_counter()
        mine = self.records(model, tokenizer, self.items[rank::world])
        records = gather_lists(mine) if world > 1 else mine
        order = {item.id: i for i, item in enumerate(self.items)}
        records.sort(key=lambda r: (order.get(r["id"], len(order)), r.get("sample_index", 0)))
        summary = summarize(records, category_keys())
        return {"heldout/accuracy": summary["accuracy"], "heldout/n": summary["n"],
                "heldout/missing": summary["missing"],
                "heldout/truncated": summary["truncated"],
                "heldout/seconds": round(time.perf_counter() - started, 3)}


class _quiet_backend_logs:
    """HFBackend warns about generating with an unmerged DoRA adapter (in fast-generation mode
    DoRA's cache is on, so it does not apply) and reports its automatic batch size (at every
    held-out evaluation): neither belongs in a training log."""

    class _Filter(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            message = record.getMessage()
            return "unmerged DoRA" not in message and "batch_size auto" not in message

    def __enter__(self) -> None:
        self.f = self._Filter()
        log.addFilter(self.f)

    def __exit__(self, *exc: Any) -> None:
        log.removeFilter(self.f)


# --------------------------------------------------------------------------- the callback


CONSOLE_FIELDS = (("reward", "reward", "{:+.3f}"), ("acc", "monitor/accuracy", "{:.2f}"),
                  ("fmt", "monitor/format_pass_rate", "{:.2f}"),
                  ("0-spread", "frac_reward_zero_std", "{:.2f}"),
                  ("0-acc-spread", "monitor/frac_accuracy_zero_std", "{:.2f}"),
                  ("len", "completions/mean_length", "{:.0f}"),
                  ("max", "completions/max_length", "{:.0f}"),
                  ("cut", "completions/clipped_ratio", "{:.2f}"),
                  ("H(ans)", "answer_letters/entropy", "{:.2f}"),
                  ("H(gold)", "gold_letters/entropy", "{:.2f}"), ("kl", "kl", "{:.4f}"),
                  ("gnorm", "grad_norm", "{:.3f}"), ("s/step", "monitor/step_s", "{:.2f}"),
                  ("tok/s", "monitor/tokens_per_s", "{:.0f}"),
                  ("heldout", "heldout/accuracy", "{:.3f}"))


def console_line(record: Mapping[str, Any]) -> str:
    """One line of the main monitors."""
    parts = [f"step {record.get('step')}"]
    for label, key, fmt in CONSOLE_FIELDS:
        value = record.get(key)
        if isinstance(value, int | float):
            parts.append(f"{label} {fmt.format(value)}")
    return " | ".join(parts)


class GRPOMonitorCallback(TrainerCallback):
    """Held-out evaluation, throughput, alarms, the non-finite weight check and the console
    line. Put it before :class:`~gazal.train.callbacks.MetricsJsonlCallback` so what it adds
    to a step's logs is in that step's record.

    ``history`` gives the records logged before a resume (from ``metrics.jsonl``), so the
    alarms see the whole run. ``echo`` prints the console line (main process only).
    """

    def __init__(self, guards: GuardsSection, completions_per_step: int, *,
                 heldout: HeldoutEvaluator | None = None, heldout_every: int = 0,
                 heldout_at_end: bool = True,
                 history: Callable[[int], list[dict[str, Any]]] | None = None,
                 echo: Callable[[str], None] | None = None):
        self.guards = guards
        self.alarms = HackingAlarms(guards, completions_per_step)
        self.heldout = heldout
        self.heldout_every = heldout_every
        self.heldout_at_end = heldout_at_end
        self.history = history
        self.echo = echo
        self.fired: list[Alarm] = []
        self.stop: TrainingStopped | None = None
        self._pending: dict[str, float] = {}
        self._started = False
        self._last_time: float | None = None
        self._last_tokens = 0
        self._last_step = 0
        self._excluded = 0.0

    # ------------------------------------------------------------------ helpers

    def _start(self, state) -> None:
        self._started = True
        if self.history is not None:
            for record in self.history(state.global_step):
                self.alarms.observe(record)  # rebuild state; alarms already reported then
        self._last_time = time.perf_counter()
        self._last_tokens = state.num_input_tokens_seen
        self._last_step = state.global_step

    def run_heldout(self, model: Any, tokenizer: Any) -> dict[str, float]:
        """Held-out evaluation, split over the processes; the same result on every process.
        A collective: every process calls it at the same point."""
        from accelerate import PartialState

        if self.heldout is None:
            return {}
        state = PartialState()
        return self.heldout(model, tokenizer, state.process_index, state.num_processes)

    # ------------------------------------------------------------------ events

    def on_step_begin(self, args, state, control, **kwargs):
        if not self._started:
            self._start(state)

    def on_optimizer_step(self, args, state, control, model=None, **kwargs):
        if not self.guards.stop_on_nonfinite or model is None:
            return
        from accelerate import PartialState

        from gazal.distributed import gather_lists

        procs = PartialState()
        bad = nonfinite_parameters(model)
        if procs.num_processes > 1:
            # every process stops at this step when any one found a bad value (a shard under
            # ZeRO-3 is seen by one process only; a fault can hit one copy); one process
            # stopping alone would leave the others waiting in the next collective
            bad = gather_lists([f"{name} (process {procs.process_index})" for name in bad])
        if bad:
            step = state.global_step + 1
            raise TrainingStopped("nonfinite", step, (
                f"step {step}: the optimizer step left NaN or infinite values in "
                f"{', '.join(bad[:5])}; stopped before any checkpoint was written with them. "
                "Lower train.learning_rate and start a new output folder"))

    def on_step_end(self, args, state, control, model=None, processing_class=None, **kwargs):
        every, step = self.heldout_every, state.global_step
        due = (every and step % every == 0) or (self.heldout_at_end and step >= state.max_steps)
        if self.heldout is not None and due:
            started = time.perf_counter()
            self._pending.update(self.run_heldout(model, processing_class))
            self._excluded += time.perf_counter() - started

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is None or ("loss" not in logs and "reward" not in logs):
            return
        now = time.perf_counter()
        steps = max(1, state.global_step - self._last_step)
        if self._last_time is not None:
            elapsed = now - self._last_time - self._excluded  # held-out time is not step time
            logs["monitor/step_s"] = elapsed / steps
            tokens = state.num_input_tokens_seen - self._last_tokens
            if elapsed > 0 and tokens > 0:
                logs["monitor/tokens_per_s"] = tokens / elapsed
        self._last_time, self._last_tokens = now, state.num_input_tokens_seen
        self._excluded = 0.0
        self._last_step = state.global_step
        logs.update(self._pending)
        self._pending = {}
        record = {"step": state.global_step, **logs}
        # the main process's verdict is every process's (a collective: on_log runs on every
        # process at each logging step): a stop must end them all at the same step. TRL
        # averages the logged values over the processes, but the decision must not depend
        # on floating-point agreement.
        from gazal.distributed import broadcast_from_main

        fired = self.alarms.observe(record)
        fired, flags = broadcast_from_main((fired, dict(self.alarms.flags)))
        self.alarms.flags = dict(flags)
        main = state.is_world_process_zero
        for alarm in fired:
            self.fired.append(alarm)
            text = f"alarm {alarm.name} at step {alarm.step}: {alarm.message}"
            if alarm.action == "stop" and self.stop is None:
                self.stop = TrainingStopped(alarm.name, alarm.step, text + " (guards."
                                            f"{alarm.name}: stop)")
                control.should_training_stop = True
                control.should_save = False  # keep the checkpoints from before the alarm
                if main:
                    log.error("%s; stopping (guards.%s: stop)", text, alarm.name)
            elif main:
                log.warning("%s (guards.%s: warn)", text, alarm.name)
        for name, holds in self.alarms.flags.items():
            if getattr(self.guards, name) != "off":
                logs[f"alarm/{name}"] = int(holds)
        if self.echo is not None and state.is_world_process_zero:
            self.echo(console_line({"step": state.global_step, **logs}))

    def on_save(self, args, state, control, **kwargs):
        # saving (after this step's log) is not the next step's generation or training time
        self._last_time = time.perf_counter()
