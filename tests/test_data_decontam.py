"""Decontamination (gazal.data.decontam) and duplicate detection (gazal.data.dedup)."""

from __future__ import annotations

import importlib.util
import json
import os
import random
import re
from pathlib import Path

import numpy as np
import pytest

from gazal.benchmarks import Item
from gazal.data.decontam import BenchmarkIndex, DecontamSettings, load_eval_items
from gazal.data.dedup import NearDupSettings, exact_keys, minhash_signatures, near_duplicates
from gazal.data.distinctive import number_tokenize, number_words
from gazal.data.ngrams import PolyHasher, normalize_words, tokenize
from gazal.data.plants import plant as edited_plant
from gazal.data.plants import split_halves, template_sentences

ROOT = Path(__file__).resolve().parents[1]

LONG = Item(
    id="t-long", benchmark="toy",
    question="A 54-year-old man comes to the emergency department because of crushing "
             "substernal chest pain that began two hours ago while shoveling snow. He has "
             "hypertension and smokes one pack of cigarettes daily. His pulse is 110/min. An "
             "electrocardiogram shows ST-segment elevations in leads II, III, and aVF. Which "
             "coronary artery is most likely occluded?",
    options={"A": "Left anterior descending artery", "B": "Right coronary artery",
             "C": "Left circumflex artery", "D": "Left main coronary artery"},
    answer="B")
SHORT = Item(id="t-short", benchmark="toy", question="Drug of choice for scabies in pregnancy is:",
             options={"A": "Permethrin", "B": "Ivermectin", "C": "Lindane",
                      "D": "Crotamiton"}, answer="A")
TINY = Item(id="t-tiny", benchmark="toy", question="Vitamin K:",
            options={"A": "Prevents capillary fragility", "B": "Inhibits antithrombin",
                     "C": "Helps form prothrombin", "D": "Stimulates hematopoiesis"},
            answer="C")
# Three questions sharing template text: its n-grams are boilerplate.
TEMPLATE = "the remainder of the examination shows no abnormalities which of the following is " \
           "the most appropriate next step in management"
BOILER = [Item(id=f"t-b{i}", benchmark="toy",
               question=f"A {20 + i}-year-old woman has {w} for {i + 2} weeks. {TEMPLATE}?",
               options={"A": "Reassurance", "B": "CT scan", "C": "Biopsy", "D": f"Drug {i}"},
               answer="A")
          for i, w in enumerate(["a painless neck mass", "intermittent palpitations",
                                 "a pruritic rash on the elbows"])]
ITEMS = [LONG, SHORT, TINY, *BOILER]
# GPQA-style repeat: the same question under two ids (one distinct question, two refs)
REPEAT = Item(id="t-long-r2", benchmark="toy2", question=LONG.question, options=LONG.options,
              answer="B")

CLEAN = [
    "A 67-year-old woman has fatigue and weight loss for three months. Her hemoglobin is "
    "8.9 g/dL with a low mean corpuscular volume. Step 1: Microcytic anemia in an older adult "
    "suggests occult gastrointestinal blood loss. Step 2: Colonoscopy is indicated.",
    "Permethrin is the usual first-line treatment for scabies, and ivermectin is an "
    "alternative; in pregnancy the safety data favour topical therapy.",
    "Vitamin K deficiency causes a prolonged prothrombin time; newborns receive prophylaxis.",
    f"A 30-year-old man has a cough for 9 weeks. {TEMPLATE.capitalize()}?",
]


NGRAM = DecontamSettings(rule="ngram")


@pytest.fixture(scope="module")
def index() -> BenchmarkIndex:
    """Today's 13-gram rule (``rule: ngram``); the distinctive rule's tests are below."""
    return BenchmarkIndex([*ITEMS, REPEAT], NGRAM)


def scan(index: BenchmarkIndex, texts: list[str]):
    batch, _ = tokenize(texts)
    return index.scan(batch, texts)


