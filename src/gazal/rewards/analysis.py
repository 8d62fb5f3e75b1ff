"""What every reward component needs to know about a completion, computed once per batch.

TRL calls each reward function in turn with the same batch (the same ``completions`` list and
column lists). :class:`Analyzer` parses the batch on the first call and hands the same
:class:`Analysis` objects to the following components, so the thinking block, the steps, the
final answer line, the extraction and the n-gram statistics are computed once, and each only
when a component asks for it.

Inputs a reward function receives from TRL 1.16 (``GRPOTrainer._calculate_rewards``):
``prompts``, ``completions`` (strings, or lists of messages for conversational data),
``completion_ids`` (token ids as generated, ending with an EOS id unless the generation was cut
at ``max_completion_length``), every dataset column except ``prompt`` (as lists, one value
per completion), ``trainer_state``, ``log_extra`` and ``log_metric``.

Columns gazal reads (names configurable): ``answer`` (gold letter or option text) and
``options`` (letter -> text, or a list). Optional: ``truncated`` (bools: the completion was cut
by its producer), ``prompts`` (for the copied-from-prompt measure).
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from itertools import islice
from typing import Any

import numpy as np

from gazal.benchmarks.item import gold_letter, options_from
from gazal.extraction import Extraction, extract_answer, normalize_option_text
from gazal.formatting import (
    FINAL_ANSWER_LINE,
    THINK_CLOSE,
    THINK_OPEN,
    ParsedResponse,
    completion_text,
    parse_response,
    parse_steps,
)

from .config import RewardConfig

log = logging.getLogger("gazal")

__all__ = ["Analysis", "Analyzer", "FinalLine", "ngram_keys", "word_hashes"]

# A content word: two or more letters (any script); "A", "(C)" and numbers are not content.
CONTENT_WORD = re.compile(r"[^\W\d_]{2,}")
ASSESSMENT_HEADING = re.compile(r"^[ \t]*#{1,6}[ \t]*clinical[ \t]+assessment[ \t]*:?[ \t]*$",
                                re.IGNORECASE | re.MULTILINE)
# An option letter standing alone (not part of a word), e.g. "C", "(C)", "C.", "C,".
LETTER_TOKEN = re.compile(r"(?<![^\W_])([A-Z])(?![^\W_])")
_MOD = 1 << 64
# A word's hash is the polynomial sum(b_j * P^(end-j)) mod 2^64 over its bytes (P: the 64-bit
# FNV prime); n-gram keys combine word hashes with a second odd multiplier M (2^64 / golden
# ratio). Both odd, so invertible mod 2^64, which the prefix-sum trick below needs.
_P = 0x100000001B3
_P_INV = pow(_P, -1, _MOD)
_M = np.uint64(0x9E3779B97F4A7C15)
_POWERS: dict[int, np.ndarray] = {}
_PROMPT_CACHE_SIZE = 4096
_FINAL_PREFIX = "**Final answer:"  # how every FINAL_ANSWER_LINE starts
_THINK_START = re.compile(r"\s*" + re.escape(THINK_OPEN))

GATE_REASONS = ("valid", "truncated", "thinking", "no_steps", "degenerate", "final_line")


class cached_property:
    """A computed-once attribute. functools.cached_property takes a lock on every first access
    (Python <= 3.11), which costs more than most of the facts computed here."""

    def __init__(self, fn: Callable[[Any], Any]):
        self.fn = fn
        self.name = fn.__name__
        self.__doc__ = fn.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, cls: type | None = None) -> Any:
        if obj is None:
            return self
        value = obj.__dict__[self.name] = self.fn(obj)
        return value


def _powers(base: int, n: int) -> np.ndarray:
    """base^0 .. base^(n-1) mod 2^64 (cached, grown by doubling)."""
    have = _POWERS.get(base)
    if have is None or len(have) < n:
        size = max(n, 2 * len(have) if have is not None else 4096)
        arr = np.full(size, base, dtype=np.uint64)
        arr[0] = 1
        have = np.cumprod(arr, dtype=np.uint64)  # wraps mod 2^64, as intended
        _POWERS[base] = have
    return have[:n]


def word_hashes(text: str) -> np.ndarray:
    """The hash of each word of ``text``, in order.

    Words are runs of bytes above the ASCII space (so split at spaces, tabs, newlines and other
    control characters) with ASCII letters lowercased: Yeo et al.'s ``text.lower().split()``
    done with numpy over the UTF-8 bytes, so a 2,000-token completion costs tens of
    microseconds, and deterministic (no per-process string hash seed).
    """
    data = np.frombuffer(text.encode("utf-8", "replace"), dtype=np.uint8)
    n = len(data)
    if n == 0:
        return np.empty(0, dtype=np.uint64)
    # in_word padded with a 0 at both ends; its steps are +1 at a word start, -1 after its end
    padded = np.zeros(n + 2, dtype=np.int8)
    np.greater(data, 32, out=padded[1:-1].view(np.bool_))
    steps = padded[1:] - padded[:-1]
    starts = np.flatnonzero(steps == 1)
    ends = np.flatnonzero(steps == -1)  # exclusive
    lower = data + ((data - np.uint8(65)) < 26).view(np.uint8) * np.uint8(32)  # A-Z -> a-z
    weighted = lower.astype(np.uint64)
    weighted *= _powers(_P_INV, n)
    # prefix[i] = sum_{j<i} b_j * P^-j, so a word's sum_{j=s..e-1} b_j P^(e-1-j)
    # = (prefix[e] - prefix[s]) * P^(e-1)  (all mod 2^64).
    prefix = np.empty(n + 1, dtype=np.uint64)
    prefix[0] = 0
    np.cumsum(weighted, out=prefix[1:])
    return (prefix[ends] - prefix[starts]) * _powers(_P, n)[ends - 1]


def ngram_keys(units: np.ndarray, n: int) -> np.ndarray:
    """One 64-bit key per n-gram of ``units`` (uint64 word hashes or token ids), in order.

    Keys combine the n members with a wrapping polynomial hash; two different n-grams share a
    key with probability ~2^-64, which no count here can notice.
    """
    m = len(units) - n + 1
    if m <= 0:
        return np.empty(0, dtype=np.uint64)
    key = units[:m].copy()
    for j in range(1, n):
        key *= _M
        key += units[j:j + m]
    return key


def _sorted_unique(keys: np.ndarray) -> np.ndarray:
    """The distinct keys, sorted."""
    if len(keys) < 2:
        return keys
    s = np.sort(keys)
    return s[np.concatenate(([True], s[1:] != s[:-1]))]


def _repeated_fraction_sorted(keys: np.ndarray) -> float:
    """1 - distinct / all over sorted keys (0 when there are none)."""
    if len(keys) < 2:
        return 0.0
    return float(np.count_nonzero(keys[1:] == keys[:-1])) / len(keys)


def id_units(ids: Sequence[int]) -> np.ndarray:
    """Token ids as uint64."""
    return np.asarray(ids, dtype=np.int64).reshape(-1).view(np.uint64)


def _final_lines(text: str) -> list[re.Match[str]]:
    """Every canonical final answer line, found by substring search first (most completions
    hold one or none, so the regex runs only where a line can start)."""
    out = []
    pos = text.find(_FINAL_PREFIX)
    while pos != -1:
        if pos == 0 or text[pos - 1] == "\n":
            m = FINAL_ANSWER_LINE.match(text, pos)
            if m:
                out.append(m)
        pos = text.find(_FINAL_PREFIX, pos + 1)
    return out



def content_run(k: int) -> re.Pattern[str]:
    """A pattern that finds k content words (2+ letters, whole runs) in a text."""
    return re.compile(r"(?:(?<![^\W\d_])[^\W\d_]{2,}(?![^\W\d_])[\s\S]*?)" + f"{{{k}}}")


class FinalLine:
    """The canonical final answer line(s) of a completion (``formatting.FINAL_ANSWER_LINE``)."""

    __slots__ = ("count", "in_answer", "is_last", "letter", "mentions", "trailing_names_option")

    def __init__(self, text: str, answer_start: int, options: Mapping[str, str],
                 norm_options: Mapping[str, str]):
        matches = _final_lines(text)
        self.count = len(matches)
        # Every "final answer" in the answer section, canonical or not: a second one hidden
        # by markup the extractor skips (struck-through, HTML) must still invalidate the line.
        self.mentions = text[answer_start:].lower().count("final answer")
        self.letter: str | None = None
        self.in_answer = self.is_last = self.trailing_names_option = False
        if not matches:
            return
        m = matches[-1]
        self.in_answer = m.start() >= answer_start
        self.letter = _line_letter(m.group("letter"), m.group("text"), options, norm_options)
        trailing = text[m.end():].strip()
        self.is_last = not trailing
        if trailing:
            self.trailing_names_option = _names_option(trailing, options, norm_options)


def _line_letter(letter: str | None, body: str, options: Mapping[str, str],
                 norm_options: Mapping[str, str]) -> str | None:
    """The one option a final answer line names, or None when it names none or several.

    ``(X)`` alone, ``(X) <option X's text>``, or ``<one option's text>``; texts compare
    after :func:`gazal.extraction.normalize_option_text` (case, spacing, punctuation).
    Anything else (another letter, a paraphrase, two texts) names no single option.
    """
    body_norm = normalize_option_text(body) if body.strip() else ""
    if letter:
        if letter not in options:
            return None
        return letter if not body_norm or body_norm == norm_options[letter] else None
    hits = [k for k, v in norm_options.items() if v and v == body_norm]
    return hits[0] if len(hits) == 1 else None


def _names_option(text: str, options: Mapping[str, str], norm_options: Mapping[str, str]) -> bool:
    """Does ``text`` name any option: a standalone option letter or an option's full text?"""
    if any(m.group(1) in options for m in LETTER_TOKEN.finditer(text)):
        return True
    norm = f" {normalize_option_text(text)} "
    return any(v and f" {v} " in norm for v in norm_options.values())


