"""gazal report builds from a run directory; the HTML's plots load in headless Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import yaml

from gazal.cli import main
from gazal.io import atomic_write_jsonl
from gazal.report.build import build_report, discover_stages


def make_run(tmp_path):
    run = tmp_path / "run"
    for name, command in (("sft", "sft"), ("grpo", "grpo"), ("eval", "eval")):
        (run / name).mkdir(parents=True)
        (run / name / "config.yaml").write_text(yaml.safe_dump({"command": command}))
    atomic_write_jsonl(run / "sft" / "metrics.jsonl",
                       [{"step": i, "loss": 3.0 / (i + 1)} for i in range(1, 20)])
    atomic_write_jsonl(run / "grpo" / "metrics.jsonl", [
        {"step": i, "reward": 0.1 * i, "rewards/accuracy/mean": 0.05 * i,
         "rewards/format/mean": 0.5, "completions/mean_length": 50 + i,
         "completions/max_length": 64, "monitor/accuracy": 0.3 + 0.01 * i,
         "monitor/letter_entropy": 1.9, "monitor/gold_letter_entropy": 2.0}
        for i in range(1, 11)])
    summary = {"n": 4, "accuracy": 0.5, "accuracy_ci95": [0.15, 0.85], "missing": 0.25,
               "truncated": 0.0, "benchmarks": {"medqa": {
                   "n": 4, "accuracy": 0.5, "accuracy_ci95": [0.15, 0.85], "missing": 0.25,
                   "truncated": 0.0}}}
    (run / "eval" / "summary.json").write_text(json.dumps(summary))
    atomic_write_jsonl(run / "eval" / "responses.jsonl", [
        {"id": f"medqa-{i}", "benchmark": "medqa", "answer": "A", "extracted": "A" if i < 2
         else None, "correct": i < 2, "extraction_rule": "final_answer",
         "response": f"<think>\nStep 1: case {i} <b>bold?</b>\n</think>\n\n**Final answer: (A)**"}
        for i in range(4)])
    return run


def test_report_from_run_dir(tmp_path, capsys):
    run = make_run(tmp_path)
    assert [s.command for s in discover_stages(run)] == ["eval", "grpo", "sft"]
    assert main(["report", str(run)]) == 0
    md = (run / "report" / "report.md").read_text()
    html = (run / "report" / "report.html").read_text()
    for png in ("sft_loss.png", "grpo_rewards.png", "grpo_accuracy.png", "grpo_lengths.png",
                "grpo_letters.png"):
        assert (run / "report" / png).stat().st_size > 1000
        assert f"]({png})" in md
    assert html.count('src="data:image/png;base64,') == 5
    assert "87.1" in md and "15.0–85.0" in md  # paper's MedQA number and the interval
    assert "&lt;b&gt;bold?&lt;/b&gt;" in html  # responses are escaped, never rendered
    assert "wrote" in capsys.readouterr().out


def test_pipeline_manifest_drives_the_stage_table(tmp_path):
    run = make_run(tmp_path)
    (run / "pipeline.json").write_text(json.dumps({"stages": [
        {"name": "sft", "kind": "sft", "dir": "sft", "status": "complete", "seconds": 12.5,
         "numbers": {"final loss": 0.1}}]}))
    md, _ = build_report(run)
    assert "| sft | sft | complete | 12.5 | final loss 0.100 |" in md.read_text()


@pytest.mark.parametrize("stage, message", [
    ({"name": "../../escape", "kind": "sft", "dir": "sft"}, "must be a plain folder name"),
    ({"name": "a/b", "kind": "sft", "dir": "sft"}, "must be a plain folder name"),
    ({"name": "..", "kind": "sft"}, "must be a plain folder name"),
    ({"name": "sft", "kind": "sft", "dir": "../outside"}, "outside the run directory"),
    ({"name": "sft", "kind": "eval", "dir": "/etc"}, "outside the run directory"),
    ({"name": "sft", "kind": "eval", "dir": "link"}, "outside the run directory"),
])
def test_a_crafted_manifest_cannot_reach_outside_the_run_dir(tmp_path, capsys, stage, message):
    run = make_run(tmp_path)
    outside = tmp_path / "outside"
    shutil.copytree(run / "sft", outside)
    (run / "link").symlink_to(outside)
    (run / "pipeline.json").write_text(json.dumps({"stages": [stage]}))
    assert main(["report", str(run)]) == 2
    err = capsys.readouterr().err
    assert f"{run / 'pipeline.json'}: field " in err and message in err
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outside", "run"]
    assert not (run / "report").exists() and sorted(p.name for p in outside.iterdir()) == \
        ["config.yaml", "metrics.jsonl"]


def test_a_report_folder_linking_outside_is_refused(tmp_path, capsys):
    run = make_run(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    (run / "report").symlink_to(tmp_path / "elsewhere")
    assert main(["report", str(run)]) == 2
    assert "outside the run directory" in capsys.readouterr().err
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_missing_run_dir_is_a_clear_error(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "run directory not found" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def test_html_plots_load_in_headless_chromium(tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium)")
    run = make_run(tmp_path)
    _, page = build_report(run)
    # A probe copy: after load, the title says whether every image decoded.
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text().replace(
        "</body>", "<script>window.addEventListener('load',()=>{document.title="
        "[...document.images].length+':'+[...document.images].every("
        "i=>i.complete&&i.naturalWidth>0)})</script></body>"))
    out = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
         "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert "<title>5:true</title>" in out.stdout, out.stderr[-2000:]


def test_the_report_is_published_as_a_set(tmp_path):
    run = make_run(tmp_path)
    build_report(run)
    assert (run / "report" / "sft_loss.png").exists()
    (run / "report" / "notes.txt").write_text("an older build's file")
    # the next build lists only the eval stage: nothing of the older build may stay beside it
    (run / "pipeline.json").write_text(json.dumps({"stages": [
        {"name": "eval", "kind": "eval", "dir": "eval", "status": "complete"}]}))
    md, _ = build_report(run)
    assert sorted(p.name for p in (run / "report").iterdir()) == ["report.html", "report.md"]
    assert md == run / "report" / "report.md" and "sft" not in md.read_text().split("\n")[0]
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".")) == []
    # a build killed between its two renames: the previous report is put back at the next one
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (run / "report").rename(run / f".report.old-{dead.pid}")
    (run / f".report.tmp-{dead.pid}").mkdir()
    from gazal.io import repair_replaced_folder

    repair_replaced_folder(run / "report", "report")
    assert (run / "report" / "report.md").exists()
    assert not (run / f".report.tmp-{dead.pid}").exists()
