"""Typed configs of ``gazal data synth`` and ``gazal data curate``.

A data recipe (``recipes/<name>/data.yaml``) has two sections, ``synth:`` and ``curate:``;
each command reads its own section and takes ``--key value`` overrides for it (dotted for
nested keys: ``--teacher.model m``, ``--decontam.ngram_n 8``; a leaf name that is unique
works bare: ``--concurrency 16``).
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from gazal.config import cfg, load_section
from gazal.formatting import SYSTEM_PROMPT

__all__ = ["CategoryConfig", "CurateConfig", "DecontamConfig", "LengthConfig",
           "NearDupConfig", "SeedsConfig", "SemanticConfig", "SynthConfig", "TeacherConfig",
           "load_data_config"]

T = TypeVar("T")

# The student's system prompt for open (vignette) examples: the reasoning format of
# DESIGN.md with a free-text final answer instead of an option letter.
OPEN_SYSTEM_PROMPT = (
    "You are a careful medical expert. Think through the problem step by step inside "
    "<think></think>, writing numbered steps (Step 1:, Step 2:, ...) of clinical reasoning. "
    "After thinking, write '## Clinical Assessment' with a short justification, then end with "
    "exactly one line of the form **Final answer: concise answer**."
)


# --------------------------------------------------------------------------- synth


@dataclass
class TeacherConfig:
    """The model that writes the examples: any OpenAI-compatible endpoint, or a local
    transformers model."""

    backend: Literal["openai", "hf"] = cfg(
        "openai", "teacher backend: 'openai' (any OpenAI-compatible HTTP endpoint: vLLM server, "
                  "TGI, SGLang, hosted APIs) or 'hf' (a local transformers model)")
    model: str = cfg("", "served model name (openai) or local path / Hub id (hf); required",
                     aliases=["teacher_model"])
    base_url: str = cfg("http://localhost:8000/v1", "OpenAI-compatible base URL (openai only)")
    api_key_env: str | None = cfg(
        "OPENAI_API_KEY", "NAME of the environment variable holding the API key (openai only); "
                          "the key itself is never read from or written to any file")
    concurrency: int = cfg(8, "requests in flight at once (openai)")
    requests_per_minute: float | None = cfg(None, "cap on request starts per minute (openai); "
                                                  "null for none")
    max_retries: int = cfg(6, "retries of one request on 429 / 5xx / timeout / malformed reply, "
                              "with exponential backoff and full jitter (openai)")
    timeout_s: float = cfg(600.0, "seconds before one request times out (openai)")
    backoff_base_s: float = cfg(1.0, "first retry waits up to this many seconds, doubling")
    backoff_max_s: float = cfg(60.0, "longest wait between retries")
    extra_body: dict[str, Any] = cfg({}, "extra JSON fields for every request (openai), e.g. "
                                         "{top_k: 20}")
    hf: dict[str, Any] = cfg({}, "extra keyword arguments for the local transformers backend "
                                 "(gazal.generation.hf.HFBackend), e.g. {dtype: bfloat16}")
    max_new_tokens: int = cfg(4096, "longest reply; a reply cut at this length is rejected")
    temperature: float = cfg(0.7, "sampling temperature (>0: rejected attempts are resampled)")
    top_p: float = cfg(0.95, "nucleus sampling")
    thinking: bool = cfg(True, "ask the teacher's chat template for thinking "
                               "(enable_thinking) where it has such a switch")
    price_input_per_1m: float = cfg(0.0, "price per 1M prompt tokens, for the cost estimate "
                                         "(your provider's price list)")
    price_output_per_1m: float = cfg(0.0, "price per 1M completion tokens, for the cost "
                                          "estimate")

    def __post_init__(self) -> None:
        for name in ("concurrency", "max_new_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"teacher.{name} must be >= 1, got {getattr(self, name)}")
        if self.max_retries < 0:
            raise ValueError(f"teacher.max_retries must be >= 0, got {self.max_retries}")
        for name in ("timeout_s", "backoff_max_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"teacher.{name} must be > 0, got {getattr(self, name)}")
        if self.requests_per_minute is not None and not self.requests_per_minute > 0:
            raise ValueError("teacher.requests_per_minute must be > 0 (or null for no cap), "
                             f"got {self.requests_per_minute}")
        if not 0 < self.top_p <= 1 or self.temperature < 0:
            raise ValueError(f"teacher.top_p must be in (0, 1] and teacher.temperature >= 0, "
                             f"got {self.top_p} and {self.temperature}")
        for name in ("price_input_per_1m", "price_output_per_1m"):
            if getattr(self, name) < 0:
                raise ValueError(f"teacher.{name} must be >= 0, got {getattr(self, name)}")


@dataclass
class SeedsConfig:
    """Where the seed questions come from."""

    path: str | None = cfg(None, "seed file: MCQ items (JSONL / JSON in any schema "
                                 "load_items_file reads) or case vignettes (JSONL rows with "
                                 "a text field)", aliases=["seeds_path"])
    benchmark: str | None = cfg(None, "a registered benchmark as seeds (its EVALUATION set: "
                                      "refused unless allow_eval_benchmark)")
    kind: Literal["auto", "mcq", "vignette"] = cfg(
        "auto", "seed kind: 'mcq' (items with options and a gold letter: rejection sampling "
                "on the answer), 'vignette' (free-text cases), or 'auto' (from the first row)")
    text_field: str = cfg("text", "vignette rows: the field holding the case text")
    id_field: str = cfg("id", "vignette rows: the field holding a stable id (else a hash of "
                              "the text)")
    limit: int | None = cfg(None, "use only the first N seeds")
    allow_eval_benchmark: bool = cfg(
        False, "allow seeds that are evaluation benchmark questions (contaminates evaluation: "
               "only for experiments)")


@dataclass
class CategoryConfig:
    """One reasoning category (diagnostic reasoning, treatment planning, ...)."""

    teacher_prompt: str = cfg(
        "{problem}", "the teacher's user message; {problem} is replaced by the question "
                     "(MCQ seeds: rendered with its options) or the vignette plus "
                     "vignette_task")
    vignette_task: str = cfg("", "for vignette seeds: the question asked about the case in "
                                 "this category (also what the student sees)")


@dataclass
class SynthConfig:
    """``gazal data synth``: the teacher writes one example per seed and category."""

    seeds: SeedsConfig = field(default_factory=SeedsConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    categories: dict[str, CategoryConfig] = cfg(
        {}, "reasoning categories, name -> prompts (the recipe defines them)")
    teacher_system_prompt: str = cfg(
        SYSTEM_PROMPT, "the teacher's system message (states the reasoning format)")
    example_system_prompt: str = cfg(
        SYSTEM_PROMPT, "system message stored in MCQ examples (the one gazal eval uses); "
                       "empty for none")
    example_system_prompt_open: str = cfg(
        OPEN_SYSTEM_PROMPT, "system message stored in vignette examples; empty for none")
    max_attempts: int = cfg(4, "k: attempts per (seed, category) before it is given up "
                               "(rejection sampling)", aliases=["k"])
    min_steps: int = cfg(2, "fewest numbered reasoning steps a reply must have")
    require_assessment: bool = cfg(True, "a reply must have the '## Clinical Assessment' "
                                         "section")
    chunk_size: int = cfg(256, "(seed, category) units generated per round; progress is saved "
                               "per example either way")
    seed: int = cfg(0, "sampling seed; each request's seed derives from it, the unit's id "
                       "and the attempt, so a resumed run sends the seeds an unbroken one would")
    max_consecutive_failures: int = cfg(
        16, "stop the run (exit status != 0) after this many teacher requests in a row fail "
            "(unreachable server, bad key, ...); units without a real answer stay to do")
    data_dir: str | None = cfg(None, "benchmark files (for the eval-overlap check of seeds); "
                                     "default $GAZAL_DATA_DIR")

    def __post_init__(self) -> None:
        if not self.categories:
            raise ValueError("synth.categories is empty: the recipe must define at least one "
                             "category with its teacher_prompt")
        for name, cat in self.categories.items():
            fields = {f for _, f, _, _ in string.Formatter().parse(cat.teacher_prompt) if f}
            if fields != {"problem"}:
                raise ValueError(f"categories.{name}.teacher_prompt must contain {{problem}} "
                                 f"and no other {{field}}; found {sorted(fields) or 'none'} "
                                 "(write literal braces as {{ }})")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        if self.max_consecutive_failures < 1:
            raise ValueError("max_consecutive_failures must be at least 1")


# --------------------------------------------------------------------------- curate


@dataclass
class LengthConfig:
    min_words: int = cfg(50, "fewest words in the assistant reply")
    max_words: int = cfg(3000, "most words in the assistant reply (0: no limit)")


@dataclass
class SemanticConfig:
    """Optional second decontamination stage: an LLM judge on the near misses only."""

    enabled: bool = cfg(False, "ask a judge model (a teacher backend) whether each near miss "
                               "restates its benchmark item; off by default (it needs a served "
                               "model; costs are in the report)")
    candidate_score: float = cfg(0.25, "near misses: examples whose best distinctive score is "
                                       "at least this (and under min_score)")
    max_candidates: int = cfg(2000, "judge at most this many near misses (highest scores "
                                    "first); the report counts the rest")
    max_chars: int = cfg(4000, "characters of the example shown to the judge")
    # the judge's backend, model, endpoint, concurrency and prices; it is always asked
    # greedily for at most 8 tokens without thinking (a yes / no answer)
    judge: TeacherConfig = field(default_factory=TeacherConfig)


@dataclass
class DecontamConfig:
    rule: Literal["distinctive", "ngram"] = cfg(
        "distinctive", "distinctive: rarity-weighted word pairs of the item, numbers "
                       "normalised, template lines discounted, tolerant of word edits "
                       "(docs/data.md); ngram: word 13-gram coverage (exact wording only)")
    ngram_n: int = cfg(13, "n of the word n-grams shared with a benchmark item that flag an "
                           "example (GPT-3's 13-gram rule)", aliases=["n"])
    boilerplate_min_items: int = cfg(
        3, "an n-gram found in this many distinct benchmark questions is boilerplate and is "
           "not used")
    short_min_words: int = cfg(4, "questions shorter than ngram_n words are matched whole when "
                                  "they have at least this many words")
    short_min_options: int = cfg(2, "a short question matches only with at least this many of "
                                    "its option texts present too")
    tiny_min_options: int = cfg(3, "questions under short_min_words words match whole with ALL "
                                   "their options present, if they have at least this many")
    min_coverage: float = cfg(0.2, "flag when the item's n-grams found in the example are at "
                                   "least this fraction of the item's n-grams (0: any one "
                                   "shared n-gram flags, GPT-3's rule)")
    min_ngram_matches: int = cfg(10, "...or at least this many of them, whatever the fraction")
    edit_ngram_n: int = cfg(2, "rule distinctive: n of the word n-grams scored (short "
                               "n-grams survive word edits)")
    max_df: int = cfg(10, "rule distinctive: an n-gram in more than this many distinct "
                          "benchmark questions is template text and weighs nothing")
    min_score: float = cfg(0.46, "rule distinctive: flag when the rarity-weighted share of the "
                                "item found in the example is at least this (chosen on a "
                                "tuning half of planted items; docs/data.md)")
    min_evidence: float = cfg(2.5, "rule distinctive: ...and the matched weight is at least "
                                   "this many times the weight of the rarest n-gram")
    short_question_weight: float = cfg(
        6.0, "rule distinctive: items whose question (and context) weigh less than this many "
             "rarest n-grams also need their options found")
    short_option_coverage: float = cfg(0.6, "rule distinctive: ...this share of their "
                                            "option weight")
    window_factor: float = cfg(1.5, "rule distinctive: the matches must lie within this many "
                                    "times the item's length (plus 10 words)")
    semantic: SemanticConfig = field(default_factory=SemanticConfig)
    benchmarks: list[str] = cfg([], "benchmarks to check (empty: every registered one)")
    extra_files: list[str] = cfg([], "more evaluation item files to check against")
    skip_missing_benchmarks: bool = cfg(
        False, "go on when a benchmark cannot be loaded (the report marks it unchecked)")


@dataclass
class NearDupConfig:
    enabled: bool = cfg(True, "remove near-duplicates")
    shingle_n: int = cfg(5, "word shingle size for MinHash")
    num_perm: int = cfg(128, "MinHash signature length (a power of two)")
    bands: int = cfg(32, "LSH bands (must divide num_perm)")
    threshold: float = cfg(0.8, "estimated Jaccard similarity from which two examples are "
                                "near-duplicates")


@dataclass
class CurateConfig:
    """``gazal data curate``: validate, bound, de-duplicate, decontaminate, balance."""

    min_steps: int = cfg(2, "fewest numbered reasoning steps")
    require_assessment: bool = cfg(True, "require the '## Clinical Assessment' section")
    check_answers: bool = cfg(True, "rows with options and a gold answer: the final answer "
                                    "must extract to the gold letter")
    length: LengthConfig = field(default_factory=LengthConfig)
    decontam: DecontamConfig = field(default_factory=DecontamConfig)
    near_dup: NearDupConfig = field(default_factory=NearDupConfig)
    review: list[str] = cfg([], "clinician review decisions (files or folders written by gazal "
                                "data review import): rejected ids are removed as "
                                "clinician_rejected, reviewed kept rows carry the decisions")
    max_per_category: int | None = cfg(None, "keep at most this many examples per category "
                                             "(a seeded random choice); null: no cap")
    seed: int = cfg(0, "seed of the category-cap sample")
    strict: bool = cfg(False, "stop at the first malformed input line instead of skipping "
                              "and reporting it")
    batch_words: int = cfg(2_000_000, "words hashed per batch (memory / speed trade-off)")


# --------------------------------------------------------------------------- loading


def load_data_config(cls: type[T], section: Literal["synth", "curate"],
                     recipe: str | Path | None, overrides: Sequence[str] = ()) -> T:
    """Build ``cls`` from the ``section`` of a data recipe plus ``--key value`` overrides."""
    return load_section(cls, recipe, section, overrides, sections=("synth", "curate"))
