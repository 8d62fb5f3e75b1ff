"""Answer extraction: ONE implementation, used by evaluation, ``gazal score`` and the accuracy
reward, so what GRPO rewards is exactly what evaluation scores.

Only the answer section counts: the text after the last ``</think>`` (see
:func:`gazal.formatting.parse_response`); a response whose thinking never closed is
truncated and extracts to nothing. Inside the answer section, closed
``<thinking>...</thinking>`` / ``<reasoning>...</reasoning>`` blocks (prompted-reasoning
styles) and struck-through text (``~~B~~``) are skipped, and when a base model answers and
then writes the next exam question ("\\nQuestion: ..."), the answer before it counts.
Markdown emphasis, headings and blockquotes, LaTeX text wrappers and math delimiters, and
full-width punctuation and letters are presentation and are removed first; look-alike
letters from other scripts (Cyrillic "С", Greek "Α", mathematical bold "𝐂") are not option
letters.

The principle: extract the option the response *commits to*, never guess. Precision over
recall: when the response is ambiguous the result is no answer, with the reason as its rule.

Rules
-----
*Explicit statements* (tier 1), collected from the whole answer section:

``final_answer``   "Final answer: (C)", "**Final Answer:** C", "### Final answer\\nC. text",
                   "My final answer is C", "the final answer is \\boxed{C}",
                   "Final decision: yes"
``answer_tag``     ``<answer>C</answer>``, ``<answer> yes </answer>``
``boxed``          ``\\boxed{C}``, ``\\boxed{\\text{C}}``, ``$\\boxed{(C)}$``
``answer_is``      "The answer is (C).", "Answer: C", "Ans. C", "The correct option is C",
                   "The best answer here is C", "The answer, therefore, is C",
                   "C is the correct answer", "Option C is the best answer",
                   "Acute cholecystitis is the correct answer", "Answer\\n\\nC",
                   ``{"answer": "C"}``, "答案：C"
``choice_verb``    "I would choose B", "I'd go with (B)", "I select option B", "故选C"

*Weaker statements* (tier 2), read only when there is no explicit statement, because in
"all of the following EXCEPT" questions "Option A is correct" judges a statement, not the
answer, and a diagnosis can be named while answering a different question:

``option_correct`` "Option C is correct", "C is correct because...", "(C) is best",
                   "Option C: text - Correct" in a per-option verdict list
``most_likely``    "The most likely diagnosis (in this patient) is acute cholecystitis",
                   "Acute cholecystitis is the most likely diagnosis", "... is most
                   consistent with acute cholecystitis (C)": an option's text or letter

A statement names a letter (optionally followed by its option text), or an option's exact
text (case, spacing and punctuation aside; yes/no/maybe for PubMedQA), or a text followed by
its letter in brackets; an option's text as the subject ("X is the correct answer") must be
exact. Within a tier: statements naming different options are a *conflict*; a statement
naming alternatives ("B or C", "either...", "between A and C", "C (or possibly D)",
"probably C", "likely C", "C, but maybe B", "C, although B is also possible", "if I had to
guess, C") is *hedged*; a letter whose text names a different option is a conflict; a
letter that is no option ("E" of A-D) is ``out_of_range``. "Most likely C" is a commitment
(it is the exam's own wording); "likely" and "probably" are not. A statement that only says
what the answer *could* or *might* be is hedged unless a firm statement exists. A hedged
statement is not cancelled by a firm one. A statement is ignored when it is conditional
("the answer would be A if...", "C is correct only if..."), negated ("the answer is not
A", "I don't think the answer is A"), attributed to someone else or to a first impression
("one might think the answer is A", "initially I thought the answer was A"), about another
option ("another possible answer is A", "the incorrect answer is B"), or is the first item
of a list of options ("Answer:\\nA. ...\\nB. ...").

*Implicit forms* (tier 3), read only without any statement of tier 1 or 2:

``leading_letter`` the section starts with "C", "C.", "(C)", "C!", "C) text", "**C.** text",
                   "Option C", but not when it is the first item of an option-by-option
                   discussion ("A) Appendicitis: unlikely...\\nB) ...") or of the restated
                   options, or judges that option negatively
``final_line``     the last line is just the letter ("...\\n\\n**C**", "Therefore: (C)",
                   "It's C."), or the letter and its option text, and is not the end of a
                   list of options
``option_text``    the section (or its first line) is exactly one option's text; one-word
                   options (yes/no/maybe) also count as the section's first word
                   ("No, the data show..."), unless the same clause names another one

If implicit forms disagree the result is a conflict. Nothing else: no "last letter
mentioned" fallback. The rule that fired is reported (the strongest, in :data:`RULES`
order, when several agree); without an answer the rule is one of :data:`NO_ANSWER`.

Not read, on purpose: answers given only as an option number ("the answer is 3"), answers
in languages other than English and Chinese, per-option "True/False" verdicts, and
elimination without a conclusion ("Not A. Not B. Not D.").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from gazal.benchmarks.item import normalize_option_text
from gazal.formatting import parse_response

__all__ = ["NO_ANSWER", "RULES", "Extraction", "extract_answer", "normalize_option_text"]

RULES = ("final_answer", "answer_tag", "boxed", "answer_is", "choice_verb",
         "option_correct", "most_likely",
         "leading_letter", "final_line", "option_text")
NO_ANSWER = ("none", "conflict", "hedged", "out_of_range", "truncated", "empty")
_TIER = {"final_answer": 1, "answer_tag": 1, "boxed": 1, "answer_is": 1, "choice_verb": 1,
         "option_correct": 2, "most_likely": 2}


@dataclass(frozen=True)
class Extraction:
    """The extracted gold-comparable letter (or None) and the rule that decided it."""

    letter: str | None
    rule: str
    evidence: str = ""

    @property
    def found(self) -> bool:
        return self.letter is not None


# --------------------------------------------------------------------------- cleaning

_FULLWIDTH = {"（": "(", "）": ")", "：": ":", "，": ",", "。": ".", "【": "[", "】": "]",
              "、": ",", "；": ";", "！": "!", "？": "?", "＊": "*", "＃": "#",
              "\u00a0": " ", "\u2009": " ", "\u202f": " ", "\u3000": " ", "\u200b": ""}
# Full-width Latin letters are the same letters typed on a CJK keyboard: ＣｃＡ -> CcA.
_FULLWIDTH.update({chr(0xFF21 + i): chr(0x41 + i) for i in range(26)})
_FULLWIDTH.update({chr(0xFF41 + i): chr(0x61 + i) for i in range(26)})
_FULLWIDTH_TABLE = str.maketrans(_FULLWIDTH)
_LATEX_WRAP = re.compile(r"\\(?:text|textbf|mathrm|mathbf|textit|mbox|emph|mathit|bf|underline)"
                         r"\s*\{([^{}]*)\}")
_LATEX_DELIM = re.compile(r"\\[()\[\]]|\$")
_MARKUP = re.compile(r"\*\*|__|\*|`+|~~|</?(?:b|strong|em|i|u|mark|p|span|br)\s*/?>",
                     re.IGNORECASE)
_HEADING = re.compile(r"^[ \t]*(?:#{1,6}|>+)[ \t]*", re.MULTILINE)
_ASIDE = re.compile(r"<(thinking|reasoning|reflection|scratchpad)>.*?</\1>|~~[^~\n]*~~|"
                    r"<(del|s|strike)>.*?</\2>", re.DOTALL | re.IGNORECASE)
# A base model that goes on to write the next exam question: what follows is not this answer.
_NEXT_QUESTION = re.compile(r"\n[ \t]*(?:#+[ \t]*)?(?:\*\*)?(?:Question|Problem|Human|User)"
                            r"(?:[ \t]+\d+)?(?:\*\*)?[ \t]*:", re.IGNORECASE)


def _clean(text: str) -> str:
    """Remove presentation (markdown emphasis, headings, LaTeX wrappers, full-width forms)
    but not content."""
    if "<" in text or "~" in text:
        text = _ASIDE.sub(" ", text)
    text = text.translate(_FULLWIDTH_TABLE)
    if "\\" in text:
        for _ in range(3):  # nested wrappers: \boxed{\textbf{\text{C}}}
            unwrapped = _LATEX_WRAP.sub(r"\1", text)
            if unwrapped == text:
                break
            text = unwrapped
    if "\\" in text or "$" in text:
        text = _LATEX_DELIM.sub("", text)
    text = _MARKUP.sub("", text)
    return _HEADING.sub("", text)


# --------------------------------------------------------------------------- statements

# The answer of a label ("Answer:") may sit on the next line or the one after. Captures are
# lookaheads so that a statement inside another's capture is still seen on its own
# ("Final Answer: The final answer is C").
_ANS = r"(?=(?P<nl>(?:[ \t]*\n){0,2})[ \t]*(?P<ans>[^\n]*))"
_ANS_INLINE = r"(?=[ \t]*(?P<ans>[^\n]*))"
_GOOD = r"(?:most[ \t]+)?(?:correct|right|best|appropriate|accurate)"
_L = r"[A-Ja-j]"
_I = re.IGNORECASE | re.ASCII  # ASCII: (?i)[a-j] must not match the dotless 'ı'


@dataclass(frozen=True)
class _Trigger:
    """One statement pattern. ``keywords``: the pattern runs only on texts that contain one
    of them (lowercase), which keeps long responses cheap. ``start``: where the match must
    begin, checked on the text before it (Python's regex engine tries a leading lookbehind
    alternation at every position, which is slow): ``line`` at a line start, ``label`` at a
    line or sentence start after an optional "the/my" and adjective, ``sentence`` at a
    sentence start or after "so", "thus", "I think", ... (a bare letter after a word, as in
    "Hepatitis B is the correct answer", names no option)."""

    rule: str
    pattern: re.Pattern[str]
    keywords: tuple[str, ...] = ()
    start: str = ""
    anchored: bool = False  # every match begins with one of the keywords
    subject_before: bool = False  # the answer is the sentence before the match

    def matches(self, text: str, lowered: str) -> list[re.Match[str]]:
        if self.keywords and not any(k in lowered for k in self.keywords):
            return []
        if not self.anchored or len(lowered) != len(text):  # "İ".lower() has two characters
            found = list(self.pattern.finditer(text))
        else:
            # str.find is far faster than letting the regex engine try every position
            positions = set()
            for k in self.keywords:
                i = lowered.find(k)
                while i != -1:
                    positions.add(i)
                    i = lowered.find(k, i + 1)
            found = [m for m in (self.pattern.match(text, i) for i in sorted(positions))
                     if m is not None]
        if self.start:
            check = _STARTS[self.start]
            found = [m for m in found if check.search(text, max(0, m.start() - 40), m.start())]
        return found


_LINE_START = re.compile(r"(?:^|\n)[ \t]*(?:[-•+][ \t]*)?(?:(?:option|choice)[ \t]+)?$", _I)
_LABEL_START = re.compile(
    r"(?:^|[\n.!?])[ \t]*(?:[-•][ \t]*)?(?:(?:the|my|our)[ \t]+)?"
    r"(?:(?:correct|best|right|final|selected|chosen|most[ \t]+likely)[ \t]+)?$", _I)
_SENTENCE_START = re.compile(
    r"(?:^|\n|[.!?:;] |, |— |\b(?:so|thus|hence|therefore|think|believe|say|that) )$", _I)
_STARTS = {"line": _LINE_START, "label": _LABEL_START, "sentence": _SENTENCE_START}
_LEAD_IN = re.compile(r"^(?:(?:so|thus|hence|therefore|overall|clearly|in[ \t]+summary|"
                      r"in[ \t]+conclusion|to[ \t]+summarize)\b[ \t]*,?[ \t]*)+", _I)
_ANSWER_WORDS = ("answer", "option", "choice", "ans", "response")
_GOOD_WORDS = ("correct", "right", "best", "appropriate", "accurate")

_TRIGGERS: list[_Trigger] = [
    # "Final answer: C", "My final answer is (C)", "Final decision: yes", "FINAL ANSWER\n\nC"
    _Trigger("final_answer", re.compile(
        r"\bfinal[ \t]+(?:answer|decision|verdict|choice|selection)(?:[ \t]+field)?"
        r"(?:[ \t]+(?P<modal>is|was|would[ \t]+be|will[ \t]+be|should[ \t]+be))?"
        r"[ \t]*[:\-–—=]?[ \t]*(?:is[ \t]+)?" + _ANS, _I), ("final",), anchored=True),
    _Trigger("answer_tag", re.compile(r"<answer>[ \t]*\n?[ \t]*(?P<ans>[^<\n]*)", _I),
             ("<answer>",), anchored=True),
    _Trigger("boxed", re.compile(r"\\boxed\s*\{(?P<ans>[^{}]*)\}"), ("\\boxed",), anchored=True),
    # "The (correct) answer is C", "the best option here is C", "the answer to this question
    # is C", "the answer could be C" (tentative). An adjective before the noun ("correct",
    # "least likely") is read by _prefix_blocks.
    _Trigger("answer_is", re.compile(
        r"\b(?:(?<!of )answer|ans\.?|(?<!of )option|(?<!of )choice|(?<=correct )response|"
        r"(?<=best )response)"
        r"(?:[ \t]+(?:choice|option))?"
        r"(?:[ \t]+(?:here|in[ \t]+this[ \t]+case|to[ \t]+(?:this|the)[ \t]+question|"
        r"for[ \t]+this[ \t]+(?:question|patient|case)))?"
        r"(?:[ \t]*,[ \t]*(?:therefore|thus|then|hence|clearly|of[ \t]+course|in[ \t]+my[ \t]+"
        r"(?:opinion|view))[ \t]*,)?[ \t]+"
        r"(?P<modal>is|would[ \t]+be|should[ \t]+be|will[ \t]+be|must[ \t]+be|"
        r"could[ \t]+be|might[ \t]+be|may[ \t]+be)\b"
        r"[ \t]*[:\-]?" + _ANS, _I), _ANSWER_WORDS, anchored=True),
    # "Answer: C", "Correct answer - C", "My answer: (C)" at the start of a line or sentence
    _Trigger("answer_is", re.compile(
        r"\b(?:(?:answer|choice|option|conclusion|decision)(?:[ \t]+here)?"
        r"(?:[ \t]*\([^)\n]{0,20}\))?[ \t]*"
        r"(?:[:=]|[-–—](?=[ \t]))|ans(?:[ \t]*[:=]|\.(?![ \t]*is\b)))" + _ANS, _I),
        (*_ANSWER_WORDS, "conclusion", "decision"), "label", anchored=True),
    # A heading on its own line: "Answer\n\nB", "Correct answer\nC"
    _Trigger("answer_is", re.compile(r"\banswer[ \t]*(?=\n)" + _ANS, _I), ("answer",), "label",
             anchored=True),
    # JSON: {"answer": "C"}
    _Trigger("answer_is", re.compile(
        r"[\"'](?:final_?answer|answer|correct_?answer|choice)[\"'][ \t]*:[ \t]*"
        r"[\"'](?P<ans>[^\"'\n]*)[\"']", _I), ("answer\"", "answer'", "choice\"", "choice'")),
    # Chinese: 答案是C, 正确答案：C, 最终答案为 C
    _Trigger("answer_is", re.compile(r"答案(?:应该|應該)?(?:是|为|為|:)" + _ANS_INLINE), ("答案",)),
    # "Option C is the best answer", "choice (C) (text) is the correct option"
    _Trigger("answer_is", re.compile(
        r"\b(?:option|choice|answer)[ \t]+(?P<ans>\(?" + _L + r"\)?)[ \t]*(?:\([^)\n]*\)[ \t]*)?"
        r"(?P<modal>is|would[ \t]+be|seems[ \t]+to[ \t]+be)[ \t]+the[ \t]+(?:(?:" + _GOOD
        + r")[ \t]+(?:answer|option|choice)|answer)\b", _I), _ANSWER_WORDS, anchored=True),
    # "C is the correct answer", "(C) is the answer"
    _Trigger("answer_is", re.compile(
        r"(?P<ans>[(A-J](?:(?<=\()[A-J]\))?)[ \t]+(?P<modal>is|would[ \t]+be|"
        r"(?:appears|seems)[ \t]+to[ \t]+be)[ \t]+the[ \t]+"
        r"(?:(?i:" + _GOOD + r")[ \t]+(?i:answer|option|choice)|(?i:answer))\b"),
        ("answer", "option", "choice"), "sentence"),
    # "(C) Acute cholecystitis is the correct answer", "C. Acute ... is the best option"
    _Trigger("answer_is", re.compile(
        r"\((?P<ans>[A-J])\)[ \t]+[^\n.;()]{1,80}?[ \t]"
        r"is[ \t]+the[ \t]+(?i:" + _GOOD + r")[ \t]+(?i:answer|option|choice)\b"),
        ("answer", "option", "choice")),
    _Trigger("answer_is", re.compile(
        r"(?P<ans>[A-J])[.):][ \t]+[^\n.;()]{1,80}?[ \t]"
        r"is[ \t]+the[ \t]+(?i:" + _GOOD + r")[ \t]+(?i:answer|option|choice)\b"),
        ("answer", "option", "choice"), "line"),
    # "Acute cholecystitis is the correct answer" (an option's exact text as the subject)
    _Trigger("answer_is", re.compile(
        r"\bis[ \t]+the[ \t]+(?:(?:" + _GOOD + r")[ \t]+(?:answer|option|choice)|answer)\b", _I),
        ("is the",), anchored=True, subject_before=True),
    # "I would choose B", "I'd go with (B)", "I select option B", "We choose D"
    _Trigger("choice_verb", re.compile(
        r"\b(?:I|[Ww]e)(?:[ \t]+(?:would|will|must|shall)|'d|'ll|'m[ \t]+going[ \t]+to|"
        r"[ \t]+am[ \t]+going[ \t]+to)?[ \t]+"
        r"(?:choose|select|pick|go[ \t]+with|opt[ \t]+for|settle[ \t]+on|say)"
        r"(?:[ \t]+(?:answer|option|choice))?[ \t]*:?" + _ANS_INLINE, re.ASCII),
        ("choose", "select", "pick", "go with", "opt for", "settle on", "say")),
    _Trigger("choice_verb", re.compile(r"\bI'm[ \t]+going[ \t]+with" + _ANS_INLINE, re.ASCII),
             ("going with",)),
    _Trigger("choice_verb", re.compile(r"(?:故|所以|因此|应|應)选(?:择|擇)?" + _ANS_INLINE),
             ("选",)),
    # Tier 2. "Option C is correct", "Choice (C) seems most appropriate"
    _Trigger("option_correct", re.compile(
        r"\b(?:option|choice|answer)[ \t]+(?P<ans>\(?" + _L + r"\)?)[ \t]*"
        r"(?:\([^)\n]*\)[ \t]*)?(?:is|seems|appears)[ \t]+(?:to[ \t]+be[ \t]+)?(?:the[ \t]+)?"
        r"(?:" + _GOOD + r"|most[ \t]+likely)\b(?![ \t]+(?:answer|option|choice))", _I),
        ("option", "choice", "answer"), anchored=True),
    # "C is correct", "(C) is best"
    _Trigger("option_correct", re.compile(
        r"(?P<ans>[(A-J](?:(?<=\()[A-J]\))?)[ \t]+(?:is|seems|appears)[ \t]+"
        r"(?:to[ \t]+be[ \t]+)?(?:the[ \t]+)?(?i:" + _GOOD + r"|most[ \t]+likely)\b"
        r"(?![ \t]+(?i:answer|option|choice))"), (*_GOOD_WORDS, "most likely"), "sentence"),
    # "The findings are most consistent with acute cholecystitis (C)"
    _Trigger("most_likely", re.compile(
        r"\b(?:most[ \t]+consistent[ \t]+with|best[ \t]+explained[ \t]+by)" + _ANS_INLINE, _I),
        ("most", "best"), anchored=True),
    # "Option C: Acute cholecystitis - Correct" in a per-option verdict list
    _Trigger("option_correct", re.compile(
        r"[(]?(?P<ans>[A-J])\)?[.):][^\n]*?[-–—:(][ \t]*(?i:correct(?:[ \t]+answer)?|✓|✅)"
        r"[ \t)]*[.!]?[ \t]*(?=\n|$)"), ("correct", "✓", "✅"), "line"),
    # "Acute cholecystitis is the most likely diagnosis"
    _Trigger("most_likely", re.compile(
        r"\bis[ \t]+the[ \t]+(?:most[ \t]+(?:likely|probable|appropriate)|best|definitive)[ \t]+"
        r"(?:next[ \t]+(?:best[ \t]+)?)?(?:diagnosis|cause|explanation|etiology|aetiology|"
        r"mechanism|treatment|therapy|management|step|intervention|test|investigation|finding|"
        r"organism|pathogen|agent|drug|medication)\b", _I),
        ("is the",), anchored=True, subject_before=True),
    # "The most likely diagnosis (in this patient) is acute cholecystitis"
    _Trigger("most_likely", re.compile(
        r"\b(?:most[ \t]+(?:likely|probable|appropriate|accurate|common|consistent)|best|"
        r"definitive|correct)[ \t]+(?:next[ \t]+(?:best[ \t]+)?)?"
        r"(?:diagnosis|cause|explanation|etiology|aetiology|mechanism|treatment|therapy|"
        r"management|step|intervention|test|investigation|finding|organism|pathogen|agent|"
        r"drug|medication|location|site|structure|lesion|condition|complication)"
        # only the patient or the case may stand between the noun and "is"
        r"(?:[ \t]+(?:(?:in|for|of)[ \t]+(?:this|the)[ \t]+(?:\w+[ \t]+)?"
        r"(?:patient|case|child|woman|man|infant|boy|girl|scenario|presentation|vignette|"
        r"situation|symptoms|condition|findings)(?:'s[ \t]+\w+)?|"
        r"(?:in|for|of)[ \t]+(?:his|her|their|this[ \t]+patient's|the[ \t]+patient's)"
        r"(?:[ \t]+[\w-]+){1,3}?|here|"
        r"(?:given|considering|based[ \t]+on)[^.\n:]{0,60}?))?"
        r"[ \t]*(?:\b(?P<modal>is|would[ \t]+be)\b|:)" + _ANS_INLINE, _I),
        ("most", "best", "definitive", "correct"), anchored=True),
]

# Sentence text before a statement that takes it back or attributes it to someone else.
_PREFIX_BLOCK = re.compile(
    r"\b(?:do|does|did|would|could|can|should)(?:n'?t|[ \t]+not)[ \t]+"
    r"(?:think|believe|say|mean|agree|be)\b|\bnot[ \t]+(?:sure|certain|convinced)\b|"
    r"\bdoubt|\bunlikely[ \t]+that\b|\b(?:incorrect|wrong|mistaken|false)(?:ly)?[ \t]+"
    r"(?:to|that|think|assume|conclude|say|choose|select|pick)\b|\btempt|"
    r"\b(?:might|may|could)[ \t]+(?:think|assume|say|argue|believe|be[ \t]+tempted)\b|"
    r"\bsome(?:one|[ \t]+people|[ \t]+students)?[ \t]+(?:might|may|would|could)\b|"
    r"\bone[ \t]+(?:might|may|could)\b|\bcommon[ \t]+(?:mistake|error|pitfall|trap|"
    r"misconception)|\bdistractor|\bmisconception|\binitial(?:ly)?\b|\bat[ \t]+first\b|"
    r"\boriginal(?:ly)?\b|\bpreviously\b|\bearlier\b|\bwhether\b|\bsuppose\b|"
    r"\bwas[ \t]+thinking\b|\bif[ \t]+(?:we|you|one)[ \t]+(?:chose|choose|picked|pick)\b",
    _I)
_ADJECTIVES = frozenset((
    "most", "correct", "best", "right", "appropriate", "likely", "accurate", "true", "final",
    "short", "simple", "single",
))
_OPTION_IS = re.compile(r"(?:option|choice)[ \t]+(?:is|would|should|will|must|could|might|may)\b",
                        _I)
_DETERMINERS = frozenset(("the", "this", "my", "our", "your", "which", "that", "its", "a", "an"))
# Words just before "answer"/"option" that make it some other answer.
_PREFIX_LAST_WORD = frozenset((
    "incorrect", "wrong", "other", "another", "alternative", "alternate", "second", "third",
    "least", "possible", "potential", "tempting", "worst", "false", "next", "first", "last",
    "remaining", "each", "every", "previous", "initial", "original", "earlier", "plausible",
    "distractor", "any", "no", "not",
))
# A new clause ("..., but on reflection the answer is C") leaves earlier words behind.
_CLAUSE_BREAK = re.compile(r"\b(?:but|however|though|although|yet|so|thus|therefore|hence|"
                           r"actually|instead)\b|[—:]", _I)
_CONDITIONAL_TAIL = re.compile(r"[ \t]*[,]?[ \t]*(?:only[ \t]+)?(?:if|unless|provided|when|"
                               r"assuming|in[ \t]+case)\b", _I)
_IF = re.compile(r"\b(?:if|unless)\b", _I)
_NEGATION = re.compile(r"^(?:not|never|neither|nor|n't|incorrect|wrong|false|none[ \t]+of[ \t]+"
                       r"(?:these|them|the[ \t]+(?:options|choices|above)))\b", _I)
_HEDGE_WORDS = re.compile(
    r"^(?:either\b|between\b|possibly\b|probably\b|perhaps\b|maybe\b|likely\b|both\b|"
    r"one[ \t]+of\b|any[ \t]+of\b|all[ \t]+of\b|unclear\b|uncertain\b|"
    r"not[ \t]+(?:sure|certain|clear|determinable|possible|able)|cannot\b|can'?t\b|"
    r"undetermin|indeterminate\b|unknown\b|none\b|a[ \t]+toss[- ]?up\b|difficult\b|hard\b|"
    r"ambiguous\b|debatable\b|multiple\b|several\b|(?:could|might|may)[ \t]+be\b)", _I)
_QUALIFIER = re.compile(r"^(?:most[ \t]+likely|definitely|clearly|certainly|indeed|"
                        r"therefore|thus|then|still|simply|obviously)[ \t]*[:,]?[ \t]+", _I)
# Another letter right after the answer: "C or D", "C/D", "C, D", "(C) (D)", "C D"
# ("C I think" is the pronoun).
_ALTERNATIVE = re.compile(r"^[ \t]*(?:(?:,|/|&|\+|(?i:\bor\b|\band(?:/or)?\b|\bvs\b\.?|\bversus\b))"
                          r"(?:[ \t]+(?i:possibly|maybe|perhaps|potentially|also))?[ \t]*"
                          r"(?:(?i:option|choice)[ \t]+)?\(?[A-J]\)?|\([A-J]\)|[B-HJ])"
                          r"(?![A-Za-z])(?![ \t]+(?i:is|are|was|were|would|seems)\b)", re.ASCII)
# Alternatives later in the same clause: "C (or possibly D)", "C, but maybe B".
_HEDGE_TAIL = re.compile(
    r"\b(?i:or|vs\.?|versus)[ \t]+(?i:possibly[ \t]+|maybe[ \t]+|perhaps[ \t]+|potentially[ \t]+)?"
    r"(?:(?i:option|choice)[ \t]+)?(?-i:\(?[A-J]\)?)(?![A-Za-z])"
    r"(?![ \t]+(?:is|are|was|were|would|seems)\b)|"
    r"\b(?:but|though|although)[ \t]+(?:it[ \t]+)?(?:maybe|possibly|perhaps|could[ \t]+be|"
    r"might[ \t]+be|may[ \t]+be)\b|\b(?:or|and)[ \t]+(?:possibly|maybe|perhaps)\b|"
    r"\bnot[ \t]+(?:sure|certain|confident)\b|\bunsure\b|\buncertain\b", _I)
# Words that show the question asks for the exception (tier-2 statements then describe the
# other options).
_REVERSED = re.compile(r"\bleast[ \t]+(?:likely|appropriate|common|accurate|useful)\b|"
                       r"(?i:\bexcept\b|\bexception\b)|\bNOT\b|\bnot[ \t]+(?:true|correct|"
                       r"a[ \t]+(?:feature|cause|finding|characteristic))\b|"
                       r"\bfalse[ \t]+statement", re.ASCII)
# Words anywhere in a statement's sentence that make it uncertain.
_HEDGE_CONTEXT = re.compile(
    r"\bguess|\bnot[ \t]+(?:sure|certain|confident)\b|\bunsure\b|\buncertain\b|"
    r"\b(?:also|equally)[ \t]+(?:possible|plausible|likely|reasonable|valid)\b|"
    r"\bcannot[ \t]+be[ \t]+(?:excluded|ruled[ \t]+out)\b|\bcan'?t[ \t]+rule[ \t]+out\b", _I)
_TAIL_CUT = re.compile(r"\b(?:not|n't|rather|instead|than|over|unlike|excluding|because|since|"
                       r"as|given|due|which|that|where|while|whereas)\b|[;:.]", _I)
_LETTER = re.compile(r"^[ \t]*(?:(?:option|choice|letter|answer)[ \t]+)?(?P<open>[(\[{]?)[ \t]*"
                     r"(?P<letter>[A-Ja-j])(?P<close>[ \t]*[)\]}]|['\"’”](?![A-Za-z]))?"
                     r"(?P<after>.*)$",
                     re.DOTALL | re.IGNORECASE | re.ASCII)
_TEXT_THEN_LETTER = re.compile(r"^(?P<text>.+?)[ \t]*[(\[](?:option[ \t]+)?(?P<letter>[A-J])"
                               r"[)\]][ \t]*[.!]?[ \t]*$", re.DOTALL)
_CONNECTIVE = frozenset((
    "because", "since", "as", "which", "given", "due", "with", "from", "per", "this", "that",
    "here", "and", "or", "is", "was", "for", "in", "on", "based", "according",
))
# An option line of a list: "A. text", "(B) text", "- C) text", "Option D: text".
_MARKER_LINE = re.compile(r"^[ \t]*(?:[-•+][ \t]*|\d+[.)][ \t]*)?(?:(?:option|choice)[ \t]+)?"
                          r"\(?(?P<letter>[A-Ja-j])\)?(?:[.):]|[ \t]+[-–—])(?:[ \t]|$)",
                          re.IGNORECASE | re.ASCII)
_OPTION_WORD_LINE = re.compile(r"^[ \t]*(?:[-•+][ \t]*)?(?:option|choice)[ \t]+\(?"
                               r"(?P<letter>[A-J])\)?\b", re.IGNORECASE | re.ASCII)
_NEGATIVE_JUDGEMENT = re.compile(
    r"\b(?:incorrect|unlikely|wrong|false|not|isn'?t|doesn'?t|less[ \t]+likely|ruled[ \t]+out|"
    r"exclude[ds]?|inconsistent|no)\b", _I)


@dataclass(frozen=True)
class _Statement:
    rule: str
    letter: str | None
    status: str  # "ok", "tentative", "hedged", "conflict", "out_of_range", "none"
    evidence: str


def _option_by_text(text: str, norm_options: Mapping[str, str], *, prefix: bool
                    ) -> str | None:
    """The letter whose option text equals ``text`` (or starts it, if ``prefix``)."""
    t = normalize_option_text(text)
    if not t:
        return None
    exact = [k for k, v in norm_options.items() if v and v == t]
    if len(exact) == 1:
        return exact[0]
    if len(exact) > 1:  # duplicated option texts: ambiguous
        return None
    if prefix:
        hits = [k for k, v in norm_options.items() if v and t.startswith(v + " ")]
        # A one-word option ("no", "yes") is a prefix only when punctuation or a
        # connective follows it: "no, the data..." but not "no longer clear".
        hits = [k for k in hits if " " in norm_options[k] or _word_then_break(text)]
        if hits:
            longest = max(len(norm_options[k]) for k in hits)
            best = [k for k in hits if len(norm_options[k]) == longest]
            return best[0] if len(best) == 1 else None
    return None


def _word_then_break(text: str) -> bool:
    return re.match(r"^\W*[A-Za-z0-9]+(?:\s*[,;:!?()\-–—/]|\s+(?:because|since|as|given|due|"
                    r"based|per|according|or|and|vs|versus)\b)", text, re.ASCII) is not None


def _letter_plausible(raw: str, after: str, bracketed: bool, options: Mapping[str, str]) -> bool:
    """Is this single character an option letter, not the article 'A'/'a', the pronoun 'I'
    or the start of a word such as 'B-cell'?"""
    if bracketed:
        return True
    nxt = after[:1]
    if nxt == "-":  # "B-cell", "T-wave"; "B - text" has a space first
        return False
    if nxt == "" or nxt in ".:,;!?)]}–—*\n/&":
        # "the answer is a." is fine; "a)" is bracketed above.
        return raw.isupper() or nxt in ("", ".", "\n")
    if nxt in " \t":
        rest = after.lstrip(" \t")
        if rest[:1].isdigit():  # "A 45-year-old ...", "B 12"
            return False
        word = re.match(r"([A-Za-z]+)", rest)
        if word is None:
            return raw.isupper()
        if not raw.isupper():
            return False
        if raw in ("A", "I"):
            # "A because..." vs "A patient with..."; "I think..." is not a letter, unless what
            # follows is that option's own text ("A Acute appendicitis" is unusual but clear).
            w = word.group(1).lower()
            if w in _CONNECTIVE:
                return True
            text = normalize_option_text(options.get(raw, ""))
            return bool(text) and normalize_option_text(rest).startswith(text)
        return True
    return False


def _resolve(rule: str, capture: str, options: Mapping[str, str],
             norm_options: Mapping[str, str]) -> _Statement:
    """What option a statement's capture names."""
    cap = capture.strip().strip("\"'“”‘’").strip()
    cap = re.sub(r"^(?:[-•:][ \t]*)+", "", cap)
    cap = re.sub(r"^(?:that|simply)[ \t]+", "", cap, flags=_I)
    cap = re.sub(r"^\\boxed\s*\{([^{}]*)\}", r"\1", cap)  # "final answer is \boxed{C}"
    first = cap.split("\n", 1)[0].strip()
    if not first:
        return _Statement(rule, None, "none", capture)
    # The whole line is one option's text: "None of the above", "Both A and B", "maybe".
    whole = _option_by_text(first.rstrip(" .!"), norm_options, prefix=False)
    if whole is not None and not re.fullmatch(r"\(?[A-Ja-j]\)?[.!]?", first):
        return _Statement(rule, whole, "ok", capture)
    cap2 = _QUALIFIER.sub("", first, count=1)
    # "maybe" is PubMedQA's option C, "Both A and B" and "None of the above" are MedMCQA's
    first_word = re.match(r"[A-Za-z]+", cap2)
    starts_with_option = (first_word is not None and first_word.group(0).lower()
                          in norm_options.values()) or _option_by_text(
        _first_sentence(cap2), norm_options, prefix=True) is not None
    if _HEDGE_WORDS.match(cap2) and not starts_with_option:
        return _Statement(rule, None, "hedged", capture)
    if _NEGATION.match(cap2) and not starts_with_option:
        return _Statement(rule, None, "none", capture)
    first = cap2
    # A text followed by its letter in brackets: "Acute cholecystitis (C)".
    m2 = _TEXT_THEN_LETTER.match(first)
    if m2 and m2.group("letter") in options:
        named = _option_by_text(m2.group("text"), norm_options, prefix=False)
        if named is not None or not _LETTER_MARKER_START.match(m2.group("text")):
            letter = m2.group("letter")
            if named is not None and named != letter:
                return _Statement(rule, None, "conflict", capture)
            return _Statement(rule, letter, "ok", capture)
    m = _LETTER.match(first)
    if m:
        letter_raw, after = m.group("letter"), m.group("after")
        enclosed = bool(m.group("open")) and bool(m.group("close"))
        letter = letter_raw.upper()
        if _letter_plausible(letter_raw, after, enclosed or bool(m.group("close")), options):
            if letter not in options:
                return _Statement(rule, None, "out_of_range", capture)
            # What follows the letter's own option text ("(B) If the patient is bedridden"
            # names option B; its "If" is no condition on the answer).
            own = _option_text_at(after, norm_options.get(letter, ""), anchored=True)
            tail = after[own[1]:] if own else after
            if _ALTERNATIVE.match(tail) or _hedge_tail(tail):
                return _Statement(rule, None, "hedged", capture)
            if _CONDITIONAL_TAIL.match(tail):
                return _Statement(rule, None, "none", capture)
            # A text after the letter that names a different option is a conflict.
            rest = re.sub(r"^[ \t]*[.):\-–—,]?[ \t]*", "", after)
            rest = re.split(r"(?<=[a-z0-9)])[.;](?:\s|$)", rest, maxsplit=1)[0]
            named = _option_by_text(rest, norm_options, prefix=False) if rest else None
            if named is not None and named != letter:
                return _Statement(rule, None, "conflict", capture)
            return _Statement(rule, letter, "ok", capture)
    sentence = _first_sentence(first)
    letter = _option_by_text(sentence, norm_options, prefix=True)
    if letter is not None:
        words = len(norm_options[letter].split())
        # "yes/no" offers two options as much as "yes or no" does
        rest_words = normalize_option_text(sentence.replace("/", " or ")).split()[words:]
        if _names_alternative(rest_words, letter, norm_options) or _hedge_tail(
                " " + " ".join(rest_words)):
            return _Statement(rule, None, "hedged", capture)
        if rest_words and rest_words[0] in ("if", "unless", "provided", "when", "assuming"):
            return _Statement(rule, None, "none", capture)
        return _Statement(rule, letter, "ok", capture)
    return _Statement(rule, None, "none", capture)


