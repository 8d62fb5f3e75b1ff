"""Real 2-process data-parallel SFT and GRPO runs on CPU (gloo).

SFT (``accelerate launch``): the training is data parallel (each optimizer step consumes both
processes' batches), both ranks end with identical weights equal to the saved adapter, only
rank 0 prints and writes, and a crash after a checkpoint resumes under DDP to the same
adapter as an uninterrupted run.

GRPO: both ranks end with identical weights equal to the saved adapter; only rank 0 prints
and writes; the held-out evaluation, split over the two processes (5 questions: 3 and 2),
gives what one process gives on the final adapter; a NaN in the weights of ONE process stops
BOTH at the same step with exit status 3 (no hang: every launch has a timeout), keeping the
last good checkpoint; re-running resumes from it (module form, ``ddp.yaml``) to the same
adapter and metrics as a run that never failed.

About 90 s in all; deselect with ``-m "not distributed"``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gazal.formatting import SYSTEM_PROMPT

pytestmark = pytest.mark.distributed

ROOT = Path(__file__).resolve().parents[1]
SUPPORT = ROOT / "tests" / "support" / "ddp_sft.py"
DX = ["pneumonia", "appendicitis", "migraine", "gout", "asthma", "anemia", "stroke", "sepsis"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from gazal.demo.tiny import build_tiny

    root = tmp_path_factory.mktemp("ddp")
    rows = []
    for i, d in enumerate(DX):
        opts = {"A": d, "B": DX[(i + 1) % 8], "C": DX[(i + 2) % 8], "D": DX[(i + 3) % 8]}
        rows.append({"question": f"A patient presents with classic signs of {d}. Diagnosis?",
                     "options": opts, "answer_idx": "A", "answer": d,
                     "Question": f"Classic signs of {d}: diagnosis?",
                     "Complex_CoT": f"The signs are classic for {d}.",
                     "Response": f"The findings indicate {d}."})
    (root / "data.json").write_text(json.dumps(rows))
    texts = [SYSTEM_PROMPT] + [r["question"] + " " + r["Complex_CoT"] for r in rows]
    model = build_tiny(root / "model", texts, vocab_size=400, hidden_size=32, num_layers=1,
                       intermediate_size=64, num_heads=2, num_kv_heads=1, head_dim=16)
    return root, model


def _recipe(root: Path, model: Path, name: str) -> Path:
    recipe = {
        "output_dir": str(root / name),
        "model": {"name_or_path": str(model), "dtype": "float32"},
        "lora": {"r": 8, "alpha": 16, "dropout": 0.0},
        "data": {"train": [{"path": str(root / "data.json")}]},
        "sft": {"max_length": 512},
        # 8 examples, 2 processes x 2 rows: 2 optimizer steps per epoch
        "train": {"learning_rate": 2e-2, "lr_scheduler_type": "constant", "warmup_steps": 0,
                  "per_device_train_batch_size": 2, "max_steps": 4, "logging_steps": 1,
                  "save_steps": 2, "seed": 7},
    }
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def _launch(*args: str, config: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src") + os.pathsep + str(ROOT / "tests"),
               OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    env.pop("ACCELERATE_USE_CPU", None)  # gazal must make CPU processes data parallel itself
    launch = [sys.executable, "-m", "accelerate.commands.launch"]
    launch += (["--config_file", config] if config else ["--multi_gpu"])
    launch += ["--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
               "--dynamo_backend", "no", "--main_process_port", str(_free_port())]
    return subprocess.run([*launch, *args], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=300)


def _tensors(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


def _adapter_values(run: Path) -> list:
    """The saved adapter's tensors, in a name order that matches the live model's."""
    saved = _tensors(run / "adapter" / "adapter_model.safetensors")
    return [saved[k] for k in sorted(saved)]


def _live_values(dump: dict) -> list:
    # live names carry the adapter name (".default"); saved names do not
    renamed = {k.replace(".default", ""): v for k, v in dump.items()}
    return [renamed[k] for k in sorted(renamed)]


def test_two_process_sft_is_data_parallel_rank0_writes_and_resume_works(setup):
    import torch

    root, model = setup
    full = _recipe(root, model, "full")
    res = _launch(str(SUPPORT), str(full), "--dump", str(root / "dump_full"))
    assert res.returncode == 0, res.stderr[-3000:]
    run = root / "full"

    # data parallel: each optimizer step consumed 2 processes x 2 rows = half of the 8 rows
    metrics = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [(r["step"], r["epoch"]) for r in metrics if "loss" in r]
    assert steps == [(1, 0.5), (2, 1.0), (3, 1.5), (4, 2.0)]
    # both ranks hold the same weights, and they are what rank 0 saved
    ranks = [_tensors(root / "dump_full" / f"rank{r}.safetensors") for r in (0, 1)]
    assert ranks[0].keys() == ranks[1].keys() and ranks[0]
    assert all(torch.equal(ranks[0][k], ranks[1][k]) for k in ranks[0])
    assert all(torch.equal(a, b) for a, b in
               zip(_live_values(ranks[0]), _adapter_values(run), strict=True))
    # the adapter moved from its initialisation (B starts at zero)
    assert any(k.endswith("lora_B.default.weight") and ranks[0][k].abs().sum() > 0
               for k in ranks[0])
    # only rank 0 prints and writes
    assert res.stdout.count("done: step 4") == 1 and res.stdout.count("data: 8 train") == 1
    assert "resuming run" not in res.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["complete"] and summary["global_step"] == 4
    ckpt = run / "checkpoints" / "checkpoint-4"
    assert (ckpt / "rng_state_0.pth").exists() and (ckpt / "rng_state_1.pth").exists()
    assert sorted(p.name for p in run.iterdir()) == [
        ".gazal.lock", "adapter", "checkpoints", "config.yaml", "data_fingerprint.json",
        "loss_curve.png", "metrics.jsonl", "rejects.jsonl", "summary.json"]

    # crash after the step-2 checkpoint, then resume with the module form and the shipped
    # DDP accelerate config: the same adapter as the uninterrupted run
    crash = _recipe(root, model, "crash")
    res = _launch(str(SUPPORT), str(crash), "--crash-at", "3")
    assert res.returncode != 0 and "simulated crash at step 3" in res.stderr
    assert (root / "crash" / "checkpoints" / "checkpoint-2").is_dir()
    assert not (root / "crash" / "adapter").exists()
    res = _launch("-m", "gazal", "sft", str(crash), config="recipes/accelerate/ddp.yaml")
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count("resuming from") == 1 and "checkpoint-2" in res.stdout
    resumed = json.loads((root / "crash" / "summary.json").read_text())
    assert resumed["global_step"] == 4 and resumed["resumed_from"].endswith("checkpoint-2")
    for a, b in zip(_adapter_values(run), _adapter_values(root / "crash"), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    steps = [r["step"] for r in map(json.loads, (root / "crash" / "metrics.jsonl")
                                    .read_text().splitlines()) if "loss" in r]
    assert steps == [1, 2, 3, 4]  # step 3 logged once, though it ran twice


# --------------------------------------------------------------------------- GRPO

GRPO_SUPPORT = ROOT / "tests" / "support" / "ddp_grpo.py"
TIMEOUT = 240  # seconds per launch: a process left waiting in a collective fails the test


@pytest.fixture(scope="module")
def grpo_setup(tmp_path_factory):
    """A tiny toy policy (tests/support/tiny_grpo.py), 8 training and 5 held-out questions,
    and a 4-step 2-process GRPO run of it (per-rank weights dumped)."""
    import torch
    from support.tiny_grpo import build_toy_policy, toy_questions, write_items

    root = tmp_path_factory.mktemp("ddp_grpo")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        policy = build_toy_policy(root / "policy", steps=100, lr=5e-3)
    finally:
        torch.set_num_threads(threads)
    train = write_items(root / "train.jsonl", toy_questions("train")[:8])
    heldout = write_items(root / "heldout.jsonl", toy_questions("heldout")[:5])
    setup = {"root": root, "policy": policy, "train": train, "heldout": heldout}
    full = _grpo_recipe(setup, "full")
    res = _launch(str(GRPO_SUPPORT), "--dump", str(root / "dump_full"), "--", str(full))
    assert res.returncode == 0, res.stderr[-3000:]
    return {**setup, "full": res}


def _grpo_recipe(setup: dict, name: str) -> Path:
    root = setup["root"]
    recipe = {
        "output_dir": str(root / name),
        "model": {"name_or_path": str(setup["policy"]), "dtype": "float32"},
        "lora": {"r": 8, "alpha": 16},
        "data": {"train": [{"path": str(setup["train"])}], "system_prompt": ""},
        "reward": {"length": {"max_tokens": 64}},
        "grpo": {"num_generations": 4, "max_completion_length": 64},
        # 2 processes x 4 completions = 2 prompts x 4 completions per step
        "train": {"learning_rate": 1e-3, "lr_scheduler_type": "constant",
                  "per_device_train_batch_size": 4, "max_steps": 4, "save_steps": 2,
                  "logging_steps": 1, "seed": 0},
        "heldout": {"sources": [{"path": str(setup["heldout"])}], "every_steps": 0},
    }
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def _records(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def _spawn_two(*args: str) -> list[subprocess.CompletedProcess]:
    """Start 2 processes of ``python ARGS`` as torchrun would (RANK, WORLD_SIZE, MASTER_*),
    so each one's own exit status can be checked; both are killed after TIMEOUT."""
    port = str(_free_port())
    procs = []
    for rank in (0, 1):
        env = dict(os.environ, PYTHONPATH=str(ROOT / "src") + os.pathsep + str(ROOT / "tests"),
                   OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", RANK=str(rank),
                   LOCAL_RANK=str(rank), WORLD_SIZE="2", LOCAL_WORLD_SIZE="2",
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
        env.pop("ACCELERATE_USE_CPU", None)
        procs.append(subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT))
    results = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=TIMEOUT)
            results.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    except subprocess.TimeoutExpired:
        pytest.fail(f"a process did not finish within {TIMEOUT} s (a rank waiting in a "
                    "collective for one that stopped?)")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return results


