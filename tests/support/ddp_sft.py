"""``gazal sft`` in-process under a multi-process launcher, for tests/test_distributed.py.

Runs the same :func:`gazal.train.sft.run_sft` as ``python -m gazal sft``, with two test
callbacks: every rank saves the trainable tensors it holds at the end of training
(``--dump DIR`` -> ``DIR/rank{RANK}.safetensors``), and ``--crash-at N`` makes every rank raise
at the end of optimizer step N (a crash after a checkpoint).

    accelerate launch --multi_gpu --num_processes 2 tests/support/ddp_sft.py RECIPE --dump D
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from transformers import TrainerCallback


class DumpTrainable(TrainerCallback):
    def __init__(self, out: Path):
        self.out = out

    def on_train_end(self, args, state, control, model=None, **kwargs):
        from safetensors.torch import save_file

        tensors = {name: p.detach().cpu().contiguous() for name, p in model.named_parameters()
                   if p.requires_grad}
        self.out.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(self.out / f"rank{os.environ.get('RANK', '0')}.safetensors"))


class CrashAt(TrainerCallback):
    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise RuntimeError(f"simulated crash at step {self.step}")


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("recipe")
    p.add_argument("--dump", type=Path)
    p.add_argument("--crash-at", type=int)
    args, overrides = p.parse_known_args()
    from gazal.config import load_config
    from gazal.train.config import SFTRecipe
    from gazal.train.sft import run_sft

    callbacks = []
    if args.dump:
        callbacks.append(DumpTrainable(args.dump))
    if args.crash_at:
        callbacks.append(CrashAt(args.crash_at))
    run_sft(load_config(SFTRecipe, args.recipe, overrides), callbacks=callbacks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