def _names_alternative(rest_words: list[str], letter: str, norm_options: Mapping[str, str]
                       ) -> bool:
    """After an option's text, do the words offer another option ("... or acute pancreatitis",
    "yes and no")? An explanation starting with "and" does not."""
    if not rest_words or rest_words[0] not in ("or", "and", "vs", "versus"):
        return False
    rest = " ".join(rest_words[1:]) + " "
    if rest_words[1:2] and len(rest_words[1]) == 1 and rest_words[1].upper() in norm_options:
        return True
    return any(v and k != letter and rest.startswith(v + " ") for k, v in norm_options.items())


def _first_sentence(text: str) -> str:
    return re.split(r"(?<=[A-Za-z0-9)])[.;!](?:\s|$)", text, maxsplit=1)[0]


_ALNUM = re.compile(r"[a-z0-9]+", re.IGNORECASE | re.ASCII)


def _option_text_at(text: str, own: str, *, anchored: bool) -> tuple[int, int] | None:
    """The span of the option text ``own`` (normalised) in raw ``text``: at its start (after
    separators) if ``anchored``, else anywhere, as whole words. (Token matching, not a regex
    per option: compiling one per call is slow.)"""
    words = own.split()
    if not words:
        return None
    tokens = []
    for m in _ALNUM.finditer(text):
        tokens.append(m)
        if anchored and len(tokens) == len(words):
            break
    starts = [0] if anchored else range(len(tokens) - len(words) + 1)
    for i in starts:
        window = tokens[i:i + len(words)]
        if len(window) == len(words) and all(
                t.group(0).lower() == w for t, w in zip(window, words, strict=True)):
            return window[0].start(), window[-1].end()
    return None


