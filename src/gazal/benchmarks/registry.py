"""The benchmark registry: where each evaluation set comes from and how it normalises.

Each benchmark loads from local files (``--data-dir`` / ``GAZAL_DATA_DIR``: the normalised
files of HuatuoGPT-o1's evaluation data, or the upstream schemas) or from the Hugging Face
Hub by dataset name. Every source normalises to the same :class:`Item` with content-derived
ids, and :func:`items_checksum` identifies the exact set; known checksums are pinned below so
a listing says whether a set is the one published numbers were computed on.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from gazal.benchmarks.item import Item, assign_ids, content_key, items_checksum
from gazal.benchmarks.schemas import SCHEMAS, FieldError, detect_schema
from gazal.io import DataError, read_json, read_rows

log = logging.getLogger("gazal")

Source = Literal["auto", "normalized", "original", "hub"]
DATA_DIR_ENV = "GAZAL_DATA_DIR"


@dataclass(frozen=True)
class LocalSource:
    """A file under the data dir (``benchmarks/...``) in one schema."""

    kind: Literal["normalized", "original"]
    path: str
    schema: str
    keep: Callable[[Mapping[str, Any]], bool] | None = None
    split_file: str | None = None  # PubMedQA official split: keep only PMIDs listed here


@dataclass(frozen=True)
class HubSource:
    """A Hugging Face Hub dataset (``datasets.load_dataset``)."""

    path: str
    split: str
    schema: str
    name: str | None = None
    # Commit to pin. None where no revision could be verified offline; the pinned checksum
    # below then says whether the Hub copy is the expected set.
    revision: str | None = None
    keep: Callable[[Mapping[str, Any]], bool] | None = None


@dataclass(frozen=True)
class BenchmarkSpec:
    """One evaluation set."""

    name: str
    title: str
    expected_n: int
    local: tuple[LocalSource, ...]
    hub: HubSource | None
    paper_accuracy: float | None = None  # Gazal-R1 (arXiv 2506.21594), percent
    known_checksums: dict[str, str] = field(default_factory=dict)  # sha256 -> version label
    categories_key: str | None = None  # meta key to break accuracy down by


def _mmlu_medical(rec: Mapping[str, Any]) -> bool:
    return rec.get("category") in ("health", "biology")


_NORM = "benchmarks/normalized"
_ORIG = "benchmarks/original"

BENCHMARKS: dict[str, BenchmarkSpec] = {
    spec.name: spec
    for spec in [
        BenchmarkSpec(
            name="medqa", title="MedQA (USMLE, 4 options)", expected_n=1273,
            local=(LocalSource("normalized", f"{_NORM}/MedQA_USLME_test.json", "normalized"),
                   LocalSource("original", f"{_ORIG}/medqa/test_4options.jsonl", "medqa")),
            hub=HubSource("GBaker/MedQA-USMLE-4-options", split="test", schema="medqa"),
            paper_accuracy=87.1, categories_key="step",
            known_checksums={
                "33a65cc38a2613e467e08cf92b746a86a02f528ab73b6131d02c7cf5b5e17c26":
                    "MedQA USMLE 4-option test"}),
        BenchmarkSpec(
            name="medmcqa", title="MedMCQA (dev)", expected_n=4183,
            local=(LocalSource("normalized", f"{_NORM}/MedMCQA_validation.json", "normalized"),),
            hub=HubSource("openlifescienceai/medmcqa", split="validation", schema="medmcqa_hub"),
            known_checksums={
                "efb37c5d0064d5cb007d64a2685c6b1d5dc27402c4e5df7154bb729a6ba5ddc6":
                    "MedMCQA dev"}),
        BenchmarkSpec(
            name="pubmedqa", title="PubMedQA (PQA-L, 1,000)", expected_n=1000,
            local=(LocalSource("normalized", f"{_NORM}/PubMedQA_test.json",
                               "pubmedqa_normalized"),
                   LocalSource("original", f"{_ORIG}/pubmedqa/ori_pqal.json", "pubmedqa_pqal")),
            hub=HubSource("qiaojin/PubMedQA", name="pqa_labeled", split="train",
                          schema="pubmedqa_hub"),
            paper_accuracy=79.6,
            known_checksums={
                "90a38373757b3db54f4b4451c62f4a0621bd03a28428bf10ed24535125617efd":
                    "PubMedQA PQA-L 1,000"}),
        BenchmarkSpec(
            name="pubmedqa_500", title="PubMedQA (official 500 test split)", expected_n=500,
            local=(LocalSource("original", f"{_ORIG}/pubmedqa/ori_pqal.json", "pubmedqa_pqal",
                               split_file=f"{_ORIG}/pubmedqa/test_ground_truth.json"),),
            # bigbio's fold-0 test split is the official 500; it is a script dataset, so the
            # Hub's Parquet conversion branch is what `datasets` can read.
            hub=HubSource("bigbio/pubmed_qa", name="pubmed_qa_labeled_fold0_source",
                          split="test", schema="pubmedqa_pqal", revision="refs/convert/parquet"),
            known_checksums={
                "c647dd452e866b92a34088463d503e75628275fe570e44d4731a9909c4825e02":
                    "PubMedQA official 500 test split"}),
        BenchmarkSpec(
            name="mmlu_pro_medical", title="MMLU-Pro Medical (health + biology)",
            expected_n=1535,
            local=(LocalSource("normalized", f"{_NORM}/MMLU-Pro_Medical_test.json",
                               "normalized"),
                   LocalSource("original",
                               f"{_ORIG}/mmlu_pro/mmlu_pro_test_health_biology_psychology.jsonl",
                               "mmlu_pro", keep=_mmlu_medical)),
            hub=HubSource("TIGER-Lab/MMLU-Pro", split="test", schema="mmlu_pro",
                          keep=_mmlu_medical),
            paper_accuracy=81.6, categories_key="category",
            known_checksums={
                "4dfcff941e24e451cc917034d780565d723ceaedf7b0ee24fb962f5ec164711c":
                    "MMLU-Pro Medical, revised (as in published medical evals)",
                "f377092390bc6114ad5201997a199a1dc48c1d7e2360b69737e9e9fcfbee8895":
                    "MMLU-Pro Medical, 2024 release (gold answers differ)"}),
        BenchmarkSpec(
            name="gpqa_medical", title="GPQA (medical subset)", expected_n=390,
            local=(LocalSource("normalized", f"{_NORM}/GPQA_Medical_test.json", "normalized"),),
            # A Hub mirror of HuatuoGPT-o1's evaluation file (the subset has no official Hub
            # home; GPQA itself is gated at Idavidrein/gpqa).
            hub=HubSource("II-Vietnam/EvalMedical_GPQA_Medical_Test", split="train",
                          schema="normalized"),
            known_checksums={
                "4d31fea37afd5334b8ac2445a4c3fa262fd7056263a6f3c50cdbbe29eb743e57":
                    "GPQA medical (78 questions x 5)"}),
    ]
}

PAPER_ACCURACY = {name: s.paper_accuracy for name, s in BENCHMARKS.items() if s.paper_accuracy}


def benchmark_names() -> list[str]:
    """Registered benchmark names in a stable order."""
    return list(BENCHMARKS)


def get_spec(name: str) -> BenchmarkSpec:
    """The spec of ``name``; a typo gets the closest registered name."""
    if name not in BENCHMARKS:
        import difflib

        close = difflib.get_close_matches(name, BENCHMARKS, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise KeyError(f"unknown benchmark '{name}'{hint} Registered: {', '.join(BENCHMARKS)}")
    return BENCHMARKS[name]


def resolve_data_dir(data_dir: str | Path | None) -> Path | None:
    """``data_dir``, else ``$GAZAL_DATA_DIR``, else None (Hub only)."""
    if data_dir is not None:
        return Path(data_dir)
    env = os.environ.get(DATA_DIR_ENV)
    return Path(env) if env else None


@dataclass
class LoadedBenchmark:
    """Items of one benchmark and where they came from."""

    name: str
    items: list[Item]
    source: str
    sha256: str
    full_n: int | None = None  # items in the full set when ``items`` is a subset (--limit)

    @property
    def n(self) -> int:
        return len(self.items)

    @property
    def known_version(self) -> str | None:
        return get_spec(self.name).known_checksums.get(self.sha256)


def normalise_rows(benchmark: str, rows: Iterable[tuple[int | str, Mapping[str, Any]]],
                   schema: str | None, origin: str) -> list[Item]:
    """Normalise raw rows (``(row_label, record)``) into Items; errors name origin and row."""
    parsed = []
    for label, rec in rows:
        where_line = label if isinstance(label, int) else None
        try:
            if not isinstance(rec, Mapping):
                raise FieldError("(row)", f"expected an object, got {type(rec).__name__}")
            fn = SCHEMAS[schema or detect_schema(rec)]
            parsed.append(fn(rec))
        except FieldError as err:
            where = origin if where_line is not None else f"{origin} [{label}]"
            raise DataError(str(err).split(": ", 1)[1], where, where_line, err.field) from None
        except ValueError as err:
            where = origin if where_line is not None else f"{origin} [{label}]"
            raise DataError(str(err), where, where_line) from None
    ids = assign_ids(benchmark, ((q, o, c) for q, o, _, c, _ in parsed))
    return [Item(id=i, benchmark=benchmark, question=q, options=o, answer=a, context=c, meta=m)
            for i, (q, o, a, c, m) in zip(ids, parsed, strict=True)]


def _load_local(spec: BenchmarkSpec, src: LocalSource, data_dir: Path) -> list[Item]:
    path = data_dir / src.path
    rows = read_rows(path)
    if src.keep is not None:
        rows = [(label, rec) for label, rec in rows if src.keep(rec)]
    if src.split_file is not None:
        split_path = data_dir / src.split_file
        wanted = read_json(split_path)
        if not isinstance(wanted, dict):
            raise DataError("expected an object of PMID -> label", split_path)
        rows = [(label, rec) for label, rec in rows if str(rec.get("pmid")) in wanted]
        missing = set(wanted) - {str(rec.get("pmid")) for _, rec in rows}
        if missing:
            raise DataError(f"{len(missing)} PMIDs of the split are not in {path.name}, e.g. "
                            f"{sorted(missing)[:3]}", split_path)
    return normalise_rows(spec.name, rows, src.schema, str(path))


def _load_hub(spec: BenchmarkSpec) -> list[Item]:
    hub = spec.hub
    if hub is None:
        raise DataError(f"{spec.name} has no Hub source; pass --data-dir with its local file")
    from gazal.hub import load_hub_dataset

    ds = load_hub_dataset(hub.path, hub.name, split=hub.split, revision=hub.revision,
                          what=spec.name, offline=f"Pass --data-dir or set {DATA_DIR_ENV}.")
    rows = [(f"row {i + 1}", dict(rec)) for i, rec in enumerate(ds)]
    if hub.keep is not None:
        rows = [(label, rec) for label, rec in rows if hub.keep(rec)]
    return normalise_rows(spec.name, rows, hub.schema, f"hf://{hub.path}")


def _enrich_meta(items: list[Item], donors: list[Item]) -> list[Item]:
    """Copy meta (MedQA step, MMLU-Pro category, PMID) from another source of the same
    questions, matched by content; ids, text and answers are not touched."""
    by_key: dict[str, dict[str, Any]] = {}
    for d in donors:
        by_key.setdefault(content_key(d.question, d.options, d.context), d.meta)
    out = []
    for it in items:
        extra = by_key.get(content_key(it.question, it.options, it.context))
        if extra:
            it = Item(it.id, it.benchmark, it.question, it.options, it.answer, it.context,
                      {**extra, **it.meta})
        out.append(it)
    return out


def load_benchmark(name: str, data_dir: str | Path | None = None, source: Source = "auto",
                   limit: int | None = None) -> LoadedBenchmark:
    """Load one benchmark as Items.

    ``source``: ``normalized`` / ``original`` local files, ``hub``, or ``auto`` (the first
    local file present under ``data_dir``, normalised files first since published numbers
    use them, else the Hub). ``limit`` keeps the first N items (after the checksum is taken
    over the full set).
    """
    spec = get_spec(name)
    root = resolve_data_dir(data_dir)
    items: list[Item] | None = None
    used = ""
    if source in ("auto", "normalized", "original"):
        candidates = [s for s in spec.local if source == "auto" or s.kind == source]
        present = [s for s in candidates if root is not None and (root / s.path).exists()]
        if present:
            chosen = present[0]
            items = _load_local(spec, chosen, root)  # type: ignore[arg-type]
            used = f"{chosen.kind}:{chosen.path}"
            # Enrich normalised files with meta from the upstream files when those are there.
            for other in spec.local:
                if other is not chosen and other.kind == "original" and \
                        (root / other.path).exists():  # type: ignore[operator]
                    items = _enrich_meta(items, _load_local(spec, other, root))  # type: ignore
        elif source != "auto":
            if not candidates:
                kinds = sorted({s.kind for s in spec.local}) + (["hub"] if spec.hub else [])
                raise DataError(f"{name} has no {source} source; its sources are: "
                                + ", ".join(kinds))
            looked = ", ".join(str((root or Path("<no data dir>")) / s.path) for s in candidates)
            raise DataError(f"no {source} file for {name}: looked for {looked}")
    if items is None:
        if source == "auto" and root is not None:
            log.info("%s: no local file under %s; loading from the Hub", name, root)
        items = _load_hub(spec)
        used = f"hub:{spec.hub.path}"  # type: ignore[union-attr]
    checksum = items_checksum(items)
    if spec.known_checksums and checksum not in spec.known_checksums:
        log.warning("%s: item checksum %s matches no pinned version (%s); numbers may not be "
                    "comparable with published ones", name, checksum[:12],
                    ", ".join(spec.known_checksums.values()))
    if limit is not None:
        items = items[:limit]
    return LoadedBenchmark(name=name, items=items, source=used, sha256=checksum)


def load_items_file(path: str | Path, benchmark: str | None = None,
                    schema: str | None = None) -> list[Item]:
    """Load MCQ items from any supported file (JSONL, JSON list, PubMedQA-style object);
    the schema is detected from the first row unless given."""
    path = Path(path)
    items = normalise_rows(benchmark or path.stem, read_rows(path), schema, str(path))
    if not items:  # an empty set would "evaluate" to n = 0 and exit as if all went well
        raise DataError("holds no items (expected one MCQ row per line or a JSON list)", path)
    return items
