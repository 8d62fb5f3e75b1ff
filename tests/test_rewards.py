"""Reward components at their boundaries, the gates, the combiner and the config."""

from __future__ import annotations

import math
import pickle
import random

import numpy as np
import pytest

from gazal.config import ConfigError
from gazal.formatting import render_assistant
from gazal.rewards import (
    COMPONENTS,
    RewardConfig,
    build_reward_functions,
    load_reward_config,
    score_completions,
)
from gazal.rewards.analysis import ngram_keys, word_hashes
from gazal.rewards.length import cos_fn

OPTIONS = {"A": "Acute appendicitis", "B": "Acute pancreatitis", "C": "Acute cholecystitis",
           "D": "Small bowel obstruction"}
PROMPT = ("Question: A 45-year-old woman has right upper quadrant pain that began after a fatty "
          "meal, a temperature of 38.6 C and a positive Murphy sign. What is the most likely "
          "diagnosis?\nOptions:\nA. Acute appendicitis\nB. Acute pancreatitis\nC. Acute "
          "cholecystitis\nD. Small bowel obstruction")
STEPS = [
    "Pain in the right upper quadrant after a fatty meal points to the gallbladder.",
    "Fever with a positive Murphy sign means an inflamed gallbladder wall.",
    "Appendicitis and pancreatitis present with other pain locations and markers.",
]
ASSESSMENT = "The classic triad fits acute cholecystitis best."


def answer(letter: str = "C", steps: list[str] | None = None,
           assessment: str = ASSESSMENT) -> str:
    return render_assistant(steps or STEPS, assessment, letter, OPTIONS[letter])


def score(texts: str | list, cfg: RewardConfig | None = None, tokenizer=None, **columns):
    """Components and total of each completion (a single dict for a single text)."""
    single = isinstance(texts, str) or (isinstance(texts, list) and texts
                                        and isinstance(texts[0], dict))
    batch = [texts] if single else list(texts)
    funcs, weights = build_reward_functions(cfg or RewardConfig(), tokenizer)
    columns.setdefault("answer", ["C"] * len(batch))
    columns.setdefault("options", [OPTIONS] * len(batch))
    out = score_completions(batch, funcs, weights, **columns)
    return out[0] if single else out


def comps(text: str, cfg: RewardConfig | None = None, **columns) -> dict[str, float]:
    return score(text, cfg, **columns)["components"]


# --------------------------------------------------------------------------- accuracy


def test_accuracy_is_one_only_for_the_gold_letter():
    assert comps(answer("C"))["accuracy"] == 1.0
    assert comps(answer("B"))["accuracy"] == 0.0
    # the option text alone on the final line names the option too
    text = answer("C").replace("(C) Acute cholecystitis", "Acute cholecystitis")
    assert comps(text)["accuracy"] == 1.0
    # a gold answer given as the option's text (PubMedQA yes/no/maybe style)
    assert comps(answer("C"), answer=["Acute cholecystitis"])["accuracy"] == 1.0


def test_accuracy_uses_the_shared_extractor_only_after_the_thinking():
    in_thinking = ("<think>\nStep 1: Fever and a positive Murphy sign mean cholecystitis.\n"
                   "Step 2: So the final answer is (C).\n</think>\n\nSee above.")
    assert comps(in_thinking)["accuracy"] == 0.0


def test_a_canonical_line_inside_the_thinking_does_not_count():
    text = ("<think>\nStep 1: Fever and a positive Murphy sign mean cholecystitis here.\n"
            "**Final answer: (C) Acute cholecystitis**\n</think>\n\n## Clinical Assessment\n"
            "The answer is above in the reasoning.")
    c = comps(text)
    assert c["accuracy"] == 0.0 and c["format"] == 0.75


def test_accuracy_gates_and_their_switches():
    bare = "The answer is (C)."
    assert comps(bare)["accuracy"] == 0.0
    cfg = RewardConfig()
    cfg.gates.final_answer_line = cfg.gates.thinking = False
    assert comps(bare, cfg)["accuracy"] == 1.0  # the extractor alone reads C
    # a truncated completion never counts, gates or not
    assert comps("<think>\nStep 1: Murphy sign, so the answer is (C).", cfg)["accuracy"] == 0.0


