"""The hf backend: batching plan, left padding, stop at EOS, truncation, seeded sampling, and
adapters merged in memory (DoRA and LoRA) giving the unmerged PEFT model's logits."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.tiny_eval import clinical_items, make_adapter, tiny_model_dir

from gazal.formatting import build_messages
from gazal.generation.base import GenerationParams
from gazal.generation.batching import plan_batches


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_model_dir(str(tmp_path_factory.mktemp("hf")))


@pytest.fixture(scope="module")
def backend_parts(tiny):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny), AutoTokenizer.from_pretrained(tiny)


def convs(n):
    return [build_messages(it) for it in clinical_items(n)]


def test_plan_fixed_and_token_budget():
    lengths = [5, 9, 7, 9, 3]
    # longest first, ties in input order
    assert plan_batches(lengths, 10, batch_size=2) == [[1, 3], [2, 0], [4]]
    # budget: n x (longest + 10) <= 40 -> (9+10)*2 = 38 fits, a third would not
    assert plan_batches(lengths, 10, batch_tokens=40) == [[1, 3], [2, 0], [4]]
    assert plan_batches(lengths, 10, batch_tokens=100, max_batch_size=3) == [[1, 3, 2], [0, 4]]
    # a prompt over the budget still gets a batch of its own
    assert plan_batches([50, 1], 10, batch_tokens=20) == [[0], [1]]
    with pytest.raises(ValueError, match="exactly one"):
        plan_batches(lengths, 10)


def test_auto_batch_tokens_from_free_memory(monkeypatch, backend_parts):
    import torch

    from gazal.generation import hf

    model, _ = backend_parts
    c = model.config
    per_token = 2 * c.num_hidden_layers * c.num_key_value_heads * c.head_dim * 4
    assert hf.kv_bytes_per_token(c, torch.float32) == per_token
    monkeypatch.setattr(hf, "_free_memory_bytes", lambda device: 1_000_000)
    assert hf.auto_batch_tokens(model, torch.device("cpu")) == int(0.5 * 1_000_000 / per_token)
    monkeypatch.setattr(hf, "_free_memory_bytes", lambda device: None)
    assert hf.auto_batch_tokens(model, torch.device("cpu")) == 16_384


def test_batched_left_padding_matches_one_by_one(backend_parts):
    from gazal.generation.hf import HFBackend

    model, tok = backend_parts
    cs = convs(5)
    params = GenerationParams(max_new_tokens=6)
    batched = HFBackend(model, tok, batch_size=5).generate(cs, params)
    single = HFBackend(model, tok, batch_size=1).generate(cs, params)
    assert len({g.n_prompt_tokens for g in batched}) > 1  # prompts really differ in length
    assert len({g.text for g in batched}) > 1  # and the model says different things
    assert [g.text for g in batched] == [g.text for g in single]
    assert all(g.finish_reason == "length" and g.n_completion_tokens == 6 for g in batched)


def test_stops_at_eos_and_counts_it(backend_parts):
    from gazal.generation.hf import HFBackend

    model, tok = backend_parts
    cs = convs(3)
    params = GenerationParams(max_new_tokens=8)
    first = HFBackend(model, tok, batch_size=3)
    ids = first.prompt_ids(cs, params)
    rows = [first.generate_batch(ids, params)]
    # Make the token the model emits third for prompt 0 an extra end-of-sequence token (as
    # Qwen3's generation config lists <|endoftext|> beside <|im_end|>): generation of that
    # row must stop there, the other rows must be unaffected up to their own stop.
    import torch

    with torch.inference_mode():
        full = model.generate(input_ids=torch.tensor([ids[0]]), max_new_tokens=8,
                              do_sample=False)[0, len(ids[0]):].tolist()
    stop_tok = full[2]
    original = model.generation_config.eos_token_id
    model.generation_config.eos_token_id = [tok.eos_token_id, stop_tok]
    try:
        backend = HFBackend(model, tok, batch_size=3)
        assert stop_tok in backend.stop_ids and tok.eos_token_id in backend.stop_ids
        gens = backend.generate_batch(ids, params)
    finally:
        model.generation_config.eos_token_id = original
    cut = full.index(stop_tok)
    assert gens[0].finish_reason == "stop" and gens[0].n_completion_tokens == cut + 1
    assert gens[0].text == tok.decode(full[:cut], skip_special_tokens=True)
    assert rows[0][0].finish_reason == "length" and rows[0][0].n_completion_tokens == 8


def test_sampling_is_reproducible_given_the_seed(backend_parts):
    from gazal.generation.hf import HFBackend

    model, tok = backend_parts
    b = HFBackend(model, tok, batch_size=4)
    cs = convs(4)

    def run(seed):
        return [g.text for g in b.generate(cs, GenerationParams(max_new_tokens=8,
                                                                temperature=1.0, seed=seed))]

    assert run(1) == run(1)
    assert run(1) != run(2)
    greedy = [g.text for g in b.generate(cs, GenerationParams(max_new_tokens=8))]
    assert greedy != run(1)


def test_checkpoint_sampling_defaults_are_not_used(backend_parts):
    from gazal.generation.hf import HFBackend

    model, tok = backend_parts
    b = HFBackend(model, tok, batch_size=2)
    model.generation_config.do_sample = True
    model.generation_config.top_k = 3
    try:
        cfg = b._generation_config(GenerationParams(max_new_tokens=4))
        assert cfg.do_sample is False
        cfg = b._generation_config(GenerationParams(max_new_tokens=4, temperature=0.7))
        assert cfg.do_sample is True and cfg.top_k == 0 and cfg.temperature == 0.7
        assert cfg.min_p == 0.0  # off, explicitly: None would be filled from the checkpoint
    finally:
        model.generation_config.do_sample = False
        model.generation_config.top_k = None


def test_top_k_and_min_p_reach_the_generation_config(backend_parts, monkeypatch):
    from gazal.generation.hf import HFBackend

    model, tok = backend_parts
    b = HFBackend(model, tok, batch_size=2)
    params = GenerationParams(max_new_tokens=3, temperature=0.6, top_p=0.95, top_k=20,
                              min_p=0.05, seed=4)
    cfg = b._generation_config(params)
    assert (cfg.temperature, cfg.top_p, cfg.top_k, cfg.min_p) == (0.6, 0.95, 20, 0.05)
    # and through generate(), whose later batches get their own seed
    seen = []
    original = b._generation_config
    monkeypatch.setattr(b, "_generation_config",
                        lambda p: seen.append(p) or original(p))
    b.generate(convs(3), params)
    assert len(seen) == 2 and all((p.top_k, p.min_p) == (20, 0.05) for p in seen)
    assert [p.seed for p in seen] == [4, 5]
    # top_k 1 keeps only the most likely token: sampling then gives the greedy text
    greedy = [g.text for g in b.generate(convs(3), GenerationParams(max_new_tokens=6))]
    top1 = [g.text for g in b.generate(convs(3), GenerationParams(
        max_new_tokens=6, temperature=1.0, top_k=1, seed=1))]
    assert top1 == greedy
    # greedy ignores them
    assert b._generation_config(GenerationParams(top_k=20, min_p=0.1)).do_sample is False


@pytest.mark.parametrize("use_dora", [True, False], ids=["dora", "lora"])
def test_merged_adapter_gives_the_unmerged_peft_logits(tiny, tmp_path, use_dora):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from gazal.generation.hf import HFBackend

    make_adapter(tiny, tmp_path / "adapter", use_dora=use_dora)
    tok = AutoTokenizer.from_pretrained(tiny)
    text = tok.apply_chat_template(convs(1)[0], tokenize=False, add_generation_prompt=True)
    ids = torch.tensor([tok(text, add_special_tokens=False)["input_ids"]])
    with torch.inference_mode():
        plain = AutoModelForCausalLM.from_pretrained(tiny).eval()(ids).logits
        unmerged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny),
                                             tmp_path / "adapter").eval()(ids).logits
        backend = HFBackend(str(tiny), adapter=str(tmp_path / "adapter"), batch_size=1)
        merged = backend.model(ids).logits
        # the same from a model object already in memory (library use)
        in_memory = HFBackend(AutoModelForCausalLM.from_pretrained(tiny), tok,
                              adapter=tmp_path / "adapter", batch_size=1).model(ids).logits
    # merged into plain Linear layers: no PEFT wrapper left to slow generation down
    assert not any("lora" in n for n, _ in backend.model.named_modules())
    assert (unmerged - plain).abs().max() > 1e-2  # the adapter matters
    torch.testing.assert_close(merged, unmerged, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(in_memory, unmerged, rtol=1e-4, atol=1e-4)


def test_backends_declare_which_protocol_they_follow(backend_parts):
    """The eval runner dispatches on these protocols, not on attribute probing."""
    from gazal.generation import Backend, BatchingBackend
    from gazal.generation.hf import HFBackend
    from gazal.generation.openai import OpenAIBackend, OpenAISettings

    model, tok = backend_parts
    hf_backend = HFBackend(model, tok, batch_size=2)
    assert isinstance(hf_backend, BatchingBackend) and hf_backend.batch_dependent
    remote = OpenAIBackend(OpenAISettings(base_url="http://127.0.0.1:9", model="m",
                                          concurrency=16))
    try:
        assert isinstance(remote, Backend) and not isinstance(remote, BatchingBackend)
        assert remote.chunk_size == 128  # 8 requests per worker between saves
    finally:
        remote.close()


def test_the_loader_refuses_pickle_checkpoints(tmp_path, tiny):
    """Safetensors only, on the generation path too (it once omitted use_safetensors)."""
    import shutil

    import torch
    from transformers import AutoModelForCausalLM

    from gazal.config import ConfigError
    from gazal.generation.loading import load_model

    # transformers 5 always saves safetensors, so write the pickle checkpoint by hand
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    shutil.copy(Path(tiny) / "config.json", pickled / "config.json")
    torch.save(AutoModelForCausalLM.from_pretrained(tiny).state_dict(),
               pickled / "pytorch_model.bin")
    with pytest.raises(ConfigError, match="cannot load model"):
        load_model(pickled, device="cpu")
    assert load_model(tiny, device="cpu").config.vocab_size > 0  # the safetensors folder loads


def test_attn_implementation_auto_picks_flash_only_when_it_can_run(monkeypatch, caplog):
    import importlib.util
    import logging

    import torch

    from gazal.generation import loading

    monkeypatch.setattr(loading, "_ATTN_SAID", set())
    assert loading.resolve_attn_implementation("eager") == "eager"
    assert loading.resolve_attn_implementation(None) is None
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with caplog.at_level(logging.INFO, logger="gazal"):
        assert loading.resolve_attn_implementation("auto") == "sdpa"
        assert loading.resolve_attn_implementation("auto") == "sdpa"
    assert [r.getMessage() for r in caplog.records].count(
        "attn_implementation auto: sdpa (no CUDA device)") == 1  # said once
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name: object() if name == "flash_attn" else real(name))
    assert loading.resolve_attn_implementation("auto") == "flash_attention_2"


def test_a_recipe_saying_auto_loads_on_a_machine_without_flash_attention(tiny):
    from gazal.generation.loading import load_model

    model = load_model(tiny, device="cpu", attn_implementation="auto")
    assert model.config._attn_implementation == "sdpa"
