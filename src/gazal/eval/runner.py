"""The evaluation runner: benchmarks -> prompts -> batched generation -> scored records ->
``summary.json`` and ``results.md``, resumable.

Library entry points:

- :func:`run_eval` (``gazal eval``): a whole run into a run directory, resumable;
- :func:`evaluate_items`: score a backend on items in memory (GRPO held-out evaluation, the
  demo), no files.

Resume. The work list is every (item, sample) in a fixed order. Before generating, it is cut
into batches (hf: sorted by prompt length, see :mod:`gazal.generation.batching`) and the plan is
saved as ``plan.json``. Each finished response is appended to ``responses.jsonl`` at once
(flushed and fsynced). A re-run loads the plan, skips batches whose records are all there, and
for a batch cut short by a crash generates the *whole* batch again (the hf backend's
numbers depend on which prompts share a batch) and writes only its missing records, so a
resumed greedy run gives exactly the records of an uninterrupted one. Backends whose requests
are independent (vllm, openai) regenerate only the missing requests. Finally the file is
rewritten in the fixed order, so two runs of the same config give the same file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gazal import published
from gazal.benchmarks import (
    BENCHMARKS,
    Item,
    LoadedBenchmark,
    items_checksum,
    load_benchmark,
    load_items_file,
)
from gazal.config import ConfigError, config_to_dict
from gazal.eval.config import LIMIT_KEYS, RESUMABLE_KEYS, EvalConfig
from gazal.eval.forcing import apply_forcing, forcing_summary, run_forcing
from gazal.eval.metrics import summarize
from gazal.eval.records import response_record
from gazal.eval.results import render_results_md
from gazal.eval.score import category_keys, summary_table
from gazal.eval.subset import limit_items
from gazal.formatting import SYSTEM_PROMPT, build_messages
from gazal.generation.base import (
    Backend,
    BatchingBackend,
    Conversation,
    Generation,
    GenerationParams,
)
from gazal.generation.prompts import template_has_thinking
from gazal.io import (
    DataError,
    ResumableJsonlWriter,
    atomic_write_json,
    atomic_write_jsonl,
    atomic_write_text,
    read_json,
)
from gazal.rundir import CONFIG_FILE, prepare_run_dir

log = logging.getLogger("gazal")

__all__ = ["RunStats", "Task", "build_tasks", "derive_seed", "evaluate_items",
           "generation_params", "run_eval"]

RESPONSES_FILE = "responses.jsonl"
PLAN_FILE = "plan.json"
SUMMARY_FILE = "summary.json"
RESULTS_FILE = "results.md"
# the files a finished run publishes together (gazal.published)
EVAL_SET = (RESPONSES_FILE, SUMMARY_FILE, RESULTS_FILE)
LOG_FILE = "eval.log"

Key = tuple[str, int]


@dataclass(frozen=True)
class Task:
    """One generation to do: an item and which sample of it."""

    item: Item
    sample_index: int

    @property
    def key(self) -> Key:
        return (self.item.id, self.sample_index)


@dataclass
class RunStats:
    """What one call generated (for the progress line and ``summary.json``)."""

    generated: int = 0
    completion_tokens: int = 0
    failed: int = 0
    errors: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        rate = self.generated / self.seconds if self.seconds else 0.0
        tok_rate = self.completion_tokens / self.seconds if self.seconds else 0.0
        return {"generated": self.generated, "completion_tokens": self.completion_tokens,
                "failed": self.failed, "seconds": round(self.seconds, 3),
                "responses_per_s": round(rate, 3), "tokens_per_s": round(tok_rate, 2)}


def derive_seed(seed: int, *parts: Any) -> int:
    """A 31-bit seed from ``seed`` and labels (a batch index, an item id and sample), stable
    across runs and machines."""
    payload = json.dumps([seed, *parts], separators=(",", ":")).encode("utf-8")
    return int.from_bytes(hashlib.sha256(payload).digest()[:4], "big") & 0x7FFFFFFF


def generation_params(cfg: EvalConfig) -> GenerationParams:
    """The backend settings of an eval config."""
    return GenerationParams(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature,
                            top_p=cfg.top_p, seed=cfg.seed, thinking=cfg.thinking,
                            top_k=cfg.top_k, min_p=cfg.min_p)


def build_tasks(items: Sequence[Item], samples: int = 1) -> list[Task]:
    """Every (item, sample) in the fixed order: items in order, samples within an item."""
    tasks = [Task(item, s) for item in items for s in range(samples)]
    keys = [t.key for t in tasks]
    if len(set(keys)) != len(keys):
        seen: set[Key] = set()
        dup = next(k for k in keys if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise DataError(f"item id {dup[0]!r} appears twice; ids must be unique")
    return tasks


def _system_prompt(value: str | None) -> str | None:
    return SYSTEM_PROMPT if value is None else (value or None)


def _conversation(task: Task, system_prompt: str | None) -> Conversation:
    return build_messages(task.item, system_prompt)


# --------------------------------------------------------------------------- planning


def _chunks(n: int, size: int) -> list[list[int]]:
    return [list(range(i, min(n, i + size))) for i in range(0, n, size)]


def _plan(tasks: Sequence[Task], backend: Backend, params: GenerationParams,
          system_prompt: str | None, chunk_size: int) -> list[list[int]]:
    """Batches of indices into ``tasks``: the backend's own plan when it batches (hf),
    otherwise chunks in the fixed order."""
    if isinstance(backend, BatchingBackend):
        lengths = [len(p) for p in backend.prompt_ids(
            [_conversation(t, system_prompt) for t in tasks], params)]
        return backend.plan_batches(lengths, params)
    return _chunks(len(tasks), chunk_size)


def _chunk_size(cfg: EvalConfig | None, backend: Backend) -> int:
    """Requests per saved chunk for backends that schedule requests themselves."""
    if cfg is not None and isinstance(cfg.batch_size, int):
        return cfg.batch_size
    return backend.chunk_size


# --------------------------------------------------------------------------- generation


class _Progress:
    """tqdm bar with responses/s and generated tokens/s (thread-safe updates)."""

    def __init__(self, total: int, initial: int, enabled: bool):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, initial=initial, unit="resp", dynamic_ncols=True,
                        disable=not enabled, desc="eval")
        self.start = time.perf_counter()
        self.tokens = 0
        self.lock = threading.Lock()

    def update(self, gen: Generation) -> None:
        with self.lock:
            self.tokens += gen.n_completion_tokens or 0
            elapsed = max(1e-9, time.perf_counter() - self.start)
            self.bar.set_postfix_str(f"{self.tokens / elapsed:,.1f} tok/s", refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def _generate(tasks: Sequence[Task], batches: Sequence[Sequence[int]], done: set[Key],
              backend: Backend, params: GenerationParams, system_prompt: str | None,
              seed: int, sink: Callable[[dict[str, Any]], None], progress: _Progress,
              on_batch_end: Callable[[int], None] | None = None) -> RunStats:
    """Generate every task not in ``done``, batch by batch, passing records to ``sink``."""
    stats = RunStats()
    start = time.perf_counter()
    lock = threading.Lock()
    batch_dependent = isinstance(backend, BatchingBackend) and backend.batch_dependent

    def accept(task: Task, gen: Generation) -> None:
        with lock:
            if gen.finish_reason == "error":
                stats.failed += 1
                if len(stats.errors) < 5:
                    stats.errors.append(f"{task.item.id} (sample {task.sample_index}): "
                                        f"{gen.error}")
                log.debug("request for %s failed: %s", task.item.id, gen.error)
                return
            sink(response_record(task.item, task.sample_index, gen))
            done.add(task.key)
            stats.generated += 1
            stats.completion_tokens += gen.n_completion_tokens or 0
        progress.update(gen)

    for b, batch in enumerate(batches):
        missing = [i for i in batch if tasks[i].key not in done]
        if not missing:
            continue
        if batch_dependent and isinstance(backend, BatchingBackend):
            # The whole batch, as planned, so its numbers are those of an uninterrupted run.
            batch_tasks = [tasks[i] for i in batch]
            ids = backend.prompt_ids([_conversation(t, system_prompt) for t in batch_tasks],
                                     params)
            bparams = dataclasses.replace(params, seed=derive_seed(seed, "batch", b))
            gens = backend.generate_batch(ids, bparams)
            for task, gen in zip(batch_tasks, gens, strict=True):
                if task.key not in done:
                    accept(task, gen)
        else:
            todo = [tasks[i] for i in missing]
            seeds = [derive_seed(seed, t.item.id, t.sample_index) for t in todo]
            backend.generate([_conversation(t, system_prompt) for t in todo], params,
                             on_result=lambda i, gen, todo=todo: accept(todo[i], gen),
                             seeds=seeds)
        if on_batch_end is not None:
            on_batch_end(b)
    stats.seconds = time.perf_counter() - start
    return stats


def evaluate_items(items: Sequence[Item], backend: Backend, params: GenerationParams, *,
                   samples: int = 1, system_prompt: str | None = SYSTEM_PROMPT,
                   seed: int = 0, chunk_size: int = 256, progress: bool = False
                   ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Generate and score ``items`` in memory: ``(records, summary)``.

    For callers that hold a model already (GRPO held-out evaluation, the demo): pass
    ``HFBackend(model, tokenizer)``. Records are in the fixed (item, sample) order; a failed
    request (openai backend) is left out and counted in ``summary["failed"]``.
    """
    tasks = build_tasks(items, samples)
    batches = _plan(tasks, backend, params, system_prompt, chunk_size)
    records: dict[Key, dict[str, Any]] = {}
    bar = _Progress(len(tasks), 0, progress)
    try:
        stats = _generate(tasks, batches, set(), backend, params, system_prompt, seed,
                          lambda r: records.__setitem__((r["id"], r["sample_index"]), r), bar)
    finally:
        bar.close()
    ordered = [records[t.key] for t in tasks if t.key in records]
    summary = summarize(ordered, category_keys())
    summary["failed"] = stats.failed
    summary["run"] = stats.as_dict()
    return ordered, summary


