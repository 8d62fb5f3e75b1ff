"""``--limit N``: a seeded sample stratified by the benchmark's categories (the same items every
run with the same seed, in file order), or the first N; what results.md says; resume checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from support.tiny_eval import clinical_items, tiny_model_dir

from gazal.benchmarks import Item, load_benchmark, load_items_file
from gazal.config import ConfigError, load_config
from gazal.eval.config import EvalConfig
from gazal.eval.runner import run_eval
from gazal.eval.subset import allocate, limit_items, stratified_sample

SRC = str(Path(__file__).resolve().parents[1] / "src")


def synthetic(sizes: dict[str, int]) -> list[Item]:
    """Items whose category is ``meta['step']``, interleaved so file order mixes them."""
    cats = [c for c, n in sizes.items() for _ in range(n)]
    cats = cats[::2] + cats[1::2]
    return [Item(id=f"q{i}", benchmark="medqa", question=f"Q{i}?", options={"A": "a", "B": "b"},
                 answer="A", meta={"step": c}) for i, c in enumerate(cats)]


def test_largest_remainder_allocation():
    # exact shares 2.5, 1.5, 1.0: floors 2, 1, 1; the seat left goes to the larger of the two
    # equal remainders
    assert allocate({"a": 5, "b": 3, "c": 2}, 5) == {"a": 3, "b": 1, "c": 1}
    assert allocate({"a": 679, "b": 594}, 100) == {"a": 53, "b": 47}
    assert allocate({"a": 2, "b": 1}, 10) == {"a": 2, "b": 1}  # more than there is: all
    for sizes, n in [({"x": 7, "y": 13, "z": 1, "w": 40}, 17), ({"p": 3, "q": 3, "r": 3}, 4)]:
        shares = allocate(sizes, n)
        total = sum(sizes.values())
        assert sum(shares.values()) == n
        assert all(abs(shares[g] - n * s / total) < 1 and shares[g] <= s
                   for g, s in sizes.items())


def test_stratified_sample_synthetic():
    items = synthetic({"x": 70, "y": 20, "z": 10})
    a = stratified_sample(items, 10, key="step", seed=0, benchmark="medqa")
    assert Counter(it.meta["step"] for it in a) == {"x": 7, "y": 2, "z": 1}
    assert a == stratified_sample(items, 10, key="step", seed=0, benchmark="medqa")
    positions = [items.index(it) for it in a]
    assert positions == sorted(positions)  # original order kept
    others = [stratified_sample(items, 10, key="step", seed=s, benchmark="medqa")
              for s in (1, 2, 3)]
    assert any(o != a for o in others)  # the seed matters
    assert stratified_sample(items, 200, key="step", seed=0) == items
    assert limit_items(items, 10, mode="first") == items[:10]
    assert limit_items(items, None) == items
    # no category key: one group, still a seeded sample rather than the first rows
    plain = stratified_sample(items, 10, key=None, seed=0, benchmark="medmcqa")
    assert len(plain) == 10 and plain != items[:10]


def _ids_in_subprocess(data_dir: Path, hash_seed: str) -> list[str]:
    code = ("from gazal.benchmarks import load_benchmark; from gazal.eval.subset import "
            f"limit_items; b = load_benchmark('mmlu_pro_medical', {str(data_dir)!r}); "
            "print(','.join(it.id for it in limit_items(b.items, 30, seed=3, "
            "benchmark=b.name)))")
    env = dict(os.environ, PYTHONPATH=SRC, PYTHONHASHSEED=hash_seed)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True)
    return res.stdout.strip().split(",")


def test_stratified_limit_on_real_benchmarks(data_dir):
    mmlu = load_benchmark("mmlu_pro_medical", data_dir)
    first = limit_items(mmlu.items, 30, mode="first", benchmark=mmlu.name)
    assert {it.meta["category"] for it in first} == {"biology"}  # why first-N is unfair
    sample = limit_items(mmlu.items, 30, seed=3, benchmark=mmlu.name)
    # 818 health and 717 biology of 1535: exact shares 15.99 and 14.01
    assert Counter(it.meta["category"] for it in sample) == {"health": 16, "biology": 14}
    order = {it.id: k for k, it in enumerate(mmlu.items)}
    assert [order[it.id] for it in sample] == sorted(order[it.id] for it in sample)
    # the same items in another process with another hash seed
    ids = [it.id for it in sample]
    assert _ids_in_subprocess(data_dir, "1") == ids == _ids_in_subprocess(data_dir, "2")
    medqa = load_benchmark("medqa", data_dir)
    steps = Counter(it.meta["step"] for it in limit_items(medqa.items, 100,
                                                           benchmark="medqa"))
    assert steps == {"step1": 53, "step2&3": 47}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_model_dir(str(tmp_path_factory.mktemp("subset")))


def test_limit_in_a_run_results_md_and_resume(tiny, tmp_path):
    from gazal.io import atomic_write_jsonl, read_jsonl

    path = tmp_path / "held.jsonl"
    items = clinical_items(12, "held")
    atomic_write_jsonl(path, [it.to_dict() for it in items])
    items = load_items_file(path, benchmark="held")  # as the run loads them (ids from content)
    out = tmp_path / "run"

    def cfg(*extra):
        return load_config(EvalConfig, None, [
            "--model", str(tiny), "--benchmarks", "", "--items", f"held={path}",
            "--max-new-tokens", "2", "--batch-size", "4", "--out", str(out),
            "--progress", "false", *extra])

    run_eval(cfg("--limit", "4", "--limit-seed", "5"))
    got = [r["id"] for r in read_jsonl(out / "responses.jsonl")]
    assert got == [it.id for it in limit_items(items, 4, seed=5, benchmark="held")]
    assert got != [it.id for it in items[:4]]
    md = (out / "results.md").read_text()
    assert "**Subset:** `--limit 4`: a seeded random sample (seed 5)" in md
    src = json.loads((out / "summary.json").read_text())["benchmark_sources"]["held"]
    assert src["limit_mode"] == "stratified" and src["limit_seed"] == 5
    # other items, so the run in this folder cannot be resumed with them
    with pytest.raises(ConfigError, match="limit_mode: 'stratified' \\(saved\\) != 'first'"):
        run_eval(cfg("--limit", "4", "--limit-seed", "5", "--limit-mode", "first"))
    with pytest.raises(ConfigError, match="limit_seed: 5 \\(saved\\) != 6"):
        run_eval(cfg("--limit", "4", "--limit-seed", "6"))

    first = tmp_path / "first"
    out = first
    run_eval(cfg("--limit", "4", "--limit-mode", "first"))
    assert [r["id"] for r in read_jsonl(out / "responses.jsonl")] == [it.id for it in items[:4]]
    assert "`--limit 4 --limit-mode first`: the first 4 items" in (out / "results.md").read_text()

    # over the full set the limit keys change nothing, and a folder saved before they
    # existed still resumes
    out = tmp_path / "full"
    run_eval(cfg())
    saved = (out / "config.yaml").read_text()
    (out / "config.yaml").write_text("\n".join(line for line in saved.splitlines()
                                               if not line.startswith("limit_")) + "\n")
    summary = run_eval(cfg("--limit-seed", "9"))
    assert summary["n"] == 12 and summary["run"]["generated"] == 0
    assert "Subset" not in (out / "results.md").read_text()
