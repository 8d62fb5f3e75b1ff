from __future__ import annotations

from gazal.benchmarks.builtin import builtin_items
from gazal.demo.tiny import build_tiny
from gazal.formatting import build_messages, parse_response, render_assistant


def test_tiny_model_and_tokenizer_round_trip(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = build_tiny(tmp_path / "tiny", seed=3)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert model.config.model_type == "qwen3"
    assert sum(p.numel() for p in model.parameters()) < 500_000
    msgs = build_messages(builtin_items()[0])
    prompt = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n")
    off = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True,
                                  enable_thinking=False)
    assert off.endswith("<think>\n\n</think>\n\n")
    # <think> tags survive skip_special_tokens; the end-of-turn token is EOS.
    reply = render_assistant(["Fever and cough."], "Viral.", "B", "Croup")
    ids = tok(reply)["input_ids"]
    assert parse_response(tok.decode(ids, skip_special_tokens=True)).thinking == \
        "Step 1: Fever and cough."
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    # assistant-only masks come from the template's generation markers, end-of-turn included
    out = tok.apply_chat_template([*msgs, {"role": "assistant", "content": reply}],
                                  return_dict=True, return_assistant_tokens_mask=True)
    masked = [i for i, m in zip(out["input_ids"], out["assistant_masks"], strict=True) if m]
    assert masked[-1] == tok.eos_token_id
    assert tok.decode(masked[:-1]) == reply