# --------------------------------------------------------------------------- run_eval


def _limited(items: Sequence[Item], name: str, cfg: EvalConfig) -> list[Item]:
    return limit_items(items, cfg.limit, mode=cfg.limit_mode, seed=cfg.limit_seed,
                       benchmark=name)


def load_benchmarks(cfg: EvalConfig) -> list[LoadedBenchmark]:
    """The benchmarks ``cfg`` names, then its local ``items`` files, loaded (with
    ``cfg.limit``: the stratified sample or the first N, :mod:`gazal.eval.subset`; the
    checksum is the full set's)."""
    loaded = []
    for name in cfg.benchmarks:
        b = load_benchmark(name, cfg.data_dir, source=cfg.source)
        loaded.append(dataclasses.replace(b, items=_limited(b.items, b.name, cfg),
                                          full_n=b.n))
    for spec in cfg.items:
        name, _, path = spec.rpartition("=") if "=" in spec else ("", "", spec)
        items = load_items_file(path, benchmark=name or Path(path).stem)
        bname = items[0].benchmark if items else name or path
        loaded.append(LoadedBenchmark(name=bname, items=_limited(items, bname, cfg),
                                      source=f"file:{path}", sha256=items_checksum(items),
                                      full_n=len(items)))
    names = [b.name for b in loaded]
    if len(set(names)) != len(names):
        raise ValueError(f"benchmark names repeat: {names}; name item files with NAME=PATH")
    return loaded