@pytest.mark.parametrize("final", [
    "**Final answer: (A) (B) (C) (D)**",                        # every letter
    "**Final answer: (B) or (C)**",                             # hedged
    "**Final answer: (C) Acute pancreatitis**",                 # letter and text disagree
    "**Final answer: (C) Acute cholecystitis**\n**Final answer: (C) Acute cholecystitis**",
    "**Final answer: (\u0421)**",                               # Cyrillic Es for C
    "**Final answer: C C C C**",                                # letter spam
    "### Final answer: (C) Acute cholecystitis",                # not the canonical line
    "**Final answer: (C) Acute cholecystitis**\nOr maybe (B).",  # another letter after it
])
def test_final_answer_line_must_name_exactly_one_option(final):
    text = answer("C").rsplit("\n", 1)[0] + "\n" + final
    c = comps(text)
    assert c["accuracy"] == 0.0
    assert c["format"] == 0.75  # thinking, steps and assessment still earn their quarter


def test_text_after_the_final_line_that_names_no_option_keeps_the_answer():
    c = comps(answer("C") + "\n\nConfirm with an abdominal ultrasound.")
    assert c["accuracy"] == 1.0
    assert c["format"] == 0.75  # but the line no longer ends the completion


# --------------------------------------------------------------------------- format


def test_format_full_and_each_missing_part():
    assert comps(answer("B"))["format"] == 1.0  # format does not care about correctness
    no_think = answer().replace("<think>\n", "").replace("</think>\n", "")
    two_blocks = answer().replace("</think>", "</think>\n<think>\nStep 4: More.\n</think>")
    skipped_number = answer().replace("Step 2:", "Step 3:")
    empty_step = answer().replace(STEPS[1], "")
    short_assessment = answer(assessment="Yes.")
    no_assessment = answer().replace("## Clinical Assessment\n" + ASSESSMENT + "\n\n", "")
    no_final = answer().rsplit("\n", 1)[0]
    for text, expected in [(two_blocks, 0.75), (skipped_number, 0.75), (empty_step, 0.75),
                           (short_assessment, 0.75), (no_assessment, 0.75), (no_final, 0.75),
                           (no_think, 0.5)]:  # no thinking: no steps either
        assert comps(text)["format"] == expected, text
    assert comps("")["format"] == 0.0


def test_format_without_partial_credit_and_with_think_in_prompt():
    cfg = RewardConfig()
    cfg.format.partial_credit = False
    assert comps(answer(), cfg)["format"] == 1.0
    assert comps(answer(assessment="Yes."), cfg)["format"] == 0.0
    cfg = RewardConfig()
    cfg.format.think_in_prompt = True  # the template already opened the thinking
    text = answer().replace("<think>\n", "", 1)
    assert comps(text, cfg)["format"] == 1.0 and comps(text, cfg)["accuracy"] == 1.0
    assert comps(answer(), cfg)["format"] == 0.75


def test_conversational_completions_score_like_text():
    text = answer()
    conv = [{"role": "assistant", "content": text}]
    assert score(conv)["components"] == score(text)["components"]


# --------------------------------------------------------------------------- length


def ids_of(n: int, eos: bool = True) -> list[int]:
    return [5] * n + ([0] if eos else [])


class EosTokenizer:
    """Just enough of a tokenizer: EOS id 0 and a whitespace token count."""

    eos_token_id = 0
    pad_token_id = 1

    def __call__(self, texts, add_special_tokens=False):
        return {"input_ids": [[7] * len(t.split()) for t in texts]}


def length_cfg(**kw) -> RewardConfig:
    cfg = RewardConfig()
    cfg.length.max_tokens = 1000
    for k, v in kw.items():
        setattr(cfg.length, k, v)
    return cfg


def test_cosine_endpoints_and_monotonicity():
    assert cos_fn(0.0, 1.0, 0.5) == pytest.approx(1.0)
    assert cos_fn(1.0, 1.0, 0.5) == pytest.approx(0.5)
    assert cos_fn(0.5, 1.0, 0.5) == pytest.approx(0.75)
    cfg = length_cfg()
    tok = EosTokenizer()

    def length_at(letter: str, n: int) -> float:
        return score(answer(letter), cfg, tok, completion_ids=[ids_of(n)])["components"]["length"]

    short_c, long_c = length_at("C", 1), length_at("C", 999)
    short_w, long_w = length_at("B", 1), length_at("B", 999)
    assert short_c == pytest.approx(1.0, abs=1e-4) and long_c == pytest.approx(0.5, abs=1e-4)
    assert short_w == pytest.approx(-1.0, abs=1e-4) and long_w == pytest.approx(0.0, abs=1e-4)
    assert short_c > long_c > long_w > short_w
    mid = length_at("C", 500)  # the EOS id is not counted: L = 500, t = 0.5
    assert mid == pytest.approx(0.75)


