"""Bad inputs over the command line, table-driven: each must end in one line naming the
file, key or value and the cause, exit status 2, and no Python traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gazal.cli import main

ROOT = Path(__file__).resolve().parents[1]
SFT = str(ROOT / "recipes" / "demo" / "sft.yaml")
GRPO = str(ROOT / "recipes" / "demo" / "grpo.yaml")
SYNTH = str(ROOT / "recipes" / "gazal-r1-32b" / "data.yaml")


def _files(tmp: Path) -> None:
    (tmp / "latin1.yaml").write_bytes(b"output_dir: x\nmodel:\n  name_or_path: caf\xe9\n")
    (tmp / "folder").mkdir()
    adapter = tmp / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps(
        {"base_model_name_or_path": str(tmp / "no-base")}))
    pickled = tmp / "pickled"
    pickled.mkdir()
    (pickled / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "x"}))
    (pickled / "adapter_model.bin").write_bytes(b"\x80\x04pickle")
    (tmp / "p.yaml").write_text(f"output_dir: {tmp}/prun\nstages: [{{name: r, kind: report}}]\n")
    run = tmp / "run"
    run.mkdir()
    (run / "pipeline.json").write_text(json.dumps({"stages": [{"name": "../../x"}]}))


CASES = [
    ("non-UTF-8 recipe", ["sft", "{tmp}/latin1.yaml"], r"latin1\.yaml:3: not UTF-8 text"),
    ("recipe is a folder", ["sft", "{tmp}/folder"], r"folder: is a folder"),
    ("sft lora.r 0", ["sft", SFT, "--lora.r", "0", "--output_dir", "{tmp}/o"],
     r"lora\.r must be >= 1, got 0"),
    ("grpo lora.r 0", ["grpo", GRPO, "--lora.r", "0", "--output_dir", "{tmp}/o"],
     r"lora\.r must be >= 1, got 0"),
    ("sft lora.dropout 1", ["sft", SFT, "--lora.dropout", "1", "--output_dir", "{tmp}/o"],
     r"lora\.dropout must be in \[0, 1\)"),
    ("missing local model", ["sft", SFT, "--model.name_or_path", "{tmp}/gone/model",
                             "--output_dir", "{tmp}/o"],
     r"model\.name_or_path: cannot load a tokenizer from '.*gone/model': no such local folder"),
    ("merge --samples 0", ["merge", "--adapter", "{tmp}/adapter", "--out", "{tmp}/m",
                           "--samples", "0"], r"--samples must be >= 1"),
    ("merge --tolerance -1", ["merge", "--adapter", "{tmp}/adapter", "--out", "{tmp}/m",
                              "--tolerance", "-1"], r"--tolerance must be >= 0"),
    ("merge --max-kl -1", ["merge", "--adapter", "{tmp}/adapter", "--out", "{tmp}/m",
                           "--max-kl", "-1"], r"--max-kl must be >= 0"),
    ("merge: base gone", ["merge", "--adapter", "{tmp}/adapter", "--out", "{tmp}/m",
                          "--device", "cpu"], r"no such local folder"),
    ("merge: no adapter", ["merge", "--adapter", "{tmp}/folder", "--out", "{tmp}/m"],
     r"not a PEFT adapter folder"),
    ("merge --device nonsense", ["merge", "--adapter", "{tmp}/adapter", "--out", "{tmp}/m",
                                 "--device", "gpu0"], r"'gpu0' is not a device"),
    ("merge: pickle adapter", ["merge", "--adapter", "{tmp}/pickled", "--out", "{tmp}/m"],
     r"adapter: cannot load an adapter from '.*pickled': only pickle weights "
     r"\(adapter_model\.bin\); gazal loads safetensors only.*--allow-pickle"),
    ("report: crafted manifest", ["report", "{tmp}/run"], r"must be a plain folder name"),
    ("report: no run", ["report", "{tmp}/nothing"], r"run directory not found"),
    ("synth: concurrency 0", ["data", "synth", SYNTH, "--dry-run", "--teacher.concurrency",
                              "0"], r"teacher\.concurrency must be >= 1, got 0"),
    ("synth: top_p 2", ["data", "synth", SYNTH, "--dry-run", "--teacher.top_p", "2"],
     r"teacher\.top_p must be in \(0, 1\]"),
    ("pipeline --only nosuch", ["pipeline", "{tmp}/p.yaml", "--only", "nosuch"],
     r"--only: no stage named 'nosuch' in the recipe; its stages are r"),
    ("synth: limit 0", ["data", "synth", SYNTH, "--out", "{tmp}/s", "--dry-run",
                        "--max_consecutive_failures", "0"],
     r"max_consecutive_failures must be at least 1"),
]


@pytest.mark.parametrize("name, argv, message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_line(tmp_path, capsys, name, argv, message):
    import re

    _files(tmp_path)
    code = main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ": error: " in ln]
    assert code == 2, err
    assert len(lines) == 1 and re.search(message, lines[0]), err
    assert "Traceback" not in err


def test_cuda_asked_for_without_cuda(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    _files(tmp_path)
    code = main(["merge", "--adapter", str(tmp_path / "adapter"), "--out", str(tmp_path / "m"),
                 "--base", "Qwen/any", "--device", "cuda"])
    err = capsys.readouterr().err
    assert code == 2 and "CUDA is not available on this machine" in err, err


def test_pickle_weights_are_refused_unless_allowed(tmp_path):
    from gazal.config import ConfigError
    from gazal.generation.loading import load_causal_lm, require_safetensors

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_model.bin").write_bytes(b"x")
    (adapter / "training_args.bin").write_bytes(b"x")
    with pytest.raises(ConfigError, match=r"adapter_model\.bin\); gazal loads safetensors"):
        require_safetensors(adapter, "adapter", stem="adapter_model")
    require_safetensors(adapter, "adapter", stem="adapter_model", allow_pickle=True)
    (adapter / "adapter_model.safetensors").write_bytes(b"x")
    require_safetensors(adapter, "adapter", stem="adapter_model")  # safetensors wins
    trainer_only = tmp_path / "checkpoint"
    trainer_only.mkdir()
    (trainer_only / "training_args.bin").write_bytes(b"x")
    require_safetensors(trainer_only, "model")  # trainer settings are not weights
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "pytorch_model.bin").write_bytes(b"x")
    with pytest.raises(ConfigError, match=r"model: cannot load model .*pytorch_model\.bin"):
        load_causal_lm(model)  # what eval's hf backend, SFT, GRPO and merge load through


def test_an_adapter_on_another_base_is_warned_about(tmp_path):
    from gazal.generation.loading import adapter_base_mismatch

    a, b = tmp_path / "base-a", tmp_path / "base-b"
    a.mkdir()
    b.mkdir()
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(a)}))
    assert adapter_base_mismatch(adapter, str(a)) is None
    assert adapter_base_mismatch(adapter, str(tmp_path / "." / "base-a")) is None
    warning = adapter_base_mismatch(adapter, str(b))
    assert warning and f"trained on '{a}' but is loaded onto '{b}'" in warning
    (adapter / "adapter_config.json").write_text(json.dumps(
        {"base_model_name_or_path": "Qwen/Qwen3-8B"}))
    assert adapter_base_mismatch(adapter, "Qwen/Qwen3-8B") is None
    assert "Qwen/Qwen3-32B" in adapter_base_mismatch(adapter, "Qwen/Qwen3-32B")
    assert adapter_base_mismatch(adapter, str(a)) is None  # a local snapshot: cannot tell
