"""``gazal sft RECIPE [--key value ...]``: DoRA + rsLoRA supervised fine-tuning."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sft", help="supervised fine-tuning with a DoRA + rsLoRA adapter (TRL SFTTrainer)",
        description="Trains a PEFT adapter on clinical reasoning data as the recipe says; any "
                    "recipe value can be overridden (--lr 1e-4, --lora.r 32, "
                    "--output_dir runs/x). Writes the run directory (config, rejects, metrics, "
                    "loss curve, checkpoints, adapter, summary); re-running the same command "
                    "resumes from the newest checkpoint. See docs/sft.md.")
    p.add_argument("recipe", nargs="?", help="YAML recipe (e.g. recipes/demo/sft.yaml)")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="allow the model's repository to run its own code (off by default)")
    p.add_argument("--dry-run", action="store_true",
                   help="check the recipe and local data, print the TRL and PEFT settings, "
                        "and stop before loading any weights")
    p.add_argument("--describe", action="store_true",
                   help="list every recipe key with its default and meaning")
    p.set_defaults(func=run, accepts_overrides=True)


def run(args: argparse.Namespace) -> int:
    from gazal.config import config_to_dict, describe_config, load_config
    from gazal.train.config import SFTRecipe

    if args.describe:
        for key, typ, default, help_ in describe_config(SFTRecipe):
            print(f"{key}  ({typ}, default {default!r})\n    {help_}")
        return 0
    if not args.recipe:
        from gazal.cli import UsageError

        raise UsageError("a recipe is required (e.g. gazal sft recipes/demo/sft.yaml)")
    overrides = list(args.overrides)
    if args.trust_remote_code:
        overrides += ["--model.trust_remote_code", "true"]
    recipe = load_config(SFTRecipe, args.recipe, overrides)
    if args.dry_run:
        return _dry_run(recipe, config_to_dict)
    from gazal.distributed import close_process_group
    from gazal.train.sft import run_sft

    run_sft(recipe)
    close_process_group()
    return 0


def _dry_run(recipe, config_to_dict) -> int:
    import yaml

    from gazal.data.sft_data import load_source
    from gazal.train.sft import build_trl_configs

    print(yaml.safe_dump(config_to_dict(recipe), sort_keys=False).rstrip())
    sft_config, lora_config = build_trl_configs(recipe, check_only=True)
    print("\nTRL SFTConfig:")
    for key in ("learning_rate", "lr_scheduler_type", "warmup_steps", "num_train_epochs",
                "max_steps", "per_device_train_batch_size", "gradient_accumulation_steps",
                "max_length", "packing", "padding_free", "completion_only_loss", "bf16",
                "activation_checkpointing", "seed", "save_steps"):
        print(f"  {key}: {getattr(sft_config, key)!r}")
    print("PEFT LoraConfig:")
    for key in ("r", "lora_alpha", "lora_dropout", "target_modules", "use_dora", "use_rslora",
                "modules_to_save"):
        print(f"  {key}: {getattr(lora_config, key)!r}")
    if recipe.lora.trainable_tokens:
        print(f"  trainable tokens: {recipe.lora.trainable_tokens} (resolved with the tokenizer)")
    for split, sources in (("train", recipe.data.train), ("eval", recipe.data.eval)):
        for source in sources:
            from gazal.data.sft_data import _is_local

            if not _is_local(source.path):
                print(f"{split} {source.path}: Hub dataset, not loaded in a dry run")
                continue
            data = load_source(source, system_prompt=recipe.data.system_prompt, split=split)
            print(f"{split} {source.path}: {data.n_rows} rows, {len(data.examples)} valid, "
                  f"rejects {data.reject_counts or 'none'}")
    return 0
