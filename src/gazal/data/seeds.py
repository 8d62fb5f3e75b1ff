"""Seeds for ``gazal data synth``: MCQ items (any loader) or free-text case vignettes, and the
guard that stops a user from synthesising training data out of evaluation questions."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gazal.benchmarks import BENCHMARKS, Item, load_benchmark, load_items_file, resolve_data_dir
from gazal.config import ConfigError
from gazal.data.config import SeedsConfig
from gazal.io import DataError, iter_jsonl, read_json

log = logging.getLogger("gazal")

__all__ = ["Seed", "check_eval_overlap", "load_seeds"]


@dataclass(frozen=True)
class Seed:
    """One seed: an MCQ ``item``, or a vignette ``text``."""

    id: str
    source: str  # file stem or benchmark name
    item: Item | None = None
    text: str | None = None


def _first_row(path: Path) -> Any:
    if path.suffix == ".jsonl":
        for _, rec in iter_jsonl(path):
            return rec
        raise DataError("no rows", path)
    data = read_json(path)
    if isinstance(data, list) and data:
        return data[0]
    if isinstance(data, dict) and data:
        return next(iter(data.values()))
    raise DataError("no rows", path)


def load_seeds(cfg: SeedsConfig, data_dir: str | Path | None = None) -> list[Seed]:
    """The seeds named by ``cfg`` (a file or a registered benchmark)."""
    if bool(cfg.path) == bool(cfg.benchmark):
        raise ConfigError("synth.seeds: set exactly one of 'path' (a seed file) and "
                          "'benchmark' (a registered benchmark)")
    if cfg.benchmark:
        if not cfg.allow_eval_benchmark:
            raise ConfigError(
                f"refusing to synthesise from '{cfg.benchmark}': it is a registered EVALUATION "
                "benchmark, and training on examples written from its questions contaminates "
                "every evaluation on it. Use training-split questions as seeds (a file in "
                "seeds.path), or set seeds.allow_eval_benchmark: true for an experiment "
                "(gazal data curate will then remove the examples as contaminated)")
        _warn_eval(f"seeds are the evaluation benchmark '{cfg.benchmark}'")
        items = load_benchmark(cfg.benchmark, data_dir).items
        seeds = [Seed(id=it.id, source=cfg.benchmark, item=it) for it in items]
        return seeds[: cfg.limit] if cfg.limit is not None else seeds
    path = Path(cfg.path)  # type: ignore[arg-type]
    kind = cfg.kind
    if kind == "auto":
        first = _first_row(path)
        kind = "mcq" if isinstance(first, dict) and "options" in first else "vignette"
        if kind == "vignette" and not (isinstance(first, dict) and cfg.text_field in first):
            raise DataError(f"cannot tell the seed kind: the first row has neither 'options' "
                            f"(MCQ) nor '{cfg.text_field}' (vignette); set seeds.kind and "
                            "seeds.text_field", path, 1)
    if kind == "mcq":
        items = load_items_file(path)
        seeds = [Seed(id=it.id, source=path.stem, item=it) for it in items]
    else:
        if path.suffix != ".jsonl":
            raise DataError("vignette seeds must be JSONL (one case per line)", path)
        seeds = []
        seen: set[str] = set()
        for line, rec in iter_jsonl(path):
            text = rec.get(cfg.text_field)
            if not isinstance(text, str) or not text.strip():
                raise DataError("expected non-empty text", path, line, cfg.text_field)
            sid = rec.get(cfg.id_field)
            if sid is None:
                sid = "case-" + hashlib.sha256(text.strip().encode("utf-8")).hexdigest()[:12]
            elif not isinstance(sid, str | int):
                raise DataError(f"expected text or a number, got {type(sid).__name__}", path,
                                line, cfg.id_field)
            sid = str(sid)
            if sid in seen:
                raise DataError(f"duplicate seed id {sid!r}: ids must be unique, since "
                                "example ids are derived from them", path, line, cfg.id_field)
            seen.add(sid)
            seeds.append(Seed(id=sid, source=path.stem, text=text.strip()))
    return seeds[: cfg.limit] if cfg.limit is not None else seeds


def check_eval_overlap(seeds: list[Seed], cfg: SeedsConfig,
                       data_dir: str | Path | None = None) -> dict[str, int]:
    """Refuse (or, if allowed, warn loudly) when seeds are evaluation questions or
    near-duplicates of them.

    Scans each seed (an MCQ seed rendered as ``gazal eval`` renders it, with its options; a
    vignette's text) with the rule ``gazal data curate`` uses (:mod:`gazal.data.decontam`,
    default settings: word-edited copies are found, template lines are not evidence) against
    every registered benchmark found locally (``data_dir`` / ``$GAZAL_DATA_DIR``); returns
    overlapping seeds per benchmark. Without local benchmark files the check is skipped with a
    warning (it never downloads)."""
    from gazal.data.decontam import BenchmarkIndex
    from gazal.data.ngrams import tokenize
    from gazal.formatting import render_question

    root = resolve_data_dir(data_dir)
    if root is None or not (root / "benchmarks").is_dir():
        log.warning("could not check the seeds against the evaluation benchmarks (no "
                    "--data-dir / $GAZAL_DATA_DIR); run gazal data curate on the output, "
                    "which does")
        return {}
    items: list[Item] = []
    for name in BENCHMARKS:
        for source in ("normalized", "original"):  # local files only: never the Hub here
            try:
                items += load_benchmark(name, root, source=source).items  # type: ignore[arg-type]
            except DataError:
                continue
            break
    if not items:
        return {}
    index = BenchmarkIndex(items)
    texts = [render_question(s.item) if s.item is not None else (s.text or "") for s in seeds]
    overlap: dict[str, int] = {}
    examples: list[str] = []
    for start in range(0, len(texts), 2000):
        chunk = texts[start:start + 2000]
        batch, _ = tokenize(chunk)
        for s, m in zip(seeds[start:start + 2000], index.scan(batch, chunk), strict=True):
            if m is None:
                continue
            overlap[m.benchmark] = overlap.get(m.benchmark, 0) + 1
            if len(examples) < 3:
                span = (m.spans or (m.text,))[0]
                examples.append(f"seed {s.id} ~ {m.benchmark}:{m.item_id} (score "
                                f"{m.score:.2f}, matched '{span[:60]}')")
    if overlap:
        summary = ", ".join(f"{n} in {b}" for b, n in overlap.items())
        if not cfg.allow_eval_benchmark:
            raise ConfigError(
                f"refusing to synthesise: {sum(overlap.values())} seed question(s) are "
                f"evaluation benchmark questions or near-duplicates of them ({summary}; "
                f"{'; '.join(examples)}). Training on them contaminates evaluation (gazal "
                "data curate would remove the examples as contaminated). Remove them from "
                "the seeds, or set seeds.allow_eval_benchmark: true for an experiment")
        _warn_eval(f"{sum(overlap.values())} seed questions are evaluation questions or "
                   f"near-duplicates of them ({summary})")
    return overlap


def _warn_eval(what: str) -> None:
    bar = "!" * 78
    log.warning("%s\nCONTAMINATION: %s. Examples written from them will inflate scores on "
                "those benchmarks; gazal data curate removes them.\n%s", bar, what, bar)
