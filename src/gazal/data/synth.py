"""``gazal data synth``: a teacher writes one reasoning example per (seed, category).

For each seed (an MCQ :class:`~gazal.benchmarks.Item` or a case vignette) and each category
of the recipe (diagnostic reasoning, treatment planning, decision-making under uncertainty,
prognostic assessment), the teacher gets the recipe's system prompt and the category's
prompt around the problem, and must answer in gazal's reasoning format. A reply is kept when

- the backend returned it whole (not an error, not cut at ``max_new_tokens``);
- it is in the format (:func:`gazal.data.validate.check_format`);
- for MCQ seeds: its final answer extracts (:func:`gazal.extraction.extract_answer`, the one
  extractor eval and the rewards use) to the gold letter.

Otherwise the unit is tried again, up to ``max_attempts`` (rejection sampling); every attempt's
outcome is counted. Units whose ``max_attempts`` real replies were all rejected go to
``rejected.jsonl`` ("given up").

A failed request (the backend's ``finish_reason="error"`` after its own retries: an
unreachable server, a bad key, an unknown model) is not a reply: a unit that met one is not
given up but left to do, and after ``max_consecutive_failures`` failed requests in a row the
run stops with :class:`TeacherUnavailable` (exit status 2) instead of marking every unit given
up. Each request's sampling seed derives from ``seed``, the unit's id and the attempt
(:func:`request_seed`), not its position in a batch, so a seeded teacher gives the same replies
whether or not the run was resumed.

Resuming: an example's id is a hash of (seed source, seed id, category), every kept example is
appended and fsynced as soon as it is judged, and a re-run skips ids already in
``examples.jsonl`` or ``rejected.jsonl``. A killed run therefore loses at most the replies in
flight and never writes an id twice. Records in ``rejected.jsonl`` that a failed request
put there (written before failures were told apart from replies) are taken out and their
units retried.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from gazal.config import ConfigError, config_to_dict
from gazal.data.config import SynthConfig
from gazal.data.seeds import Seed, check_eval_overlap, load_seeds
from gazal.data.teachers import generation_params, get_teacher
from gazal.data.validate import canonical_response, check_format
from gazal.extraction import extract_answer
from gazal.formatting import render_question
from gazal.generation.base import Backend, Generation
from gazal.io import ResumableJsonlWriter, atomic_write_json, atomic_write_jsonl
from gazal.rundir import prepare_run_dir

log = logging.getLogger("gazal")

__all__ = ["SynthStats", "TeacherUnavailable", "Unit", "build_units", "example_id", "judge",
           "request_seed", "synthesize"]

EXAMPLES = "examples.jsonl"
REJECTED = "rejected.jsonl"
SUMMARY = "summary.json"
ATTEMPTS = "attempts.jsonl"  # one line per attempt: outcome and tokens (cost totals)
# Keys that may change between a run and its resume: they affect speed, cost accounting or
# where the teacher is reached, not what is kept.
RESUMABLE_KEYS = ["teacher.base_url", "teacher.api_key_env", "teacher.concurrency",
                  "teacher.requests_per_minute", "teacher.max_retries", "teacher.timeout_s",
                  "teacher.backoff_base_s", "teacher.backoff_max_s", "teacher.hf",
                  "teacher.price_input_per_1m", "teacher.price_output_per_1m", "chunk_size",
                  "data_dir", "seeds.limit", "max_consecutive_failures"]
FAILED = "backend_error"  # the outcome of a request that got no reply


class TeacherUnavailable(ConfigError):
    """The teacher failed ``max_consecutive_failures`` requests in a row: the run stopped."""


def example_id(source: str, seed_id: str, category: str) -> str:
    """Stable id of the example for (seed, category)."""
    digest = hashlib.sha256(f"{source}\x1f{seed_id}\x1f{category}".encode()).hexdigest()
    return f"syn-{digest[:16]}"


def request_seed(seed: int, unit_id: str, attempt: int) -> int:
    """The sampling seed of ``attempt`` (0-based) at unit ``unit_id``: a function of the
    three alone (31 bits, which every server accepts)."""
    digest = hashlib.sha256(f"{seed}\x1f{unit_id}\x1f{attempt}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


@dataclass(frozen=True)
class Unit:
    """One (seed, category): what the teacher is sent and what the example will hold."""

    id: str
    seed: Seed
    category: str
    teacher_messages: list[dict[str, str]]
    student_messages: list[dict[str, str]]  # system (optional) + user


def build_units(seeds: list[Seed], cfg: SynthConfig) -> list[Unit]:
    """Every (seed, category) unit, in seed order."""
    units = []
    for seed in seeds:
        for name, cat in cfg.categories.items():
            if seed.item is not None:
                problem = render_question(seed.item)
                system = cfg.example_system_prompt
            else:
                if not cat.vignette_task.strip():
                    raise ConfigError(f"categories.{name}.vignette_task is empty: vignette seeds "
                                      "need the question each category asks about the case")
                problem = f"{(seed.text or '').strip()}\n\n{cat.vignette_task.strip()}"
                system = cfg.example_system_prompt_open
            teacher = [{"role": "system", "content": cfg.teacher_system_prompt},
                       {"role": "user", "content": cat.teacher_prompt.format(problem=problem)}]
            if not cfg.teacher_system_prompt:
                teacher = teacher[1:]
            student = ([{"role": "system", "content": system}] if system else []) + \
                [{"role": "user", "content": problem}]
            units.append(Unit(id=example_id(seed.source, seed.id, name), seed=seed,
                              category=name, teacher_messages=teacher,
                              student_messages=student))
    return units


def judge(unit: Unit, gen: Generation, cfg: SynthConfig) -> tuple[str | None, str]:
    """(None, canonical reply) when the reply is kept, else (reason, "")."""
    if gen.finish_reason == "error":
        return FAILED, ""
    if gen.finish_reason == "length":
        return "truncated", ""
    text = canonical_response(gen.text)
    fmt = check_format(text, min_steps=cfg.min_steps, require_assessment=cfg.require_assessment)
    if not fmt.ok:
        return f"format:{fmt.reason}", ""
    item = unit.seed.item
    if item is not None:
        got = extract_answer(text, item.options)
        if got.letter is None:
            return f"no_answer:{got.rule}", ""
        if got.letter != item.answer:
            return "wrong_answer", ""
    return None, text


@dataclass
class SynthStats:
    """What one run did (``summary.json`` adds the totals of earlier runs)."""

    units: int = 0
    already_done: int = 0
    kept: int = 0
    given_up: int = 0
    unanswered: int = 0  # units left to do because a request failed (retried by a re-run)
    attempts: int = 0
    outcomes: Counter = field(default_factory=Counter)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated_token_counts: int = 0  # replies whose usage the backend did not report
    seconds: float = 0.0

    def cost(self, cfg: SynthConfig) -> float:
        t = cfg.teacher
        return (self.prompt_tokens * t.price_input_per_1m
                + self.completion_tokens * t.price_output_per_1m) / 1e6

    def to_dict(self, cfg: SynthConfig) -> dict[str, Any]:
        return {"units": self.units, "already_done": self.already_done, "kept": self.kept,
                "given_up": self.given_up, "unanswered": self.unanswered,
                "attempts": self.attempts,
                "outcomes": dict(self.outcomes.most_common()),
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "estimated_token_counts": self.estimated_token_counts,
                "estimated_cost": round(self.cost(cfg), 4), "seconds": round(self.seconds, 1)}


def dry_run(units: list[Unit], cfg: SynthConfig, out: IO[str]) -> dict[str, Any]:
    """Print every prompt that would be sent (nothing is sent) and an estimate."""
    chars = 0
    for u in units:
        print(f"=== {u.id}  category={u.category}  seed={u.seed.source}:{u.seed.id}", file=out)
        for m in u.teacher_messages:
            print(f"--- {m['role']} ---\n{m['content']}", file=out)
            chars += len(m["content"])
        print(file=out)
    t = cfg.teacher
    in_tok = chars // 4  # ~4 characters per token (English, BPE tokenizers)
    out_max = len(units) * t.max_new_tokens
    est = {"units": len(units), "estimated_prompt_tokens_per_attempt": in_tok,
           "max_completion_tokens_per_attempt": out_max,
           "estimated_cost_per_attempt_max": round(
               (in_tok * t.price_input_per_1m + out_max * t.price_output_per_1m) / 1e6, 2)}
    print(f"dry run: {len(units):,} prompts ({len(units) // max(1, len(cfg.categories)):,} seeds "
          f"x {len(cfg.categories)} categories), ~{in_tok:,} prompt tokens and at most "
          f"{out_max:,} completion tokens per attempt round; at the recipe's prices at most "
          f"${est['estimated_cost_per_attempt_max']:,.2f} per round (up to "
          f"{cfg.max_attempts} rounds). Nothing was sent.", file=sys.stderr)
    return est


def synthesize(cfg: SynthConfig, out_dir: str | Path | None, *, dry: bool = False,
               progress: bool = True, teacher: Backend | None = None,
               out: IO[str] | None = None) -> dict[str, Any]:
    """Run synthesis into ``out_dir`` (resuming what is there); returns the summary."""
    data_dir = cfg.data_dir
    seeds = load_seeds(cfg.seeds, data_dir)
    if not cfg.seeds.benchmark:
        check_eval_overlap(seeds, cfg.seeds, data_dir)
    units = build_units(seeds, cfg)
    if dry:
        return dry_run(units, cfg, out or sys.stdout)
    if out_dir is None:
        raise ConfigError("--out is required (the run folder) unless --dry-run")
    out_dir = Path(out_dir)
    prepare_run_dir(out_dir, cfg, resumable_keys=RESUMABLE_KEYS, command="data synth")
    own_teacher = teacher is None
    t0 = time.perf_counter()
    _reopen_failed_units(out_dir / REJECTED)
    ledger_path = out_dir / ATTEMPTS
    carry = None if ledger_path.exists() else _totals_before_ledger(out_dir / SUMMARY)
    # The writers read back what earlier runs kept (dropping a line torn by a crash), so the
    # done set is exactly what is on disk. The attempts ledger is flushed per line, not
    # fsynced: a kill loses nothing of it, a power cut the last few lines.
    with ResumableJsonlWriter(out_dir / EXAMPLES) as kept_writer, \
            ResumableJsonlWriter(out_dir / REJECTED) as rejected_writer, \
            ResumableJsonlWriter(ledger_path, fsync=False) as ledger:
        if carry:
            ledger.append(carry)
        done = {r.get("id") for r in kept_writer.records} | \
            {r.get("id") for r in rejected_writer.records}
        pending = [u for u in units if u.id not in done]
        stats = SynthStats(units=len(units), already_done=len(units) - len(pending))
        if stats.already_done:
            log.info("resuming: %d of %d units already done", stats.already_done, len(units))
        stopped: TeacherUnavailable | None = None
        if pending:
            teacher = teacher or get_teacher(cfg.teacher)
            try:
                _run(pending, cfg, teacher, kept_writer, rejected_writer, stats, progress,
                     ledger)
            except TeacherUnavailable as err:
                stopped = err
            finally:
                if own_teacher:
                    teacher.close()
        stats.seconds = time.perf_counter() - t0
        summary = _summary(out_dir, cfg, stats, len(kept_writer.records),
                           len(rejected_writer.records), ledger.records,
                           stopped=str(stopped) if stopped else None)
    if stopped is not None:  # the summary (this run's cost included) is written first
        raise stopped
    return summary


def _reopen_failed_units(path: Path) -> None:
    """Take out of ``rejected.jsonl`` the units a failed request put there (an earlier
    version gave a unit up when every attempt failed to reach the teacher), so they are
    retried; logged with their count."""
    if not path.exists():
        return
    with ResumableJsonlWriter(path) as reader:  # drops a torn last line first
        records = reader.records
    keep = [r for r in records if FAILED not in (r.get("attempts") or [])]
    if len(keep) != len(records):
        atomic_write_jsonl(path, keep)
        log.warning("%s: %d unit(s) were given up only because requests to the teacher "
                    "failed; they are retried", path, len(records) - len(keep))


@dataclass
class _Failures:
    """Failed requests in a row, shared by the backend's worker threads (under the lock)."""

    limit: int
    in_a_row: int = 0
    last_error: str = ""
    stopped: TeacherUnavailable | None = None

    def record(self, gen: Generation) -> None:
        if gen.finish_reason != "error":
            self.in_a_row = 0
            return
        self.in_a_row += 1
        self.last_error = gen.error or "no reply"
        if self.in_a_row >= self.limit and self.stopped is None:
            self.stopped = TeacherUnavailable(
                f"the teacher failed {self.in_a_row} requests in a row (last: "
                f"{self.last_error}); stopped. Check teacher.base_url, teacher.model, the key "
                "in the environment variable teacher.api_key_env names and that the server "
                "is up, then re-run the same command: units without a real reply are "
                "retried (max_consecutive_failures sets the limit)")


