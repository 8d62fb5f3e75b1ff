"""``results.md``: the tables of an evaluation run, ready for a paper or a pull request.

Per benchmark: accuracy, Wilson 95% interval, n, extraction-miss rate, truncation rate, and
the Gazal-R1 paper's number beside ours; a breakdown by category (MedQA step1 vs step2&3,
MMLU-Pro health vs biology); the macro average; mean ± std over samples when there are
several; and the benchmark files' sources and checksums, so two runs can be compared.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gazal.report.tables import fmt_ci, fmt_pct, markdown_table

__all__ = ["render_results_md"]

PAPER = "Gazal-R1 (arXiv 2506.21594)"


def _accuracy_cell(s: Mapping[str, Any]) -> str:
    if "accuracy_std" in s:
        return (f"{fmt_pct(s['accuracy_mean'])} ± {fmt_pct(s['accuracy_std'])} "
                f"({s['samples']} samples)")
    return fmt_pct(s["accuracy"])


def _template_words(gen: Mapping[str, Any]) -> str:
    """How the prompt was rendered: thinking on/off only where the template has the switch."""
    state = "on" if gen.get("thinking", True) else "off"
    has = gen.get("template_thinking", True)  # summaries written before the key: as before
    if has is None:
        return ("the server's chat template" + ("" if state == "on" else
                                                 " with enable_thinking off requested"))
    if not has:
        return "chat template (it has no thinking mode: enable_thinking changes nothing)"
    return f"chat template with thinking {state}"


def _subset_words(sources: Mapping[str, Mapping[str, Any]]) -> str:
    """How ``--limit`` chose the items, when it cut any benchmark."""
    cut = {n: s for n, s in sources.items()
           if s.get("limit") and s.get("evaluated", 0) < s.get("full_size", 0)}
    if not cut:
        return ""
    first = next(iter(cut.values()))
    limit = first["limit"]
    if first.get("limit_mode") == "first":
        return (f"**Subset:** `--limit {limit} --limit-mode first`: the first {limit} items of "
                "each benchmark in file order (not a random sample; categories may be "
                "unevenly covered).")
    by = sorted({f"{n} by `{s['stratified_by']}`" for n, s in cut.items()
                 if s.get("stratified_by")})
    return (f"**Subset:** `--limit {limit}`: a seeded random sample (seed "
            f"{first.get('limit_seed')}) of {limit} items per benchmark, stratified by category "
            "with shares proportional to the category sizes (largest remainders)"
            + (f" ({', '.join(by)}; the others as one group)" if by else "")
            + ", kept in file order; the same seed gives the same items.")


def _samples_section(summary: Mapping[str, Any], sources: Mapping[str, Any]) -> list[str]:
    """pass@k and majority vote per benchmark, when items have several samples."""
    per = {n: s for n, s in (summary.get("benchmarks") or {}).items() if "pass_at_k" in s}
    if not per:
        return []
    ks = sorted({int(k) for s in per.values() for k in s["pass_at_k"]})
    rows = [[sources.get(n, {}).get("title", n), s["samples"],
             f"{fmt_pct(s['accuracy_mean'])} ± {fmt_pct(s['accuracy_std'])}"]
            + [fmt_pct(s["pass_at_k"][str(k)]) if str(k) in s["pass_at_k"] else "-"
               for k in ks] + [fmt_pct(s["majority_accuracy"])] for n, s in per.items()]
    return ["", "## Over samples", "",
            "Mean ± std of the per-sample accuracies; pass@k, the chance that at least one of k "
            "samples is right (unbiased estimator, Chen et al. 2021); majority vote, the most "
            "frequent extracted answer per item (ties: the one given first).", "",
            markdown_table(["benchmark", "samples", "mean ± std"] + [f"pass@{k}" for k in ks]
                           + ["majority vote"], rows)]


def _forcing_section(summary: Mapping[str, Any], sources: Mapping[str, Any]) -> list[str]:
    """Unforced and forced accuracy side by side, when budget forcing was on."""
    f = summary.get("forcing")
    if not f:
        return []
    rows = [[sources.get(n, {}).get("title", n), f"{s['n']:,}",
             f"{s['forced']:,} ({fmt_pct(s['forced_share'])}%)",
             f"{s['forced_correct']:,}", fmt_pct(s["accuracy_unforced"]),
             fmt_pct(s["accuracy_with_forcing"])] for n, s in f["benchmarks"].items()]
    return ["", "## Budget forcing", "",
            f"Responses that reached the thinking budget with their thinking open were given "
            f"`</think>` and `**Final answer: (` and up to {f['answer_tokens']} more tokens "
            "(s1 / m1 budget forcing). The accuracy table above is unforced; *with forcing* "
            "counts each forced answer in place of its unforced one.", "",
            markdown_table(["benchmark", "n", "forced", "forced right", "accuracy",
                            "with forcing"], rows)]


def render_results_md(summary: Mapping[str, Any]) -> str:
    """Markdown report of a ``gazal eval`` summary."""
    lines = ["# Evaluation results", ""]
    if not summary.get("complete", True):
        lines += [f"**Incomplete run:** {summary.get('totals', {}).get('responses', '?')} of "
                  f"{summary.get('expected', '?')} responses ({summary.get('failed', 0)} "
                  "requests failed). Re-run the same command to finish it.", ""]
    gen = summary.get("generation", {})
    lines += [
        f"- model: `{summary.get('model')}`" + (f" + adapter `{summary['adapter']}`"
                                                 if summary.get("adapter") else ""),
        f"- backend: {summary.get('backend')}; zero-shot, {_template_words(gen)}, system "
        f"prompt: {gen.get('system_prompt', 'gazal')}",
        "- decoding: " + ("greedy" if not gen.get("temperature") else
                           f"temperature {gen['temperature']}, top-p {gen.get('top_p')}, "
                           + "".join(f"{label} {gen[key]}, " for key, label in
                                     (("top_k", "top-k"), ("min_p", "min-p"))
                                     if gen.get(key) is not None)
                           + f"seed {gen.get('seed')}")
        + f", at most {gen.get('max_new_tokens')} new tokens, {gen.get('samples', 1)} "
          "sample(s) per item",
        "",
        "## Accuracy", "",
        "Accuracy in %, with the Wilson 95% interval; *miss* is the share of responses with no "
        "extractable answer, *truncated* the share cut at the token limit or with unclosed "
        "thinking (both count as wrong).", ""]
    sources = summary.get("benchmark_sources", {})
    rows = []
    for name, s in (summary.get("benchmarks") or {}).items():
        src = sources.get(name, {})
        paper = src.get("paper_accuracy")
        subset = src.get("evaluated") is not None and src.get("full_size") is not None \
            and src["evaluated"] < src["full_size"]
        paper_cell = "-" if paper is None else f"{paper:.1f}" + (" (full set)" if subset else "")
        rows.append([src.get("title", name), f"{s['n']:,}", _accuracy_cell(s),
                     fmt_ci(s["accuracy_ci95"]), fmt_pct(s["missing"]), fmt_pct(s["truncated"]),
                     paper_cell])
    lines.append(markdown_table(
        ["benchmark", "n", "accuracy", "95% CI", "miss", "truncated", PAPER], rows))
    if summary.get("macro_accuracy") is not None and len(summary.get("benchmarks", {})) > 1:
        lines += ["", f"Macro average over {len(summary['benchmarks'])} benchmarks (each counts "
                      f"once): **{fmt_pct(summary['macro_accuracy'])}**; pooled over all "
                      f"{summary['n']:,} responses: {fmt_pct(summary['accuracy'])} "
                      f"({fmt_ci(summary['accuracy_ci95'])})."]
    lines += _samples_section(summary, sources)
    lines += _forcing_section(summary, sources)
    cat_rows = []
    for name, s in (summary.get("benchmarks") or {}).items():
        for cat, cs in (s.get("categories") or {}).items():
            cat_rows.append([sources.get(name, {}).get("title", name), cat, f"{cs['n']:,}",
                             _accuracy_cell(cs), fmt_ci(cs["accuracy_ci95"]),
                             fmt_pct(cs["missing"]), fmt_pct(cs["truncated"])])
    if cat_rows:
        lines += ["", "## By category", "",
                  "MedQA by USMLE step (step1 vs step2&3); MMLU-Pro Medical by subject "
                  "(health vs biology).", "",
                  markdown_table(["benchmark", "category", "n", "accuracy", "95% CI", "miss",
                                  "truncated"], cat_rows)]
    if sources:
        src_rows = [[name, f"{src.get('evaluated', 0):,} of {src.get('full_size', 0):,}",
                     src.get("source", "-"), f"`{src.get('sha256', '')}`",
                     src.get("pinned_version") or "not a pinned version"]
                    for name, src in sources.items()]
        lines += ["", "## Benchmark files", "",
                  "The sha256 identifies the full item set (before any --limit), so runs with "
                  "equal checksums evaluated the same questions.", "",
                  markdown_table(["benchmark", "items", "source", "sha256", "version"],
                                 src_rows)]
        subset = _subset_words(sources)
        if subset:
            lines += ["", subset]
    totals, run = summary.get("totals", {}), summary.get("run", {})
    if totals:
        lines += ["", "## Generation", "",
                  f"{totals['responses']:,} responses, {totals['prompt_tokens']:,} prompt "
                  f"tokens, {totals['completion_tokens']:,} generated tokens. This invocation "
                  f"generated {run.get('generated', 0):,} responses in "
                  f"{run.get('seconds', 0):,.1f} s ({run.get('responses_per_s', 0):.2f} "
                  f"responses/s, {run.get('tokens_per_s', 0):,.1f} generated tokens/s)."]
    return "\n".join(lines) + "\n"
