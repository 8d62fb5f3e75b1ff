"""``gazal data curate``: turn a JSONL of SFT examples into a clean training set.

Each input row is a gazal SFT example ``{"id", "category", "messages", ...}`` whose last
message is the assistant turn. Rows are checked in this order, and a removed row gets the
first reason that applies:

``malformed``        the line is not a JSON object with a valid ``messages`` list
``format``           the assistant turn is not in the reasoning format (gazal.data.validate)
``wrong_answer``     the row has ``options`` and ``answer`` and its final answer extracts to
                     another letter (or none)
``clinician_rejected`` a reviewer rejected the row's id (``review``: decisions of
                     ``gazal data review import``; gazal.data.review)
``too_short`` / ``too_long``  assistant words outside ``length.min_words .. max_words``
``contaminated``     the text (every non-system message) contains an evaluation question
                     (gazal.data.decontam)
``exact_duplicate``  same normalised text as an earlier kept row
``near_duplicate``   estimated Jaccard similarity >= threshold with an earlier kept row
                     (gazal.data.dedup)
``duplicate_id``     another kept row already has this id (with different text)
``category_cap``     over ``max_per_category`` (a seeded random choice is kept)

Malformed lines are skipped and each is reported with its line number (in removed.jsonl,
report.json, report.md and on stderr), because one bad line should not throw away a long
generation run; ``strict: true`` stops at the first one instead.

Outputs in DIR: ``kept.jsonl`` (the input lines, unchanged), ``removed.jsonl`` (each row plus
``reason``, ``line`` and ``removal`` details: for contamination the benchmark, item id, the
rule's score and the matched spans), ``report.json``, ``report.md``,
``length_histogram.png`` and ``config.yaml``, published as one set with ``manifest.json``
written last (gazal.published): every file is written to a temporary file and renamed, so a
failed run leaves no partial file, and the manifest says which files belong together.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import random
import resource
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from gazal import published
from gazal.benchmarks.item import options_from
from gazal.config import ConfigError, config_to_dict
from gazal.data.config import CurateConfig
from gazal.data.curate_report import HISTOGRAM
from gazal.data.decontam import BenchmarkIndex, DecontamSettings, Match, load_eval_items
from gazal.data.dedup import NearDupSettings, exact_keys, minhash_signatures, near_duplicates
from gazal.data.ngrams import PolyHasher, tokenize
from gazal.data.review import load_decisions, review_report
from gazal.data.validate import check_format
from gazal.extraction import extract_answer
from gazal.io import DataError, atomic_open, atomic_write_text

if TYPE_CHECKING:
    from gazal.generation.base import Backend


# the files one run publishes together (gazal.published)
CURATE_SET = ("kept.jsonl", "removed.jsonl", "report.json", "report.md", HISTOGRAM,
              "config.yaml")

log = logging.getLogger("gazal")

__all__ = ["REASONS", "CurateResult", "curate"]

REASONS = ("malformed", "format", "wrong_answer", "clinician_rejected", "too_short",
           "too_long", "contaminated",
           "exact_duplicate", "near_duplicate", "duplicate_id", "category_cap")
_ROLES = {"system", "user", "assistant"}


@dataclass
class _Row:
    line: int
    id: str | None = None
    category: str = "uncategorized"
    words: int = 0
    reason: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    id_assigned: bool = False
    # the benchmark item a row removed for an earlier reason contains (checked all the same,
    # so the report counts contamination over every parsed row)
    contam: dict[str, Any] | None = None
    review: list[dict[str, Any]] | None = None  # clinician decisions on this id


@dataclass
class CurateResult:
    report: dict[str, Any]
    malformed: list[DataError]


# --------------------------------------------------------------------------- row checks


def _parse_row(raw: bytes, path: Path, line: int) -> tuple[dict[str, Any], str, str]:
    """The row, its assistant text and its analysed text; DataError when malformed."""
    try:
        row = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"invalid JSON: {getattr(err, 'msg', err)}", path, line) from None
    if not isinstance(row, dict):
        raise DataError(f"expected a JSON object, got {type(row).__name__}", path, line)
    messages = row.get("messages")
    if not isinstance(messages, list) or not messages:
        raise DataError("expected a non-empty list of {role, content} messages", path, line,
                        "messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in _ROLES or \
                not isinstance(m.get("content"), str):
            raise DataError("expected {role: system|user|assistant, content: text}", path,
                            line, f"messages[{i}]")
    if messages[-1]["role"] != "assistant":
        raise DataError("the last message must be the assistant turn", path, line, "messages")
    if not any(m["role"] == "user" for m in messages):
        raise DataError("no user message", path, line, "messages")
    for name in ("id", "category"):
        if name in row and not isinstance(row[name], str):
            raise DataError(f"expected text, got {type(row[name]).__name__}", path, line, name)
    text = "\n".join(m["content"] for m in messages if m["role"] != "system")
    return row, messages[-1]["content"], text


def _answer_problem(row: dict[str, Any], response: str, path: Path, line: int
                    ) -> dict[str, Any] | None:
    """For rows with options and a gold answer: None when the final answer extracts to the
    gold letter, else what went wrong."""
    if row.get("options") is None or row.get("answer") is None:
        return None
    try:
        options = options_from(row["options"])
    except ValueError as err:
        raise DataError(str(err), path, line, "options") from None
    gold = row["answer"]
    if not isinstance(gold, str) or gold.strip().upper() not in options:
        raise DataError(f"expected one of the option letters {list(options)}, got {gold!r}",
                        path, line, "answer")
    got = extract_answer(response, options)
    if got.letter == gold.strip().upper():
        return None
    return {"gold": gold.strip().upper(), "extracted": got.letter, "extraction_rule": got.rule}


# --------------------------------------------------------------------------- main


def curate(input_path: str | Path, out_dir: str | Path, cfg: CurateConfig, *,
           data_dir: str | Path | None = None, progress: bool = True,
           index: BenchmarkIndex | None = None, judge: Backend | None = None
           ) -> CurateResult:
    """Curate ``input_path`` into ``out_dir`` (see the module docstring). ``index`` replaces
    the registered benchmarks (tests, or several runs against one index); ``judge`` the
    backend of the semantic stage (``decontam.semantic``; built from its config if None)."""
    _require_rows(Path(input_path))
    # Python's cyclic garbage collector would walk the growing list of row records again and
    # again (a large share of the run time at 100k rows); nothing here creates cycles.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _curate(Path(input_path), Path(out_dir), cfg, data_dir, progress, index, judge)
    finally:
        if gc_was_enabled:
            gc.enable()


def _require_rows(path: Path) -> None:
    """An input with no row at all is a mistake (a wrong path, a failed synth run), not a
    curated set of 0 rows; checked before the benchmark index is built or anything written."""
    try:
        with path.open("rb") as handle:
            if any(line.strip() for line in handle):  # stops at the first row
                return
    except FileNotFoundError:
        raise DataError("file not found", path) from None
    except IsADirectoryError:
        raise DataError("is a folder; expected the JSONL file of SFT examples", path) from None
    raise DataError("holds no rows (expected one JSON object per line)", path)


def _curate(input_path: Path, out_dir: Path, cfg: CurateConfig, data_dir: str | Path | None,
            progress: bool, index: BenchmarkIndex | None, judge: Backend | None
            ) -> CurateResult:
    from tqdm import tqdm

    t_start = time.perf_counter()
    if not input_path.is_file():
        raise DataError("file not found", input_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    timing: dict[str, float] = {}

    dc = cfg.decontam
    semantic = dc.semantic.enabled
    if semantic and judge is None and not dc.semantic.judge.model:
        raise ConfigError("decontam.semantic.judge.model is required when "
                          "decontam.semantic.enabled is true (the served judge model)")
    if index is None:
        items, loaded = load_eval_items(data_dir, dc.benchmarks or None, dc.extra_files,
                                        skip_missing=dc.skip_missing_benchmarks)
        index = BenchmarkIndex(items, DecontamSettings.from_config(dc))
    else:
        loaded = [{"name": "(index given by caller)", "checked": True}]
    timing["benchmark_index"] = time.perf_counter() - t_start
    decisions = load_decisions(cfg.review) if cfg.review else []
    by_review: dict[str, list[dict[str, Any]]] = {}
    for d in decisions:
        by_review.setdefault(d["id"], []).append(
            {k: d.get(k) for k in ("reviewer", "decision", "corrected_answer", "comment",
                                   "file")})
    nd = cfg.near_dup
    nd_settings = NearDupSettings(shingle_n=nd.shingle_n, num_perm=nd.num_perm, bands=nd.bands,
                                  threshold=nd.threshold, seed=cfg.seed)
    hasher = PolyHasher()

    rows: list[_Row] = []
    malformed: list[DataError] = []
    # documents that reach the text checks: row index, and per-batch results
    doc_rows: list[int] = []
    exact: list[np.ndarray] = []
    sigs: list[np.ndarray] = []
    batch_texts: list[str] = []
    batch_rows: list[int] = []
    batch_words = 0
    sha = hashlib.sha256()
    near: list[tuple[int, str, Match]] = []  # near misses for the semantic stage

    def flush() -> None:
        nonlocal batch_words
        if not batch_texts:
            return
        batch, _ = tokenize(batch_texts)
        prefix = hasher.prefix(batch.tokens)
        misses: list[tuple[int, Match]] | None = [] if semantic else None
        for r, match in zip(batch_rows, index.scan(batch, batch_texts, misses), strict=True):
            if match is not None:
                _flag(rows[r], match.to_dict())
        near.extend((batch_rows[d], batch_texts[d], m) for d, m in misses or [])
        exact.append(exact_keys(batch, hasher, prefix))
        if nd.enabled:
            sigs.append(minhash_signatures(batch, hasher, prefix, nd_settings))
        doc_rows.extend(batch_rows)
        batch_texts.clear()
        batch_rows.clear()
        batch_words = 0

    def queue(text: str) -> None:
        nonlocal batch_words
        batch_texts.append(text)
        batch_rows.append(len(rows) - 1)
        batch_words += len(text) // 6  # ~6 characters per word; only sizes the batches
        if batch_words >= cfg.batch_words:
            flush()

    t_pass1 = time.perf_counter()
    size = input_path.stat().st_size
    with input_path.open("rb") as handle, tqdm(total=size, unit="B", unit_scale=True,
                                               desc="curate", disable=not progress,
                                               mininterval=1.0) as bar:
        for lineno, raw in enumerate(handle, start=1):
            sha.update(raw)
            bar.update(len(raw))
            if not raw.strip():
                continue
            row_state = _Row(line=lineno)
            rows.append(row_state)
            try:
                row, response, text = _parse_row(raw, input_path, lineno)
                row_state.id = row.get("id")
                row_state.category = row.get("category") or "uncategorized"
                row_state.words = len(response.split())
                fmt = check_format(response, min_steps=cfg.min_steps,
                                   require_assessment=cfg.require_assessment)
                if not fmt.ok:
                    row_state.reason = "format"
                    row_state.info = {"format_error": fmt.reason, "detail": fmt.detail}
                    queue(text)
                    continue
                if cfg.check_answers:
                    problem = _answer_problem(row, response, input_path, lineno)
                    if problem is not None:
                        row_state.reason = "wrong_answer"
                        row_state.info = problem
                        queue(text)
                        continue
            except DataError as err:
                if cfg.strict:
                    raise
                malformed.append(err)
                row_state.reason = "malformed"
                row_state.info = {"error": err.reason, "field": err.field}
                continue
            if row_state.id is None:
                row_state.id = "sha1-" + hashlib.sha1(raw.strip()).hexdigest()[:16]
                row_state.id_assigned = True
            row_state.review = by_review.get(row_state.id)
            if row_state.review and any(d["decision"] == "reject" for d in row_state.review):
                row_state.reason = "clinician_rejected"
                row_state.info = {"review": row_state.review}
            elif row_state.words < cfg.length.min_words:
                row_state.reason = "too_short"
                row_state.info = {"words": row_state.words, "min_words": cfg.length.min_words}
            elif cfg.length.max_words and row_state.words > cfg.length.max_words:
                row_state.reason = "too_long"
                row_state.info = {"words": row_state.words, "max_words": cfg.length.max_words}
            queue(text)
        flush()
    timing["read_validate_hash_decontaminate"] = time.perf_counter() - t_pass1
    semantic_cost: dict[str, Any] = {"enabled": False}
    if semantic:
        from gazal.data.semantic import judge_near_misses
        from gazal.data.teachers import get_teacher

        t_sem = time.perf_counter()
        own = judge is None
        judge = judge or get_teacher(dc.semantic.judge)
        try:
            res = judge_near_misses([(t, m) for _, t, m in near], index, dc.semantic, judge)
        finally:
            if own:
                judge.close()
        for i in res.flagged:
            r, _, m = near[i]
            _flag(rows[r], {**m.to_dict(), "kind": "semantic", "first_stage_kind": m.kind,
                            "judge": dc.semantic.judge.model})
        semantic_cost = {"enabled": True, **res.cost}
        timing["semantic"] = time.perf_counter() - t_sem

    # ---------------------------------------------------------------- duplicates
    t_dup = time.perf_counter()
    keys = np.concatenate(exact) if exact else np.zeros((0, 2), np.uint64)
    seen: dict[tuple[int, int], int] = {}
    alive_docs: list[int] = []
    for d, (r, key) in enumerate(zip(doc_rows, keys.tolist(), strict=True)):
        if rows[r].reason is not None:
            continue
        k = (key[0], key[1])
        first = seen.get(k)
        if first is not None:
            rows[r].reason = "exact_duplicate"
            rows[r].info = {"duplicate_of": rows[first].id, "duplicate_of_line": rows[first].line}
            continue
        seen[k] = r
        alive_docs.append(d)
    if nd.enabled and sigs:
        signatures = np.concatenate(sigs)
        for d, (kept_d, sim) in near_duplicates(signatures, np.array(alive_docs),
                                                nd_settings).items():
            r, kr = doc_rows[d], doc_rows[kept_d]
            rows[r].reason = "near_duplicate"
            rows[r].info = {"duplicate_of": rows[kr].id, "duplicate_of_line": rows[kr].line,
                            "similarity": round(sim, 4)}
    timing["deduplicate"] = time.perf_counter() - t_dup

    # ---------------------------------------------------------------- ids, balance
    kept_ids: dict[str, int] = {}
    for r, row_state in enumerate(rows):
        if row_state.reason is None:
            assert row_state.id is not None
            if row_state.id in kept_ids:
                first = rows[kept_ids[row_state.id]]
                row_state.reason = "duplicate_id"
                row_state.info = {"first_line": first.line}
            else:
                kept_ids[row_state.id] = r
    if cfg.max_per_category is not None:
        by_cat: dict[str, list[int]] = {}
        for r, row_state in enumerate(rows):
            if row_state.reason is None:
                by_cat.setdefault(row_state.category, []).append(r)
        rng = random.Random(cfg.seed)
        for cat, members in sorted(by_cat.items()):
            if len(members) > cfg.max_per_category:
                keep = set(rng.sample(members, cfg.max_per_category))
                for r in members:
                    if r not in keep:
                        rows[r].reason = "category_cap"
                        rows[r].info = {"category": cat, "max_per_category": cfg.max_per_category}

    # ---------------------------------------------------------------- write
    t_write = time.perf_counter()
    published.begin(out_dir, "data curate")  # a reader never takes one run's kept rows
    _write_outputs(input_path, out_dir, rows)  # with another's report
    timing["write"] = time.perf_counter() - t_write
    timing["total"] = time.perf_counter() - t_start
    report = _build_report(input_path, sha.hexdigest(), rows, malformed, index, loaded, cfg,
                           timing, decisions)
    report["decontamination"]["semantic"] = semantic_cost
    from gazal.data.curate_report import write_report

    write_report(out_dir, report, rows)
    atomic_write_text(out_dir / "config.yaml",
                      yaml.safe_dump({"command": "data curate", "input": str(input_path),
                                      **config_to_dict(cfg)}, sort_keys=False))
    published.publish(out_dir, CURATE_SET, "data curate")
    return CurateResult(report=report, malformed=malformed)


def _flag(row: _Row, info: dict[str, Any]) -> None:
    """Mark a row as containing an evaluation item: removed as contaminated, or, when it was
    removed earlier for another reason, the match recorded beside that reason."""
    if row.reason is None:
        row.reason = "contaminated"
        row.info = info
    elif row.reason != "contaminated":
        row.contam = info


def _write_outputs(input_path: Path, out_dir: Path, rows: list[_Row]) -> None:
    """Second pass over the input: kept lines unchanged (an id added where the row had none),
    removed rows with their reason."""
    by_line = {r.line: r for r in rows}
    with input_path.open("rb") as src, atomic_open(out_dir / "kept.jsonl", "wb") as kept, \
            atomic_open(out_dir / "removed.jsonl", "w") as removed:
        for lineno, raw in enumerate(src, start=1):
            state = by_line.get(lineno)
            if state is None:
                continue
            if state.reason is None:
                if state.id_assigned or state.review:
                    row = json.loads(raw)
                    row = {"id": state.id, **row}
                    if state.review:  # the clinicians' decisions and corrections, kept
                        row["review"] = state.review
                    kept.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
                else:
                    kept.write(raw if raw.endswith(b"\n") else raw + b"\n")
                continue
            if state.reason == "malformed":
                out = {"line": lineno, "reason": "malformed", "removal": state.info,
                       "raw": raw[:2000].decode("utf-8", "replace")}
            else:
                row = json.loads(raw)
                out = {**row, "reason": state.reason, "line": lineno, "removal": state.info}
                if state.contam is not None:
                    out["contamination"] = state.contam
            removed.write(json.dumps(out, ensure_ascii=False) + "\n")


def _stats(values: list[int]) -> dict[str, float] | None:
    if not values:
        return None
    arr = np.array(values)
    return {"n": len(values), "min": int(arr.min()), "p5": float(np.percentile(arr, 5)),
            "median": float(np.median(arr)), "mean": round(float(arr.mean()), 1),
            "p95": float(np.percentile(arr, 95)), "max": int(arr.max())}


def _build_report(input_path: Path, sha256: str, rows: list[_Row], malformed: list[DataError],
                  index: BenchmarkIndex, loaded: list[dict[str, Any]], cfg: CurateConfig,
                  timing: dict[str, float], decisions: list[dict[str, Any]]
                  ) -> dict[str, Any]:
    reasons = Counter(r.reason for r in rows if r.reason)
    by_cat: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r.reason == "malformed":
            continue
        c = by_cat.setdefault(r.category, {"input": 0, "kept": 0, "removed": Counter()})
        c["input"] += 1
        if r.reason is None:
            c["kept"] += 1
        else:
            c["removed"][r.reason] += 1
    contaminated = [r for r in rows if r.reason == "contaminated"]
    earlier = [r for r in rows if r.contam is not None]
    by_bench_removed = Counter(r.info["benchmark"] for r in contaminated)
    by_bench_earlier = Counter(r.contam["benchmark"] for r in earlier)  # type: ignore[index]
    by_bench = by_bench_removed + by_bench_earlier
    near = [r.info["similarity"] for r in rows if r.reason == "near_duplicate"]
    return {
        "input": {"path": str(input_path), "sha256": sha256, "rows": len(rows)},
        "kept": sum(1 for r in rows if r.reason is None),
        "removed": sum(reasons.values()),
        "removed_by_reason": {k: reasons.get(k, 0) for k in REASONS},
        "format_errors": dict(Counter(r.info.get("format_error") for r in rows
                                      if r.reason == "format").most_common()),
        "by_category": {k: {"input": v["input"], "kept": v["kept"],
                            "removed": {x: v["removed"].get(x, 0) for x in REASONS
                                        if v["removed"].get(x)}}
                        for k, v in sorted(by_cat.items())},
        "contamination": {
            # over every parsed row: also rows removed earlier for another reason
            "rows": len(contaminated) + len(earlier),
            "by_benchmark": dict(by_bench.most_common()),
            "removed_as_contaminated": dict(by_bench_removed.most_common()),
            "removed_earlier_for_another_reason": dict(by_bench_earlier.most_common()),
            "not_checked_malformed": reasons.get("malformed", 0),
            "examples": [{"id": r.id, "line": r.line, "reason": r.reason, **r.info}
                         for r in contaminated[:50]]
            + [{"id": r.id, "line": r.line, "reason": r.reason, **(r.contam or {})}
               for r in earlier[:50]],
        },
        "near_duplicates": {"removed": len(near),
                            "mean_similarity": round(float(np.mean(near)), 4) if near else None},
        "ids_assigned": sum(1 for r in rows if r.id_assigned),
        "malformed_lines": [{"line": e.line, "error": str(e)} for e in malformed[:1000]],
        "length_words": {
            "kept": _stats([r.words for r in rows if r.reason is None]),
            "removed": _stats([r.words for r in rows if r.reason not in (None, "malformed")]),
        },
        "decontamination": {"benchmarks": loaded, **index.stats()},
        "review": review_report(decisions, {r.id: r.category for r in rows if r.id},
                                len(rows)) if decisions else None,
        "settings": config_to_dict(cfg),
        "timing_s": {k: round(v, 2) for k, v in timing.items()},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }

