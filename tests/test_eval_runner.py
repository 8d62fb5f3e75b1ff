"""``gazal eval`` end to end with a tiny random Qwen3: every benchmark, outputs, resume after a
crash (identical to an uninterrupted run), seeded sampling, and ``gazal score`` agreement."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.tiny_eval import clinical_items, loaded, tiny_model_dir

from gazal import published
from gazal.benchmarks import benchmark_names
from gazal.config import ConfigError, load_config
from gazal.eval.config import EvalConfig
from gazal.eval.records import RECORD_FIELDS
from gazal.eval.runner import EVAL_SET, evaluate_items, run_eval
from gazal.io import read_jsonl
from gazal.published import MANIFEST

SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_model_dir(str(tmp_path_factory.mktemp("runner")))


@pytest.fixture(scope="module")
def backend(tiny):
    from gazal.generation.hf import HFBackend

    return HFBackend(str(tiny), batch_size=3)


def config(tiny, out, **kw):
    values = {"model": str(tiny), "out": str(out), "max_new_tokens": 6, "batch_size": 3,
              "progress": False, **kw}
    return load_config(EvalConfig, None, [f"--{k}={v}" for k, v in values.items()])


def env():
    e = dict(os.environ)
    e["PYTHONPATH"] = SRC + os.pathsep + e.get("PYTHONPATH", "")
    return e


def gazal(*args, **kw):
    return subprocess.run([sys.executable, "-m", "gazal", *args], capture_output=True,
                          text=True, env=kw.pop("env", None) or env(), **kw)


def compare_with_score(out: Path, tmp: Path) -> None:
    """`gazal score responses.jsonl` reproduces eval's numbers exactly."""
    res = gazal("score", str(out / "responses.jsonl"), "--out", str(tmp / "rescored"))
    assert res.returncode == 0, res.stderr
    ours = json.loads((out / "summary.json").read_text())
    theirs = json.loads((tmp / "rescored" / "summary.json").read_text())
    for key in ("n", "correct", "accuracy", "accuracy_ci95", "missing", "truncated",
                "benchmarks", "macro_accuracy"):
        assert ours[key] == theirs[key], key