_LETTER_MARKER_START = re.compile(r"^[ \t]*\(?[A-Ja-j]\)?(?:[.):]|[ \t]*$)")


def _hedge_tail(after: str) -> bool:
    """Does the clause after a named answer offer an alternative ("or D", "but maybe B")?"""
    clause = _TAIL_CUT.split(after, maxsplit=1)[0]
    return _HEDGE_TAIL.search(clause) is not None


def _prefix_blocks(text: str, start: int) -> bool:
    """Is the statement starting at ``start`` taken back by the words before it in its
    sentence ("I don't think the answer is A", "another possible answer is B")?"""
    lo = max(text.rfind(ch, 0, start) for ch in ".!?\n;")
    prefix = _CLAUSE_BREAK.split(text[lo + 1:start])[-1]
    if not prefix.strip():
        return False
    words = [w.lower() for w in re.findall(r"[A-Za-z']+", prefix)]
    while words and words[-1] in _ADJECTIVES:  # "the least likely answer", "the other correct"
        words.pop()
    if words and words[-1] in _PREFIX_LAST_WORD:
        return True
    if words and words[-1] not in _DETERMINERS and _OPTION_IS.match(text, start):
        return True  # "the treatment option is surgery", "the drug choice is ..."
    return _PREFIX_BLOCK.search(prefix) is not None


