"""The vllm backend without vLLM: the install message when it is missing, and the mapping of
gazal's settings onto vLLM's API, checked against a fake ``vllm`` module."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from support.tiny_eval import clinical_items, loaded, make_adapter, tiny_model_dir

from gazal.config import load_config
from gazal.eval.config import EvalConfig
from gazal.formatting import build_messages
from gazal.generation.base import GenerationParams
from gazal.generation.prompts import chat_prompt_ids

SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_model_dir(str(tmp_path_factory.mktemp("vllm")))


@dataclass
class FakeCompletion:
    text: str
    token_ids: list[int]
    finish_reason: str


@dataclass
class FakeOutput:
    outputs: list[FakeCompletion]


@dataclass
class FakeVLLM:
    """Records what gazal passes to vLLM; replies are scripted."""

    inits: list[dict] = field(default_factory=list)
    calls: list[dict] = field(default_factory=list)
    tokenizer: object = None

    def reply_ids(self, i: int) -> list[int]:
        """Token ids of 'reply i' plus the end-of-turn token (vLLM keeps stop tokens)."""
        return self.tokenizer(f"reply {i}", add_special_tokens=False)["input_ids"] + \
            [self.tokenizer.eos_token_id]

    def module(self) -> types.ModuleType:
        fake = self
        vllm = types.ModuleType("vllm")

        class SamplingParams:
            def __init__(self, **kwargs):
                self.kwargs = kwargs

        class LLM:
            def __init__(self, **kwargs):
                fake.inits.append(kwargs)

            def generate(self, prompts, sampling_params, **kwargs):
                fake.calls.append({"prompts": prompts, "sampling": sampling_params, **kwargs})
                return [FakeOutput([FakeCompletion(f"text {i}", fake.reply_ids(i),
                                                   "length" if i == 1 else "stop")])
                        for i in range(len(prompts))]

        vllm.LLM, vllm.SamplingParams = LLM, SamplingParams
        lora = types.ModuleType("vllm.lora")
        request = types.ModuleType("vllm.lora.request")

        class LoRARequest:
            def __init__(self, name, int_id, path):
                self.name, self.int_id, self.path = name, int_id, path

        request.LoRARequest = LoRARequest
        lora.request = request
        vllm.lora = lora
        return vllm


@pytest.fixture
def fake(monkeypatch, tiny):
    from transformers import AutoTokenizer

    f = FakeVLLM(tokenizer=AutoTokenizer.from_pretrained(tiny))
    mod = f.module()
    monkeypatch.setitem(sys.modules, "vllm", mod)
    monkeypatch.setitem(sys.modules, "vllm.lora", mod.lora)
    monkeypatch.setitem(sys.modules, "vllm.lora.request", mod.lora.request)
    return f


def test_missing_vllm_names_the_install_command(monkeypatch, tiny, tmp_path):
    from gazal.generation.vllm import VLLMBackend, VLLMMissingError

    monkeypatch.setitem(sys.modules, "vllm", None)  # import fails as when not installed
    with pytest.raises(VLLMMissingError, match=r"pip install 'gazal\[vllm\]'"):
        VLLMBackend(str(tiny))
    monkeypatch.delitem(sys.modules, "vllm")
    env = dict(os.environ, PYTHONPATH=SRC)
    # the CLI says the same, without a traceback (vLLM is not installed on this machine)
    res = subprocess.run([sys.executable, "-c", "import vllm"], capture_output=True, env=env)
    if res.returncode == 0:
        pytest.skip("vLLM is installed here")
    res = subprocess.run([sys.executable, "-m", "gazal", "eval", "--backend", "vllm",
                          "--model", str(tiny), "--benchmarks", "medqa", "--out",
                          str(tmp_path / "run")], capture_output=True, text=True, env=env)
    assert res.returncode == 2 and "pip install 'gazal[vllm]'" in res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "run").exists()  # checked before any work


def test_settings_map_onto_vllm(fake, tiny):
    from gazal.generation.vllm import VLLMBackend

    b = VLLMBackend(str(tiny), dtype="bfloat16", tensor_parallel_size=2,
                    gpu_memory_utilization=0.7, max_model_len=4096, enforce_eager=True, seed=3)
    init = fake.inits[-1]
    assert init["load_format"] == "safetensors"  # vLLM never unpickles weights
    assert init["model"] == str(tiny) and init["tokenizer"] == str(tiny)
    assert (init["dtype"], init["tensor_parallel_size"], init["gpu_memory_utilization"],
            init["max_model_len"], init["enforce_eager"], init["seed"]) == \
        ("bfloat16", 2, 0.7, 4096, True, 3)
    assert init["trust_remote_code"] is False and "enable_lora" not in init
    convs = [build_messages(it) for it in clinical_items(3)]
    seen = []
    gens = b.generate(convs, GenerationParams(max_new_tokens=99, thinking=False),
                      on_result=lambda i, g: seen.append(i))
    call = fake.calls[-1]
    assert call["prompts"] == [{"prompt_token_ids": chat_prompt_ids(b.tokenizer, c, False)}
                               for c in convs]
    sp = call["sampling"][0].kwargs
    assert sp["temperature"] == 0.0 and sp["top_p"] == 1.0 and sp["max_tokens"] == 99
    assert sp["stop_token_ids"] == [b.tokenizer.eos_token_id] and "seed" not in sp
    assert "lora_request" not in call and call["use_tqdm"] is False
    # text decoded from the token ids (end-of-turn token dropped), as the hf backend does
    assert [g.text for g in gens] == ["reply 0", "reply 1", "reply 2"] and seen == [0, 1, 2]
    assert [g.finish_reason for g in gens] == ["stop", "length", "stop"]
    assert gens[2].n_completion_tokens == len(fake.reply_ids(2))
    assert gens[0].n_prompt_tokens == len(call["prompts"][0]["prompt_token_ids"])
    # sampling: each request its own seed
    b.generate(convs, GenerationParams(temperature=0.6, top_p=0.95, seed=10), seeds=[5, 6, 7])
    sps = [s.kwargs for s in fake.calls[-1]["sampling"]]
    assert [s["seed"] for s in sps] == [5, 6, 7]
    assert sps[0]["temperature"] == 0.6 and sps[0]["top_p"] == 0.95
    assert "top_k" not in sps[0] and "min_p" not in sps[0]  # unset: vLLM's defaults (off)
    b.generate(convs, GenerationParams(temperature=0.6, top_p=0.95, top_k=20, min_p=0.05,
                                       seed=10), seeds=[5, 6, 7])
    sps = [s.kwargs for s in fake.calls[-1]["sampling"]]
    assert all((s["top_k"], s["min_p"]) == (20, 0.05) for s in sps)
    b.generate(convs, GenerationParams(top_k=20, min_p=0.05))  # greedy: not sent
    assert "top_k" not in fake.calls[-1]["sampling"][0].kwargs


def test_lora_request_mode(fake, tiny, tmp_path):
    from gazal.generation.vllm import VLLMBackend

    lora = make_adapter(tiny, tmp_path / "lora", use_dora=False)
    b = VLLMBackend(str(tiny), adapter=str(lora), adapter_mode="lora_request", max_lora_rank=8)
    init = fake.inits[-1]
    assert init["enable_lora"] is True and init["max_lora_rank"] == 8
    assert init["model"] == str(tiny)  # the base model; the adapter rides on each request
    b.generate([build_messages(clinical_items(1)[0])], GenerationParams(max_new_tokens=4))
    assert fake.calls[-1]["lora_request"].path == str(lora)
    with pytest.raises(ValueError, match=r"rank 4 > vllm\.max_lora_rank 2"):
        VLLMBackend(str(tiny), adapter=str(lora), adapter_mode="lora_request", max_lora_rank=2)
    dora = make_adapter(tiny, tmp_path / "dora", use_dora=True)
    with pytest.raises(ValueError, match="does not implement DoRA"):
        VLLMBackend(str(tiny), adapter=str(dora), adapter_mode="lora_request")


def test_merge_mode_hands_vllm_a_merged_checkpoint(fake, tiny, tmp_path):
    from safetensors import safe_open

    from gazal.generation.vllm import VLLMBackend

    dora = make_adapter(tiny, tmp_path / "dora", use_dora=True)
    b = VLLMBackend(str(tiny), adapter=str(dora), dtype="float32")
    merged = Path(fake.inits[-1]["model"])
    assert fake.inits[-1]["tokenizer"] == str(merged) and "enable_lora" not in fake.inits[-1]
    assert (merged / "tokenizer.json").exists()
    with safe_open(str(merged / "model.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert keys and not any("lora" in k or "magnitude" in k for k in keys)
    b.close()
    assert not merged.exists()  # the temporary merged model is removed


def test_eval_runs_through_the_vllm_backend(fake, tiny, tmp_path):
    from gazal.eval.runner import run_eval

    cfg = load_config(EvalConfig, None, [
        "--model", str(tiny), "--backend", "vllm", "--out", str(tmp_path / "run"),
        "--vllm.gpu_memory_utilization", "0.8", "--max-new-tokens", "32", "--progress",
        "false"])
    summary = run_eval(cfg, benchmarks=[loaded(clinical_items(3))])
    assert fake.inits[-1]["gpu_memory_utilization"] == 0.8 and summary["n"] == 3
    records = [json.loads(x) for x in (tmp_path / "run" / "responses.jsonl").read_text()
               .splitlines()]
    assert records[1]["finish_reason"] == "length" and records[1]["truncated"] is True


def test_eval_config_sampling_keys_reach_vllm(fake, tiny, tmp_path):
    from gazal.eval.runner import run_eval

    cfg = load_config(EvalConfig, None, [
        "--model", str(tiny), "--backend", "vllm", "--out", str(tmp_path / "run"),
        "--temperature", "0.6", "--top-p", "0.95", "--top-k", "20", "--min-p", "0.05",
        "--samples", "2", "--max-new-tokens", "8", "--progress", "false"])
    run_eval(cfg, benchmarks=[loaded(clinical_items(2))])
    sps = [s.kwargs for call in fake.calls for s in call["sampling"]]
    assert len(sps) == 4 and all((s["temperature"], s["top_p"], s["top_k"], s["min_p"]) ==
                                 (0.6, 0.95, 20, 0.05) for s in sps)
    md = (tmp_path / "run" / "results.md").read_text()
    assert "temperature 0.6, top-p 0.95, top-k 20, min-p 0.05, seed 0" in md


def test_budget_forcing_through_vllm(fake, tiny, tmp_path):
    from gazal.eval.forcing import FORCE_SUFFIX
    from gazal.eval.runner import run_eval

    cfg = load_config(EvalConfig, None, [
        "--model", str(tiny), "--backend", "vllm", "--out", str(tmp_path / "run"),
        "--max-new-tokens", "8", "--force-answer-tokens", "5", "--progress", "false"])
    summary = run_eval(cfg, benchmarks=[loaded(clinical_items(3))])
    # the fake cuts request 1 at the limit ('length'): only that response is forced
    forced_call = fake.calls[-1]
    assert len(forced_call["prompts"]) == 1
    assert forced_call["sampling"][0].kwargs["max_tokens"] == 5
    prompt = fake.tokenizer.decode(forced_call["prompts"][0]["prompt_token_ids"])
    assert prompt.endswith("text 1" + FORCE_SUFFIX) or prompt.endswith(
        "reply 1" + FORCE_SUFFIX)
    records = [json.loads(x) for x in (tmp_path / "run" / "responses.jsonl").read_text()
               .splitlines()]
    assert [r["forced_answer"] is not None for r in records] == [False, True, False]
    assert summary["forcing"]["forced"] == 1
