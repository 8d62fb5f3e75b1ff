"""``gazal data ...``: benchmark listing (and the data-building subcommands)."""

from __future__ import annotations

import argparse
import importlib

# Modules that register a ``gazal data`` subcommand.
DATA_COMMAND_MODULES = [
    "gazal.commands.data_benchmarks",
    "gazal.commands.data_synth",
    "gazal.commands.data_curate",
    "gazal.commands.data_review",
]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="benchmarks and training data",
                       description="Benchmark listing and data building.")
    data_sub = p.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")
    for name in DATA_COMMAND_MODULES:
        importlib.import_module(name).register(data_sub)
