"""The training-run scaffolding shared by SFT and GRPO (gazal.train.run_scaffold)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gazal.config import ConfigError
from gazal.train.run_scaffold import DATA_FINGERPRINT, check_data_fingerprint

ROOT = Path(__file__).resolve().parents[1]


def test_data_fingerprint_is_recorded_and_a_resume_onto_other_data_is_refused(tmp_path):
    now = {"train": "abc", "n_train": 3, "eval": "def", "n_eval": 1}
    kw = {"counts": {"n_train": "train", "n_eval": "eval"}, "what": "the training data",
          "unit": "examples"}
    check_data_fingerprint(tmp_path, now, resuming=False, **kw)
    assert json.loads((tmp_path / DATA_FINGERPRINT).read_text()) == now
    check_data_fingerprint(tmp_path, now, resuming=True, **kw)  # same data: resumes
    with pytest.raises(ConfigError, match=r"the training data changed since the checkpoints "
                                          r"were written \(3 train / 1 eval examples then, "
                                          r"4 / 1 now"):
        check_data_fingerprint(tmp_path, {**now, "n_train": 4}, resuming=True, **kw)
    # a fresh start (no checkpoint to resume) records the new data
    check_data_fingerprint(tmp_path, {**now, "n_train": 4}, resuming=False, **kw)
    assert json.loads((tmp_path / DATA_FINGERPRINT).read_text())["n_train"] == 4
    with pytest.raises(ConfigError, match=r"held-out questions changed .*\(4 train / 1 "
                                          r"held-out then, 4 / 2 now"):
        check_data_fingerprint(tmp_path, {**now, "n_train": 4, "n_eval": 2}, resuming=True,
                               write=False,
                               counts={"n_train": "train", "n_eval": "held-out"},
                               what="the training or held-out questions")


def test_imports_without_the_training_libraries():
    code = ("import sys, gazal.train.run_scaffold; "
            "print(sorted({'torch', 'transformers', 'trl', 'peft'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"PYTHONPATH": str(ROOT / "src")}, check=True).stdout
    assert out.strip() == "[]"


def test_whole_run_train_loss_weights_each_logged_window():
    from gazal.train.run_scaffold import whole_run_train_loss

    # logging_steps 2 over 6 steps: each logged loss is its window's mean
    records = [{"step": 2, "loss": 3.0}, {"step": 4, "loss": 2.0}, {"step": 0, "eval": 1},
               {"step": 6, "loss": 1.0}, {"step": 6, "eval_loss": 9.0}]
    assert whole_run_train_loss(records, 1.0, resumed=True) == 2.0
    assert whole_run_train_loss(records, 1.5, resumed=False) == 1.5  # trainer's own value
    # windows of different lengths (a log at step 4, then one at 6)
    uneven = [{"step": 4, "loss": 2.0}, {"step": 6, "loss": 5.0}]
    assert whole_run_train_loss(uneven, None, resumed=True) == (2.0 * 4 + 5.0 * 2) / 6
    assert whole_run_train_loss([], 0.7, resumed=True) == 0.7
