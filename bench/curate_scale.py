"""`gazal data curate` at the paper's scale: 107,000 examples against every benchmark item.

Goal: at most 2 minutes and 4 GB on the 2-core CPU machine.

1. Generates 107,000 realistic synthetic SFT examples (clinical vignettes, options, numbered
   reasoning steps, assessment and final answer; ~300-800 words each, numbers and findings
   drawn at random so the text is varied), with planted problems: exact duplicates (some with
   case / whitespace changes), near-duplicates (1 word in 100 of the reply changed), contaminations (a real
   benchmark question from $GAZAL_DATA_DIR with light edits: case, whitespace, punctuation,
   reordered options, a sentence added before), format failures and malformed lines.
2. Runs `gazal data curate` as a user does (a fresh process, end to end) and reads its wall
   time and peak memory (max RSS of the child process).
3. Baseline, in this process: a straightforward per-example scan (regex words, a Python set of
   the example's n-grams, intersected with a dict of the benchmark n-grams; short questions
   likewise), on a random subset; its time is extrapolated to the full set (labelled as
   such) and compared with gazal's decontamination on the same subset, in the same process.
   The two must flag the same examples.
4. The match rules side by side (issue 18): the GPT-3 rule (any shared 13-gram), the 13-gram
   coverage rule (``decontam.rule: ngram``) and the distinctive rule (the default, at its
   default threshold and at the threshold re-derived here), on benchmark items planted with
   0%, 10%, 20% and 30% of their words edited (gazal.data.plants: synonyms, deletions,
   fillers, swaps; a third with sentences reordered; options shuffled and relettered) and on
   negatives: clean generated examples and hard negatives (a clean example holding one
   vital-sign, lab or demographic sentence of a MedQA item), each on the tuning and the
   held-out half of the items, plus the 198 real medical-o1 rows. ``--rules-only`` runs only
   this part.
5. If `datasketch` is importable, its MinHash + LSH on a subset, extrapolated (the library
   gazal does not use for near-duplicates; see docs/data.md).

Usage: GAZAL_DATA_DIR=../shared/data PYTHONPATH=src python bench/curate_scale.py [-n 107000]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gazal.benchmarks import Item
from gazal.data.config import DecontamConfig
from gazal.data.decontam import BenchmarkIndex, DecontamSettings, load_eval_items
from gazal.data.ngrams import tokenize
from gazal.data.plants import plant, split_halves, template_sentences
from gazal.formatting import SYSTEM_PROMPT, render_question

CATEGORIES = ["diagnostic_reasoning", "treatment_planning", "uncertainty", "prognosis"]
SEXES = ["man", "woman", "boy", "girl"]
SETTINGS = ["the emergency department", "the clinic", "her primary care physician",
            "his primary care physician", "the urgent care center", "the outpatient clinic",
            "a rural health center", "the hospital"]
COMPLAINTS = ["chest pain", "shortness of breath", "abdominal pain", "fever", "headache",
              "fatigue", "weight loss", "cough", "joint pain", "palpitations", "syncope",
              "dizziness", "rash", "back pain", "hematuria", "jaundice", "dysphagia",
              "diarrhea", "confusion", "weakness of the left arm", "blurred vision",
              "polyuria", "night sweats", "hemoptysis", "edema of both legs", "pruritus",
              "melena", "dysuria", "seizures", "tremor", "hoarseness", "epistaxis"]
HISTORY = ["type 2 diabetes mellitus", "hypertension", "chronic kidney disease",
           "asthma", "COPD", "atrial fibrillation", "hypothyroidism", "rheumatoid arthritis",
           "HIV infection", "alcohol use disorder", "heart failure", "osteoarthritis",
           "migraine", "depression", "hyperlipidemia", "sickle cell disease", "gout",
           "systemic lupus erythematosus", "prior myocardial infarction", "psoriasis"]
DRUGS = ["metformin", "lisinopril", "amlodipine", "atorvastatin", "levothyroxine",
         "warfarin", "apixaban", "furosemide", "prednisone", "methotrexate", "insulin glargine",
         "albuterol", "tiotropium", "sertraline", "omeprazole", "allopurinol", "hydroxyurea",
         "tenofovir", "metoprolol", "spironolactone", "ceftriaxone", "vancomycin",
         "piperacillin-tazobactam", "heparin", "aspirin", "clopidogrel", "gabapentin"]
FINDINGS = ["crackles at both lung bases", "a holosystolic murmur at the apex",
            "jugular venous distension", "right upper quadrant tenderness",
            "a palpable purpura on the lower legs", "decreased breath sounds on the right",
            "hepatomegaly", "splenomegaly", "pitting edema", "a positive Murphy sign",
            "nuchal rigidity", "bilateral papilledema", "an S3 gallop", "scleral icterus",
            "a friction rub", "absent bowel sounds", "cervical lymphadenopathy",
            "a pulsatile abdominal mass", "asterixis", "clubbing of the fingers",
            "a resting tremor", "hyperreflexia", "a malar rash", "tophi on the ears"]
LABS = [("hemoglobin", "g/dL", 6, 17), ("leukocyte count", "/mm3", 2000, 24000),
        ("platelet count", "/mm3", 40000, 600000), ("serum sodium", "mEq/L", 118, 152),
        ("serum potassium", "mEq/L", 2.5, 6.8), ("serum creatinine", "mg/dL", 0.5, 6.0),
        ("blood urea nitrogen", "mg/dL", 5, 90), ("glucose", "mg/dL", 50, 520),
        ("troponin I", "ng/mL", 0.01, 12), ("lactate", "mmol/L", 0.5, 8),
        ("alanine aminotransferase", "U/L", 10, 900), ("total bilirubin", "mg/dL", 0.2, 14),
        ("TSH", "microU/mL", 0.01, 40), ("hemoglobin A1c", "%", 4.5, 13),
        ("C-reactive protein", "mg/L", 1, 280), ("D-dimer", "ng/mL", 100, 5000)]
DIAGNOSES = ["acute cholecystitis", "community-acquired pneumonia", "pulmonary embolism",
             "acute pericarditis", "diabetic ketoacidosis", "infective endocarditis",
             "acute pancreatitis", "heart failure with reduced ejection fraction",
             "bacterial meningitis", "nephrotic syndrome", "thyroid storm", "sarcoidosis",
             "giant cell arteritis", "acute interstitial nephritis", "Addisonian crisis",
             "spontaneous bacterial peritonitis", "aortic dissection", "multiple myeloma",
             "Guillain-Barre syndrome", "hepatic encephalopathy", "tumor lysis syndrome",
             "IgA vasculitis", "acute gout flare", "ischemic stroke", "Cushing syndrome"]
IMAGING = ["chest x-ray", "CT scan of the abdomen", "echocardiography", "abdominal ultrasound",
           "MRI of the brain", "CT angiography of the chest", "renal ultrasound"]
IMAGING_FINDINGS = ["a right lower lobe consolidation", "gallbladder wall thickening",
                    "a reduced ejection fraction of {n}%", "a {n}-mm hypodense lesion",
                    "no acute abnormality", "bilateral pleural effusions",
                    "a filling defect in a segmental artery", "peripancreatic fat stranding",
                    "an enlarged cardiac silhouette", "a ring-enhancing lesion"]
CONNECT = ["This suggests", "This finding argues for", "Taken together, this points toward",
           "This makes it less likely that the cause is", "This is consistent with",
           "An important alternative is", "We must also exclude", "This lowers the probability of",
           "The pretest probability of", "Guidelines recommend considering"]
DRUG_ACTIONS = ["should be held with", "can be continued with", "is safer than",
                "interacts with", "is preferred over"]
STEP_STARTS = ["Summarize the key findings", "Interpret the vital signs",
               "Build the differential diagnosis", "Weigh the laboratory results",
               "Interpret the imaging", "Consider the medication history",
               "Estimate the pretest probability", "Decide on the next step",
               "Consider contraindications", "Assess the prognosis",
               "Identify the red flags", "Choose the management"]


def _num(lo: float, hi: float, rnd: random.Random) -> str:
    x = rnd.uniform(lo, hi)
    return f"{x:.1f}" if hi < 20 else f"{int(x):,}"


def _vignette(rnd: random.Random) -> str:
    age = rnd.randint(2, 90)
    sex = rnd.choice(SEXES)
    c1, c2 = rnd.sample(COMPLAINTS, 2)
    parts = [f"A {age}-year-old {sex} comes to {rnd.choice(SETTINGS)} because of "
             f"{rnd.randint(1, 14)} {rnd.choice(['days', 'weeks', 'months'])} of {c1} and {c2}."]
    hx = rnd.sample(HISTORY, rnd.randint(1, 3))
    parts.append(f"The patient has a history of {', '.join(hx)}.")
    meds = rnd.sample(DRUGS, rnd.randint(1, 4))
    parts.append(f"Current medications include {', '.join(meds)}.")
    parts.append(f"Temperature is {rnd.uniform(36, 40.5):.1f}°C, pulse is {rnd.randint(48, 140)}"
                 f"/min, respirations are {rnd.randint(10, 34)}/min, and blood pressure is "
                 f"{rnd.randint(80, 190)}/{rnd.randint(40, 110)} mm Hg.")
    parts.append(f"Examination shows {rnd.choice(FINDINGS)} and {rnd.choice(FINDINGS)}.")
    labs = rnd.sample(LABS, rnd.randint(3, 7))
    parts.append("Laboratory studies show: " + "; ".join(
        f"{name} {_num(lo, hi, rnd)} {unit}" for name, unit, lo, hi in labs) + ".")
    if rnd.random() < 0.6:
        finding = rnd.choice(IMAGING_FINDINGS).format(n=rnd.randint(5, 60))
        parts.append(f"{rnd.choice(IMAGING).capitalize()} shows {finding}.")
    return " ".join(parts)


def _reasoning_sentence(rnd: random.Random) -> str:
    d1, d2 = rnd.sample(DIAGNOSES, 2)
    name, unit, lo, hi = rnd.choice(LABS)
    forms = [
        f"{rnd.choice(CONNECT)} {d1} rather than {d2}.",
        f"A {name} of {_num(lo, hi, rnd)} {unit} is {rnd.choice(['markedly', 'mildly', 'not'])} "
        f"abnormal and {rnd.choice(['supports', 'weakens', 'does not change'])} the case for "
        f"{d1}.",
        f"{rnd.choice(FINDINGS).capitalize()} is {rnd.choice(['typical', 'atypical', 'classic'])}"
        f" of {d1} and is seen in about {rnd.randint(5, 95)}% of patients.",
        f"{rnd.choice(DRUGS).capitalize()} {rnd.choice(DRUG_ACTIONS)} {rnd.choice(DRUGS)} in "
        "this setting.",
        f"The risk of {d2} within {rnd.randint(1, 12)} months is roughly "
        f"{rnd.randint(1, 60)}% in similar cohorts.",
        f"Given {rnd.choice(HISTORY)}, {d1} becomes {rnd.choice(['more', 'less'])} likely.",
    ]
    return rnd.choice(forms)


def make_example(i: int, rnd: random.Random) -> dict:
    """One realistic synthetic SFT example (300-800 words)."""
    target = rnd.randint(300, 800)
    answers = rnd.sample(DIAGNOSES, 5)
    gold = rnd.randrange(5)
    item = Item(id=f"g{i}", benchmark="synthetic", question=_vignette(rnd) + " Which of the "
                "following is the most likely diagnosis?",
                options={"ABCDE"[k]: a.capitalize() for k, a in enumerate(answers)},
                answer="ABCDE"[gold])
    user = render_question(item)
    words = len(user.split())
    steps = []
    while words < target - 40:
        body = rnd.choice(STEP_STARTS) + ": " + " ".join(
            _reasoning_sentence(rnd) for _ in range(rnd.randint(2, 4)))
        steps.append(body)
        words += len(body.split())
    thinking = "\n".join(f"Step {k}: {s}" for k, s in enumerate(steps, start=1))
    assessment = (f"The findings are best explained by {answers[gold]}. "
                  + _reasoning_sentence(rnd))
    reply = (f"<think>\n{thinking}\n</think>\n\n## Clinical Assessment\n{assessment}\n\n"
             f"**Final answer: ({'ABCDE'[gold]}) {answers[gold].capitalize()}**")
    return {"id": f"ex-{i:06d}", "category": CATEGORIES[i % 4], "source": "bench",
            "messages": [{"role": "system", "content": SYSTEM_PROMPT},
                         {"role": "user", "content": user},
                         {"role": "assistant", "content": reply}]}


def _light_edit(item: Item, rnd: random.Random) -> str:
    """A benchmark question as a contaminated example would carry it: case, whitespace and
    punctuation changed, options reordered, a sentence before it."""
    q = item.question
    q = q.upper() if rnd.random() < 0.3 else q.lower() if rnd.random() < 0.5 else q
    q = re.sub(r" ", lambda m: "  " if rnd.random() < 0.1 else " ", q)
    q = q.replace(",", "").replace("?", " ?")
    opts = list(item.options.values())
    rnd.shuffle(opts)
    pre = "Here is a practice question from a review book."
    ctx = f"{item.context}\n" if item.context else ""
    return f"{pre} {ctx}{q}\n" + "\n".join(f"({chr(65 + k)}) {o}" for k, o in enumerate(opts))


def generate(path: Path, n: int, bench_items: list[Item], seed: int = 0) -> dict[str, set]:
    """Write ``n`` examples (plus malformed lines) to ``path``; returns the planted ids."""
    rnd = random.Random(seed)
    planted: dict[str, set] = {k: set() for k in ("exact", "near", "contaminated", "format",
                                                  "malformed")}
    rows: list[dict] = []
    for i in range(n):
        r = rnd.random()
        if rows and r < 0.01:  # exact duplicate (new id; some with case/space changes)
            src = rnd.choice(rows)
            row = json.loads(json.dumps(src))
            row["id"] = f"ex-{i:06d}"
            if rnd.random() < 0.5:
                m = row["messages"][1]
                m["content"] = m["content"].lower().replace(" ", "  ")
            planted["exact"].add(row["id"])
        elif rows and r < 0.02:  # near duplicate: 1 word in 100 of the reply changed
            src = rnd.choice(rows)
            row = json.loads(json.dumps(src))
            row["id"] = f"ex-{i:06d}"
            words = row["messages"][2]["content"].split(" ")
            # words of the steps' text only: "Step", "3:" and the final answer line stay
            editable = [k for k, w in enumerate(words[:-6])
                        if w.isalpha() and w != "Step" and "\n" not in w]
            for k in rnd.sample(editable, max(1, len(words) // 100)):
                words[k] = rnd.choice(["likely", "possible", "severe", "mild", "acute"])
            row["messages"][2]["content"] = " ".join(words)
            planted["near"].add(row["id"])
        else:
            row = make_example(i, rnd)
            if r < 0.025 and bench_items:  # contaminated: a benchmark question in the prompt
                item = rnd.choice(bench_items)
                row["messages"][1]["content"] = _light_edit(item, rnd)
                planted["contaminated"].add(row["id"])
            elif r < 0.03:  # format failure: no final answer line
                row["messages"][2]["content"] = row["messages"][2]["content"].rsplit(
                    "\n", 1)[0]
                planted["format"].add(row["id"])
        rows.append(row)
    with path.open("w", encoding="utf-8") as f:
        line = 0
        for k, row in enumerate(rows):
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            line += 1
            if k % 5000 == 2500:
                f.write('{"id": "broken", "messages": [\n')
                line += 1
                planted["malformed"].add(line)
    return planted


# --------------------------------------------------------------------------- baseline

_WORD = re.compile(r"[^\W_]+")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


class NaiveScan:
    """Straightforward decontamination with the same rules as gazal's: per example, a Python
    set of its n-grams (tuples of words) intersected with a dict of the benchmark n-grams
    (boilerplate n-grams dropped; coverage and count thresholds per item); questions shorter
    than n matched whole, with their options, by scanning each word-sequence length."""

    def __init__(self, items: list[Item], s: DecontamSettings):
        self.s = s
        grams: dict[tuple, set] = {}
        self.short: dict[tuple, list[tuple[int, list[str]]]] = {}
        seen = set()
        for it in items:
            q = _words(it.question)
            opts = sorted(" ".join(_words(o)) for o in it.options.values())
            key = (tuple(q), tuple(_words(it.context or "")), tuple(opts))
            if key in seen:
                continue
            seen.add(key)
            fields = [it.question] + ([it.context] if it.context else []) + \
                list(it.options.values())
            for text in fields:
                w = _words(text)
                for i in range(len(w) - s.ngram_n + 1):
                    grams.setdefault(tuple(w[i:i + s.ngram_n]), set()).add(key)
            keys = [f" {o} " for o in opts if o]
            if s.short_min_words <= len(q) < s.ngram_n:
                self.short.setdefault(tuple(q), []).append(
                    (min(s.short_min_options, len(keys)), keys))
            elif 0 < len(q) < s.short_min_words and len(keys) >= s.tiny_min_options:
                self.short.setdefault(tuple(q), []).append((len(keys), keys))
        self.grams = {g: k for g, k in grams.items() if len(k) < s.boilerplate_min_items}
        self.total: dict[tuple, int] = {}
        for owners in self.grams.values():
            for key in owners:
                self.total[key] = self.total.get(key, 0) + 1
        self.lengths = sorted({len(q) for q in self.short})

    def contaminated(self, text: str) -> bool:
        w = _words(text)
        n = self.s.ngram_n
        found: dict[tuple, int] = {}
        for g in {tuple(w[i:i + n]) for i in range(len(w) - n + 1)} & self.grams.keys():
            for key in self.grams[g]:
                found[key] = found.get(key, 0) + 1
        for key, count in found.items():
            if count / self.total[key] >= self.s.min_coverage or \
                    count >= self.s.min_ngram_matches:
                return True
        joined = " " + " ".join(w) + " "
        for length in self.lengths:
            for g in {tuple(w[i:i + length]) for i in range(len(w) - length + 1)} & \
                    self.short.keys():
                for need, opts in self.short[g]:
                    if sum(1 for o in opts if o in joined) >= need:
                        return True
        return False


def _text(row: dict) -> str:
    return "\n".join(m["content"] for m in row["messages"] if m["role"] != "system")


RATES = (0.0, 0.1, 0.2, 0.3)


def _insert_sentence(row: dict, sentence: str) -> str:
    """A clean example's text with ``sentence`` put inside its vignette (a hard negative)."""
    user = row["messages"][1]["content"]
    head, sep, tail = user.partition(" Which of the following")
    return f"{head} {sentence}{sep}{tail}\n{row['messages'][2]['content']}"