def plant(item: Item, seed: int) -> str:
    """The item as a contaminated example carries it: case, whitespace and punctuation
    changed, options reordered and relettered, a sentence before it, text after it."""
    rnd = random.Random(seed)
    q = item.question.upper() if seed % 2 else item.question.lower()
    q = re.sub(r"[,.?:](?=\s|$)", lambda m: rnd.choice(["", " ;", "!"]), q)
    q = q.replace(" ", "  \n ")
    opts = list(item.options.values())
    rnd.shuffle(opts)
    body = "\n".join(f"{chr(97 + i)}) {o.upper()}" for i, o in enumerate(opts))
    return f"Consider the following board question. {q}\n{body}\n<think>\nStep 1: ..."


def test_planted_questions_with_light_edits_are_caught(index):
    texts = [plant(it, s) for s, it in enumerate([LONG, SHORT, TINY])]
    found = scan(index, texts)
    assert [m.item_id for m in found] == ["t-long", "t-short", "t-tiny"]
    long_match = found[0]
    assert long_match.kind == "ngram" and long_match.coverage > 0.9
    assert long_match.also == ("toy2:t-long-r2",)  # the same question elsewhere
    assert len(long_match.text.split()) == 13 and long_match.text == long_match.text.lower()
    assert found[1].kind == "short_question" and found[2].kind == "short_question"


def test_part_of_a_question_is_enough_and_options_alone_are_not(index):
    vignette = LONG.question.split(" Which")[0]  # the case without its question sentence
    short_no_options = "Drug of choice for scabies in pregnancy is: see the guideline."
    short_one_option = SHORT.question + " Permethrin."
    tiny_three_options = "Vitamin K: " + ", ".join(list(TINY.options.values())[:3])
    found = scan(index, [vignette, short_no_options, short_one_option, tiny_three_options])
    assert found[0] is not None and found[0].item_id == "t-long"
    assert found[1:] == [None, None, None]
    both = SHORT.question + " Permethrin or Lindane?"
    assert scan(index, [both])[0].item_id == "t-short"


def test_unrelated_clinical_text_and_boilerplate_are_left_alone(index):
    assert index.n_boilerplate_ngrams > 0
    assert scan(index, CLEAN) == [None] * len(CLEAN)


def test_coverage_rule_and_gpt3_rule(index):
    # one shared 13-gram out of the item's ~50: below min_coverage (0.2) and min matches (10)
    words = re.findall(r"\w+", LONG.question)
    phrase = " ".join(words[10:23])
    text = f"Patients often report that {phrase} yesterday."
    assert scan(index, [text]) == [None]
    gpt3 = BenchmarkIndex(ITEMS, DecontamSettings(rule="ngram", min_coverage=0.0))
    match = gpt3.scan(*_batch_and_texts([text]))[0]
    assert match is not None and match.n_matched == 1


def _batch_and_texts(texts):
    batch, _ = tokenize(texts)
    return batch, texts


def test_matches_do_not_cross_example_borders(index):
    words = re.findall(r"\w+", LONG.question)
    gpt3 = BenchmarkIndex(ITEMS, DecontamSettings(rule="ngram", min_coverage=0.0))
    # the question split over two consecutive examples of one batch: only the n-grams inside
    # each example match (20 - 12 each), none across the border
    found = gpt3.scan(*_batch_and_texts([" ".join(words[:20]), " ".join(words[20:40])]))
    assert [m.n_matched for m in found] == [8, 8]
    whole = gpt3.scan(*_batch_and_texts([" ".join(words[:40])]))[0]
    assert whole.n_matched == 28
    stats = index.stats()
    assert stats["distinct_questions"] == len(ITEMS) and stats["items"] == len(ITEMS) + 1


# the medical-o1 demo rows that are paraphrases of registered evaluation items (read and
# confirmed by hand: same case, same question, reworded), which only the distinctive rule finds
O1_PARAPHRASES = {"medmcqa-78f5821f0d43",  # "when a patient is asked to say ah ... uvula ..."
                  "medmcqa-6476dc32f6ff"}  # "a 29 year old 4 months pregnant primigravida
