"""``gazal pipeline RECIPE``: run the stages a recipe names, each in its own subfolder of one
run directory, skipping stages already complete and resuming an interrupted one.

A pipeline recipe::

    output_dir: runs/my-pipeline
    stages:
      - {name: sft,   kind: sft,   recipe: recipes/qwen3-0.6b/sft.yaml}
      - {name: merge, kind: merge}
      - {name: grpo,  kind: grpo,  recipe: recipes/qwen3-0.6b/grpo.yaml}
      - {name: eval,  kind: eval,  recipe: recipes/gazal-r1-32b/eval.yaml,
         overrides: {limit: 100}}
      - {name: report, kind: report}

Each stage runs the same code as its command (``gazal sft``, ``gazal grpo``, ...) with its
output folder set to ``RUN/<name>``. Stages are wired to earlier ones automatically (see
:data:`WIRING`): merge takes the newest adapter, GRPO starts from the newest merged model,
eval takes the newest merged model and the adapter of a GRPO stage after it, SFT trains on
the newest curated file, curate reads the newest synthesised file; kinds registered by other
packages (:func:`register_stage`) add their own (the CPU demo's pretrain stage gives SFT its
model). ``overrides`` (dotted keys
of the stage's recipe) come last and win; in them ``${NAME}`` is the folder of stage NAME.

``RUN/pipeline.json`` records every stage's status, time and key numbers, written atomically
after each change. A re-run skips complete stages whose configuration is unchanged, refuses
one whose configuration changed (its outputs would no longer match), and re-enters an
interrupted stage, whose own command resumes from its checkpoints.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gazal.config import ConfigError, cfg, config_to_dict
from gazal.io import atomic_write_json
from gazal.report.tables import text_table
from gazal.rundir import prepare_run_dir

__all__ = ["PipelineConfig", "StageSpec", "register_stage", "run_pipeline", "stage_kinds"]

PIPELINE_FILE = "pipeline.json"


@dataclass
class StageSpec:
    """One stage of a pipeline."""

    name: str = cfg(help="stage name; its folder is RUN/<name> (letters, digits, - and _)")
    kind: str = cfg(help="what the stage runs: synth, curate, sft, merge, grpo, eval, report, "
                         "or a kind another package registers (register_stage; the CPU "
                         "demo's toy_task, pretrain)")
    recipe: str | None = cfg(None, "the stage's own recipe file (the same YAML its command "
                                   "takes); null = defaults plus overrides")
    overrides: dict[str, Any] = cfg({}, "dotted recipe keys set last; ${NAME} in a string "
                                        "value is the folder of stage NAME")
    wire: bool = cfg(True, "fill the stage's inputs from earlier stages (module docstring)")

    def __post_init__(self) -> None:
        if not self.name or not all(c.isalnum() or c in "-_" for c in self.name):
            raise ValueError(f"stage name {self.name!r}: use letters, digits, '-' and '_'")


@dataclass
class PipelineConfig:
    """A pipeline recipe."""

    output_dir: str = cfg(help="the run directory; every stage writes into a subfolder")
    stages: list[StageSpec] = cfg(default_factory=list, help="the stages, in order")

    def __post_init__(self) -> None:
        if not self.stages:
            raise ValueError("'stages' is empty")
        names = [s.name for s in self.stages]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"stage names repeat: {', '.join(dup)}")
        for i, s in enumerate(self.stages):
            if s.kind not in RUNNERS:
                close = difflib.get_close_matches(s.kind, list(RUNNERS), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ValueError(f"key 'stages[{i}].kind': unknown stage kind {s.kind!r}{hint} "
                                 f"Registered stage kinds: {', '.join(stage_kinds())}")


@dataclass
class StageContext:
    """What a stage runner gets: its spec and folder, and the stages before it."""

    spec: StageSpec
    run_dir: Path
    before: list[StageSpec]
    echo: Callable[[str], None]
    numbers: dict[str, Any] = field(default_factory=dict)

    @property
    def dir(self) -> Path:
        return self.run_dir / self.spec.name

    def folder(self, name: str) -> Path:
        return self.run_dir / name

    def last(self, *kinds: str) -> StageSpec | None:
        """The newest earlier stage of one of ``kinds``."""
        return next((s for s in reversed(self.before) if s.kind in kinds), None)


# --------------------------------------------------------------------------- wiring

def _adapter_dir(ctx: StageContext, stage: StageSpec) -> str:
    return str(ctx.folder(stage.name) / "adapter")


def _merged_dir(ctx: StageContext, stage: StageSpec) -> str:
    return str(ctx.folder(stage.name) / "model")


def wiring(ctx: StageContext) -> list[tuple[str, Any]]:
    """Automatic (key, value) inputs of a stage from earlier stages (before user overrides)."""
    kind, out = ctx.spec.kind, str(ctx.dir)
    pairs: list[tuple[str, Any]] = []
    if kind in ("sft", "grpo"):
        pairs.append(("output_dir", out))
    if kind == "eval":
        pairs.append(("out", out))
    if not ctx.spec.wire:
        return pairs
    if kind == "curate" and (s := ctx.last("synth")):
        pairs.append(("input", str(ctx.folder(s.name) / "examples.jsonl")))
    if kind == "sft" and (c := ctx.last("curate")):
        pairs.append(("data.train", [{"path": str(ctx.folder(c.name) / "kept.jsonl"),
                                      "format": "messages"}]))
    if kind == "merge" and (a := ctx.last("sft", "grpo")):
        pairs.append(("adapter", _adapter_dir(ctx, a)))
    if kind == "grpo" and (m := ctx.last("merge")):
        pairs.append(("model.name_or_path", _merged_dir(ctx, m)))
    if kind == "eval":
        m = ctx.last("merge")
        if m is not None:
            pairs.append(("model", _merged_dir(ctx, m)))
            after = ctx.before[ctx.before.index(m) + 1:]
            g = next((s for s in reversed(after) if s.kind == "grpo"), None)
            if g is not None:
                pairs.append(("adapter", _adapter_dir(ctx, g)))
    for provider, wire in WIRES.items():  # registered kinds wire the stages after them
        if s := ctx.last(provider):
            pairs.extend(wire(ctx, s))
    return pairs


def _expand(value: Any, run_dir: Path) -> Any:
    if isinstance(value, str) and "${" in value:
        import re

        return re.sub(r"\$\{([A-Za-z0-9_-]+)\}", lambda m: str(run_dir / m.group(1)), value)
    if isinstance(value, list):
        return [_expand(v, run_dir) for v in value]
    if isinstance(value, dict):
        return {k: _expand(v, run_dir) for k, v in value.items()}
    return value


def stage_settings(ctx: StageContext) -> list[tuple[str, Any]]:
    """Wiring then the user's overrides (expanded), as (dotted key, value) pairs."""
    user = [(k, _expand(v, ctx.run_dir)) for k, v in ctx.spec.overrides.items()]
    return wiring(ctx) + user


