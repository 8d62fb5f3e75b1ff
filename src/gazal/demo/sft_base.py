"""Build the tiny base model of the CPU SFT demo (``recipes/demo/sft.yaml``).

A random Qwen3-architecture model (:mod:`gazal.demo.tiny`) whose byte-level BPE tokenizer is
trained on the medical-o1 sample's text, so clinical words are few tokens and every demo
example fits ``sft.max_length``. ``<think>``/``</think>`` are added tokens the model never
trained on, which is what the recipe's ``lora.trainable_tokens`` is for.

    PYTHONPATH=src python -m gazal.demo.sft_base runs/demo/tiny-base [--data FILE]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from gazal.io import read_json

__all__ = ["build_sft_base", "corpus_from_sft_file", "default_sft_file"]


def default_sft_file() -> Path:
    """``$GAZAL_DATA_DIR/sft/medical_o1_demo.json`` (default data dir: ../shared/data)."""
    return Path(os.environ.get("GAZAL_DATA_DIR", "../shared/data")) / "sft" / \
        "medical_o1_demo.json"


def corpus_from_sft_file(path: str | Path) -> list[str]:
    """Every text field of a medical-o1 style JSON list (for tokenizer training)."""
    texts = []
    for row in read_json(path):
        for key in ("question", "Question", "Complex_CoT", "Response"):
            if isinstance(row.get(key), str):
                texts.append(row[key])
        if isinstance(row.get("options"), dict):
            texts.extend(str(v) for v in row["options"].values())
    return texts


def build_sft_base(out_dir: str | Path, data: str | Path | None = None, *,
                   vocab_size: int = 4096, seed: int = 0, **model_kwargs: Any) -> Path:
    """Build and save the demo's tiny base (tokenizer + model) into ``out_dir``."""
    from gazal.demo.tiny import build_tiny, default_corpus

    path = Path(data) if data else default_sft_file()
    texts = default_corpus() + (corpus_from_sft_file(path) if path.exists() else [])
    return build_tiny(out_dir, texts, vocab_size=vocab_size, seed=seed, **model_kwargs)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", help="output folder (e.g. runs/demo/tiny-base)")
    p.add_argument("--data", help="medical-o1 style JSON list to train the tokenizer on "
                                  "(default: $GAZAL_DATA_DIR/sft/medical_o1_demo.json)")
    p.add_argument("--vocab-size", type=int, default=4096)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    out = build_sft_base(args.out, args.data, vocab_size=args.vocab_size, seed=args.seed)
    print(f"tiny base written to {out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