def _statements(text: str, options: Mapping[str, str], norm_options: Mapping[str, str]
                ) -> list[_Statement]:
    """Every statement in ``text`` (several patterns may see the same words; they then
    agree, and duplicates do not matter)."""
    found = []
    lowered = text.lower()
    for trigger in _TRIGGERS:
        rule = trigger.rule
        for m in trigger.matches(text, lowered):
            groups = m.groupdict()
            if trigger.subject_before:
                # "Acute cholecystitis is the correct answer": the sentence up to the match.
                lo = max(text.rfind(ch, 0, m.start()) for ch in ".!?\n;:") + 1
                capture = _LEAD_IN.sub("", text[lo:m.start()].strip())
                cap_start, cap_end = lo, m.end()
                if _option_by_text(capture, norm_options, prefix=False) is None:
                    continue  # only an option's exact text may be the subject
                if _in_option_list(text, m.start()):
                    continue  # "A. Appendicitis is the most likely diagnosis when..." in a list
            else:
                key = "ans" if groups.get("ans") is not None else "ans2"
                capture = groups.get(key) or ""
                cap_start, cap_end = m.start(key), m.start(key) + len(capture)
                if _prefix_blocks(text, m.start()):
                    found.append(_Statement(rule, None, "none", capture))
                    continue
            st = _resolve(rule, capture, options, norm_options)
            if st.status == "ok" and _CONDITIONAL_TAIL.match(text, max(m.end(), cap_end)):
                st = _Statement(rule, None, "none", capture)  # "C is correct only if ..."
            modal = (groups.get("modal") or "").lower()
            if st.status == "ok" and modal:
                if modal.split()[0] in ("could", "might", "may"):
                    st = _Statement(rule, st.letter, "tentative", capture)
                elif modal.split()[0] in ("would", "should") and _IF.search(
                        _sentence_around(text, m.start(), m.end())):
                    st = _Statement(rule, None, "none", capture)  # "would be A if ..."
            if st.status == "ok" and _hedge_context(
                    _sentence_around(text, min(m.start(), cap_start), cap_end),
                    norm_options.get(st.letter or "", "")):
                st = _Statement(rule, None, "hedged", capture)  # "I'd say C, but I'm unsure"
            if st.status in ("ok", "tentative") and groups.get("nl") and \
                    _list_follows(text, cap_end, st.letter, capture, norm_options):
                # "Answer:\nA. ...\nB. ..." starts a list of options, it states nothing.
                st = _Statement(rule, None, "none", capture)
            found.append(st)
    return found