# has history of juvenile myoclonic epilepsy ... sodium valproate ..."


@pytest.mark.parametrize("rule", ["distinctive", "ngram"])
def test_real_benchmarks_planted_items_caught_and_real_sft_text_left_alone(data_dir, rule):
    items, loaded = load_eval_items(data_dir)
    assert {b["name"] for b in loaded} >= {"medqa", "medmcqa", "pubmedqa", "mmlu_pro_medical",
                                           "gpqa_medical"}
    index = BenchmarkIndex(items, DecontamSettings(rule=rule))
    by_ref = {f"{it.benchmark}:{it.id}": it for it in items}
    unchecked = set(index.stats()["unchecked_examples"])
    rnd = random.Random(0)
    sample = [it for it in rnd.sample(items, 80) if f"{it.benchmark}:{it.id}" not in unchecked]
    found = scan(index, [plant(it, i) for i, it in enumerate(sample)])
    for it, m in zip(sample, found, strict=True):
        assert m is not None, f"missed {it.benchmark}:{it.id}: {it.question[:80]}"
        refs = {f"{m.benchmark}:{m.item_id}", *m.also, *m.others}
        assert any(by_ref[r].question == it.question for r in refs), (it.id, refs)
    # real medical reasoning text (medical-o1 style SFT rows, not benchmark questions)
    rows = json.loads((data_dir / "sft" / "medical_o1_demo.json").read_text())
    texts = ["\n".join(str(r[k]) for k in ("Question", "Complex_CoT", "Response"))
             for r in rows]
    flagged = {m.item_id for m in scan(index, texts) if m is not None}
    assert flagged == (O1_PARAPHRASES if rule == "distinctive" else set())