def _run(pending: list[Unit], cfg: SynthConfig, teacher: Backend,
         kept_writer: ResumableJsonlWriter, rejected_writer: ResumableJsonlWriter,
         stats: SynthStats, progress: bool, ledger: ResumableJsonlWriter) -> None:
    from tqdm import tqdm

    lock = threading.Lock()  # on_result runs in the backend's worker threads
    failures = _Failures(cfg.max_consecutive_failures)
    t_start = time.perf_counter()
    bar = tqdm(total=len(pending), unit="ex", desc="synth", disable=not progress,
               dynamic_ncols=True)

    def postfix() -> None:
        rate = stats.kept / max(1e-9, time.perf_counter() - t_start)
        bar.set_postfix_str(
            f"kept={stats.kept} given_up={stats.given_up} {rate:.2f} ex/s "
            f"tok in/out={stats.prompt_tokens:,}/{stats.completion_tokens:,} "
            f"cost=${stats.cost(cfg):,.2f}", refresh=False)

    try:
        for start in range(0, len(pending), cfg.chunk_size):
            active = pending[start:start + cfg.chunk_size]
            history: dict[str, list[str]] = {u.id: [] for u in active}
            for attempt in range(cfg.max_attempts):
                if not active:
                    break
                accepted: set[str] = set()
                current = active
                on_result = _make_on_result(current, attempt, cfg, stats, history, accepted,
                                            kept_writer, lock, bar, postfix, failures, ledger)
                # on_result raises TeacherUnavailable at the limit, which ends generate() on
                # the backends that run it in the caller's thread or re-raise from workers
                teacher.generate([u.teacher_messages for u in current],
                                 generation_params(cfg.teacher, cfg.seed + attempt),
                                 on_result=on_result,
                                 seeds=[request_seed(cfg.seed, u.id, attempt) for u in current])
                if failures.stopped is not None:  # a backend that swallowed it
                    raise failures.stopped
                active = [u for u in current if u.id not in accepted]
            for u in active:
                with lock:
                    if FAILED in history[u.id]:  # not k real replies: left to a re-run
                        stats.unanswered += 1
                        bar.update(1)
                        continue
                    rejected_writer.append({"id": u.id, "category": u.category,
                                            "seed_id": u.seed.id, "seed_source": u.seed.source,
                                            "attempts": history[u.id]})
                    stats.given_up += 1
                    bar.update(1)
                    postfix()
    finally:
        bar.close()


