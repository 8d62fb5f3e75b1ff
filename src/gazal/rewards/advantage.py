"""GRPO advantages as TRL 1.16 computes them, and the rules they must meet (docs/rewards.md,
"Advantages").

:func:`grpo_advantages` reproduces ``GRPOTrainer._generate_and_score_completions`` with
``multi_objective_aggregation="sum_then_normalize"`` (TRL's default, the one gazal uses)::

    total_i = sum_k weight_k * r_ik                      (components that gave None skipped)
    A_i     = total_i - mean(group of i)
    A_i    /= std + 1e-4       std: the group's (scale_rewards "group") or the whole batch's
                               ("batch"), Bessel-corrected as TRL's nanstd; no division with
                               "none" (Dr. GRPO, arXiv 2503.20783)

The loss type does not change the advantage; it changes how each completion's tokens are
weighted in the loss (:func:`sequence_weights`). ``tests/test_rewards_advantage.py`` checks
these formulas against a real ``GRPOTrainer``.

The rules (:func:`check_rules`) are issue 15's:

1. ``all_wrong``: in a group where every completion is valid, well formed (format 1) and
   wrong, every ``|A| <= 0.2``: shaping alone must not push with the force of correctness;
2. ``mixed``: in a group with right and wrong answers, every correct completion's advantage
   exceeds every wrong one's by ``>= 0.5``;
3. ``malformed``: among completions with the same accuracy, every well-formed one (format 1,
   not truncated) ranks above every malformed one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["ALL_WRONG_MAX", "MIXED_MARGIN", "SCALE_REWARDS", "RuleFailure", "check_rules",
           "grpo_advantages", "sequence_weights"]

ScaleRewards = Literal["group", "batch", "none"]
SCALE_REWARDS = ("group", "batch", "none")
ALL_WRONG_MAX = 0.2   # rule 1: largest |advantage| in a well-formed all-wrong group
MIXED_MARGIN = 0.5    # rule 2: least (correct - wrong) advantage gap in a mixed group
_EPS = 1e-4           # TRL's `advantages / (std_rewards + 1e-4)`


def _nanmean(xs: Sequence[float]) -> float:
    vals = [x for x in xs if not math.isnan(x)]
    return sum(vals) / len(vals) if vals else math.nan


def _nanstd(xs: Sequence[float]) -> float:
    """TRL's ``nanstd``: Bessel-corrected, NaN when fewer than two values."""
    vals = [x for x in xs if not math.isnan(x)]
    if len(vals) < 2:
        return math.nan
    m = sum(vals) / len(vals)
    return math.sqrt(sum((x - m) ** 2 for x in vals) / (len(vals) - 1))


def grpo_advantages(groups: Sequence[Sequence[float]], scale_rewards: ScaleRewards = "group",
                    *, std_floor: float | None = None) -> list[list[float]]:
    """Advantages of each group's totals, in TRL's formula (module docstring).

    ``groups`` is the generation batch split into prompt groups (TRL's groups all have
    ``num_generations`` members; here they may differ, each is its own group). A NaN total
    (every component None) is left out of the statistics and gets advantage 0, as in TRL.
    ``std_floor`` (not a TRL setting; measured by bench/advantage_candidates.py only) divides
    by ``max(std, std_floor)`` instead.
    """
    if scale_rewards not in SCALE_REWARDS:
        raise ValueError(f"scale_rewards: expected one of {', '.join(SCALE_REWARDS)}, got "
                         f"{scale_rewards!r}")
    batch_std = _nanstd([x for g in groups for x in g])
    out = []
    for g in groups:
        mean = _nanmean(g)
        std = batch_std if scale_rewards == "batch" else _nanstd(g)
        if scale_rewards != "none" and math.isnan(std):
            std = 0.0  # TRL: zeros when the group (or batch) has a single completion
        advs = []
        for x in g:
            a = x - mean
            if scale_rewards != "none":
                a = a / ((max(std, std_floor) if std_floor is not None else std) + _EPS)
            advs.append(0.0 if math.isnan(a) else a)
        out.append(advs)
    return out


