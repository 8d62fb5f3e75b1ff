"""THE model loader: a causal LM from a Hub id or a local folder, and adapters on top of it.

Every package that loads weights comes here (evaluation's hf and vllm backends, data
teachers, SFT, merge, GRPO), so every load follows one policy:

- safetensors only (``use_safetensors=True``): a pickle checkpoint (``*.bin``, ``*.pt``)
  of a model or an adapter is refused rather than unpickled, unless the caller passes
  ``allow_pickle`` (``gazal merge --allow-pickle``); vLLM gets ``load_format="safetensors"``;
- ``trust_remote_code`` off unless the caller turns it on;
- a folder or Hub id that cannot be loaded is a :class:`~gazal.config.ConfigError` naming
  the setting and the source;
- :func:`merge_adapter` folds a PEFT adapter (DoRA or LoRA) into the weights in memory with
  ``merge_and_unload()``: an unmerged DoRA layer recomputes its weight norm at every forward
  pass, i.e. at every decoded token (about 5x slower generation on CPU).

Heavy imports stay inside the functions so ``gazal --help`` is fast.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

from gazal.config import ConfigError

log = logging.getLogger("gazal")

__all__ = [
    "DtypeName",
    "adapter_base_mismatch",
    "check_local_source",
    "load_adapter_model",
    "load_causal_lm",
    "load_model",
    "load_tokenizer",
    "merge_adapter",
    "require_safetensors",
    "resolve_attn_implementation",
    "resolve_device",
    "resolve_dtype",
    "tokenizer_source",
    "torch_dtype",
]


def require_safetensors(folder: str | Path, setting: str, *, allow_pickle: bool = False,
                        stem: str = "", override: str = "") -> None:
    """Refuse a local ``folder`` whose weights are only pickles (``*.bin`` / ``*.pt``, which
    ``torch.load`` unpickles) unless ``allow_pickle``; ``stem`` narrows the check to one
    file family (``adapter_model``). A Hub id or a folder without weights is left alone
    (the loader says what is missing). ``override`` names the caller's flag that allows
    pickles, for the message."""
    path = Path(folder)
    if allow_pickle or not path.is_dir():
        return
    safe = list(path.glob(f"{stem}*.safetensors"))
    pickles = [p.name for p in path.glob(f"{stem}*.bin")] + \
        [p.name for p in path.glob(f"{stem}*.pt") if not stem]
    pickles = [n for n in pickles if n != "training_args.bin"]  # trainer settings, not weights
    if pickles and not safe:
        raise ConfigError(
            f"{setting}: cannot load {'an adapter from' if stem else 'model'} {str(path)!r}: "
            f"only pickle weights ({', '.join(sorted(pickles)[:3])}); gazal loads "
            "safetensors only, since unpickling can run code. Convert them (load "
            "and save_pretrained(..., safe_serialization=True))"
            + (f", or pass {override} if you trust the files" if override else ""))

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json",
                    "vocab.txt", "spiece.model")


def check_local_source(source: str | Path, setting: str, *, tokenizer: bool = False) -> None:
    """Name the real cause when ``source`` is a local path that cannot be a model (or, with
    ``tokenizer``, a tokenizer): transformers reports a missing folder as an invalid Hub repo
    id and a folder without tokenizer files in other words. A Hub id is ``name`` or
    ``namespace/name``, so anything with more slashes, or starting with ``/``, ``.`` or
    ``~``, is a path."""
    text = str(source)
    path = Path(text).expanduser()
    local = path.exists() or text.startswith(("/", ".", "~")) or text.count("/") >= 2
    if not local:
        return
    what = f"cannot load {'a tokenizer from' if tokenizer else 'model'} {text!r}"
    if not path.exists():
        raise ConfigError(f"{setting}: {what}: no such local folder")
    if not path.is_dir():
        raise ConfigError(f"{setting}: {what}: it is a file; give the model's folder")
    if tokenizer and not any((path / f).is_file() for f in _TOKENIZER_FILES):
        raise ConfigError(f"{setting}: {what}: the folder holds no tokenizer (none of "
                          f"{', '.join(_TOKENIZER_FILES)}); point the tokenizer setting at "
                          "a folder that has one")


DtypeName = Literal["auto", "float32", "bfloat16", "float16"]


def torch_dtype(name: str) -> Any:
    """``torch.dtype`` of a config name; ``'auto'`` passes through (the checkpoint's dtype)."""
    import torch

    if name == "auto":
        return "auto"
    try:
        return {"float32": torch.float32, "bfloat16": torch.bfloat16,
                "float16": torch.float16}[name]
    except KeyError:
        raise ConfigError(f"unknown dtype {name!r}; expected auto, float32, bfloat16 or "
                          "float16") from None


def resolve_device(device: str = "auto") -> Any:
    """``auto`` is the first CUDA device when there is one, else the CPU. A device that does
    not exist here (``cuda`` without CUDA, ``cuda:3`` on a 2-GPU machine, a misspelling) is a
    :class:`~gazal.config.ConfigError`, not a crash at the first tensor moved."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise ConfigError(f"device: {device!r} is not a device (cpu, cuda, cuda:1, mps, "
                          "...)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device: {device!r} asked for, but CUDA is not available on "
                              "this machine (use cpu or auto)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"device: {device!r} asked for, but this machine has "
                              f"{torch.cuda.device_count()} CUDA device(s)")
    return dev


def resolve_dtype(dtype: DtypeName | str, device: Any) -> Any:
    """Generation's ``auto``: float32 on CPU (bf16 matmuls are slow and lossy there),
    bfloat16 on GPU."""
    import torch

    if dtype == "auto":
        return torch.float32 if device.type == "cpu" else torch.bfloat16
    return torch_dtype(dtype)


_ATTN_SAID: set[str] = set()


def resolve_attn_implementation(name: str | None) -> str | None:
    """``'auto'``: ``flash_attention_2`` when the ``flash_attn`` package is importable and a
    CUDA device is present, else ``sdpa`` (said once in the log). transformers itself raises
    at ``from_pretrained`` when flash-attention is asked for and missing (its Hub-kernel
    fallback needs internet), so recipes that want it on GPUs say ``auto``. Other values pass
    through; None is transformers' default (sdpa)."""
    if name != "auto":
        return name
    import importlib.util

    import torch

    flash = importlib.util.find_spec("flash_attn") is not None and torch.cuda.is_available()
    chosen = "flash_attention_2" if flash else "sdpa"
    if chosen not in _ATTN_SAID:
        _ATTN_SAID.add(chosen)
        log.info("attn_implementation auto: %s (%s)", chosen,
                 "flash_attn is installed and CUDA is present" if flash else
                 "flash_attn is not installed" if torch.cuda.is_available() else "no CUDA device")
    return chosen


def load_causal_lm(source: str | Path, *, dtype: Any = "auto", revision: str | None = None,
                   trust_remote_code: bool = False, attn_implementation: str | None = None,
                   device_map: Any = None, setting: str = "model",
                   allow_pickle: bool = False) -> Any:
    """``AutoModelForCausalLM.from_pretrained`` under gazal's policy (module docstring).

    ``dtype`` is a ``torch.dtype`` or ``'auto'``; ``setting`` names the config key the source
    came from, for the error message.
    """
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": dtype, "trust_remote_code": trust_remote_code,
                              "use_safetensors": None if allow_pickle else True}
    if revision is not None:
        kwargs["revision"] = revision
    attn = resolve_attn_implementation(attn_implementation)
    if attn:
        kwargs["attn_implementation"] = attn
    if device_map is not None:
        kwargs["device_map"] = device_map
    check_local_source(source, setting)
    require_safetensors(source, setting, allow_pickle=allow_pickle)
    try:
        return AutoModelForCausalLM.from_pretrained(str(source), **kwargs)
    except OSError as err:  # missing folder, no safetensors weights, unknown Hub id, offline
        raise ConfigError(f"{setting}: cannot load model {str(source)!r}: {err}") from None