def test_min_tokens_plateau_and_exceed():
    cfg = length_cfg(min_tokens=200)
    tok = EosTokenizer()
    at = [score(answer("C"), cfg, tok, completion_ids=[ids_of(n)])["components"]["length"]
          for n in (10, 200, 600, 1000, 5000)]
    assert at[0] == at[1] == pytest.approx(1.0)
    assert at[2] == pytest.approx(0.75)
    assert at[3] == at[4] == -1.0  # at or over max_tokens: r_exceed


def test_invalid_response_gets_the_lowest_wrong_value_whatever_its_length():
    cfg = length_cfg()
    tok = EosTokenizer()
    text = answer("C").rsplit("\n", 1)[0]  # no final answer line
    for n in (5, 900):
        c = score(text, cfg, tok, completion_ids=[ids_of(n)])["components"]
        assert c["length"] == -1.0 and c["structure"] == 0.0


def test_token_counts_from_ids_then_tokenizer_then_characters():
    cfg = length_cfg(max_tokens=50)
    text = answer("C")  # ~70 whitespace words, ~330 characters
    # completion_ids win: 10 tokens + EOS is short and finished
    assert score(text, cfg, EosTokenizer(), completion_ids=[ids_of(10)])["components"][
        "length"] > 0.9
    # no ids: the tokenizer counts ~70 > 50 tokens: over the limit
    assert score(text, cfg, EosTokenizer())["components"]["length"] == -1.0
    # neither: ceil(characters / 4)
    cfg = length_cfg(max_tokens=math.ceil(len(text) / 4) + 1)
    assert score(text, cfg)["components"]["length"] > 0.5
    cfg = length_cfg(max_tokens=math.ceil(len(text) / 4))
    assert score(text, cfg)["components"]["length"] == -1.0


# --------------------------------------------------------------------------- truncation


def test_cut_at_the_length_limit_earns_nothing_positive():
    cfg = length_cfg()
    # a perfect, correct answer whose ids do not end with EOS was cut by the trainer
    c = score(answer("C"), cfg, EosTokenizer(), completion_ids=[ids_of(100, eos=False)])
    assert all(v <= 0 for v in c["components"].values()) and c["total"] < 0
    # the same with the EOS is a full answer
    c = score(answer("C"), cfg, EosTokenizer(), completion_ids=[ids_of(100)])
    assert c["components"]["accuracy"] == 1.0
    # flagged by a column
    c = score(answer("C"), cfg, truncated=[True])
    assert all(v <= 0 for v in c["components"].values())


def test_truncated_never_positive_under_any_weights():
    rng = random.Random(0)
    texts = [answer("C")[:cut] for cut in range(10, len(answer("C")) - 60, 7)]
    texts = [t for t in texts if "</think>" not in t]  # thinking never closed
    assert len(texts) > 10
    for _ in range(5):
        cfg = RewardConfig()
        for name in COMPONENTS:
            getattr(cfg, name).weight = rng.uniform(0, 3)
        for r in score(texts, cfg, answer=["C"] * len(texts), options=[OPTIONS] * len(texts)):
            assert all(v <= 0 for v in r["components"].values()), r
            assert r["total"] <= 0


# --------------------------------------------------------------------------- repetition


def test_repetition_formula_and_bounds():
    cfg = RewardConfig()
    # 3-grams of "a b c a b c": (a b c) (b c a) (c a b) (a b c): 4 in all, 3 distinct
    assert comps("a b c a b c", cfg)["repetition"] == pytest.approx(-0.25)
    assert comps("A b C a B c", cfg)["repetition"] == pytest.approx(-0.25)  # lowercased
    assert comps("a b", cfg)["repetition"] == 0.0  # fewer than n words
    assert comps(answer(), cfg)["repetition"] >= -0.05
    assert comps(" ".join(["fever"] * 500), cfg)["repetition"] == pytest.approx(-(1 - 1 / 498))
    cfg.repetition.max_penalty = 0.0
    assert comps("a b c a b c", cfg)["repetition"] == 0.0
    cfg.repetition.max_penalty = -2.0
    cfg.repetition.ngram_size = 1
    assert comps("x x y", cfg)["repetition"] == pytest.approx(-2.0 / 3)


def test_repetition_over_token_ids():
    cfg = RewardConfig()
    cfg.repetition.unit = "tokens"
    r = score("anything at all here", cfg, completion_ids=[[1, 2, 3, 1, 2, 3]])
    assert r["components"]["repetition"] == pytest.approx(-0.25)


