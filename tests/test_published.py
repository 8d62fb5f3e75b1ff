"""Multi-file outputs published as one set (gazal.published): a run killed between two of
its files leaves its folder marked incomplete, every reader of such a set refuses it with the
command to re-run, a file replaced by another run is caught, and re-running completes it."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from test_data_review import cfg as review_cfg
from test_data_review import write_rows
from test_eval_compare import write_run

from gazal import published
from gazal.data import curate_report
from gazal.data.curate import CURATE_SET, curate
from gazal.data.decontam import BenchmarkIndex
from gazal.data.review import export_sample
from gazal.data.sft_data import DataSource, iter_rows
from gazal.eval.compare import load_run, write_comparison
from gazal.eval.score import score_file
from gazal.io import DataError


def test_begin_publish_verify(tmp_path, caplog):
    (tmp_path / "a.txt").write_text("one")
    (tmp_path / "b.txt").write_text("two")
    with caplog.at_level(logging.WARNING, logger="gazal"):
        assert published.verify(tmp_path) is None  # written before sets: read as it is
    assert "no manifest.json" in caplog.text
    published.begin(tmp_path, "score")
    with pytest.raises(DataError, match=r"incomplete: gazal score was stopped.*re-run gazal "
                                        "score into it"):
        published.verify(tmp_path, command="score")
    manifest = published.publish(tmp_path, ["a.txt", "b.txt"], "score")
    assert manifest["complete"] and set(manifest["files"]) == {"a.txt", "b.txt"}
    assert published.verify(tmp_path) == manifest
    (tmp_path / "b.txt").write_text("TWO")  # same size, other bytes: another run's file
    with pytest.raises(DataError, match=r"b.txt is not the file published"):
        published.verify(tmp_path)
    published.verify(tmp_path, ["a.txt"])  # a reader of a.txt alone is not refused
    (tmp_path / "a.txt").unlink()
    with pytest.raises(DataError, match=r"a.txt is missing"):
        published.verify(tmp_path, ["a.txt"])
    with pytest.raises(DataError, match=r"c.txt is not part of the published set"):
        published.verify(tmp_path, ["c.txt"])


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs (not even ``except Exception``)."""


def test_curate_killed_between_its_files_is_refused_until_rerun(tmp_path, monkeypatch):
    settings = review_cfg("--near_dup.enabled", "false")
    write_rows(tmp_path / "first.jsonl", 30)
    write_rows(tmp_path / "second.jsonl", 12)
    out = tmp_path / "cur"
    curate(tmp_path / "first.jsonl", out, settings, progress=False, index=BenchmarkIndex([]))
    manifest = published.verify(out, command="data curate")
    assert sorted(manifest["files"]) == sorted(CURATE_SET)
    first_report = (out / "report.json").read_bytes()

    def killed(*args, **kwargs):
        raise Killed
    monkeypatch.setattr(curate_report, "write_report", killed)
    with pytest.raises(Killed):  # the second run dies after kept.jsonl, before its report
        curate(tmp_path / "second.jsonl", out, settings, progress=False,
               index=BenchmarkIndex([]))
    assert (out / "report.json").read_bytes() == first_report  # the mix the issue describes
    assert len((out / "kept.jsonl").read_text().splitlines()) == 12
    for read in (lambda: export_sample(out, 5, tmp_path / "review"),
                 lambda: list(iter_rows(DataSource(path=str(out / "kept.jsonl"))))):
        with pytest.raises(DataError, match=r"incomplete.*re-run gazal data curate into it"):
            read()

    monkeypatch.undo()
    curate(tmp_path / "second.jsonl", out, settings, progress=False, index=BenchmarkIndex([]))
    assert json.loads((out / "report.json").read_text())["input"]["rows"] == 12
    export_sample(out, 5, tmp_path / "review")
    assert len(list(iter_rows(DataSource(path=str(out / "kept.jsonl"))))) == 12


def test_a_kept_file_edited_after_curate_is_refused_as_training_data(tmp_path):
    write_rows(tmp_path / "in.jsonl", 9)
    out = tmp_path / "cur"
    curate(tmp_path / "in.jsonl", out, review_cfg("--near_dup.enabled", "false"),
           progress=False, index=BenchmarkIndex([]))
    rows = (out / "kept.jsonl").read_text().splitlines()
    (out / "kept.jsonl").write_text("\n".join(rows[:4]) + "\n")
    with pytest.raises(DataError, match=r"kept.jsonl is not the file published"):
        list(iter_rows(DataSource(path=str(out / "kept.jsonl"))))
    other = out / "mine.jsonl"  # a user's own file beside the set is not part of it
    other.write_text(rows[0] + "\n")
    assert len(list(iter_rows(DataSource(path=str(other))))) == 1


def _published_run(path: Path, correct: list[bool]) -> Path:
    path.mkdir()
    published.begin(path, "eval")
    write_run(path, correct)
    (path / "results.md").write_text("# results\n")
    published.publish(path, ["responses.jsonl", "summary.json", "results.md"], "eval")
    return path


def test_compare_refuses_an_eval_run_whose_files_are_not_one_set(tmp_path):
    run = _published_run(tmp_path / "a", [True, False, True, True])
    assert len(load_run(run).records) == 4
    published.begin(run, "eval")  # a re-run into the folder was killed
    with pytest.raises(DataError, match=r"incomplete: gazal eval.*re-run gazal eval"):
        load_run(run)
    other = _published_run(tmp_path / "b", [False] * 4)
    (other / "responses.jsonl").write_bytes(
        (_published_run(tmp_path / "c", [True] * 3) / "responses.jsonl").read_bytes())
    with pytest.raises(DataError, match=r"responses.jsonl is not the file published"):
        load_run(other)


def test_score_and_compare_publish_their_sets(tmp_path):
    responses = tmp_path / "responses.jsonl"
    responses.write_text(json.dumps({"id": "q1", "benchmark": "medqa", "answer": "A",
                                     "options": {"A": "x", "B": "y"},
                                     "response": "**Final answer: (A) x**"}) + "\n")
    score_file(responses, tmp_path / "scored")
    assert sorted(published.verify(tmp_path / "scored")["files"]) == ["scored.jsonl",
                                                                     "summary.json"]
    from gazal.eval.compare import compare_runs
    runs = [_published_run(tmp_path / n, [True, False] * 3) for n in ("x", "y")]
    md, page = write_comparison(compare_runs(runs), tmp_path / "cmp")
    assert {md.name, page.name} <= set(published.verify(tmp_path / "cmp")["files"])
