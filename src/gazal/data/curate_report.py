"""The curation report: ``report.json``, ``report.md`` and ``length_histogram.png``."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from gazal.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from gazal.report.tables import markdown_table

__all__ = ["render_markdown", "write_report"]

HISTOGRAM = "length_histogram.png"


def write_report(out_dir: Path, report: dict[str, Any], rows: list[Any]) -> None:
    """Write the three report files (each atomically)."""
    atomic_write_json(out_dir / "report.json", report)
    atomic_write_text(out_dir / "report.md", render_markdown(report))
    atomic_write_bytes(out_dir / HISTOGRAM, _histogram_png(rows))


def _histogram_png(rows: list[Any]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    kept = [r.words for r in rows if r.reason is None]
    removed = [r.words for r in rows if r.reason not in (None, "malformed")]
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    top = max(kept + removed + [1])
    bins = 60
    if kept:
        ax.hist(kept, bins=bins, range=(0, top), alpha=0.75, label=f"kept ({len(kept):,})")
    if removed:
        ax.hist(removed, bins=bins, range=(0, top), alpha=0.6,
                label=f"removed ({len(removed):,})")
    ax.set_xlabel("assistant reply length (words)")
    ax.set_ylabel("examples")
    ax.set_title("Length of the assistant replies")
    if kept or removed:
        ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def render_markdown(report: dict[str, Any]) -> str:
    """The human-readable report."""
    reasons = report["removed_by_reason"]
    n_in = report["input"]["rows"]
    lines = [
        "# Curation report",
        "",
        f"Input: `{report['input']['path']}` ({n_in:,} rows, sha256 "
        f"`{report['input']['sha256'][:16]}`)",
        "",
        f"**Kept {report['kept']:,}**, removed {report['removed']:,}.",
        "",
        "## Removed, by reason",
        "",
        markdown_table(["reason", "rows", "share of input"],
                       [[k, f"{v:,}", f"{100 * v / max(1, n_in):.2f}%"]
                        for k, v in reasons.items()]),
        "",
        "## By category",
        "",
    ]
    used = [k for k in reasons if reasons[k] and k != "malformed"]
    cat_rows = []
    for cat, c in report["by_category"].items():
        cat_rows.append([cat, f"{c['input']:,}", f"{c['kept']:,}"]
                        + [f"{c['removed'].get(k, 0):,}" for k in used])
    lines += [markdown_table(["category", "input", "kept", *used], cat_rows), ""]
    if report["format_errors"]:
        lines += ["### Format errors", "",
                  markdown_table(["error", "rows"], [[k, f"{v:,}"] for k, v in
                                                     report["format_errors"].items()]), ""]
    dc = report["decontamination"]
    if dc.get("rule") == "distinctive":
        how = (f"Rule `distinctive`: rarity-weighted word {dc['edit_ngram_n']}-grams of each "
               f"item (numbers normalised; {dc['template_units_dropped']:,} template n-grams "
               f"weigh nothing), flagged at a weighted share >= {dc['min_score']} within one "
               f"window; {dc['items']:,} items ({dc['distinct_questions']:,} distinct "
               "questions)")
    else:
        how = (f"Rule `ngram`: word {dc['ngram_n']}-grams of normalised text against "
               f"{dc['items']:,} items ({dc['distinct_questions']:,} distinct questions, "
               f"{dc['indexed_ngrams']:,} n-grams; {dc['boilerplate_ngrams_dropped']:,} "
               "boilerplate n-grams dropped)")
    lines += ["## Decontamination", "",
              how + f"; {dc['short_questions_indexed']:,} short questions also matched whole "
              f"with their options; {dc['unchecked_questions']:,} questions cannot be "
              "checked.", ""]
    sem = dc.get("semantic") or {}
    if sem.get("enabled"):
        lines += [f"Semantic stage (judge `{sem['model']}`): {sem['near_misses']:,} near misses, "
                  f"{sem['judged']:,} judged ({sem['not_judged']:,} over max_candidates, "
                  f"{sem['errors']:,} errors), {sem['flagged']:,} flagged; "
                  f"{sem['prompt_tokens']:,} prompt / {sem['completion_tokens']:,} completion "
                  f"tokens, {sem['seconds']:.1f} s, estimated cost {sem['estimated_cost']}.",
                  ""]
    con = report["contamination"]
    lines += [f"**{con['rows']:,} rows contain an evaluation question**, counted over every "
              "parsed row: removed as `contaminated` "
              f"{sum(con['removed_as_contaminated'].values()):,}, removed earlier for another "
              f"reason {sum(con['removed_earlier_for_another_reason'].values()):,}"
              + (f"; {con['not_checked_malformed']:,} malformed lines could not be checked"
                 if con["not_checked_malformed"] else "") + ".", ""]
    bench_rows = [[b["name"], f"{b.get('n', 0):,}", "yes" if b.get("checked") else "**NO**",
                   (b.get("sha256") or "-")[:16], b.get("source") or b.get("error", "-"),
                   f"{con['by_benchmark'].get(b['name'], 0):,}",
                   f"{con['removed_as_contaminated'].get(b['name'], 0):,}",
                   f"{con['removed_earlier_for_another_reason'].get(b['name'], 0):,}"]
                  for b in dc["benchmarks"]]
    lines += [markdown_table(["benchmark", "items", "checked", "sha256", "source",
                              "contaminated rows (all)", "removed as contaminated",
                              "removed earlier for another reason"], bench_rows), ""]
    examples = con["examples"][:20]
    if examples:
        lines += ["Examples (first 20; all are in removed.jsonl):", "",
                  markdown_table(["line", "id", "reason", "benchmark", "item", "kind", "score",
                                  "matched spans"],
                                 [[e["line"], e["id"], e["reason"], e["benchmark"],
                                   e["item_id"], e["kind"], e.get("score", "-"),
                                   "`" + " / ".join(e.get("matched_spans")
                                                    or [e["matched_text"]])[:120] + "`"]
                                  for e in examples]), ""]
    rv = report.get("review")
    if rv:
        lines += ["## Clinician review", "",
                  f"{rv['reviewed_rows']:,} rows reviewed ({100 * rv['reviewed_share']:.2f}% of "
                  f"the input) by {', '.join(rv['reviewers'])}; a row rejected by any reviewer "
                  "is removed as `clinician_rejected`.", "",
                  markdown_table(["category", "reviewed", "rejected", "rejection rate"],
                                 [[k, v["reviewed"], v["rejected"],
                                   f"{100 * v['rejection_rate']:.1f}%"]
                                  for k, v in rv["by_category"].items()]), ""]
        if rv["agreement"]:
            lines += [markdown_table(
                ["reviewers", "items both judged", "observed agreement", "Cohen's kappa"],
                [[" / ".join(a["reviewers"]), a["items"], a["observed_agreement"],
                  a["cohen_kappa"] if a["cohen_kappa"] is not None else "undefined"]
                 for a in rv["agreement"]]), ""]
    nd = report["near_duplicates"]
    lines += ["## Duplicates", "",
              f"Exact: {reasons.get('exact_duplicate', 0):,}; near (MinHash/LSH): "
              f"{nd['removed']:,}"
              + (f", mean estimated Jaccard {nd['mean_similarity']}" if nd["removed"] else "")
              + ".", ""]
    lw = report["length_words"]
    lines += ["## Lengths (assistant words)", "",
              markdown_table(["rows", "n", "min", "p5", "median", "mean", "p95", "max"],
                             [[name] + ([s["n"], s["min"], s["p5"], s["median"], s["mean"],
                                        s["p95"], s["max"]] if s else ["-"] * 7)
                              for name, s in (("kept", lw["kept"]),
                                              ("removed", lw["removed"]))]),
              "", f"![length histogram]({HISTOGRAM})", ""]
    if report["malformed_lines"]:
        lines += ["## Malformed lines (skipped)", ""]
        lines += [f"- line {m['line']}: {m['error']}" for m in report["malformed_lines"][:100]]
        if len(report["malformed_lines"]) > 100:
            lines.append(f"- ... {len(report['malformed_lines']) - 100} more in report.json")
        lines.append("")
    t = report["timing_s"]
    lines += ["## Run", "",
              f"{t['total']:.1f} s in all ("
              + ", ".join(f"{k} {v:.1f} s" for k, v in t.items() if k != "total")
              + f"); peak memory {report['peak_rss_mb']:,} MB.", ""]
    return "\n".join(lines)