def test_word_hashes_split_like_python():
    rng = random.Random(1)
    pool = ["Fever", "fever", "RUQ", "pain,", "Murphy", "é", "\u00e9t\u00e9", "a", "A", "x1"]
    for _ in range(50):
        words = [rng.choice(pool) for _ in range(rng.randint(0, 40))]
        seps = [rng.choice([" ", "\n", "\t", "  ", " \n "]) for _ in words]
        text = "".join(w + s for w, s in zip(words, seps, strict=True))
        hashes = word_hashes(text)
        expected = [w.lower() if w.isascii() else w for w in text.split()]
        assert len(hashes) == len(expected)
        # equal words hash equal, different words differ
        for i in range(len(expected)):
            for j in range(len(expected)):
                assert (hashes[i] == hashes[j]) == (expected[i] == expected[j])
        for n in (1, 2, 3):
            keys = ngram_keys(hashes, n)
            grams = list(zip(*[expected[k:] for k in range(n)], strict=False))
            assert len(keys) == len(grams)
            assert len(np.unique(keys)) == len(set(grams))


# --------------------------------------------------------------------------- structure


def test_structure_counts_distinct_contentful_steps_up_to_the_cap():
    cfg = RewardConfig()
    assert comps(answer(), cfg)["structure"] == pytest.approx(3 / 6)
    many = [f"Finding number {i} narrows the differential toward biliary disease."
            for i in range(10)]
    assert comps(answer(steps=many), cfg)["structure"] == 1.0
    repeated = [STEPS[0], STEPS[0], STEPS[1]]
    assert comps(answer(steps=repeated), cfg)["structure"] == pytest.approx(2 / 6)
    short = [STEPS[0], "Murphy sign positive.", "Yes, so."]  # 3 and 2 words
    assert comps(answer(steps=short), cfg)["structure"] == pytest.approx(1 / 6)
    cfg.structure.min_step_words = 3
    assert comps(answer(steps=short), cfg)["structure"] == pytest.approx(2 / 6)


def test_structure_is_zero_for_invalid_responses():
    assert comps(answer().rsplit("\n", 1)[0])["structure"] == 0.0
    assert comps("<think>\n" + "\n".join(f"Step {i}: {s}" for i, s in enumerate(STEPS, 1)))[
        "structure"] == 0.0


# --------------------------------------------------------------------------- degeneracy


def test_copied_prompt_and_padding_make_a_response_degenerate():
    copied = render_assistant(["A 45-year-old woman has right upper quadrant pain that began "
                               "after a fatty meal, a temperature of 38.6 C and a positive "
                               "Murphy sign.", "What is the most likely diagnosis?"],
                              "A 45-year-old woman has right upper quadrant pain.", "C",
                              OPTIONS["C"])
    c = comps(copied, prompts=[PROMPT])
    assert c["accuracy"] == 0.0 and c["structure"] == 0.0 and c["format"] == 1.0
    assert comps(copied)["accuracy"] == 1.0  # without the prompt nothing can be compared
    assert comps(answer(), prompts=[PROMPT])["accuracy"] == 1.0  # honest restating is fine
    padded = answer(steps=STEPS + [f"The gallbladder is inflamed here {i}. " * 6
                                   for i in range(8)])
    c = comps(padded)
    assert c["accuracy"] == 0.0 and c["format"] == 1.0 and c["repetition"] < -0.4
    cfg = RewardConfig()
    cfg.gates.degenerate = False
    assert comps(padded, cfg)["accuracy"] == 1.0


def test_conversational_prompts_are_read_for_the_copy_measure():
    copied = render_assistant([PROMPT.replace("\n", " ")], "Copied.", "C", OPTIONS["C"])
    conv = [{"role": "system", "content": "Be careful."}, {"role": "user", "content": PROMPT}]
    assert comps(copied, prompts=[conv])["accuracy"] == 0.0


# --------------------------------------------------------------------------- inputs


def test_options_in_every_dataset_shape():
    arrow_struct = {**OPTIONS, "E": None, "F": None}  # rows with fewer options, via Arrow
    as_list = list(OPTIONS.values())
    import json

    for options in (arrow_struct, as_list, json.dumps(OPTIONS)):
        assert comps(answer(), options=[options])["accuracy"] == 1.0


def test_missing_columns_and_bad_rows_are_named():
    funcs, _ = build_reward_functions(RewardConfig())
    with pytest.raises(ValueError, match="column 'options'"):
        funcs[0](completions=[answer()], answer=["C"])
    with pytest.raises(ValueError, match="row 0: gold answer 'Z'"):
        funcs[0](completions=[answer()], answer=["Z"], options=[OPTIONS])
    cfg = load_reward_config(None, ["--answer_column", "gold"])
    funcs, _ = build_reward_functions(cfg)
    assert funcs[0](completions=[answer()], gold=["C"], options=[OPTIONS]) == [1.0]


