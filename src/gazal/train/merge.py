"""``gazal merge``: fold a (DoRA) adapter into its base model and prove the result equivalent.

Steps:

1. load the base (safetensors, ``trust_remote_code`` off unless asked) and the adapter;
2. compute the logits of the *unmerged* model on sample inputs (chat-formatted clinical
   questions with reasoning-format answers, the kind of text the model will see);
3. ``merge_and_unload()`` and save weights (safetensors), tokenizer and chat template into
   a temporary folder beside ``--out``;
4. reload the saved folder and compute the logits again: what is checked is the artefact
   GRPO and serving will load, serialisation included;
5. if ``max |logit difference|`` over every real token exceeds the tolerance, delete the
   temporary folder and fail; otherwise write ``merge_report.json`` and rename the folder
   to ``--out``. Nothing half-written is ever left at ``--out``.

``--force`` replaces an existing ``--out`` only once the new folder is complete: the old one
is renamed aside (``.OUT.old-PID``), the new one renamed in, then the old one removed. The
next merge into the same ``--out`` repairs what a kill left: a temporary ``.OUT.tmp-PID``
folder of a dead process is removed, and an ``.OUT.old-PID`` is put back when ``--out`` is
missing (the kill fell between the two renames) or removed otherwise.

Default tolerances (absolute, on logits): float32 ``1e-3``; bfloat16 and float16 ``0.5``,
because merging rounds every merged weight to the dtype's precision (bfloat16 keeps 8
significant bits, a relative error of up to 2^-9 per weight) while the unmerged model adds
the adapter's update to the base output before rounding. Use float32 for a tight check.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gazal.config import ConfigError
from gazal.generation.loading import load_adapter_model, require_safetensors, resolve_device
from gazal.io import atomic_write_json, repair_replaced_folder, replace_folder
from gazal.train.config import ModelConfig
from gazal.train.model import load_model_and_tokenizer

log = logging.getLogger("gazal")

__all__ = ["DEFAULT_TOLERANCE", "MergeReport", "MergeVerificationError", "merge_adapter",
           "repair_interrupted_merge", "replace_folder", "sample_inputs"]

DEFAULT_TOLERANCE = {"float32": 1e-3, "bfloat16": 0.5, "float16": 0.5}


class MergeVerificationError(RuntimeError):
    """The merged model's logits differ from the adapter model's by more than the tolerance."""


@dataclass
class MergeReport:
    """What was merged and how closely the merged model reproduces the adapter model."""

    base: str
    adapter: str
    out: str
    dtype: str
    tolerance: float
    max_abs_diff: float
    mean_abs_diff: float
    argmax_agreement: float
    n_tokens: int
    passed: bool


def sample_inputs(tokenizer: Any, n: int = 4) -> dict[str, Any]:
    """A padded batch of ``n`` chat-formatted clinical questions with reasoning answers."""
    from gazal.benchmarks.builtin import builtin_items
    from gazal.formatting import build_messages, render_assistant

    texts = []
    items = builtin_items()
    for i in range(n):
        item = items[i % len(items)]
        reply = render_assistant([f"The key finding points to {item.answer_text}.",
                                  "Compare it with each option."],
                                 "It fits best.", item.answer, item.answer_text)
        messages = [*build_messages(item), {"role": "assistant", "content": reply}]
        texts.append(tokenizer.apply_chat_template(messages, tokenize=False))
    pad_side = tokenizer.padding_side
    tokenizer.padding_side = "right"
    try:
        return tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    finally:
        tokenizer.padding_side = pad_side


def _logits(model: Any, batch: dict[str, Any]) -> Any:
    import torch

    device = next(model.parameters()).device
    with torch.no_grad():
        out = model(**{k: v.to(device) for k, v in batch.items()}, use_cache=False)
    return out.logits.float().cpu()


def _read_adapter_base(adapter_dir: Path) -> str:
    path = adapter_dir / "adapter_config.json"
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{adapter_dir}: not a PEFT adapter folder (no adapter_config.json)"
                          ) from None
    base = cfg.get("base_model_name_or_path")
    if not base:
        raise ConfigError(f"{path} names no base model; pass --base")
    return base


def merge_adapter(adapter: str | Path, out: str | Path, *, base: str | None = None,
                  dtype: str = "float32", tolerance: float | None = None,
                  trust_remote_code: bool = False, device: str = "auto",
                  force: bool = False, n_samples: int = 4,
                  allow_pickle: bool = False) -> MergeReport:
    """Merge ``adapter`` into ``base`` and save to ``out`` (see the module docstring).

    Raises :class:`MergeVerificationError` (nothing written) when the check fails.
    """
    adapter_dir, out = Path(adapter), Path(out)
    if n_samples < 1:
        raise ConfigError(f"--samples must be >= 1 (the check needs inputs), got {n_samples}")
    if tolerance is not None and not tolerance >= 0:
        raise ConfigError(f"--tolerance must be >= 0, got {tolerance}")
    repair_interrupted_merge(out)
    if out.exists() and not force:
        raise ConfigError(f"{out} already exists; choose a new --out folder or pass --force")
    base_name = base or _read_adapter_base(adapter_dir)
    # before the base loads: a pickle-only adapter is refused in a second, not after minutes
    require_safetensors(adapter_dir, "adapter", allow_pickle=allow_pickle, stem="adapter_model",
                        override="--allow-pickle")
    tol = DEFAULT_TOLERANCE[dtype] if tolerance is None else tolerance
    has_tokenizer = any((adapter_dir / f).exists()
                        for f in ("tokenizer.json", "tokenizer_config.json"))
    cfg = ModelConfig(name_or_path=base_name, dtype=dtype, trust_remote_code=trust_remote_code,
                      tokenizer=str(adapter_dir) if has_tokenizer else None)
    device = str(resolve_device(device))  # a device this machine lacks is a ConfigError

    model, tok = load_model_and_tokenizer(cfg)
    model.to(device)
    peft_model = load_adapter_model(model, adapter_dir, allow_pickle=allow_pickle,
                                    override="--allow-pickle")
    peft_model.eval()
    batch = sample_inputs(tok, n_samples)
    reference = _logits(peft_model, batch)
    merged = peft_model.merge_and_unload()

    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        merged.save_pretrained(str(tmp), safe_serialization=True)
        tok.save_pretrained(str(tmp))
        del merged, peft_model, model
        gc.collect()
        reloaded, _ = load_model_and_tokenizer(
            ModelConfig(name_or_path=str(tmp), dtype=dtype,
                        trust_remote_code=trust_remote_code))
        reloaded.to(device)
        reloaded.eval()
        merged_logits = _logits(reloaded, batch)
        del reloaded
        mask = batch["attention_mask"].bool()
        diff = (merged_logits - reference).abs()[mask]
        agree = (merged_logits.argmax(-1) == reference.argmax(-1))[mask].float().mean().item()
        max_diff = float(diff.max().item())
        report = MergeReport(base=base_name, adapter=str(adapter_dir), out=str(out),
                             dtype=dtype, tolerance=tol, max_abs_diff=max_diff,
                             mean_abs_diff=float(diff.mean().item()),
                             argmax_agreement=agree, n_tokens=int(mask.sum().item()),
                             passed=max_diff <= tol)
        if not report.passed:
            raise MergeVerificationError(
                f"merged model differs from base+adapter: max |logit difference| "
                f"{max_diff:.3g} > tolerance {tol:g} (mean {report.mean_abs_diff:.3g}, "
                f"argmax agreement {agree:.1%}); nothing was written to {out}")
        atomic_write_json(tmp / "merge_report.json", asdict(report))
        replace_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return report


def repair_interrupted_merge(out: Path) -> None:
    """Undo what a killed merge into ``out`` left beside it (see the module docstring and
    :func:`gazal.io.repair_replaced_folder`)."""
    repair_replaced_folder(out, "merge")