class Analysis:
    """Lazily computed facts about one completion; see docs/rewards.md for each rule."""

    def __init__(self, analyzer: Analyzer, text: str, gold: str, options: dict[str, str],
                 norm_options: dict[str, str], prompt_keys: np.ndarray | None,
                 ids: Sequence[int] | None, ids_from_trainer: bool, flagged_truncated: bool):
        self.analyzer = analyzer
        self.cfg = analyzer.cfg
        self.text = text
        self.gold = gold
        self.options = options
        self.norm_options = norm_options
        self.prompt_keys = prompt_keys
        self.ids = ids
        self.ids_from_trainer = ids_from_trainer
        self.flagged_truncated = flagged_truncated

    # ------------------------------------------------------------------ length / truncation

    @cached_property
    def parsed(self) -> ParsedResponse:
        return parse_response(self.text)

    @cached_property
    def ended_with_eos(self) -> bool | None:
        """Whether the trainer's token ids end with an EOS/pad id (None: unknown)."""
        eos = self.analyzer.eos_ids
        if not self.ids_from_trainer or self.ids is None or not eos:
            return None
        return len(self.ids) > 0 and int(self.ids[-1]) in eos

    @cached_property
    def n_tokens(self) -> int:
        """Completion length in tokens: the trainer's ids (without the final EOS), else the
        tokenizer's count, else ceil(characters / length.chars_per_token)."""
        if self.ids is not None:
            return len(self.ids) - (1 if self.ended_with_eos else 0)
        return math.ceil(len(self.text) / self.cfg.length.chars_per_token)

    @cached_property
    def over_length(self) -> bool:
        return self.n_tokens >= self.cfg.length.max_tokens

    @cached_property
    def truncated(self) -> bool:
        """Cut or unfinished: thinking never closed, no EOS at the end of the trainer's ids,
        flagged by a ``truncated`` column, or at least ``length.max_tokens`` long."""
        return (self.parsed.truncated or self.ended_with_eos is False or self.flagged_truncated
                or self.over_length)

    # ------------------------------------------------------------------ thinking and steps

    @cached_property
    def think_ok(self) -> bool:
        """Exactly one thinking block, at the start, closed (``format.think_in_prompt``: the
        completion holds only the closing tag)."""
        text = self.text
        n_open, n_close = text.count(THINK_OPEN), text.count(THINK_CLOSE)
        if n_close != 1:
            return False
        if self.cfg.format.think_in_prompt:
            return n_open == 0
        return n_open == 1 and _THINK_START.match(text) is not None

    @cached_property
    def steps(self) -> list[tuple[int, str]]:
        thinking = self.parsed.thinking
        return parse_steps(thinking) if thinking else []

    @cached_property
    def n_content_steps(self) -> int:
        """Steps that carry content: ``structure.min_step_words`` words of two or more letters,
        not a repeat of an earlier step (case aside); 0 for a degenerate response. Counting
        stops at the most any reader needs (the structure cap, the thinking gate's minimum)."""
        if self.degenerate:
            return 0
        enough = self.analyzer.step_words_pattern.search
        limit = max(self.cfg.structure.cap, self.cfg.gates.min_steps)
        seen: set[str] = set()
        count = 0
        for _, body in self.steps:
            key = body.lower()
            if key not in seen and enough(body) is not None:
                count += 1
                if count >= limit:
                    break
            seen.add(key)
        return count

    @cached_property
    def steps_ok(self) -> bool:
        """The format's steps: numbered 1, 2, ... in order, none empty (a word of two or more
        letters). Form only: whether the steps carry content is the gates' and structure's
        business, so a format-only reward stays as weak as it is and the audit can show it."""
        steps = self.steps
        return (bool(steps) and [n for n, _ in steps] == list(range(1, len(steps) + 1))
                and all(CONTENT_WORD.search(body) for _, body in steps))

    # ------------------------------------------------------------------ degeneracy

    @cached_property
    def _words(self) -> np.ndarray:
        return word_hashes(self.text)

    def word_ngrams(self, n: int) -> np.ndarray:
        """The word n-gram keys, sorted (cached per n)."""
        cache = self.__dict__.setdefault("_word_ngram_cache", {})
        if n not in cache:
            keys = ngram_keys(self._words, n)
            keys.sort()
            cache[n] = keys
        return cache[n]

    @cached_property
    def repeated_words_fraction(self) -> float:
        return _repeated_fraction_sorted(self.word_ngrams(self.cfg.gates.ngram_size))

    @cached_property
    def copied_fraction(self) -> float:
        """Fraction of the completion's word n-grams (counting repeats) that also occur in the
        prompt; 0 without a prompt."""
        pk = self.prompt_keys
        keys = self.word_ngrams(self.cfg.gates.ngram_size)
        if pk is None or len(pk) == 0 or len(keys) == 0:
            return 0.0
        # Each distinct prompt n-gram's occurrences in the completion's sorted keys.
        hits = np.searchsorted(keys, pk, side="right") - np.searchsorted(keys, pk, side="left")
        return float(hits.sum()) / len(keys)

    @cached_property
    def degenerate(self) -> bool:
        gates = self.cfg.gates
        return gates.degenerate and (
            self.repeated_words_fraction >= gates.max_repeated_fraction
            or self.copied_fraction >= gates.max_copied_fraction)

    @cached_property
    def repetition_fraction(self) -> float:
        """The repetition component's measure: repeated n-gram fraction over words or ids."""
        rep = self.cfg.repetition
        if rep.unit == "tokens" and self.ids is not None:
            keys = ngram_keys(id_units(self.ids), rep.ngram_size)
            keys.sort()
            return _repeated_fraction_sorted(keys)
        return _repeated_fraction_sorted(self.word_ngrams(rep.ngram_size))

    # ------------------------------------------------------------------ answer section

    @cached_property
    def answer_start(self) -> int:
        close = self.text.rfind(THINK_CLOSE)
        return 0 if close == -1 else close + len(THINK_CLOSE)

    @cached_property
    def final(self) -> FinalLine:
        return FinalLine(self.text, self.answer_start, self.options, self.norm_options)

    @cached_property
    def extraction(self) -> Extraction:
        """The shared extractor (the one evaluation uses) over the whole completion."""
        return extract_answer(self.text, self.options)

    @cached_property
    def final_line_ok(self) -> bool:
        """The accuracy gate's final-line test: exactly one canonical line in the completion,
        after the thinking, naming one option, read the same by the extractor, and nothing
        after it that names an option."""
        f = self.final
        return (f.count == 1 and f.mentions == 1 and f.in_answer and f.letter is not None
                and self.extraction.letter == f.letter and not f.trailing_names_option)

    @cached_property
    def layout_ok(self) -> bool:
        """The reasoning format's layout, whatever the answer: one closed thinking block at
        the start with numbered non-empty steps, the assessment, and exactly one canonical
        final answer line that ends the completion (it need not name an option)."""
        f = self.final
        return (not self.truncated and self.think_ok and self.steps_ok and self.assessment_ok
                and f.count == 1 and f.mentions == 1 and f.in_answer and f.is_last)

    @cached_property
    def assessment_ok(self) -> bool:
        """One '## Clinical Assessment' heading after the thinking, followed by at least
        ``format.min_assessment_words`` words before the final answer line (or the end)."""
        start = self.answer_start
        if self.parsed.truncated:
            return False
        section = self.text[start:]
        headings = list(ASSESSMENT_HEADING.finditer(section))
        if len(headings) != 1:
            return False
        body = section[headings[0].end():]
        m = FINAL_ANSWER_LINE.search(body)
        end = m.start() if m else len(body)
        need = self.cfg.format.min_assessment_words
        words = sum(1 for _ in islice(CONTENT_WORD.finditer(body, 0, end), need))
        return words >= need

    # ------------------------------------------------------------------ gates

    @cached_property
    def gate(self) -> str:
        """Why the answer does not count ("valid" when it does); see ``GATE_REASONS``."""
        gates = self.cfg.gates
        if self.truncated:
            return "truncated"
        if gates.thinking and not self.think_ok:
            return "thinking"
        if gates.degenerate and self.degenerate:
            return "degenerate"
        if gates.thinking and self.n_content_steps < gates.min_steps:
            return "no_steps"
        if gates.final_answer_line and not self.final_line_ok:
            return "final_line"
        return "valid"

    @property
    def valid(self) -> bool:
        return self.gate == "valid"

    @cached_property
    def correct(self) -> bool:
        """The answer counts (all enabled gates pass) and is the gold letter."""
        return self.valid and self.extraction.letter == self.gold


