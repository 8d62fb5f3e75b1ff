"""SFT and merge on a tiny random Qwen3: learning, DoRA/rsLoRA adapter, labels, padding-free,
resume equivalence, unreadable checkpoints, merge equivalence, the command line."""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path

import pytest

from gazal.config import load_config
from gazal.data.sft_data import DataSource, load_source
from gazal.formatting import SYSTEM_PROMPT
from gazal.io import read_jsonl
from gazal.train.config import SFTRecipe
from gazal.train.sft import build_trainer, run_sft

ROOT = Path(__file__).resolve().parents[1]
DX = ["pneumonia", "appendicitis", "migraine", "gout", "asthma", "anemia", "stroke", "sepsis"]
FORMAT_TOKENS = "[<think>, </think>, <|im_end|>]"


def o1_rows() -> list[dict]:
    rows = []
    for i, d in enumerate(DX):
        opts = {"A": d, "B": DX[(i + 1) % 8], "C": DX[(i + 2) % 8], "D": DX[(i + 3) % 8]}
        rows.append({"question": f"A patient presents with classic signs of {d}. Diagnosis?",
                     "options": opts, "answer_idx": "A", "answer": d,
                     "Question": f"Classic signs of {d}: diagnosis?",
                     "Complex_CoT": f"The signs are classic for {d}.\n\nOther options do not "
                                    "fit the picture.",
                     "Response": f"The findings indicate {d}."})
    return rows


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny random Qwen3 (1 layer, hidden 32) and an 8-row medical-o1 file."""
    from gazal.demo.tiny import build_tiny

    root = tmp_path_factory.mktemp("tiny")
    rows = o1_rows()
    data = root / "data.json"
    data.write_text(json.dumps(rows))
    texts = [SYSTEM_PROMPT] + [r["question"] + " " + r["Complex_CoT"] + " " + r["Response"]
                               for r in rows]
    model = build_tiny(root / "model", texts, vocab_size=400, hidden_size=32, num_layers=1,
                       intermediate_size=64, num_heads=2, num_kv_heads=1, head_dim=16)
    return {"model": model, "data": data, "root": root}


def _args(tiny, out, *extra: str) -> list[str]:
    return ["--output_dir", str(out), "--model.name_or_path", str(tiny["model"]),
            "--data.train", f"[{{path: {tiny['data']}}}]", "--sft.max_length", "512",
            "--lr", "2e-2", "--scheduler", "constant", "--warmup", "0", "--batch_size", "4",
            "--logging_steps", "1", "--save_steps", "100", "--lora.r", "8", "--lora.alpha",
            "16", "--lora.dropout", "0", *extra]


def recipe(tiny, out, *extra: str) -> SFTRecipe:
    return load_config(SFTRecipe, None, _args(tiny, out, *extra))


def quiet(*_args):
    pass


# --------------------------------------------------------------------------- learning


def test_loss_falls_and_the_adapter_is_dora_with_rslora_scaling(tiny, tmp_path):
    from peft import PeftModel
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM

    out = tmp_path / "run"
    summary = run_sft(recipe(tiny, out, "--max_steps", "30"), echo=quiet)
    metrics = read_jsonl(out / "metrics.jsonl")
    losses = [r["loss"] for r in metrics if "loss" in r]
    assert [r["step"] for r in metrics if "loss" in r] == list(range(1, 31))
    # fixed seed: the loss of the last five steps is well below that of the first five
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < first - 0.15, (first, last)
    assert summary["global_step"] == 30 and summary["complete"]
    assert (out / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "rejects.jsonl").read_text() == ""

    adapter = out / "adapter"
    with safe_open(str(adapter / "adapter_model.safetensors"), framework="pt") as f:
        keys = list(f.keys())
    magnitudes = [k for k in keys if "lora_magnitude_vector" in k]
    lora_a = [k for k in keys if "lora_A" in k]
    assert magnitudes and len(magnitudes) == len(lora_a) == 7  # q,k,v,o,gate,up,down
    assert (adapter / "chat_template.jinja").exists() or \
        "chat_template" in json.loads((adapter / "tokenizer_config.json").read_text())
    base = AutoModelForCausalLM.from_pretrained(tiny["model"])
    model = PeftModel.from_pretrained(base, str(adapter))
    q = model.base_model.model.model.layers[0].self_attn.q_proj
    assert q.use_dora["default"] is True
    assert math.isclose(q.scaling["default"], 16 / math.sqrt(8))  # rsLoRA: alpha/sqrt(r)
    assert not math.isclose(q.scaling["default"], 16 / 8)

    # a finished run is reported, not retrained
    said = []
    again = run_sft(recipe(tiny, out, "--max_steps", "30"), echo=said.append)
    assert again["global_step"] == 30 and "finished run" in said[0]


# --------------------------------------------------------------------------- labels


def _trainer_for(tiny, tokenizer_dir, tmp_path, *extra):
    """An SFT trainer (not trained) on the tiny rows with the given tokenizer."""
    from transformers import AutoTokenizer

    from gazal.demo.tiny import build_model

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    model = build_model(tok, hidden_size=16, num_layers=1, num_heads=2, num_kv_heads=1,
                        head_dim=8, intermediate_size=32)
    cfg = recipe(tiny, tmp_path / "t", "--max_steps", "1", *extra)
    examples = load_source(DataSource(path=str(tiny["data"]))).examples[:3]
    return build_trainer(cfg, model, tok, examples, [], tmp_path / "t"), tok, examples


def _check_labels(trainer, tok, examples):
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    for row, ex in zip(trainer.train_dataset, examples, strict=True):
        ids, labels = row["input_ids"], row["labels"]
        first = next(i for i, label in enumerate(labels) if label != -100)
        assert all(label != -100 for label in labels[first:])  # one contiguous span
        prompt = tok.apply_chat_template(ex.messages[:-1], tokenize=False,
                                         add_generation_prompt=True)
        assert tok.decode(ids[:first]) == prompt  # everything before is masked
        trained = tok.decode(labels[first:])
        assert trained == ex.messages[-1]["content"] + "<|im_end|>\n"
        assert im_end in labels[first:]  # the end-of-turn token is learnt


def test_labels_cover_only_the_assistant_turn_and_its_end_of_turn(tiny, tmp_path):
    trainer, tok, examples = _trainer_for(tiny, tiny["model"], tmp_path)
    _check_labels(trainer, tok, examples)
    # without assistant-only loss every token is trained (the check above can fail)
    full, _, _ = _trainer_for(tiny, tiny["model"], tmp_path / "full",
                              "--sft.assistant_only_loss", "false")
    assert all(label != -100 for label in full.train_dataset[0]["labels"])


def test_labels_with_the_real_qwen3_chat_template(tiny, tmp_path, tokenizer_dir):
    from trl.chat_template_utils import has_generation_markers

    trainer, tok, examples = _trainer_for(tiny, tokenizer_dir, tmp_path)
    assert not has_generation_markers(tok.chat_template)  # why prompt-completion is used
    _check_labels(trainer, tok, examples)


def test_padding_free_batches_give_the_padded_loss(tiny, tmp_path):
    import torch
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    trainer, tok, _ = _trainer_for(tiny, tiny["model"], tmp_path)
    # cut the rows to different lengths so the padded batch really pads
    rows = [{k: r[k][: len(r[k]) - 40 * i] for k in ("input_ids", "labels")}
            for i, r in enumerate(trainer.train_dataset)]
    assert len({len(r["input_ids"]) for r in rows}) == 3
    model = trainer.model.eval()
    losses = {}
    for padding_free in (False, True):
        batch = DataCollatorForLanguageModeling(tok.pad_token_id,
                                                padding_free=padding_free)(rows)
        with torch.no_grad():
            losses[padding_free] = model(**batch, use_cache=False).loss.item()
    assert math.isclose(losses[False], losses[True], rel_tol=1e-5), losses


# --------------------------------------------------------------------------- resume


class CrashAt:
    """Raise at the end of optimizer step ``step`` (a crash after a checkpoint)."""

    def __new__(cls, step):
        from transformers import TrainerCallback

        class _Crash(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if state.global_step == step:
                    raise RuntimeError(f"simulated crash at step {step}")

        return _Crash()


def _tensors(path):
    from safetensors.torch import load_file

    return load_file(str(path / "adapter" / "adapter_model.safetensors"))


def test_interrupted_run_resumes_to_the_same_weights(tiny, tmp_path, caplog):
    import torch

    # dropout and trainable tokens make the check strict: RNG state and the token adapter
    # must come back from the checkpoint too.
    extra = ("--max_steps", "8", "--save_steps", "3", "--batch_size", "2", "--lora.dropout",
             "0.1", "--lora.trainable_tokens", FORMAT_TOKENS, "--scheduler", "cosine")
    whole = tmp_path / "whole"
    unbroken = run_sft(recipe(tiny, whole, *extra), echo=quiet)

    broken = tmp_path / "broken"
    with pytest.raises(RuntimeError, match="simulated crash at step 7"):
        run_sft(recipe(tiny, broken, *extra), callbacks=[CrashAt(7)], echo=quiet)
    assert sorted(p.name for p in (broken / "checkpoints").glob("checkpoint-*")) == \
        ["checkpoint-3", "checkpoint-6"]
    assert not (broken / "adapter").exists() and not (broken / "summary.json").exists()

    # a damaged newest checkpoint and a partial newer one (a kill mid-save: transformers
    # writes trainer_state.json last) are set aside with one log line each, temporaries of
    # killed writes are removed, and training resumes from the last complete checkpoint
    damaged = tmp_path / "damaged"
    shutil.copytree(broken, damaged)
    ckpts = damaged / "checkpoints"
    (ckpts / "checkpoint-6/adapter_model.safetensors").write_bytes(b"\0" * 64)
    shutil.copytree(ckpts / "checkpoint-3", ckpts / "checkpoint-7")
    (ckpts / "checkpoint-7/trainer_state.json").unlink()
    (damaged / ".rejects.jsonl.k3j2x9.tmp").write_text("torn")
    (damaged / ".adapter.tmp").mkdir()
    (damaged / ".adapter.tmp/adapter_model.safetensors").write_bytes(b"\0" * 8)
    with caplog.at_level(logging.WARNING, logger="gazal"):
        healed = run_sft(recipe(tiny, damaged, *extra), echo=quiet)
    set_aside = [r.getMessage() for r in caplog.records if "set it aside" in r.getMessage()]
    assert len(set_aside) == 2 and "no trainer_state.json" in set_aside[0]
    assert "adapter_model.safetensors cannot be read" in set_aside[1]
    assert healed["resumed_from"].endswith("checkpoint-3") and healed["global_step"] == 8
    assert sorted(p.name for p in (ckpts / ".partial").iterdir()) == \
        ["checkpoint-6", "checkpoint-7"]
    assert not list(damaged.glob(".*.tmp"))
    assert not (damaged / ".rejects.jsonl.k3j2x9.tmp").exists()
    for key, value in _tensors(whole).items():
        assert torch.allclose(value, _tensors(damaged)[key], rtol=0, atol=1e-6), key

    # the same recipe over changed data does not resume
    changed = tmp_path / "changed"
    shutil.copytree(broken, changed)
    rows = json.loads(tiny["data"].read_text())
    rows[0]["Response"] = "Something else entirely."
    other = tmp_path / "other.json"
    other.write_text(json.dumps(rows))
    from gazal.config import ConfigError

    saved = (changed / "config.yaml").read_text()
    (changed / "config.yaml").write_text(saved.replace(str(tiny["data"]), str(other)))
    with pytest.raises(ConfigError, match="the training data changed"):
        run_sft(load_config(SFTRecipe, None, [
            *_args(tiny, changed, *extra), "--data.train", f"[{{path: {other}}}]"]),
            echo=quiet)

    said = []
    summary = run_sft(recipe(tiny, broken, *extra), echo=said.append)
    assert any("resuming from" in s and s.endswith("checkpoint-6") for s in said)
    assert summary["resumed_from"].endswith("checkpoint-6") and summary["global_step"] == 8
    # train_loss covers every step, not only the two run after the resume
    assert math.isclose(summary["train_loss"], unbroken["train_loss"], rel_tol=1e-5)
    assert math.isclose(healed["train_loss"], unbroken["train_loss"], rel_tol=1e-5)
    a, b = _tensors(whole), _tensors(broken)
    assert a.keys() == b.keys() and any("trainable_tokens" in k for k in a)
    for key in a:
        assert torch.allclose(a[key], b[key], rtol=0, atol=1e-6), key
    # metrics: every step logged once, the resumed steps' losses match the whole run's
    steps = [r["step"] for r in read_jsonl(broken / "metrics.jsonl") if "loss" in r]
    assert steps == list(range(1, 9))
    la = [r["loss"] for r in read_jsonl(whole / "metrics.jsonl") if "loss" in r]
    lb = [r["loss"] for r in read_jsonl(broken / "metrics.jsonl") if "loss" in r]
    assert all(math.isclose(x, y, rel_tol=1e-5) for x, y in zip(la, lb, strict=True))


def test_resume_refuses_a_changed_recipe(tiny, tmp_path):
    from gazal.config import ConfigError

    out = tmp_path / "run"
    run_sft(recipe(tiny, out, "--max_steps", "2"), echo=quiet)
    with pytest.raises(ConfigError, match=r"lora\.r: 8 \(saved\) != 4 \(now\)"):
        run_sft(recipe(tiny, out, "--max_steps", "2", "--lora.r", "4"), echo=quiet)


# --------------------------------------------------------------------------- merge


def test_merge_reproduces_the_adapter_model_and_fails_closed(tiny, tmp_path, capsys):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from gazal.cli import main
    from gazal.train.merge import MergeVerificationError, merge_adapter, sample_inputs

    run = tmp_path / "run"
    run_sft(recipe(tiny, run, "--max_steps", "6", "--lora.trainable_tokens", FORMAT_TOKENS),
            echo=quiet)
    merged = tmp_path / "merged"
    assert main(["merge", "--adapter", str(run / "adapter"), "--out", str(merged)]) == 0
    assert "merged vs base+adapter: mean KL" in capsys.readouterr().out
    report = json.loads((merged / "merge_report.json").read_text())
    assert report["passed"] and report["max_abs_diff"] <= 1e-3 and report["kl_mean"] <= 1e-5
    assert report["argmax_agreement"] == 1.0
    assert (merged / "model.safetensors").exists() and (merged / "tokenizer.json").exists()
    tok = AutoTokenizer.from_pretrained(merged)
    assert tok.chat_template == AutoTokenizer.from_pretrained(run / "adapter").chat_template

    # the merge carried the training: merged logits differ from the base model's
    base = AutoModelForCausalLM.from_pretrained(tiny["model"]).eval()
    model = AutoModelForCausalLM.from_pretrained(merged).eval()
    batch = sample_inputs(tok, 2)
    with torch.no_grad():
        gap = (base(**batch).logits - model(**batch).logits).abs().max().item()
    assert gap > 10 * report["max_abs_diff"] and gap > 1e-3
    think = tok.convert_tokens_to_ids("<think>")
    assert not torch.equal(base.get_input_embeddings().weight[think],
                           model.get_input_embeddings().weight[think])

    # above the tolerance: an error, and nothing written
    failed = tmp_path / "failed"
    with pytest.raises(MergeVerificationError, match=r"max \|logit difference\| .* > "
                                                     r"tolerance 1e-12"):
        merge_adapter(run / "adapter", failed, tolerance=1e-12)
    assert not failed.exists() and not list(tmp_path.glob(".failed*"))
    with pytest.raises(MergeVerificationError, match=r"mean KL .* > max_kl 1e-30"):
        merge_adapter(run / "adapter", failed, max_kl=1e-30)
    assert not failed.exists()
    assert main(["merge", "--adapter", str(run / "adapter"), "--out", str(merged)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["merge", "--adapter", str(run / "adapter"), "--out", str(failed),
                 "--tolerance", "1e-12"]) == 1
    assert "FAILED" in capsys.readouterr().err and not failed.exists()


# --------------------------------------------------------------------------- command line


def test_sft_command_line(tiny, tmp_path, capsys):
    from gazal.cli import main

    rows = json.loads(tiny["data"].read_text())
    bad = tmp_path / "bad.json"
    rows[3]["Complex_CoT"] = 42
    bad.write_text(json.dumps(rows))
    cfg = tmp_path / "sft.yaml"
    cfg.write_text(f"output_dir: {tmp_path / 'run'}\nmodel: {{name_or_path: {tiny['model']}}}\n"
                   f"data: {{train: [{{path: {tiny['data']}}}]}}\nsft: {{max_length: 512}}\n"
                   "train: {max_steps: 2, learning_rate: 1.0e-3, logging_steps: 1}\n")
    assert main(["sft", str(cfg)]) == 0
    assert "done: step 2" in capsys.readouterr().out
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["global_step"] == 2
    # a malformed row stops the run before any weights load, naming the file and row
    assert main(["sft", str(cfg), "--out", str(tmp_path / "run2"), "--data.train",
                 f"[{{path: {bad}}}]"]) == 2
    assert f"{bad} row 4: field 'Complex_CoT': expected a string" in capsys.readouterr().err


def test_tokenizer_template_override_and_format_token_errors(tiny, tmp_path):
    from gazal.config import ConfigError
    from gazal.train.config import LoraSection, ModelConfig
    from gazal.train.model import build_lora_config, load_tokenizer

    template = tmp_path / "t.jinja"
    template.write_text("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    tok = load_tokenizer(ModelConfig(name_or_path=str(tiny["model"]),
                                     chat_template=str(template)))
    assert tok.chat_template == template.read_text()
    with pytest.raises(ConfigError, match=r"model\.chat_template: file not found"):
        load_tokenizer(ModelConfig(name_or_path=str(tiny["model"]),
                                   chat_template=str(tmp_path / "missing.jinja")))
    lora = build_lora_config(LoraSection(trainable_tokens=["<think>", "</think>"]), tok)
    assert lora.trainable_token_indices == sorted(tok.convert_tokens_to_ids(
        ["<think>", "</think>"]))
    with pytest.raises(ConfigError, match=r"'<answer>' is not a single token"):
        build_lora_config(LoraSection(trainable_tokens=["<answer>"]), tok)
