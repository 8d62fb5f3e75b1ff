"""The toy clinical knowledge task of the CPU demo.

A small table of conditions, each with three characteristic findings, a first-line
treatment and a prognosis, gives multiple-choice questions in the four Gazal-R1 categories:

- diagnostic reasoning: findings -> condition
- treatment planning: condition -> first-line treatment
- decision-making under uncertainty: findings -> first-line treatment (two hops: the
  diagnosis is never named in the question)
- prognostic assessment: condition -> prognosis

Every category has several question phrasings. Training uses some of them; the held-out
split uses phrasings never seen in training, so held-out accuracy measures whether the model
applies what it knows, not whether it memorised prompts. Reasoning traces are in gazal's
format and state the final answer as the option text (very small models do not learn to map
an answer to its letter in CPU-minutes; extraction's option-text rule reads it).

Pre-training text is short paragraphs, one condition each, facts in random order.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gazal.benchmarks.item import LETTERS, Item, assign_ids
from gazal.formatting import SYSTEM_PROMPT, render_assistant, render_question

CATEGORIES = ("diagnostic_reasoning", "treatment_planning", "decision_under_uncertainty",
              "prognostic_assessment")


@dataclass(frozen=True)
class Condition:
    name: str
    findings: tuple[str, str, str]
    treatment: str
    prognosis: str


CONDITIONS: tuple[Condition, ...] = (
    Condition("acute cholecystitis", ("right upper quadrant pain", "a positive Murphy sign",
              "gallbladder wall thickening"), "laparoscopic cholecystectomy",
              "excellent after early surgery"),
    Condition("acute appendicitis", ("pain migrating to the right lower quadrant",
              "rebound tenderness at McBurney point", "anorexia"), "appendectomy",
              "excellent if treated before perforation"),
    Condition("community acquired pneumonia", ("a productive cough",
              "lobar consolidation on chest radiograph", "crackles on auscultation"),
              "oral amoxicillin", "full recovery within three weeks"),
    Condition("diabetic ketoacidosis", ("fruity breath", "a high anion gap acidosis",
              "ketones in the urine"), "intravenous fluids and insulin",
              "good when treated promptly"),
    Condition("croup", ("a barking cough", "inspiratory stridor", "a steeple sign"),
              "oral dexamethasone", "self limited within a few days"),
    Condition("migraine", ("a unilateral throbbing headache", "photophobia",
              "a visual aura"), "sumatriptan", "recurrent attacks over many years"),
    Condition("hypothyroidism", ("cold intolerance", "weight gain", "a raised TSH"),
              "levothyroxine", "normal life expectancy with lifelong therapy"),
    Condition("graves disease", ("heat intolerance", "exophthalmos", "a diffuse goiter"),
              "methimazole", "remission in about half of patients"),
    Condition("iron deficiency anemia", ("koilonychia", "a low ferritin",
              "microcytic red cells"), "oral iron", "full recovery once the cause is treated"),
    Condition("gout", ("a swollen first toe", "tophi",
              "negatively birefringent crystals"), "colchicine",
              "recurrent flares without urate lowering"),
    Condition("pulmonary embolism", ("sudden dyspnea", "pleuritic chest pain",
              "a raised D dimer"), "anticoagulation with heparin",
              "low mortality with anticoagulation"),
    Condition("asthma", ("expiratory wheeze", "nocturnal cough",
              "reversible airflow obstruction"), "inhaled salbutamol",
              "well controlled with inhalers"),
    Condition("cystitis", ("dysuria", "urinary frequency", "positive urine nitrites"),
              "nitrofurantoin", "resolution within days"),
    Condition("bacterial meningitis", ("neck stiffness", "a petechial rash",
              "a positive Kernig sign"), "intravenous ceftriaxone",
              "risk of lasting neurological damage"),
    Condition("myocardial infarction", ("crushing chest pain", "ST elevation",
              "a raised troponin"), "primary coronary intervention",
              "depends on the time to reperfusion"),
    Condition("parkinson disease", ("a resting tremor", "bradykinesia",
              "cogwheel rigidity"), "levodopa", "slow progression over decades"),
    Condition("peptic ulcer disease", ("epigastric pain relieved by food", "melena",
              "a positive urea breath test"), "eradication therapy",
              "cure after eradication"),
    Condition("deep vein thrombosis", ("unilateral leg swelling", "calf tenderness",
              "a noncompressible vein on ultrasound"), "apixaban",
              "post thrombotic syndrome in some patients"),
    Condition("anaphylaxis", ("urticaria", "hypotension after a bee sting",
              "angioedema"), "intramuscular epinephrine", "rapid recovery with epinephrine"),
    Condition("renal colic", ("colicky flank pain radiating to the groin", "hematuria",
              "a ureteric stone on CT"), "analgesia and tamsulosin",
              "spontaneous passage of small stones"),
)

# Open stems ask nothing by themselves: only the options say whether the question wants a
# diagnosis or a treatment (findings stems), a treatment or a prognosis (condition stems), as
# in exam questions that end "Which of the following is most appropriate?". Two categories
# share each of them, so a model can only answer them by reading the options.
_OPEN_STEMS: dict[str, tuple[str, ...]] = {
    "findings": ("A patient presents with {f}. Which of the following is most appropriate?",
                 "Consider {f}. Pick the best option."),
    "condition": ("A patient has {c}. Which of the following is most appropriate?",
                  "Consider {c}. Pick the best option."),
}
# Held-out open stems: worded unlike any training stem.
_OPEN_STEMS_HELDOUT: dict[str, tuple[str, ...]] = {
    "findings": ("Based on {f}, choose the correct answer.",
                 "On examination there is {f}. Which answer fits best?"),
    "condition": ("Based on {c}, choose the correct answer.",
                  "A case of {c} is reviewed. Which answer fits best?"),
}

# {f} = findings list, {c} = condition name
TEMPLATES: dict[str, dict[str, tuple[str, ...]]] = {
    "diagnostic_reasoning": {
        "train": (
            "A patient presents with {f}. What is the most likely diagnosis?",
            "Examination shows {f}. Which condition is most likely?",
            "A patient has {f}. What is the diagnosis?",
            "Which diagnosis best explains {f}?",
            "A patient reports {f}. Which illness is this?",
            "Findings include {f}. Identify the disorder.",
            *_OPEN_STEMS["findings"],
        ),
        "heldout": (
            "The clinical picture includes {f}. Name the underlying condition.",
            "Given {f}, which disease does this patient have?",
            *_OPEN_STEMS_HELDOUT["findings"],
        ),
    },
    "treatment_planning": {
        "train": (
            "A patient is diagnosed with {c}. What is the first line treatment?",
            "What is the first line treatment for {c}?",
            "How should {c} be treated first?",
            "Which therapy is first line in {c}?",
            "A patient with {c} needs care. What should be given?",
            "Select the initial management of {c}.",
            *_OPEN_STEMS["condition"],
        ),
        "heldout": (
            "A new case of {c} is confirmed. Which treatment should be started?",
            "For a patient with {c}, what is the initial therapy of choice?",
            *_OPEN_STEMS_HELDOUT["condition"],
        ),
    },
    "decision_under_uncertainty": {
        "train": (
            "A patient presents with {f}. What is the first line treatment?",
            "A patient has {f}. Which treatment should be given first?",
            "Examination shows {f}. What is the best initial therapy?",
            "Which treatment is first line for a patient with {f}?",
            "A patient reports {f}. How should this be managed first?",
            "Findings include {f}. Select the initial management.",
            *_OPEN_STEMS["findings"],
        ),
        "heldout": (
            "The clinical picture includes {f}. Choose the initial therapy.",
            "Given {f}, which treatment should this patient receive first?",
            *_OPEN_STEMS_HELDOUT["findings"],
        ),
    },
    "prognostic_assessment": {
        "train": (
            "A patient is diagnosed with {c}. What is the expected prognosis?",
            "What is the prognosis of {c}?",
            "What outcome is expected in {c}?",
            "Which prognosis fits {c}?",
            "A patient with {c} asks about the future. What is the outlook?",
            "Describe the expected course of {c}.",
            *_OPEN_STEMS["condition"],
        ),
        "heldout": (
            "A new case of {c} is confirmed. What course should the patient expect?",
            "For a patient with {c}, what is the likely outcome?",
            *_OPEN_STEMS_HELDOUT["condition"],
        ),
    },
}


def _join(parts: Sequence[str]) -> str:
    return ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0]


def _answer_field(category: str) -> str:
    return {"diagnostic_reasoning": "name", "treatment_planning": "treatment",
            "decision_under_uncertainty": "treatment",
            "prognostic_assessment": "prognosis"}[category]


@dataclass(frozen=True)
class ToyQuestion:
    """One question with the facts needed to write its reasoning trace."""

    item: Item
    category: str
    condition: Condition
    findings: tuple[str, ...]
    template: int
    split: str


def reasoning_trace(q: ToyQuestion) -> str:
    """The assistant turn in gazal's format, final answer as the option text."""
    c, f = q.condition, _join(list(q.findings))
    answer = q.item.answer_text
    if q.category == "diagnostic_reasoning":
        steps = [f"The findings are {f}.", f"These findings are typical of {c.name}."]
        assessment = f"The presentation fits {c.name}."
    elif q.category == "treatment_planning":
        steps = [f"The diagnosis is {c.name}.",
                 f"The first line treatment for {c.name} is {c.treatment}."]
        assessment = f"{c.treatment} is first line for {c.name}."
    elif q.category == "decision_under_uncertainty":
        steps = [f"The findings are {f}.", f"These findings are typical of {c.name}.",
                 f"The first line treatment for {c.name} is {c.treatment}."]
        assessment = f"The likely diagnosis is {c.name}, treated first with {c.treatment}."
    else:
        steps = [f"The diagnosis is {c.name}.", f"The prognosis of {c.name} is {c.prognosis}."]
        assessment = f"{c.name} has a prognosis of {c.prognosis}."
    return render_assistant(steps, assessment[0].upper() + assessment[1:], text=answer)


