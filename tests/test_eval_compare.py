"""``gazal compare``: paired differences with a bootstrap interval that covers a known
difference, McNemar's exact p-value on a hand-computed case, length and rule breakdowns, and
refusal of runs over different items."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from gazal.eval.compare import (
    MismatchedItemsError,
    compare_runs,
    length_bins,
    mcnemar_exact,
    paired_bootstrap,
    write_comparison,
)
from gazal.io import atomic_write_json, atomic_write_jsonl

SHA = {"medqa": "a" * 64}


def write_run(path: Path, correct: list[bool], *, lengths: list[int] | None = None,
              sha: dict[str, str] | None = None, ids: list[str] | None = None) -> Path:
    """A minimal eval run folder: MedQA items alternating step1 / step2&3."""
    ids = ids or [f"medqa-{i:04d}" for i in range(len(correct))]
    lengths = lengths or [40] * len(correct)
    records = [{"id": ids[i], "benchmark": "medqa", "answer": "A",
                "meta": {"step": "step1" if i % 2 else "step2&3"}, "sample_index": 0,
                "correct": c, "extracted": "A" if c else "B",
                "extraction_rule": "final_answer_line" if c else "answer_is",
                "n_completion_tokens": lengths[i], "truncated": False}
               for i, c in enumerate(correct)]
    atomic_write_jsonl(path / "responses.jsonl", records)
    atomic_write_json(path / "summary.json", {
        "model": path.name, "adapter": None, "generation": {"temperature": 0.0},
        "benchmark_sources": {n: {"sha256": s} for n, s in (sha or SHA).items()}})
    return path


def test_mcnemar_exact_hand_computed():
    # b = 1, c = 7: n = 8, p = 2 * (C(8,0) + C(8,1)) / 2^8 = 18 / 256
    assert mcnemar_exact(1, 7) == 18 / 256 == mcnemar_exact(7, 1)
    # b = 2, c = 10: p = 2 * (1 + 12 + 66) / 4096
    assert mcnemar_exact(2, 10) == pytest.approx(158 / 4096, abs=0, rel=1e-15)
    assert mcnemar_exact(0, 0) == 1.0 and mcnemar_exact(5, 5) == 1.0
    # exact integer arithmetic: 2 / 2^1000, far below what sums of float terms could resolve
    assert mcnemar_exact(0, 1000) == 2.0 ** -999
    # against an independent log-gamma sum of the binomial terms
    log_terms = [math.lgamma(1001) - math.lgamma(k + 1) - math.lgamma(1001 - k)
                 - 1000 * math.log(2) for k in range(401)]
    assert mcnemar_exact(400, 600) == pytest.approx(2 * sum(map(math.exp, log_terms)),
                                                    rel=1e-9)


def test_paired_bootstrap_is_seeded_and_paired():
    a = [0.0, 1.0] * 50
    assert paired_bootstrap(a, a) == (0.0, 0.0)  # paired: identical runs differ by exactly 0
    b = [1.0] * 100
    lo, hi = paired_bootstrap(a, b, seed=3)
    assert (lo, hi) == paired_bootstrap(a, b, seed=3) != paired_bootstrap(a, b, seed=4)
    assert lo < 0.5 < hi


def test_known_difference_interval_covers_it_and_p_value(tmp_path):
    n = 400
    base = [i % 2 == 0 for i in range(n)]  # 50%
    run = list(base)
    flips_up = [i for i in range(n) if not base[i]][:48]   # wrong -> right
    flips_down = [i for i in range(n) if base[i]][:8]      # right -> wrong
    for i in flips_up:
        run[i] = True
    for i in flips_down:
        run[i] = False
    lengths = [30 if i % 3 else 900 for i in range(n)]
    a = write_run(tmp_path / "sft", base, lengths=lengths)
    b = write_run(tmp_path / "grpo", run, lengths=lengths)
    result = compare_runs([a, b], n_boot=1000, seed=1)
    rows = {r["group"]: r for r in result["pairs"][0]["rows"]}
    assert list(rows) == ["medqa", "medqa / step1", "medqa / step2&3"]
    overall = rows["medqa"]
    true_diff = (48 - 8) / n
    assert overall["difference"] == pytest.approx(true_diff)
    lo, hi = overall["ci95"]
    assert lo < true_diff < hi and lo > 0  # the interval covers it and excludes 0
    assert (overall["only_baseline_right"], overall["only_run_right"]) == (8, 48)
    assert overall["mcnemar_p"] == mcnemar_exact(8, 48) < 1e-6
    # all 48 gains were step1 items (odd i), all 8 losses step2&3 items (even i)
    assert rows["medqa / step1"]["only_run_right"] == 48
    assert rows["medqa / step2&3"]["only_baseline_right"] == 8
    assert rows["medqa / step1"]["n"] == 200
    assert compare_runs([a, b], n_boot=1000, seed=1) == result  # seeded
    md, page = write_comparison(result, tmp_path / "cmp")
    text = md.read_text()
    assert "## grpo vs sft" in text and "+10.0" in text and "McNemar p" in text
    assert "Accuracy by response length" in text and "513-1024" in text and "0-64" in text
    assert "final_answer_line" in text and "answer_is" in text
    html = page.read_text()
    assert "data:image/png;base64," in html and "<table>" in html  # self-contained
    saved = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert saved["pairs"][0]["rows"][0]["mcnemar_p"] == overall["mcnemar_p"]


def test_forced_answers_compared_when_every_run_has_them(tmp_path):
    import gazal.io as gio

    a = write_run(tmp_path / "a", [False] * 6)
    b = write_run(tmp_path / "b", [False] * 6)
    assert compare_runs([a, b], n_boot=50)["pairs_with_forcing"] == []
    recs = gio.read_jsonl(b / "responses.jsonl")
    for i, r in enumerate(recs):  # forcing rescued 4 of 6 in b, none in a
        r.update(forced_answer="x", forced_correct=i < 4)
    gio.atomic_write_jsonl(b / "responses.jsonl", recs)
    recs = gio.read_jsonl(a / "responses.jsonl")
    for r in recs:
        r.update(forced_answer=None, forced_correct=False)
    gio.atomic_write_jsonl(a / "responses.jsonl", recs)
    result = compare_runs([a, b], n_boot=50)
    unforced = result["pairs"][0]["rows"][0]
    forced = result["pairs_with_forcing"][0]["rows"][0]
    assert unforced["difference"] == 0 and forced["difference"] == pytest.approx(4 / 6)
    assert forced["mcnemar_p"] == mcnemar_exact(0, 4) == 0.125
    md, _ = write_comparison(result, tmp_path / "cmp")
    assert "## b vs a (with budget forcing)" in md.read_text()


def test_length_bins():
    recs = [{"n_completion_tokens": n, "correct": c} for n, c in
            [(10, True), (64, False), (65, True), (5000, False), (40000, True)]]
    bins = {b["bin"]: (b["n"], b["accuracy"]) for b in length_bins(recs)}
    assert bins == {"0-64": (2, 0.5), "65-128": (1, 1.0), "4097-8192": (1, 0.0),
                    "> 32768": (1, 1.0)}


def test_runs_over_different_items_are_refused(tmp_path):
    a = write_run(tmp_path / "a", [True] * 10)
    fewer = write_run(tmp_path / "fewer", [True] * 9)
    with pytest.raises(MismatchedItemsError, match=r"1 item\(s\) of .* are missing from "
                                                   r".*fewer \(e.g. medqa/medqa-0009\)"):
        compare_runs([a, fewer])
    other = write_run(tmp_path / "other", [True] * 10,
                      ids=[f"medqa-x{i}" for i in range(10)])
    with pytest.raises(MismatchedItemsError, match="evaluated different items"):
        compare_runs([a, other])
    resampled = write_run(tmp_path / "v2", [True] * 10, sha={"medqa": "b" * 64})
    with pytest.raises(MismatchedItemsError, match="'medqa' comes from different item sets"):
        compare_runs([a, resampled])
    from gazal.cli import main

    assert main(["compare", str(a), str(fewer), "--out", str(tmp_path / "c")]) == 2
    assert not (tmp_path / "c").exists()


def test_compare_real_eval_run_folders(tmp_path, capsys):
    """Two real `gazal eval` folders (tiny model, greedy vs sampled) through the command."""
    from support.tiny_eval import clinical_items, loaded, tiny_model_dir

    from gazal.cli import main
    from gazal.config import load_config
    from gazal.eval.config import EvalConfig
    from gazal.eval.runner import run_eval
    from gazal.generation.hf import HFBackend

    tiny = tiny_model_dir(str(tmp_path / "model"))
    backend = HFBackend(str(tiny), batch_size=4)
    items = [loaded(clinical_items(6))]
    for name, extra in [("greedy", []), ("sampled", ["--temperature", "1.0", "--samples",
                                                     "2"])]:
        cfg = load_config(EvalConfig, None, ["--model", str(tiny), "--out",
                                             str(tmp_path / name), "--max-new-tokens", "4",
                                             "--progress", "false", *extra])
        run_eval(cfg, backend=backend, benchmarks=items)
    out = tmp_path / "cmp"
    assert main(["compare", str(tmp_path / "greedy"), str(tmp_path / "sampled"), "--out",
                 str(out), "--labels", "g,s", "--bootstrap", "200"]) == 0
    assert "s vs g [medqa]" in capsys.readouterr().out
    saved = json.loads((out / "compare.json").read_text())
    assert [r["samples"] for r in saved["runs"]] == [1, 2] and saved["items"] == 6
    assert (out / "compare.md").exists() and (out / "compare.html").exists()
