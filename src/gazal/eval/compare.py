"""``gazal compare RUN_DIR RUN_DIR ...``: is the difference between two evaluation runs real?

Every run is compared with the first (the baseline) over the same items, per benchmark and
per category (MedQA step, MMLU-Pro subject), and pooled over all items:

- **accuracy** of each run: the mean over items of the item's score, the share of its
  samples answered correctly (0 or 1 with one sample);
- **difference** (run - baseline) with a **paired bootstrap 95% interval**: items are
  resampled with replacement (the same resampled items for both runs, which is what makes it
  paired), the difference of means is taken for each of ``n_boot`` resamples, and the
  interval is their 2.5th and 97.5th percentiles (Efron & Tibshirani 1993, the percentile
  interval). The resampling is seeded (``seed`` and the group's name), so the same inputs
  give the same interval;
- **McNemar's exact test** (McNemar 1947; the exact form is a binomial test on the
  discordant pairs): with ``b`` items right in the baseline only and ``c`` right in the run
  only, under the null hypothesis each discordant item is equally likely to go either way,
  so ``p = min(1, 2 * sum_{k <= min(b, c)} C(b + c, k) / 2^(b + c))`` (two-sided; 1 when
  there is no discordant item). It uses each item's first sample (``sample_index`` 0), the
  one binary outcome both runs have per item.

When every run used budget forcing (``--force-answer-tokens``), the same paired comparison
is repeated with the forced answers counted (``forced_correct``).

Besides the paired numbers: accuracy by **response length** (generated tokens, in
power-of-two bins: short recall-style answers vs long reasoning) and by **extraction rule**
(which of the extractor's rules found the answer, ``none`` when it found none), per run.

Runs over different items are refused with :class:`MismatchedItemsError`: the benchmark
checksums saved in each ``summary.json`` (the full item sets) must agree, and so must the
items the runs answered (benchmark and id of every record).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from gazal import published
from gazal.config import ConfigError
from gazal.eval.runner import RESPONSES_FILE, SUMMARY_FILE, derive_seed
from gazal.eval.score import category_keys
from gazal.io import atomic_write_json, atomic_write_text, read_json, read_jsonl
from gazal.report.tables import fmt_pct

__all__ = ["COMPARE_FILE", "EvalRun", "MismatchedItemsError", "check_same_items",
           "compare_runs", "length_bins", "load_run", "mcnemar_exact", "paired_bootstrap",
           "paired_rows", "rule_rows", "summary_lines", "write_comparison"]

COMPARE_FILE = "compare.md"
COMPARE_HTML = "compare.html"
COMPARE_JSON = "compare.json"
# Upper edges of the response-length bins (generated tokens); the last bin is open.
LENGTH_EDGES = (64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)

ItemKey = tuple[str, str]  # (benchmark, id)


class MismatchedItemsError(ConfigError):
    """The runs did not evaluate the same items, so a paired comparison means nothing."""


@dataclass
class EvalRun:
    """One ``gazal eval`` run folder, read back."""

    path: Path
    label: str
    records: list[dict[str, Any]]
    summary: dict[str, Any]
    # item -> its records (every sample), and the item's meta
    by_item: dict[ItemKey, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def checksums(self) -> dict[str, str]:
        return {name: src.get("sha256") for name, src in
                (self.summary.get("benchmark_sources") or {}).items()}


def load_run(path: str | Path, label: str | None = None) -> EvalRun:
    """Read ``responses.jsonl`` and ``summary.json`` of an eval run folder."""
    path = Path(path)
    responses = path / RESPONSES_FILE
    if not responses.exists():
        raise ConfigError(f"{path} is not a gazal eval run: it has no {RESPONSES_FILE}")
    if (path / SUMMARY_FILE).exists():  # a finished run: its files must be one set
        published.verify(path, [RESPONSES_FILE, SUMMARY_FILE], command="eval")
    records = read_jsonl(responses)
    summary = read_json(path / SUMMARY_FILE) if (path / SUMMARY_FILE).exists() else {}
    run = EvalRun(path=path, label=label or path.name, records=records, summary=summary)
    for rec in records:
        run.by_item.setdefault((str(rec.get("benchmark")), str(rec.get("id"))), []).append(rec)
    return run


def check_same_items(runs: Sequence[EvalRun]) -> None:
    """Raise :class:`MismatchedItemsError` unless every run answered the baseline's items
    from the same benchmark files."""
    base = runs[0]
    for run in runs[1:]:
        for name in sorted(set(base.checksums) & set(run.checksums)):
            if base.checksums[name] != run.checksums[name]:
                raise MismatchedItemsError(
                    f"benchmark {name!r} comes from different item sets: checksum "
                    f"{base.checksums[name]} in {base.path}, {run.checksums[name]} in "
                    f"{run.path}; runs are comparable only over the same questions")
        a, b = set(base.by_item), set(run.by_item)
        if a != b:
            only_a, only_b = sorted(a - b), sorted(b - a)
            parts = []
            if only_a:
                parts.append(f"{len(only_a)} item(s) of {base.path} are missing from "
                             f"{run.path} (e.g. {'/'.join(only_a[0])})")
            if only_b:
                parts.append(f"{len(only_b)} item(s) of {run.path} are not in {base.path} "
                             f"(e.g. {'/'.join(only_b[0])})")
            raise MismatchedItemsError(
                "the runs evaluated different items: " + "; ".join(parts) + ". Compare runs "
                "of the same benchmarks, --limit and --limit-seed, each complete.")


# --------------------------------------------------------------------------- statistics


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for ``b`` and ``c`` discordant pairs (a binomial test
    of ``min(b, c)`` successes in ``b + c`` trials with probability 1/2), computed exactly."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1))
    return float(min(Fraction(1), Fraction(2 * tail, 2 ** n)))


def paired_bootstrap(a: Sequence[float], b: Sequence[float], *, n_boot: int = 2000,
                     seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of ``mean(b) - mean(a)`` over paired resamples of the items."""
    import numpy as np

    if len(a) != len(b):
        raise ValueError(f"paired samples of different sizes: {len(a)} and {len(b)}")
    if not a:
        return (0.0, 0.0)
    d = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    step = max(1, 2_000_000 // len(d))  # resamples per chunk: bounded memory
    for start in range(0, n_boot, step):
        k = min(step, n_boot - start)
        idx = rng.integers(0, len(d), size=(k, len(d)))
        means[start:start + k] = d[idx].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return (float(lo), float(hi))


def _item_score(recs: Sequence[Mapping[str, Any]], key: str = "correct") -> float:
    return sum(bool(r.get(key)) for r in recs) / len(recs)


def _first_sample(recs: Sequence[Mapping[str, Any]], key: str = "correct") -> bool:
    first = min(recs, key=lambda r: int(r.get("sample_index") or 0))
    return bool(first.get(key))


def _groups(base: EvalRun) -> dict[str, list[ItemKey]]:
    """Group name -> items: 'all', each benchmark, and 'benchmark / category'."""
    keys = category_keys()
    groups: dict[str, list[ItemKey]] = defaultdict(list)
    for key, recs in base.by_item.items():
        bench = key[0]
        groups["all"].append(key)
        groups[bench].append(key)
        cat_key = keys.get(bench)
        value = (recs[0].get("meta") or {}).get(cat_key) if cat_key else None
        if value is not None:
            groups[f"{bench} / {value}"].append(key)
    benches = sorted({k[0] for k in base.by_item})
    order = ["all"] + [g for b in benches for g in sorted(groups) if g == b
                       or g.startswith(b + " / ")]
    return {g: groups[g] for g in order if g in groups and (g != "all" or len(benches) > 1)}


def paired_rows(base: EvalRun, run: EvalRun, *, n_boot: int, seed: int,
                key: str = "correct") -> list[dict[str, Any]]:
    """Per group: n, both accuracies, the difference, its bootstrap interval, McNemar.
    ``key`` is the record field scored (``forced_correct``: with budget forcing)."""
    rows = []
    for group, items in _groups(base).items():
        a = [_item_score(base.by_item[k], key) for k in items]
        b = [_item_score(run.by_item[k], key) for k in items]
        a1 = [_first_sample(base.by_item[k], key) for k in items]
        b1 = [_first_sample(run.by_item[k], key) for k in items]
        only_base = sum(x and not y for x, y in zip(a1, b1, strict=True))
        only_run = sum(y and not x for x, y in zip(a1, b1, strict=True))
        acc_a, acc_b = sum(a) / len(a), sum(b) / len(b)
        lo, hi = paired_bootstrap(a, b, n_boot=n_boot,
                                  seed=derive_seed(seed, "compare", group))
        rows.append({"group": group, "n": len(items), "baseline": acc_a, "run": acc_b,
                     "difference": acc_b - acc_a, "ci95": [lo, hi],
                     "only_baseline_right": only_base, "only_run_right": only_run,
                     "mcnemar_p": mcnemar_exact(only_base, only_run)})
    return rows


def length_bins(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Accuracy by generated tokens, in the bins of ``LENGTH_EDGES`` that hold responses."""
    bins: dict[int, list[bool]] = defaultdict(list)
    for r in records:
        n = int(r.get("n_completion_tokens") or 0)
        k = next((i for i, edge in enumerate(LENGTH_EDGES) if n <= edge), len(LENGTH_EDGES))
        bins[k].append(bool(r.get("correct")))
    out = []
    for k in sorted(bins):
        lo = 0 if k == 0 else LENGTH_EDGES[k - 1] + 1
        label = f"{lo}-{LENGTH_EDGES[k]}" if k < len(LENGTH_EDGES) else f"> {LENGTH_EDGES[-1]}"
        v = bins[k]
        out.append({"bin": label, "upper": LENGTH_EDGES[k] if k < len(LENGTH_EDGES) else None,
                    "n": len(v), "accuracy": sum(v) / len(v)})
    return out


def rule_rows(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Accuracy and share of responses per extraction rule (``none``: nothing extracted)."""
    by: dict[str, list[bool]] = defaultdict(list)
    for r in records:
        by[str(r.get("extraction_rule") or "none")].append(bool(r.get("correct")))
    total = len(records) or 1
    return [{"rule": rule, "n": len(v), "share": len(v) / total, "accuracy": sum(v) / len(v)}
            for rule, v in sorted(by.items(), key=lambda kv: (-len(kv[1]), kv[0]))]


def compare_runs(paths: Sequence[str | Path], *, labels: Sequence[str] | None = None,
                 n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """The comparison of ``paths[1:]`` with ``paths[0]`` (module docstring), as a dict."""
    if len(paths) < 2:
        raise ConfigError("gazal compare needs at least two run folders")
    if n_boot < 1:
        raise ConfigError(f"bootstrap resamples must be >= 1, got {n_boot}")
    if labels is not None and len(labels) != len(paths):
        raise ConfigError(f"{len(labels)} labels for {len(paths)} runs")
    names = list(labels) if labels else [Path(p).name for p in paths]
    if len(set(names)) != len(names):
        names = [str(p) for p in paths]
    runs = [load_run(p, name) for p, name in zip(paths, names, strict=True)]
    check_same_items(runs)
    base = runs[0]
    return {
        "baseline": base.label, "n_boot": n_boot, "seed": seed,
        "runs": [{"label": r.label, "path": str(r.path), "model": r.summary.get("model"),
                  "adapter": r.summary.get("adapter"), "responses": len(r.records),
                  "samples": max((int(x.get("sample_index") or 0) for x in r.records),
                                 default=0) + 1,
                  "generation": r.summary.get("generation", {}),
                  "length_bins": length_bins(r.records),
                  "extraction_rules": rule_rows(r.records)} for r in runs],
        "checksums": base.checksums,
        "items": len(base.by_item),
        "pairs": [{"run": r.label, "rows": paired_rows(base, r, n_boot=n_boot, seed=seed)}
                  for r in runs[1:]],
        # every run used budget forcing: the same comparison with the forced answers counted
        "pairs_with_forcing": [
            {"run": r.label, "rows": paired_rows(base, r, n_boot=n_boot, seed=seed,
                                                 key="forced_correct")}
            for r in runs[1:]] if all("forced_answer" in rec
                                      for r in runs for rec in r.records) else [],
    }


# --------------------------------------------------------------------------- output


def _pp(x: float) -> str:
    return f"{100 * x:+.1f}"


def _p(x: float) -> str:
    return f"{x:.3g}" if x >= 0.001 else f"{x:.1e}"


def _document(result: Mapping[str, Any], out: Path) -> Any:
    from gazal.report.build import _Doc  # the report's markdown + self-contained HTML blocks
    from gazal.report.plots import line_plot

    doc = _Doc()
    doc.heading("gazal compare", level=1)
    doc.text(f"{result['items']:,} items, the same in every run (benchmark checksums and item "
             f"ids checked). Baseline: {result['baseline']}. Differences are run - baseline "
             f"in percentage points, with a paired bootstrap 95% interval ({result['n_boot']:,} "
             f"resamples of the items, seed {result['seed']}) and McNemar's exact two-sided "
             "p-value on the discordant items (first sample of each item).")
    doc.table(["run", "model", "adapter", "responses", "samples per item", "decoding"],
              [[r["label"], r["model"] or "-", r["adapter"] or "-", f"{r['responses']:,}",
                r["samples"], _decoding(r["generation"])] for r in result["runs"]])
    pairs = [(p, "") for p in result["pairs"]] + [
        (p, " (with budget forcing)") for p in result.get("pairs_with_forcing") or []]
    for pair, suffix in pairs:
        doc.heading(f"{pair['run']} vs {result['baseline']}{suffix}")
        doc.table(["items", "n", result["baseline"], pair["run"], "difference (pp)",
                   "95% CI (pp)", "baseline only right", "run only right", "McNemar p"],
                  [[row["group"], f"{row['n']:,}", fmt_pct(row["baseline"]),
                    fmt_pct(row["run"]), _pp(row["difference"]),
                    f"[{_pp(row['ci95'][0])}, {_pp(row['ci95'][1])}]",
                    row["only_baseline_right"], row["only_run_right"], _p(row["mcnemar_p"])]
                   for row in pair["rows"]])
    doc.heading("Accuracy by response length")
    doc.text("Generated tokens per response (thinking included), in power-of-two bins: short "
             "recall-style answers against long reasoning. Each run's own responses fall in "
             "its own bins, so these are not paired.")
    labels = sorted({b["bin"] for r in result["runs"] for b in r["length_bins"]},
                    key=lambda s: _bin_order(s))
    doc.table(["tokens"] + [r["label"] for r in result["runs"]],
              [[label] + [_bin_cell(r, label) for r in result["runs"]] for label in labels])
    series = {r["label"]: [(float(b["upper"] or 2 * LENGTH_EDGES[-1]), 100 * b["accuracy"])
                           for b in r["length_bins"]] for r in result["runs"]}
    png = out / "accuracy_by_length.png"
    if line_plot(series, png, title="Accuracy by response length", ylabel="accuracy (%)",
                 xlabel="generated tokens (bin upper edge)"):
        doc.image(png, "Accuracy by response length (upper edge of each bin)")
    doc.heading("Accuracy by extraction rule")
    doc.text("Which rule of the extractor found the answer (`none`: no answer extracted, "
             "always wrong): accuracy within the rule, and the rule's share of the run's "
             "responses.")
    rules = sorted({x["rule"] for r in result["runs"] for x in r["extraction_rules"]})
    doc.table(["rule"] + [r["label"] for r in result["runs"]],
              [[rule] + [_rule_cell(r, rule) for r in result["runs"]] for rule in rules])
    return doc


def _decoding(gen: Mapping[str, Any]) -> str:
    if not gen:
        return "-"
    if not gen.get("temperature"):
        return "greedy"
    extra = "".join(f", {label} {gen[key]}" for key, label in
                    (("top_k", "top-k"), ("min_p", "min-p")) if gen.get(key) is not None)
    return f"T {gen['temperature']}, top-p {gen.get('top_p')}{extra}"


def _bin_order(label: str) -> int:
    return 10 ** 9 if label.startswith(">") else int(label.split("-")[0])


def _bin_cell(run: Mapping[str, Any], label: str) -> str:
    b = next((x for x in run["length_bins"] if x["bin"] == label), None)
    return "-" if b is None else f"{fmt_pct(b['accuracy'])} (n {b['n']:,})"


def _rule_cell(run: Mapping[str, Any], rule: str) -> str:
    x = next((x for x in run["extraction_rules"] if x["rule"] == rule), None)
    return "-" if x is None else (f"{fmt_pct(x['accuracy'])} ({fmt_pct(x['share'])}% of "
                                  "responses)")


def write_comparison(result: Mapping[str, Any], out: str | Path) -> tuple[Path, Path]:
    """Write ``compare.md``, ``compare.html`` (self-contained: the plot embedded) and
    ``compare.json`` into ``out``; returns the markdown and HTML paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    published.begin(out, "compare")
    doc = _document(result, out)
    md, page = out / COMPARE_FILE, out / COMPARE_HTML
    atomic_write_text(md, doc.markdown(out))
    atomic_write_text(page, doc.html("gazal compare"))
    atomic_write_json(out / COMPARE_JSON, json.loads(json.dumps(result)))
    published.publish(out, (COMPARE_FILE, COMPARE_HTML, COMPARE_JSON), "compare")
    return md, page


def summary_lines(result: Mapping[str, Any]) -> list[str]:
    """One console line per run pair and group."""
    lines = []
    for pair in result["pairs"]:
        for row in pair["rows"]:
            lines.append(f"{pair['run']} vs {result['baseline']} [{row['group']}]: "
                         f"{fmt_pct(row['run'])} vs {fmt_pct(row['baseline'])}, "
                         f"{_pp(row['difference'])} pp (95% CI {_pp(row['ci95'][0])} to "
                         f"{_pp(row['ci95'][1])}), McNemar p {_p(row['mcnemar_p'])}")
    return lines

