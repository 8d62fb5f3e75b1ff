"""``gazal data curate INPUT.jsonl --out DIR``: validate, de-duplicate and decontaminate SFT
examples."""

from __future__ import annotations

import argparse

from gazal.cli_util import print_skipped


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "curate", help="validate, de-duplicate and decontaminate a JSONL of SFT examples",
        description="Removes rows that are malformed, not in the reasoning format, of the "
                    "wrong length, contaminated by any registered benchmark (distinctive-content "
                    "match, tolerant of word edits), "
                    "exact or near duplicates, or over a category cap. Writes DIR/kept.jsonl, "
                    "DIR/removed.jsonl (with reasons), DIR/report.json, DIR/report.md and "
                    "DIR/length_histogram.png. Settings come from the 'curate' section of a "
                    "data recipe and --key value overrides (see docs/data.md).")
    p.add_argument("input", help="JSONL of SFT examples {id, category, messages, ...}")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--data-dir", help="benchmark files to decontaminate against "
                                      "(default: $GAZAL_DATA_DIR)")
    p.add_argument("--recipe", help="data recipe YAML (its 'curate' section)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run, accepts_overrides=True)


def run(args: argparse.Namespace) -> int:
    from gazal.data.config import CurateConfig, load_data_config
    from gazal.data.curate import curate

    cfg = load_data_config(CurateConfig, "curate", args.recipe, args.overrides)
    result = curate(args.input, args.out, cfg, data_dir=args.data_dir,
                    progress=not args.no_progress)
    print_skipped(result.malformed)
    r = result.report
    removed = ", ".join(f"{k} {v:,}" for k, v in r["removed_by_reason"].items() if v)
    print(f"kept {r['kept']:,} of {r['input']['rows']:,} rows"
          + (f"; removed {removed}" if removed else ""))
    print(f"wrote {args.out}/kept.jsonl, removed.jsonl, report.json, report.md "
          f"({r['timing_s']['total']:.1f} s, peak memory {r['peak_rss_mb']:,} MB)")
    return 0
