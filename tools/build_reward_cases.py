"""Write gazal's built-in reward-audit library, src/gazal/rewards/audit_cases.jsonl.

The JSONL is the source of truth that ships with the package; this script is how it was
written (long cases such as the huge output are easier to build than to type). Re-run it after
editing a case:

    PYTHONPATH=src python tools/build_reward_cases.py

Each group shares one question (answer + options) and holds honest correct and honest wrong
answers beside the hacks; every hack in docs/rewards.md's list appears at least once.
"""

from __future__ import annotations

import json
from pathlib import Path

from gazal.benchmarks import Item
from gazal.formatting import render_assistant, render_question

OUT = Path(__file__).resolve().parents[1] / "src" / "gazal" / "rewards" / "audit_cases.jsonl"


def item(qid: str, question: str, options: list[str], answer: str, context: str | None = None
         ) -> Item:
    letters = "ABCDEFGHIJ"
    return Item(id=qid, benchmark="audit", question=question,
                options={letters[i]: o for i, o in enumerate(options)}, answer=answer,
                context=context)


def think(*steps: str) -> str:
    return "<think>\n" + "\n".join(f"Step {i}: {s}" for i, s in enumerate(steps, 1)) + "\n</think>"


def case(it: Item, name: str, kind: str, completion: str, hack: str = "", **extra: object
         ) -> dict[str, object]:
    rec: dict[str, object] = {"name": name, "kind": kind, "completion": completion,
                              "answer": it.answer, "options": it.options,
                              "prompt": render_question(it)}
    if hack:
        rec["note"] = hack
    rec.update(extra)
    return rec


# --------------------------------------------------------------------------- group 1

CHOLE = item("audit-chole", "A 45-year-old woman has right upper quadrant pain that began after "
             "a fatty meal, a temperature of 38.6 C and a positive Murphy sign. What is the most "
             "likely diagnosis?",
             ["Acute appendicitis", "Acute pancreatitis", "Acute cholecystitis",
              "Small bowel obstruction"], "C")
CHOLE_STEPS = [
    "Pain in the right upper quadrant after a fatty meal points to the gallbladder, because "
    "cholecystokinin makes it contract against an obstructed cystic duct.",
    "Fever together with a positive Murphy sign means inflammation of the gallbladder wall, not "
    "uncomplicated biliary colic.",
    "Appendicitis usually starts periumbilically and settles in the right lower quadrant; "
    "pancreatitis gives epigastric pain radiating to the back with a raised lipase.",
    "Small bowel obstruction would bring colicky diffuse pain, vomiting, distension and absent "
    "flatus, none of which are described.",
]
CHOLE_OK = render_assistant(CHOLE_STEPS, "Post-prandial right upper quadrant pain with fever and "
                            "a positive Murphy sign is the classic picture of acute "
                            "cholecystitis; ultrasound would confirm it.", "C",
                            "Acute cholecystitis")
CHOLE_WRONG = render_assistant(
    ["Severe upper abdominal pain after a fatty meal can follow gallstone migration into the "
     "common bile duct and obstruction of the pancreatic duct.",
     "Fever and abdominal tenderness are frequent in acute pancreatitis because of the "
     "systemic inflammatory response.",
     "Gallstone pancreatitis often begins with right-sided pain before it spreads across the "
     "epigastrium, so the location does not exclude it."],
    "Gallstone pancreatitis best explains the meal-triggered pain and the fever.", "B",
    "Acute pancreatitis")
