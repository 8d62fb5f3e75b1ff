"""Fit the activation coefficients of ``gazal plan`` (src/gazal/plan/coefficients.json).

For random tiny Qwen3 configurations, builds the model as ``gazal sft`` trains it (frozen
base, PEFT adapter on every linear layer, TRL's fused log-prob head or full logits), runs a
forward pass on CPU under a dispatch mode that tracks every tensor storage created and still
alive (gazal.plan.measure.LiveBytes), and takes the bytes held at the end of the
forward at two sequence lengths. Their difference divided by the token difference is the
exact per-token cost, and what is left at the shorter length the per-forward cost. A
least-squares fit over the configurations gives
the coefficients of

    bytes = tokens * (L*(c_h*h + c_i*I + c_q*q + c_kv*kv + c_n*heads + c_r*r*m)
                      + g_h*h + g_d*head_dim + g_v*V + g_0)
            + k_w * L*sum(in*out) + k_a * L*sum(r*(in+out)) + k_o * L*sum(out)
            + k_v * V*h + k_0      (sums over the adapted modules of a layer)

per (precision, adapter, dropout > 0, head). Each fit is then checked on configurations it
did not see (printed), and the tables are printed as JSON (``--write`` writes them, with
the libraries' versions, into src/gazal/plan/coefficients.json, which the planner reads).

    PYTHONPATH=src python bench/plan_calibrate.py [--configs 14] [--write]

Takes ~5-10 minutes on a 2-core CPU. Re-run after upgrading torch, transformers, peft or trl.
"""

from __future__ import annotations

import argparse
import random
import time
import warnings
from dataclasses import replace

import numpy as np

from gazal.plan.coefficients import (
    COEFFICIENT_NAMES,
    GC_NAMES,
    PRECISIONS,
    coefficients_json,
    coefficients_path,
    write_coefficients,
)
from gazal.plan.measure import build_training_model, measure_training_step
from gazal.plan.shapes import LoraSpec, ModelShape

S1, S2, BATCH = 16, 32, 2
S_CHECK = 48  # held-out configurations are also measured here
N_TOKEN = 10  # per-token coefficients; the last three are per forward


def random_shape(rng: random.Random) -> tuple[ModelShape, int]:
    heads = rng.choice([2, 4, 6])
    kv = rng.choice([d for d in (1, 2, 3) if heads % d == 0])
    shape = ModelShape(
        name="tiny", model_type="qwen3", vocab_size=rng.randrange(128, 1025, 32),
        hidden_size=rng.randrange(32, 161, 16), intermediate_size=rng.randrange(48, 321, 16),
        num_layers=rng.choice([1, 2, 3]), num_heads=heads, num_kv_heads=kv,
        head_dim=rng.choice([8, 16, 24, 32]), tie_word_embeddings=rng.random() < 0.5)
    return shape, rng.choice([2, 4, 8, 12])


def features(shape: ModelShape, r: int) -> list[float]:
    m = 7  # every linear layer
    L = shape.num_layers
    return [L * shape.hidden_size, L * shape.intermediate_size, L * shape.q_dim,
            L * shape.kv_dim, L * shape.num_heads, L * r * m, shape.hidden_size,
            shape.head_dim, shape.vocab_size, 1.0]


def held_bytes(shape: ModelShape, r: int, precision: str, dora: bool, dropout: bool,
               fused: bool, check_len: int | None = None,
               checkpointing: bool = False) -> tuple[float, float, float | None]:
    """(bytes per token, bytes per forward) held at the end of the forward, and the bytes
    measured at ``check_len`` tokens per row (for held-out checks)."""
    lora = LoraSpec(r=r, use_dora=dora, dropout=0.1 if dropout else 0.0)
    # gazal sft takes the full-logits path when PEFT wraps the head: trained token rows on
    # tied embeddings (the demo recipe), so that is what the full-head fit measures
    tokens = None if fused else [3, 5]
    if not fused:
        shape = replace(shape, tie_word_embeddings=True)
    model = build_training_model(shape, lora, precision, fused_head=fused,
                                 trainable_token_indices=tokens,
                                 gradient_checkpointing=checkpointing)
    held = []
    for s in (S1, S2, check_len):
        if s is None:
            held.append(None)
            continue
        m = measure_training_step(model, BATCH, s, precision, fused_head=fused,
                                  optimizer_step=False)
        held.append(m.activations)
    slope = (held[1] - held[0]) / (BATCH * (S2 - S1))
    return slope, held[0] - slope * BATCH * S1, held[2]


