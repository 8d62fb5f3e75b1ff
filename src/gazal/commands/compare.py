"""``gazal compare RUN_DIR RUN_DIR ... --out DIR``: paired comparison of eval runs over the
same items (accuracy differences with bootstrap intervals and McNemar's exact test, accuracy
by response length and by extraction rule); the logic is :mod:`gazal.eval.compare`."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare", help="compare gazal eval runs over the same items: paired differences, "
                        "bootstrap intervals, McNemar p-values",
        description="Compare every run with the first (the baseline), per benchmark and "
                    "category: accuracy of each, the difference with a paired bootstrap 95% "
                    "interval and McNemar's exact p-value; accuracy by response length and by "
                    "extraction rule. Runs over different items are refused. Writes "
                    "DIR/compare.md, compare.html (self-contained) and compare.json.")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="gazal eval output folders; "
                   "the first is the baseline")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--labels", default=None,
                   help="comma-separated names for the runs (default: folder names)")
    p.add_argument("--bootstrap", type=int, default=2000,
                   help="bootstrap resamples (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gazal.eval.compare import compare_runs, summary_lines, write_comparison

    labels = [x.strip() for x in args.labels.split(",")] if args.labels else None
    result = compare_runs(args.runs, labels=labels, n_boot=args.bootstrap, seed=args.seed)
    md, page = write_comparison(result, args.out)
    for line in summary_lines(result):
        print(line)
    print(f"wrote {md}, {page} and {md.parent / 'compare.json'}")
    return 0
