"""Simulated contamination, to choose and test the decontamination rule on data.

- :func:`word_edit` changes a given share of an item's words the way a teacher model or a
  paraphrasing step does: synonyms (from a small clinical list, else a random common word),
  deletions, inserted fillers and swapped neighbours; optionally the sentences reordered.
- :func:`plant` puts an edited item into a training example: the question (and context),
  the options shuffled and relettered, text before and after.
- :func:`template_sentences` finds an item's vital-sign, lab and demographic sentences, the
  boilerplate that clean vignettes share with benchmark items (hard negatives).
- :func:`split_halves` splits items into a tuning and a held-out half by a hash of their id,
  so a threshold chosen on one half is reported on the other.

Used by ``bench/curate_scale.py`` and the tests; nothing here runs in ``gazal data curate``.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Sequence

from gazal.benchmarks import Item

__all__ = ["FILLERS", "plant", "split_halves", "template_sentences", "word_edit"]

SYNONYMS = {
    "patient": "individual", "man": "male", "woman": "female", "shows": "reveals",
    "reveals": "demonstrates", "most": "best", "likely": "probable", "following": "listed",
    "history": "record", "examination": "exam", "physician": "doctor", "pain": "discomfort",
    "increased": "elevated", "decreased": "reduced", "severe": "marked", "mild": "slight",
    "begins": "starts", "began": "started", "because": "since", "appropriate": "suitable",
    "treatment": "therapy", "diagnosis": "condition", "cause": "etiology", "after": "following",
    "days": "d", "weeks": "wk", "comes": "presents", "brought": "taken", "normal": "unremarkable",
    "abnormal": "atypical", "blood": "serum", "patients": "subjects", "study": "trial",
    "associated": "linked", "significant": "notable", "risk": "chance", "children": "kids",
}
FILLERS = ["also", "then", "notably", "currently", "recently", "clearly", "really", "now",
           "apparently", "reportedly", "indeed", "overall"]
_COMMON = ["the", "a", "with", "for", "and", "is", "was", "has", "in", "on", "this", "that",
           "new", "some", "very", "other", "both", "same"]
_SENT = re.compile(r"(?<=[.?!])\s+(?=[A-Z0-9])")


def word_edit(text: str, rate: float, rnd: random.Random, *,
              reorder_sentences: bool = False) -> str:
    """``text`` with round(rate * words) edits, each a synonym / other word, a deletion, an
    inserted filler or a swap with the next word (equally likely)."""
    sentences = _SENT.split(text.strip())
    if reorder_sentences and len(sentences) > 2:
        # keep the last sentence (the question proper) last, as a rewrite usually does
        body = sentences[:-1]
        rnd.shuffle(body)
        sentences = [*body, sentences[-1]]
    words = " ".join(sentences).split()
    n_edits = round(rate * len(words))
    if not n_edits or not words:
        return " ".join(words)
    targets = sorted(rnd.sample(range(len(words)), min(n_edits, len(words))), reverse=True)
    for i in targets:
        op = rnd.randrange(4)
        w = words[i]
        core = w.strip(".,;:?!()").lower()
        if op == 0:
            rep = SYNONYMS.get(core) or rnd.choice(_COMMON)
            words[i] = w.lower().replace(core, rep) if core and core in w.lower() else rep
        elif op == 1 and len(words) > 1:
            del words[i]
        elif op == 2:
            words.insert(i, rnd.choice(FILLERS))
        elif i + 1 < len(words):
            words[i], words[i + 1] = words[i + 1], words[i]
        else:
            words.insert(i, rnd.choice(FILLERS))
    return " ".join(words)


def plant(item: Item, rate: float, rnd: random.Random, *, reorder_sentences: bool = False,
          before: str = "Here is a practice question.", after: str = "") -> str:
    """A training prompt holding ``item`` with ``rate`` of its question's (and context's)
    words edited and its options shuffled and relettered."""
    q = word_edit(item.question, rate, rnd, reorder_sentences=reorder_sentences)
    ctx = word_edit(item.context, rate, rnd, reorder_sentences=reorder_sentences) + "\n" \
        if item.context else ""
    opts = list(item.options.values())
    rnd.shuffle(opts)
    body = "\n".join(f"({chr(65 + k)}) {o}" for k, o in enumerate(opts))
    return f"{before} {ctx}{q}\n{body}\n{after}".strip()


_VITALS = re.compile(r"^(Her|His|The patient's|Vital|Temperature|Pulse|Blood pressure|On "
                     r"(examination|admission|arrival))\b.*\b(temperature|pulse|respirations|"
                     r"blood pressure|heart rate)\b.*\d", re.I)
_LABS = re.compile(r"^(Laboratory|Lab|Serum|Blood|Hemoglobin|Arterial|Urinalysis|Results|"
                   r"A complete blood count|Routine)\b.*\d.*(mg/dL|mEq/L|/mm3|g/dL|U/L|"
                   r"mmol/L|%)", re.I)
_DEMO = re.compile(r"^(A|An)\s+\d+[- ](year|month|week|day)[- ]old\s+(man|woman|boy|girl|"
                   r"male|female|infant|newborn|child)\b.{0,40}\b(comes|presents|is brought|"
                   r"is admitted|visits|is evaluated)\b", re.I)


def template_sentences(item: Item) -> dict[str, list[str]]:
    """The item's sentences that are clinical templates: ``vitals`` ("Her temperature is
    37.1°C, pulse is 78/min, ..."), ``labs`` ("Laboratory studies show: ...") and
    ``demographic`` (an opening "A 45-year-old man comes to the emergency department because
    of ..." of at most 16 words). Sentences with more than 45 words are left out: they carry
    more than a template."""
    out: dict[str, list[str]] = {"vitals": [], "labs": [], "demographic": []}
    for k, sent in enumerate(_SENT.split(item.question.strip())):
        if sent.endswith("?"):
            continue
        n_words = len(sent.split())
        if "year-old" in sent or n_words > 45:
            if k == 0 and n_words <= 16 and _DEMO.search(sent):
                out["demographic"].append(sent)
        elif _VITALS.search(sent):
            out["vitals"].append(sent)
        elif _LABS.search(sent):
            out["labs"].append(sent)
    return out


def split_halves(items: Sequence[Item]) -> tuple[list[Item], list[Item]]:
    """(tuning, held-out): each item's half is fixed by a hash of benchmark and id."""
    tune, held = [], []
    for it in items:
        h = hashlib.sha256(f"{it.benchmark}:{it.id}".encode()).digest()[0]
        (tune if h % 2 == 0 else held).append(it)
    return tune, held
