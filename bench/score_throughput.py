"""`gazal score` on 10,000 responses (goal: under 5 s on the 2-core CPU machine).

Side by side in one run: the I/O floor (read the JSONL, write it back with three extra fields,
no extraction) and the full `gazal score` command as a user runs it (a fresh process, so
interpreter start-up and imports count). Responses are ~300-word, in the mixed styles of
gazal.demo.sample_responses, over the real benchmark items when $GAZAL_DATA_DIR is set.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gazal.benchmarks import benchmark_names, load_benchmark, resolve_data_dir
from gazal.benchmarks.builtin import builtin_items
from gazal.demo.sample_responses import generate
from gazal.io import atomic_write_jsonl


def io_floor(src: Path, dst: Path) -> float:
    t = time.perf_counter()
    with src.open() as f, dst.open("w") as out:
        for line in f:
            rec = json.loads(line)
            rec.update(extracted=None, correct=False, extraction_rule="none")
            out.write(json.dumps(rec, ensure_ascii=False) + "\n")
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("-n", type=int, default=10_000)
    p.add_argument("--words", type=int, default=300)
    args = p.parse_args()
    root = resolve_data_dir(None)
    items = []
    if root and root.exists():
        for name in benchmark_names():
            items += load_benchmark(name, root).items
    else:
        items = builtin_items()
    items = (items * (args.n // len(items) + 1))[: args.n]
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "responses.jsonl"
        atomic_write_jsonl(src, generate(items, seed=0, words=args.words))
        size_mb = src.stat().st_size / 1e6
        floor = io_floor(src, Path(tmp) / "floor.jsonl")
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "gazal", "-q", "score", str(src), "--out",
                        str(Path(tmp) / "out")], check=True, stdout=subprocess.DEVNULL,
                       env={**os.environ})
        full = time.perf_counter() - t
    print(f"responses: {args.n:,} ({size_mb:.1f} MB, ~{args.words} words each)")
    print(f"I/O floor (read + write, no extraction): {floor:6.2f} s")
    print(f"gazal score (fresh process, end to end): {full:6.2f} s  "
          f"({args.n / full:,.0f} responses/s; {full / floor:.1f}x the I/O floor)")
    print("goal: under 5 s ->", "met" if full < 5 else "NOT met")


if __name__ == "__main__":
    main()
