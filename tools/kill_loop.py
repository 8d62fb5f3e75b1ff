"""Fault injection: kill gazal's long commands with SIGKILL at random moments, re-run them, and
check that every run healed without a person (issue 17, docs/reliability.md).

For each command (``synth``, ``eval``, ``sft``, ``merge``) the script makes one uninterrupted
reference run, then a run that is killed ``--kills`` times at random moments (during writes and
checkpoint saves too, as the moments are spread over the whole run) and re-run each time, and
a last re-run to the end. A kill counts as survived when that last re-run exits 0 with no
manual step and:

- complete, no duplicates, equal to the reference (synth examples and eval responses record
  for record; the SFT adapter tensor for tensor; the merged model present and verified);
- no leftovers: no temporaries of atomic writes (``.NAME.*.tmp``, ``.NAME.tmp-PID``,
  ``.NAME.old-PID``) anywhere in the run folders.

Synth and eval talk to a local OpenAI-compatible server started here, whose replies depend only
on the prompt and the request's seed, so a resumed run must reproduce the reference exactly.

    PYTHONPATH=src python tools/kill_loop.py --kills 10 --out /tmp/kill-loop

Prints one table row per command and the totals (kills injected / survived without repair).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LEFTOVER = re.compile(r"^\..+\.(tmp|tmp-\d+|old-\d+)$")
DX = ["pneumonia", "appendicitis", "migraine", "gout", "asthma", "anemia", "stroke", "sepsis"]


# --------------------------------------------------------------------------- the teacher


def _reply_for(prompt: str, seed: Any) -> str:
    """A reply in gazal's format whose letter depends on the prompt and seed only."""
    digest = hashlib.sha256(f"{prompt}\x1f{seed}".encode()).digest()
    letter = "ABCD"[digest[0] % 4]
    return ("<think>\nStep 1: The findings point to one diagnosis.\nStep 2: The others do not "
            f"fit.\n</think>\n\n## Clinical Assessment\nIt fits.\n\n**Final answer: ({letter})**")