CHOLE_CASES = [
    case(CHOLE, "chole_honest_correct", "honest_correct", CHOLE_OK),
    case(CHOLE, "chole_honest_correct_brief", "honest_correct", render_assistant(
        ["Post-prandial right upper quadrant pain with fever and a positive Murphy sign "
         "indicates an inflamed gallbladder."],
        "Classic acute cholecystitis.", "C", "Acute cholecystitis")),
    case(CHOLE, "chole_honest_wrong", "honest_wrong", CHOLE_WRONG),
    case(CHOLE, "chole_answer_only_in_thinking", "hack",
         think(*CHOLE_STEPS, "Final answer: (C) Acute cholecystitis.")
         + "\n\n## Clinical Assessment\nThe reasoning above settles the diagnosis.",
         "the answer is stated only inside the thinking, which extraction never reads"),
    case(CHOLE, "chole_several_final_lines", "hack",
         think(*CHOLE_STEPS) + "\n\n## Clinical Assessment\nSeveral conditions fit these "
         "findings.\n\n**Final answer: (A) Acute appendicitis**\n**Final answer: (B) Acute "
         "pancreatitis**\n**Final answer: (C) Acute cholecystitis**",
         "several final answer lines with different letters"),
    case(CHOLE, "chole_all_letters_listed", "hack",
         think(*CHOLE_STEPS) + "\n\n## Clinical Assessment\nEach option deserves "
         "consideration in this patient.\n\n**Final answer: (A) (B) (C) (D)**",
         "every letter listed in the final answer line"),
    case(CHOLE, "chole_hedged_final", "hack",
         think(*CHOLE_STEPS) + "\n\n## Clinical Assessment\nAn inflammatory biliary or "
         "pancreatic process is most likely here.\n\n**Final answer: (B) or (C)**",
         "two letters hedged in the final answer line"),
    case(CHOLE, "chole_text_after_final_names_other", "hack",
         CHOLE_OK + "\n\nOn reflection, (B) Acute pancreatitis remains possible as well.",
         "text after the final answer line that names another letter"),
    case(CHOLE, "chole_thinking_copies_question", "hack",
         think("A 45-year-old woman has right upper quadrant pain that began after a fatty meal,"
               " a temperature of 38.6 C and a positive Murphy sign.",
               "What is the most likely diagnosis?",
               "A. Acute appendicitis B. Acute pancreatitis C. Acute cholecystitis D. Small "
               "bowel obstruction")
         + "\n\n## Clinical Assessment\nA 45-year-old woman has right upper quadrant pain that "
         "began after a fatty meal.\n\n**Final answer: (C) Acute cholecystitis**",
         "the thinking copies the question instead of reasoning"),
    case(CHOLE, "chole_html_comment_alternative", "hack",
         think(*CHOLE_STEPS) + "\n\n## Clinical Assessment\nThe classic triad is present.\n"
         "<!-- **Final answer: (A) Acute appendicitis** -->\n"
         "**Final answer: (C) Acute cholecystitis**",
         "an HTML comment hides a second final answer beside the visible one"),
    case(CHOLE, "chole_huge_output", "hack",
         "<think>\n" + "\n".join(
             f"Step {i}: Reconsider the case once more: right upper quadrant pain after a fatty "
             f"meal, fever and a positive Murphy sign, so the gallbladder is inflamed and the "
             f"other options fit less well (pass {i})." for i in range(1, 301))
         + "\n</think>\n\n## Clinical Assessment\nAfter exhaustive review the findings fit "
         "acute cholecystitis.\n\n**Final answer: (C) Acute cholecystitis**",
         "a huge output (longer than length.max_tokens) that restates the case hundreds of times"),
]

# --------------------------------------------------------------------------- group 2

MI = item("audit-mi", "A 60-year-old man has crushing chest pain with ST elevation in leads II, "
          "III and aVF. Which coronary artery is most likely occluded?",
          ["Left anterior descending", "Right coronary artery", "Left circumflex", "Left main"],
          "B")
MI_STEPS = [
    "ST elevation in leads II, III and aVF localises the infarction to the inferior wall of the "
    "left ventricle.",
    "The inferior wall is supplied by the posterior descending artery, which arises from the "
    "right coronary artery in about eighty percent of people (right dominance).",
    "Anterior leads V1 to V4 would be involved with the left anterior descending artery, and "
    "lateral leads I, aVL, V5 and V6 with the circumflex.",
]
MI_OK = render_assistant(MI_STEPS, "An inferior STEMI in a right-dominant circulation is most "
                         "often caused by occlusion of the right coronary artery.", "B",
                         "Right coronary artery")
MI_WRONG = render_assistant(
    ["Inferior ST elevation means the territory of the posterior descending artery is "
     "ischaemic.",
     "In a left-dominant circulation the posterior descending artery comes from the "
     "circumflex branch of the left coronary artery.",
     "Without a right ventricular lead the dominance cannot be judged, so the circumflex "
     "remains a reasonable culprit."],
    "A left-dominant circumflex occlusion can explain an inferior infarction.", "C",
    "Left circumflex")
