"""``gazal data synth RECIPE --out DIR``: a teacher model writes reasoning examples."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synth", help="write SFT examples with a teacher model (one per seed and category)",
        description="Reads the 'synth' section of a data recipe: seeds (MCQ items or case "
                    "vignettes), the teacher (OpenAI-compatible endpoint or local transformers "
                    "model) and the category prompts. Writes DIR/examples.jsonl (kept "
                    "examples), DIR/rejected.jsonl (units that used up their attempts), "
                    "DIR/summary.json and DIR/config.yaml; re-running into DIR resumes. Any "
                    "recipe value can be overridden: --teacher.model NAME, --seeds.limit 10, "
                    "--max_attempts 2 (see docs/data.md).")
    p.add_argument("recipe", help="data recipe YAML (e.g. recipes/gazal-r1-32b/data.yaml)")
    p.add_argument("--out", help="run folder (required unless --dry-run)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the prompts that would be sent and a cost estimate; send "
                        "nothing, write nothing")
    p.add_argument("--data-dir", help="benchmark files, to check that no seed is an evaluation "
                                      "question (default: $GAZAL_DATA_DIR)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run, accepts_overrides=True)


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from gazal.data.config import SynthConfig, load_data_config
    from gazal.data.synth import synthesize

    cfg = load_data_config(SynthConfig, "synth", args.recipe, args.overrides)
    if args.data_dir:
        cfg = dataclasses.replace(cfg, data_dir=args.data_dir)
    summary = synthesize(cfg, args.out, dry=args.dry_run, progress=not args.no_progress)
    if args.dry_run:
        return 0
    this = summary["this_run"]
    print(f"{summary['examples']:,} examples, {summary['given_up']:,} given up of "
          f"{summary['units']:,} units ({'complete' if summary['complete'] else 'INCOMPLETE'}); "
          f"this run: {this['attempts']:,} attempts, {this['prompt_tokens']:,} prompt + "
          f"{this['completion_tokens']:,} completion tokens, ~${this['estimated_cost']:,.2f}")
    print("attempt outcomes: " + json.dumps(this["outcomes"]))
    if this.get("unanswered"):
        print(f"{this['unanswered']:,} units got no reply from the teacher (failed requests); "
              "re-run the same command to retry them")
    print(f"wrote {args.out}/examples.jsonl, rejected.jsonl, summary.json")
    return 0
