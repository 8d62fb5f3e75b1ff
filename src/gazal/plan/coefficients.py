"""The fitted activation coefficients of ``gazal plan``, kept as data in ``coefficients.json``.

The file (shipped inside the package) holds two tables, each with the formula it plugs into,
the names of its coefficients in order, and where the numbers come from:

- ``activation``: bytes the forward keeps for the backward pass, for a frozen base with a
  PEFT adapter on every linear layer, one row per (precision, adapter, dropout > 0, head);
- ``checkpointed``: the same with gradient checkpointing, one row per (precision, head).

``bench/plan_calibrate.py`` fits both on measured tiny Qwen3 models and writes the file
(``--write``, through :func:`write_coefficients`); re-run it after upgrading torch,
transformers, peft or trl. :func:`load_coefficients` reads the file once per process.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from gazal.config import ConfigError

__all__ = [
    "ACTIVATION_FORMULA",
    "CHECKPOINTED_FORMULA",
    "COEFFICIENTS_FILE",
    "COEFFICIENT_NAMES",
    "GC_NAMES",
    "PRECISIONS",
    "CoefficientTables",
    "coefficients_json",
    "coefficients_path",
    "load_coefficients",
    "parse_coefficients",
    "write_coefficients",
]

COEFFICIENTS_FILE = "coefficients.json"

# the calibrated precisions: fp32 (CPU), bf16-amp (bf16 base, fp32 adapter, bf16 autocast:
# one GPU, DDP, FSDP), bf16 (everything bf16, no autocast: DeepSpeed)
PRECISIONS = ("fp32", "bf16-amp", "bf16")
COEFFICIENT_NAMES = ("c_h", "c_i", "c_q", "c_kv", "c_n", "c_r", "g_h", "g_d", "g_v", "g_0",
                     "k_w", "k_a", "k_o", "k_v", "k_0")
GC_NAMES = ("e_l", "e_h", "e_d", "e_v", "e_0", "f_v", "f_0")

ACTIVATION_KEY = ("precision", "adapter", "dropout", "head")
CHECKPOINTED_KEY = ("precision", "head")
KEY_VALUES: dict[str, tuple[Any, ...]] = {"precision": PRECISIONS, "adapter": ("lora", "dora"),
                                          "dropout": (False, True), "head": ("fused", "full")}

# the formulas the tables plug into (gazal.plan.activations.activation_bytes; docs/plan.md)
ACTIVATION_FORMULA = (
    "bytes held for the backward pass at the end of the forward, frozen base with a PEFT "
    "adapter on every linear layer: tokens * (L * (c_h*h + c_i*I + c_q*(heads*head_dim) "
    "+ c_kv*(kv_heads*head_dim) + c_n*heads + c_r*r*m) + g_h*h + g_d*head_dim + g_v*V + g_0) "
    "+ L * (k_w*sum(in*out) + k_a*sum(r*(in+out)) + k_o*sum(out)) + k_v*V*h + k_0, where m = "
    "adapted modules per layer and the sums run over them; k_w is nonzero only for DoRA with "
    "dropout under autocast, where PEFT recomputes the base output and keeps a bf16 copy of "
    "each weight; k_a covers autocast's cached bf16 copies of the adapter; k_v only on the "
    "full-logits path, where trained token rows materialise the embedding")
CHECKPOINTED_FORMULA = (
    "gradient checkpointing: bytes held at the end of the forward, "
    "tokens * (e_l*L*h + e_h*h + e_d*head_dim + e_v*V + e_0) + f_v*V*h + f_0")

ActivationKey = tuple[str, str, bool, str]
CheckpointedKey = tuple[str, str]


@dataclass(frozen=True)
class CoefficientTables:
    """The two fitted tables, keyed as :func:`gazal.plan.activations.activation_bytes` looks
    them up; values in the order of :data:`COEFFICIENT_NAMES` / :data:`GC_NAMES`."""

    activation: dict[ActivationKey, tuple[float, ...]]
    checkpointed: dict[CheckpointedKey, tuple[float, ...]]
    source: str


def _table(data: Mapping[str, Any], section: str, key_names: Sequence[str],
           names: Sequence[str], where: str) -> dict[tuple, tuple[float, ...]]:
    block = data.get(section)
    if not isinstance(block, Mapping):
        raise ConfigError(f"{where}: missing the {section!r} table")
    if tuple(block.get("names", ())) != tuple(names):
        raise ConfigError(f"{where}: {section}.names must be {list(names)}, got "
                          f"{block.get('names')!r}")
    rows = block.get("rows")
    if not isinstance(rows, list) or not rows:
        raise ConfigError(f"{where}: {section}.rows must be a non-empty list")
    table: dict[tuple, tuple[float, ...]] = {}
    for i, row in enumerate(rows):
        at = f"{where}: {section}.rows[{i}]"
        if not isinstance(row, Mapping) or set(row) != {*key_names, "values"}:
            raise ConfigError(f"{at}: needs exactly the keys {[*key_names, 'values']}")
        values = row["values"]
        if not isinstance(values, list) or len(values) != len(names) or not all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            raise ConfigError(f"{at}: values must be {len(names)} numbers ({', '.join(names)})")
        key = tuple(row[k] for k in key_names)
        for k, value in zip(key_names, key, strict=True):
            if value not in KEY_VALUES[k] or type(value) is not type(KEY_VALUES[k][0]):
                raise ConfigError(f"{at}: {k} must be one of {list(KEY_VALUES[k])}, "
                                  f"got {value!r}")
        if key in table:
            raise ConfigError(f"{at}: duplicate key {key}")
        table[key] = tuple(float(v) for v in values)
    return table


def parse_coefficients(data: Any, where: str = COEFFICIENTS_FILE) -> CoefficientTables:
    """:class:`CoefficientTables` from the parsed JSON; errors name ``where`` and the row."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: must be a JSON object")
    return CoefficientTables(
        activation=_table(data, "activation", ACTIVATION_KEY, COEFFICIENT_NAMES, where),
        checkpointed=_table(data, "checkpointed", CHECKPOINTED_KEY, GC_NAMES, where),
        source=str(data.get("source", "")))


