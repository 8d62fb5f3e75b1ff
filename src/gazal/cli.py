"""The ``gazal`` command line: one entry point, one module per command in
:mod:`gazal.commands` (each exposes ``register(subparsers)``)."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from gazal import __version__
from gazal.config import ConfigError
from gazal.io import DataError, DiskFull

# Modules that register a top-level command, in --help order.
COMMAND_MODULES = [
    "gazal.commands.data",
    "gazal.commands.sft",
    "gazal.commands.merge",
    "gazal.commands.model",
    "gazal.commands.grpo",
    "gazal.commands.plan",
    "gazal.commands.rewards",
    "gazal.commands.eval",
    "gazal.commands.score",
    "gazal.commands.compare",
    "gazal.commands.report",
    "gazal.commands.pipeline",
    "gazal.commands.demo",
]


class UsageError(Exception):
    """The command line is wrong; the message says how."""


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (commands register themselves)."""
    parser = argparse.ArgumentParser(
        prog="gazal",
        description="Gazal-R1 medical reasoning toolkit: data, SFT (DoRA + rsLoRA), GRPO with "
                    "clinical rewards, evaluation.")
    parser.add_argument("--version", action="version", version=f"gazal {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def _setup_logging(verbose: bool, quiet: bool) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logger = logging.getLogger("gazal")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("gazal: %(levelname)s: %(message)s"
                                               if verbose else "gazal: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = True


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``gazal`` with ``argv``; returns the exit status (2 for bad input)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    _setup_logging(args.verbose, args.quiet)
    if extra and not getattr(args, "accepts_overrides", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.overrides = extra
    try:
        return int(args.func(args) or 0)
    except (ConfigError, DataError, DiskFull, UsageError, KeyError, FileNotFoundError) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"gazal {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"gazal {args.command}: interrupted; re-run the same command to resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
