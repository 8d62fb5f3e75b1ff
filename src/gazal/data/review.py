"""Clinician review of curated examples: export a stratified sample, import the decisions,
and the agreement between reviewers (Cohen's kappa).

- :func:`export_sample` draws ``n`` kept examples of a curated folder, stratified by
  (category, source) with proportional allocation (largest remainder, at least one per
  stratum while ``n`` allows), and writes ``review.html`` (self-contained: every example's
  prompt and reply, escaped), ``review.csv`` (one row per example with empty ``decision``,
  ``corrected_answer``, ``comment`` and ``reviewer`` columns) and ``sample.json`` (what was
  drawn, from which file, with which seed).
- :func:`import_decisions` checks a filled CSV (named errors: file, row, column) and writes
  ``decisions-<reviewer>.jsonl`` beside it.
- :func:`load_decisions` reads decision files for ``gazal data curate`` (``review`` key):
  a row rejected by any reviewer is removed as ``clinician_rejected``; accepted rows with a
  corrected answer are kept with the correction and who made it.
- :func:`cohen_kappa` and :func:`review_report` summarise: reviewed share, rejection rate per
  category, and pairwise agreement of reviewers who judged the same examples.
"""

from __future__ import annotations

import csv
import hashlib
import html
import json
import random
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gazal import published
from gazal.io import DataError, atomic_write_json, atomic_write_text

__all__ = ["COLUMNS", "DECISIONS", "cohen_kappa", "export_sample", "import_decisions",
           "load_decisions", "review_report"]

COLUMNS = ["id", "category", "source", "question", "model_answer", "decision",
           "corrected_answer", "comment", "reviewer"]
REQUIRED = ["id", "decision", "corrected_answer", "comment"]
DECISIONS = ("accept", "reject")


def _read_kept(path: Path) -> list[dict[str, Any]]:
    rows = []
    with path.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"invalid JSON: {err.msg}", path, line_no) from None
            if not isinstance(row, dict) or not isinstance(row.get("id"), str):
                raise DataError("expected an object with a text 'id'", path, line_no, "id")
            rows.append(row)
    return rows


def _allocate(sizes: dict[tuple[str, str], int], n: int) -> dict[tuple[str, str], int]:
    """Proportional allocation of ``n`` over strata (largest remainder), at least one per
    stratum while n allows, never more than a stratum holds."""
    total = sum(sizes.values())
    n = min(n, total)
    keys = sorted(sizes)
    if n >= len(keys):
        alloc = {k: 1 for k in keys}
        left = n - len(keys)
        rest = {k: sizes[k] - 1 for k in keys}
    else:
        alloc = {k: 0 for k in keys}
        left = n
        rest = dict(sizes)
    rest_total = sum(rest.values())
    if left and rest_total:
        quotas = {k: left * rest[k] / rest_total for k in keys}
        for k in keys:
            alloc[k] += int(quotas[k])
        short = n - sum(alloc.values())
        for k in sorted(keys, key=lambda k: (-(quotas[k] - int(quotas[k])), k))[:short]:
            alloc[k] += 1
    return {k: min(v, sizes[k]) for k, v in alloc.items()}


def _final_answer(reply: str) -> str:
    for line in reversed(reply.strip().splitlines()):
        if "Final answer" in line:
            return line.strip().strip("*").strip()
    return reply.strip().splitlines()[-1][:200] if reply.strip() else ""


