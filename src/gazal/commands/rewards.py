"""``gazal rewards audit``: check the configured GRPO reward against a library of hacks."""

from __future__ import annotations

import argparse
import sys


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
                        "components, ok, failures)")
    a.set_defaults(func=run_audit_command, accepts_overrides=True)


def run_audit_command(args: argparse.Namespace) -> int:
    from gazal.rewards import build_reward_functions, load_reward_config
    from gazal.rewards.audit import builtin_cases_path, load_cases, results_jsonl, run_audit

    cfg = load_reward_config(args.recipe, args.overrides)
    cases = load_cases(args.cases or builtin_cases_path())
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
    result = run_audit(cases, funcs, weights)
    if args.json:
        print(results_jsonl(result))
    else:
        from gazal.report.tables import text_table

        print(result.table(text_table))
        print()
    if result.passed:
        if not args.json:
            print(result.summary())
        return 0
    print(result.summary(), file=sys.stderr)
    return 1