def _load_bench_generator():
    spec = importlib.util.spec_from_file_location("curate_scale",
                                                  ROOT / "bench" / "curate_scale.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_baseline_scan_agrees_with_gazal(index):
    bench = _load_bench_generator()
    naive = bench.NaiveScan([*ITEMS, REPEAT], index.settings)
    texts = [plant(it, s) for s, it in enumerate([LONG, SHORT, TINY])] + CLEAN
    assert [naive.contaminated(t) for t in texts] == [m is not None for m in scan(index, texts)]


# --------------------------------------------------------------------------- distinctive rule


def test_number_normalisation_is_the_same_on_words_and_batches():
    text = "Temperature 37.1°C (98.8°F), pulse 78/min, BP 122/80 mm Hg; HCO3- 24, 1st dose."
    words = number_words(normalize_words(text))
    assert b" ".join(words) == b"temperature 0 c 0 f pulse 0 min bp 0 mm hg hco0 0 0st dose"
    batch = number_tokenize([text, "", text])
    assert batch.lengths.tolist() == [len(words), 0, len(words)]
    assert np.array_equal(batch.doc(0), batch.doc(2))


def _vitals(i: int) -> str:
    return (f"Her temperature is {36 + i % 3}.{i % 10}°C ({97 + i % 4}.{i % 7}°F), pulse is "
            f"{60 + i}/min, respirations are {12 + i % 9}/min, and blood pressure is "
            f"{100 + 2 * i}/{60 + i} mm Hg.")


# A pool where the vital-signs line is a template: 30 questions carry it with other numbers.
TOPICS = ["a painless neck mass", "intermittent palpitations", "a pruritic rash on the elbows",
          "loss of smell after a viral illness", "numbness of the fourth and fifth fingers",
          "a limp after a fall from a swing"]
VITALS_POOL = [Item(id=f"t-v{i}", benchmark="toy",
                    question=f"A {20 + i}-year-old woman comes to the physician because of "
                             f"{TOPICS[i % 6]} for {i + 2} weeks, case {i} of a series on "
                             f"{['thyroid', 'arrhythmia', 'psoriasis'][i % 3]} number {i}. "
                             f"{_vitals(i)} Which of the following is the most likely "
                             "diagnosis?",
                    options={"A": f"Option {i} alpha", "B": f"Option {i} beta",
                             "C": "Reassurance", "D": "Biopsy"}, answer="A")
               for i in range(30)]


@pytest.fixture(scope="module")
def toy_distinctive() -> BenchmarkIndex:
    return BenchmarkIndex([*ITEMS, REPEAT, *VITALS_POOL], DecontamSettings(max_df=2))


def test_distinctive_rule_catches_word_edited_copies(toy_distinctive):
    rnd = random.Random(0)
    for rate in (0.1, 0.2, 0.3):
        for k in range(5):
            text = edited_plant(LONG, rate, rnd, reorder_sentences=k % 2 == 1,
                                after=CLEAN[0])
            m = scan(toy_distinctive, [text])[0]
            assert m is not None and m.item_id == "t-long", (rate, k, text)
            assert m.kind == "distinctive" and m.score >= toy_distinctive.settings.min_score
            # the spans are word sequences of the example (normalised)
            norm = " ".join(w.decode() for w in normalize_words(text))
            assert m.spans and all(span in norm for span in m.spans)
            assert m.to_dict()["matched_spans"] == list(m.spans)
    # formatting-only edits: caught, short questions by the whole-question rule
    found = scan(toy_distinctive, [plant(it, s) for s, it in enumerate([LONG, SHORT, TINY])])
    assert [m.item_id for m in found] == ["t-long", "t-short", "t-tiny"]
    assert found[0].kind == "distinctive" and found[0].score > 0.9
    assert found[0].also == ("toy2:t-long-r2",)


def test_distinctive_rule_ignores_template_lines_and_same_topic_text(toy_distinctive):
    # the exact vital-signs line of one pool item inside another question: a template (its
    # numbers normalised, it is in 30 questions), so no evidence; today's 13-gram rule flags it
    line = VITALS_POOL[7].question.split(". ")[1] + "."
    text = f"A 71-year-old man has a cough for 9 weeks. {line} What is the next step?"
    assert scan(toy_distinctive, [text]) == [None]
    ngram = BenchmarkIndex([*ITEMS, *VITALS_POOL], NGRAM)
    assert scan(ngram, [text])[0] is not None
    # same topic, same option words, not the question
    assert scan(toy_distinctive, CLEAN) == [None] * len(CLEAN)
    stats = toy_distinctive.stats()
    assert stats["rule"] == "distinctive" and stats["template_units_dropped"] > 0


def test_distinctive_settings_come_from_the_config():
    from gazal.data.config import DecontamConfig

    s = DecontamSettings.from_config(DecontamConfig(min_score=0.5, rule="ngram"))
    assert s.min_score == 0.5 and s.rule == "ngram" and s.distinctive().min_score == 0.5
    with pytest.raises(ValueError, match="rule"):
        BenchmarkIndex(ITEMS, DecontamSettings(rule="fuzzy"))


@pytest.fixture(scope="module")
def real_items():
    root = os.environ.get("GAZAL_DATA_DIR")
    if not root or not Path(root, "benchmarks").is_dir():
        pytest.skip("GAZAL_DATA_DIR is not set or has no benchmarks/ (integration test)")
    items, _ = load_eval_items(root)
    return items


@pytest.fixture(scope="module")
def real_distinctive(real_items) -> BenchmarkIndex:
    return BenchmarkIndex(real_items)


@pytest.mark.parametrize(("rate", "need"), [(0.1, 0.95), (0.2, 0.95), (0.3, 0.8)])
def test_real_word_edited_plants_are_caught(real_items, real_distinctive, rate, need):
    """Held-out half (the threshold was chosen on the other half): the issue's targets."""
    _, held = split_halves(real_items)
    rnd = random.Random(int(rate * 100))
    sample = rnd.sample(held, 120)
    texts = [edited_plant(it, rate, rnd, reorder_sentences=i % 3 == 0,
                          after="Step 1: Consider the findings.") for i, it in enumerate(sample)]
    found = scan(real_distinctive, texts)
    by_ref = {f"{it.benchmark}:{it.id}": it for it in real_items}
    caught = sum(1 for it, m in zip(sample, found, strict=True) if m is not None and any(
        by_ref[r].question == it.question
        for r in (f"{m.benchmark}:{m.item_id}", *m.also, *m.others)))
    assert caught / len(sample) >= need, (rate, caught)


def test_real_hard_negatives_are_not_flagged(real_items, real_distinctive):
    """Vital-sign, lab and demographic sentences of MedQA items inside other questions."""
    bench = _load_bench_generator()
    rnd = random.Random(3)
    sentences = [s for it in real_items if it.benchmark == "medqa"
                 for group in template_sentences(it).values() for s in group]
    assert len(sentences) > 300
    texts = []
    for i in range(300):
        row = bench.make_example(i, rnd)
        user = row["messages"][1]["content"]
        head, sep, tail = user.partition("Which of the following")
        texts.append(f"{head} {rnd.choice(sentences)} {sep}{tail}")
    flagged = [m for m in scan(real_distinctive, texts) if m is not None]
    assert len(flagged) <= 3, [m.to_dict() for m in flagged]  # <= 1%
    ngram = BenchmarkIndex(real_items, NGRAM)
    assert sum(m is not None for m in scan(ngram, texts)) > len(flagged)


# --------------------------------------------------------------------------- duplicates


def test_exact_and_near_duplicates():
    bench = _load_bench_generator()
    rnd = random.Random(0)
    base = [bench.make_example(i, rnd)["messages"][2]["content"] for i in range(60)]
    docs = list(base)
    docs.append(base[0].upper().replace(" ", "  "))  # 60: exact after normalisation
    for j in range(1, 6):  # 61-65: near (1 word in 100 changed)
        words = base[j].split(" ")
        for k in rnd.sample(range(len(words) - 6), len(words) // 100):
            words[k] = "altered"
        docs.append(" ".join(words))
    docs.append(" ".join(base[10].split(" ")[: len(base[10].split(" ")) // 3]))  # 66: a third
    batch, _ = tokenize(docs)
    hasher = PolyHasher()
    prefix = hasher.prefix(batch.tokens)
    keys = exact_keys(batch, hasher, prefix)
    assert keys[60].tolist() == keys[0].tolist() and len({tuple(k) for k in keys.tolist()}) == 66
    settings = NearDupSettings()
    sig = minhash_signatures(batch, hasher, prefix, settings)
    assert sig.shape == (67, 128) and sig.dtype == np.uint32
    dups = near_duplicates(sig, np.arange(67), settings)
    assert {d: kept for d, (kept, _) in dups.items()} == {60: 0, 61: 1, 62: 2, 63: 3, 64: 4,
                                                          65: 5}
    assert all(s >= 0.8 for _, s in dups.values())


def test_minhash_estimates_jaccard():
    rnd = random.Random(1)
    vocab = [f"w{i}" for i in range(3000)]
    a = [rnd.choice(vocab) for _ in range(600)]
    errors = []
    for keep in (0.95, 0.8, 0.5, 0.2):
        b = [w if rnd.random() < keep else rnd.choice(vocab) for w in a]
        sa = {tuple(a[i:i + 5]) for i in range(len(a) - 4)}
        sb = {tuple(b[i:i + 5]) for i in range(len(b) - 4)}
        true = len(sa & sb) / len(sa | sb)
        batch, _ = tokenize([" ".join(a), " ".join(b)])
        hasher = PolyHasher()
        sig = minhash_signatures(batch, hasher, hasher.prefix(batch.tokens), NearDupSettings())
        errors.append(abs((sig[0] == sig[1]).mean() - true))
    assert max(errors) < 0.12  # 128 values: standard error <= 0.045


def test_near_dup_settings_are_validated():
    with pytest.raises(ValueError, match="power of two"):
        NearDupSettings(num_perm=100)
    with pytest.raises(ValueError, match="must divide"):
        NearDupSettings(num_perm=128, bands=12)
