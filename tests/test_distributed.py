"""A real 2-process data-parallel SFT run on CPU (gloo), launched with ``accelerate launch``.

Checks that the training is data parallel (each optimizer step consumes both processes'
batches), that both ranks end with identical weights equal to the saved adapter, that only
rank 0 prints and writes, and that a crash after a checkpoint resumes under DDP to the same
adapter as an uninterrupted run. About 40 s; deselect with ``-m "not distributed"``.
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
        "adapter", "checkpoints", "config.yaml", "data_fingerprint.json", "loss_curve.png",
        "metrics.jsonl", "rejects.jsonl", "summary.json"]

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