def rules_side_by_side(items: list[Item], rows: list[dict], data_dir: str,
                       n_plants: int) -> None:
    """Caught and false-flag rates of the GPT-3 13-gram rule, the 13-gram coverage rule and
    the distinctive rule, on word-edited plants (0/10/20/30% of the words) and negatives
    (clean generated examples, vital-sign/lab/demographic hard negatives, the real
    medical-o1 rows), on the tuning and the held-out half; the distinctive rule's threshold
    is re-derived on the tuning half (highest tuning-negative score + 0.1)."""
    tune, held = split_halves(items)
    by_text: dict[str, set[str]] = {}
    for it in items:
        by_text.setdefault(it.question, set()).add(f"{it.benchmark}:{it.id}")
    clean_rows = [r for r in rows if "practice question from a review book" not in
                  r["messages"][1]["content"]]
    rnd = random.Random(7)
    rnd.shuffle(clean_rows)
    sets: dict[str, dict[str, list]] = {}
    for h, (name, half) in enumerate((("tuning", tune), ("held-out", held))):
        base = clean_rows[h * 6000:(h + 1) * 6000]
        medqa = [it for it in half if it.benchmark == "medqa"]
        templ = [s for it in medqa for group in template_sentences(it).values() for s in group]
        neg = {"clean": [_text(r) for r in base[:2000]],
               "hard": [_insert_sentence(r, rnd.choice(templ)) for r in base[2000:4000]]}
        plants = {}
        for rate in RATES:
            sample = rnd.sample(half, min(n_plants, len(half)))
            plants[rate] = (
                [plant(it, rate, rnd, reorder_sentences=k % 3 == 0,
                       before=rnd.choice(["Here is a practice question.", "Question:", ""]))
                 + "\n" + base[4000 + k % 2000]["messages"][2]["content"]
                 for k, it in enumerate(sample)], sample)
        sets[name] = {"neg": neg, "plants": plants}
        print(f"{name} half: {len(half):,} items, {len(templ):,} template sentences of MedQA "
              "items")
    o1 = json.loads((Path(data_dir) / "sft" / "medical_o1_demo.json").read_text())
    o1_texts = ["\n".join(str(r[k]) for k in ("Question", "Complex_CoT", "Response"))
                for r in o1]

    def scan_all(index: BenchmarkIndex, texts: list[str]) -> list:
        out = []
        for start in range(0, len(texts), 3000):
            chunk = texts[start:start + 3000]
            batch, _ = tokenize(chunk)
            out += index.scan(batch, chunk)
        return out

    def caught(found: list, sample: list[Item]) -> int:
        return sum(1 for m, it in zip(found, sample, strict=True) if m is not None and (
            {f"{m.benchmark}:{m.item_id}", *m.also, *m.others} & by_text[it.question]))

    # the threshold, re-derived on the tuning half
    probe = BenchmarkIndex(items, DecontamSettings(min_score=0.0))
    top = max((m.score for kind in ("clean", "hard")
               for m in scan_all(probe, sets["tuning"]["neg"][kind]) if m is not None
               and m.kind == "distinctive"), default=0.0)
    chosen = math.ceil((top + 0.1) * 100) / 100
    print(f"\ndistinctive rule: highest tuning-negative score {top:.3f} -> threshold "
          f"{chosen:.2f} (default min_score {DecontamSettings().min_score})")

    rules = {
        "GPT-3 (any shared 13-gram)": DecontamSettings(rule="ngram", min_coverage=0.0,
                                                       min_ngram_matches=1),
        "13-gram coverage (before)": DecontamSettings(rule="ngram"),
        f"distinctive (default, min_score {DecontamSettings().min_score})": DecontamSettings(),
        f"distinctive, min_score {chosen:.2f} (re-derived here)":
            DecontamSettings(min_score=chosen),
    }

    table = []
    for name, settings in rules.items():
        t = time.perf_counter()
        index = BenchmarkIndex(items, settings)
        cells = [name]
        for half in ("tuning", "held-out"):
            d = sets[half]
            for rate in RATES:
                texts, sample = d["plants"][rate]
                cells.append(f"{100 * caught(scan_all(index, texts), sample) / len(texts):.1f}")
            for kind in ("clean", "hard"):
                texts = d["neg"][kind]
                n = sum(m is not None for m in scan_all(index, texts))
                cells.append(f"{100 * n / len(texts):.2f}")
        flagged = [m for m in scan_all(index, o1_texts) if m is not None]
        cells.append(f"{len(flagged)}")
        cells.append(f"{time.perf_counter() - t:.0f}")
        table.append(cells)
        print(f"  {name}: o1 rows flagged: "
              + (", ".join(f"{m.benchmark}:{m.item_id} ({m.score:.2f})" for m in flagged)
                 or "none"))
    head = ["rule"]
    for h in ("tune", "held"):
        head += [f"{h} {int(r * 100)}%" for r in RATES] + [f"{h} clean FP %", f"{h} hard FP %"]
    head += ["o1 flagged /198", "s"]
    # the semantic stage's workload: near misses (0.25 <= best score < min_score), i.e. what
    # a judge would be asked about, per held-out set
    lo, hi = 0.25, DecontamSettings().min_score
    d = sets["held-out"]
    counts = []
    for label, texts in [(f"{int(r * 100)}% plants", d["plants"][r][0]) for r in RATES] + \
            [("clean", d["neg"]["clean"]), ("hard", d["neg"]["hard"]), ("o1", o1_texts)]:
        n = sum(1 for m in scan_all(probe, texts) if m is not None and m.kind == "distinctive"
                and lo <= m.score < hi)
        counts.append(f"{label} {n}/{len(texts)}")
    print(f"semantic stage workload (held-out): near misses {lo} <= score < {hi}: "
          + ", ".join(counts))
    print(f"\ncaught (% of {n_plants} plants per rate and half, right item) and flagged "
          "(% of 2,000 negatives per kind and half):")
    print("| " + " | ".join(head) + " |")
    print("|" + " --- |" * len(head))
    for cells in table:
        print("| " + " | ".join(cells) + " |")


