"""The package map's import rules (docs/architecture.md), checked on the source with ``ast``.

Every ``import`` counts, including the lazy ones inside functions, and so does a module path
written as a string (``importlib.import_module("gazal.demo.stages")``): a rule that a lazy
import or a string could dodge would not be a rule.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# (package whose modules are checked, packages they must not import, why)
RULES: list[tuple[str, tuple[str, ...], str]] = [
    ("gazal.generation",
     ("gazal.eval", "gazal.train", "gazal.data", "gazal.rewards", "gazal.demo", "gazal.report",
      "gazal.plan", "gazal.pipeline", "gazal.commands"),
     "generation is used by eval, data and train: it may not depend on any of them"),
    ("gazal.rewards", ("gazal.eval", "gazal.train", "gazal.demo", "gazal.data", "gazal.report"),
     "rewards stand alone: they need benchmarks (gold labels), formatting and extraction"),
    ("gazal.data", ("gazal.eval", "gazal.train", "gazal.demo", "gazal.plan"),
     "data flows one way: benchmarks/data -> train -> eval"),
    ("gazal.benchmarks", ("gazal.eval", "gazal.train", "gazal.data", "gazal.rewards",
                          "gazal.demo", "gazal.generation"),
     "benchmarks (Item, gold letters) are the bottom layer"),
    ("gazal.train", ("gazal.demo", "gazal.plan", "gazal.pipeline", "gazal.commands"),
     "the trainers do not know the demo, the planner or the CLI"),
    ("gazal.eval", ("gazal.demo", "gazal.train", "gazal.pipeline", "gazal.commands"),
     "evaluation loads models through gazal.generation"),
    ("gazal.plan", ("gazal.demo",), "production code never imports the demo"),
    ("gazal.pipeline", ("gazal.demo",), "the demo registers its own pipeline stages"),
    ("gazal.report", ("gazal.demo",), "production code never imports the demo"),
]
# The one production module that may name the demo: the CLI command that runs it.
DEMO_ENTRY = {"gazal.commands.demo"}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, root: Path) -> list[tuple[int, str]]:
    """(line, module) for every import in ``path`` and every string that is a gazal module
    path; relative imports resolved against the module's package."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    me = module_name(path, root)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef,
                                       ast.ClassDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            found.append((node.lineno, mod))
            if mod == "gazal":  # from gazal import demo
                found += [(node.lineno, f"gazal.{a.name}") for a in node.names]
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
              and id(node) not in docstrings and node.value.startswith("gazal.")):
            found.append((node.lineno, node.value.split(":", 1)[0]))
    return found


def violations(root: Path) -> list[str]:
    """Every import that breaks :data:`RULES` (or names the demo from production code)."""
    out = []
    for path in sorted(root.rglob("*.py")):
        me = module_name(path, root)
        for line, mod in imported_modules(path, root):
            def hits(pkg: str, mod: str = mod) -> bool:
                return mod == pkg or mod.startswith(pkg + ".")
            where = f"{path.relative_to(root)}:{line}: {me} imports {mod}"
            broken = [why for owner, banned, why in RULES if hits(owner, me)
                      for pkg in banned if hits(pkg)]
            if not broken and hits("gazal.demo") and not hits("gazal.demo", me) \
                    and me not in DEMO_ENTRY:
                broken = ["production code never imports the demo"]
            out += [f"{where} ({why})" for why in broken[:1]]
    return sorted(set(out))


def test_src_follows_the_import_rules() -> None:
    assert violations(SRC) == []


def test_every_ruled_package_exists() -> None:
    for owner, _, _ in RULES:
        path = SRC / owner.replace(".", "/")
        assert path.is_dir() or path.with_suffix(".py").is_file(), owner


@pytest.mark.parametrize("source, expected", [
    ("from gazal.eval.score import x\n", "gazal.eval.score"),
    ("def f():\n    from ..eval import score\n", "gazal.eval"),
    ("import importlib\nimportlib.import_module('gazal.train.sft')\n", "gazal.train.sft"),
])
def test_the_checker_catches_lazy_relative_and_string_imports(tmp_path: Path, source: str,
                                                              expected: str) -> None:
    pkg = tmp_path / "gazal" / "rewards"
    pkg.mkdir(parents=True)
    (tmp_path / "gazal" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text('"""gazal.demo is only named in a docstring."""\n')
    (pkg / "bad.py").write_text(source)
    found = violations(tmp_path)
    assert len(found) >= 1 and all("gazal/rewards/bad.py" in v for v in found)
    assert any(expected in v for v in found)


def test_the_checker_catches_production_code_naming_the_demo(tmp_path: Path) -> None:
    pkg = tmp_path / "gazal"
    pkg.mkdir()
    (pkg / "pipeline.py").write_text('RUNNERS = {"toy": "gazal.demo.stages:run_toy_task"}\n')
    (pkg / "commands").mkdir()
    (pkg / "commands" / "demo.py").write_text("from gazal.demo.run import run_demo\n")
    (pkg / "cli.py").write_text("from gazal import demo\n")
    assert violations(tmp_path) == [
        "gazal/cli.py:1: gazal.cli imports gazal.demo (production code never imports the demo)",
        "gazal/pipeline.py:1: gazal.pipeline imports gazal.demo.stages "
        "(the demo registers its own pipeline stages)",
    ]
