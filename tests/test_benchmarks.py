"""Benchmark loaders: every schema (fixtures written here), the registry, and integration
over the real files in $GAZAL_DATA_DIR."""

from __future__ import annotations

import json

import pytest

from gazal.benchmarks import BENCHMARKS, Item, items_checksum, load_benchmark, load_items_file
from gazal.benchmarks.registry import normalise_rows
from gazal.io import DataError

EXPECTED = {"medqa": 1273, "medmcqa": 4183, "pubmedqa": 1000, "pubmedqa_500": 500,
            "mmlu_pro_medical": 1535, "gpqa_medical": 390}


def make_data_dir(tmp_path):
    """A miniature data dir with every upstream schema."""
    norm = tmp_path / "benchmarks" / "normalized"
    orig = tmp_path / "benchmarks" / "original"
    for d in (norm, orig / "medqa", orig / "pubmedqa", orig / "mmlu_pro"):
        d.mkdir(parents=True, exist_ok=True)
    q1 = {"question": "Q1?", "options": {"A": "a1", "B": "b1", "C": "c1", "D": "d1"},
          "answer_idx": "B", "answer": "b1"}
    (norm / "MedQA_USLME_test.json").write_text(json.dumps([q1]))
    (orig / "medqa" / "test_4options.jsonl").write_text(
        json.dumps({**q1, "meta_info": "step1", "metamap_phrases": []}) + "\n")
    ctx = ["Background one.", "Results two."]
    (orig / "pubmedqa" / "ori_pqal.json").write_text(json.dumps({
        "111": {"QUESTION": "Does X help?", "CONTEXTS": ctx, "final_decision": "no",
                "YEAR": "2001"},
        "222": {"QUESTION": "Is Y safe?", "CONTEXTS": ["Only context."],
                "final_decision": "maybe"}}))
    (orig / "pubmedqa" / "test_ground_truth.json").write_text(json.dumps({"222": "maybe"}))
    from gazal.benchmarks.schemas import PUBMEDQA_INSTRUCTION

    (norm / "PubMedQA_test.json").write_text(json.dumps([
        {"question": " ".join(ctx) + PUBMEDQA_INSTRUCTION + "Does X help?",
         "options": {"A": "yes", "B": "no", "C": "maybe"}, "answer_idx": "B", "answer": "no"}]))
    mm = [{"question_id": 1, "question": "Bio?", "options": ["x", "y", "z"], "answer": "C",
           "answer_index": 2, "category": "biology", "src": "s"},
          {"question_id": 2, "question": "Psy?", "options": ["x", "y"], "answer": "A",
           "answer_index": 0, "category": "psychology", "src": "s"}]
    (orig / "mmlu_pro" / "mmlu_pro_test_health_biology_psychology.jsonl").write_text(
        "\n".join(json.dumps(r) for r in mm) + "\n")
    return tmp_path


def test_sources_normalise_to_the_same_items(tmp_path):
    d = make_data_dir(tmp_path)
    a = load_benchmark("medqa", d, source="normalized")
    b = load_benchmark("medqa", d, source="original")
    assert a.items[0].id == b.items[0].id and a.sha256 == b.sha256
    assert a.items[0].meta == {"step": "step1"}  # enriched from the upstream file
    p1 = load_benchmark("pubmedqa", d, source="normalized").items[0]
    p2 = load_benchmark("pubmedqa", d, source="original").items
    assert p1.id == p2[0].id and p1.context == "Background one. Results two."
    assert p1.question == "Does X help?" and p1.answer == "B"


def test_pubmedqa_official_split_and_mmlu_filter(tmp_path):
    d = make_data_dir(tmp_path)
    split = load_benchmark("pubmedqa_500", d)
    assert [i.meta["pmid"] for i in split.items] == ["222"] and split.items[0].answer == "C"
    mm = load_benchmark("mmlu_pro_medical", d)
    assert mm.n == 1 and mm.items[0].options == {"A": "x", "B": "y", "C": "z"}
    assert mm.items[0].meta["category"] == "biology"


def test_missing_split_pmids_are_an_error(tmp_path):
    d = make_data_dir(tmp_path)
    (d / "benchmarks/original/pubmedqa/test_ground_truth.json").write_text('{"999": "yes"}')
    with pytest.raises(DataError, match=r"1 PMIDs of the split are not in ori_pqal\.json"):
        load_benchmark("pubmedqa_500", d)


