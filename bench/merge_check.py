"""The merge check's criterion on a real model: correct merges vs wrong ones, float32 and bf16.

SmolLM2-135M-Instruct (``gazal model fetch``; its logits have the scale of a trained model,
std ~4.6) gets a DoRA + rsLoRA adapter with a non-trivial update (r 8, alpha 16, every linear
layer, random A and B with B scaled by 0.02, seed 0). For each dtype the unmerged PEFT model's
logits on ``gazal.train.merge.sample_inputs`` are the reference; against them, side by side:

- ``correct``: PEFT's ``merge_and_unload()``, what ``gazal merge`` does;
- ``no_rslora``: merged with the adapter read as plain-scaled LoRA (alpha/r, not alpha/sqrt(r));
- ``no_dora``: merged with the adapter read as LoRA (the magnitude vector ignored);
- ``one_module_lost``: the adapter of one module (layer 29's down_proj) zeroed before merging.

Prints, per case: max |logit difference|, logit std, mean / max KL(reference || merged) per
token, argmax agreement, and whether the default criterion (mean KL <= DEFAULT_MAX_KL) and
the former absolute one (max |logit difference| <= 1e-3 float32 / 0.5 bf16) pass.

    PYTHONPATH=src python bench/merge_check.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path


def main() -> None:
    import torch
    from peft import LoraConfig, PeftConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from gazal.generation.model_cache import ensure_model
    from gazal.train.merge import DEFAULT_MAX_KL, _logits, logit_drift, sample_inputs

    base = ensure_model(install=True)
    former = {"float32": 1e-3, "bfloat16": 0.5}
    with tempfile.TemporaryDirectory() as tmp:
        adapter = Path(tmp) / "adapter"
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
        peft_model = get_peft_model(model, LoraConfig(
            r=8, lora_alpha=16, use_dora=True, use_rslora=True, target_modules="all-linear",
            init_lora_weights=False))
        with torch.no_grad():
            for name, p in peft_model.named_parameters():
                if "lora_B" in name:
                    p.mul_(0.02)
        peft_model.save_pretrained(adapter)
        tok = AutoTokenizer.from_pretrained(base)
        batch = sample_inputs(tok, 4)
        mask = batch["attention_mask"].bool()
        print(f"{'dtype':9} {'case':16} {'max|d|':>8} {'std':>6} {'KL mean':>9} {'KL max':>9} "
              f"{'argmax':>7}  KL-criterion  former-absolute")
        for dtype_name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
            def fresh(config=None, dtype=dtype):
                m = AutoModelForCausalLM.from_pretrained(base, dtype=dtype)
                return PeftModel.from_pretrained(m, str(adapter), config=config).eval()

            reference = _logits(fresh(), batch)
            cases = {"correct": fresh().merge_and_unload()}
            for case, field in (("no_rslora", "use_rslora"), ("no_dora", "use_dora")):
                config = PeftConfig.from_pretrained(str(adapter))
                setattr(config, field, False)
                cases[case] = fresh(config).merge_and_unload()
            lost = fresh()
            with torch.no_grad():
                for name, p in lost.named_parameters():
                    if "layers.29.mlp.down_proj.lora_B" in name:
                        p.zero_()
            cases["one_module_lost"] = lost.merge_and_unload()
            for case, merged in cases.items():
                d = logit_drift(reference, _logits(merged, batch), mask)
                ok_kl = d["kl_mean"] <= DEFAULT_MAX_KL[dtype_name]
                ok_abs = d["max_abs_diff"] <= former[dtype_name]
                print(f"{dtype_name:9} {case:16} {d['max_abs_diff']:8.3g} {d['logit_std']:6.2f} "
                      f"{d['kl_mean']:9.2g} {d['kl_max']:9.2g} {d['argmax_agreement']:7.1%}  "
                      f"{'pass' if ok_kl else 'FAIL':12}  {'pass' if ok_abs else 'FAIL'}")


if __name__ == "__main__":
    main()