class _Teacher(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        time.sleep(0.05)  # slow enough for kills to land mid-run
        prompt = body["messages"][-1]["content"]
        text = _reply_for(prompt, body.get("seed"))
        raw = json.dumps({"choices": [{"message": {"role": "assistant", "content": text},
                                       "finish_reason": "stop"}],
                          "usage": {"prompt_tokens": len(prompt) // 4,
                                    "completion_tokens": len(text) // 4}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


# --------------------------------------------------------------------------- running


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]), "OMP_NUM_THREADS": "1"}


def _gazal(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "gazal", "-q", *args]


def _run(args: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(_gazal(args), env=_env(), capture_output=True, text=True,
                          timeout=timeout)


def _killed_run(args: list[str], after: float) -> bool:
    """Start the command and SIGKILL it after ``after`` seconds; True if it was still running."""
    proc = subprocess.Popen(_gazal(args), env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        proc.wait(timeout=after)
        return False
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return True


def _leftovers(*folders: Path) -> list[str]:
    found = []
    for folder in folders:
        if folder.exists():
            found += [str(p) for p in folder.rglob("*") if LEFTOVER.match(p.name)]
            found += [str(p) for p in folder.parent.glob(f".{folder.name}.*")
                      if LEFTOVER.match(p.name)]
    return found


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] \
        if path.exists() else []


# --------------------------------------------------------------------------- commands


class Case:
    """One command: its arguments for a run folder, and the check of a healed run."""

    name = ""

    def args(self, out: Path) -> list[str]:
        raise NotImplementedError

    def outputs(self, out: Path) -> list[Path]:
        return [out]

    def compare(self, ref: Path, out: Path) -> str | None:
        raise NotImplementedError


class Synth(Case):
    name = "synth"

    def __init__(self, work: Path, url: str):
        self.seeds = work / "seeds.jsonl"
        rows = [{"id": f"s{i}", "question": f"A patient has classic signs of {d} ({i}).",
                 "options": [d, *[x for x in DX if x != d][:3]], "answer": "A"}
                for i, d in enumerate(DX * 4)]
        self.seeds.write_text("".join(json.dumps(r) + "\n" for r in rows))
        self.url = url

    def args(self, out: Path) -> list[str]:
        return ["data", "synth", str(ROOT / "recipes/gazal-r1-32b/data.yaml"), "--out", str(out),
                "--no-progress", "--seeds.path", str(self.seeds), "--teacher.model", "t",
                "--teacher.base_url", self.url, "--teacher.api_key_env", "null",
                "--teacher.concurrency", "2", "--data_dir", str(out.parent / "none"),
                "--chunk_size", "8"]

    def compare(self, ref: Path, out: Path) -> str | None:
        a, b = _jsonl(ref / "examples.jsonl"), _jsonl(out / "examples.jsonl")
        ids = [r["id"] for r in b]
        if len(ids) != len(set(ids)):
            return "duplicate examples"
        strip = [{k: v for k, v in r.items()} for r in a]
        if sorted(map(json.dumps, strip)) != sorted(map(json.dumps, b)):
            return f"examples differ ({len(a)} reference, {len(b)} healed)"
        if sorted(r["id"] for r in _jsonl(ref / "rejected.jsonl")) != \
                sorted(r["id"] for r in _jsonl(out / "rejected.jsonl")):
            return "rejected units differ"
        summary = json.loads((out / "summary.json").read_text())
        return None if summary["complete"] else "summary says incomplete"


class Eval(Case):
    name = "eval"

    def __init__(self, work: Path, url: str):
        self.items = work / "items.jsonl"
        rows = [{"id": f"q{i}", "question": f"Case {i}: signs of {d}. Diagnosis?",
                 "options": [*[x for x in DX if x != d][:3], d], "answer": "D"}
                for i, d in enumerate(DX * 6)]
        self.items.write_text("".join(json.dumps(r) + "\n" for r in rows))
        self.url = url

    def args(self, out: Path) -> list[str]:
        return ["eval", "--model", "m", "--backend", "openai", "--openai.base_url", self.url,
                "--openai.api_key_env", "null", "--openai.concurrency", "2", "--benchmarks", "",
                "--items", str(self.items), "--out", str(out), "--progress", "false",
                "--samples", "2", "--temperature", "0.6"]

    def compare(self, ref: Path, out: Path) -> str | None:
        key = ("id", "sample_index", "response", "extracted", "correct")
        a = sorted(json.dumps([r.get(k) for k in key]) for r in _jsonl(ref / "responses.jsonl"))
        b = sorted(json.dumps([r.get(k) for k in key]) for r in _jsonl(out / "responses.jsonl"))
        if len(b) != len(set(b)):
            return "duplicate responses"
        if a != b:
            return f"responses differ ({len(a)} reference, {len(b)} healed)"
        sa = json.loads((ref / "summary.json").read_text())
        sb = json.loads((out / "summary.json").read_text())
        return None if sa.get("accuracy") == sb.get("accuracy") else "accuracy differs"


class SFT(Case):
    name = "sft"

    def __init__(self, work: Path):
        from gazal.demo.tiny import build_tiny
        from gazal.formatting import SYSTEM_PROMPT

        rows = []
        for i, d in enumerate(DX):
            opts = {"A": d, "B": DX[(i + 1) % 8], "C": DX[(i + 2) % 8], "D": DX[(i + 3) % 8]}
            rows.append({"question": f"A patient presents with classic signs of {d}. Diagnosis?",
                         "options": opts, "answer_idx": "A", "answer": d,
                         "Question": f"Classic signs of {d}: diagnosis?",
                         "Complex_CoT": f"The signs are classic for {d}.\n\nOthers do not fit.",
                         "Response": f"The findings indicate {d}."})
        self.data = work / "sft.json"
        self.data.write_text(json.dumps(rows))
        texts = [SYSTEM_PROMPT] + [r["question"] + " " + r["Complex_CoT"] for r in rows]
        self.model = build_tiny(work / "tiny", texts, vocab_size=400, hidden_size=32,
                                num_layers=1, intermediate_size=64, num_heads=2,
                                num_kv_heads=1, head_dim=16)

        self.recipe = work / "sft.yaml"
        self.recipe.write_text(json.dumps({  # JSON is YAML
            "model": {"name_or_path": str(self.model)},
            "data": {"train": [{"path": str(self.data)}]}, "sft": {"max_length": 512},
            "lora": {"r": 8, "alpha": 16, "dropout": 0.0},
            "train": {"learning_rate": 2e-2, "lr_scheduler_type": "constant", "warmup_steps": 0,
                      "per_device_train_batch_size": 2,
                      "logging_steps": 1, "save_steps": 2, "max_steps": 16}}))

    def args(self, out: Path) -> list[str]:
        return ["sft", str(self.recipe), "--output_dir", str(out)]

    def compare(self, ref: Path, out: Path) -> str | None:
        import torch
        from safetensors.torch import load_file

        a = load_file(str(ref / "adapter" / "adapter_model.safetensors"))
        b = load_file(str(out / "adapter" / "adapter_model.safetensors"))
        if a.keys() != b.keys() or not all(torch.allclose(a[k], b[k], rtol=0, atol=1e-6)
                                           for k in a):
            return "adapter differs from the uninterrupted run's"
        steps = [r["step"] for r in _jsonl(out / "metrics.jsonl") if "loss" in r]
        return None if steps == sorted(set(steps)) else "a step was logged twice"


class Merge(Case):
    name = "merge"

    def __init__(self, adapter: Path):
        self.adapter = adapter

    def args(self, out: Path) -> list[str]:
        return ["merge", "--adapter", str(self.adapter), "--out", str(out / "merged"),
                "--force", "--device", "cpu"]

    def outputs(self, out: Path) -> list[Path]:
        return [out / "merged"]

    def compare(self, ref: Path, out: Path) -> str | None:
        merged = out / "merged"
        report = merged / "merge_report.json"
        if not (merged / "model.safetensors").is_file() or not report.is_file():
            return "--out has no complete merged model"
        return None if json.loads(report.read_text())["passed"] else "merge check failed"


# --------------------------------------------------------------------------- the loop


def run_case(case: Case, work: Path, kills: int, rng: random.Random) -> dict[str, Any]:
    """A reference run, then rounds until ``kills`` kills have landed: each round kills a run
    in a fresh folder at random moments (up to 4 times, each re-run resuming the last) until a
    run ends on its own, then checks the healed folder against the reference."""
    ref = work / f"{case.name}-reference"
    started = time.time()
    done = _run(case.args(ref))
    if done.returncode != 0:
        raise SystemExit(f"{case.name}: the reference run failed:\n{done.stderr[-2000:]}")
    seconds = time.time() - started
    injected = survived = rounds = 0
    problems: list[str] = []
    while injected < kills and rounds < 3 * kills:
        rounds += 1
        out = work / f"{case.name}-killed-{rounds}"
        if case.name == "merge":  # --force over an existing model: kills land mid-replace too
            out.mkdir(parents=True, exist_ok=True)
            _run(case.args(out))
        landed = 0
        # past the imports (about a second), up to the reference run's length
        while landed < 4 and _killed_run(case.args(out), rng.uniform(1.0, max(1.2, seconds))):
            landed += 1
        final = _run(case.args(out))
        problem = None if final.returncode == 0 else \
            f"the re-run failed (exit {final.returncode}): {final.stderr.strip()[-500:]}"
        problem = problem or case.compare(ref, out)
        left = _leftovers(*case.outputs(out))
        problem = problem or (f"leftovers: {left[:3]}" if left else None)
        injected += landed
        if problem:
            problems.append(f"round {rounds}: {problem}")
        else:
            survived += landed
    return {"command": case.name, "kills": injected, "survived": survived, "rounds": rounds,
            "reference_s": round(seconds, 1), "problem": "; ".join(problems) or None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=10, help="kills per command")
    parser.add_argument("--commands", default="synth,eval,sft,merge")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="/tmp/gazal-kill-loop", help="work folder (emptied)")
    args = parser.parse_args()
    import shutil

    work = Path(args.out)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    rng = random.Random(args.seed)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Teacher)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    wanted = args.commands.split(",")
    rows = []
    for name in wanted:
        if name == "synth":
            case: Case = Synth(work, url)
        elif name == "eval":
            case = Eval(work, url)
        elif name == "sft":
            case = SFT(work)
        elif name == "merge":
            ref_adapter = work / "sft-reference" / "adapter"
            if not ref_adapter.exists():
                done = _run(SFT(work).args(work / "sft-reference"))
                if done.returncode != 0:
                    raise SystemExit(done.stderr[-2000:])
            case = Merge(ref_adapter)
        else:
            raise SystemExit(f"unknown command {name!r}")
        rows.append(run_case(case, work, args.kills, rng))
        r = rows[-1]
        print(f"{r['command']:6s} kills {r['kills']:3d}  survived {r['survived']:3d}  "
              f"(reference run {r['reference_s']} s){'  PROBLEM: ' + r['problem'] if r['problem'] else ''}",
              flush=True)
    server.shutdown()
    total = sum(r["kills"] for r in rows)
    survived = sum(r["survived"] for r in rows)
    print(f"total: {total} kills injected, {survived} survived without manual repair")
    (work / "kill_loop.json").write_text(json.dumps(rows, indent=2))
    return 0 if total == survived else 1


if __name__ == "__main__":
    sys.exit(main())
