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