def _read_rows(src: Path) -> list[dict]:
    rows = []
    with src.open() as f:
        for line in f:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", type=int, default=107_000)
    p.add_argument("--baseline-subset", type=int, default=3000,
                   help="examples the baseline scans (its time is extrapolated)")
    p.add_argument("--edit-plants", type=int, default=500,
                   help="word-edited plants per edit rate and half (tuning / held-out)")
    p.add_argument("--rules-only", action="store_true",
                   help="only the side-by-side comparison of the match rules")
    p.add_argument("--keep", help="keep the generated data and outputs in this folder")
    p.add_argument("--reuse", action="store_true",
                   help="with --keep: reuse the examples generated there by an earlier run")
    args = p.parse_args()
    data_dir = os.environ.get("GAZAL_DATA_DIR")
    if not data_dir:
        sys.exit("set GAZAL_DATA_DIR to the benchmark files (../shared/data)")
    items, _ = load_eval_items(data_dir)
    tmp_ctx = tempfile.TemporaryDirectory()
    tmp = Path(args.keep) if args.keep else Path(tmp_ctx.name)
    tmp.mkdir(parents=True, exist_ok=True)
    src = tmp / "examples.jsonl"
    planted_file = tmp / "planted.json"
    if args.reuse and src.exists() and planted_file.exists():
        planted = {k: set(v) for k, v in json.loads(planted_file.read_text()).items()}
        print(f"reusing {src} ({src.stat().st_size / 1e6:,.0f} MB)")
    else:
        t = time.perf_counter()
        planted = generate(src, args.n, items)
        planted_file.write_text(json.dumps({k: sorted(v) for k, v in planted.items()}))
        print(f"generated {args.n:,} examples ({src.stat().st_size / 1e6:,.0f} MB) in "
              f"{time.perf_counter() - t:.0f} s")
    print("planted: " + ", ".join(f"{k} {len(v):,}" for k, v in planted.items()))

    if args.rules_only:
        rules_side_by_side(items, _read_rows(src), data_dir, args.edit_plants)
        return

    # gazal, as a user runs it
    out = tmp / "curated"
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "gazal", "data", "curate", str(src), "--out",
                           str(out), "--data-dir", data_dir, "--no-progress"],
                          env={**os.environ}, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        sys.exit(f"gazal data curate failed:\n{proc.stderr[-3000:]}")
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    report = json.loads((out / "report.json").read_text())
    removed: dict[str, set] = {}
    with (out / "removed.jsonl").open() as f:
        for line in f:
            row = json.loads(line)
            removed.setdefault(row["reason"], set()).add(row.get("id", row.get("line")))
    any_removed = set().union(*removed.values()) if removed else set()
    print(f"\ngazal data curate (fresh process, end to end): {wall:.1f} s, peak memory "
          f"{peak_mb:,.0f} MB")
    print("  stages: " + ", ".join(f"{k} {v:.1f} s" for k, v in report["timing_s"].items()))
    print(f"  kept {report['kept']:,}; removed " + ", ".join(
        f"{k} {v:,}" for k, v in report["removed_by_reason"].items() if v))
    for kind, reason in (("contaminated", "contaminated"), ("exact", "exact_duplicate"),
                         ("near", "near_duplicate"), ("format", "format"),
                         ("malformed", "malformed")):
        caught = len(planted[kind] & removed.get(reason, set()))
        other = len((planted[kind] & any_removed) - removed.get(reason, set()))
        print(f"  planted {kind}: {caught:,} / {len(planted[kind]):,} removed as {reason}"
              + (f" (+{other:,} removed for another reason first, e.g. a copy of a "
                 "contaminated row)" if other else ""))
    print("  goal: <= 120 s and <= 4,096 MB ->",
          "met" if wall <= 120 and peak_mb <= 4096 else "NOT met")

    # baseline vs gazal's decontamination on the same subset, same process
    rows = _read_rows(src)
    rnd = random.Random(1)
    subset = rnd.sample(rows, min(args.baseline_subset, len(rows)))
    texts = [_text(r) for r in subset]
    dc = DecontamConfig(rule="ngram")  # the baseline implements the 13-gram rule
    s = DecontamSettings.from_config(dc)
    t = time.perf_counter()
    naive = NaiveScan(items, s)
    naive_index_s = time.perf_counter() - t
    t = time.perf_counter()
    naive_flags = [naive.contaminated(x) for x in texts]
    naive_s = time.perf_counter() - t
    t = time.perf_counter()
    index = BenchmarkIndex(items, s)
    gazal_index_s = time.perf_counter() - t
    t = time.perf_counter()
    batch, _ = tokenize(texts)
    gazal_flags = [m is not None for m in index.scan(batch, texts)]
    gazal_s = time.perf_counter() - t
    agree = sum(a == b for a, b in zip(naive_flags, gazal_flags, strict=True))
    scale = args.n / len(texts)
    print(f"\ndecontamination only (13-gram rule), same {len(texts):,}-example random subset, "
          "this process:")
    print(f"  baseline (per-example n-gram sets): index {naive_index_s:.1f} s, scan "
          f"{naive_s:.2f} s -> {naive_s * scale:,.0f} s EXTRAPOLATED to {args.n:,}")
    print(f"  gazal (vectorised rolling hashes):  index {gazal_index_s:.1f} s, scan "
          f"{gazal_s:.2f} s -> {gazal_s * scale:,.0f} s extrapolated")
    print(f"  ratio baseline / gazal (scan): {naive_s / gazal_s:.1f}x; flags agree on "
          f"{agree:,} / {len(texts):,} ({sum(gazal_flags)} flagged by gazal, "
          f"{sum(naive_flags)} by the baseline)")
    print(f"  baseline scan extrapolated to {args.n:,} / gazal's whole curate run: "
          f"{naive_s * scale / wall:.1f}x")

    rules_side_by_side(items, rows, data_dir, args.edit_plants)

    try:
        from datasketch import MinHash, MinHashLSH
    except ImportError:
        print("\n(datasketch not installed: its MinHash/LSH timing is skipped)")
        return
    sub = texts[:2000]
    t = time.perf_counter()
    lsh = MinHashLSH(threshold=0.8, num_perm=128)
    for i, x in enumerate(sub):
        w = _words(x)
        m = MinHash(num_perm=128)
        m.update_batch([" ".join(w[j:j + 5]).encode() for j in range(max(1, len(w) - 4))])
        lsh.query(m)
        lsh.insert(str(i), m)
    ds = time.perf_counter() - t
    print(f"\ndatasketch MinHash(128) + MinHashLSH on {len(sub):,} examples: {ds:.2f} s -> "
          f"{ds * args.n / len(sub):,.0f} s EXTRAPOLATED to {args.n:,} (near-duplicates only)")


if __name__ == "__main__":
    main()