def test_two_process_grpo_identical_ranks_rank0_writes_sharded_heldout(grpo_setup):
    import torch

    from gazal.config import load_config
    from gazal.generation.base import GenerationParams
    from gazal.train.grpo import load_heldout_items
    from gazal.train.grpo_config import GRPORecipe
    from gazal.train.monitors import HeldoutEvaluator

    root, res = grpo_setup["root"], grpo_setup["full"]
    run = root / "full"
    # both ranks hold the same weights, and they are what rank 0 saved
    ranks = [_tensors(root / "dump_full" / f"rank{r}.safetensors") for r in (0, 1)]
    assert ranks[0].keys() == ranks[1].keys() and ranks[0]
    assert all(torch.equal(ranks[0][k], ranks[1][k]) for k in ranks[0])
    assert all(torch.equal(a, b) for a, b in
               zip(_live_values(ranks[0]), _adapter_values(run), strict=True))
    assert any(k.endswith("lora_B.default.weight") and ranks[0][k].abs().sum() > 0
               for k in ranks[0])  # it trained (B starts at zero)
    # only rank 0 prints and writes; TRL's generation batch spans both processes
    assert res.stdout.count("done: step 4") == 1 and res.stdout.count("held-out baseline") == 1
    assert "2 prompts x 4 completions per generation round" in res.stdout
    summary = json.loads((run / "summary.json").read_text())
    assert summary["complete"] and summary["global_step"] == 4
    assert summary["batch"]["processes"] == 2
    assert summary["batch"]["completions_per_optimizer_step"] == 8
    ckpt = run / "checkpoints" / "checkpoint-4"
    assert (ckpt / "rng_state_0.pth").exists() and (ckpt / "rng_state_1.pth").exists()
    assert sorted(p.name for p in run.iterdir()) == [
        ".gazal.lock", "adapter", "alarms.jsonl", "checkpoints", "config.yaml",
        "data_fingerprint.json", "metrics.jsonl", "reward_curve.png", "summary.json"]
    records = _records(run)
    assert [r["step"] for r in records if "reward" in r] == [1, 2, 3, 4]
    heldout = [r for r in records if "heldout/accuracy" in r]
    assert [r["step"] for r in heldout] == [0, 4] and all(r["heldout/n"] == 5 for r in heldout)
    # the held-out evaluation split over the processes (3 + 2 questions, different numbers
    # of generate calls, gathered) = one process evaluating the final adapter alone
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    recipe = load_config(GRPORecipe, str(root / "full.yaml"), [])
    tok = AutoTokenizer.from_pretrained(grpo_setup["policy"])
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(
        grpo_setup["policy"]), str(run / "adapter"))
    params = GenerationParams(max_new_tokens=64, temperature=0.0, seed=0, thinking=True)
    alone = HeldoutEvaluator(load_heldout_items(recipe), params, None)(model, tok)
    for key in ("heldout/accuracy", "heldout/n", "heldout/missing", "heldout/truncated"):
        assert heldout[-1][key] == pytest.approx(alone[key]), key