def test_every_benchmark_end_to_end(tiny, tmp_path, data_dir):
    out = tmp_path / "run"
    res = gazal("eval", "--model", str(tiny), "--benchmarks", "all", "--limit", "2",
                "--max-new-tokens", "6", "--out", str(out), "--data-dir", str(data_dir))
    assert res.returncode == 0, res.stderr
    records = read_jsonl(out / "responses.jsonl")
    assert len(records) == 2 * len(benchmark_names())
    assert [r["benchmark"] for r in records[::2]] == benchmark_names()
    for r in records:
        assert list(r) == list(RECORD_FIELDS)
        assert r["n_prompt_tokens"] > 0 and 0 < r["n_completion_tokens"] <= 6
        # cut at the limit means truncated, whatever the text
        assert r["truncated"] is (r["finish_reason"] == "length" or r["truncated"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] and summary["n"] == len(records)
    assert summary["benchmark_sources"]["medqa"]["pinned_version"] == "MedQA USMLE 4-option test"
    # --limit 2 is the stratified sample: one item of each USMLE step, not the first two rows
    assert {r["meta"]["step"] for r in records if r["benchmark"] == "medqa"} == \
        {"step1", "step2&3"}
    md = (out / "results.md").read_text()
    for text in ("| MedQA (USMLE, 4 options) | 2 |", "87.1 (full set)", "## By category",
                 "step1", "Macro average over 6 benchmarks", "**Subset:** `--limit 2`",
                 "medqa by `step`",
                 summary["benchmark_sources"]["pubmedqa"]["sha256"]):
        assert text in md, text
    assert "done: 12 responses" in res.stderr and "tok/s" in res.stderr
    compare_with_score(out, tmp_path)
    # a re-run of a finished run loads no model and changes nothing
    before = (out / "responses.jsonl").read_bytes()
    again = gazal("eval", "--model", str(tiny), "--benchmarks", "all", "--limit", "2",
                  "--max-new-tokens", "6", "--out", str(out), "--data-dir", str(data_dir))
    assert again.returncode == 0 and (out / "responses.jsonl").read_bytes() == before
    assert "0 generated now" in again.stderr


class Crash(RuntimeError):
    pass


def crash_after(n):
    def hook(batch_index):
        if batch_index == n:
            raise Crash(f"simulated crash after batch {batch_index}")
    return hook


@pytest.mark.parametrize("sampled", [False, True], ids=["greedy", "sampled"])
def test_resume_after_crash_equals_uninterrupted_run(tiny, backend, tmp_path, sampled):
    items = [loaded(clinical_items(8))]
    extra = {"temperature": 1.0, "samples": 2, "seed": 7} if sampled else {}
    ref = tmp_path / "ref"
    run_eval(config(tiny, ref, **extra), backend=backend, benchmarks=items)

    out = tmp_path / "crashed"
    cfg = config(tiny, out, **extra)
    with pytest.raises(Crash):
        run_eval(cfg, backend=backend, benchmarks=items, on_batch_end=crash_after(1))
    partial = (out / "responses.jsonl").read_text().splitlines()
    assert len(partial) == 6  # two batches of three written before the crash
    assert json.loads((out / MANIFEST).read_text())["complete"] is False  # marked unfinished
    # Make the crash land inside batch 2: drop its last record and leave a torn line.
    (out / "responses.jsonl").write_text("\n".join(partial[:5]) + "\n" + partial[5][:40])
    summary = run_eval(cfg, backend=backend, benchmarks=items)
    n_total = 16 if sampled else 8
    # batch 2 was generated again as a whole but only its missing record was written
    assert summary["run"]["generated"] == n_total - 5
    assert (out / "responses.jsonl").read_bytes() == (ref / "responses.jsonl").read_bytes()
    assert sorted(published.verify(out, command="eval")["files"]) == sorted(EVAL_SET)
    plan = json.loads((out / "plan.json").read_text())
    assert [len(b) for b in plan["batches"]][:2] == [3, 3]


def test_sampled_runs_reproducible_and_seed_matters(tiny, backend, tmp_path):
    items = [loaded(clinical_items(3))]

    def responses(name, seed):
        run_eval(config(tiny, tmp_path / name, temperature=1.0, samples=2, seed=seed),
                 backend=backend, benchmarks=items)
        return [r["response"] for r in read_jsonl(tmp_path / name / "responses.jsonl")]

    a, b, c = responses("a", 1), responses("b", 1), responses("c", 2)
    assert a == b and a != c
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["benchmarks"]["medqa"]["samples"] == 2  # mean ± std over samples
    assert set(summary["benchmarks"]["medqa"]["pass_at_k"]) == {"1", "2"}
    assert "majority_accuracy" in summary["benchmarks"]["medqa"]
    md = (tmp_path / "a" / "results.md").read_text()
    assert "± " in md and "## Over samples" in md and "pass@2" in md


def test_resume_refuses_changed_config_and_foreign_records(tiny, backend, tmp_path):
    items = [loaded(clinical_items(3))]
    out = tmp_path / "run"
    run_eval(config(tiny, out), backend=backend, benchmarks=items)
    with pytest.raises(ConfigError, match="max_new_tokens: 6 \\(saved\\) != 7"):
        run_eval(config(tiny, out, max_new_tokens=7), backend=backend, benchmarks=items)
    # speed-only settings may change on resume
    run_eval(config(tiny, out, batch_size=2), backend=backend, benchmarks=items)
    with (out / "responses.jsonl").open("a") as f:
        f.write(json.dumps({"id": "someone-else", "sample_index": 0}) + "\n")
    from gazal.io import DataError

    with pytest.raises(DataError, match=r"responses.jsonl:4: .*not part of this run"):
        run_eval(config(tiny, out), backend=backend, benchmarks=items)


def test_evaluate_items_in_memory(backend):
    from gazal.generation.base import GenerationParams

    items = clinical_items(4)
    records, summary = evaluate_items(items, backend, GenerationParams(max_new_tokens=5))
    assert [r["id"] for r in records] == [it.id for it in items]
    assert summary["n"] == 4 and summary["failed"] == 0
    assert all(r["n_completion_tokens"] == 5 and r["truncated"] for r in records)


def test_config_flags_and_errors(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model: m\nbenchmarks: [medqa, pubmedqa]\nthinking: off\n"
                      "openai:\n  concurrency: 4\n")
    cfg = load_config(EvalConfig, recipe, ["--max-new-tokens", "512", "--batch-size", "auto",
                                           "--concurrency", "16", "--top-p", "0.9"])
    assert cfg.benchmarks == ["medqa", "pubmedqa"] and cfg.thinking is False
    assert cfg.max_new_tokens == 512 and cfg.batch_size == "auto" and cfg.top_p == 0.9
    assert cfg.openai.concurrency == 16
    assert load_config(EvalConfig, None, ["--model", "m", "--batch-size", "8"]).batch_size == 8
    from gazal.eval.runner import generation_params

    sampled = load_config(EvalConfig, None, ["--model", "m", "--temperature", "0.6",
                                             "--top-k", "20", "--min-p", "0"])
    params = generation_params(sampled)
    assert (params.temperature, params.top_k, params.min_p) == (0.6, 20, 0.0)
    assert load_config(EvalConfig, None, ["--model", "m", "--benchmarks", "all"]).benchmarks \
        == benchmark_names()
    bad = [
        (["--model", "m", "--benchmarks", "medqq"], "unknown benchmark 'medqq'; did you mean "
                                                    "'medqa'"),
        (["--model", "m", "--samples", "4"], "temperature 0 would repeat"),
        (["--model", "m", "--top-k", "0"], "key 'top_k': must be >= 1 or null"),
        (["--model", "m", "--min-p", "1.5"], "key 'min_p'"),
        (["--model", "m", "--batch-size", "big"], "key 'batch_size'"),
        (["--benchmarks", "medqa"], "'model' is required"),
        (["--model", "m", "--backend", "openai", "--adapter", "a"], "load the adapter in the "
                                                                    "server"),
        (["--model", "m", "--max-new-token", "5"], "did you mean --max_new_tokens"),
    ]
    for args, message in bad:
        with pytest.raises(ConfigError, match=message):
            load_config(EvalConfig, None, args)


def test_cli_recipe_first_then_overrides(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model: m\nbackend: nonsense\n")
    res = gazal("eval", str(recipe), "--limit", "2")
    assert res.returncode == 2 and "key 'backend'" in res.stderr and str(recipe) in res.stderr
    res = gazal("eval", "--help")
    assert res.returncode == 0 and "--max-new-tokens" in res.stdout and "--openai.base-url" \
        in res.stdout


# eval_toy.yaml is a pipeline stage's recipe: the pipeline supplies its items
@pytest.mark.parametrize("recipe", sorted(p for p in Path(__file__).resolve().parents[1]
                                          .glob("recipes/*/eval*.yaml")
                                          if p.stem != "eval_toy"),
                         ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_eval_recipes_load(recipe):
    cfg = load_config(EvalConfig, recipe, ["--limit", "3"])
    assert cfg.limit == 3 and cfg.benchmarks
    if recipe.stem == "eval_thinking":  # the Qwen3 card's thinking-mode sampling
        assert (cfg.temperature, cfg.top_p, cfg.top_k, cfg.min_p) == (0.6, 0.95, 20, 0.0)
        assert cfg.thinking and cfg.samples > 1


def test_cli_names_a_model_that_cannot_load(tmp_path, data_dir):
    res = gazal("eval", "--model", str(tmp_path / "nowhere"), "--out", str(tmp_path / "run"),
                "--benchmarks", "medqa", "--limit", "1", "--data-dir", str(data_dir))
    assert res.returncode == 2 and "cannot load model" in res.stderr
    assert str(tmp_path / "nowhere") in res.stderr and "Traceback" not in res.stderr


def test_local_items_files_are_benchmarks_of_their_own(tiny, tmp_path):
    from gazal.cli import main
    from gazal.io import atomic_write_jsonl

    path = tmp_path / "toy_heldout.jsonl"
    atomic_write_jsonl(path, [it.to_dict() for it in clinical_items(3, "toy")])
    out = tmp_path / "run"
    assert main(["eval", "--model", str(tiny), "--benchmarks", "", "--items",
                 f"held={path}", "--max-new-tokens", "4", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["benchmarks"]) == ["held"] and summary["n"] == 3
    with pytest.raises(ConfigError, match="'benchmarks' is empty"):
        load_config(EvalConfig, None, ["--model", "m", "--benchmarks", ""])
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert main(["eval", "--model", str(tiny), "--benchmarks", "", "--items", str(empty),
                 "--out", str(tmp_path / "empty-run")]) == 2  # not n = 0 and exit 0


NO_THINKING_TEMPLATE = (
    "{%- for m in messages -%}{{- '<|im_start|>' + m['role'] + '\\n' + m['content'] + "
    "'<|im_end|>\\n' -}}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}")


def test_results_md_says_thinking_only_when_the_template_has_it(tiny, backend, tmp_path):
    import copy

    from gazal.generation.hf import HFBackend
    from gazal.generation.prompts import template_has_thinking

    items = [loaded(clinical_items(2))]
    run_eval(config(tiny, tmp_path / "a"), backend=backend, benchmarks=items)
    md = (tmp_path / "a" / "results.md").read_text()
    assert "chat template with thinking on" in md
    tok = copy.deepcopy(backend.tokenizer)
    tok.chat_template = NO_THINKING_TEMPLATE
    assert template_has_thinking(backend.tokenizer) is True
    assert template_has_thinking(tok) is False
    plain = HFBackend(backend.model, tok, batch_size=3)
    run_eval(config(tiny, tmp_path / "b"), backend=plain, benchmarks=items)
    md = (tmp_path / "b" / "results.md").read_text()
    assert "thinking on" not in md and "it has no thinking mode" in md
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert summary["generation"]["template_thinking"] is False
    # a re-run of the finished run builds no backend and keeps what the summary said
    run_eval(config(tiny, tmp_path / "b"), benchmarks=items)
    assert "it has no thinking mode" in (tmp_path / "b" / "results.md").read_text()


def test_real_qwen3_template_has_a_thinking_switch(tokenizer_dir):
    from transformers import AutoTokenizer

    from gazal.generation.prompts import template_has_thinking

    assert template_has_thinking(AutoTokenizer.from_pretrained(tokenizer_dir)) is True


def test_a_model_that_failed_to_load_does_not_block_the_corrected_run(tiny, tmp_path):
    from gazal.cli import main
    from gazal.io import atomic_write_jsonl

    path = tmp_path / "held.jsonl"
    atomic_write_jsonl(path, [it.to_dict() for it in clinical_items(2, "held")])
    out = tmp_path / "run"
    common = ["--benchmarks", "", "--items", f"held={path}", "--max-new-tokens", "3",
              "--out", str(out), "--progress", "false"]
    assert main(["eval", "--model", str(tmp_path / "nowhere"), *common]) == 2
    assert (out / "config.yaml").exists() and not (out / "responses.jsonl").read_text()
    assert main(["eval", "--model", str(tiny), *common]) == 0
    assert json.loads((out / "summary.json").read_text())["n"] == 2
    # once the folder holds responses, a different config is refused as before
    with pytest.raises(ConfigError, match="max_new_tokens: 3 \\(saved\\) != 4"):
        run_eval(load_config(EvalConfig, None, ["--model", str(tiny), *common,
                                                "--max-new-tokens", "4"]))


def test_continuous_batching_gives_the_static_greedy_answers_and_resumes(tiny, backend,
                                                                         tmp_path):
    """--batching continuous (transformers' engine): the same greedy responses as static
    batching, chunked by the runner (not a BatchingBackend), and a crashed run resumes."""
    from gazal.eval.backend import get_backend
    from gazal.generation import BatchingBackend

    items = [loaded(clinical_items(8))]
    ref = tmp_path / "static"
    run_eval(config(tiny, ref, max_new_tokens=12), backend=backend, benchmarks=items)
    cfg = config(tiny, tmp_path / "cb", max_new_tokens=12, batching="continuous")
    cb = get_backend(cfg)
    assert not isinstance(cb, BatchingBackend) and cb.chunk_size >= 1
    with pytest.raises(Crash):
        run_eval(cfg, backend=cb, benchmarks=items, on_batch_end=crash_after(0))
    summary = run_eval(cfg, backend=cb, benchmarks=items)
    def texts(out):
        return {(r["id"], r["sample_index"]): r["response"]
                for r in read_jsonl(out / "responses.jsonl")}
    assert texts(tmp_path / "cb") == texts(ref) and summary["n"] == 8
    with pytest.raises(ConfigError, match="continuous is the hf backend's option"):
        config(tiny, tmp_path / "x", backend="openai", batching="continuous",
               **{"openai.base_url": "http://127.0.0.1:9"})