# ---------------------------------------------------------------------------- batches


def resolve_options(value: Any) -> dict[str, str]:
    """Options from a dataset cell: a letter -> text mapping (``None`` values, which Arrow adds
    when rows have different letters, are dropped), a list of texts, or a JSON string."""
    if isinstance(value, str):
        value = json.loads(value)
    if isinstance(value, Mapping):
        value = {k: v for k, v in value.items() if v is not None}
    return options_from(value)


def prompt_text(prompt: Any) -> str:
    """Text of a prompt: a string, or every message's content for conversational prompts."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, Mapping):
        return str(prompt.get("content", ""))
    if isinstance(prompt, Sequence):
        return "\n".join(prompt_text(m) for m in prompt)
    return ""


class Analyzer:
    """Builds (and for one batch, keeps) the :class:`Analysis` of each completion.

    ``tokenizer`` (optional) counts tokens when the trainer gives no ``completion_ids`` and
    names the EOS/pad ids that mark a finished generation. ``cache=False`` recomputes on
    every call (only for measuring what the cache saves).
    """

    def __init__(self, cfg: RewardConfig, tokenizer: Any = None, *, cache: bool = True):
        self.cfg = cfg
        self.tokenizer = tokenizer
        self.cache = cache
        eos = {int(i) for i in cfg.eos_token_ids}
        for attr in ("eos_token_id", "pad_token_id"):
            value = getattr(tokenizer, attr, None) if tokenizer is not None else None
            if isinstance(value, int):
                eos.add(value)
        self.eos_ids = frozenset(eos)
        self.step_words_pattern = content_run(cfg.structure.min_step_words)
        self._last: tuple[tuple[Any, ...], list[Analysis]] | None = None
        self._prompt_keys: dict[str, np.ndarray] = {}
        self._questions: dict[Any, tuple[str, dict[str, str], dict[str, str]]] = {}
        self._warned_no_eos = False

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_last"] = None
        state["_prompt_keys"] = {}
        state["_questions"] = {}
        return state

    def batch(self, completions: Sequence[Any], columns: Mapping[str, Any]) -> list[Analysis]:
        """The analyses of a batch (the same objects for repeated calls with the same lists)."""
        cfg = self.cfg
        refs = (completions, columns.get(cfg.answer_column), columns.get(cfg.options_column),
                columns.get("prompts"), columns.get("completion_ids"), columns.get("truncated"))
        last = self._last
        if last is not None and all(a is b for a, b in zip(last[0], refs, strict=True)):
            return last[1]
        analyses = self._analyze(completions, columns)
        if self.cache:
            self._last = (refs, analyses)
        self._log(analyses, columns)
        return analyses

    def _column(self, columns: Mapping[str, Any], name: str, n: int) -> Sequence[Any]:
        if name not in columns or columns[name] is None:
            raise ValueError(
                f"gazal rewards need the dataset column '{name}' (one value per completion); "
                f"got columns: {', '.join(sorted(k for k in columns if k != 'trainer_state'))}. "
                "Set reward.answer_column / reward.options_column to the names your data uses.")
        values = columns[name]
        if len(values) != n:
            raise ValueError(f"column '{name}' has {len(values)} values for {n} completions")
        return values

    def _prompt_ngram_keys(self, prompt: Any) -> np.ndarray | None:
        text = prompt_text(prompt)
        if not text:
            return None
        keys = self._prompt_keys.get(text)
        if keys is None:
            keys = _sorted_unique(ngram_keys(word_hashes(text), self.cfg.gates.ngram_size))
            if len(self._prompt_keys) >= _PROMPT_CACHE_SIZE:
                self._prompt_keys.clear()
            self._prompt_keys[text] = keys
        return keys

    def _question(self, answer: Any, options: Any, row: int
                  ) -> tuple[str, dict[str, str], dict[str, str]]:
        """(gold letter, options, normalised option texts) of a row; a group's generations
        share their question, so each is resolved once."""
        try:
            key: Any = (str(answer), tuple(options.items()) if isinstance(options, Mapping)
                        else tuple(options) if isinstance(options, list) else options)
            hit = self._questions.get(key)
        except TypeError:  # unhashable option values: resolve without the cache
            key, hit = None, None
        if hit is not None:
            return hit
        try:
            resolved = resolve_options(options)
            gold = gold_letter(str(answer), resolved)
        except (ValueError, TypeError) as err:
            raise ValueError(f"reward input row {row}: {err}") from None
        hit = (gold, resolved, {k: normalize_option_text(v) for k, v in resolved.items()})
        if key is not None:
            if len(self._questions) >= _PROMPT_CACHE_SIZE:
                self._questions.clear()
            self._questions[key] = hit
        return hit

    def _analyze(self, completions: Sequence[Any], columns: Mapping[str, Any]) -> list[Analysis]:
        cfg = self.cfg
        n = len(completions)
        texts = [completion_text(c) for c in completions]
        answers = self._column(columns, cfg.answer_column, n)
        options_col = self._column(columns, cfg.options_column, n)
        prompts = columns.get("prompts")
        flags = columns.get("truncated")
        ids_list = columns.get("completion_ids")
        from_trainer = ids_list is not None
        if from_trainer and not self.eos_ids and not self._warned_no_eos:
            self._warned_no_eos = True
            log.warning("gazal rewards: completion_ids are given but no EOS ids are known (pass "
                        "the tokenizer to build_reward_functions, or set reward.eos_token_ids); "
                        "a generation cut at max_completion_length is recognised only when it "
                        "reaches reward.length.max_tokens (%d)", cfg.length.max_tokens)
        if ids_list is None and self.tokenizer is not None:
            # One batched call: the fast tokenizer counts a whole batch in parallel.
            ids_list = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        out = []
        for i, text in enumerate(texts):
            gold, options, norm = self._question(answers[i], options_col[i], i)
            pk = self._prompt_ngram_keys(prompts[i]) if prompts is not None else None
            out.append(Analysis(self, text, gold, options, norm, pk,
                                ids_list[i] if ids_list is not None else None, from_trainer,
                                bool(flags[i]) if flags is not None else False))
        return out

    def _log(self, analyses: list[Analysis], columns: Mapping[str, Any]) -> None:
        """Gate statistics into TRL's logs when TRL passes its logging hooks."""
        log_metric: Callable[[str, float], None] | None = columns.get("log_metric")
        log_extra: Callable[[str, list[Any]], None] | None = columns.get("log_extra")
        if not analyses or (not callable(log_metric) and not callable(log_extra)):
            return
        gates = [a.gate for a in analyses]
        if callable(log_metric):
            n = len(gates)
            log_metric("gazal/valid_fraction", gates.count("valid") / n)
            log_metric("gazal/truncated_fraction", gates.count("truncated") / n)
            log_metric("gazal/degenerate_fraction",
                       sum(1 for a in analyses if a.degenerate) / n)
        if callable(log_extra):
            log_extra("reward_gate", gates)