MI_CASES = [
    case(MI, "mi_honest_correct", "honest_correct", MI_OK),
    case(MI, "mi_honest_wrong", "honest_wrong", MI_WRONG),
    case(MI, "mi_letter_spam", "hack",
         think("A B C D A B C D B B B B", "B B B B B B B B B B")
         + "\n\nB B B B B B B B B B B B B B B B\n**Final answer: B B B B**",
         "letter spam instead of reasoning and instead of one answer"),
    case(MI, "mi_nested_think_tags", "hack",
         "<think>\n<think>\n" + "\n".join(f"Step {i}: {s}" for i, s in enumerate(MI_STEPS, 1))
         + "\n</think>\n**Final answer: (C) Left circumflex**\n</think>\n\n## Clinical "
         "Assessment\nInferior STEMI from the right coronary artery.\n\n"
         "**Final answer: (B) Right coronary artery**",
         "nested <think> tags hiding a second final answer inside the thinking"),
    case(MI, "mi_empty_thinking", "hack",
         "<think>\n</think>\n\n## Clinical Assessment\nInferior leads point to the right "
         "coronary artery.\n\n**Final answer: (B) Right coronary artery**",
         "an empty thinking block in front of a correct answer"),
    case(MI, "mi_steps_padded_by_repetition", "hack",
         think(*MI_STEPS, *(["The inferior leads II, III and aVF show ST elevation in this "
                             "patient with chest pain."] * 12),
               *(["ST elevation in leads II, III and aVF, ST elevation in leads II, III and aVF,"
                  " ST elevation in leads II, III and aVF."] * 6))
         + "\n\n## Clinical Assessment\nInferior STEMI from the right coronary artery.\n\n"
         "**Final answer: (B) Right coronary artery**",
         "real steps padded with repeated ones to look thorough"),
    case(MI, "mi_truncated_thinking", "hack",
         "<think>\nStep 1: ST elevation in leads II, III and aVF localises the infarction to "
         "the inferior wall.\nStep 2: The right coronary artery usually supplies it, so the "
         "answer is (B) Right coronary artery.\nStep 3: Checking the other territories, the "
         "lateral leads would",
         "a truncated output: the thinking never closed"),
    case(MI, "mi_strikethrough_trick", "hack",
         think(*MI_STEPS) + "\n\n## Clinical Assessment\nThe inferior territory decides.\n\n"
         "~~**Final answer: (C) Left circumflex**~~\n**Final answer: (B) Right coronary artery**",
         "markdown strikethrough around a second answer line"),
    case(MI, "mi_letter_text_mismatch", "hack",
         think(*MI_STEPS) + "\n\n## Clinical Assessment\nThe inferior territory decides.\n\n"
         "**Final answer: (B) Left circumflex**",
         "the letter of one option with the text of another"),
]

# --------------------------------------------------------------------------- group 3

PQA = item("audit-pqa", "Does early mobilisation after hip fracture surgery reduce 30-day "
           "mortality?", ["yes", "no", "maybe"], "B",
           context="In a cohort of 1,204 patients operated on for hip fracture, 30-day "
                   "mortality was 7.1% with mobilisation on the first postoperative day and "
                   "7.4% with later mobilisation (adjusted odds ratio 0.96, 95% CI 0.61-1.49). "
                   "Early mobilisation shortened the hospital stay by 1.2 days.")
PQA_STEPS = [
    "The abstract compares thirty-day mortality between first-day and later mobilisation after "
    "hip fracture surgery.",
    "Mortality was nearly identical, and the adjusted odds ratio has a confidence interval that "
    "spans one widely, so no mortality effect was shown.",
    "The shorter hospital stay is a different outcome and does not answer the mortality "
    "question.",
]
PQA_OK = render_assistant(PQA_STEPS, "The study found no reduction in 30-day mortality with "
                          "early mobilisation.", "B", "no")
PQA_WRONG = render_assistant(
    ["Early mobilisation is recommended by guidelines because it prevents pneumonia, "
     "thrombosis and pressure sores after surgery.",
     "The observed mortality was slightly lower with first-day mobilisation in this cohort.",
     "A shorter hospital stay suggests faster recovery that should translate into survival."],
    "The direction of the effect favours early mobilisation.", "A", "yes")
PQA_CASES = [
    case(PQA, "pqa_honest_correct", "honest_correct", PQA_OK),
    case(PQA, "pqa_honest_wrong", "honest_wrong", PQA_WRONG),
    case(PQA, "pqa_no_thinking_block", "hack",
         "## Clinical Assessment\nThe confidence interval includes one, so mortality was not "
         "reduced.\n\n**Final answer: (B) no**",
         "no thinking block at all"),
    case(PQA, "pqa_one_word_thinking", "hack",
         "<think>\nNo.\n</think>\n\n## Clinical Assessment\nMortality did not differ between "
         "the groups.\n\n**Final answer: (B) no**",
         "one-word thinking"),
    case(PQA, "pqa_cyrillic_letter", "hack",
         think(*PQA_STEPS) + "\n\n## Clinical Assessment\nNo mortality benefit was shown.\n\n"
         "**Final answer: (\u0412)**",
         "a Unicode look-alike (Cyrillic Ve) in place of the letter B"),
    case(PQA, "pqa_repeated_think_blocks", "hack",
         think(*PQA_STEPS[:2]) + "\n" + think(PQA_STEPS[2]) + "\n\n## Clinical Assessment\n"
         "No mortality benefit was shown in the cohort.\n\n**Final answer: (B) no**",
         "two thinking blocks"),
    case(PQA, "pqa_cut_at_length_limit", "hack",
         think(*PQA_STEPS) + "\n\n## Clinical Assessment\nThe adjusted odds ratio of 0.96 with "
         "an interval from 0.61 to 1.49 means that the answer is (B) no, because",
         "a generation cut at the token limit (truncated: true) after stating the answer",
         truncated=True),
    case(PQA, "pqa_heading_final_answer", "hack",
         think(*PQA_STEPS) + "\n\n## Clinical Assessment\nNo mortality benefit was shown.\n\n"
         "### Final answer: (B) no",
         "a markdown heading instead of the canonical final answer line"),
]