def test_grpo_guard_on_one_process_stops_both_and_the_run_resumes(grpo_setup):
    import torch

    root = grpo_setup["root"]
    recipe = _grpo_recipe(grpo_setup, "guarded")
    # a NaN in process 1's copy of the weights after step 3's update: process 0 never sees it
    ranks = _spawn_two(str(GRPO_SUPPORT), "--nan-weights", "1:3", "--", str(recipe))
    assert [r.returncode for r in ranks] == [3, 3], [r.stderr[-2000:] for r in ranks]
    assert "NaN injected at step 3" in ranks[1].stderr
    said = ranks[0].stderr
    assert "stopped by guard 'nonfinite': step 3:" in said and "(process 1)" in said
    assert "stopped by guard" not in ranks[1].stderr  # one process says why
    run = root / "guarded"
    assert sorted(p.name for p in (run / "checkpoints").glob("checkpoint-*")) == ["checkpoint-2"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["complete"] is False and summary["stopped"]["step"] == 3
    assert summary["stopped"]["last_checkpoint"].endswith("checkpoint-2")
    assert not (run / "adapter").exists()
    assert [r["step"] for r in _records(run) if "reward" in r] == [1, 2]

    # the fault gone, the same command resumes from the last good checkpoint (module form,
    # the shipped DDP accelerate config) to what the run that never failed produced
    res = _launch("-m", "gazal", "grpo", str(recipe), config="recipes/accelerate/ddp.yaml")
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count("resuming from") == 1 and "checkpoint-2" in res.stdout
    assert "held-out baseline" not in res.stdout  # step 0 is not evaluated again
    for a, b in zip(_adapter_values(root / "full"), _adapter_values(run), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    full, resumed = _records(root / "full"), _records(run)
    for key in ("reward", "loss", "completions/mean_length", "heldout/accuracy"):
        assert [r.get(key) for r in resumed if key in r] == \
            pytest.approx([r.get(key) for r in full if key in r], abs=1e-6), key


@pytest.mark.parametrize("env,expected", [
    ({}, None),
    ({"ACCELERATE_USE_FSDP": "true"}, "FSDP"),
    ({"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "3"},
     "DeepSpeed ZeRO-3"),
    ({"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "2"}, None),
    ({"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_CONFIG_FILE": "{ds3}"},
     "DeepSpeed ZeRO-3"),
])
def test_sharded_engines_refuse_live_heldout_before_writing(env, expected, tmp_path,
                                                            monkeypatch):
    from gazal.config import ConfigError, load_config
    from gazal.distributed import sharded_weights_engine
    from gazal.train.grpo import run_grpo
    from gazal.train.grpo_config import GRPORecipe

    ds3 = tmp_path / "ds.json"
    ds3.write_text(json.dumps({"zero_optimization": {"stage": 3}}))
    for name in ("ACCELERATE_USE_FSDP", "ACCELERATE_USE_DEEPSPEED",
                 "ACCELERATE_DEEPSPEED_ZERO_STAGE", "ACCELERATE_DEEPSPEED_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value.format(ds3=ds3))
    assert sharded_weights_engine() == expected
    if expected is None:
        return
    recipe = load_config(GRPORecipe, None, [
        "--output_dir", str(tmp_path / "run"), "--model.name_or_path", "unused",
        "--data.train", "[{path: rl.jsonl}]", "--heldout.sources", "[{path: heldout.jsonl}]",
        "--max_completion_length", "64", "--reward.length.max_tokens", "64"])
    with pytest.raises(ConfigError, match=f"heldout.sources: .*{expected} shards"):
        run_grpo(recipe)
    assert not (tmp_path / "run").exists()  # refused before anything was written