def test_functions_share_one_analysis_per_batch():
    funcs, weights = build_reward_functions(RewardConfig())
    assert [f.__name__ for f in funcs] == list(COMPONENTS)
    assert weights == [1.0, 0.5, 0.5, 0.5, 0.25]
    batch = [answer("C"), answer("B")]
    cols = {"answer": ["C", "C"], "options": [OPTIONS, OPTIONS]}
    analyzer = funcs[0].analyzer
    assert all(f.analyzer is analyzer for f in funcs)
    funcs[0](completions=batch, **cols)
    first = analyzer._last[1]
    funcs[1](completions=batch, **cols)
    assert analyzer._last[1] is first  # same lists: same analyses
    funcs[1](completions=list(batch), **cols)
    assert analyzer._last[1] is not first  # a new batch is analysed afresh
    clone = pickle.loads(pickle.dumps(funcs[2]))
    assert clone.__name__ == "length" and clone(completions=batch, **cols) == \
        funcs[2](completions=batch, **cols)


def test_trl_logging_hooks_receive_gate_statistics():
    metrics, extra = {}, {}
    funcs, _ = build_reward_functions(RewardConfig())
    funcs[0](completions=[answer("C"), "<think>\nStep 1: cut"], answer=["C", "C"],
             options=[OPTIONS, OPTIONS], log_metric=metrics.__setitem__,
             log_extra=extra.__setitem__, trainer_state=None)
    assert metrics == {"gazal/valid_fraction": 0.5, "gazal/truncated_fraction": 0.5,
                       "gazal/degenerate_fraction": 0.0}
    assert extra == {"reward_gate": ["valid", "truncated"]}


# --------------------------------------------------------------------------- config


def test_config_rejects_inconsistent_values_naming_them():
    for overrides, expected in [
        (["--length.r_c_L", "2"], "r_c_0"),
        (["--length.r_w_0", "0.5"], "r_w_L"),
        (["--length.r_c_L", "-0.5", "--length.r_c_0", "-0.2"], "every correct"),
        (["--length.r_exceed", "0.1"], "r_exceed"),
        (["--length.min_tokens", "5000"], "min_tokens"),
        (["--repetition.max_penalty", "0.5"], "max_penalty"),
        (["--gates.max_copied_fraction", "0"], "max_copied_fraction"),
        (["--components", "[accuracy, speed]"], "speed"),
        (["--structure.cap", "0"], "cap"),
        (["--repetition.weight", "-1"], "repetition.weight: must be >= 0"),
    ]:
        with pytest.raises(ConfigError, match=expected):
            load_reward_config(None, overrides)
    with pytest.raises(ConfigError, match=r"did you mean --length\.max_tokens"):
        load_reward_config(None, ["--length.max_tokenz", "8"])


def test_config_from_a_training_recipe_or_a_reward_yaml(tmp_path):
    recipe = tmp_path / "grpo.yaml"
    recipe.write_text("model: x\nreward:\n  format: {weight: 1.0}\n  length:\n    max_tokens: 2048\n")
    cfg = load_reward_config(recipe, ["--reward.structure.cap", "4", "--max_tokens", "1024"])
    assert (cfg.format.weight, cfg.length.max_tokens, cfg.structure.cap) == (1.0, 1024, 4)
    only = tmp_path / "reward.yaml"
    only.write_text("components: [accuracy, format]\naccuracy: {weight: 2}\n")
    cfg = load_reward_config(only)
    assert cfg.components == ["accuracy", "format"] and cfg.weights() == [2.0, 0.5]
    bad = tmp_path / "bad.yaml"
    bad.write_text("reward:\n  lenght: {max_tokens: 5}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml \(reward section\): unknown key 'lenght'"):
        load_reward_config(bad)


def test_the_default_reward_recipe_is_the_default_config():
    from pathlib import Path

    recipe = Path(__file__).resolve().parents[1] / "recipes" / "rewards" / "default.yaml"
    assert load_reward_config(recipe) == RewardConfig()


def test_ids_without_known_eos_warn_once(caplog):
    funcs, _ = build_reward_functions(RewardConfig())
    with caplog.at_level("WARNING", logger="gazal"):
        for _ in range(2):
            funcs[0](completions=[answer()], answer=["C"], options=[OPTIONS],
                     completion_ids=[ids_of(10, eos=False)])
    warnings = [r for r in caplog.records if "no EOS ids are known" in r.getMessage()]
    assert len(warnings) == 1