def _hedge_context(sentence: str, own: str) -> bool:
    """Does the sentence sound unsure, its option's own text aside ("uncertain" may be part of
    the option)?"""
    span = _option_text_at(sentence, own, anchored=False)
    if span is not None:
        sentence = sentence[:span[0]] + " " + sentence[span[1]:]
    return _HEDGE_CONTEXT.search(sentence) is not None


def _in_option_list(text: str, pos: int) -> bool:
    """Is ``pos`` on a line that is one item of a list of several options?"""
    line_start = text.rfind("\n", 0, pos) + 1
    own = _marker_letter(text[line_start:pos])
    if own is None:
        return False
    return any(other is not None and other != own
               for other in map(_marker_letter, text.split("\n")))


def _sentence_around(text: str, start: int, end: int) -> str:
    lo = max(text.rfind(ch, 0, start) for ch in ".!?\n")
    hi = min((i for i in (text.find(ch, end) for ch in ".!?\n") if i != -1), default=len(text))
    return text[lo + 1:hi]


def _marker_letter(line: str) -> str | None:
    m = _MARKER_LINE.match(line) or _OPTION_WORD_LINE.match(line)
    return m.group("letter").upper() if m else None


def _list_follows(text: str, pos: int, letter: str | None, line: str,
                  norm_options: Mapping[str, str]) -> bool:
    """Is ``line`` (the answer on the line after a label) the first item of a list of the
    options? It is when the next non-empty line is another option's line that is bare
    ("B. Acute pancreatitis") or neutral, or when both lines judge their option negatively
    ("A. ... - unlikely\nB. ... - unlikely"). An answer followed by dismissals of the other
    options ("C. text\nA. Appendicitis is wrong because...") is no list."""
    for nxt in text[pos:].split("\n")[1:]:
        if not nxt.strip():
            continue
        other = _marker_letter(nxt)
        if other is None or other == letter:
            return False
        if _is_bare_option_line(nxt, other, norm_options) or not _NEGATIVE_JUDGEMENT.search(nxt):
            return True
        own = normalize_option_text(norm_options.get(letter or "", ""))
        rest = normalize_option_text(line).replace(own, " ", 1) if own else line
        return _NEGATIVE_JUDGEMENT.search(rest) is not None
    return False


