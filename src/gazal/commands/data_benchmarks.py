"""``gazal data benchmarks``: list the registered benchmarks with rows and checksums."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("benchmarks", help="list benchmarks: name, rows, checksum, source",
                       description="Loads every registered benchmark (local files under "
                                   "--data-dir / $GAZAL_DATA_DIR, else the Hugging Face Hub) "
                                   "and lists it.")
    p.add_argument("--data-dir", help="folder with benchmarks/normalized and "
                                      "benchmarks/original (default: $GAZAL_DATA_DIR)")
    p.add_argument("--source", choices=["auto", "normalized", "original", "hub"],
                   default="auto", help="which copy to load (default: local normalised first)")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from gazal.benchmarks import BENCHMARKS, load_benchmark
    from gazal.io import DataError
    from gazal.report.tables import text_table

    rows = []
    for name, spec in BENCHMARKS.items():
        try:
            b = load_benchmark(name, args.data_dir, source=args.source)
        except DataError as err:
            if args.source == "auto":
                raise
            print(f"{name}: {err}")  # e.g. no 'original' copy of this set exists
            continue
        rows.append({"name": name, "title": spec.title, "n": b.n, "expected_n": spec.expected_n,
                     "sha256": b.sha256, "source": b.source, "version": b.known_version})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(text_table(
        ["name", "rows", "sha256", "source", "pinned version"],
        [[r["name"], f"{r['n']:,}" + ("" if r["n"] == r["expected_n"] else
                                     f" (expected {r['expected_n']:,})"),
          r["sha256"][:16], r["source"], r["version"] or "not a pinned version"]
         for r in rows]))
    return 0
