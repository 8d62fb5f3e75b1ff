"""``gazal rewards audit``: check the configured GRPO reward against a library of hacks."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rewards", help="GRPO reward tools (audit against reward hacking)",
                       description="Tools for gazal's GRPO reward (docs/rewards.md).")
    rsub = p.add_subparsers(dest="rewards_command", required=True, metavar="SUBCOMMAND")
    a = rsub.add_parser(
        "audit", help="score honest answers and known reward hacks; fail if a hack pays",
        description="Scores every case of a library (the built-in one by default) with the "
                    "configured reward and prints each case's components and total. Exits 1, "
                    "naming the case, when a hack scores at least as much as the honest wrong "
                    "answer of its group, or an honest correct answer scores less than an "
                    "honest wrong one. Reward settings come from --recipe (its 'reward:' "
                    "section, or a YAML holding only the reward section) and --key value "
                    "overrides (e.g. --length.max_tokens 8192 --format.weight 1).")
    a.add_argument("--cases", help="JSONL of cases {name, kind, completion, answer, options, "
                                   "[prompt], [truncated], [note]} (default: the built-in "
                                   "library)")
    a.add_argument("--recipe", help="YAML recipe with a 'reward:' section, or a reward-only "
                                    "YAML")
    a.add_argument("--tokenizer", help="local tokenizer folder for exact token counts "
                                       "(default: ~4 characters per token)")
    a.add_argument("--json", action="store_true",
                   help="print one JSON object per case (name, kind, group, total, "
                        "components, ok, failures); with --groups one JSON object "
                        "{groups: [{name, completions: [{total, advantage, components}]}]}")
    a.add_argument("--groups", nargs="?", const="builtin", metavar="FILE.jsonl",
                   help="audit GRPO prompt groups instead: JSONL of {name, prompt, answer, "
                        "options, completions: [...], [note]}; prints every component, the "
                        "total and the GRPO advantage the recipe's trainer settings "
                        "(grpo.scale_rewards, loss_type) give, and exits 1 when a group "
                        "breaks an advantage rule (docs/rewards.md, 'Advantages'); without "
                        "FILE: the built-in groups")
    a.add_argument("--scale-rewards", choices=["group", "batch", "none"],
                   help="with --groups: TRL's scale_rewards (default: the recipe's "
                        "grpo.scale_rewards, else TRL's 'group')")
    a.set_defaults(func=run_audit_command, accepts_overrides=True)


def run_audit_command(args: argparse.Namespace) -> int:
    from gazal.rewards import build_reward_functions, load_reward_config
    from gazal.rewards.audit import builtin_cases_path, load_cases, results_jsonl, run_audit

    cfg = load_reward_config(args.recipe, args.overrides)
    if args.groups and args.cases:
        from gazal.cli import UsageError

        raise UsageError("--cases and --groups: audit one kind of file at a time")
    cases = [] if args.groups else load_cases(args.cases or builtin_cases_path())
    tokenizer = None
    if args.tokenizer:
        from pathlib import Path

        from transformers import AutoTokenizer

        if not Path(args.tokenizer).is_dir():
            raise FileNotFoundError(f"--tokenizer {args.tokenizer}: no such folder (a local "
                                    "tokenizer folder, e.g. one saved by save_pretrained)")
        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer, trust_remote_code=False,
                                                  local_files_only=True)
    funcs, weights = build_reward_functions(cfg, tokenizer)
    if args.groups:
        return _audit_groups(args, funcs, weights)
    result = run_audit(cases, funcs, weights)
    return _print_audit(result, results_jsonl(result) if args.json else None)


def trainer_settings(recipe: str | None) -> dict[str, object]:
    """The GRPO settings that shape the advantage, from a recipe's ``grpo:`` section (gazal's
    and TRL's defaults for what it does not set, and for a reward-only YAML)."""
    from gazal.config import ConfigError, load_section, load_yaml_mapping
    from gazal.train.grpo_config import GRPOSection

    has_grpo = recipe is not None and "grpo" in load_yaml_mapping(recipe)
    g = load_section(GRPOSection, recipe if has_grpo else None, "grpo")
    if g.multi_objective_aggregation != "sum_then_normalize":
        raise ConfigError(f"{recipe}: grpo.multi_objective_aggregation is "
                          f"{g.multi_objective_aggregation!r}; the group audit computes TRL's "
                          "sum_then_normalize advantages only")
    return {"scale_rewards": g.scale_rewards, "loss_type": g.loss_type,
            "max_completion_length": g.max_completion_length,
            "mask_truncated_completions": bool(g.mask_truncated_completions)}


def _audit_groups(args: argparse.Namespace, funcs: list, weights: list[float]) -> int:
    from gazal.rewards.audit_groups import (
        audit_groups,
        builtin_groups_path,
        groups_json,
        load_groups,
    )

    settings = trainer_settings(args.recipe)
    if args.scale_rewards:
        settings["scale_rewards"] = args.scale_rewards
    path = builtin_groups_path() if args.groups == "builtin" else args.groups
    result = audit_groups(load_groups(path), funcs, weights, **settings)  # type: ignore[arg-type]
    return _print_audit(result, groups_json(result) if args.json else None)


def _print_audit(result: Any, json_text: str | None) -> int:
    """Print an audit (its JSON, or its table and summary); exit 1 when a rule is broken."""
    if json_text is not None:
        print(json_text)
    else:
        from gazal.report.tables import text_table

        print(result.table(text_table))
        print()
    if result.passed:
        if json_text is None:
            print(result.summary())
        return 0
    print(result.summary(), file=sys.stderr)
    return 1
