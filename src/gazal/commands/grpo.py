"""``gazal grpo RECIPE [--key value ...]``: GRPO with the clinical reward on the SFT model."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "grpo", help="GRPO with gazal's clinical reward, fast DoRA generation, monitors and "
                     "guards (TRL GRPOTrainer)",
        description="Trains a DoRA + rsLoRA adapter with GRPO on multiple-choice clinical "
                    "questions as the recipe says; any recipe value can be overridden "
                    "(--lr 1e-6, --grpo.num_generations 16, --output_dir runs/x). Writes the "
                    "run directory (config, metrics, alarms, curves, checkpoints, adapter, "
                    "summary); re-running the same command resumes from the newest "
                    "checkpoint. Exit status 3 when a guard stopped the run. See docs/grpo.md.")
    p.add_argument("recipe", nargs="?", help="YAML recipe (e.g. recipes/demo/grpo.yaml)")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="allow the model's repository to run its own code (off by default)")
    p.add_argument("--dry-run", action="store_true",
                   help="check the recipe, the batch arithmetic, the local data and the "
                        "overlap with the held-out subset; print the TRL and PEFT settings; "
                        "stop before loading any weights")
    p.add_argument("--world-size", type=int, default=None,
                   help="with --dry-run: check the batch arithmetic for this many processes "
                        "(default: $WORLD_SIZE or 1)")
    p.add_argument("--describe", action="store_true",
                   help="list every recipe key with its default and meaning")
    p.set_defaults(func=run, accepts_overrides=True)


def run(args: argparse.Namespace) -> int:
    from gazal.config import config_to_dict, describe_config, load_config
    from gazal.train.grpo_config import GRPORecipe

    if args.describe:
        for key, typ, default, help_ in describe_config(GRPORecipe):
            print(f"{key}  ({typ}, default {default!r})\n    {help_}")
        return 0
    if not args.recipe:
        from gazal.cli import UsageError

        raise UsageError("a recipe is required (e.g. gazal grpo recipes/demo/grpo.yaml)")
    overrides = list(args.overrides)
    if args.trust_remote_code:
        overrides += ["--model.trust_remote_code", "true"]
    if args.world_size is not None:
        if not args.dry_run:
            from gazal.cli import UsageError

            raise UsageError("--world-size is for --dry-run; a training run takes the number "
                             "of processes from accelerate launch")
        from gazal.train.grpo_config import set_world_size_for_checks

        set_world_size_for_checks(args.world_size)
    if args.dry_run:
        from gazal.train.grpo_config import set_world_size_for_checks

        try:
            return _dry_run(load_config(GRPORecipe, args.recipe, overrides), config_to_dict)
        finally:
            set_world_size_for_checks(None)
    recipe = load_config(GRPORecipe, args.recipe, overrides)
    from gazal.distributed import close_process_group, is_main_process
    from gazal.train.grpo import run_grpo
    from gazal.train.monitors import TrainingStopped

    try:
        run_grpo(recipe)
    except TrainingStopped as stop:
        if is_main_process():  # every process stops with status 3; one says why
            print(f"gazal grpo: stopped by guard '{stop.reason}': {stop.message}\n"
                  f"summary: {recipe.output_dir}/summary.json", file=sys.stderr)
        close_process_group()  # every process agreed to stop: leave together
        return 3
    close_process_group()
    return 0


def _dry_run(recipe, config_to_dict) -> int:
    from pathlib import Path

    import yaml

    from gazal.data.rl_data import is_local
    from gazal.train.grpo import (
        build_grpo_config,
        check_all_overlap,
        load_heldout_items,
        load_training_items,
    )
    from gazal.train.grpo_config import check_batch_arithmetic, world_size_from_env
    from gazal.train.model import build_lora_config

    print(yaml.safe_dump(config_to_dict(recipe), sort_keys=False).rstrip())
    world = world_size_from_env()
    sizes = check_batch_arithmetic(recipe.grpo, recipe.train, world)
    args = build_grpo_config(recipe, "unused", check_only=True, world_size=world)
    print(f"\nbatch ({world} process(es)): " + ", ".join(f"{k} {v}" for k, v in sizes.items()))
    print("TRL GRPOConfig:")
    for key in ("learning_rate", "lr_scheduler_type", "max_steps", "num_train_epochs",
                "per_device_train_batch_size", "gradient_accumulation_steps",
                "generation_batch_size", "steps_per_generation", "num_generations",
                "max_completion_length", "temperature", "top_p", "loss_type", "beta",
                "epsilon", "epsilon_high", "scale_rewards", "mask_truncated_completions",
                "reward_weights", "use_vllm", "vllm_mode", "bf16", "activation_checkpointing",
                "seed", "save_steps"):
        print(f"  {key}: {getattr(args, key)!r}")
    print(f"gazal: fast_generation {recipe.grpo.fast_generation and not recipe.grpo.use_vllm}"
          f", heldout every {recipe.heldout.every_steps} steps")
    lora = recipe.lora
    if lora.init == "continue":
        adapter = Path(lora.adapter)
        ok = (adapter / "adapter_config.json").is_file()
        print(f"PEFT: continue the adapter in {adapter} ({'found' if ok else 'NOT FOUND'}); "
              f"lora_dropout set to {lora.dropout}")
        if not ok:
            from gazal.config import ConfigError

            raise ConfigError(f"lora.adapter: {adapter} is not a PEFT adapter folder (no "
                              "adapter_config.json)")
    else:
        import dataclasses

        cfg = build_lora_config(dataclasses.replace(lora, trainable_tokens=[]))
        print("PEFT LoraConfig (fresh):")
        for key in ("r", "lora_alpha", "lora_dropout", "target_modules", "use_dora",
                    "use_rslora"):
            print(f"  {key}: {getattr(cfg, key)!r}")
    remote = [s.path for s in [*recipe.data.train, *recipe.heldout.sources]
              if not (s.path.startswith("benchmark:") or is_local(s.path))]
    if remote:
        print(f"Hub sources not loaded in a dry run: {', '.join(remote)} (their overlap with "
              "the held-out subset is checked when the run starts)")
        local = _without_sources(recipe, remote)
    else:
        local = recipe
    train = load_training_items(local) if local.data.train else None
    heldout = load_heldout_items(local)
    if train is None:
        print(f"held-out: {len(heldout)} questions")
    else:
        print(f"train: {len(train.items)} questions ({train.duplicates} duplicates, "
              f"{len(train.skipped)} skipped rows, options shuffled in {train.shuffled})")
        _, dropped = check_all_overlap(local, train.items, heldout)
        against = ["the held-out subset", *recipe.data.overlap_with]
        print(f"held-out: {len(heldout)} questions; " + (
            f"no training question overlaps {', '.join(against)}" if not dropped else
            f"{len(dropped)} training question(s) overlap and would be left out "
            "(data.on_overlap: drop)"))
    return 0


def _without_sources(recipe, remote):
    """A copy of the recipe without the Hub sources (dry runs read local data only)."""
    import copy

    out = copy.copy(recipe)
    out.data = copy.copy(recipe.data)
    out.data.train = [s for s in recipe.data.train if s.path not in remote]
    out.heldout = copy.copy(recipe.heldout)
    out.heldout.sources = [s for s in recipe.heldout.sources if s.path not in remote]
    return out
