"""Write gazal's built-in advantage groups, src/gazal/rewards/audit_groups.jsonl.

Each line is one GRPO prompt group: ``name``, ``prompt``, ``answer``, ``options`` and the
group's ``completions`` (strings). ``gazal rewards audit --groups`` scores them and computes
their advantages as the trainer would; bench/advantage_candidates.py compares advantage
designs on them. The JSONL is what ships; this script is how it was written:

    PYTHONPATH=src python tools/build_advantage_groups.py

Groups (issue 15's cases):

- all wrong and well formed, differing only in the number of steps (1 to 8), or only in
  how long each step is (about 150 to 2,500 tokens at 4 characters per token);
- all correct, differing in steps (the rules do not bound it; reported);
- mixed groups (2, 4 and 7 correct of 8) of varied steps;
- malformed beside well-formed answers with the same correctness (no assessment section,
  text after the final line, no thinking block).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from gazal.benchmarks import Item
from gazal.formatting import render_assistant, render_question

OUT = Path(__file__).resolve().parents[1] / "src" / "gazal" / "rewards" / "audit_groups.jsonl"

CHOLE = Item(id="groups-chole", benchmark="audit", question=(
    "A 45-year-old woman has right upper quadrant pain that began after a fatty meal, a "
    "temperature of 38.6 C and a positive Murphy sign. What is the most likely diagnosis?"),
    options={"A": "Acute appendicitis", "B": "Acute pancreatitis", "C": "Acute cholecystitis",
             "D": "Small bowel obstruction"}, answer="C")
CHOLE_RIGHT = [
    "Pain in the right upper quadrant after a fatty meal points to the gallbladder, because "
    "cholecystokinin makes it contract against an obstructed cystic duct.",
    "Fever together with a positive Murphy sign means inflammation of the gallbladder wall, not "
    "uncomplicated biliary colic.",
    "Appendicitis usually starts periumbilically and settles in the right lower quadrant.",
    "Pancreatitis gives epigastric pain radiating to the back with a raised lipase.",
    "Small bowel obstruction would bring colicky diffuse pain, vomiting and distension.",
    "Ultrasound showing a thickened wall with pericholecystic fluid would confirm the diagnosis.",
    "Leukocytosis and a mildly raised bilirubin are common in acute cholecystitis.",
    "Early laparoscopic cholecystectomy within a few days is the usual management.",
]
CHOLE_WRONG = [
    "Severe upper abdominal pain after a fatty meal can follow gallstone migration into the "
    "common bile duct and obstruction of the pancreatic duct.",
    "Fever and abdominal tenderness are frequent in acute pancreatitis because of the "
    "systemic inflammatory response.",
    "Gallstone pancreatitis often begins with right-sided pain before it spreads across the "
    "epigastrium, so the location does not exclude it.",
    "A positive Murphy sign can be elicited in any inflamed upper abdominal organ nearby.",
    "Alcohol history is not given, which leaves gallstones as the likely trigger of pancreatitis.",
    "Serum lipase above three times normal would establish acute pancreatitis in this woman.",
    "Hypocalcaemia and hyperglycaemia would suggest a more severe pancreatic course.",
    "Supportive care with fluids and analgesia is the first step for pancreatitis.",
]
CHOLE_OK_ASSESS = ("Post-prandial right upper quadrant pain with fever and a positive Murphy "
                   "sign is the classic picture of acute cholecystitis.")
CHOLE_WRONG_ASSESS = "Gallstone pancreatitis best explains the meal-triggered pain and the fever."

MI = Item(id="groups-mi", benchmark="audit", question=(
    "A 60-year-old man has crushing chest pain with ST elevation in leads II, III and aVF. "
    "Which coronary artery is most likely occluded?"),
    options={"A": "Left anterior descending", "B": "Right coronary artery",
             "C": "Left circumflex", "D": "Left main"}, answer="B")
MI_RIGHT = [
    "ST elevation in leads II, III and aVF localises the infarction to the inferior wall.",
    "The inferior wall is supplied by the posterior descending artery, which arises from the "
    "right coronary artery in about eighty percent of people.",
    "Anterior leads V1 to V4 would be involved with the left anterior descending artery.",
    "Lateral leads I, aVL, V5 and V6 would point to the circumflex artery instead.",
    "Right ventricular involvement, seen in lead V4R, also favours the right coronary artery.",
    "Bradycardia and heart block are common because the right coronary supplies the nodes.",
]
MI_WRONG = [
    "Inferior ST elevation means the territory of the posterior descending artery is "
    "ischaemic.",
    "In a left-dominant circulation the posterior descending artery comes from the "
    "circumflex branch of the left coronary artery.",
    "Without a right ventricular lead the dominance cannot be judged at all here.",
    "So the circumflex remains a reasonable culprit for this inferior infarction.",
    "Lateral extension of the injury would further support a circumflex occlusion.",
    "Posterior leads V7 to V9 could show the extent of the circumflex territory.",
]
MI_OK_ASSESS = ("An inferior STEMI in a right-dominant circulation is most often caused by "
                "occlusion of the right coronary artery.")
MI_WRONG_ASSESS = "A left-dominant circumflex occlusion can explain an inferior infarction."

# words for varied (not repeated) elaboration of a step, so a long step is long without
# tripping the repetition penalty or the degeneracy gate
_VOCAB = ("patient presents acute chronic pain fever tachycardia hypotension jaundice oedema "
         "renal hepatic cardiac pulmonary inflammatory ischaemic metabolic suggests indicates "
         "excludes supports argues against because therefore however although likely unlikely "
         "consistent finding examination history laboratory imaging ultrasound radiograph "
         "tomography culture serology troponin lactate creatinine sodium potassium bilirubin "
         "lipase amylase haemoglobin platelets leukocytosis management treatment dose "
         "antibiotic surgery resuscitation fluids monitoring referral prognosis complication "
         "mechanism pathophysiology receptor enzyme obstruction perforation infarction "
         "duct wall serum clinical differential course onset severity gradient pattern")
VOCAB = _VOCAB.split()


def elaborate(step: str, words: int, rng: random.Random) -> str:
    """``step`` followed by ``words`` words of varied clinical vocabulary."""
    if words <= 0:
        return step
    extra = " ".join(rng.choice(VOCAB) for _ in range(words))
    return f"{step} In more detail, {extra}."


def answer(it: Item, steps: list[str], assess: str, letter: str) -> str:
    return render_assistant(steps, assess, letter, it.options[letter])


def group(it: Item, name: str, completions: list[str], note: str) -> dict[str, object]:
    return {"name": name, "prompt": render_question(it), "answer": it.answer,
            "options": it.options, "completions": completions, "note": note}


def build() -> list[dict[str, object]]:
    rng = random.Random(0)
    c_ok = lambda k: answer(CHOLE, CHOLE_RIGHT[:k], CHOLE_OK_ASSESS, "C")  # noqa: E731
    c_no = lambda k: answer(CHOLE, CHOLE_WRONG[:k], CHOLE_WRONG_ASSESS, "B")  # noqa: E731
    m_ok = lambda k: answer(MI, MI_RIGHT[:k], MI_OK_ASSESS, "B")  # noqa: E731
    m_no = lambda k: answer(MI, MI_WRONG[:k], MI_WRONG_ASSESS, "C")  # noqa: E731
    long_wrong = []
    for words in (0, 30, 60, 100, 150, 200, 260, 320):  # per step: ~150 to ~2,500 tokens
        steps = [elaborate(s, words, rng) for s in CHOLE_WRONG[:4]]
        long_wrong.append(answer(CHOLE, steps, CHOLE_WRONG_ASSESS, "B"))
    no_assessment = lambda it, steps, letter: render_assistant(  # noqa: E731
        steps, "", letter, it.options[letter])
    return [
        group(CHOLE, "all_wrong_steps", [c_no(k) for k in range(1, 9)],
              "8 well-formed wrong answers with 1 to 8 steps: only shaping differs"),
        group(CHOLE, "all_wrong_length", long_wrong,
              "8 well-formed wrong answers of 4 steps, ~150 to ~2,500 tokens long"),
        group(MI, "all_wrong_steps_mi", [m_no(k) for k in (1, 2, 3, 4, 5, 6, 6, 6)],
              "another question: well-formed wrong answers with 1 to 6 steps"),
        group(CHOLE, "all_correct_steps", [c_ok(k) for k in range(1, 9)],
              "8 well-formed correct answers with 1 to 8 steps (not bounded by the rules)"),
        group(CHOLE, "mixed_2_of_8", [c_ok(2), c_ok(7), c_no(1), c_no(3), c_no(4), c_no(6),
                                      c_no(8), c_no(8)],
              "2 correct of 8, steps varied"),
        group(MI, "mixed_4_of_8", [m_ok(1), m_ok(3), m_ok(5), m_ok(6), m_no(1), m_no(2),
                                   m_no(4), m_no(6)],
              "4 correct of 8, steps varied"),
        group(CHOLE, "mixed_7_of_8", [c_ok(k) for k in range(1, 8)] + [c_no(8)],
              "7 correct of 8: the one wrong answer has the most steps"),
        group(CHOLE, "malformed_wrong", [
            c_no(3), c_no(4), c_no(5),
            no_assessment(CHOLE, CHOLE_WRONG[:4], "B"),
            c_no(4) + "\n\nI hope this helps.",
            c_no(4).split("</think>", 1)[1].strip()],
              "wrong answers: well formed, without the assessment, with text after the "
              "final line, without a thinking block"),
        group(MI, "malformed_correct", [
            m_ok(3), m_ok(4), no_assessment(MI, MI_RIGHT[:4], "B"),
            m_ok(4) + "\n\nI hope this helps.", no_assessment(MI, MI_RIGHT[:6], "B"),
            m_no(3), m_no(4), m_no(5)],
              "correct answers well formed and malformed (no assessment, text after the "
              "final line), beside wrong ones"),
    ]


def main() -> None:
    rows = build()
    with OUT.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} groups to {OUT}")


if __name__ == "__main__":
    main()
