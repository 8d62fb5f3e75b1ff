"""Generation throughput: gazal's hf backend vs lm-evaluation-harness's hf backend.

Side by side in one process, on the same random Qwen3 model (a few M parameters, so
generation and not Python overhead dominates), the same items, the same chat-formatted
prompts and the same greedy max new tokens. lm-eval runs through ``HFLM.generate_until``
(the path of its generative tasks), once at its default batch size (1) and once at gazal's
batch size. First every system's text is checked equal to gazal's; then the systems run in
interleaved rounds and the best round's generated tokens/s of each and the ratios are
printed (the best round is the least disturbed one on a shared machine).

    PYTHONPATH=src GAZAL_DATA_DIR=../shared/data python bench/eval_throughput.py

Needs the ``bench`` extra (``pip install -e '.[bench]'``: lm-eval).
"""

from __future__ import annotations

import argparse
import statistics
import time

from gazal.benchmarks import Item, load_benchmark, resolve_data_dir
from gazal.benchmarks.builtin import builtin_items
from gazal.demo.tiny import build_model, build_tokenizer
from gazal.formatting import SYSTEM_PROMPT, build_messages, render_question
from gazal.generation.base import GenerationParams
from gazal.generation.hf import HFBackend


def bench_items(n: int) -> tuple[list[Item], str]:
    root = resolve_data_dir(None)
    if root is not None and root.exists():
        return load_benchmark("medqa", root, limit=n).items, "MedQA (GAZAL_DATA_DIR)"
    base = builtin_items()
    return [Item(f"b{k}", "builtin", f"Case {k}. {base[k % 4].question}", base[k % 4].options,
                 base[k % 4].answer) for k in range(n)], "built-in questions"


def lm_eval_generate(lm, contexts: list[str], max_new_tokens: int) -> list[str]:
    from lm_eval.api.instance import Instance

    requests = [Instance(request_type="generate_until", doc={}, idx=i,
                         arguments=(ctx, {"until": [], "max_gen_toks": max_new_tokens,
                                          "do_sample": False}))
                for i, ctx in enumerate(contexts)]
    return lm.generate_until(requests, disable_tqdm=True)


