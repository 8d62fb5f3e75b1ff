"""A tiny policy for GRPO tests: a random Qwen3 with a byte-level BPE tokenizer, briefly
supervised on one category of the demo's toy task (treatment planning: condition -> first-line
treatment) so that it writes gazal's format. In its supervised traces the treatment named (in
the steps, the assessment and the final answer) is one of the question's options drawn at
random, so the policy learns the form but answers each question by chance: sampled groups
disagree, and GRPO can raise the reward within a few CPU steps by learning which option is
right.

Everything is seeded; building takes 10-20 s on one CPU thread.
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


def random_answer_example(q, rng: random.Random) -> dict:
    """A supervised example whose trace names a random option as the treatment."""
    from gazal.formatting import render_assistant, render_question

    c = q.condition.name
    chosen = rng.choice(list(q.item.options.values()))
    trace = render_assistant([f"The diagnosis is {c}.",
                              f"The first line treatment for {c} is {chosen}."],
                             f"{chosen[0].upper() + chosen[1:]} is first line for {c}.",
                             text=chosen)
    return {"messages": [{"role": "user", "content": render_question(q.item)},
                         {"role": "assistant", "content": trace}]}


def build_toy_policy(out_dir: Path, *, steps: int = 100, batch: int = 16, lr: float = 5e-3,
                     seed: int = 0, hidden_size: int = 64, num_layers: int = 2,
                     random_answers: bool = True, head_dim: int | None = None) -> Path:
    """Build, briefly train (assistant tokens only) and save the tiny policy (4 query heads of
    ``head_dim``, default hidden_size / 4; vLLM's CPU attention needs 64 or more)."""
    import torch

    from gazal.demo.task import pretraining_texts, sft_example
    from gazal.demo.tiny import build_model, build_tokenizer

    out_dir = Path(out_dir)
    train = toy_questions("train")
    rng = random.Random(seed)
    examples = [random_answer_example(q, rng) if random_answers
                else sft_example(q, system_prompt=None) for q in train]
    texts = [m["content"] for e in examples for m in e["messages"]]
    texts += [m["content"] for q in toy_questions("heldout")
              for m in sft_example(q, system_prompt=None)["messages"][:1]]
    texts += pretraining_texts(40)
    tok = build_tokenizer(texts, vocab_size=500)
    model = build_model(tok, hidden_size=hidden_size, num_layers=num_layers,
                        intermediate_size=2 * hidden_size, num_heads=4, num_kv_heads=2,
                        head_dim=head_dim or hidden_size // 4, seed=seed)
    seqs = []
    for e in examples:
        prompt = tok.apply_chat_template(e["messages"][:-1], tokenize=False,
                                         add_generation_prompt=True)
        p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
        ids = tok(prompt + e["messages"][-1]["content"] + "<|im_end|>",
                  add_special_tokens=False)["input_ids"]
        seqs.append((ids, [-100] * len(p_ids) + ids[len(p_ids):]))
    torch.manual_seed(seed)
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