def _question(rng: random.Random, category: str, cond: Condition, template: str,
              others: Sequence[Condition], n_options: int) -> tuple[str, dict[str, str], str,
                                                                     tuple[str, ...]]:
    findings = tuple(rng.sample(cond.findings, len(cond.findings)))
    text = template.format(f=_join(list(findings)), c=cond.name)
    field = _answer_field(category)
    distractors = rng.sample([getattr(o, field) for o in others], n_options - 1)
    choices = [getattr(cond, field), *distractors]
    rng.shuffle(choices)
    options = {LETTERS[i]: choice for i, choice in enumerate(choices)}
    answer = next(k for k, v in options.items() if v == getattr(cond, field))
    return text, options, answer, findings


def build_questions(split: str, *, per_template: int = 1, seed: int = 0, n_options: int = 4,
                    templates: Sequence[int] | None = None,
                    conditions: Sequence[Condition] = CONDITIONS) -> list[ToyQuestion]:
    """Questions of ``split`` (``train`` or ``heldout``) over every condition and category.

    ``templates`` selects which of the split's phrasings to use (all by default);
    ``per_template`` questions per (condition, phrasing) with fresh finding order and options.
    """
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    rng = random.Random(f"{seed}-{split}")
    rows: list[tuple[str, dict[str, str], str, ToyQuestion]] = []
    for category in CATEGORIES:
        phrasings = TEMPLATES[category][split]
        chosen = range(len(phrasings)) if templates is None else templates
        for cond in conditions:
            others = [o for o in conditions if o is not cond]
            for t in chosen:
                for _ in range(per_template):
                    text, options, answer, findings = _question(
                        rng, category, cond, phrasings[t], others, n_options)
                    placeholder = Item("tmp", "toy", text, options, answer)
                    rows.append((text, options, answer, ToyQuestion(
                        placeholder, category, cond, findings, t, split)))
    ids = assign_ids(f"toy_{split}", ((t, o, None) for t, o, _, _ in rows))
    out = []
    for new_id, (text, options, answer, q) in zip(ids, rows, strict=True):
        item = Item(new_id, f"toy_{split}", text, options, answer,
                    meta={"category": q.category, "condition": q.condition.name,
                          "template": q.template})
        out.append(ToyQuestion(item, q.category, q.condition, q.findings, q.template, split))
    return out


