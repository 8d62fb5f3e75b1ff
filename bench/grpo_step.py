"""Seconds per GRPO step: TRL's GRPOTrainer as it is vs gazal's (fast DoRA generation).

Same model (a random Qwen3-architecture model of ~26M parameters with a 4k-token byte-level
BPE vocabulary, so the transformer, not the embedding table, holds the parameters), same
fresh DoRA + rsLoRA adapter (r 16, alpha 32, every linear layer, dropout 0), same batch, seed
and reward (gazal's five components), on the demo's toy questions. The end-of-turn and pad
tokens are suppressed, so every completion runs to max_completion_length and both trainers
generate the same number of tokens.

Two batch shapes (``--shape``): ``demo`` is recipes/demo/grpo.yaml's (4 prompts x 8 completions
x 64 tokens); ``long`` has completions longer than their prompts, as real GRPO runs do
(2 prompts x 8 completions x 256 tokens). The plain path pays a fixed cost per decoded token
(every DoRA weight norm), so its share of a step grows with completion length and shrinks
with the batch (BENCHMARKS.md).

The two trainers run in turns (plain, gazal, plain, gazal, ...) in one process; each turn
trains ``--steps`` steps after a warm-up step, and the per-step wall time of each trainer is
the median over all its measured steps. Generation time is measured separately (TRL's
``_generate_single_turn``). Prints both and the ratios.

    PYTHONPATH=src python bench/grpo_step.py [--shape demo|long|both] [--steps 2] [--rounds 2]
                                             [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path


def build_model_dir(root: Path, seed: int) -> tuple[Path, int]:
    from gazal.demo.sft_base import corpus_from_sft_file, default_sft_file
    from gazal.demo.task import build_questions, pretraining_texts, sft_example
    from gazal.demo.tiny import build_model, build_tokenizer

    texts = pretraining_texts(400)
    for q in build_questions("train"):
        texts += [m["content"] for m in sft_example(q)["messages"]]
    if default_sft_file().exists():
        texts += corpus_from_sft_file(default_sft_file())
    tok = build_tokenizer(texts, vocab_size=4096, out_dir=root)
    model = build_model(tok, hidden_size=512, num_layers=8, num_heads=8, num_kv_heads=4,
                        head_dim=64, intermediate_size=1408, seed=seed)
    model.save_pretrained(str(root), safe_serialization=True)
    return root, sum(p.numel() for p in model.parameters())


class StepTimer:
    """Wall time of each optimizer step (a transformers callback)."""

    def __init__(self):
        from transformers import TrainerCallback

        timer = self

        class _CB(TrainerCallback):
            def on_step_begin(self, args, state, control, **kw):
                timer._t = time.perf_counter()

            def on_step_end(self, args, state, control, **kw):
                timer.times.append(time.perf_counter() - timer._t)

        self.times: list[float] = []
        self._t = 0.0
        self.callback = _CB()


SHAPES = {"demo": (4, 8, 64), "long": (2, 8, 256)}  # prompts, completions each, tokens


def make_trainer(kind: str, model_dir: Path, out: Path, steps: int, seed: int, max_len: int,
                 prompts: int = 4, generations: int = 8):
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.trainer_callback import PrinterCallback
    from trl import GRPOConfig, GRPOTrainer

    from gazal.data.rl_data import to_trl_rows
    from gazal.demo.task import build_questions
    from gazal.rewards import RewardConfig, build_reward_functions
    from gazal.train.grpo import trainer_class

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    rows = to_trl_rows([q.item for q in build_questions("train")][:64], system_prompt=None)
    reward = RewardConfig()
    reward.length.max_tokens = max_len
    funcs, weights = build_reward_functions(reward, tok)
    args = GRPOConfig(
        output_dir=str(out), per_device_train_batch_size=prompts * generations,
        num_generations=generations,
        max_completion_length=max_len, max_steps=steps, learning_rate=1e-5, bf16=False,
        gradient_checkpointing=False, report_to="none", logging_steps=1, save_strategy="no",
        seed=seed, reward_weights=weights, temperature=1.0, beta=0.0, loss_type="dapo",
        disable_tqdm=True,
        # no completion ends early: both trainers generate max_len tokens for every completion
        generation_kwargs={"suppress_tokens": [tok.eos_token_id,
                                                                  tok.pad_token_id]},
        dataloader_pin_memory=False)
    peft_config = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear",
                             use_dora=True, use_rslora=True, task_type="CAUSAL_LM")
    cls = GRPOTrainer if kind == "plain" else trainer_class()
    timer = StepTimer()
    trainer = cls(model=model, reward_funcs=funcs, args=args,
                  train_dataset=Dataset.from_list(rows), processing_class=tok,
                  peft_config=peft_config, callbacks=[timer.callback])
    trainer.remove_callback(PrinterCallback)  # no dump of every log dict
    return trainer, timer


def generation_seconds(trainer, prompts: int, generations: int, repeats: int = 2) -> float:
    """Median seconds of one generation round (TRL's _generate_single_turn) in train mode."""
    import torch

    tok = trainer.processing_class
    from gazal.demo.task import build_questions
    from gazal.formatting import build_messages

    conversations = [build_messages(q.item, None)
                     for q in build_questions("train")[:prompts]] * generations
    ids = [tok.apply_chat_template(p, add_generation_prompt=True, tokenize=True,
                                   return_dict=True)["input_ids"] for p in conversations]
    trainer.model.train()
    times = []
    for _ in range(repeats):
        torch.manual_seed(0)
        t = time.perf_counter()
        trainer._generate_single_turn(ids, None, {}, generations)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def run_shape(name: str, model_dir: Path, tmp: Path, args: argparse.Namespace) -> None:
    prompts, generations, max_len = SHAPES[name]
    print(f"\n[{name}] {prompts} prompts x {generations} completions x {max_len} tokens",
          flush=True)
    step: dict[str, list[float]] = {"plain": [], "gazal": []}
    gen: dict[str, list[float]] = {"plain": [], "gazal": []}
    for r in range(args.rounds):
        for kind in ("plain", "gazal"):
            trainer, timer = make_trainer(kind, model_dir, tmp / f"{name}-{kind}{r}",
                                          args.steps + 1, args.seed, max_len, prompts,
                                          generations)
            trainer.train()
            step[kind] += timer.times[1:]  # the first step warms up
            gen[kind].append(generation_seconds(trainer, prompts, generations))
            print(f"  round {r + 1} {kind:5s}: steps "
                  + " ".join(f"{t:.2f}" for t in timer.times[1:])
                  + f" s; one generation round {gen[kind][-1]:.2f} s", flush=True)
            del trainer
    s_plain, s_gazal = statistics.median(step["plain"]), statistics.median(step["gazal"])
    g_plain, g_gazal = statistics.median(gen["plain"]), statistics.median(gen["gazal"])
    print(f"[{name}] seconds per GRPO step (median of {len(step['plain'])}): plain TRL "
          f"{s_plain:.2f}, gazal {s_gazal:.2f}; ratio {s_plain / s_gazal:.2f}x")
    print(f"[{name}] seconds per generation round: plain TRL {g_plain:.2f}, gazal "
          f"{g_gazal:.2f}; ratio {g_plain / g_gazal:.2f}x", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shape", choices=[*SHAPES, "both"], default="both",
                   help="batch shape (see the module docstring)")
    p.add_argument("--steps", type=int, default=2, help="measured steps per turn")
    p.add_argument("--rounds", type=int, default=2, help="turns per trainer")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    import logging
    import warnings

    import torch
    import transformers

    warnings.filterwarnings("ignore")
    transformers.logging.set_verbosity_error()
    logging.getLogger("gazal").setLevel(logging.ERROR)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir, n_params = build_model_dir(Path(tmp) / "model", args.seed)
        print(f"model: {n_params / 1e6:.1f}M parameters; DoRA + rsLoRA r16 alpha32 on every "
              f"linear layer; {args.threads} torch thread(s)", flush=True)
        for name in (list(SHAPES) if args.shape == "both" else [args.shape]):
            run_shape(name, model_dir, Path(tmp), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