def sweep(model, tok, convs, params: GenerationParams, sizes: list[int], rounds: int) -> None:
    """gazal's tokens/s per fixed batch size (how the CPU default cap was chosen)."""
    backends = {b: HFBackend(model, tok, batch_size=b) for b in sizes}
    times: dict[int, list[float]] = {b: [] for b in sizes}
    for _ in range(rounds):
        for b, backend in backends.items():
            t = time.perf_counter()
            gens = backend.generate(convs, params)
            times[b].append(time.perf_counter() - t)
    n_tokens = sum(g.n_completion_tokens for g in gens)
    print(f"gazal batch-size sweep, best of {rounds} interleaved rounds:")
    for b in sizes:
        print(f"  batch {b:>3}: {n_tokens / min(times[b]):8.1f} tok/s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--items", type=int, default=32)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--batch-size", default="auto",
                   help="gazal's batch size (default auto: 16 prompts on CPU)")
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--sweep", default="", help="only time gazal at these batch sizes, "
                                               "e.g. 4,8,16,32,64")
    args = p.parse_args()

    import lm_eval
    import torch
    from lm_eval.models.huggingface import HFLM

    if args.threads:
        torch.set_num_threads(args.threads)
    items, source = bench_items(args.items)
    tok = build_tokenizer([SYSTEM_PROMPT] + [render_question(it) for it in items[:16]],
                          vocab_size=2048)
    model = build_model(tok, hidden_size=args.hidden, num_layers=args.layers, num_heads=8,
                        num_kv_heads=4, head_dim=args.hidden // 8,
                        intermediate_size=3 * args.hidden, max_position_embeddings=4096,
                        # untied: a tied random model repeats its last input token, which
                        # would make the equal-text check vacuous
                        tie_word_embeddings=False).eval()
    n_params = sum(p.numel() for p in model.parameters())
    convs = [build_messages(it) for it in items]
    contexts = [tok.apply_chat_template(c, tokenize=False, add_generation_prompt=True)
                for c in convs]
    params = GenerationParams(max_new_tokens=args.max_new_tokens)
    batch = args.batch_size if args.batch_size == "auto" else int(args.batch_size)
    gazal = HFBackend(model, tok, batch_size=batch)
    gazal_batch = gazal.batch_size or gazal.max_batch_size
    prompt_lens = [len(x) for x in gazal.prompt_ids(convs, params)]
    print(f"model: random Qwen3, {n_params / 1e6:.1f}M params, fp32, "
          f"{torch.get_num_threads()} threads; lm-eval {lm_eval.__version__}")
    print(f"items: {len(items)} {source}, prompts {min(prompt_lens)}-{max(prompt_lens)} tokens, "
          f"greedy, {args.max_new_tokens} new tokens")

    gazal.generate(convs[:2], GenerationParams(max_new_tokens=4))  # warm-up
    if args.sweep:
        sweep(model, tok, convs, params, [int(x) for x in args.sweep.split(",")], args.rounds)
        return
    ref = [g.text for g in gazal.generate(convs, params)]
    n_tokens = len(ref) * args.max_new_tokens

    def run_gazal() -> float:
        t = time.perf_counter()
        gens = gazal.generate(convs, params)
        elapsed = time.perf_counter() - t
        assert [g.text for g in gens] == ref
        return elapsed

    systems = {f"gazal hf backend (batch {batch}: {gazal_batch} prompts)": run_gazal}
    for lm_batch in (1, gazal_batch):
        lm = HFLM(pretrained=model, tokenizer=tok, batch_size=lm_batch, device="cpu",
                  max_length=model.config.max_position_embeddings, add_bos_token=False)
        lm_eval_generate(lm, contexts[:2], 4)  # warm-up
        lm_texts = lm_eval_generate(lm, contexts, args.max_new_tokens)
        same = sum(a == b for a, b in zip(ref, lm_texts, strict=True))
        if same != len(ref):
            raise SystemExit(f"lm-eval (batch {lm_batch}) differs from gazal on "
                             f"{len(ref) - same} of {len(ref)} items: not comparable")

        def run_lm(lm=lm) -> float:
            t = time.perf_counter()
            lm_eval_generate(lm, contexts, args.max_new_tokens)
            return time.perf_counter() - t

        systems[f"lm-eval HFLM.generate_until (batch {lm_batch})"] = run_lm
    print(f"greedy texts identical for all {len(ref)} items in every system "
          f"({len(set(ref))} distinct texts), e.g. {ref[0][:60]!r}")
    # Interleaved rounds; the best round of each system is its least-disturbed run (on a
    # shared machine the same work was seen to take 1x to 10x its quiet time).
    times: dict[str, list[float]] = {name: [] for name in systems}
    for _ in range(args.rounds):
        for name, fn in systems.items():
            times[name].append(fn())
    med = {name: min(ts) for name, ts in times.items()}
    width = max(len(n) for n in systems)
    print(f"best of {args.rounds} interleaved rounds, {n_tokens} generated tokens each:")
    for name in systems:
        rounds = ", ".join(f"{t:.2f}" for t in times[name])
        print(f"  {name:<{width}}  {med[name]:7.2f} s  {n_tokens / med[name]:8.1f} tok/s"
              f"   (rounds: {rounds} s; median {statistics.median(times[name]):.2f} s)")
    names = list(systems)
    print(f"ratio gazal / lm-eval default (batch 1): {med[names[1]] / med[names[0]]:.1f}x")
    print(f"ratio gazal / lm-eval at batch {gazal_batch}: {med[names[2]] / med[names[0]]:.2f}x")


if __name__ == "__main__":
    main()