def _batch_settings(cfg: EvalConfig) -> dict[str, Any]:
    return {"backend": cfg.backend, "batch_size": cfg.batch_size,
            "batch_tokens": cfg.batch_tokens, "max_batch_size": cfg.max_batch_size}


def _load_or_make_plan(run_dir: Path, cfg: EvalConfig, tasks: Sequence[Task], done: set[Key],
                       backend: Backend, params: GenerationParams, system_prompt: str | None,
                       checksums: Mapping[str, str]) -> list[list[int]]:
    """The saved plan (resume) or a new one, saved. Changed batch settings re-plan only the
    work no batch has finished."""
    path = run_dir / PLAN_FILE
    index = {t.key: i for i, t in enumerate(tasks)}
    settings = _batch_settings(cfg)
    chunk = _chunk_size(cfg, backend)
    if path.exists():
        saved = read_json(path)
        if saved.get("checksums") != dict(checksums):
            raise ConfigError(
                f"{run_dir}: the benchmark items changed since this run started (checksums "
                f"{saved.get('checksums')} then, {dict(checksums)} now); use a new --out")
        try:
            batches = [[index[(k[0], int(k[1]))] for k in batch] for batch in saved["batches"]]
        except (KeyError, TypeError, IndexError, ValueError) as err:
            raise DataError(f"plan does not match this run's items ({err}); delete it to "
                            "re-plan", path) from None
        if sorted(i for b in batches for i in b) != list(range(len(tasks))):
            raise DataError("plan does not cover this run's items; delete it to re-plan", path)
        if saved.get("settings") == settings:
            return batches
        kept = [b for b in batches if all(tasks[i].key in done for i in b)]
        rest = sorted(set(range(len(tasks))) - {i for b in kept for i in b})
        sub = _plan([tasks[i] for i in rest], backend, params, system_prompt, chunk)
        batches = kept + [[rest[j] for j in b] for b in sub]
        log.info("batch settings changed: re-planned the %d unfinished responses", len(rest))
    else:
        batches = _plan(tasks, backend, params, system_prompt, chunk)
    plan = {"version": 1, "settings": settings, "checksums": dict(checksums),
            "batch_tokens_resolved": (backend.batch_tokens
                                      if isinstance(backend, BatchingBackend) else None),
            "batches": [[list(tasks[i].key) for i in b] for b in batches]}
    atomic_write_text(path, json.dumps(plan, separators=(",", ":")) + "\n")
    return batches


