"""``gazal merge --adapter A --out DIR``: merge an adapter and verify the merged model."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "merge", help="merge a (DoRA) adapter into its base model, verified by logits",
        description="Merges the adapter (merge_and_unload), saves safetensors + tokenizer + "
                    "chat template, reloads the saved model and compares its next-token "
                    "distributions with base+adapter on sample inputs. Fails (exit 1, nothing "
                    "written) when the mean KL per token exceeds --max-kl (or max |logit "
                    "difference| exceeds --tolerance, when given); prints both.")
    p.add_argument("--adapter", required=True, help="adapter folder (e.g. RUN/adapter)")
    p.add_argument("--out", required=True, help="output folder for the merged model")
    p.add_argument("--base", help="base model id or folder (default: the one the adapter "
                                  "was trained on, from adapter_config.json)")
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32",
                   help="dtype to load, merge and save in (default float32)")
    p.add_argument("--max-kl", type=float,
                   help="max mean KL(base+adapter || merged) per token, nats (default 1e-5 "
                        "for float32, 0.05 for bfloat16/float16: docs/sft.md)")
    p.add_argument("--tolerance", type=float,
                   help="also require max |logit difference| <= this (default: not checked; "
                        "logit differences grow with the model's logit scale)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: cuda "
                                                    "when available)")
    p.add_argument("--samples", type=int, default=4, help="sample inputs to compare on")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="allow the model's repository to run its own code (off by default)")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--allow-pickle", action="store_true",
                   help="accept an adapter saved only as adapter_model.bin (a pickle, which "
                        "can run code when loaded; off by default: safetensors only)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gazal.train.merge import MergeVerificationError, merge_adapter

    try:
        report = merge_adapter(args.adapter, args.out, base=args.base, dtype=args.dtype,
                               tolerance=args.tolerance, max_kl=args.max_kl,
                               trust_remote_code=args.trust_remote_code, device=args.device,
                               force=args.force, n_samples=args.samples,
                               allow_pickle=args.allow_pickle)
    except MergeVerificationError as err:
        print(f"gazal merge: FAILED: {err}", file=sys.stderr)
        return 1
    print(f"merged vs base+adapter: mean KL {report.kl_mean:.3g} per token (max_kl "
          f"{report.max_kl:g}); max |logit difference| {report.max_abs_diff:.3g} at logit std "
          f"{report.logit_std:.3g}; argmax agreement {report.argmax_agreement:.1%} over "
          f"{report.n_tokens} tokens")
    print(f"merged model written to {report.out}")
    return 0
