"""Normalised words and n-gram hashing (gazal.data.ngrams) and the reasoning-format check
(gazal.data.validate)."""

from __future__ import annotations

import random
import re
import unicodedata

import numpy as np
import pytest

from gazal.data.ngrams import PolyHasher, normalize_words, tokenize
from gazal.data.validate import canonical_response, check_format


def reference_words(text: str) -> list[bytes]:
    """The definition: NFKC, lower case, runs of letters and digits."""
    low = unicodedata.normalize("NFKC", text).lower()
    return [w.encode() for w in re.findall(r"[^\W_]+", low)]


def test_normalisation_matches_its_definition_on_random_unicode():
    rnd = random.Random(0)
    alphabet = "abcXYZ019 ,.-_'\"\n\t—–“”°µéÉßΣσ\u0301\u00a0ﬁ²Ⅻ（）"
    for _ in range(5000):
        text = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 40)))
        assert normalize_words(text) == reference_words(text), repr(text)


def test_case_whitespace_and_punctuation_do_not_matter():
    a = "A 45-year-old MAN's fever—“cough”, 38.5°C."
    b = "a   45 year old man s FEVER cough 38 5 c"
    assert normalize_words(a) == normalize_words(b)
    assert normalize_words("café") == normalize_words("cafe\u0301")  # composed either way


def test_window_hashes_are_position_independent_and_stay_inside_documents():
    texts = ["a b c d e", "x a b c d e y", "a b c", "", "d e x a b"]
    batch, _ = tokenize(texts)
    h = PolyHasher()
    prefix = h.prefix(batch.tokens)
    hashes, pos = h.windows(prefix, batch.starts, 5)
    docs = np.searchsorted(batch.starts, pos, side="right") - 1
    assert docs.tolist() == [0, 1, 1, 1, 4]  # no window spans two texts
    assert hashes[0] == hashes[2] == h.whole(batch.doc(0))  # "a b c d e" twice
    assert len(set(hashes.tolist())) == 4
    assert batch.lengths.tolist() == [5, 7, 3, 0, 5]


GOOD = ("<think>\nStep 1: Fever and a new murmur.\nStep 2: Blood cultures are positive.\n"
        "</think>\n\n## Clinical Assessment\nEndocarditis.\n\n**Final answer: (B) Endocarditis**")


@pytest.mark.parametrize("text, reason", [
    (GOOD, None),
    ("", "empty"),
    ("**Final answer: (B)**", "no_thinking"),
    ("<think>\nStep 1: x\n", "truncated"),
    ("<think>\nStep 1: a\n</think>\n<think>\nStep 2: b\n</think>\n\n## Clinical Assessment\n"
     "x\n\n**Final answer: (B)**", "think_tags"),
    (GOOD.replace("Step 1: Fever and a new murmur.\nStep 2: ", ""), "no_steps"),
    (GOOD.replace("Step 2", "Step 3"), "step_numbering"),
    (GOOD.replace("Step 2: Blood cultures are positive.", "Step 2:"), "empty_step"),
    (GOOD.replace("Step 2: Blood", "**Final answer: (A)**\nStep 2: Blood"),
     "final_answer_in_thinking"),
    (GOOD.replace("**Final answer: (B) Endocarditis**", "The answer is B."),
     "final_answer_missing"),
    (GOOD + "\n**Final answer: (B)**", "final_answer_multiple"),
    (GOOD + "\nHope this helps.", "final_answer_not_last"),
    (GOOD.replace("## Clinical Assessment\n", ""), "no_assessment"),
])
def test_format_check(text, reason):
    assert check_format(text, min_steps=2).reason == reason


def test_canonical_response_restores_the_opening_tag():
    text = "Step 1: a\nStep 2: b\n</think>\n## Clinical Assessment\nx\n**Final answer: yes**"
    fixed = canonical_response(text)
    assert fixed.startswith("<think>\nStep 1: a") and check_format(fixed).ok