def _read_done(writer: ResumableJsonlWriter, tasks: Sequence[Task]) -> set[Key]:
    keys = {t.key for t in tasks}
    done: set[Key] = set()
    for lineno, rec in enumerate(writer.records, start=1):
        key = (rec.get("id"), rec.get("sample_index"))
        if key not in keys:
            raise DataError(f"record {key} is not part of this run's work; the file belongs "
                            "to another run", writer.path, lineno)
        if key in done:
            raise DataError(f"record {key} appears twice", writer.path, lineno)
        done.add(key)  # type: ignore[arg-type]
    return done


def _has_records(path: Path) -> bool:
    """Whether ``path`` holds at least one complete response record."""
    if not path.exists():
        return False
    for raw in path.read_bytes().split(b"\n"):
        try:
            if raw.strip() and isinstance(json.loads(raw), dict):
                return True
        except ValueError:
            continue
    return False


def _forget_config_without_results(run_dir: Path) -> None:
    """A run folder whose run stopped before its first response (the model failed to load,
    a typo in a setting, out of memory in the first batch) holds no result a new config
    could contradict: drop its saved config and plan so the corrected command can run into
    the same folder instead of being refused as a different run."""
    config_path = run_dir / CONFIG_FILE
    if not config_path.exists() or _has_records(run_dir / RESPONSES_FILE):
        return
    config_path.unlink()
    (run_dir / PLAN_FILE).unlink(missing_ok=True)
    log.info("%s holds no responses yet: its saved config is replaced by this run's", run_dir)


