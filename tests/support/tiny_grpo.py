"""A tiny policy for GRPO tests: a random Qwen3 with a byte-level BPE tokenizer, briefly
supervised on one category of the demo's toy task (treatment planning: condition -> first-line
treatment) so that it writes gazal's format and knows part of the answers. GRPO can then raise
its reward within a few CPU steps.

Everything is seeded; building takes a few seconds on a 2-core CPU.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

CATEGORY = "treatment_planning"


def toy_questions(split: str) -> list:
    """The toy task's treatment-planning questions of ``split`` (train / heldout)."""
    from gazal.demo.task import build_questions

    return [q for q in build_questions(split) if q.category == CATEGORY]


def write_items(path: Path, questions) -> Path:
    """Write questions as gazal Item JSONL (a `data.train` / `heldout.sources` file)."""
    with path.open("w", encoding="utf-8") as f:
        for q in questions:
            f.write(json.dumps(q.item.to_dict()) + "\n")
    return path


def build_toy_policy(out_dir: Path, *, steps: int = 60, batch: int = 16, lr: float = 3e-3,
                     seed: int = 0, hidden_size: int = 64, num_layers: int = 2) -> Path:
    """Build, briefly train (assistant tokens only) and save the tiny policy."""
    import torch

    from gazal.demo.task import pretraining_texts, sft_example
    from gazal.demo.tiny import build_model, build_tokenizer

    out_dir = Path(out_dir)
    train = toy_questions("train")
    examples = [sft_example(q, system_prompt=None) for q in train]
    texts = [m["content"] for e in examples for m in e["messages"]]
    texts += [m["content"] for q in toy_questions("heldout")
              for m in sft_example(q, system_prompt=None)["messages"][:1]]
    texts += pretraining_texts(40)
    tok = build_tokenizer(texts, vocab_size=500)
    model = build_model(tok, hidden_size=hidden_size, num_layers=num_layers,
                        intermediate_size=2 * hidden_size, num_heads=4, num_kv_heads=2,
                        head_dim=hidden_size // 4, seed=seed)
    seqs = []
    for e in examples:
        prompt = tok.apply_chat_template(e["messages"][:-1], tokenize=False,
                                         add_generation_prompt=True)
        p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
        ids = tok(prompt + e["messages"][-1]["content"] + "<|im_end|>",
                  add_special_tokens=False)["input_ids"]
        seqs.append((ids, [-100] * len(p_ids) + ids[len(p_ids):]))
    torch.manual_seed(seed)
    rng = random.Random(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        chosen = rng.sample(seqs, batch)
        width = max(len(s[0]) for s in chosen)
        ids = torch.full((batch, width), tok.pad_token_id)
        labels = torch.full((batch, width), -100)
        mask = torch.zeros((batch, width), dtype=torch.long)
        for i, (a, b) in enumerate(chosen):
            ids[i, :len(a)] = torch.tensor(a)
            labels[i, :len(b)] = torch.tensor(b)
            mask[i, :len(a)] = 1
        model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    model.save_pretrained(str(out_dir), safe_serialization=True)
    tok.save_pretrained(str(out_dir))
    return out_dir