def _make_on_result(current: list[Unit], attempt: int, cfg: SynthConfig, stats: SynthStats,
                    history: dict[str, list[str]], accepted: set[str],
                    kept_writer: ResumableJsonlWriter, lock: threading.Lock, bar: Any,
                    postfix: Callable[[], None], failures: _Failures,
                    ledger: ResumableJsonlWriter) -> Callable[[int, Generation], None]:
    def on_result(i: int, gen: Generation) -> None:
        u = current[i]
        reason, text = judge(u, gen, cfg)
        with lock:
            if failures.stopped is not None:  # replies still in flight after the stop
                return
            stats.attempts += 1
            stats.outcomes[reason or "kept"] += 1
            history[u.id].append(reason or "kept")
            used = {"id": u.id, "attempt": attempt + 1, "outcome": reason or "kept",
                    "prompt_tokens": 0, "completion_tokens": 0}
            if gen.finish_reason != "error":
                if gen.n_prompt_tokens is None or gen.n_completion_tokens is None:
                    stats.estimated_token_counts += 1
                    used["estimated"] = True
                used["prompt_tokens"] = gen.n_prompt_tokens \
                    if gen.n_prompt_tokens is not None \
                    else sum(len(m["content"]) for m in u.teacher_messages) // 4
                used["completion_tokens"] = gen.n_completion_tokens \
                    if gen.n_completion_tokens is not None else len(gen.text) // 4
                stats.prompt_tokens += used["prompt_tokens"]
                stats.completion_tokens += used["completion_tokens"]
            ledger.append(used)  # before the example: a kill never loses a kept one's cost
            if reason is None:
                kept_writer.append(_example_row(u, text, gen, attempt, cfg))
                accepted.add(u.id)
                stats.kept += 1
                bar.update(1)
            postfix()
            failures.record(gen)
            if failures.stopped is not None:
                raise failures.stopped  # ends generate() at once on in-thread backends
    return on_result


