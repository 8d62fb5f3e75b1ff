from __future__ import annotations

import json
import logging

import pytest

from gazal.io import (
    DataError,
    ResumableJsonlWriter,
    atomic_write_json,
    atomic_write_text,
    iter_jsonl,
    read_json,
    read_jsonl,
    require_field,
)


def test_jsonl_error_names_file_and_line(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text('{"a": 1}\n\n{"a": 2\n{"a": 3}\n')
    with pytest.raises(DataError) as e:
        read_jsonl(p)
    assert e.value.line == 3 and str(e.value).startswith(f"{p}:3: invalid JSON")


def test_jsonl_non_object_and_skip(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text('{"a": 1}\n[1, 2]\nnot json\n{"a": 4}\n')
    with pytest.raises(DataError, match=r":2: expected a JSON object, got list"):
        read_jsonl(p)
    skipped = []
    rows = list(iter_jsonl(p, skip_invalid=True, on_skip=skipped.append))
    assert [n for n, _ in rows] == [1, 4]
    assert [e.line for e in skipped] == [2, 3]


def test_read_json_error_line(tmp_path):
    p = tmp_path / "x.json"
    p.write_text('{\n  "a": 1,\n  "b": \n}\n')
    with pytest.raises(DataError, match=r"x.json:4: invalid JSON"):
        read_json(p)
    with pytest.raises(DataError, match="file not found"):
        read_json(tmp_path / "missing.json")


def test_require_field_names_field():
    rec = {"a": "x", "n": True}
    assert require_field(rec, "a", str, path="f", line=3) == "x"
    with pytest.raises(DataError, match=r"^f:3: field 'b': missing$"):
        require_field(rec, "b", str, path="f", line=3)
    with pytest.raises(DataError, match=r"field 'n': expected int, got bool"):
        require_field(rec, "n", int, path="f", line=3)


def test_atomic_write_leaves_old_file_on_error(tmp_path):
    p = tmp_path / "out.json"
    atomic_write_json(p, {"v": 1})

    class Boom:
        pass

    with pytest.raises(TypeError):
        atomic_write_json(p, {"v": Boom()})
    assert json.loads(p.read_text()) == {"v": 1}
    assert [f.name for f in tmp_path.iterdir()] == ["out.json"]  # no temp left behind
    atomic_write_text(p, "new")
    assert p.read_text() == "new"


def test_resumable_writer_appends_and_recovers(tmp_path):
    p = tmp_path / "r.jsonl"
    with ResumableJsonlWriter(p) as w:
        w.append({"id": 1})
        w.append({"id": 2})
    with ResumableJsonlWriter(p) as w:
        assert [r["id"] for r in w.records] == [1, 2]
        w.append({"id": 3})
    assert [r["id"] for r in read_jsonl(p)] == [1, 2, 3]


@pytest.mark.parametrize("torn", ['{"id": 3, "x": "hal', '{"id": 3}', '{"id": 3, "x"\n'])
def test_resumable_writer_drops_torn_last_line(tmp_path, caplog, torn):
    p = tmp_path / "r.jsonl"
    p.write_text('{"id": 1}\n{"id": 2}\n' + torn)
    with caplog.at_level(logging.WARNING, logger="gazal"), ResumableJsonlWriter(p) as w:
        assert [r["id"] for r in w.records] == [1, 2]
        assert w.dropped_torn_line
        w.append({"id": 3})
    assert "torn last line" in caplog.text
    assert [r["id"] for r in read_jsonl(p)] == [1, 2, 3]


def test_resumable_writer_refuses_damage_in_the_middle(tmp_path):
    p = tmp_path / "r.jsonl"
    p.write_text('{"id": 1}\nGARBAGE\n{"id": 3}\n')
    with pytest.raises(DataError, match=r"r.jsonl:2: corrupt record"):
        ResumableJsonlWriter(p)


def test_resumable_writer_crash_mid_write(tmp_path):
    """A process killed while writing leaves a torn line that the next run drops."""
    import subprocess
    import sys

    p = tmp_path / "r.jsonl"
    code = (
        "import os, json\n"
        "from gazal.io import ResumableJsonlWriter\n"
        f"w = ResumableJsonlWriter({str(p)!r})\n"
        "for i in range(5): w.append({'id': i})\n"
        "w._handle.write(json.dumps({'id': 5, 'pad': 'x' * 1000})[:300])\n"
        "w._handle.flush()\n"
        "os._exit(9)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert r.returncode == 9
    with ResumableJsonlWriter(p) as w:
        assert [r["id"] for r in w.records] == [0, 1, 2, 3, 4]
        w.append({"id": 5})
    assert len(read_jsonl(p)) == 6


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_writes_honour_the_umask(tmp_path, umask, mode):
    import os
    import stat

    from gazal.io import atomic_write_json, atomic_write_text, current_umask

    old = os.umask(umask)
    try:
        assert current_umask() == umask
        atomic_write_text(tmp_path / "results.md", "x")
        atomic_write_json(tmp_path / "summary.json", {"n": 1})
        atomic_write_json(tmp_path / "summary.json", {"n": 2})  # replacing, too
    finally:
        os.umask(old)
    for name in ("results.md", "summary.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name


def test_a_full_disk_is_an_error_naming_the_file_and_the_free_space(tmp_path, monkeypatch,
                                                                     capsys):
    import errno
    import os

    from gazal.io import DiskFull, ResumableJsonlWriter, atomic_write_json

    target = tmp_path / "summary.json"
    atomic_write_json(target, {"n": 1})
    writer = ResumableJsonlWriter(tmp_path / "responses.jsonl")
    writer.append({"id": "a"})
    real_fsync = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(DiskFull, match=rf"^{target}: cannot write: no space left on the "
                                       r"device \([\d,.]+ MB free there\); free some space"):
        atomic_write_json(target, {"n": 2})
    assert json.loads(target.read_text()) == {"n": 1}  # the old file, no temporary left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["responses.jsonl", "summary.json"]
    with pytest.raises(DiskFull, match=r"responses\.jsonl: cannot write: no space left"):
        writer.append({"id": "b"})
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(
        OSError(errno.EDQUOT, "Disk quota exceeded")))
    with pytest.raises(DiskFull, match="disk quota exceeded"):
        atomic_write_json(target, {"n": 3})
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(
        OSError(errno.EIO, "I/O error")))
    with pytest.raises(OSError) as other:  # other errors are not relabelled
        atomic_write_json(target, {"n": 4})
    assert not isinstance(other.value, DiskFull)
    monkeypatch.setattr(os, "fsync", real_fsync)
    writer.close()

    # on the command line: one line, exit 2, no traceback
    from gazal.cli import main

    run = tmp_path / "run"
    (run / "eval").mkdir(parents=True)
    (run / "eval" / "config.yaml").write_text("command: eval\n")
    monkeypatch.setattr(os, "fsync", full)
    assert main(["report", str(run)]) == 2
    err = capsys.readouterr().err
    assert "gazal report: error: " in err and "no space left on the device" in err
    assert "Traceback" not in err and "Errno" not in err