def test_bad_row_names_file_row_and_field(tmp_path):
    d = make_data_dir(tmp_path)
    p = d / "benchmarks/normalized/MedQA_USLME_test.json"
    p.write_text(json.dumps([{"question": "Q", "options": {"A": "a", "B": "b"},
                              "answer_idx": "E"}]))
    with pytest.raises(DataError) as e:
        load_benchmark("medqa", d, source="normalized")
    assert "MedQA_USLME_test.json [row 1]" in str(e.value)
    assert "field 'answer_idx'" in str(e.value) and "'E'" in str(e.value)
    bad = d / "bad.jsonl"
    bad.write_text(json.dumps({"question": "Q", "options": ["a", "b"], "answer": "A"}) + "\n"
                   + json.dumps({"question": "", "options": ["a"], "answer": "A"}) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl:2: field 'question'"):
        load_items_file(bad)


def test_hub_rows_normalise(monkeypatch):
    """Hub schemas (no network: the rows are what load_dataset returns)."""
    medmcqa = [{"id": "x", "question": "Q?", "opa": "a", "opb": "b", "opc": "c", "opd": "d",
                "cop": 2, "choice_type": "single", "exp": "", "subject_name": "Anatomy",
                "topic_name": None}]
    items = normalise_rows("medmcqa", enumerate(medmcqa), "medmcqa_hub", "hf://medmcqa")
    assert items[0].answer == "C" and items[0].meta == {"subject_name": "Anatomy"}
    pqa = [{"pubid": 5, "question": "Q?", "context": {"contexts": ["a", "b"]},
            "long_answer": "", "final_decision": "yes"}]
    it = normalise_rows("pubmedqa", enumerate(pqa), "pubmedqa_hub", "hf://pqa")[0]
    assert it.context == "a b" and it.answer == "A" and it.meta == {"pmid": "5"}

    import datasets

    calls = {}

    def fake_load(path, name=None, split=None, revision=None):
        calls.update(path=path, name=name, split=split)
        return medmcqa

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    monkeypatch.delenv("GAZAL_DATA_DIR", raising=False)
    b = load_benchmark("medmcqa", None)
    assert calls == {"path": "openlifescienceai/medmcqa", "name": None, "split": "validation"}
    assert b.source == "hub:openlifescienceai/medmcqa" and b.n == 1


def test_hub_failure_says_what_to_do(monkeypatch):
    import datasets

    def offline(*a, **k):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    monkeypatch.delenv("GAZAL_DATA_DIR", raising=False)
    with pytest.raises(DataError, match="Offline\\? Pass --data-dir"):
        load_benchmark("medqa", None)


def test_ids_are_stable_and_repeats_numbered():
    rows = [{"question": "Q", "options": {"A": "a", "B": "b"}, "answer_idx": "A"}] * 3
    items = normalise_rows("gpqa_medical", enumerate(rows), "normalized", "f")
    assert items[1].id == items[0].id + "-r2" and items[2].id == items[0].id + "-r3"
    again = normalise_rows("gpqa_medical", enumerate(rows), "normalized", "g")
    assert [i.id for i in again] == [i.id for i in items]


def test_checksum_ignores_order_and_meta():
    a = Item("x-1", "x", "Q", {"A": "a", "B": "b"}, "A", meta={"k": 1})
    b = Item("x-2", "x", "Q2", {"A": "a", "B": "b"}, "B")
    assert items_checksum([a, b]) == items_checksum([b, Item(**{**a.to_dict(), "meta": {}})])
    assert items_checksum([a, b]) != items_checksum([a])


def test_item_validation():
    with pytest.raises(ValueError, match="answer 'C' is not one of"):
        Item("i", "b", "Q", {"A": "a", "B": "b"}, "C")
    with pytest.raises(DataError, match="field 'options'"):
        Item.from_dict({"id": "i", "benchmark": "b", "question": "Q", "options": 3,
                        "answer": "A"}, path="f.jsonl", line=4)
    it = Item.from_dict({"id": "i", "benchmark": "b", "question": "Q",
                         "options": ["x", "y"], "answer": "b"})
    assert it.options == {"A": "x", "B": "y"} and it.answer == "B"
    assert Item.from_dict(it.to_dict()) == it


def test_unknown_benchmark_suggests():
    with pytest.raises(KeyError, match="did you mean 'medqa'"):
        load_benchmark("medqaa")


# --------------------------------------------------------------------------- integration


@pytest.mark.parametrize("name", list(EXPECTED))
def test_real_benchmarks_load_with_pinned_checksums(data_dir, name):
    b = load_benchmark(name, data_dir)
    assert b.n == EXPECTED[name] == BENCHMARKS[name].expected_n
    assert b.known_version is not None, f"{name}: checksum {b.sha256} is not pinned"
    assert len({i.id for i in b.items}) == b.n


@pytest.mark.parametrize("name", ["medqa", "pubmedqa", "mmlu_pro_medical"])
def test_real_upstream_schemas_agree(data_dir, name):
    a = load_benchmark(name, data_dir, source="normalized")
    b = load_benchmark(name, data_dir, source="original")
    assert sorted(i.id for i in a.items) == sorted(i.id for i in b.items)
    if name != "mmlu_pro_medical":
        assert a.sha256 == b.sha256
    else:  # the revised file differs from the 2024 release in gold answers only
        assert a.sha256 != b.sha256
        pairs = list(zip(a.items, b.items, strict=True))
        assert all(x.id == y.id and x.options == y.options for x, y in pairs)
        assert sum(x.answer != y.answer for x, y in pairs) >= 1


def test_real_categories(data_dir):
    from collections import Counter

    medqa = load_benchmark("medqa", data_dir)
    assert Counter(i.meta["step"] for i in medqa.items) == {"step1": 679, "step2&3": 594}
    mmlu = load_benchmark("mmlu_pro_medical", data_dir)
    assert Counter(i.meta["category"] for i in mmlu.items) == {"health": 818, "biology": 717}