def run_eval(cfg: EvalConfig, *, backend: Backend | None = None,
             benchmarks: Sequence[LoadedBenchmark] | None = None,
             on_batch_end: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Run (or resume) the evaluation ``cfg`` describes into ``cfg.out``; returns the summary.

    ``backend`` overrides the one ``cfg`` would build (library callers with a model in
    memory); ``benchmarks`` overrides loading. ``on_batch_end(batch_index)`` is called after
    each generated batch (tests use it to simulate a crash).
    """
    if backend is None:
        from gazal.eval.backend import check_backend_available

        check_backend_available(cfg)
    _forget_config_without_results(Path(cfg.out))
    resumable = RESUMABLE_KEYS + (LIMIT_KEYS if cfg.limit is None else ())
    run_dir = prepare_run_dir(cfg.out, cfg, resumable_keys=resumable, command="eval")
    handler = logging.FileHandler(run_dir / LOG_FILE, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    owns_backend = backend is None
    try:
        loaded = list(benchmarks) if benchmarks is not None else load_benchmarks(cfg)
        items = [it for b in loaded for it in b.items]
        tasks = build_tasks(items, cfg.samples)
        params = generation_params(cfg)
        system_prompt = _system_prompt(cfg.system_prompt)
        checksums = {b.name: b.sha256 for b in loaded}
        published.begin(run_dir, "eval")  # responses, summary, results.md: one set
        with ResumableJsonlWriter(run_dir / RESPONSES_FILE) as writer:
            done = _read_done(writer, tasks)
            stats = RunStats()
            if len(done) < len(tasks):
                if done:
                    log.info("resuming: %d of %d responses already in %s", len(done),
                             len(tasks), writer.path)
                if backend is None:
                    backend = _build_backend(cfg)
                batches = _load_or_make_plan(run_dir, cfg, tasks, done, backend, params,
                                             system_prompt, checksums)
                bar = _Progress(len(tasks), len(done), cfg.progress)
                try:
                    stats = _generate(tasks, batches, done, backend, params, system_prompt,
                                      cfg.seed, writer.append, bar, on_batch_end)
                finally:
                    bar.close()
            by_key = {(r["id"], r["sample_index"]): r for r in writer.records}
        ordered = [by_key[t.key] for t in tasks if t.key in by_key]
        if cfg.force_answer_tokens:
            def backend_now() -> Backend:
                nonlocal backend
                if backend is None:
                    backend = _build_backend(cfg)
                return backend

            forced = run_forcing(ordered, {t.key: _conversation(t, system_prompt)
                                           for t in tasks}, backend_now, params,
                                 cfg.force_answer_tokens, run_dir,
                                 lambda b: derive_seed(cfg.seed, "forced", b),
                                 lambda k: derive_seed(cfg.seed, "forced", k[0], k[1]))
            ordered = [apply_forcing(r, forced.get((r["id"], r["sample_index"])))
                       for r in ordered]
        atomic_write_jsonl(run_dir / RESPONSES_FILE, ordered)  # the fixed order
        summary = _summary(cfg, loaded, ordered, stats, len(tasks),
                           _template_thinking(backend, run_dir))
        if cfg.force_answer_tokens:
            summary["forcing"] = forcing_summary(ordered, cfg.force_answer_tokens)
        atomic_write_json(run_dir / SUMMARY_FILE, summary)
        atomic_write_text(run_dir / RESULTS_FILE, render_results_md(summary))
        published.publish(run_dir, EVAL_SET, "eval")
        _final_line(summary, stats, run_dir)
        return summary
    finally:
        if owns_backend and backend is not None:
            backend.close()
        log.removeHandler(handler)
        handler.close()


def _template_thinking(backend: Backend | None, run_dir: Path) -> bool | None:
    """Whether the chat template has a thinking switch (``enable_thinking`` changes the
    prompt); None when unknown (the openai backend: the server's template decides). A re-run
    of a finished run builds no backend and keeps what the previous summary said."""
    if backend is None:
        path = run_dir / SUMMARY_FILE
        try:
            return (read_json(path).get("generation") or {}).get("template_thinking") \
                if path.exists() else None
        except DataError:
            return None
    tokenizer = getattr(backend, "tokenizer", None)
    return template_has_thinking(tokenizer) if tokenizer is not None else None


def _build_backend(cfg: EvalConfig) -> Backend:
    from gazal.eval.backend import get_backend

    return get_backend(cfg)


def _summary(cfg: EvalConfig, loaded: Sequence[LoadedBenchmark],
             records: Sequence[dict[str, Any]], stats: RunStats, n_tasks: int,
             template_thinking: bool | None = None) -> dict[str, Any]:
    summary = summarize(records, category_keys())
    summary["complete"] = len(records) == n_tasks
    summary["expected"] = n_tasks
    summary["failed"] = stats.failed
    if stats.errors:
        summary["errors"] = stats.errors
    summary["model"] = cfg.model
    summary["adapter"] = cfg.adapter
    summary["backend"] = cfg.backend
    summary["generation"] = {"max_new_tokens": cfg.max_new_tokens,
                             "temperature": cfg.temperature, "top_p": cfg.top_p,
                             "top_k": cfg.top_k, "min_p": cfg.min_p,
                             "thinking": cfg.thinking, "template_thinking": template_thinking,
                             "samples": cfg.samples, "seed": cfg.seed,
                             "system_prompt": "gazal" if cfg.system_prompt is None
                             else ("none" if not cfg.system_prompt else "custom")}
    summary["benchmark_sources"] = {}
    for b in loaded:
        spec = BENCHMARKS.get(b.name)  # None for an item set that is not registered
        summary["benchmark_sources"][b.name] = {
            "title": spec.title if spec else b.name, "source": b.source, "sha256": b.sha256,
            "pinned_version": spec.known_checksums.get(b.sha256) if spec else None,
            "evaluated": b.n,
            "full_size": spec.expected_n if spec else (b.full_n or b.n),
            "limit": cfg.limit, "limit_mode": cfg.limit_mode if cfg.limit else None,
            "limit_seed": cfg.limit_seed if cfg.limit and cfg.limit_mode == "stratified"
            else None,
            "stratified_by": (spec.categories_key if spec else None)
            if cfg.limit and cfg.limit_mode == "stratified" else None,
            "paper_accuracy": spec.paper_accuracy if spec else None}
    summary["totals"] = {
        "responses": len(records),
        "prompt_tokens": sum(r.get("n_prompt_tokens") or 0 for r in records),
        "completion_tokens": sum(r.get("n_completion_tokens") or 0 for r in records)}
    summary["run"] = stats.as_dict()
    summary["config"] = config_to_dict(cfg)  # holds no secret: only the key's env var name
    return summary


def _final_line(summary: Mapping[str, Any], stats: RunStats, run_dir: Path) -> None:
    t = summary["totals"]
    line = (f"done: {t['responses']:,} responses ({stats.generated:,} generated now in "
            f"{stats.seconds:,.1f} s: {stats.as_dict()['responses_per_s']:.2f} resp/s, "
            f"{stats.as_dict()['tokens_per_s']:,.1f} tok/s); {t['completion_tokens']:,} "
            f"generated tokens in all; accuracy {100 * summary['accuracy']:.1f}%")
    if summary.get("macro_accuracy") is not None and len(summary.get("benchmarks", {})) > 1:
        line += f", macro {100 * summary['macro_accuracy']:.1f}%"
    log.debug("%s", summary_table(summary))
    log.info("%s; wrote %s", line, run_dir)
    if stats.failed:
        log.warning("%d request(s) failed and were not recorded (e.g. %s); re-run the same "
                    "command to retry them", stats.failed, stats.errors[0] if stats.errors
                    else "?")