def adapter_base_mismatch(adapter_dir: str | Path, base_name: str | None) -> str | None:
    """A warning when the adapter in ``adapter_dir`` was trained on another base than
    ``base_name`` (``base_model_name_or_path`` in its ``adapter_config.json``), else None.

    Two local folders are compared by their resolved paths and two Hub ids by name; a Hub id
    against a local folder (a downloaded snapshot, say) cannot be told apart and passes. An
    adapter on the wrong base with the same shapes loads without an error and gives wrong
    answers, hence the warning.
    """
    import json

    try:
        cfg = json.loads((Path(adapter_dir) / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    trained = cfg.get("base_model_name_or_path") if isinstance(cfg, dict) else None
    if not trained or not base_name:
        return None
    a, b = Path(str(trained)).expanduser(), Path(str(base_name)).expanduser()
    if a.exists() and b.exists():
        same = a.resolve() == b.resolve()
    elif not a.exists() and not b.exists():
        same = str(trained).rstrip("/") == str(base_name).rstrip("/")
    else:
        return None
    if same:
        return None
    return (f"{adapter_dir} was trained on {trained!r} but is loaded onto {base_name!r}; "
            "an adapter only fits the base it was trained on (same shapes load silently and "
            "give wrong answers)")


def load_adapter_model(base: Any, adapter_dir: str | Path, *, is_trainable: bool = False,
                       overrides: dict[str, Any] | None = None,
                       allow_pickle: bool = False, override: str = "") -> Any:
    """``PeftModel`` of ``base`` with the adapter saved in ``adapter_dir``; ``overrides`` set
    fields of the saved adapter config first (e.g. ``{"lora_dropout": 0.0}``). An adapter
    saved only as ``adapter_model.bin`` is refused unless ``allow_pickle``."""
    from peft import PeftConfig, PeftModel

    adapter_dir = Path(adapter_dir)
    if not (adapter_dir / "adapter_config.json").is_file():
        raise ConfigError(f"{adapter_dir}: not a PEFT adapter folder (no adapter_config.json)")
    require_safetensors(adapter_dir, "adapter", allow_pickle=allow_pickle, stem="adapter_model",
                        override=override)
    mismatch = adapter_base_mismatch(
        adapter_dir, getattr(getattr(base, "config", None), "_name_or_path", None))
    if mismatch:
        log.warning("%s", mismatch)
    config = None
    if overrides:
        config = PeftConfig.from_pretrained(str(adapter_dir))
        for key, value in overrides.items():
            if not hasattr(config, key):
                raise ConfigError(f"{adapter_dir}: the adapter config has no field {key!r}")
            setattr(config, key, value)
    return PeftModel.from_pretrained(base, str(adapter_dir), is_trainable=is_trainable,
                                     config=config)


def merge_adapter(model: Any, adapter: str | Path) -> Any:
    """Load a PEFT adapter (DoRA or LoRA) onto ``model`` and merge it into the weights.

    Returns a plain transformers model holding ``W + delta`` (DoRA: the magnitude-scaled
    direction), so generation costs what the base model costs.
    """
    merged = load_adapter_model(model, adapter).merge_and_unload()
    log.info("merged adapter %s into the model weights", adapter)
    return merged


def load_model(model: str | Path, *, adapter: str | Path | None = None, dtype: str = "auto",
               device: str = "auto", trust_remote_code: bool = False,
               attn_implementation: str | None = None) -> Any:
    """A model ready to generate: loaded (dtype ``auto`` = :func:`resolve_dtype`), placed on
    ``device``, ``adapter`` merged into it, in eval mode."""
    dev = resolve_device(device)
    lm = load_causal_lm(model, dtype=resolve_dtype(dtype, dev),
                        trust_remote_code=trust_remote_code,
                        attn_implementation=attn_implementation,
                        # load straight onto the GPU
                        device_map=str(dev) if dev.type != "cpu" else None)
    if dev.type == "cpu":
        lm.to(dev)
    if adapter:
        lm = merge_adapter(lm, adapter)
    return lm.eval()


def tokenizer_source(model: str | Path, adapter: str | Path | None = None,
                     tokenizer: str | Path | None = None) -> str:
    """Where the tokenizer comes from: ``tokenizer`` if given, else the adapter folder when it
    holds one (SFT saves its chat template there), else the model."""
    if tokenizer:
        return str(tokenizer)
    if adapter and (Path(adapter) / "tokenizer_config.json").exists():
        return str(adapter)
    return str(model)


def load_tokenizer(model: str | Path, *, adapter: str | Path | None = None,
                   tokenizer: str | Path | None = None, trust_remote_code: bool = False) -> Any:
    """The generation tokenizer from :func:`tokenizer_source`, padding on the left."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_source(model, adapter, tokenizer),
                                        trust_remote_code=trust_remote_code)
    tok.padding_side = "left"
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok
