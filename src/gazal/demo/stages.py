"""The CPU demo's own pipeline stages: ``toy_task`` (write the toy clinical task's files) and
``pretrain`` (build a tiny Qwen3 + tokenizer and pre-train it on the task's text, so the SFT
and GRPO stages start from a real, if tiny, base model).

Both are pipeline stage kinds (:mod:`gazal.pipeline`); their settings are dataclasses filled
from the stage's ``overrides``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gazal.config import ConfigError, cfg, load_config
from gazal.demo.task import (
    CONDITIONS,
    build_questions,
    pretraining_texts,
    sft_coverage,
    sft_example,
)
from gazal.io import atomic_write_json, atomic_write_jsonl, read_jsonl
from gazal.rundir import prepare_run_dir

__all__ = ["NEW_TOKENS_FILE", "PretrainConfig", "ToyTaskConfig", "register_stages", "run_pretrain",
           "run_toy_task"]

NEW_TOKENS_FILE = "new_token_ids.json"

@dataclass
class ToyTaskConfig:
    """What the toy task stage writes (see :mod:`gazal.demo.task`)."""

    seed: int = cfg(0, "seed of question phrasing order, findings order and options")
    per_template: int = cfg(2, "questions per (condition, phrasing) in the training split")
    sft_templates: list[int] = cfg(
        [0, 1], "training phrasings the SFT set uses (of 4 per category); GRPO trains on all "
                "four. SFT on every phrasing makes the model memorise its prompts and GRPO "
                "groups lose reward variance (measured in the prototype)")
    sft_conditions: float = cfg(
        0.5, "fraction of the conditions whose questions the SFT set holds, drawn per "
             "category: SFT teaches the format on part of the table, GRPO (which trains on "
             "every condition) has to carry the rest; 1.0 = every condition")
    system_prompt: bool = cfg(False, "include gazal's system prompt (longer prompts: slower "
                                     "on the CPU, no gain for a tiny model)")
    pretrain_paragraphs: int = cfg(3000, "one-condition paragraphs of pre-training text")


def run_toy_task(ctx: Any, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Write ``sft.jsonl`` (gazal SFT examples), ``rl.jsonl`` and ``heldout.jsonl`` (Items),
    ``pretrain.jsonl`` and ``tokenizer.jsonl`` (texts) into the stage folder."""
    c = load_config(ToyTaskConfig, None, pairs)
    out = prepare_run_dir(ctx.dir, c, command="toy_task")
    from gazal.formatting import SYSTEM_PROMPT

    system = SYSTEM_PROMPT if c.system_prompt else None
    train = build_questions("train", seed=c.seed, per_template=c.per_template)
    held = build_questions("heldout", seed=c.seed)
    if not 0.0 < c.sft_conditions <= 1.0:
        raise ConfigError(f"sft_conditions: expected a fraction in (0, 1], got {c.sft_conditions}")
    covered = sft_coverage(c.seed, c.sft_conditions)
    sft = [sft_example(q, system) for q in train if q.template in c.sft_templates
           and q.condition.name in covered[q.category]]
    texts = pretraining_texts(c.pretrain_paragraphs, seed=c.seed)
    # The tokenizer learns the task's whole vocabulary (prompts and traces of both splits);
    # the model is only ever trained on the training split.
    tok_texts = texts[: 4 * len(CONDITIONS)] + [
        " ".join(m["content"] for m in sft_example(q, system)["messages"]) for q in train + held]
    atomic_write_jsonl(out / "sft.jsonl", sft)
    atomic_write_jsonl(out / "rl.jsonl", [q.item.to_dict() for q in train])
    atomic_write_jsonl(out / "heldout.jsonl", [q.item.to_dict() for q in held])
    atomic_write_jsonl(out / "pretrain.jsonl", [{"text": t} for t in texts])
    atomic_write_jsonl(out / "tokenizer.jsonl", [{"text": t} for t in tok_texts])
    atomic_write_json(out / "sft_coverage.json", {k: sorted(v) for k, v in covered.items()})
    return {"sft examples": len(sft), "rl questions": len(train), "heldout": len(held)}


@dataclass
class PretrainConfig:
    """The tiny base model and its pre-training."""

    task_dir: str = cfg(help="folder of a toy_task stage (pretrain.jsonl, tokenizer.jsonl)")
    vocab_size: int = cfg(2000, "BPE vocabulary cap (the task needs ~1,400 tokens)")
    hidden_size: int = cfg(128, "model width")
    num_layers: int = cfg(4, "decoder layers")
    num_heads: int = cfg(4, "attention heads (head_dim = hidden_size / num_heads)")
    num_kv_heads: int = cfg(2, "key/value heads (grouped-query attention, as in Qwen3)")
    steps: int = cfg(150, "optimizer steps; one-condition paragraphs reached full fact "
                          "recall in 100-150 steps here")
    batch_size: int = cfg(32, "paragraphs per step")
    learning_rate: float = cfg(3e-3, "peak learning rate (cosine decay, 10 warmup steps); "
                                     "tiny models take high rates")
    seed: int = cfg(0, "seed of initialisation and data order")


def _fact_recall(model: Any, tok: Any) -> float:
    """Greedy completion of 'The first line treatment for X is' / 'The prognosis of X is'
    against the table: the share of facts the base model states correctly."""
    import torch

    prompts, targets = [], []
    for c in CONDITIONS:
        prompts += [f"The first line treatment for {c.name} is", f"The prognosis of {c.name} is"]
        targets += [c.treatment, c.prognosis]
    tok.padding_side = "left"
    enc = tok(prompts, return_tensors="pt", padding=True)
    model.eval()
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=12, do_sample=False,
                             pad_token_id=tok.pad_token_id)
    texts = tok.batch_decode(out[:, enc.input_ids.shape[1]:], skip_special_tokens=True)
    return sum(t.strip().startswith(g) for t, g in zip(texts, targets, strict=True)) / len(texts)


def run_pretrain(ctx: Any, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Build the tokenizer and model, pre-train (causal LM, transformers ``Trainer``) and save
    both to ``RUN/<stage>/model``; logs go to ``metrics.jsonl`` like every training stage."""
    if ctx.spec.wire and (task := ctx.last("toy_task")) and \
            not any(k == "task_dir" for k, _ in pairs):
        pairs = [("task_dir", str(ctx.folder(task.name))), *pairs]
    c = load_config(PretrainConfig, None, pairs)
    out = prepare_run_dir(ctx.dir, c, command="pretrain")
    from datasets import Dataset
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

    from gazal.demo.tiny import IM_END, IM_START, build_model, build_tokenizer
    from gazal.train.callbacks import MetricsJsonlCallback

    task = Path(c.task_dir)
    texts = [r["text"] for r in read_jsonl(task / "pretrain.jsonl")]
    tok = build_tokenizer([r["text"] for r in read_jsonl(task / "tokenizer.jsonl")],
                          vocab_size=c.vocab_size)
    model = build_model(tok, hidden_size=c.hidden_size, num_layers=c.num_layers,
                        num_heads=c.num_heads, num_kv_heads=c.num_kv_heads,
                        head_dim=c.hidden_size // c.num_heads,
                        intermediate_size=3 * c.hidden_size, seed=c.seed)
    data = Dataset.from_dict({"text": [t + tok.eos_token for t in texts]}).map(
        lambda b: tok(b["text"]), batched=True, remove_columns=["text"])
    tok.padding_side = "right"
    args = TrainingArguments(
        output_dir=str(out / "checkpoints"), max_steps=c.steps,
        per_device_train_batch_size=c.batch_size, learning_rate=c.learning_rate,
        lr_scheduler_type="cosine", warmup_steps=10, weight_decay=0.0, logging_steps=10,
        save_strategy="no", report_to="none", use_cpu=True, seed=c.seed, bf16=False,
        disable_tqdm=False)
    started = time.time()
    metrics = out / "metrics.jsonl"
    metrics.unlink(missing_ok=True)  # a re-entered pretrain starts over (it takes seconds)
    trainer = Trainer(model=model, args=args, train_dataset=data,
                      data_collator=DataCollatorForLanguageModeling(tok, mlm=False),
                      callbacks=[MetricsJsonlCallback(metrics)])
    trainer.train()
    recall = _fact_recall(model, tok)
    tok.padding_side = "left"
    model.save_pretrained(str(out / "model"))
    tok.save_pretrained(str(out / "model"))
    # Tokens the task uses that pre-training never showed the model: a DoRA adapter cannot
    # move their frozen embeddings, so SFT trains these rows (PEFT trainable_token_indices).
    seen = {i for t in texts for i in tok(t).input_ids}
    used = {i for t in read_jsonl(task / "tokenizer.jsonl") for i in tok(t["text"]).input_ids}
    used |= set(tok.convert_tokens_to_ids([IM_START, IM_END]))
    atomic_write_json(out / NEW_TOKENS_FILE, sorted(used - seen))
    summary = {"params": sum(p.numel() for p in model.parameters()), "vocab": len(tok),
               "steps": c.steps, "final_loss": trainer.state.log_history[-2].get("loss")
               if len(trainer.state.log_history) > 1 else None,
               "fact_recall": recall, "seconds": time.time() - started, "complete": True}
    atomic_write_json(out / "summary.json", summary)
    return {"params": summary["params"], "fact recall": recall,
            "final loss": summary["final_loss"]}


def register_stages() -> None:
    """Register ``toy_task`` and ``pretrain`` as pipeline stage kinds (:mod:`gazal.pipeline`
    has no demo stage of its own): ``gazal demo`` does it, and ``gazal pipeline`` through
    :mod:`gazal.commands.demo`."""
    from gazal.pipeline import register_stage

    register_stage("toy_task", run_toy_task)
    register_stage("pretrain", run_pretrain, wires=wire_from_pretrain)


def wire_from_pretrain(ctx: Any, stage: Any) -> list[tuple[str, Any]]:
    """A pipeline's SFT stage trains the model of the newest pretrain stage ``stage`` before
    it, with the embedding rows of the tokens the pre-training never trained made trainable
    (``new_token_ids.json``)."""
    if ctx.spec.kind != "sft":
        return []
    pairs: list[tuple[str, Any]] = [("model.name_or_path",
                                     str(ctx.folder(stage.name) / "model"))]
    new_tokens = ctx.folder(stage.name) / NEW_TOKENS_FILE
    if new_tokens.exists():
        pairs.append(("lora.trainable_token_indices",
                      json.loads(new_tokens.read_text(encoding="utf-8"))))
    return pairs
