"""Evaluation benchmarks: the registry, loaders and normalisers that give :class:`Item`s."""

from gazal.benchmarks.item import LETTERS, Item, items_checksum, options_from
from gazal.benchmarks.registry import (
    BENCHMARKS,
    PAPER_ACCURACY,
    BenchmarkSpec,
    LoadedBenchmark,
    benchmark_names,
    get_spec,
    load_benchmark,
    load_items_file,
    resolve_data_dir,
)

__all__ = [
    "BENCHMARKS",
    "LETTERS",
    "PAPER_ACCURACY",
    "BenchmarkSpec",
    "Item",
    "LoadedBenchmark",
    "benchmark_names",
    "get_spec",
    "items_checksum",
    "load_benchmark",
    "load_items_file",
    "options_from",
    "resolve_data_dir",
]
