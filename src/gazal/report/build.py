"""``gazal report RUN_DIR``: a markdown report and a self-contained HTML page of a run.

A run directory is a pipeline run (``pipeline.json`` lists its stages) or any folder whose
subfolders are command run directories (each with the ``config.yaml`` that every gazal
command writes, naming the command). The report holds: the stage table; the SFT loss
curve; GRPO reward components, accuracy, completion lengths and answered-letter entropy over
steps; each evaluation's table with 95% intervals next to the Gazal-R1 paper's numbers; and a
few sample responses. Plots are PNGs (matplotlib) in ``RUN/report/``; the HTML page embeds
them, so it is one file that can be mailed or archived.
"""

from __future__ import annotations

import base64
import html
import json
import os
import shutil
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gazal import published
from gazal.benchmarks import PAPER_ACCURACY
from gazal.io import (
    DataError,
    atomic_write_text,
    iter_jsonl,
    read_json,
    repair_replaced_folder,
    replace_folder,
)
from gazal.report.plots import line_plot, metric_series
from gazal.report.tables import fmt_ci, fmt_pct, markdown_table

__all__ = ["Stage", "build_report", "discover_stages"]

PIPELINE_FILE = "pipeline.json"
REPORT_DIR = "report"


@dataclass
class Stage:
    """One stage of a run: its folder, command and what it recorded."""

    name: str
    command: str
    path: Path
    status: str = "complete"
    seconds: float | None = None
    numbers: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- discovery


