"""``gazal merge``: fold a (DoRA) adapter into its base model and prove the result equivalent.

Steps:

1. load the base (safetensors, ``trust_remote_code`` off unless asked) and the adapter;
2. compute the logits of the *unmerged* model on sample inputs (chat-formatted clinical
   questions with reasoning-format answers, the kind of text the model will see);
3. ``merge_and_unload()`` and save weights (safetensors), tokenizer and chat template into
   a temporary folder beside ``--out``;
4. reload the saved folder and compute the logits again: what is checked is the artefact
   GRPO and serving will load, serialisation included;
5. if the merged model's next-token distributions drift from the adapter model's by more
   than the criterion below, delete the temporary folder and fail; otherwise write
   ``merge_report.json`` and rename the folder to ``--out``. Nothing half-written is ever left
   at ``--out``.

The criterion is relative to what the logits mean, not an absolute logit difference: the mean
over real tokens of ``KL(adapter model || merged model)`` (nats per token) must not exceed
``max_kl``. An absolute bound cannot serve every model: merging rounds every merged weight to
the dtype (bfloat16 keeps 8 significant bits) while the unmerged model adds the adapter's
update to the base output before rounding, and the resulting logit differences grow with the
model's logit scale. Measured on SmolLM2-135M-Instruct (logit std 4.6) with a DoRA + rsLoRA
adapter (``bench/merge_check.py``, BENCHMARKS.md): a correct bfloat16 merge differs by up to
2.56 in a logit (the former absolute 0.5 refused it) but by a mean KL of 0.010; a merge that
drops DoRA differs by a mean KL of 6.7. Defaults: float32 ``1e-5`` (a correct merge: 1e-7; a
merge missing one module's adapter: 1.3e-4, refused), bfloat16 / float16 ``0.05``, which
catches gross errors (DoRA or the adapter lost) but not every small one: bfloat16's own
rounding (KL 0.010) hides those, so use float32 for a tight check. ``tolerance`` adds an
absolute bound on ``max |logit difference|`` when given.

``--force`` replaces an existing ``--out`` only once the new folder is complete: the old one
is renamed aside (``.OUT.old-PID``), the new one renamed in, then the old one removed. The
next merge into the same ``--out`` repairs what a kill left: a temporary ``.OUT.tmp-PID``
folder of a dead process is removed, and an ``.OUT.old-PID`` is put back when ``--out`` is
missing (the kill fell between the two renames) or removed otherwise.
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

__all__ = ["DEFAULT_MAX_KL", "MergeReport", "MergeVerificationError", "logit_drift",
           "merge_adapter", "repair_interrupted_merge", "replace_folder", "sample_inputs"]

# Mean KL(adapter model || merged model) per token, nats (module docstring: measured values).
DEFAULT_MAX_KL = {"float32": 1e-5, "bfloat16": 0.05, "float16": 0.05}


class MergeVerificationError(RuntimeError):
    """The merged model's predictions drift from the adapter model's beyond the criterion."""


@dataclass
class MergeReport:
    """What was merged and how closely the merged model reproduces the adapter model."""

    base: str
    adapter: str
    out: str
    dtype: str
    max_kl: float  # the criterion: mean KL per token may not exceed it
    tolerance: float | None  # optional absolute bound on max_abs_diff
    kl_mean: float
    kl_max: float
    logit_std: float  # of the adapter model's logits: the scale max_abs_diff is read against
    max_abs_diff: float
    mean_abs_diff: float
    argmax_agreement: float
    n_tokens: int
    passed: bool


def logit_drift(reference: Any, merged: Any, mask: Any) -> dict[str, float]:
    """How far ``merged`` logits are from ``reference`` over the tokens in ``mask``: mean and
    max ``KL(reference || merged)`` of the next-token distributions (nats), max and mean
    ``|logit difference|``, the reference logits' std and the argmax agreement."""
    import torch

    ref, new = reference.float()[mask], merged.float()[mask]
    log_p, log_q = torch.log_softmax(ref, -1), torch.log_softmax(new, -1)
    kl = (log_p.exp() * (log_p - log_q)).sum(-1).clamp_min(0.0)
    diff = (new - ref).abs()
    return {"kl_mean": float(kl.mean()), "kl_max": float(kl.max()),
            "logit_std": float(ref.std()), "max_abs_diff": float(diff.max()),
            "mean_abs_diff": float(diff.mean()),
            "argmax_agreement": float((ref.argmax(-1) == new.argmax(-1)).float().mean()),
            "n_tokens": int(mask.sum())}


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
                  max_kl: float | None = None, trust_remote_code: bool = False,
                  device: str = "auto", force: bool = False, n_samples: int = 4,
                  allow_pickle: bool = False) -> MergeReport:
    """Merge ``adapter`` into ``base`` and save to ``out`` (see the module docstring).

    Raises :class:`MergeVerificationError` (nothing written) when the check fails.
    """
    adapter_dir, out = Path(adapter), Path(out)
    if n_samples < 1:
        raise ConfigError(f"--samples must be >= 1 (the check needs inputs), got {n_samples}")
    if tolerance is not None and not tolerance >= 0:
        raise ConfigError(f"--tolerance must be >= 0, got {tolerance}")
    if max_kl is not None and max_kl < 0:
        raise ConfigError(f"--max-kl must be >= 0 (a KL divergence), got {max_kl}")
    repair_interrupted_merge(out)
    if out.exists() and not force:
        raise ConfigError(f"{out} already exists; choose a new --out folder or pass --force")
    base_name = base or _read_adapter_base(adapter_dir)
    kl_bound = DEFAULT_MAX_KL[dtype] if max_kl is None else max_kl
    # before the base loads: a pickle-only adapter is refused in a second, not after minutes
    require_safetensors(adapter_dir, "adapter", allow_pickle=allow_pickle, stem="adapter_model",
                        override="--allow-pickle")
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
        drift = logit_drift(reference, merged_logits, batch["attention_mask"].bool())
        passed = drift["kl_mean"] <= kl_bound and (tolerance is None
                                                   or drift["max_abs_diff"] <= tolerance)
        report = MergeReport(base=base_name, adapter=str(adapter_dir), out=str(out),
                             dtype=dtype, max_kl=kl_bound, tolerance=tolerance, **drift,
                             passed=passed)
        if not report.passed:
            bound = (f"mean KL {report.kl_mean:.3g} > max_kl {kl_bound:g}"
                     if report.kl_mean > kl_bound else
                     f"max |logit difference| {report.max_abs_diff:.3g} > tolerance "
                     f"{tolerance:g}")
            raise MergeVerificationError(
                f"merged model differs from base+adapter: {bound} (max |logit difference| "
                f"{report.max_abs_diff:.3g} at logit std {report.logit_std:.3g}, argmax "
                f"agreement {report.argmax_agreement:.1%}); nothing was written to {out}")
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