def constant_features(shape: ModelShape, r: int) -> list[float]:
    """Per-forward terms: the adapted weights (L * sum in*out), the adapter (L * sum
    r*(in+out)), the output features (L * sum out), the embedding (V*h), 1."""
    mods = LoraSpec().adapted(shape)
    L = shape.num_layers
    # the first layer's q/k/v input does not require grad (frozen embedding), so nothing
    # saved there depends on their weights
    first_qkv = sum(m.in_features * m.out_features for m in mods[:3])
    return [L * sum(m.in_features * m.out_features for m in mods) - first_qkv,
            L * sum(r * (m.in_features + m.out_features) for m in mods),
            L * sum(m.out_features for m in mods),
            shape.vocab_size * shape.hidden_size, 1.0]


def checkpointed_features(shape: ModelShape) -> list[float]:
    """Held with gradient checkpointing, per token: the layer inputs (L*h), h, head_dim, V, 1;
    per forward: V*h, 1."""
    return [shape.num_layers * shape.hidden_size, shape.hidden_size, shape.head_dim,
            shape.vocab_size, 1.0]


def fit(rows: list[list[float]], ys: list[float], free: list[int]) -> np.ndarray:
    """Least squares on the ``free`` features (the others fixed at 0)."""
    x = np.array(rows)[:, free]
    coef, *_ = np.linalg.lstsq(x, np.array(ys), rcond=None)
    out = np.zeros(len(rows[0]))
    out[free] = coef
    return out