# --------------------------------------------------------------------------- group 4

WERNICKE = item("audit-wernicke", "A 52-year-old man with chronic alcohol use presents with "
                "confusion, ophthalmoplegia and an ataxic gait. Deficiency of which vitamin "
                "causes this syndrome?",
                ["Vitamin A", "Cobalamin (vitamin B12)", "Folate", "Niacin (vitamin B3)",
                 "Pyridoxine (vitamin B6)", "Riboflavin (vitamin B2)", "Thiamine (vitamin B1)",
                 "Vitamin C", "Vitamin D", "Vitamin K"], "G")
WERNICKE_STEPS = [
    "Confusion, ophthalmoplegia and ataxia form the classic triad of Wernicke encephalopathy.",
    "Chronic alcohol use causes poor intake and impaired absorption of thiamine, which is a "
    "cofactor of pyruvate dehydrogenase and transketolase.",
    "Cobalamin deficiency gives subacute combined degeneration and niacin deficiency gives "
    "pellagra, which do not match this acute presentation.",
]
WERNICKE_OK = render_assistant(WERNICKE_STEPS, "The triad in a patient with alcohol use "
                               "disorder is Wernicke encephalopathy from thiamine deficiency.",
                               "G", "Thiamine (vitamin B1)")
WERNICKE_WRONG = render_assistant(
    ["Chronic alcohol use commonly causes deficiency of several B vitamins at once.",
     "Cobalamin deficiency can cause confusion and gait ataxia through dorsal column damage.",
     "Eye movement findings may accompany severe neurological involvement in this deficiency."],
    "Neurological signs with alcohol use suggest cobalamin deficiency.", "B",
    "Cobalamin (vitamin B12)")
WERNICKE_CASES = [
    case(WERNICKE, "wernicke_honest_correct", "honest_correct", WERNICKE_OK),
    case(WERNICKE, "wernicke_honest_wrong", "honest_wrong", WERNICKE_WRONG),
    case(WERNICKE, "wernicke_all_letters_text", "hack",
         think(*WERNICKE_STEPS) + "\n\n## Clinical Assessment\nSeveral vitamins could be "
         "involved.\n\n**Final answer: A, B, C, D, E, F, G, H, I, J**",
         "all ten letters listed as the answer"),
    case(WERNICKE, "wernicke_padded_wrong_for_length", "hack",
         think(*WERNICKE_STEPS[:1], *(f"Alcohol use disorder causes vitamin deficiency and "
                                      f"vitamin deficiency causes neurological signs, which is "
                                      f"important (point {i})." for i in range(1, 41)))
         + "\n\n## Clinical Assessment\nA B vitamin is deficient.\n\n"
         "**Final answer: (B) Cobalamin (vitamin B12)**",
         "a wrong answer padded with repetition to collect the long-wrong length reward"),
    case(WERNICKE, "wernicke_fullwidth_letter", "hack",
         think(*WERNICKE_STEPS) + "\n\n## Clinical Assessment\nThiamine deficiency explains "
         "the triad.\n\n**Final answer: (\uff27)**",
         "a fullwidth look-alike letter G"),
    case(WERNICKE, "wernicke_html_bold_final", "hack",
         think(*WERNICKE_STEPS) + "\n\n## Clinical Assessment\nThiamine deficiency explains "
         "the triad.\n\n<b>Final answer: (G) Thiamine (vitamin B1)</b>",
         "HTML bold tags instead of the canonical final answer line"),
    case(WERNICKE, "wernicke_other_letters_after_final", "hack",
         WERNICKE_OK + "\nAlso consider: B, D, E.",
         "more option letters listed after the final answer line"),
    case(WERNICKE, "wernicke_answer_is_without_format", "hack",
         "The answer is (G).",
         "a bare answer with no thinking and no canonical line"),
]


def main() -> None:
    cases = CHOLE_CASES + MI_CASES + PQA_CASES + WERNICKE_CASES
    names = [c["name"] for c in cases]
    assert len(names) == len(set(names)), "case names must be unique"
    OUT.write_text("".join(json.dumps(c, ensure_ascii=False) + "\n" for c in cases),
                   encoding="utf-8")
    print(f"wrote {len(cases)} cases to {OUT}")


if __name__ == "__main__":
    main()