def export_sample(curated_dir: str | Path, n: int, out_dir: str | Path, seed: int = 0
                  ) -> dict[str, Any]:
    """Write the review page, CSV and sample record of ``n`` kept examples (see module doc)."""
    curated_dir, out_dir = Path(curated_dir), Path(out_dir)
    kept_path = curated_dir / "kept.jsonl"
    if not kept_path.is_file():
        raise DataError("no kept.jsonl: expected a folder written by gazal data curate",
                        curated_dir)
    if n < 1:
        raise DataError(f"--n must be at least 1, got {n}")
    published.verify(curated_dir, ["kept.jsonl"], command="data curate")
    rows = _read_kept(kept_path)
    strata: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        key = (str(r.get("category") or "uncategorized"), str(r.get("source") or "unknown"))
        strata.setdefault(key, []).append(r)
    alloc = _allocate({k: len(v) for k, v in strata.items()}, n)
    rnd = random.Random(seed)
    sample: list[dict[str, Any]] = []
    for key in sorted(strata):
        sample += rnd.sample(strata[key], alloc[key])
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_rows = []
    for r in sample:
        msgs = r.get("messages") or []
        user = next((m.get("content", "") for m in msgs if m.get("role") == "user"), "")
        reply = msgs[-1].get("content", "") if msgs else ""
        csv_rows.append({"id": r["id"], "category": r.get("category") or "uncategorized",
                         "source": r.get("source") or "unknown",
                         "question": " ".join(user.split())[:300],
                         "model_answer": _final_answer(reply), "decision": "",
                         "corrected_answer": "", "comment": "", "reviewer": ""})
    with (out_dir / "review.csv").open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(csv_rows)
    atomic_write_text(out_dir / "review.html", _html(sample, kept_path))
    record = {"curated": str(kept_path),
              "sha256": hashlib.sha256(kept_path.read_bytes()).hexdigest(), "n": len(sample),
              "seed": seed, "strata": {f"{c} / {s}": alloc[(c, s)] for c, s in sorted(alloc)},
              "ids": [r["id"] for r in sample]}
    atomic_write_json(out_dir / "sample.json", record)
    return record


def _html(sample: list[dict[str, Any]], source: Path) -> str:
    esc = html.escape
    cards = []
    for k, r in enumerate(sample, start=1):
        msgs = r.get("messages") or []
        body = "".join(f"<h4>{esc(str(m.get('role')))}</h4><pre>{esc(str(m.get('content')))}"
                       "</pre>" for m in msgs if m.get("role") != "system")
        cards.append(f"<section><h3>{k}. <code>{esc(r['id'])}</code> — "
                     f"{esc(str(r.get('category')))} / {esc(str(r.get('source')))}</h3>"
                     f"{body}</section>")
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>gazal clinician review"
            "</title><style>body{font-family:sans-serif;max-width:60em;margin:auto}"
            "pre{white-space:pre-wrap;background:#f6f6f6;padding:.5em}section{border-top:"
            "1px solid #ccc;margin-top:1em}</style></head><body>"
            f"<h1>Clinician review: {len(sample)} examples</h1><p>From "
            f"<code>{esc(str(source))}</code>. For each example, fill its row of "
            "<code>review.csv</code>: <b>decision</b> <code>accept</code> or "
            "<code>reject</code>; <b>corrected_answer</b> when the final answer is wrong but "
            "the example is worth keeping; <b>comment</b>; <b>reviewer</b> (your name). Then "
            "run <code>gazal data review import FILLED.csv</code>.</p>"
            + "".join(cards) + "</body></html>")


def import_decisions(csv_path: str | Path, reviewer: str | None = None) -> Path:
    """Check a filled review CSV and write ``decisions-<reviewer>.jsonl`` beside it."""
    path = Path(csv_path)
    if not path.is_file():
        raise DataError("file not found", path)
    sample_ids: set[str] | None = None
    sample_file = path.parent / "sample.json"
    if sample_file.is_file():
        sample_ids = set(json.loads(sample_file.read_text(encoding="utf-8"))["ids"])
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise DataError(f"missing column(s) {missing}; expected the columns of the "
                            f"exported review.csv ({', '.join(COLUMNS)})", path, 1, missing[0])
        decisions: list[dict[str, Any]] = []
        names: set[str] = set()
        seen: dict[str, int] = {}
        for line, row in enumerate(reader, start=2):
            rid = (row.get("id") or "").strip()
            if not rid:
                raise DataError("empty id", path, line, "id")
            if sample_ids is not None and rid not in sample_ids:
                raise DataError(f"id {rid!r} is not in the exported sample ({sample_file})",
                                path, line, "id")
            if rid in seen:
                raise DataError(f"id {rid!r} appears twice (first on row {seen[rid]})", path,
                                line, "id")
            seen[rid] = line
            decision = (row.get("decision") or "").strip().lower()
            corrected = (row.get("corrected_answer") or "").strip()
            if decision and decision not in DECISIONS:
                raise DataError(f"expected accept, reject or empty (not reviewed), got "
                                f"{row.get('decision')!r}", path, line, "decision")
            if not decision:
                if corrected:
                    raise DataError("a corrected answer needs a decision (accept)", path, line,
                                    "decision")
                continue
            name = (row.get("reviewer") or "").strip()
            if name:
                names.add(name)
            decisions.append({"id": rid, "decision": decision, "corrected_answer":
                              corrected or None, "comment": (row.get("comment") or "").strip()
                              or None, "line": line})
    if reviewer is None:
        if len(names) > 1:
            raise DataError(f"several reviewers in one file ({sorted(names)}); import one "
                            "file per reviewer or pass --reviewer", path, None, "reviewer")
        reviewer = names.pop() if names else path.stem
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in reviewer)
    out = path.parent / f"decisions-{safe}.jsonl"
    atomic_write_text(out, "".join(json.dumps({**d, "reviewer": reviewer, "file": str(path)},
                                              ensure_ascii=False) + "\n" for d in decisions))
    return out


