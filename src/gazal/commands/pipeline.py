"""``gazal pipeline RECIPE``: run a recipe's stages (synth, curate, sft, merge, grpo, eval,
report) into one run directory, resumably."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pipeline", help="run the stages a pipeline recipe names, resumably",
        description="Each stage runs in RUN/<name>; complete stages are skipped, an "
                    "interrupted one resumes. Overrides (--key value) apply to the pipeline "
                    "recipe, e.g. --output_dir runs/other.")
    p.add_argument("recipe", help="pipeline recipe (YAML)")
    p.add_argument("--only", help="comma-separated stage names to run (earlier incomplete "
                                  "stages are not run)")
    p.set_defaults(func=run, accepts_overrides=True)


def run(args: argparse.Namespace) -> int:
    from gazal.commands.demo import register_demo_stages
    from gazal.config import load_config
    from gazal.pipeline import PipelineConfig, run_pipeline

    register_demo_stages()  # a recipe may name the CPU demo's stages (recipes/demo/pipeline.yaml)
    cfg = load_config(PipelineConfig, args.recipe, args.overrides)
    only = [s.strip() for s in args.only.split(",")] if args.only else None
    run_pipeline(cfg, only=only)
    return 0
