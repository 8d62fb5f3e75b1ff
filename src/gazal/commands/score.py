"""``gazal score RESPONSES.jsonl --out DIR``: score any model's responses."""

from __future__ import annotations

import argparse

from gazal.cli_util import print_skipped


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "score", help="score a JSONL of responses (any model) with gazal's answer extraction",
        description="Each line needs 'response', 'options' (letter -> text, or a list) and "
                    "'answer' (gold letter, or yes/no/maybe); 'id', 'benchmark' and "
                    "'sample_index' are used when present. Writes DIR/scored.jsonl and "
                    "DIR/summary.json.")
    p.add_argument("responses", help="JSONL file of responses")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--skip-invalid", action="store_true",
                   help="skip malformed lines (each is reported) instead of stopping")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from gazal.eval.score import score_file, summary_table

    result = score_file(args.responses, args.out, skip_invalid=args.skip_invalid)
    print_skipped(result.skipped)
    if args.json:
        print(json.dumps(result.summary, indent=2))
    else:
        print(summary_table(result.summary))
        print(f"wrote {args.out}/scored.jsonl and {args.out}/summary.json")
    return 0