# --------------------------------------------------------------------------- runners

def _run_sft(ctx: StageContext, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    from gazal.config import load_config
    from gazal.train.config import SFTRecipe
    from gazal.train.sft import run_sft

    summary = run_sft(load_config(SFTRecipe, ctx.spec.recipe, pairs), echo=ctx.echo)
    return {"steps": summary.get("global_step"), "final loss": summary.get("last_logged_loss")}


def _run_grpo(ctx: StageContext, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    from gazal.config import load_config
    from gazal.train.grpo import run_grpo
    from gazal.train.grpo_config import GRPORecipe

    summary = run_grpo(load_config(GRPORecipe, ctx.spec.recipe, pairs), echo=ctx.echo)
    numbers: dict[str, Any] = {"steps": summary.get("global_step")}
    held = summary.get("heldout") or {}
    if held.get("points"):
        numbers["held-out acc"] = f"{held['first']:.3f} -> {held['last']:.3f}"
    if (reward := (summary.get("monitors") or {}).get("reward")) is not None:
        numbers["reward first -> last"] = f"{reward['first']:+.3f} -> {reward['last']:+.3f}"
    return numbers


def _run_merge(ctx: StageContext, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    from gazal.train.merge import merge_adapter

    opts = {"adapter": None, "base": None, "dtype": "float32", "tolerance": None, "max_kl": None}
    for key, value in pairs:
        if key not in opts:
            raise ConfigError(f"stage {ctx.spec.name}: merge takes {', '.join(opts)}; "
                              f"got '{key}'")
        opts[key] = value
    if not opts["adapter"]:
        raise ConfigError(f"stage {ctx.spec.name}: no adapter to merge (no sft or grpo stage "
                          "before it; set overrides.adapter)")
    out = ctx.dir / "model"
    report = merge_adapter(opts["adapter"], out, base=opts["base"], dtype=opts["dtype"],
                           tolerance=opts["tolerance"], max_kl=opts["max_kl"], force=True)
    return {"max logit diff": report.max_abs_diff}


def _run_eval(ctx: StageContext, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    from gazal.config import load_config
    from gazal.eval.config import EvalConfig
    from gazal.eval.runner import run_eval

    summary = run_eval(load_config(EvalConfig, ctx.spec.recipe, pairs))
    numbers = {f"{name} acc": s["accuracy"] for name, s in
               (summary.get("benchmarks") or {}).items()}
    return numbers or {"accuracy": summary.get("accuracy")}


def _as_overrides(pairs: Sequence[tuple[str, Any]]) -> list[str]:
    return [f"--{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in pairs]


def _run_synth(ctx: StageContext, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    from gazal.data.config import SynthConfig, load_data_config
    from gazal.data.synth import synthesize

    cfg = load_data_config(SynthConfig, "synth", ctx.spec.recipe, _as_overrides(pairs))
    summary = synthesize(cfg, ctx.dir)
    return {"examples": summary.get("examples"), "given up": summary.get("given_up")}


def _run_curate(ctx: StageContext, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    from gazal.data.config import CurateConfig, load_data_config
    from gazal.data.curate import curate

    pairs = list(pairs)
    inputs = [v for k, v in pairs if k == "input"]
    if not inputs:
        raise ConfigError(f"stage {ctx.spec.name}: no input file (no synth stage before it; "
                          "set overrides.input)")
    rest = [(k, v) for k, v in pairs if k != "input"]
    cfg = load_data_config(CurateConfig, "curate", ctx.spec.recipe, _as_overrides(rest))
    result = curate(inputs[-1], ctx.dir, cfg)
    return {"kept": result.report.get("kept"), "removed": result.report.get("removed")}


def _run_report(ctx: StageContext, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    from gazal.report.build import build_report

    md, _ = build_report(ctx.run_dir)
    return {"report": str(md)}


StageRunner = Callable[[StageContext, list[tuple[str, Any]]], dict[str, Any]]
# wire(ctx, stage): the (key, value) inputs a registered stage ``stage`` gives the later stage
# ``ctx.spec`` (e.g. the demo's pretrain stage gives SFT its model)
StageWiring = Callable[[StageContext, StageSpec], list[tuple[str, Any]]]

RUNNERS: dict[str, StageRunner] = {
    "synth": _run_synth,
    "curate": _run_curate,
    "sft": _run_sft,
    "merge": _run_merge,
    "grpo": _run_grpo,
    "eval": _run_eval,
    "report": _run_report,
}
WIRES: dict[str, StageWiring] = {}


def register_stage(kind: str, runner: StageRunner, *, wires: StageWiring | None = None
                   ) -> None:
    """Make ``kind`` a stage kind that pipeline recipes may name, run by ``runner(ctx,
    pairs)`` (which returns the stage's key numbers). ``wires(ctx, stage)``: the inputs the
    newest stage of this kind gives a later stage ``ctx.spec`` (added after the built-in
    wiring, before the user's overrides). Packages with stages of their own register them
    before a recipe is read (the CPU demo: ``toy_task``, ``pretrain``). Registering the
    same runner again does nothing; another runner for a taken kind is an error."""
    if not kind or not all(c.isalnum() or c in "-_" for c in kind):
        raise ValueError(f"stage kind {kind!r}: use letters, digits, '-' and '_'")
    taken = RUNNERS.get(kind)
    if taken is not None and (taken is not runner or WIRES.get(kind) is not wires):
        raise ValueError(f"stage kind {kind!r} is already registered "
                         f"({taken.__module__}.{taken.__qualname__})")
    RUNNERS[kind] = runner
    if wires is not None:
        WIRES[kind] = wires


def stage_kinds() -> list[str]:
    """The stage kinds a recipe may name now (built-in, then registered)."""
    return list(RUNNERS)


def _runner(kind: str) -> StageRunner:
    try:
        return RUNNERS[kind]
    except KeyError:
        raise ConfigError(f"unknown stage kind {kind!r}; registered stage kinds: "
                          f"{', '.join(stage_kinds())}") from None


# --------------------------------------------------------------------------- driver

def _fingerprint(spec: StageSpec, pairs: Sequence[tuple[str, Any]]) -> str:
    recipe_text = Path(spec.recipe).read_text(encoding="utf-8") if spec.recipe else ""
    payload = json.dumps([spec.kind, recipe_text, [[k, v] for k, v in pairs]],
                         sort_keys=True, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def _load_state(path: Path) -> dict[str, dict[str, Any]]:
    if not path.exists():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return {s["name"]: s for s in data.get("stages", [])}


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 100 else f"{v:,.0f}"
    return str(v)


def summary_lines(stages: Sequence[Mapping[str, Any]]) -> list[str]:
    """The closing table: stage, status, seconds, key numbers."""
    rows = [[s["name"], s["kind"], s["status"],
             "-" if s.get("seconds") is None else f"{s['seconds']:.1f}",
             ", ".join(f"{k} {_fmt(v)}" for k, v in (s.get("numbers") or {}).items()) or "-"]
            for s in stages]
    return text_table(["stage", "kind", "status", "seconds", "key numbers"], rows).split("\n")


def run_pipeline(config: PipelineConfig, *, echo: Callable[[str], None] = print,
                 only: Sequence[str] | None = None) -> dict[str, Any]:
    """Run (or resume) ``config``; returns the manifest written to ``RUN/pipeline.json``."""
    # Stage changes are judged stage by stage (fingerprints below): adding stages or changing
    # ones not yet complete is fine, changing a complete one is refused.
    names = [spec.name for spec in config.stages]
    unknown = [n for n in (only or ()) if n not in names]
    if unknown or (only is not None and not only):
        raise ConfigError(f"--only: no stage named {', '.join(map(repr, unknown)) or '(none)'} "
                          f"in the recipe; its stages are {', '.join(names)}")
    run_dir = prepare_run_dir(config.output_dir, config, command="pipeline",
                              resumable_keys=["stages"])
    manifest_path = run_dir / PIPELINE_FILE
    previous = _load_state(manifest_path)
    states: list[dict[str, Any]] = []
    for spec in config.stages:
        old = previous.get(spec.name, {})
        states.append({"name": spec.name, "kind": spec.kind, "dir": spec.name,
                       "status": old.get("status", "pending"), "seconds": old.get("seconds"),
                       "numbers": old.get("numbers", {}), "fingerprint": old.get("fingerprint")})

    def save() -> None:
        atomic_write_json(manifest_path, {"output_dir": str(run_dir), "stages": states,
                                          "summary_lines": summary_lines(states),
                                          "config": config_to_dict(config)})

    save()
    for i, spec in enumerate(config.stages):
        state = states[i]
        ctx = StageContext(spec=spec, run_dir=run_dir, before=config.stages[:i], echo=echo)
        pairs = stage_settings(ctx)
        fp = _fingerprint(spec, pairs)
        if state["status"] == "complete":
            if state["fingerprint"] != fp:
                raise ConfigError(
                    f"stage '{spec.name}' was completed with a different configuration; its "
                    f"outputs in {ctx.dir} no longer match the recipe. Use a new output_dir, "
                    f"or delete {ctx.dir} (and the stages after it) to run it again.")
            echo(f"[{spec.name}] complete, skipped")
            continue
        if only is not None and spec.name not in only:
            continue
        resumed = state["status"] in ("running", "failed")
        echo(f"[{spec.name}] {'resuming' if resumed else 'running'} {spec.kind}")
        state.update(status="running", fingerprint=fp)
        save()
        started = time.time()
        try:
            numbers = _runner(spec.kind)(ctx, pairs)
        except BaseException as err:
            state.update(status="failed", seconds=(state.get("seconds") or 0)
                         + time.time() - started, error=f"{type(err).__name__}: {err}")
            save()
            if not isinstance(err, ConfigError | KeyboardInterrupt):
                echo("".join(traceback.format_exception_only(type(err), err)).strip())
            raise
        state.update(status="complete", numbers=numbers or {}, error=None,
                     seconds=(state.get("seconds") or 0) * resumed + time.time() - started)
        save()
    for line in summary_lines(states):
        echo(line)
    save()
    return json.loads(manifest_path.read_text(encoding="utf-8"))