@functools.cache
def load_coefficients() -> CoefficientTables:
    """The tables in the package's ``coefficients.json`` (read once per process)."""
    text = resources.files("gazal.plan").joinpath(COEFFICIENTS_FILE).read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"gazal/plan/{COEFFICIENTS_FILE}: not valid JSON ({err})") from None
    return parse_coefficients(data, f"gazal/plan/{COEFFICIENTS_FILE}")


def coefficients_path() -> Path:
    """Where ``coefficients.json`` lies in this source tree (what the calibration rewrites)."""
    return Path(__file__).with_name(COEFFICIENTS_FILE)


def _rows(table: Mapping[tuple, Sequence[float]], key_names: Sequence[str]) -> str:
    lines = []
    for key in sorted(table):
        row = {**dict(zip(key_names, key, strict=True)),
               "values": [float(f"{v:.4g}") for v in table[key]]}
        lines.append("      " + json.dumps(row))
    return ",\n".join(lines)


def coefficients_json(activation: Mapping[ActivationKey, Sequence[float]],
                      checkpointed: Mapping[CheckpointedKey, Sequence[float]], *,
                      source: str) -> str:
    """The text of ``coefficients.json`` for both tables (one row per line, values to 4
    significant digits); parsed back first, so it is never a file the planner rejects."""

    def section(names: Sequence[str], key: Sequence[str], formula: str, rows: str) -> str:
        return ("{\n    \"formula\": " + json.dumps(formula) + ",\n    \"key\": "
                + json.dumps(list(key)) + ",\n    \"names\": " + json.dumps(list(names))
                + ",\n    \"rows\": [\n" + rows + "\n    ]\n  }")

    text = ("{\n  \"source\": " + json.dumps(source) + ",\n  \"activation\": "
            + section(COEFFICIENT_NAMES, ACTIVATION_KEY, ACTIVATION_FORMULA,
                      _rows(activation, ACTIVATION_KEY))
            + ",\n  \"checkpointed\": "
            + section(GC_NAMES, CHECKPOINTED_KEY, CHECKPOINTED_FORMULA,
                      _rows(checkpointed, CHECKPOINTED_KEY)) + "\n}\n")
    parse_coefficients(json.loads(text), "the new coefficients")
    return text


def write_coefficients(path: str | Path, activation: Mapping[ActivationKey, Sequence[float]],
                       checkpointed: Mapping[CheckpointedKey, Sequence[float]], *,
                       source: str) -> str:
    """Write :func:`coefficients_json` to ``path`` and return the text."""
    text = coefficients_json(activation, checkpointed, source=source)
    Path(path).write_text(text, encoding="utf-8")
    return text