def _example_row(u: Unit, text: str, gen: Generation, attempt: int, cfg: SynthConfig
                 ) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": u.id, "category": u.category,
        "messages": [*u.student_messages, {"role": "assistant", "content": text}],
        "source": "gazal-synth", "seed_id": u.seed.id, "seed_source": u.seed.source,
        "teacher": cfg.teacher.model, "attempt": attempt + 1,
        "usage": {"prompt_tokens": gen.n_prompt_tokens,
                  "completion_tokens": gen.n_completion_tokens}}
    if u.seed.item is not None:
        row["options"] = dict(u.seed.item.options)
        row["answer"] = u.seed.item.answer
    return row


def _totals_before_ledger(path: Path) -> dict[str, Any] | None:
    """The all-runs totals of a run folder written before ``attempts.jsonl`` existed, as
    one carried-over ledger line (None when there is nothing to carry)."""
    try:
        previous = json.loads(path.read_text(encoding="utf-8")).get("all_runs") or {}
    except (OSError, ValueError, AttributeError):
        return None
    if not previous.get("attempts"):
        return None
    return {"id": None, "carried_over": True, "attempts": previous.get("attempts", 0),
            "prompt_tokens": previous.get("prompt_tokens", 0),
            "completion_tokens": previous.get("completion_tokens", 0),
            "outcomes": previous.get("outcomes") or {}}


