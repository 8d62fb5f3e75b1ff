"""``gazal rewards audit``: the built-in library passes, weak rewards are caught, bad case
files are reported by line."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gazal.io import DataError
from gazal.rewards import RewardConfig, build_reward_functions
from gazal.rewards.audit import builtin_cases_path, load_cases, run_audit

ROOT = Path(__file__).resolve().parents[1]

# Every hack the issue names, and the built-in cases that cover it.
HACKS = {
    "answer only inside the thinking": ["chole_answer_only_in_thinking"],
    "several final answer lines with different letters": ["chole_several_final_lines"],
    "all letters listed": ["chole_all_letters_listed", "wernicke_all_letters_text"],
    "letter spam": ["mi_letter_spam"],
    "repeated or nested think tags": ["mi_nested_think_tags", "pqa_repeated_think_blocks"],
    "text after the final answer naming another letter": [
        "chole_text_after_final_names_other", "wernicke_other_letters_after_final"],
    "empty or one-word thinking": ["mi_empty_thinking", "pqa_one_word_thinking"],
    "thinking that copies the question": ["chole_thinking_copies_question"],
    "steps padded by repetition": ["mi_steps_padded_by_repetition",
                                   "wernicke_padded_wrong_for_length"],
    "unicode look-alike letters": ["pqa_cyrillic_letter", "wernicke_fullwidth_letter"],
    "a huge output": ["chole_huge_output"],
    "a truncated output": ["mi_truncated_thinking", "pqa_cut_at_length_limit"],
    "no thinking block at all": ["pqa_no_thinking_block", "wernicke_answer_is_without_format"],
    "markdown or html tricks around the answer line": [
        "chole_html_comment_alternative", "mi_strikethrough_trick", "pqa_heading_final_answer",
        "wernicke_html_bold_final"],
}


def gazal(*args: str, env_extra: dict[str, str] | None = None
          ) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "gazal", *args], capture_output=True,
                          text=True, env=env, check=False)


@pytest.fixture(scope="module")
def cases():
    return load_cases(builtin_cases_path())


def test_library_covers_every_hack_in_groups(cases):
    assert len(cases) >= 30
    names = {c.name: c for c in cases}
    for hack, covering in HACKS.items():
        for name in covering:
            assert names[name].kind == "hack", (hack, name)
    groups = {}
    for c in cases:
        groups.setdefault(c.group_key, set()).add(c.kind)
    assert len(groups) >= 3
    assert all({"honest_correct", "honest_wrong", "hack"} <= kinds for kinds in groups.values())


def test_default_reward_passes_the_audit_with_a_margin(cases):
    funcs, weights = build_reward_functions(RewardConfig())
    result = run_audit(cases, funcs, weights)
    assert result.passed, result.summary()
    for r in result.results:
        if r.case.kind != "hack":
            continue
        group = [x for x in result.results if x.group == r.group]
        lowest_wrong = min(x.total for x in group if x.case.kind == "honest_wrong")
        assert r.total < lowest_wrong - 0.1, r.case.name  # not a near miss
    correct = [r.total for r in result.results if r.case.kind == "honest_correct"]
    wrong = [r.total for r in result.results if r.case.kind == "honest_wrong"]
    assert min(correct) > max(wrong) + 1


def test_cli_prints_the_table_and_passes():
    out = gazal("rewards", "audit")
    assert out.returncode == 0, out.stderr
    for name in ("chole_honest_correct", "mi_letter_spam", "wernicke_html_bold_final"):
        assert name in out.stdout
    header = next(line for line in out.stdout.splitlines() if line.startswith("group"))
    assert header.split() == ["group", "case", "kind", "accuracy", "format", "length",
                              "repetition", "structure", "total", "verdict"]
    assert "audit passed: 36 cases in 4 groups" in out.stdout


def test_cli_json_has_one_object_per_case():
    out = gazal("rewards", "audit", "--json")
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(rows) == len(load_cases(builtin_cases_path()))
    for row in rows:
        assert {"name", "kind", "total", "components"} <= set(row)
        assert set(row["components"]) == {"accuracy", "format", "length", "repetition",
                                          "structure"}
        weights = {"accuracy": 1.0, "format": 0.5, "length": 0.5, "repetition": 0.5,
                   "structure": 0.25}
        assert row["total"] == pytest.approx(sum(weights[k] * v
                                                 for k, v in row["components"].items()))


def test_format_only_reward_is_caught(tmp_path):
    recipe = tmp_path / "format_only.yaml"
    recipe.write_text("reward:\n  components: [format]\n  format: {weight: 1.0}\n")
    out = gazal("rewards", "audit", "--recipe", str(recipe))
    assert out.returncode == 1
    assert "audit FAILED" in out.stderr
    # a perfectly formatted copy of the question earns what an honest wrong answer earns
    assert re.search(r"hack 'chole_thinking_copies_question' scores \+1\.000, not below honest "
                     r"wrong 'chole_honest_wrong' \(\+1\.000\)", out.stderr)
    # the same through overrides instead of a recipe
    out = gazal("rewards", "audit", "--accuracy.weight", "0", "--length.weight", "0",
                "--repetition.weight", "0", "--structure.weight", "0")
    assert out.returncode == 1 and "mi_steps_padded_by_repetition" in out.stderr


def accuracy_anywhere(completions, answer, **_):
    """A weak accuracy reward: the gold letter in brackets anywhere in the text."""
    return [1.0 if re.search(rf"\({re.escape(gold)}\)", c if isinstance(c, str)
                             else c[0]["content"]) else 0.0
            for c, gold in zip(completions, answer, strict=True)]


def test_accuracy_read_from_anywhere_is_caught(cases):
    funcs, weights = build_reward_functions(RewardConfig())
    funcs = [accuracy_anywhere if f.__name__ == "accuracy" else f for f in funcs]
    result = run_audit(cases, funcs, weights)
    assert not result.passed
    failed = {r.case.name for r in result.results if not r.ok}
    assert {"chole_answer_only_in_thinking", "chole_several_final_lines",
            "chole_all_letters_listed", "mi_nested_think_tags"} <= failed
    assert all(r.case.kind == "hack" for r in result.results if not r.ok)


def test_malformed_case_lines_are_reported_by_line(tmp_path):
    good = builtin_cases_path().read_text(encoding="utf-8").splitlines()
    broken = tmp_path / "cases.jsonl"
    broken.write_text("\n".join([good[0], good[1], '{"name": "x", "kind": "hack",', good[2]])
                      + "\n", encoding="utf-8")
    out = gazal("rewards", "audit", "--cases", str(broken))
    assert out.returncode == 2
    assert f"{broken}:3: invalid JSON" in out.stderr

    def error_for(record: dict) -> str:
        path = tmp_path / "one.jsonl"
        path.write_text(good[0] + "\n" + json.dumps(record) + "\n", encoding="utf-8")
        with pytest.raises(DataError) as err:
            load_cases(path)
        return str(err.value)

    base = json.loads(good[2])
    assert "one.jsonl:2: field 'kind': expected one of" in error_for({**base, "kind": "cheat"})
    assert "one.jsonl:2: field 'answer'" in error_for({**base, "answer": "Z"})
    assert "one.jsonl:2: field 'name': case name 'chole_honest_correct' already used on " \
           "line 1" in error_for({**base, "name": "chole_honest_correct"})
    assert "one.jsonl:2: unknown field(s) ['complete']" in error_for(
        {**{k: v for k, v in base.items() if k != "completion"}, "complete": "x"})
    assert "field 'completion'" in error_for({**base, "completion": 3})


def test_a_group_without_an_honest_wrong_answer_is_an_error(tmp_path):
    lines = [json.loads(x) for x in builtin_cases_path().read_text().splitlines()]
    kept = [x for x in lines if x["name"] != "pqa_honest_wrong"]
    path = tmp_path / "cases.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in kept))
    with pytest.raises(DataError, match=r"group of case 'pqa_honest_correct'.*no honest_wrong"):
        load_cases(path)


def test_a_missing_tokenizer_folder_is_reported(tmp_path):
    out = gazal("rewards", "audit", "--tokenizer", str(tmp_path / "nope"))
    assert out.returncode == 2 and "--tokenizer" in out.stderr and "no such folder" in out.stderr


def test_audit_with_exact_token_counts(tokenizer_dir):
    out = gazal("rewards", "audit", "--tokenizer", str(tokenizer_dir), "--json")
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in map(json.loads, out.stdout.splitlines())}
    # the huge output is over length.max_tokens in real Qwen3 tokens too
    assert rows["chole_huge_output"]["components"]["length"] == -1.0
    assert rows["chole_honest_correct"]["components"]["length"] > 0.9


# --------------------------------------------------------------------------- --groups


def test_cli_groups_json_under_the_paper_recipe():
    out = gazal("rewards", "audit", "--groups", "--recipe",
                str(ROOT / "recipes" / "gazal-r1-32b" / "grpo.yaml"), "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["scale_rewards"] == "none" and data["loss_type"] == "dapo"
    from gazal.rewards.audit_groups import builtin_groups_path, load_groups

    groups = load_groups(builtin_groups_path())
    assert [g["name"] for g in data["groups"]] == [g.name for g in groups]
    weights = data["weights"]
    for g, src in zip(data["groups"], groups, strict=True):
        assert len(g["completions"]) == len(src.completions)
        totals = [c["total"] for c in g["completions"]]
        mean = sum(totals) / len(totals)
        for c in g["completions"]:
            assert {"total", "advantage", "components"} <= set(c)
            assert c["total"] == pytest.approx(sum(weights[k] * v
                                                   for k, v in c["components"].items()))
            assert c["advantage"] == pytest.approx(c["total"] - mean)  # scale_rewards none
        assert g["failures"] == []


def test_cli_groups_table_flags_trl_default_scaling():
    out = gazal("rewards", "audit", "--groups", "--scale-rewards", "group")
    assert out.returncode == 1
    header = next(line for line in out.stdout.splitlines() if line.startswith("group"))
    assert header.split() == ["group", "#", "accuracy", "format", "length", "repetition",
                              "structure", "total", "advantage", "tokens", "push", "rules"]
    assert "all_wrong_steps: all_wrong:" in out.stderr
    assert "mixed_2_of_8" not in out.stderr
    plain = gazal("rewards", "audit")  # the plain audit keeps working beside it
    assert plain.returncode == 0 and "audit passed" in plain.stdout


def test_bad_group_lines_name_file_line_and_field(tmp_path):
    from gazal.rewards.audit_groups import builtin_groups_path, load_groups

    good = builtin_groups_path().read_text(encoding="utf-8").splitlines()
    base = json.loads(good[0])

    def error_for(record: dict) -> str:
        path = tmp_path / "groups.jsonl"
        path.write_text(good[1] + "\n" + json.dumps(record) + "\n", encoding="utf-8")
        with pytest.raises(DataError) as err:
            load_groups(path)
        return str(err.value)

    assert "groups.jsonl:2: field 'completions': expected a list of at least 2" in error_for(
        {**base, "completions": ["only one"]})
    assert "groups.jsonl:2: field 'completions': completion 1: expected a string" in error_for(
        {**base, "completions": ["a", 3]})
    assert "groups.jsonl:2: field 'answer'" in error_for({**base, "answer": "Z"})
    assert "groups.jsonl:2: field 'prompt'" in error_for({**base, "prompt": None})
    assert "groups.jsonl:2: unknown field(s) ['kind']" in error_for({**base, "kind": "x"})
    path = tmp_path / "broken.jsonl"
    path.write_text(good[0] + "\n{\"name\": \n", encoding="utf-8")
    out = gazal("rewards", "audit", "--groups", str(path))
    assert out.returncode == 2 and f"{path}:2: invalid JSON" in out.stderr
