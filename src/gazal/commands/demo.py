"""``gazal demo``: the whole Gazal-R1 recipe at toy scale on a CPU (offline, minutes)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="the whole recipe end to end on a toy clinical task, on a CPU",
        description="Builds a toy clinical knowledge task and a tiny Qwen3-architecture model, "
                    "pre-trains it, runs DoRA + rsLoRA SFT, merge, GRPO with the full reward, "
                    "held-out evaluation after SFT and after GRPO, and the report. Offline; "
                    "a few minutes on a 2-core CPU. Re-running into the same --out resumes. "
                    "A toy that shows the machinery: real results need the GPU recipes.")
    p.add_argument("--out", default="runs/demo", help="run directory (default runs/demo)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the task, the model, SFT and GRPO (default 0)")
    p.add_argument("--set", dest="settings", action="append", default=[],
                   metavar="STAGE.KEY=VALUE",
                   help="change one stage setting, e.g. --set grpo.train.max_steps=20 "
                        "(repeatable; stages: see recipes/demo/pipeline.yaml)")
    p.add_argument("--recipe", default=None,
                   help="another demo pipeline recipe (default recipes/demo/pipeline.yaml)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gazal.demo.run import run_demo

    run_demo(args.out, args.seed, recipe=args.recipe, settings=args.settings)
    return 0


def register_demo_stages() -> None:
    """The demo's pipeline stage kinds (``toy_task``, ``pretrain``), for ``gazal pipeline``
    recipes that name them (the CLI is the one place outside the demo that imports it)."""
    from gazal.demo.stages import register_stages

    register_stages()
