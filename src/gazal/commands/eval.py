"""``gazal eval [RECIPE] [--key value ...]``: generate and score on the medical benchmarks.

Every option is a field of :class:`gazal.eval.config.EvalConfig`; a recipe YAML sets them and
flags override them (``--max-new-tokens 2048``, ``--openai.concurrency 16``).
"""

from __future__ import annotations

import argparse


def _options_help() -> str:
    from gazal.config import describe_config
    from gazal.eval.config import EvalConfig

    lines = ["options (recipe keys; on the command line --key value, dashes or underscores):"]
    for key, type_name, default, help_text in describe_config(EvalConfig):
        lines.append(f"  --{key.replace('_', '-')}  ({type_name}; default {default!r})")
        lines.append(f"      {help_text}")
    return "\n".join(lines)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval", help="generate and score on MedQA, MMLU-Pro Medical, PubMedQA, MedMCQA, GPQA",
        usage="gazal eval [RECIPE.yaml] [--key value ...]",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Evaluate a model (or model + DoRA/LoRA adapter) zero-shot with its chat "
                    "template. Writes OUT/responses.jsonl, summary.json and results.md; "
                    "re-running into the same OUT resumes.\n\n"
                    "  gazal eval --model PATH_OR_HUB_ID [--adapter DIR] "
                    "[--benchmarks medqa,pubmedqa] [--limit N] [--out DIR]\n"
                    "  gazal eval RECIPE.yaml [--key value ...]",
        epilog=_options_help())
    p.set_defaults(func=run, accepts_overrides=True)


def _split_recipe(tokens: list[str]) -> tuple[str | None, list[str]]:
    """A recipe path may come first; everything else is ``--key value`` overrides."""
    if tokens and not tokens[0].startswith("--"):
        return tokens[0], tokens[1:]
    return None, tokens


def run(args: argparse.Namespace) -> int:
    import sys

    from gazal.config import load_config
    from gazal.eval.config import EvalConfig
    from gazal.eval.runner import run_eval
    from gazal.eval.score import summary_table
    from gazal.generation.vllm import VLLMMissingError

    recipe, overrides = _split_recipe(list(args.overrides))
    cfg = load_config(EvalConfig, recipe, overrides)
    try:
        summary = run_eval(cfg)
    except VLLMMissingError as err:
        print(f"gazal eval: error: {err}", file=sys.stderr)
        return 2
    print(summary_table(summary))
    print(f"wrote {cfg.out}/responses.jsonl, summary.json and results.md")
    if not summary.get("complete", True):
        print(f"gazal eval: {summary['failed']} request(s) failed and were not recorded; "
              "re-run the same command to retry them", file=sys.stderr)
        return 1
    return 0