def sequence_weights(n_tokens: Sequence[int], loss_type: str, max_completion_length: int,
                     ) -> list[float]:
    """Weight of one token's loss term of each completion, relative to the batch, under
    TRL's ``loss_type`` (its ``_compute_loss``): ``grpo``/``sapo``/``luspo``: 1 / (B * own
    length) (luspo: 1 / B); ``bnpo``/``dapo``/``cispo``/``vespo``: 1 / all tokens of the
    batch; ``dr_grpo``: 1 / (B * max_completion_length). A completion's whole push is its
    advantage times its token count times this weight."""
    b = len(n_tokens)
    total = sum(n_tokens) or 1
    if loss_type in ("grpo", "sapo"):
        return [1.0 / (b * max(n, 1)) for n in n_tokens]
    if loss_type == "luspo":
        return [1.0 / b for _ in n_tokens]
    if loss_type == "dr_grpo":
        return [1.0 / (b * max_completion_length) for _ in n_tokens]
    if loss_type in ("bnpo", "dapo", "cispo", "vespo"):
        return [1.0 / total for _ in n_tokens]
    raise ValueError(f"loss_type: unknown {loss_type!r}")


@dataclass(frozen=True)
class RuleFailure:
    """A group that breaks one of the rules (module docstring)."""

    rule: str  # all_wrong | mixed | malformed
    message: str


def _well_formed(components: Mapping[str, Any], truncated: bool) -> bool:
    fmt = components.get("format")
    return not truncated and fmt is not None and fmt >= 1.0 - 1e-9


def check_rules(components: Sequence[Mapping[str, Any]], advantages: Sequence[float],
                truncated: Sequence[bool] | None = None, *, names: Sequence[str] | None = None,
                all_wrong_max: float = ALL_WRONG_MAX, mixed_margin: float = MIXED_MARGIN,
                ) -> list[RuleFailure]:
    """The rules a group of completions breaks, read from each completion's ``components``
    (``accuracy`` and ``format`` are needed; without them the rules that need them are not
    checked) and its advantage. ``names`` label the completions in the messages (default:
    their index)."""
    n = len(components)
    truncated = list(truncated) if truncated is not None else [False] * n
    names = list(names) if names is not None else [f"#{i}" for i in range(n)]
    acc = [c.get("accuracy") for c in components]
    if any(a is None for a in acc):
        return []
    out: list[RuleFailure] = []
    correct = [i for i in range(n) if acc[i] >= 0.5]
    wrong = [i for i in range(n) if acc[i] < 0.5]
    well = [_well_formed(c, t) for c, t in zip(components, truncated, strict=True)]
    has_format = all("format" in c and c["format"] is not None for c in components)
    if not correct and has_format and all(well):
        worst = max(range(n), key=lambda i: abs(advantages[i]))
        if abs(advantages[worst]) > all_wrong_max + 1e-9:
            out.append(RuleFailure("all_wrong", (
                f"all {n} completions are well formed and wrong, yet {names[worst]} has "
                f"advantage {advantages[worst]:+.3f} (|A| must be <= {all_wrong_max:g})")))
    if correct and wrong:
        lo = min(correct, key=lambda i: advantages[i])
        hi = max(wrong, key=lambda i: advantages[i])
        gap = advantages[lo] - advantages[hi]
        if gap < mixed_margin - 1e-9:
            out.append(RuleFailure("mixed", (
                f"correct {names[lo]} ({advantages[lo]:+.3f}) exceeds wrong {names[hi]} "
                f"({advantages[hi]:+.3f}) by {gap:+.3f} (must be >= {mixed_margin:g})")))
    if has_format:
        for cls in (correct, wrong):
            good = [i for i in cls if well[i]]
            bad = [i for i in cls if not well[i]]
            if good and bad:
                lo = min(good, key=lambda i: advantages[i])
                hi = max(bad, key=lambda i: advantages[i])
                if advantages[hi] >= advantages[lo] - 1e-9:
                    out.append(RuleFailure("malformed", (
                        f"malformed {names[hi]} ({advantages[hi]:+.3f}) ranks at or above "
                        f"well-formed {names[lo]} ({advantages[lo]:+.3f}) with the same "
                        f"accuracy")))
    return out