def load_decisions(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Every decision of the given files (a folder: its ``decisions-*.jsonl``)."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(p.glob("decisions-*.jsonl"))
        elif p.is_file():
            files.append(p)
        else:
            raise DataError("review decisions not found (run gazal data review import)", p)
    out = []
    for f in files:
        for line_no, line in enumerate(f.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"invalid JSON: {err.msg}", f, line_no) from None
            if d.get("decision") not in DECISIONS or not isinstance(d.get("id"), str):
                raise DataError("expected {id, decision: accept|reject, reviewer, ...}", f,
                                line_no)
            out.append(d)
    return out


def cohen_kappa(a: Sequence[str], b: Sequence[str]) -> float | None:
    """Cohen's kappa of two raters' labels of the same items (None when undefined: no items,
    or both raters gave one and the same label to everything)."""
    if len(a) != len(b):
        raise ValueError("the two raters must label the same items")
    n = len(a)
    if not n:
        return None
    p_o = sum(x == y for x, y in zip(a, b, strict=True)) / n
    ca, cb = Counter(a), Counter(b)
    p_e = sum(ca[k] * cb[k] for k in set(ca) | set(cb)) / (n * n)
    if p_e == 1.0:
        return None
    return (p_o - p_e) / (1 - p_e)


def review_report(decisions: list[dict[str, Any]], categories: dict[str, str],
                  n_rows: int) -> dict[str, Any]:
    """Reviewed share, rejection rate per category, and pairwise reviewer agreement.
    ``categories`` maps row ids of the input to their category."""
    by_id: dict[str, dict[str, str]] = {}
    for d in decisions:
        by_id.setdefault(d["id"], {})[d["reviewer"]] = d["decision"]
    reviewed = [i for i in by_id if i in categories]
    per_cat: dict[str, Counter] = {}
    for i in reviewed:
        c = per_cat.setdefault(categories[i], Counter())
        c["reviewed"] += 1
        c["rejected"] += "reject" in by_id[i].values()
    reviewers = sorted({d["reviewer"] for d in decisions})
    agreement = []
    for x in range(len(reviewers)):
        for y in range(x + 1, len(reviewers)):
            r1, r2 = reviewers[x], reviewers[y]
            common = sorted(i for i, v in by_id.items() if r1 in v and r2 in v)
            a = [by_id[i][r1] for i in common]
            b = [by_id[i][r2] for i in common]
            kappa = cohen_kappa(a, b)
            agreement.append({"reviewers": [r1, r2], "items": len(common),
                              "observed_agreement": round(sum(p == q for p, q in zip(
                                  a, b, strict=True)) / len(common), 4) if common else None,
                              "cohen_kappa": round(kappa, 4) if kappa is not None else None})
    return {"reviewers": reviewers, "reviewed_rows": len(reviewed),
            "reviewed_share": round(len(reviewed) / max(1, n_rows), 4),
            "decisions_for_unknown_ids": len(by_id) - len(reviewed),
            "by_category": {k: {"reviewed": v["reviewed"], "rejected": v["rejected"],
                                "rejection_rate": round(v["rejected"] / v["reviewed"], 4)}
                            for k, v in sorted(per_cat.items())},
            "agreement": agreement}