# --------------------------------------------------------------------------- public


def extract_answer(response: str, options: Mapping[str, str]) -> Extraction:
    """Extract the option letter a response commits to, or None with the reason.

    ``options`` maps letters to texts (A-J). See the module docstring for the rules.
    """
    parsed = parse_response(response)
    if parsed.truncated:
        return Extraction(None, "truncated")
    if not parsed.answer.strip():
        return Extraction(None, "empty")
    text = _clean(parsed.answer)
    if not text.strip():
        return Extraction(None, "empty")
    norm_options = {k: normalize_option_text(v) for k, v in options.items()}
    cut = _NEXT_QUESTION.search(text)
    if cut is not None and text[:cut.start()].strip():
        # A base model that answers and then writes (and answers) the next exam question:
        # the answer given before "Question:" is this question's. Without one there, the
        # "Question:" line was a restatement and the whole section is read.
        head = _extract_from(text[:cut.start()], options, norm_options)
        if head.found:
            return head
    return _extract_from(text, options, norm_options)


def _extract_from(text: str, options: Mapping[str, str], norm_options: Mapping[str, str]
                  ) -> Extraction:
    statements = _statements(text, options, norm_options)
    if _REVERSED.search(text):
        # "least likely" / "EXCEPT" questions: "the most likely cause is X" and "option A is
        # correct" describe the options that are NOT the answer.
        statements = [st for st in statements if _TIER[st.rule] == 1]
    for tier in (1, 2):
        decided = [st for st in statements if _TIER[st.rule] == tier
                   and st.status in ("ok", "tentative", "hedged", "conflict", "out_of_range")]
        if decided:
            return _decide(decided)
    return _implicit(text, options, norm_options)


