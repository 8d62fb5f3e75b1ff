"""hf backend: static batching vs transformers' continuous batching on a real model.

SmolLM2-135M-Instruct (``gazal model fetch``), the first ``--n`` real MedQA test questions as
chat prompts (gazal's system prompt, no thinking mode in this template), greedy decoding,
``--max-new-tokens`` new tokens, so responses end at naturally varying lengths. Both backends
get the same prompts in the same process, in interleaved rounds (static, continuous, static,
...); each round reports wall time, generated tokens/s, and whether the texts are identical.

    GAZAL_DATA_DIR=../shared/data PYTHONPATH=src python bench/continuous_batching.py \\
        [--n 16] [--max-new-tokens 128] [--rounds 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch

    from gazal.benchmarks import load_benchmark
    from gazal.formatting import build_messages
    from gazal.generation.base import GenerationParams
    from gazal.generation.hf import HFBackend, HFContinuousBackend
    from gazal.generation.model_cache import ensure_model

    torch.set_num_threads(args.threads)
    model = ensure_model(install=True)
    items = load_benchmark("medqa", os.environ.get("GAZAL_DATA_DIR")).items[:args.n]
    convs = [build_messages(it) for it in items]
    params = GenerationParams(max_new_tokens=args.max_new_tokens)
    static = HFBackend(str(model), device="cpu", batch_size=args.n)
    cont = HFContinuousBackend(static.model, static.tokenizer, batch_size=args.n)
    rates: dict[str, list[float]] = {"static": [], "continuous": []}
    for rnd in range(args.rounds):
        outs = {}
        for name, backend in (("static", static), ("continuous", cont)):
            start = time.perf_counter()
            outs[name] = backend.generate(convs, params)
            secs = time.perf_counter() - start
            tokens = sum(g.n_completion_tokens or 0 for g in outs[name])
            rates[name].append(tokens / secs)
            print(f"round {rnd}: {name:10} {secs:6.1f} s  {tokens} tokens  "
                  f"{tokens / secs:6.2f} tokens/s")
        same = sum(a.text == b.text for a, b in zip(outs["static"], outs["continuous"],
                                                    strict=True))
        lengths = sorted(g.n_completion_tokens or 0 for g in outs["static"])
        print(f"round {rnd}: identical texts {same}/{len(convs)}; response lengths {lengths}")
    s, c = statistics.median(rates["static"]), statistics.median(rates["continuous"])
    print(f"median tokens/s: static {s:.2f}, continuous {c:.2f}, ratio {c / s:.2f}x")


if __name__ == "__main__":
    main()
