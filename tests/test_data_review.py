"""Clinician review (gazal.data.review): export, import, curate applying it, Cohen's kappa."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from gazal.cli import main
from gazal.data.config import CurateConfig, load_data_config
from gazal.data.curate import curate
from gazal.data.decontam import BenchmarkIndex
from gazal.data.review import cohen_kappa, export_sample, import_decisions
from gazal.io import DataError

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "gazal-r1-32b" / "data.yaml"
CATS = ["diagnostic_reasoning", "treatment_planning", "uncertainty"]


def reply(topic: str) -> str:
    steps = "\n".join(f"Step {i}: For {topic}, point {i} weighs finding {i * 7} against the "
                      f"history and the examination reported for {topic} in this patient."
                      for i in range(1, 4))
    return (f"<think>\n{steps}\n</think>\n\n## Clinical Assessment\nIt is {topic}.\n\n"
            f"**Final answer: {topic}**")


def write_rows(path: Path, n: int = 30) -> list[dict]:
    rows = [{"id": f"r{i}", "category": CATS[i % 3], "source": "s1" if i < 20 else "s2",
             "messages": [{"role": "user", "content": f"Case {i}: what is <b>disease {i}</b>?"},
                          {"role": "assistant", "content": reply(f"disease number {i}")}]}
            for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def cfg(*args: str) -> CurateConfig:
    return load_data_config(CurateConfig, "curate", RECIPE, list(args))


@pytest.fixture
def curated(tmp_path) -> Path:
    write_rows(tmp_path / "in.jsonl")
    curate(tmp_path / "in.jsonl", tmp_path / "cur", cfg("--near_dup.enabled", "false"),
           progress=False, index=BenchmarkIndex([]))
    return tmp_path / "cur"


def fill(src: Path, dst: Path, reviewer: str, decide) -> None:
    with src.open(newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["decision"], r["corrected_answer"], r["comment"] = decide(r["id"])
        r["reviewer"] = reviewer
    with dst.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def test_cohen_kappa():
    # 10 items, 8 agreements; rater A: 6 accept, B: 6 accept -> p_e = .36 + .16 = .52
    a = ["accept"] * 6 + ["reject"] * 4
    b = ["accept"] * 5 + ["reject"] + ["accept"] + ["reject"] * 3
    assert cohen_kappa(a, b) == pytest.approx((0.8 - 0.52) / 0.48)
    assert cohen_kappa(a, a) == pytest.approx(1.0)
    assert cohen_kappa(["accept"] * 3, ["accept"] * 3) is None  # undefined
    assert cohen_kappa([], []) is None


def test_export_import_and_curate_apply_the_review(tmp_path, curated, capsys):
    assert main(["data", "review", "export", str(curated), "--n", "12", "--out",
                 str(tmp_path / "cli"), "--seed", "1"]) == 0
    assert "12 examples in 6 strata" in capsys.readouterr().out
    rec = export_sample(curated, 12, tmp_path / "rev", seed=1)
    assert rec["ids"] == json.loads((tmp_path / "cli" / "sample.json").read_text())["ids"]
    assert rec["n"] == 12
    # stratified: every (category, source) stratum is in the sample, proportionally
    assert set(rec["strata"]) == {f"{c} / {s}" for c in CATS for s in ("s1", "s2")}
    assert sum(rec["strata"].values()) == 12 and min(rec["strata"].values()) >= 1
    page = (tmp_path / "rev" / "review.html").read_text()
    assert "&lt;b&gt;disease" in page and "<b>disease" not in page  # escaped, self-contained
    ids = rec["ids"]
    rejected_by_a, rejected_by_b = set(ids[:3]), set(ids[1:4])

    def by(rejected):
        return lambda i: ("reject", "", "unsafe") if i in rejected else \
            ("accept", "Disease X" if i == ids[5] else "", "")

    fill(tmp_path / "rev" / "review.csv", tmp_path / "rev" / "filled_a.csv", "dr_a",
         by(rejected_by_a))
    fill(tmp_path / "rev" / "review.csv", tmp_path / "rev" / "filled_b.csv", "dr_b",
         by(rejected_by_b))
    assert main(["data", "review", "import", str(tmp_path / "rev" / "filled_a.csv")]) == 0
    out_b = import_decisions(tmp_path / "rev" / "filled_b.csv")
    assert out_b.name == "decisions-dr_b.jsonl"
    result = curate(tmp_path / "in.jsonl", tmp_path / "cur2",
                    cfg("--near_dup.enabled", "false", "--review",
                        f"[{tmp_path / 'rev'}]"), progress=False, index=BenchmarkIndex([]))
    removed = {json.loads(x)["id"]: json.loads(x)
               for x in (tmp_path / "cur2" / "removed.jsonl").read_text().splitlines()}
    assert set(removed) == rejected_by_a | rejected_by_b
    assert {r["reason"] for r in removed.values()} == {"clinician_rejected"}
    kept = {json.loads(x)["id"]: json.loads(x)
            for x in (tmp_path / "cur2" / "kept.jsonl").read_text().splitlines()}
    corrected = kept[ids[5]]["review"]
    assert {d["reviewer"] for d in corrected} == {"dr_a", "dr_b"}
    assert {d["corrected_answer"] for d in corrected} == {"Disease X"}
    assert "review" not in kept[next(i for i in kept if i not in ids)]
    rv = result.report["review"]
    assert rv["reviewed_rows"] == 12 and rv["reviewed_share"] == pytest.approx(12 / 30, 1e-3)
    assert sum(c["rejected"] for c in rv["by_category"].values()) == 4
    [agree] = rv["agreement"]
    a = ["reject" if i in rejected_by_a else "accept" for i in ids]
    b = ["reject" if i in rejected_by_b else "accept" for i in ids]
    assert agree["items"] == 12
    assert agree["cohen_kappa"] == pytest.approx(cohen_kappa(a, b), abs=1e-4)
    md = (tmp_path / "cur2" / "report.md").read_text()
    assert "## Clinician review" in md and "Cohen's kappa" in md


def _csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def test_malformed_review_csvs_name_row_and_column(tmp_path, curated):
    export_sample(curated, 6, tmp_path / "rev")
    ids = json.loads((tmp_path / "rev" / "sample.json").read_text())["ids"]
    d = tmp_path / "rev"
    full = ["id", "decision", "corrected_answer", "comment", "reviewer"]
    cases = [
        (_csv(d / "a.csv", ["id", "decision", "comment"], [[ids[0], "accept", ""]]),
         r"a.csv:1: field 'corrected_answer': missing column"),
        (_csv(d / "b.csv", full, [[ids[0], "accept", "", "", "x"], [ids[1], "maybe", "", "",
                                                                    "x"]]),
         r"b.csv:3: field 'decision': expected accept, reject or empty"),
        (_csv(d / "c.csv", full, [["not-an-id", "accept", "", "", "x"]]),
         r"c.csv:2: field 'id': id 'not-an-id' is not in the exported sample"),
        (_csv(d / "e.csv", full, [[ids[0], "accept", "", "", "x"], [ids[0], "reject", "", "",
                                                                    "x"]]),
         r"e.csv:3: field 'id': id .* appears twice \(first on row 2\)"),
        (_csv(d / "f.csv", full, [[ids[0], "", "Disease Y", "", "x"]]),
         r"f.csv:2: field 'decision': a corrected answer needs a decision"),
        (_csv(d / "g.csv", full, [[ids[0], "accept", "", "", "x"], [ids[1], "accept", "", "",
                                                                    "y"]]),
         r"g.csv: field 'reviewer': several reviewers"),
    ]
    for path, pattern in cases:
        with pytest.raises(DataError, match=pattern):
            import_decisions(path)
    assert main(["data", "review", "import", str(d / "b.csv")]) == 2
    with pytest.raises(DataError, match=r"no kept\.jsonl"):
        export_sample(tmp_path, 3, tmp_path / "x")
