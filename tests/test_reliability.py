"""Self-healing after kills, without killing anything: the states a kill leaves are written
by hand (a partial checkpoint, temporaries of an atomic write, a merge cut between its
renames) and the next start of the command must repair them."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from gazal.io import atomic_write_json, clean_stale_temps


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _checkpoint(path: Path, step: int, *, state: bool = True, torn: bool = False) -> Path:
    """A checkpoint folder as transformers writes it (a one-tensor adapter)."""
    import torch
    from safetensors.torch import save_file

    path.mkdir(parents=True)
    weights = path / "adapter_model.safetensors"
    save_file({"lora_A.weight": torch.ones(2, 2)}, str(weights))
    if torn:
        weights.write_bytes(weights.read_bytes()[:40])
    for name in ("optimizer.pt", "scheduler.pt"):
        (path / name).write_bytes(b"x")
    if state:
        (path / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return path


# --------------------------------------------------------------------------- checkpoints


def test_partial_checkpoints_are_set_aside_and_the_last_complete_one_wins(tmp_path, caplog):
    from gazal.train.checkpoints import find_resume_checkpoint

    ck = tmp_path / "checkpoints"
    _checkpoint(ck / "checkpoint-2", 2)
    _checkpoint(ck / "checkpoint-4", 4)
    _checkpoint(ck / "checkpoint-6", 6, state=False)  # killed before trainer_state.json
    _checkpoint(ck / "checkpoint-8", 8, torn=True)  # killed while the weights were written
    # the non-main processes of a multi-process run skip them without moving anything
    assert find_resume_checkpoint(ck, set_aside=False) == ck / "checkpoint-4"
    assert (ck / "checkpoint-6").is_dir() and not (ck / ".partial").exists()
    with caplog.at_level(logging.WARNING, logger="gazal"):
        assert find_resume_checkpoint(ck) == ck / "checkpoint-4"
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and all("set it aside" in m for m in lines)
    assert "checkpoint-8 is incomplete" in lines[0] and "cannot be read" in lines[0]
    assert "checkpoint-6 is incomplete (unreadable checkpoint: no trainer_state.json" in lines[1]
    assert sorted(p.name for p in ck.iterdir()) == [".partial", "checkpoint-2", "checkpoint-4"]
    assert sorted(p.name for p in (ck / ".partial").iterdir()) == ["checkpoint-6",
                                                                   "checkpoint-8"]
    # a second partial checkpoint-6 (another kill) does not overwrite the first one set aside
    _checkpoint(ck / "checkpoint-6", 6, state=False)
    assert find_resume_checkpoint(ck) == ck / "checkpoint-4"
    assert (ck / ".partial" / "checkpoint-6.2").is_dir()
    # the trainer's own search sees only complete checkpoints now
    from transformers.trainer_utils import get_last_checkpoint

    assert get_last_checkpoint(str(ck)) == str(ck / "checkpoint-4")


def test_no_complete_checkpoint_means_a_fresh_start(tmp_path):
    from gazal.train.checkpoints import find_resume_checkpoint

    ck = tmp_path / "checkpoints"
    assert find_resume_checkpoint(ck) is None
    _checkpoint(ck / "checkpoint-1", 1, state=False)
    assert find_resume_checkpoint(ck) is None
    assert (ck / ".partial" / "checkpoint-1").is_dir()


# --------------------------------------------------------------------------- temporaries


def test_temporaries_of_killed_writes_are_removed_at_the_next_start(tmp_path, caplog):
    from gazal.rundir import prepare_run_dir

    run = tmp_path / "run"
    prepare_run_dir(run, {"seed": 1}, command="eval")
    atomic_write_json(run / "summary.json", {"n": 1})
    stale = [run / ".summary.json.x81kq2.tmp", run / "checkpoints" / ".trainer_state.json.a.tmp"]
    for path in stale:
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"\0" * 1000)
    (run / ".adapter.tmp").mkdir()
    (run / ".adapter.tmp" / "adapter_model.safetensors").write_bytes(b"\0" * 1000)
    # a nested run directory (a pipeline stage) is cleaned by its own command, not this one
    (run / "eval").mkdir()
    (run / "eval" / "config.yaml").write_text("command: eval\n")
    (run / "eval" / ".responses.jsonl.q.tmp").write_text("{")
    keep = [run / "summary.json", run / "notes.tmp", run / ".hidden"]
    for path in keep[1:]:
        path.write_text("user file")
    with caplog.at_level(logging.INFO, logger="gazal"):
        prepare_run_dir(run, {"seed": 1}, command="eval")
    assert not any(p.exists() for p in stale) and not (run / ".adapter.tmp").exists()
    assert all(p.exists() for p in keep) and (run / "eval" / ".responses.jsonl.q.tmp").exists()
    assert any("removed 3 temporary" in r.getMessage() and "(0.0 MB)" in r.getMessage()
               for r in caplog.records)
    assert clean_stale_temps(run) == []  # nothing left: no second log line
    assert clean_stale_temps(tmp_path / "missing") == []


def test_a_refused_resume_cleans_nothing(tmp_path):
    from gazal.config import ConfigError
    from gazal.rundir import prepare_run_dir

    run = prepare_run_dir(tmp_path / "run", {"seed": 1}, command="eval")
    (run / ".x.y.tmp").write_text("")
    with pytest.raises(ConfigError):
        prepare_run_dir(run, {"seed": 2}, command="eval")
    assert (run / ".x.y.tmp").exists()


# --------------------------------------------------------------------------- merge --force


def _model_folder(path: Path, text: str) -> Path:
    path.mkdir(parents=True)
    (path / "model.safetensors").write_text(text)
    return path


def test_replace_folder_keeps_the_old_one_until_the_new_one_is_in_place(tmp_path, monkeypatch):
    from gazal.train.merge import replace_folder

    out = _model_folder(tmp_path / "merged", "old")
    new = _model_folder(tmp_path / ".merged.tmp-1", "new")
    replace_folder(new, out)
    assert (out / "model.safetensors").read_text() == "new" and not new.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["merged"]

    # the second rename fails (here: raised; a kill is repaired by the next start below)
    newer = _model_folder(tmp_path / ".merged.tmp-2", "newer")
    real_rename = Path.rename

    def failing(self, target):
        if self == newer:
            raise OSError("disk gone")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", failing)
    with pytest.raises(OSError, match="disk gone"):
        replace_folder(newer, out)
    assert (out / "model.safetensors").read_text() == "new"


def test_a_merge_killed_mid_replace_is_repaired_at_the_next_start(tmp_path, caplog):
    from gazal.train.merge import repair_interrupted_merge

    dead = _dead_pid()
    out = tmp_path / "merged"
    # killed between "old aside" and "new in": --out is missing, both folders beside it
    _model_folder(tmp_path / f".merged.old-{dead}", "old")
    _model_folder(tmp_path / f".merged.tmp-{dead}", "new, unverified")
    _model_folder(tmp_path / ".merged.tmp-1", "a running merge's")  # pid 1 is alive
    _model_folder(tmp_path / ".other.tmp-77", "another --out's")
    with caplog.at_level(logging.INFO, logger="gazal"):
        repair_interrupted_merge(out)
    assert (out / "model.safetensors").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".merged.tmp-1", ".other.tmp-77",
                                                         "merged"]
    assert any("put back the previous version" in r.getMessage() and "a merge was killed"
               in r.getMessage() for r in caplog.records)
    # killed after "new in": the old folder beside a complete --out is removed
    _model_folder(tmp_path / f".merged.old-{dead}", "old")
    repair_interrupted_merge(out)
    assert not (tmp_path / f".merged.old-{dead}").exists()
    assert (out / "model.safetensors").read_text() == "old"


# --------------------------------------------------------------------------- one process


_HOLD = """
import sys, time
from gazal.rundir import lock_run_dir
lock_run_dir(sys.argv[1], "eval")
print("locked", flush=True)
time.sleep(60)
"""


def _python(*args: str, **kw) -> subprocess.Popen:
    import os

    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen([sys.executable, *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def test_a_second_process_is_refused_naming_the_holder(tmp_path):
    import socket

    from gazal.rundir import RunDirLocked, lock_run_dir, release_run_dir

    run = tmp_path / "run"
    holder = _python("-c", _HOLD, str(run))
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunDirLocked, match=rf"{run} is in use by another process \(pid "
                           rf"{holder.pid} on host {socket.gethostname()}, `gazal eval`"):
            lock_run_dir(run, "eval")
        # the non-main processes of a multi-process run do not take the lock
        from gazal.rundir import prepare_run_dir

        prepare_run_dir(run, {"seed": 1}, command="sft", write=False)
    finally:
        holder.kill()
        holder.wait()
    # killed (-9): the kernel released its lock
    lock_run_dir(run, "eval")
    lock_run_dir(run, "eval")  # again in the same process: a no-op
    assert "pid" in (run / ".gazal.lock").read_text()
    # and while this process holds it, a command in another process is refused, exit 2
    (tmp_path / "p.yaml").write_text(f"output_dir: {run}\nstages: [{{name: r, kind: report}}]\n")
    refused = _python("-m", "gazal", "pipeline", str(tmp_path / "p.yaml"))
    _, err = refused.communicate(timeout=120)
    assert refused.returncode == 2
    assert f"is in use by another process (pid {__import__('os').getpid()} on host" in err
    assert "Traceback" not in err
    release_run_dir(run)
    release_run_dir(run)  # not held: a no-op


def test_a_deleted_and_remade_run_dir_is_locked_again(tmp_path):
    import shutil

    from gazal.rundir import RunDirLocked, lock_run_dir, release_run_dir

    run = tmp_path / "run"
    lock_run_dir(run)
    shutil.rmtree(run)
    lock_run_dir(run)  # the new folder's lock file, not the deleted one's
    probe = _python("-c", "import sys\nfrom gazal.rundir import lock_run_dir\n"
                    "lock_run_dir(sys.argv[1])", str(run))
    _, err = probe.communicate(timeout=60)
    assert probe.returncode != 0 and RunDirLocked.__name__ in err
    release_run_dir(run)