def predict(coef: np.ndarray, shape: ModelShape, r: int, tokens: int) -> float:
    """Held bytes at ``tokens`` tokens (per-token and per-forward coefficients)."""
    per_token = float(np.dot(coef[:N_TOKEN], features(shape, r)))
    return tokens * per_token + float(np.dot(coef[N_TOKEN:], constant_features(shape, r)))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", type=int, default=14, help="configurations per fit")
    p.add_argument("--holdout", type=int, default=4, help="held-out configurations per fit")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--write", action="store_true",
                   help="write the tables into src/gazal/plan/coefficients.json")
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    import torch

    torch.set_num_threads(1)
    started = time.time()
    table: dict[tuple, np.ndarray] = {}
    worst_overall = 0.0
    no_vocab = [i for i in range(N_TOKEN) if COEFFICIENT_NAMES[i] != "g_v"]
    everything = list(range(N_TOKEN))
    jobs = [(pr, dora, drop, "fused") for pr in PRECISIONS for dora in (False, True)
            for drop in (False, True)]
    jobs += [(pr, False, False, "full") for pr in PRECISIONS]
    for precision, dora, dropout, head in jobs:
        rng = random.Random(f"{args.seed}-{precision}-{dora}-{dropout}-{head}")
        fused = head == "fused"
        samples = []
        for k in range(args.configs + args.holdout):
            shape, r = random_shape(rng)
            if not fused:
                shape = replace(shape, tie_word_embeddings=True)
            check = S_CHECK if k >= args.configs else None
            samples.append((shape, r, *held_bytes(shape, r, precision, dora, dropout, fused,
                                                  check)))
        train, held = samples[: args.configs], samples[args.configs:]
        # the fused head holds nothing vocabulary-sized per token: g_v stays 0 there
        per_token = fit([features(s, r) for s, r, *_ in train], [y for _, _, y, *_ in train],
                        no_vocab if fused else everything)
        # per-forward terms: weight copies only where PEFT makes them (DoRA with dropout
        # under autocast), the embedding only on the full-logits path (trained token rows)
        free = [1, 2, 4] + ([0] if dora and dropout and precision == "bf16-amp" else []) + \
            ([] if fused else [3])
        constant = fit([constant_features(s, r) for s, r, *_ in train],
                       [c for _, _, _, c, _ in train], sorted(free))
        coef = np.concatenate([per_token, constant])
        # fit: at the longer length; held out: measured at a third length, not used anywhere
        errs = [abs(predict(coef, s, r, BATCH * S2) - (BATCH * S2 * y + c)) / (BATCH * S2 * y + c)
                for s, r, y, c, _ in train]
        herrs = [abs(predict(coef, s, r, BATCH * S_CHECK) - m) / m for s, r, _, _, m in held]
        worst_overall = max(worst_overall, *herrs)
        key = (precision, "dora" if dora else "lora", dropout, head)
        table[key] = coef
        print(f"{key}: fit max rel err {max(errs):.4f}, held-out max rel err {max(herrs):.4f}  "
              + " ".join(f"{n}={c:.3f}" for n, c in zip(COEFFICIENT_NAMES, coef, strict=True)),
              flush=True)
    # full-logits keys for DoRA / dropout: per-layer terms of the fused fit, global terms of
    # the full-logits fit of the same precision (only the head differs)
    for precision in PRECISIONS:
        full = table[(precision, "lora", False, "full")]
        for dora in ("lora", "dora"):
            for dropout in (False, True):
                if (dora, dropout) == ("lora", False):
                    continue
                fused = table[(precision, dora, dropout, "fused")]
                merged = np.concatenate([fused[:6], full[6:N_TOKEN], fused[N_TOKEN:]])
                merged[N_TOKEN + 3] = full[N_TOKEN + 3]  # the embedding term of the head
                table[(precision, dora, dropout, "full")] = merged
    # gradient checkpointing: what is held does not depend on the adapter (layer inputs and
    # the embedding / head terms); one fit per precision and head
    gc_table: dict[tuple, np.ndarray] = {}
    for precision in PRECISIONS:
        for head in ("fused", "full"):
            rng = random.Random(f"{args.seed}-{precision}-gc-{head}")
            fused = head == "fused"
            samples = []
            for k in range(args.configs + args.holdout):
                shape, r = random_shape(rng)
                if not fused:
                    shape = replace(shape, tie_word_embeddings=True)
                dora = rng.random() < 0.5
                check = S_CHECK if k >= args.configs else None
                samples.append((shape, r, *held_bytes(shape, r, precision, dora, False, fused,
                                                      check, checkpointing=True)))
            train, held = samples[: args.configs], samples[args.configs:]
            free = [0, 1, 2, 4] + ([] if fused else [3])
            per_token = fit([checkpointed_features(s) for s, *_ in train],
                            [y for _, _, y, *_ in train], free)
            constant = fit([[s.vocab_size * s.hidden_size, 1.0] for s, *_ in train],
                           [c for _, _, _, c, _ in train], [1] if fused else [0, 1])
            coef = np.concatenate([per_token, constant])

            def gc_predict(coef, shape, tokens):
                return tokens * float(np.dot(coef[:5], checkpointed_features(shape))) + \
                    float(np.dot(coef[5:], [shape.vocab_size * shape.hidden_size, 1.0]))

            herrs = [abs(gc_predict(coef, s, BATCH * S_CHECK) - m) / m
                     for s, r, _, _, m in held]
            worst_overall = max(worst_overall, *herrs)
            gc_table[(precision, head)] = coef
            print(f"checkpointed {(precision, head)}: held-out max rel err {max(herrs):.4f}  "
                  + " ".join(f"{n}={c:.3f}" for n, c in zip(GC_NAMES, coef, strict=True)),
                  flush=True)
    import peft
    import transformers
    import trl

    source = (f"bench/plan_calibrate.py --configs {args.configs} --holdout {args.holdout} "
              f"--seed {args.seed} on measured tiny Qwen3 models: CPU, SDPA, torch "
              f"{torch.__version__}, transformers {transformers.__version__}, peft "
              f"{peft.__version__}, trl {trl.__version__}; worst held-out relative error "
              f"{worst_overall:.4f}; re-run it after upgrading those libraries")
    print("\n" + coefficients_json(table, gc_table, source=source))
    print(f"worst held-out relative error: {worst_overall:.4f}; "
          f"{time.time() - started:.0f} s")
    if args.write:
        write_coefficients(coefficients_path(), table, gc_table, source=source)
        print(f"written into {coefficients_path()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