def _command_of(path: Path) -> str | None:
    cfg = path / "config.yaml"
    if not cfg.exists():
        return None
    try:
        data = yaml.safe_load(cfg.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError:
        return None
    return data.get("command") if isinstance(data, dict) else None


def discover_stages(run_dir: str | Path) -> list[Stage]:
    """The stages of ``run_dir``: from ``pipeline.json`` when present, else every subfolder
    whose ``config.yaml`` names a command (sorted by name)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory not found: {run_dir}")
    manifest = run_dir / PIPELINE_FILE
    if manifest.exists():
        return _manifest_stages(run_dir, manifest)
    stages = []
    for sub in sorted(p for p in run_dir.iterdir() if p.is_dir()):
        command = _command_of(sub)
        if command:
            stages.append(Stage(name=sub.name, command=command, path=sub))
    if not stages and _command_of(run_dir):
        stages.append(Stage(name=run_dir.name, command=_command_of(run_dir) or "?",
                            path=run_dir))
    return stages


def _manifest_stages(run_dir: Path, manifest: Path) -> list[Stage]:
    """The stages ``pipeline.json`` lists, each confined to ``run_dir``: a stage's name
    becomes file names in ``RUN/report/`` and its folder is read into the report, so a
    crafted manifest must not make the report write or read outside the run directory."""
    data = read_json(manifest)
    entries = data.get("stages", []) if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise DataError("expected an object with a 'stages' list", manifest, field="stages")
    root = run_dir.resolve()
    stages = []
    for i, s in enumerate(entries):
        where = f"stages[{i}]"
        name = s.get("name") if isinstance(s, dict) else None
        if not isinstance(name, str) or not name or name in (".", "..") \
                or any(c in name for c in "/\\\0"):
            raise DataError(f"{where}: the stage name must be a plain folder name, got "
                            f"{name!r}", manifest, field="name")
        folder = s.get("dir", name)
        path = (run_dir / str(folder)).resolve()
        if path != root and root not in path.parents:
            raise DataError(f"{where} ({name}): its folder {folder!r} resolves to {path}, "
                            f"outside the run directory {root}; refusing to read it",
                            manifest, field="dir")
        stages.append(Stage(name=name, command=str(s.get("kind", name)), path=path,
                            status=str(s.get("status", "?")), seconds=s.get("seconds"),
                            numbers=s.get("numbers") or {}))
    return stages


def _records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [r for _, r in iter_jsonl(path, skip_invalid=True)]


def _json(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return {}


# --------------------------------------------------------------------------- blocks


@dataclass
class _Block:
    kind: str  # heading | text | table | image | code
    text: str = ""
    headers: Sequence[str] = ()
    rows: Sequence[Sequence[Any]] = ()
    level: int = 2


class _Doc:
    def __init__(self) -> None:
        self.blocks: list[_Block] = []

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(_Block("heading", text, level=level))

    def text(self, text: str) -> None:
        self.blocks.append(_Block("text", text))

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self.blocks.append(_Block("table", headers=headers, rows=rows))

    def image(self, path: Path, caption: str) -> None:
        self.blocks.append(_Block("image", str(path), rows=[[caption]]))

    def code(self, text: str) -> None:
        self.blocks.append(_Block("code", text))

    def markdown(self, base: Path) -> str:
        out = []
        for b in self.blocks:
            if b.kind == "heading":
                out.append("#" * b.level + " " + b.text)
            elif b.kind == "text":
                out.append(b.text)
            elif b.kind == "table":
                out.append(markdown_table(b.headers, b.rows))
            elif b.kind == "image":
                rel = Path(b.text).relative_to(base)
                out.append(f"![{b.rows[0][0]}]({rel.as_posix()})")
            elif b.kind == "code":
                out.append("```\n" + b.text + "\n```")
        return "\n\n".join(out) + "\n"

    def html(self, title: str) -> str:
        parts = []
        for b in self.blocks:
            if b.kind == "heading":
                parts.append(f"<h{b.level}>{html.escape(b.text)}</h{b.level}>")
            elif b.kind == "text":
                parts.append(f"<p>{html.escape(b.text)}</p>")
            elif b.kind == "table":
                head = "".join(f"<th>{html.escape(str(h))}</th>" for h in b.headers)
                body = "".join(
                    "<tr>" + "".join(f"<td>{html.escape('-' if c is None else str(c))}</td>"
                                     for c in row) + "</tr>" for row in b.rows)
                parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody>"
                             "</table>")
            elif b.kind == "image":
                data = base64.b64encode(Path(b.text).read_bytes()).decode("ascii")
                cap = html.escape(b.rows[0][0])
                parts.append(f'<figure><img class="plot" alt="{cap}" '
                             f'src="data:image/png;base64,{data}"><figcaption>{cap}'
                             "</figcaption></figure>")
            elif b.kind == "code":
                parts.append(f"<pre>{html.escape(b.text)}</pre>")
        style = ("body{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;"
                 "padding:0 1em;color:#222}table{border-collapse:collapse;margin:1em 0}"
                 "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
                 "td:first-child,th:first-child{text-align:left}img.plot{max-width:100%}"
                 "pre{background:#f6f6f6;padding:8px;white-space:pre-wrap;font-size:85%}"
                 "figcaption{color:#666;font-size:90%}")
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<title>{html.escape(title)}</title><style>{style}</style></head><body>"
                + "\n".join(parts) + "</body></html>\n")


# --------------------------------------------------------------------------- sections


def _fmt_number(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 10 else f"{v:,.1f}"
    return str(v)


def _stage_table(doc: _Doc, stages: Sequence[Stage]) -> None:
    doc.heading("Stages")
    rows = []
    for s in stages:
        numbers = ", ".join(f"{k} {_fmt_number(v)}" for k, v in s.numbers.items())
        rows.append([s.name, s.command, s.status,
                     "-" if s.seconds is None else f"{s.seconds:.1f}", numbers or "-"])
    doc.table(["stage", "command", "status", "seconds", "key numbers"], rows)


def _sft_section(doc: _Doc, stage: Stage, out: Path) -> None:
    records = _records(stage.path / "metrics.jsonl")
    png = out / f"{stage.name}_loss.png"
    if line_plot({"train loss": metric_series(records, "loss"),
                  "eval loss": metric_series(records, "eval_loss")}, png,
                 title=f"{stage.name}: loss", ylabel="loss"):
        doc.heading(f"{stage.name}: supervised fine-tuning")
        doc.image(png, f"{stage.name} loss curve")


def _keys(records: Iterable[Mapping[str, Any]], pred: Any) -> list[str]:
    seen: dict[str, None] = {}
    for r in records:
        for k in r:
            if pred(k):
                seen.setdefault(k, None)
    return list(seen)


def _grpo_section(doc: _Doc, stage: Stage, out: Path) -> None:
    records = _records(stage.path / "metrics.jsonl")
    if not records:
        return
    doc.heading(f"{stage.name}: GRPO")
    comps = _keys(records, lambda k: k.startswith("rewards/") and k.endswith("/mean"))
    plots = [
        ("rewards", "reward components (mean per step)",
         {k.split("/")[1]: metric_series(records, k) for k in comps}
         | {"total": metric_series(records, "reward")}, "reward"),
        ("accuracy", "accuracy", {
            k.replace("monitor/", ""): metric_series(records, k)
            for k in _keys(records, lambda k: "accuracy" in k and not k.startswith("rewards/"))
        }, "accuracy"),
        ("lengths", "completion length (tokens)", {
            k.split("/")[-1]: metric_series(records, k)
            for k in _keys(records, lambda k: k.startswith("completions/")
                           and k.endswith(("mean_length", "max_length")))
        }, "tokens"),
        ("letters", "answered-letter entropy next to the gold letters' (bits)", {
            k.replace("monitor/", ""): metric_series(records, k)
            for k in _keys(records, lambda k: "entropy" in k and ("letter" in k or "gold" in k))
        }, "entropy (bits)"),
    ]
    for slug, title, series, ylabel in plots:
        png = out / f"{stage.name}_{slug}.png"
        if line_plot(series, png, title=f"{stage.name}: {title}", ylabel=ylabel):
            doc.image(png, f"{stage.name}: {title}")


def _eval_section(doc: _Doc, stage: Stage, samples: int) -> None:
    summary = _json(stage.path / "summary.json")
    if not summary:
        return
    doc.heading(f"{stage.name}: evaluation")
    try:  # an eval being re-run (or killed mid-write) is not reported as finished
        published.verify(stage.path, ["responses.jsonl", "summary.json"], command="eval")
    except DataError as err:
        doc.text(f"Not reported: {err}")
        return
    rows = []
    for name, s in (summary.get("benchmarks") or {}).items():
        paper = PAPER_ACCURACY.get(name)
        rows.append([name, s["n"], fmt_pct(s["accuracy"]), fmt_ci(s["accuracy_ci95"]),
                     fmt_pct(s["missing"]), fmt_pct(s["truncated"]),
                     f"{paper:.1f}" if paper else "-"])
    if not rows:
        rows.append(["all", summary.get("n"), fmt_pct(summary.get("accuracy")),
                     fmt_ci(summary.get("accuracy_ci95")), fmt_pct(summary.get("missing")),
                     fmt_pct(summary.get("truncated")), "-"])
    doc.table(["benchmark", "n", "accuracy", "95% CI", "missing", "truncated",
               "Gazal-R1 paper"], rows)
    records = _records(stage.path / "responses.jsonl")
    if records and samples:
        picked = [r for r in records if r.get("correct")][: (samples + 1) // 2]
        picked += [r for r in records if not r.get("correct")][: samples - len(picked)]
        doc.heading(f"{stage.name}: sample responses", level=3)
        for r in picked:
            verdict = "correct" if r.get("correct") else "wrong"
            doc.text(f"{r.get('id')} ({r.get('benchmark')}): gold {r.get('answer')}, "
                     f"extracted {r.get('extracted')} ({r.get('extraction_rule')}), {verdict}")
            response = str(r.get("response", ""))
            doc.code(response if len(response) < 1500 else response[:1500] + " [...]")


def build_report(run_dir: str | Path, *, samples: int = 4) -> tuple[Path, Path]:
    """Write ``RUN/report/report.md`` and ``RUN/report/report.html``; returns their paths.

    Everything the report reads and writes stays inside ``run_dir``: stage folders that
    resolve outside it, stage names that are not plain folder names and a ``report/`` that
    is a symbolic link are refused (:class:`gazal.io.DataError`).
    """
    run_dir = Path(run_dir)
    stages = discover_stages(run_dir)
    if not stages:
        raise FileNotFoundError(f"{run_dir} holds no gazal run (no {PIPELINE_FILE} and no "
                                "subfolder with a config.yaml naming a command)")
    final = run_dir / REPORT_DIR
    if final.is_symlink() or final.resolve().parent != run_dir.resolve():
        raise DataError(f"{final} links to {final.resolve()}, outside the run directory; "
                        "refusing to write the report there")
    # published as a set: built in a temporary folder, then swapped in whole, so report.md,
    # report.html and the plots always come from one build (io.replace_folder)
    repair_replaced_folder(final, "report")
    out = run_dir / f".{REPORT_DIR}.tmp-{os.getpid()}"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    doc = _Doc()
    title = f"gazal report: {run_dir.resolve().name}"
    doc.heading(title, level=1)
    doc.text(f"Run directory {run_dir}; report written {time.strftime('%Y-%m-%d %H:%M:%S')}.")
    pipeline = _json(run_dir / PIPELINE_FILE)
    if pipeline.get("summary_lines"):
        doc.code("\n".join(pipeline["summary_lines"]))
    _stage_table(doc, stages)
    for s in stages:
        if s.command in ("sft", "pretrain"):
            _sft_section(doc, s, out)
        elif s.command == "grpo":
            _grpo_section(doc, s, out)
        elif s.command == "eval":
            _eval_section(doc, s, samples)
    try:
        atomic_write_text(out / "report.md", doc.markdown(out))
        atomic_write_text(out / "report.html", doc.html(title))
        replace_folder(out, final)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    return final / "report.md", final / "report.html"
