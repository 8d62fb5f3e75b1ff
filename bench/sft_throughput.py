"""SFT training throughput: plain padded batches against padding-free batches, bfd packing and
length-grouped padded batches.

Side by side in one run, on the medical-o1 sample (``$GAZAL_DATA_DIR/sft/medical_o1_demo.json``,
default ``../shared/data``) converted to gazal's reasoning format, with the CPU demo's tiny
random Qwen3 (``gazal.demo.sft_base``: hidden 64, 2 layers, 4,096-token vocabulary), DoRA +
rsLoRA r=8, fp32, batches of the same number of rows for each mode.

Throughput counts only real tokens (no padding) in every mode: ``attention_mask.sum()`` for
padded batches, the length of the concatenated row for padding-free/packed batches (TRL pads
those only to ``pad_to_multiple_of``, unset here). What is timed is the trainer's training
step (forward + backward, the part the modes change; the optimizer update is the same for
all), batch by batch, with the modes interleaved round by round and their order rotated, so
the load of other jobs on a shared machine falls on every mode alike. One warm-up batch
per mode is not timed.

    PYTHONPATH=src python bench/sft_throughput.py [--rounds 12] [--batch 4]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from gazal.config import load_config
from gazal.data.sft_data import DataSource, load_source
from gazal.demo.sft_base import build_sft_base, default_sft_file
from gazal.train.config import SFTRecipe
from gazal.train.model import load_model_and_tokenizer
from gazal.train.sft import build_trainer, drop_too_long

MODES = {
    "padded": ["--sft.padding_free", "false", "--sft.packing", "false"],
    "padded, length-grouped": ["--sft.padding_free", "false", "--sft.packing", "false",
                               "--train.train_sampling_strategy", "group_by_length"],
    "padding-free": ["--sft.padding_free", "true", "--sft.packing", "false"],
    "packed (bfd)": ["--sft.packing", "true", "--sft.packing_strategy", "bfd"],
}


def build(base: Path, data: Path, out: Path, mode_args: list[str], batch: int,
          max_length: int) -> Any:
    """A trainer for one mode (same base weights, data, adapter and optimizer settings)."""
    recipe = load_config(SFTRecipe, None, [
        "--output_dir", str(out), "--model.name_or_path", str(base),
        "--data.train", f"[{{path: {data}, format: medical_o1}}]",
        "--sft.max_length", str(max_length), "--max_steps", "1000",
        "--batch_size", str(batch), "--lr", "1e-3", "--lora.r", "8", "--lora.alpha", "16",
        *mode_args])
    model, tok = load_model_and_tokenizer(recipe.model)
    loaded = load_source(DataSource(path=str(data), format="medical_o1"))
    drop_too_long(loaded, tok, max_length, "train")
    return build_trainer(recipe, model, tok, loaded.examples, [], out)


def real_tokens(inputs: dict[str, Any]) -> tuple[int, int]:
    """(real tokens, token slots) of a collated batch."""
    ids, mask = inputs["input_ids"], inputs.get("attention_mask")
    return (int(mask.sum()) if mask is not None else ids.numel()), ids.numel()


def measure(trainers: dict[str, Any], rounds: int) -> dict[str, dict[str, float]]:
    """Time forward + backward of each mode's batches, interleaved round by round so that
    load from other jobs on the machine falls on every mode alike."""
    batches = {}
    for name, trainer in trainers.items():
        trainer.current_gradient_accumulation_steps = 1  # set by the training loop otherwise
        # batches spread evenly over one epoch: the length-grouped sampler puts the longest
        # batch first, so the first few batches would not be typical
        epoch = list(trainer.get_train_dataloader())
        picks = [round(i * (len(epoch) - 1) / rounds) for i in range(rounds + 1)]
        batches[name] = [epoch[i] for i in picks]
        trainer.training_step(trainer.model, batches[name][0])  # warm-up, not timed
        trainer.model.zero_grad(set_to_none=True)
    stats = {name: {"seconds": 0.0, "tokens": 0, "slots": 0} for name in trainers}
    names = list(trainers)
    for r in range(1, rounds + 1):
        for name in names[r % len(names):] + names[: r % len(names)]:  # rotate the order
            trainer, inputs = trainers[name], batches[name][r]
            t = time.perf_counter()
            trainer.training_step(trainer.model, inputs)
            stats[name]["seconds"] += time.perf_counter() - t
            trainer.model.zero_grad(set_to_none=True)
            tokens, slots = real_tokens(inputs)
            stats[name]["tokens"] += tokens
            stats[name]["slots"] += slots
    for st in stats.values():
        st["tokens_per_s"] = st["tokens"] / st["seconds"]
    return stats


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=default_sft_file())
    p.add_argument("--rounds", type=int, default=12, help="timed batches per mode")
    p.add_argument("--batch", type=int, default=4, help="rows per optimizer step")
    p.add_argument("--max-length", type=int, default=2048)
    args = p.parse_args()
    if not args.data.exists():
        raise SystemExit(f"{args.data} not found: set GAZAL_DATA_DIR or pass --data")
    with tempfile.TemporaryDirectory() as tmp:
        base = build_sft_base(Path(tmp) / "base", args.data)
        trainers = {name: build(base, args.data, Path(tmp) / name.replace(" ", "_"), mode,
                                args.batch, args.max_length)
                    for name, mode in MODES.items()}
        results = measure(trainers, args.rounds)
    ref = results["padded"]["tokens_per_s"]
    print(f"{args.rounds} timed batches of {args.batch} rows per mode (interleaved), "
          f"max_length {args.max_length}, forward + backward")
    print(f"{'mode':<24} {'real tokens':>11} {'token slots':>11} {'seconds':>8} "
          f"{'tokens/s':>9} {'vs padded':>9}")
    for name, r in results.items():
        print(f"{name:<24} {r['tokens']:>11,} {r['slots']:>11,} {r['seconds']:>8.2f} "
              f"{r['tokens_per_s']:>9,.0f} {r['tokens_per_s'] / ref:>8.2f}x")


if __name__ == "__main__":
    main()