def _decide(decided: list[_Statement]) -> Extraction:
    """One answer from the statements of one tier, or the reason there is none."""
    def ev(st: _Statement) -> str:
        return st.evidence.strip()[:200]

    conflict = next((st for st in decided if st.status == "conflict"), None)
    if conflict is not None:
        return Extraction(None, "conflict", ev(conflict))
    firm = [st for st in decided if st.status in ("ok", "out_of_range")]
    letters = {st.letter for st in firm if st.status == "ok"}
    if len(letters) > 1 or (letters and any(st.status == "out_of_range" for st in firm)):
        return Extraction(None, "conflict", ", ".join(ev(st) for st in firm)[:200])
    hedged = next((st for st in decided if st.status == "hedged"), None)
    if hedged is not None:
        return Extraction(None, "hedged", ev(hedged))
    if letters:
        best = min((st for st in firm if st.status == "ok"), key=lambda s: RULES.index(s.rule))
        return Extraction(best.letter, best.rule, ev(best))
    if firm:
        return Extraction(None, "out_of_range", ev(firm[0]))
    # Only "the answer could be C": not a commitment.
    return Extraction(None, "hedged", ev(decided[0]))


_LEADING = re.compile(r"^(?:(?:option|choice)[ \t]+)?\(?(?P<letter>[A-Ja-j])\)?"
                      r"(?P<after>(?:[.):,!]|[ \t]+[-–—](?=[ \t]))[ \t]?.*|$)",
                      re.IGNORECASE | re.ASCII)