def sft_example(q: ToyQuestion, system_prompt: str | None = SYSTEM_PROMPT) -> dict[str, Any]:
    """A gazal SFT example (``id``, ``category``, ``messages``, ``source``)."""
    messages = []
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    messages += [{"role": "user", "content": render_question(q.item)},
                 {"role": "assistant", "content": reasoning_trace(q)}]
    return {"id": q.item.id, "category": q.category, "messages": messages, "source": "toy"}


_FACT_SENTENCES = (
    ("findings", "{c} presents with {f}."),
    ("findings", "Typical findings of {c} are {f}."),
    ("treatment", "The first line treatment for {c} is {t}."),
    ("treatment", "{c} is treated first with {t}."),
    ("prognosis", "The prognosis of {c} is {p}."),
    ("prognosis", "In {c} the expected outcome is {p}."),
)


def pretraining_texts(n: int, *, seed: int = 0,
                      conditions: Sequence[Condition] = CONDITIONS) -> list[str]:
    """``n`` short paragraphs, each about one condition, its facts in random order."""
    rng = random.Random(f"{seed}-pretrain")
    texts = []
    for i in range(n):
        c = conditions[i % len(conditions)]
        facts = []
        for kind in ("findings", "treatment", "prognosis"):
            template = rng.choice([t for k, t in _FACT_SENTENCES if k == kind])
            findings = rng.sample(c.findings, len(c.findings))
            facts.append(template.format(c=c.name, f=_join(findings), t=c.treatment,
                                         p=c.prognosis))
        rng.shuffle(facts)
        texts.append(" ".join(s[0].upper() + s[1:] for s in facts))
    return texts


def sft_coverage(seed: int, fraction: float,
                 conditions: Sequence[Condition] = CONDITIONS) -> dict[str, set[str]]:
    """Per category, the names of the conditions the SFT set covers: ``fraction`` of them,
    drawn with ``seed`` (a different draw per category)."""
    rng = random.Random(f"{seed}-sft-coverage")
    k = max(1, round(fraction * len(conditions)))
    return {cat: {c.name for c in rng.sample(list(conditions), k)} for cat in CATEGORIES}
