"""``gazal grpo`` (the real command, exit statuses included) with test hooks, for
tests/test_distributed.py under a multi-process launcher.

    python tests/support/ddp_grpo.py [--dump DIR] [--nan-weights RANK:STEP] -- RECIPE [overrides]

runs ``gazal.cli.main(["grpo", RECIPE, ...])`` with test callbacks added to
:func:`gazal.train.grpo.run_grpo`:

- ``--dump DIR``: at the end of training every rank saves the trainable tensors it holds
  (``DIR/rank{RANK}.safetensors``);
- ``--nan-weights RANK:STEP``: on process RANK only, one trained weight is set to NaN just
  before the optimizer step of STEP (a fault that one process sees and the others do not).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ddp_sft import DumpTrainable  # same folder: the script's own directory is on sys.path
from transformers import TrainerCallback


class NaNWeightsOnOneRank(TrainerCallback):
    def __init__(self, rank: int, step: int):
        self.rank, self.step = rank, step

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        import torch

        if int(os.environ.get("RANK", "0")) == self.rank and state.global_step + 1 == self.step:
            p = next(p for p in model.parameters() if p.requires_grad)
            with torch.no_grad():
                p.view(-1)[0] = float("nan")
            print(f"rank {self.rank}: NaN injected at step {self.step}", file=sys.stderr,
                  flush=True)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--dump", type=Path)
    p.add_argument("--nan-weights", metavar="RANK:STEP")
    args, rest = p.parse_known_args()
    if rest and rest[0] == "--":
        rest = rest[1:]
    callbacks: list = []
    if args.dump:
        callbacks.append(DumpTrainable(args.dump))
    if args.nan_weights:
        rank, step = (int(x) for x in args.nan_weights.split(":"))
        callbacks.append(NaNWeightsOnOneRank(rank, step))

    import gazal.train.grpo as grpo
    from gazal.cli import main as gazal_main

    real = grpo.run_grpo

    def run_grpo_with_hooks(recipe, **kwargs):
        return real(recipe, callbacks=[*kwargs.pop("callbacks", ()), *callbacks], **kwargs)

    grpo.run_grpo = run_grpo_with_hooks  # the command imports it when it runs
    return gazal_main(["grpo", *rest])


if __name__ == "__main__":
    sys.exit(main())
