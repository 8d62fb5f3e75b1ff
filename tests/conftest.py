"""Shared fixtures. Tests are CPU-only and build what they need in tmp dirs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

DATA_DIR = os.environ.get("GAZAL_DATA_DIR")


@pytest.fixture
def data_dir() -> Path:
    """The real benchmark files (``$GAZAL_DATA_DIR``); skips when absent."""
    if not DATA_DIR or not Path(DATA_DIR, "benchmarks").is_dir():
        pytest.skip("GAZAL_DATA_DIR is not set or has no benchmarks/ (integration test)")
    return Path(DATA_DIR)


@pytest.fixture
def tokenizer_dir() -> Path:
    """The real Qwen3 tokenizer (``../shared/assets/qwen3-tokenizer``); skips when absent."""
    candidates = [Path(os.environ.get("GAZAL_ASSETS_DIR", "")) / "qwen3-tokenizer"]
    if DATA_DIR:
        candidates.append(Path(DATA_DIR).parent / "assets" / "qwen3-tokenizer")
    for c in candidates:
        if (c / "tokenizer.json").exists():
            return c
    pytest.skip("the Qwen3 tokenizer assets are not available (set GAZAL_DATA_DIR)")


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module's training tests: the tiny models gain nothing from two,
    and on a shared 2-core machine two threads contend (the same test ran 20-30x slower)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def toy_task_files(tmp_path) -> tuple[Path, Path]:
    """The demo's toy task questions as the demo passes them to GRPO: ``rl.jsonl`` (training
    phrasings, one question per condition and phrasing) and ``heldout.jsonl`` (Items)."""
    from gazal.demo.task import build_questions
    from gazal.io import atomic_write_jsonl

    paths = tmp_path / "task" / "rl.jsonl", tmp_path / "task" / "heldout.jsonl"
    for path, split in zip(paths, ("train", "heldout"), strict=True):
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_jsonl(path, [q.item.to_dict() for q in build_questions(split, seed=0)])
    return paths


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """SmolLM2-135M-Instruct as a safetensors folder (``gazal model fetch``; converted once into
    ``$GAZAL_CACHE``); skips when its wheel is not installed (``make venv`` installs it)."""
    from gazal.generation.model_cache import ModelUnavailableError, ensure_model

    try:
        return ensure_model("smollm2-135m-instruct")
    except ModelUnavailableError as err:
        pytest.skip(f"the real model is not available: {err}")
