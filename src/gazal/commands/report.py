"""``gazal report RUN_DIR``: markdown + self-contained HTML report of a run."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report", help="write RUN_DIR/report/report.md and report.html",
        description="Stage table, SFT loss curve, GRPO rewards/accuracy/lengths/letter "
                    "entropy, evaluation tables with 95%% intervals beside the paper's "
                    "numbers, and sample responses. The HTML embeds its plots.")
    p.add_argument("run_dir", help="a pipeline run directory (or a folder of command runs)")
    p.add_argument("--samples", type=int, default=4,
                   help="sample responses shown per evaluation (default 4)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gazal.report.build import build_report

    md, page = build_report(args.run_dir, samples=args.samples)
    print(f"wrote {md} and {page}")
    return 0
