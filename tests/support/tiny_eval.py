"""Tiny models and item sets for the evaluation tests (built once per test process)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from gazal.benchmarks import Item, LoadedBenchmark, items_checksum
from gazal.benchmarks.builtin import builtin_items


@cache
def tiny_model_dir(root: str) -> Path:
    """A random 2-layer Qwen3 + BPE tokenizer trained on the built-in items' text.

    Embeddings are untied: a tied random model mostly repeats its last input token (all
    newlines here), which would make comparisons of generated text vacuous.
    """
    from gazal.demo.tiny import build_tiny

    return build_tiny(Path(root) / "tiny-qwen3", vocab_size=512, seed=0,
                      tie_word_embeddings=False)


def clinical_items(n: int, benchmark: str = "medqa") -> list[Item]:
    """``n`` distinct items made from the built-in questions (prompts of varied lengths)."""
    base = builtin_items()
    out = []
    for k in range(n):
        it = base[k % len(base)]
        extra = " The patient is otherwise well." * (k % 3)
        out.append(Item(id=f"{benchmark}-t{k}", benchmark=benchmark,
                        question=f"Case {k}. {it.question}{extra}", options=it.options,
                        answer=it.answer, meta={"step": "step1" if k % 2 else "step2&3"}))
    return out


def loaded(items: list[Item], name: str = "medqa") -> LoadedBenchmark:
    return LoadedBenchmark(name=name, items=items, source="test", sha256=items_checksum(items))


def make_adapter(model_dir: Path, out: Path, *, use_dora: bool, r: int = 4) -> Path:
    """Save a PEFT adapter (rsLoRA; DoRA or plain LoRA) with random nonzero B, so it changes
    the model's outputs and a test that ignores it fails."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    config = LoraConfig(r=r, lora_alpha=2 * r, use_dora=use_dora, use_rslora=True,
                        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                        "up_proj", "down_proj"],
                        init_lora_weights=False)
    torch.manual_seed(0)
    peft_model = get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir), config)
    peft_model.save_pretrained(out)
    return out
