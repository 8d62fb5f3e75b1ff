"""``gazal data review export|import``: clinician review of curated examples."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "review", help="clinician review: export a stratified sample, import the decisions",
        description="export: a stratified sample (by category and source) of a curated "
                    "folder's kept.jsonl as DIR/review.html and DIR/review.csv (accept / "
                    "reject / corrected_answer / comment columns). import: check a filled "
                    "CSV and write decisions-<reviewer>.jsonl beside it; pass the file or "
                    "its folder to gazal data curate --review to apply the decisions.")
    rsub = p.add_subparsers(dest="review_command", required=True, metavar="ACTION")
    e = rsub.add_parser("export", help="write the review page and CSV of a sample")
    e.add_argument("curated_dir", help="output folder of gazal data curate")
    e.add_argument("--n", type=int, required=True, help="examples to sample")
    e.add_argument("--out", required=True, help="folder for review.html, review.csv")
    e.add_argument("--seed", type=int, default=0, help="sampling seed")
    e.set_defaults(func=run_export)
    i = rsub.add_parser("import", help="check a filled CSV and record its decisions")
    i.add_argument("csv", help="the filled review.csv")
    i.add_argument("--reviewer", help="reviewer name (default: the CSV's reviewer column, "
                                      "else the file name)")
    i.set_defaults(func=run_import)


def run_export(args: argparse.Namespace) -> int:
    from gazal.data.review import export_sample

    rec = export_sample(args.curated_dir, args.n, args.out, seed=args.seed)
    print(f"wrote {args.out}/review.html, review.csv, sample.json ({rec['n']} examples in "
          f"{len(rec['strata'])} strata)")
    return 0


def run_import(args: argparse.Namespace) -> int:
    import json

    from gazal.data.review import import_decisions

    out = import_decisions(args.csv, args.reviewer)
    rows = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines() if x]
    n_rej = sum(r["decision"] == "reject" for r in rows)
    print(f"wrote {out}: {len(rows)} decisions ({n_rej} rejected); apply with gazal data "
          f"curate ... --review {out}")
    return 0
