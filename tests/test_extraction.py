"""Answer extraction against the ways real models state (and fail to state) an answer.

The cases are written from response styles public LLMs produce on MedQA-like questions
(GPT-4-style "**Answer: C**", Llama "The correct answer is: C)", DeepSeek-R1 ``\\boxed{C}``
after ``</think>``, Qwen "**Final Answer:** C", Claude "The answer is **(C) ...**", bare
"C." replies, PubMedQA yes/no/maybe), not from gazal's own format alone.
"""

from __future__ import annotations

import pytest

from gazal.extraction import RULES, extract_answer, normalize_option_text

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
     "boxed"),
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
     "Option C is correct because of the positive Murphy sign.", MCQ, "C", "answer_is"),
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
    ("The answer is E.", MCQ, "none"),  # no option E
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


def test_every_rule_is_exercised():
    assert {c[3] for c in CASES} == set(RULES)


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
