"""Answer extraction against the ways real models state (and fail to state) an answer.

Three layers:

* ``tests/data/extraction_cases.jsonl``: a few hundred responses written in the styles public
  LLMs produce on MedQA / MMLU-Pro / PubMedQA / MedMCQA / GPQA (GPT-4o and Claude markdown,
  Llama "The correct answer is: C)", Gemma's bold letter, DeepSeek-R1 / QwQ ``\\boxed{C}``
  after ``</think>``, Qwen "答案：C", simple-evals "Answer: C", MMLU-Pro "The answer is (I)",
  PubMedQA "Final decision: no", ``<answer>`` tags, JSON), each with the expected letter (or
  none) and the rule that must decide it, and many responses that must extract nothing
  (hedges, conflicts, refusals, letters only inside the thinking, option-by-option
  discussions without a conclusion, look-alike letters, letters outside the options).
  The texts paraphrase the styles seen in public harnesses and issue threads; none is copied.
* the hand-written cases below (the first suite);
* randomised property tests with fixed seeds: the canonical line always extracts its letter,
  thinking never changes a result, dismissing another option afterwards never changes a
  result, two different committed letters never extract, and extraction never returns a
  letter that is not an option.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from gazal.extraction import NO_ANSWER, RULES, extract_answer, normalize_option_text

CASES_FILE = Path(__file__).parent / "data" / "extraction_cases.jsonl"

# The option sets of the cases file (each record carries its options and the set's name).
OPTION_SETS: dict[str, dict[str, str]] = {
    "medqa4": {"A": "Acute appendicitis", "B": "Acute pancreatitis", "C": "Acute cholecystitis",
               "D": "Small bowel obstruction"},
    "medqa5": {"A": "Folate deficiency", "B": "Iron deficiency anemia",
               "C": "Parvovirus B19 infection", "D": "Vitamin B12 deficiency",
               "E": "Anemia of chronic disease"},
    "pubmedqa": {"A": "yes", "B": "no", "C": "maybe"},
    "mmlu10": dict(zip("ABCDEFGHIJ", [
        "Insulin", "Glucagon", "Cortisol", "Aldosterone", "Thyroxine", "Epinephrine",
        "Growth hormone", "Prolactin", "Oxytocin", "Vasopressin"], strict=True)),
    # option texts that start with the article "A" or the word "It"
    "mmlu_sent": dict(zip("ABCDEFGHIJ", [
        "A decrease in stroke volume", "An increase in preload", "It causes vasoconstriction",
        "It has no effect", "Increased heart rate", "Decreased afterload", "Both A and B",
        "Reduced contractility", "Increased venous return", "None of the above"], strict=True)),
    "medmcqa": {"A": "Aspirin", "B": "Clopidogrel", "C": "Both A and B",
                "D": "None of the above"},
    # "All of the following are features of nephrotic syndrome EXCEPT"
    "except": {"A": "Proteinuria", "B": "Hypoalbuminemia", "C": "Hematuria",
               "D": "Hyperlipidemia"},
    "numeric": {"A": "20%", "B": "55%", "C": "80%", "D": "95%"},
    "gpqa": {"A": "Increased expression of p53", "B": "Loss of RB function",
             "C": "Activation of BCL-2", "D": "Upregulation of MDM2"},
    # option texts that look like an alternative ("VSD"), a condition ("If ...") or a hedge
    "cardiac": {"A": "Mitral stenosis.", "B": "Aortic stenosis.", "C": "VSD.", "D": "ASD."},
    "catheter": {"A": "If the patient requests it.", "B": "If the patient is bedridden.",
                 "C": "If urine output need not be measured.",
                 "D": "When symptoms persist beyond six weeks"},
    "carrier": {"A": "She is a carrier", "B": "Carrier status is uncertain without genetic testing",
                "C": "She is not a carrier"},
}


def _load_cases() -> list[dict]:
    cases = []
    with CASES_FILE.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            rec = json.loads(line)
            missing = {"id", "style", "response", "option_set", "options", "letter", "rule",
                       "note"} - set(rec)
            assert not missing, f"{CASES_FILE}:{n}: missing {sorted(missing)}"
            cases.append(rec)
    return cases


FILE_CASES = _load_cases()


@pytest.mark.parametrize("case", FILE_CASES, ids=[c["id"] for c in FILE_CASES])
def test_real_response_styles(case):
    got = extract_answer(case["response"], case["options"])
    assert (got.letter, got.rule) == (case["letter"], case["rule"]), (case["note"], got)


def test_cases_file_is_well_formed():
    ids = [c["id"] for c in FILE_CASES]
    assert len(ids) == len(set(ids))
    assert len({(c["response"], c["option_set"]) for c in FILE_CASES}) == len(FILE_CASES)
    for c in FILE_CASES:
        assert c["options"] == OPTION_SETS[c["option_set"]], c["id"]
        if c["letter"] is None:
            assert c["rule"] in NO_ANSWER, c["id"]
        else:
            assert c["letter"] in c["options"], c["id"]
            assert c["rule"] in RULES, c["id"]
    negatives = sum(c["letter"] is None for c in FILE_CASES)
    assert len(FILE_CASES) >= 250 and negatives >= 100


def test_every_rule_and_reason_is_exercised():
    rules = {c[3] for c in CASES} | {c["rule"] for c in FILE_CASES}
    reasons = {c[2] for c in REFUSALS} | {c["rule"] for c in FILE_CASES if c["letter"] is None}
    assert set(RULES) <= rules
    assert set(NO_ANSWER) <= reasons


# --------------------------------------------------------------------------- first suite

MCQ = {"A": "Acute appendicitis", "B": "Acute pancreatitis", "C": "Acute cholecystitis",
       "D": "Small bowel obstruction"}
PUBMED = {"A": "yes", "B": "no", "C": "maybe"}
MMLU = {k: f"choice number {i}" for i, k in enumerate("ABCDEFGHIJ")}
MMLU["I"] = "increased cardiac output"

# (response, options, expected letter, expected rule)
CASES = [
    # --- gazal's canonical line
    ("<think>\nStep 1: RUQ pain.\n</think>\n\n## Clinical Assessment\nFits.\n\n"
     "**Final answer: (C) Acute cholecystitis**", MCQ, "C", "final_answer"),
    ("<think>\nStep 1: x\n</think>\n\n**Final answer: (C)**", MCQ, "C", "final_answer"),
    ("<think>\nStep 1: x\n</think>\n\n**Final answer: Acute cholecystitis**", MCQ, "C",
     "final_answer"),
    # --- "final answer" styles
    ("**Final Answer:** C", MCQ, "C", "final_answer"),
    ("### Final Answer\n\nC. Acute cholecystitis", MCQ, "C", "final_answer"),
    ("Final answer: c", MCQ, "C", "final_answer"),
    ("The final answer is (B).", MCQ, "B", "final_answer"),
    ("Final Answer: The final answer is $\\boxed{D}$. I hope it is correct.", MCQ, "D",
     "final_answer"),
    # --- boxed (DeepSeek-R1 / Qwen math style), after thinking
    ("<think>Murphy sign positive, so gallbladder.</think>\n\n\\boxed{C}", MCQ, "C", "boxed"),
    ("</think>\nThe diagnosis is cholecystitis.\n\n$\\boxed{\\text{C}}$", MCQ, "C", "boxed"),
    ("\\boxed{C. Acute cholecystitis}", MCQ, "C", "boxed"),
    # --- "the answer is"
    ("The answer is (C).", MCQ, "C", "answer_is"),
    ("The answer is C", MCQ, "C", "answer_is"),
    ("Therefore, the correct answer is **C. Acute cholecystitis**.", MCQ, "C", "answer_is"),
    ("The correct answer is: C) Acute cholecystitis", MCQ, "C", "answer_is"),
    ("The answer is **(C) Acute cholecystitis**. This patient has...", MCQ, "C", "answer_is"),
    ("the correct option is C", MCQ, "C", "answer_is"),
    ("The best answer is A because the pain started periumbilically.", MCQ, "A", "answer_is"),
    ("So the most likely answer is option D.", MCQ, "D", "answer_is"),
    ("The answer is acute cholecystitis.", MCQ, "C", "answer_is"),
    ("The most appropriate answer is Acute Cholecystitis (C).", MCQ, "C", "answer_is"),
    ("Answer: C", MCQ, "C", "answer_is"),
    ("**Answer: C. Acute cholecystitis**\n\nExplanation: The patient has RUQ pain.", MCQ, "C",
     "answer_is"),
    ("Answer:\n\nB", MCQ, "B", "answer_is"),
    ("Correct answer: (A)", MCQ, "A", "answer_is"),
    ("Let's analyze each option.\nA) Appendicitis: pain is RLQ.\nB) Pancreatitis: epigastric.\n"
     "Option C is correct because of the positive Murphy sign.", MCQ, "C", "option_correct"),
    ("Option C (Acute cholecystitis) is the best answer here.", MCQ, "C", "answer_is"),
    ("C is the correct answer. Murphy sign is classic.", MCQ, "C", "answer_is"),
    ("After weighing the findings, (C) Acute cholecystitis is the correct answer.", MCQ, "C",
     "answer_is"),
    ("The answer is （C）.", MCQ, "C", "answer_is"),
    ("The answer is C, not B.", MCQ, "C", "answer_is"),
    ("Answer: B\n\nOption B is correct: lipase is elevated.", MCQ, "B", "answer_is"),
    # --- bare replies
    ("C", MCQ, "C", "leading_letter"),
    ("C.", MCQ, "C", "leading_letter"),
    ("(C)", MCQ, "C", "leading_letter"),
    ("**C.** Acute cholecystitis", MCQ, "C", "leading_letter"),
    ("C) Acute cholecystitis\n\nThe Murphy sign and RUQ pain after fatty meals...", MCQ, "C",
     "leading_letter"),
    ("Acute cholecystitis", MCQ, "C", "option_text"),
    ("acute  CHOLECYSTITIS.", MCQ, "C", "option_text"),
    # --- PubMedQA
    ("<think>Step 1: the trial shows benefit.</think>\n\n**Final answer: (A) yes**", PUBMED, "A",
     "final_answer"),
    ("Final answer: no", PUBMED, "B", "final_answer"),
    ("The answer is maybe.", PUBMED, "C", "answer_is"),
    ("Yes, the study demonstrates that double balloon enteroscopy is safe.", PUBMED, "A",
     "option_text"),
    ("No. The results were not significant.", PUBMED, "B", "option_text"),
    ("maybe", PUBMED, "C", "option_text"),
    # --- MMLU-Pro: ten letters; 'I' is a letter only where it is clearly one
    ("The answer is (J).", MMLU, "J", "answer_is"),
    ("Answer: I", MMLU, "I", "answer_is"),
    ("The answer is (I) increased cardiac output.", MMLU, "I", "answer_is"),
    ("The answer is H", MMLU, "H", "answer_is"),
]

# (response, options, expected rule): no answer may be extracted
REFUSALS = [
    ("The answer is either B or C.", MCQ, "hedged"),
    ("The answer is B or C.", MCQ, "hedged"),
    ("The answer is B/C", MCQ, "hedged"),
    ("The answer could be A or B; I cannot be certain.\nAnswer: A or B", MCQ, "hedged"),
    ("Final answer: (A)\nFinal answer: (B)", MCQ, "conflict"),
    ("The answer is A.\n\nFinal answer: (B)", MCQ, "conflict"),
    ("**Final answer: (C) Acute appendicitis**", MCQ, "conflict"),
    ("Answer: B. Acute cholecystitis", MCQ, "conflict"),
    ("The answer is not determinable from the information given.", MCQ, "hedged"),
    ("I'm not sure. It could be appendicitis or cholecystitis.", MCQ, "none"),
    ("<think>\nStep 1: The answer is C.\n</think>\n\nI need more information.", MCQ, "none"),
    ("<think>\nStep 1: thinking about C\nStep 2: still thinking", MCQ, "truncated"),
    ("<think>The answer is C.</think>", MCQ, "empty"),
    ("", MCQ, "empty"),
    ("The answer is E.", MCQ, "out_of_range"),  # no option E
    ("A 45-year-old woman with RUQ pain most likely has gallbladder disease.", MCQ, "none"),
    ("I think this is about the gallbladder.", MCQ, "none"),
    ("Hepatitis B is the correct answer to consider here.", MCQ, "none"),
    ("The answer is yes and no.", PUBMED, "hedged"),
    ("Final answer: (С)", MCQ, "none"),  # Cyrillic look-alike is not the letter C
    ("The answer is clear once we consider the anatomy.", MCQ, "none"),
]


@pytest.mark.parametrize(("response", "options", "letter", "rule"), CASES,
                         ids=[c[0][:40] for c in CASES])
def test_extracts(response, options, letter, rule):
    got = extract_answer(response, options)
    assert (got.letter, got.rule) == (letter, rule), got


@pytest.mark.parametrize(("response", "options", "rule"), REFUSALS,
                         ids=[c[0][:40] for c in REFUSALS])
def test_refuses(response, options, rule):
    got = extract_answer(response, options)
    assert got.letter is None, got
    assert got.rule == rule, got




def test_only_the_answer_section_counts():
    thinking_says_a = "<think>\nStep 1: Answer: A\nFinal answer: (A)\n</think>\n\nThe answer is C."
    assert extract_answer(thinking_says_a, MCQ).letter == "C"


def test_think_close_without_open_reads_after_it():
    # Templates such as DeepSeek-R1's put <think> in the prompt.
    assert extract_answer("The gallbladder.\n</think>\nAnswer: C", MCQ).letter == "C"


def test_text_after_last_think_close_only():
    text = "<think>a</think> The answer is B. <think>b</think> The answer is D."
    assert extract_answer(text, MCQ).letter == "D"


def test_option_text_normalisation():
    assert normalize_option_text("  Acute   Cholecystitis! ") == "acute cholecystitis"
    assert normalize_option_text("Ｃａｔ") == "cat"


def test_duplicate_option_texts_are_ambiguous():
    opts = {"A": "None of the above", "B": "Aspirin", "C": "None of the above"}
    assert extract_answer("The answer is none of the above", opts).letter is None


def test_longest_option_text_wins_a_prefix_match():
    opts = {"A": "Aspirin", "B": "Aspirin and clopidogrel", "C": "Heparin"}
    assert extract_answer("The answer is aspirin and clopidogrel.", opts).letter == "B"
    assert extract_answer("The answer is aspirin, given the low bleeding risk.", opts).letter \
        == "A"


# --------------------------------------------------------------------------- properties

_VOCAB = ["Acute appendicitis", "Acute pancreatitis", "Acute cholecystitis", "Croup",
          "Epiglottitis", "Intravenous fluids and insulin", "Oral metformin", "Right coronary "
          "artery", "Left circumflex", "Vitamin B12 deficiency", "Iron deficiency anemia",
          "Hyperkalemia", "Hyponatremia", "Aortic dissection", "Pulmonary embolism",
          "Tension pneumothorax", "Cardiac tamponade", "Nephrotic syndrome", "IgA nephropathy",
          "Minimal change disease", "Increased cardiac output", "Decreased afterload",
          "Oxytocin", "Vasopressin", "Prolactin", "Reassurance only", "Lumbar puncture",
          "Head CT without contrast", "Start heparin", "Observation", "20%", "95%",
          # texts that look like letters, alternatives, conditions, hedges or negations
          "VSD", "If the patient is bedridden", "When symptoms persist", "Both A and B",
          "None of the above", "All of the above", "It has no effect", "Not indicated",
          "A decrease in stroke volume", "Carrier status is uncertain", "Vitamin B12"]
_LETTERS = "ABCDEFGHIJ"


def _random_options(rng: random.Random) -> dict[str, str]:
    n = rng.randint(2, 10)
    return dict(zip(_LETTERS[:n], rng.sample(_VOCAB, n), strict=True))


# Firm statements of each rule, as real models write them: {L} letter, {T} its option text.
_FIRM = [
    ("final_answer", "**Final answer: ({L}) {T}**"),
    ("final_answer", "Final Answer: {L}"),
    ("final_answer", "### Final answer\n{L}. {T}"),
    ("answer_tag", "<answer>{L}</answer>"),
    ("boxed", "$\\boxed{{{L}}}$"),
    ("answer_is", "The answer is ({L})."),
    ("answer_is", "Therefore, the correct answer is **{L}) {T}**."),
    ("answer_is", "Answer: {L}"),
    ("answer_is", "**Answer:** {T}"),
    ("answer_is", "{L} is the correct answer."),
    ("choice_verb", "I would choose {L}."),
]
_FILLER = ["The presentation and the timeline matter here.",
           "Consider the pathophysiology and the key examination finding.",
           "Each option was weighed against the vignette."]


def test_canonical_line_extracts_its_letter_for_any_options():
    rng = random.Random(0)
    for _ in range(500):
        options = _random_options(rng)
        letter = rng.choice(list(options))
        text = options[letter]
        body = rng.choice(["**Final answer: ({L}) {T}**", "**Final answer: ({L})**",
                           "**Final answer: {T}**"]).format(L=letter, T=text)
        response = (f"<think>\nStep 1: {rng.choice(_FILLER)}\n</think>\n\n"
                    f"## Clinical Assessment\n{rng.choice(_FILLER)}\n\n{body}")
        got = extract_answer(response, options)
        assert (got.letter, got.rule) == (letter, "final_answer"), (response, got)


def test_firm_statements_extract_their_letter():
    rng = random.Random(1)
    for _ in range(500):
        options = _random_options(rng)
        letter = rng.choice(list(options))
        rule, template = rng.choice(_FIRM)
        response = " ".join(rng.sample(_FILLER, 2)) + "\n\n" + template.format(
            L=letter, T=options[letter])
        got = extract_answer(response, options)
        assert (got.letter, got.rule) == (letter, rule), (response, got)


def test_text_inside_thinking_never_changes_the_result():
    rng = random.Random(2)
    distractors = ["The answer is ({L}).", "Final answer: {L}", "\\boxed{{{L}}}", "Answer: {L}",
                   "<answer>{L}</answer>", "I would choose {L}.", "{L}"]
    bases = [c for c in FILE_CASES if "<think>" not in c["response"]
             and "</think>" not in c["response"]]
    for case in bases:
        options = case["options"]
        want = extract_answer(case["response"], options)
        for _ in range(3):
            noise = "\n".join(rng.choice(distractors).format(L=rng.choice(list(options)))
                              for _ in range(rng.randint(1, 4)))
            response = f"<think>\n{noise}\n</think>\n\n{case['response']}"
            got = extract_answer(response, options)
            if want.rule == "empty":  # an empty answer stays empty
                assert got.letter is None, (response, got)
                continue
            assert (got.letter, got.rule) == (want.letter, want.rule), (response, got)


def test_dismissing_another_option_afterwards_never_changes_the_result():
    rng = random.Random(3)
    dismissals = ["Option {Y} is incorrect because the timeline does not fit.",
                  "{Y} is not the correct answer.",
                  "Why not {Y}? {U} would need a different presentation.",
                  "({Y}) {U} is unlikely here.",
                  "The answer is not {Y}.",
                  "A common mistake is to think the answer is {Y}.",
                  "- {Y}) {U}: ruled out by the history."]
    for _ in range(500):
        options = _random_options(rng)
        letter = rng.choice(list(options))
        rule, template = rng.choice(_FIRM)
        answer = template.format(L=letter, T=options[letter])
        others = [k for k in options if k != letter]
        tail = "\n".join(rng.choice(dismissals).format(Y=y, U=options[y])
                         for y in rng.sample(others, min(len(others), rng.randint(1, 3))))
        response = f"{answer}\n\n{tail}"
        got = extract_answer(response, options)
        assert (got.letter, got.rule) == (letter, rule), (response, got)


def test_two_different_committed_letters_extract_nothing():
    rng = random.Random(4)
    for _ in range(500):
        options = _random_options(rng)
        x, y = rng.sample(list(options), 2)
        (_, t1), (_, t2) = rng.choice(_FIRM), rng.choice(_FIRM)
        response = (t1.format(L=x, T=options[x]) + "\n\n" + rng.choice(_FILLER) + "\n\n"
                    + t2.format(L=y, T=options[y]))
        got = extract_answer(response, options)
        assert got.letter is None and got.rule == "conflict", (response, got)


def test_alternatives_extract_nothing():
    rng = random.Random(5)
    forms = ["The answer is {X} or {Y}.", "The answer is either ({X}) or ({Y}).",
             "Final answer: {X}/{Y}", "Answer: {X}, {Y}", "\\boxed{{{X} \\text{{ or }} {Y}}}",
             "The answer is {X} (or possibly {Y}).", "I'd go with either {X} or {Y}."]
    for _ in range(300):
        options = _random_options(rng)
        x, y = rng.sample(list(options), 2)
        response = rng.choice(_FILLER) + "\n\n" + rng.choice(forms).format(X=x, Y=y)
        got = extract_answer(response, options)
        assert got.letter is None and got.rule == "hedged", (response, got)


def test_presentation_does_not_change_the_result():
    rng = random.Random(6)
    wrappers = ["**{S}**", "### {S}", "> {S}", "*{S}*", "__{S}__", "<b>{S}</b>"]
    for _ in range(300):
        options = _random_options(rng)
        letter = rng.choice(list(options))
        rule, template = rng.choice(_FIRM[5:9])  # one-line answer_is forms
        line = template.format(L=letter, T=options[letter])
        response = rng.choice(_FILLER) + "\n\n" + rng.choice(wrappers).format(S=line)
        got = extract_answer(response, options)
        assert (got.letter, got.rule) == (letter, rule), (response, got)
        fullwidth = line.replace(":", "：").replace("(", "（").replace(")", "）")
        got = extract_answer(fullwidth, options)
        assert got.letter == letter, (fullwidth, got)


def test_never_a_letter_outside_the_options_and_never_an_unknown_rule():
    rng = random.Random(7)
    alphabet = [*"ABCDEFGHIJKabcij ().:*#\n-/", "answer", "Answer: ", "The answer is ",
                "final answer", "\\boxed{", "}", "or ", "<think>", "</think>", "Option ", "yes",
                "С", "Ａ", "I ", "A ", "İ"]
    for _ in range(2000):
        options = _random_options(rng)
        response = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        got = extract_answer(response, options)
        if got.letter is None:
            assert got.rule in NO_ANSWER, (response, got)
        else:
            assert got.letter in options and got.rule in RULES, (response, got)
