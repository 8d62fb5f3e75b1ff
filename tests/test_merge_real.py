"""The merge check on a real model's logit scale (SmolLM2-135M-Instruct): a correct bfloat16 merge
passes although single logits move by more than the former absolute bound, and a merge that
loses the adapter fails."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def real_adapter(smollm2_dir, tmp_path_factory):
    """A DoRA + rsLoRA adapter with a non-trivial update (random A and B, B scaled down)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path_factory.mktemp("real-merge") / "adapter"
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(
        r=8, lora_alpha=16, use_dora=True, use_rslora=True, target_modules="all-linear",
        init_lora_weights=False))
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.mul_(0.02)
    peft_model.save_pretrained(out)
    AutoTokenizer.from_pretrained(smollm2_dir).save_pretrained(out)
    return out


def test_a_correct_bf16_merge_of_a_real_model_passes(real_adapter, smollm2_dir, tmp_path):
    from gazal.train.merge import DEFAULT_MAX_KL, merge_adapter

    report = merge_adapter(real_adapter, tmp_path / "merged", base=str(smollm2_dir),
                           dtype="bfloat16", device="cpu")
    assert report.passed and (tmp_path / "merged" / "model.safetensors").is_file()
    assert report.max_abs_diff > 0.5  # the former absolute bound would have refused it
    assert report.logit_std > 1.0  # real logit scale, unlike the tiny test models
    assert report.kl_mean < DEFAULT_MAX_KL["bfloat16"] / 2


def test_a_merge_that_loses_the_adapter_fails(real_adapter, smollm2_dir, tmp_path, monkeypatch):
    from peft.tuners.tuners_utils import BaseTuner

    from gazal.train.merge import MergeVerificationError, merge_adapter

    # a broken merge: the adapter is dropped instead of folded into the weights
    monkeypatch.setattr(BaseTuner, "merge_and_unload", lambda self, **kw: self.unload())
    with pytest.raises(MergeVerificationError, match="mean KL"):
        merge_adapter(real_adapter, tmp_path / "merged", base=str(smollm2_dir),
                      dtype="bfloat16", device="cpu")
    assert not (tmp_path / "merged").exists()
