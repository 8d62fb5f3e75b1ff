"""Advantage designs side by side on gazal's built-in GRPO groups (issue 15, deliverable 1).

    PYTHONPATH=src python bench/advantage_candidates.py [--groups FILE.jsonl] [--recipe R]

Scores every group of ``src/gazal/rewards/audit_groups.jsonl`` once with the configured reward
(default: the paper recipe's, recipes/gazal-r1-32b/grpo.yaml), then computes the advantages of
each candidate design with TRL's formula (gazal.rewards.advantage.grpo_advantages) and prints,
per candidate and group kind:

- ``all-wrong max|A|``: the largest |advantage| in the all-wrong well-formed groups (rule:
  <= 0.2);
- ``mixed min gap``: the smallest (correct - wrong) advantage gap in the mixed groups (rule:
  >= 0.5), and ``mixed |A| correct``: the mean advantage of a correct answer there (how hard
  correctness pushes);
- ``malformed margin``: the smallest (well-formed - malformed) advantage gap at equal accuracy
  (rule: > 0);
- ``all-right max|A|``: the all-correct group's largest |advantage| (not a rule).

Candidates: TRL's ``scale_rewards`` group (its default), batch (the file's groups as one
batch, and a batch of the all-wrong groups only: a hard batch), none (Dr. GRPO); a std floor
(not a TRL setting); shaping gated on correctness; shaping scaled relative to accuracy.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path

from gazal.report.tables import text_table
from gazal.rewards import build_reward_functions, load_reward_config
from gazal.rewards.advantage import check_rules, grpo_advantages
from gazal.rewards.audit_groups import builtin_groups_path, load_groups, score_groups

ROOT = Path(__file__).resolve().parents[1]
Totals = Callable[[dict[str, float | None], dict[str, float]], float]


def plain(c: dict[str, float | None], w: dict[str, float]) -> float:
    return sum(w[n] * v for n, v in c.items() if v is not None)


def gated(c: dict[str, float | None], w: dict[str, float]) -> float:
    """Shaping counts only for a correct answer."""
    acc = c.get("accuracy") or 0.0
    return w["accuracy"] * acc + acc * sum(w[n] * v for n, v in c.items()
                                           if n != "accuracy" and v is not None)


def scaled(factor: float) -> Totals:
    def total(c: dict[str, float | None], w: dict[str, float]) -> float:
        return sum((1.0 if n == "accuracy" else factor) * w[n] * v for n, v in c.items()
                   if v is not None)
    return total


# name, totals, scale_rewards, std_floor, batch: "all" (every group) or "wrong" (all-wrong only)
CANDIDATES: list[tuple[str, Totals, str, float | None, str]] = [
    ("group (TRL default, recipes before)", plain, "group", None, "all"),
    ("batch (mixed batch)", plain, "batch", None, "all"),
    ("batch (all-wrong batch)", plain, "batch", None, "wrong"),
    ("none (Dr. GRPO)", plain, "none", None, "all"),
    ("group, std floor 0.5", plain, "group", 0.5, "all"),
    ("group, std floor 1.0", plain, "group", 1.0, "all"),
    ("group, shaping gated on correctness", gated, "group", None, "all"),
    ("group, shaping x0.25", scaled(0.25), "group", None, "all"),
    ("none, shaping x0.25", scaled(0.25), "none", None, "all"),
    ("none, shaping x0.5", scaled(0.5), "none", None, "all"),
    ("none, shaping x0.75", scaled(0.75), "none", None, "all"),
    ("none, shaping gated on correctness", gated, "none", None, "all"),
]


def _kind(name: str) -> str:
    for k in ("all_wrong", "all_correct", "mixed", "malformed"):
        if name.startswith(k):
            return k
    return "other"


def _fmt(values: list[float], f: Callable[[list[float]], float], digits: int = 2) -> str:
    return f"{f(values):+.{digits}f}" if values else "-"


def measure(results: Sequence, weights: dict[str, float]) -> list[list[str]]:
    rows = []
    for label, totals, scale, floor, batch in CANDIDATES:
        chosen = [r for r in results if batch == "all" or _kind(r.group.name) == "all_wrong"]
        groups = [[totals(c, weights) for c in r.components] for r in chosen]
        advs = grpo_advantages(groups, scale, std_floor=floor)  # type: ignore[arg-type]
        stats: dict[str, list[float]] = {"wrong": [], "gap": [], "corr": [], "mal": [],
                                         "right": []}
        broken = 0
        for r, a in zip(chosen, advs, strict=True):
            kind = _kind(r.group.name)
            broken += bool(check_rules(r.components, a))
            acc = [c["accuracy"] for c in r.components]
            fmt = [c["format"] for c in r.components]
            if kind == "all_wrong":
                stats["wrong"].append(max(abs(x) for x in a))
            if kind == "all_correct":
                stats["right"].append(max(abs(x) for x in a))
            if kind in ("mixed", "malformed") and 0 < sum(acc) < len(acc):
                cor = [x for x, y in zip(a, acc, strict=True) if y == 1]
                wro = [x for x, y in zip(a, acc, strict=True) if y == 0]
                stats["gap"].append(min(cor) - max(wro))
                stats["corr"].append(sum(cor) / len(cor))
            if kind == "malformed":
                for v in (0.0, 1.0):
                    good = [x for x, y, f in zip(a, acc, fmt, strict=True) if y == v and f == 1]
                    bad = [x for x, y, f in zip(a, acc, fmt, strict=True) if y == v and f < 1]
                    if good and bad:
                        stats["mal"].append(min(good) - max(bad))

        rows.append([label, _fmt(stats["wrong"], max), _fmt(stats["gap"], min),
                     _fmt(stats["corr"], lambda v: sum(v) / len(v)), _fmt(stats["mal"], min, 3),
                     _fmt(stats["right"], max), f"{broken}/{len(chosen)}"])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--groups", default=str(builtin_groups_path()))
    ap.add_argument("--recipe", default=str(ROOT / "recipes" / "gazal-r1-32b" / "grpo.yaml"))
    args = ap.parse_args()
    cfg = load_reward_config(args.recipe)
    cfg.shaping_scale = 1.0  # the candidates scale the weights as written themselves
    funcs, weights = build_reward_functions(cfg)
    results = score_groups(load_groups(args.groups), funcs, weights)
    w = dict(zip(cfg.components, weights, strict=True))
    print(f"reward: {args.recipe} ({', '.join(f'{n}={v:g}' for n, v in w.items())}); "
          f"groups: {args.groups}")
    print(text_table(["candidate", "all-wrong max|A|", "mixed min gap", "mixed A correct",
                      "malformed margin", "all-right max|A|", "groups breaking a rule"],
                     measure(results, w)))
    print("rules: all-wrong max|A| <= 0.2; mixed min gap >= 0.5; malformed margin > 0")


if __name__ == "__main__":
    main()