_LEADING_HEDGE = re.compile(r"^(?:(?i:option|choice)[ \t]+)?\(?[A-J]\)?[ \t]*"
                            r"(?:,|/|&|(?i:\bor\b|\band\b))[ \t]*(?:(?i:option|choice)[ \t]+)?"
                            r"\(?[A-J]\)?(?![A-Za-z])", re.ASCII)
_FINAL_LINE = re.compile(r"^(?P<prefix>(?:so|thus|hence|therefore|answer|final|option|choice|"
                         r"it'?s|it[ \t]+is|definitely|clearly|in[ \t]+summary|in[ \t]+conclusion|"
                         r"to[ \t]+summarize|overall)[ \t]*[,:]?[ \t]*)?\(?(?P<letter>[A-J])\)?"
                         r"[.!]?$", re.IGNORECASE | re.ASCII)


def _implicit(text: str, options: Mapping[str, str], norm_options: Mapping[str, str]
              ) -> Extraction:
    lines = [ln.strip() for ln in text.strip().split("\n")]
    lines = [ln for ln in lines if ln]
    stripped = "\n".join(lines)
    first_line = lines[0]
    found: list[Extraction] = []

    lead = _leading_letter(lines, options, norm_options)
    if lead is not None:
        if lead.letter is None:
            return lead
        found.append(lead)
    last = _final_line(lines, options, norm_options)
    if last is not None:
        if last.letter is None:
            return last
        found.append(last)
    for candidate in (stripped, first_line):
        letter = _option_by_text(candidate, norm_options, prefix=False)
        if letter is not None:
            found.append(Extraction(letter, "option_text", candidate[:200]))
            break
    else:
        # One-word options (yes / no / maybe) as the first word: "No, the data show ...".
        word = re.match(r"^([A-Za-z]+)(?:[ \t]*[,.;:!\n—–-]|$)", stripped)
        if word:
            w = word.group(1).lower()
            hits = [k for k, v in norm_options.items() if v == w]
            clause = set(normalize_option_text(re.split(r"[.;!?\n]", stripped, maxsplit=1)[0])
                         .split())
            others = {v for v in norm_options.values() if v != w and " " not in v}
            if len(hits) == 1 and not clause & others:  # not "No, yes, maybe?"
                found.append(Extraction(hits[0], "option_text", word.group(0)))
    letters = {f.letter for f in found}
    if len(letters) > 1:
        return Extraction(None, "conflict", " | ".join(f.evidence for f in found)[:200])
    if found:
        return found[0]
    return Extraction(None, "none")


def _leading_letter(lines: list[str], options: Mapping[str, str],
                    norm_options: Mapping[str, str]) -> Extraction | None:
    first_line = lines[0]
    if _LEADING_HEDGE.match(first_line):
        return Extraction(None, "hedged", first_line[:200])
    m = _LEADING.match(first_line)
    if not m or m.group("letter").upper() not in options:
        return None
    st = _resolve("leading_letter", first_line, options, norm_options)
    if st.status in ("hedged", "conflict"):
        return Extraction(None, st.status, first_line[:200])
    if st.status != "ok":
        return None
    letter = st.letter
    # What the first line says beyond the letter and its option text.
    extra = re.sub(r"^[ \t]*[.):\-–—]?[ \t]*", "", m.group("after"))
    own = norm_options.get(letter or "", "")
    extra_norm = normalize_option_text(extra)
    if own and (extra_norm == own or extra_norm.startswith(own + " ")):
        extra_norm = extra_norm[len(own):].strip()
    others = [_marker_letter(ln) for ln in lines[1:]]
    listed = any(o is not None and o != letter for o in others)
    if extra_norm:
        # "A) Appendicitis: pain is usually RLQ..." opens a discussion of the options.
        if listed or _NEGATIVE_JUDGEMENT.search(extra):
            return None
        # "A: Let's think step by step" is the Q/A format's answer label, not option A.
        if re.match(r"[ \t]*:", m.group("after")) and extra_norm == normalize_option_text(extra):
            return None
    elif listed:
        # "A. Acute appendicitis\nB. Acute pancreatitis\n..." restates the options (or heads a
        # discussion of each); "C. text\nA. Appendicitis is wrong because..." answers first.
        for i, (line, other) in enumerate(zip(lines[1:], others, strict=True)):
            if other is not None and other != letter and (
                    _is_bare_option_line(line, other, norm_options)
                    or (i == 0 and not _NEGATIVE_JUDGEMENT.search(line))):
                return None
    return Extraction(letter, "leading_letter", first_line[:200])


def _is_bare_option_line(line: str, letter: str, norm_options: Mapping[str, str]) -> bool:
    """Is ``line`` just an option's letter and its text ("B. Acute pancreatitis")?"""
    m = _LEADING.match(line)
    if m is None:
        m = re.match(r"^[ \t]*[-•+][ \t]*(?P<after>.*)$", line)
        return m is not None and _is_bare_option_line(m.group("after"), letter, norm_options)
    text = re.sub(r"^[ \t]*[.):,\-–—]?[ \t]*", "", m.group("after"))
    return normalize_option_text(text) == norm_options.get(letter, "\0")


def _final_line(lines: list[str], options: Mapping[str, str],
                norm_options: Mapping[str, str]) -> Extraction | None:
    last = lines[-1]
    m = _FINAL_LINE.match(last)
    if len(lines) == 1:
        # A one-line reply: "It's C." (a bare "C" is the leading letter).
        if m is None or not m.group("prefix") or m.group("letter") not in options:
            return None
        return Extraction(m.group("letter"), "final_line", last[:200])
    prev_line = lines[-2]
    if m is not None:
        letter = m.group("letter").upper()
        if m.group("letter") != letter:
            return None  # a lone lowercase letter at the end is not an answer
        if _FINAL_LINE.match(prev_line):
            return None  # a column of bare letters
    else:
        lm = _LEADING.match(last)
        if lm is None or lm.group("letter") not in options:
            return None
        text = re.sub(r"^[ \t]*[.):\-–—]?[ \t]*", "", lm.group("after")).rstrip(" .")
        if _option_by_text(text, norm_options, prefix=False) != lm.group("letter"):
            return None
        letter = lm.group("letter")
        prev = _marker_letter(prev_line)
        if prev is not None and prev != letter:
            return None  # the last item of a list of options
    if letter not in options:
        return Extraction(None, "out_of_range", last[:200])
    return Extraction(letter, "final_line", last[:200])