def _summary(out_dir: Path, cfg: SynthConfig, stats: SynthStats, n_kept: int,
             n_rejected: int, ledger: list[dict[str, Any]], stopped: str | None = None
             ) -> dict[str, Any]:
    """``summary.json``. The all-runs totals of attempts, outcomes, tokens and cost are
    summed from ``attempts.jsonl``, so a killed run's attempts count too; the cost is priced
    at the recipe's current prices. Seconds and the run count come from the previous
    summary (a killed run's seconds are lost)."""
    path = out_dir / SUMMARY
    previous: dict[str, Any] = {}
    if path.exists():
        try:
            previous = json.loads(path.read_text(encoding="utf-8")).get("all_runs", {})
        except (ValueError, AttributeError):
            previous = {}
    this = stats.to_dict(cfg)
    outcomes: Counter = Counter()
    totals = {"attempts": 0, "prompt_tokens": 0, "completion_tokens": 0}
    for line in ledger:
        if line.get("carried_over"):
            for k in totals:
                totals[k] += int(line.get(k) or 0)
            outcomes.update(line.get("outcomes") or {})
            continue
        totals["attempts"] += 1
        totals["prompt_tokens"] += int(line.get("prompt_tokens") or 0)
        totals["completion_tokens"] += int(line.get("completion_tokens") or 0)
        outcomes[str(line.get("outcome"))] += 1
    t = cfg.teacher
    all_runs: dict[str, Any] = {
        **totals,
        "estimated_cost": round((totals["prompt_tokens"] * t.price_input_per_1m
                                 + totals["completion_tokens"] * t.price_output_per_1m) / 1e6,
                                4),
        "seconds": previous.get("seconds", 0) + this["seconds"],
        "outcomes": dict(outcomes.most_common()),
        "runs": previous.get("runs", 0) + 1}
    summary = {"examples": n_kept, "given_up": n_rejected, "units": stats.units,
               "complete": n_kept + n_rejected >= stats.units, "this_run": this,
               "all_runs": all_runs, "teacher": config_to_dict(cfg.teacher)["model"]}
    if stopped:
        summary["stopped"] = stopped
    atomic_write_json(path, summary)
    return summary
