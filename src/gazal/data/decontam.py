"""Decontamination: does a training example contain an evaluation question?

Two rules (``DecontamSettings.rule``): ``distinctive`` (the default) scores rarity-weighted
word pairs of the item with numbers normalised and template lines weightless, and tolerates
word edits (:mod:`gazal.data.distinctive`); ``ngram`` is the word 13-gram coverage rule
below. Both also match short questions whole with their options (3.), and both index each
text of an item separately (1.).

Rule ``ngram`` (word n-gram overlap on normalised text, as in GPT-3's 13-gram
decontamination, Brown et al. 2020, appendix C):

1. Every benchmark item is normalised (:mod:`gazal.data.ngrams`: NFKC, lower case, words of
   letters and digits only, so case, whitespace and punctuation do not matter) and each of its
   texts is indexed **separately**: the question, the context (PubMedQA's abstract) and each
   option. Nothing is indexed across the border of two texts, so the order in which a training
   example lists the options, or what it writes between them, cannot hide a match.
2. Texts of at least ``n`` words contribute all their word n-grams. An n-gram found in
   ``boilerplate_min_items`` or more *distinct* question texts ("which of the following is
   the most likely cause of this patient's ...", vital-sign templates) says nothing about any
   one item and is dropped.
3. Questions shorter than ``n`` words (43% of the registered items, mostly MedMCQA) cannot be
   found by n-grams, so they are matched whole: a training example matches when it contains
   the whole question as a contiguous word sequence **and** at least ``short_min_options`` of
   the item's option texts (as whole word sequences, in any order). Questions under
   ``short_min_words`` words ("Vitamin K:", "Erythropoietin acts on:") need **all** their
   options present (and at least ``tiny_min_options`` of them).
4. A training example is contaminated by an item when the item's n-grams found in it are at
   least ``min_coverage`` of the item's n-grams (of the whole item, or of its question or its
   context alone), or at least ``min_ngram_matches`` of them
   whatever the fraction (a long verbatim passage of a long item, e.g. a sentence of a
   PubMedQA abstract), or when it matches the item's whole question as in 3. Every hash match
   is confirmed word by word (64-bit word hashes), so a hash collision cannot flag an example.
   The coverage rule is what keeps templated clinical phrasing out: a synthetic vignette
   sharing "pulse is 80/min, respirations are 16/min, and blood pressure is 120/80 mm Hg"
   with one MedQA item matches 2-4 of its ~100 n-grams. With ``min_coverage: 0`` any one
   shared n-gram flags (GPT-3's rule).

Limits: paraphrases, translations and edits that change every n-th word are not caught;
questions of fewer than ``short_min_words`` words with fewer than ``tiny_min_options``
options, and items whose every n-gram is boilerplate, are not checked (the report counts
them).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from gazal.benchmarks import BENCHMARKS, Item, load_benchmark, load_items_file
from gazal.data.distinctive import (
    CONTEXT,
    OPTION,
    QUESTION,
    DistinctiveHit,
    DistinctiveIndex,
    DistinctiveSettings,
    number_tokenize,
    span_texts,
)
from gazal.data.ngrams import PolyHasher, TokenBatch, normalize_words, tokenize
from gazal.io import DataError

log = logging.getLogger("gazal")

__all__ = ["BenchmarkIndex", "DecontamSettings", "Match", "load_eval_items"]

_U64 = np.uint64
_TABLE_BITS = 24  # prefilter: one bit per 2^40 hash values (16 MiB of booleans)


RULES = ("distinctive", "ngram")


@dataclass(frozen=True)
class DecontamSettings:
    rule: str = "distinctive"
    ngram_n: int = 13
    boilerplate_min_items: int = 3
    short_min_words: int = 4
    short_min_options: int = 2
    min_ngram_matches: int = 10
    min_coverage: float = 0.2
    tiny_min_options: int = 3
    # rule "distinctive" (gazal.data.distinctive; defaults chosen on data, docs/data.md)
    edit_ngram_n: int = 2
    max_df: int = 10
    min_score: float = 0.46
    min_evidence: float = 2.5
    short_question_weight: float = 6.0
    short_option_coverage: float = 0.6
    window_factor: float = 1.5
    candidate_score: float | None = None  # near misses for the semantic stage (None: off)

    def distinctive(self) -> DistinctiveSettings:
        """The settings of the distinctive-content scorer."""
        return DistinctiveSettings(**{f.name: getattr(self, f.name)
                                      for f in fields(DistinctiveSettings)})

    @classmethod
    def from_config(cls, cfg: Any) -> DecontamSettings:
        """From a :class:`gazal.data.config.DecontamConfig` (same field names; near misses
        are collected when its ``semantic`` stage is enabled)."""
        semantic = getattr(cfg, "semantic", None)
        return cls(**{f.name: getattr(cfg, f.name) for f in fields(cls)
                      if f.name != "candidate_score"},
                   candidate_score=semantic.candidate_score if semantic is not None
                   and semantic.enabled else None)


@dataclass(frozen=True)
class Match:
    """The benchmark item a training example contains, and the evidence."""

    benchmark: str
    item_id: str
    kind: str  # "distinctive", "ngram" or "short_question"
    field: str  # question, context, option A, ...
    text: str  # the matched n-gram (or the short question), normalised
    n_matched: int  # distinct n-grams of the item found (1 for a short question)
    coverage: float  # largest share of the item's n-grams found: of the whole item, of its
    # question or of its context (1.0 for a question matched whole)
    n_items: int = 1  # how many distinct benchmark questions the example matched
    also: tuple[str, ...] = ()  # the same question elsewhere ("benchmark:id")
    others: tuple[str, ...] = ()  # other questions it matched (up to 5, "benchmark:id")
    score: float = 1.0  # the rule's score (distinctive: weighted coverage; else coverage)
    evidence: float = 0.0  # distinctive: matched weight in rarest-unit weights
    spans: tuple[str, ...] = ()  # the matched word spans of the example (normalised text)

    def to_dict(self) -> dict[str, Any]:
        return {"benchmark": self.benchmark, "item_id": self.item_id, "kind": self.kind,
                "field": self.field, "matched_text": self.text, "n_matched": self.n_matched,
                "coverage": round(self.coverage, 4), "score": round(self.score, 4),
                "evidence": round(self.evidence, 2), "matched_spans": list(self.spans),
                "n_items_matched": self.n_items,
                "also_in": list(self.also), "other_items": list(self.others)}


@dataclass
class _Entry:
    refs: list[tuple[str, str]]
    field_names: list[str]
    field_tokens: list[np.ndarray]
    field_words: list[list[bytes]]
    n_ngrams: int = 0  # distinct indexed n-grams of the whole item
    n_text_ngrams: tuple[int, int] = (0, 0)  # ... of its question, of its context
    option_keys: list[bytes] = field(default_factory=list)
    short_len: int = 0  # question length when matched whole (0: not)
    need_options: int = 0  # options that must be present with the whole question
    item: Item | None = None  # the first item (its text, for a semantic judge)


def load_eval_items(data_dir: str | Path | None, names: Sequence[str] | None = None,
                    extra_files: Sequence[str | Path] = (), *, skip_missing: bool = False
                    ) -> tuple[list[Item], list[dict[str, Any]]]:
    """Items of every registered benchmark (or ``names``) plus ``extra_files``, and a record
    of what was loaded (name, rows, sha256, source) for reports. A benchmark that cannot be
    loaded is an error unless ``skip_missing``, since a set that was not checked must not be
    reported as clean."""
    items: list[Item] = []
    loaded: list[dict[str, Any]] = []
    for name in names or list(BENCHMARKS):
        try:
            b = load_benchmark(name, data_dir)
        except DataError as err:
            if not skip_missing:
                raise DataError(f"cannot decontaminate against benchmark '{name}': {err}. "
                                "Pass --data-dir (or set GAZAL_DATA_DIR) to the benchmark "
                                "files, or set skip_missing_benchmarks to go on without it "
                                "(the report then says it was not checked)") from None
            log.warning("decontamination: benchmark %s NOT checked: %s", name, err)
            loaded.append({"name": name, "n": 0, "sha256": None, "source": None,
                           "checked": False, "error": str(err)})
            continue
        items.extend(b.items)
        loaded.append({"name": name, "n": b.n, "sha256": b.sha256, "source": b.source,
                       "checked": True})
    for path in extra_files:
        extra = load_items_file(path)
        items.extend(extra)
        loaded.append({"name": str(path), "n": len(extra), "sha256": None,
                       "source": f"file:{path}", "checked": True})
    return items, loaded


class BenchmarkIndex:
    """N-gram and short-question index over benchmark items; :meth:`scan` finds the items a
    batch of training texts contains."""

    def __init__(self, items: Iterable[Item], settings: DecontamSettings | None = None):
        self.settings = s = settings or DecontamSettings()
        if s.ngram_n < 1 or s.short_min_words < 1:
            raise ValueError("ngram_n and short_min_words must be at least 1")
        if s.rule not in RULES:
            raise ValueError(f"decontam rule must be one of {list(RULES)}, got {s.rule!r}")
        self.hasher = PolyHasher()
        self.entries: list[_Entry] = []
        self.n_items = 0
        by_key: dict[tuple[Any, ...], int] = {}
        for it in items:
            self.n_items += 1
            texts = [("question", it.question)]
            if it.context:
                texts.append(("context", it.context))
            n_opt = len(texts)
            texts += [(f"option {k}", v) for k, v in it.options.items()]
            batch, words = tokenize([t for _, t in texts], keep_words=True)
            assert words is not None
            options = sorted(b" ".join(w) for w in words[n_opt:])
            key = (tuple(words[0]), tuple(words[1]) if n_opt == 2 else None, tuple(options))
            idx = by_key.get(key)
            if idx is not None:  # the same question again (GPQA lists each 5 times)
                self.entries[idx].refs.append((it.benchmark, it.id))
                continue
            by_key[key] = len(self.entries)
            entry = _Entry(refs=[(it.benchmark, it.id)], field_names=[n for n, _ in texts],
                           field_tokens=[batch.doc(i) for i in range(len(texts))],
                           field_words=words, item=it)
            entry.option_keys = [b" " + w + b" " for w in options if w]
            n_words = len(words[0])
            if s.short_min_words <= n_words < s.ngram_n:
                entry.short_len = n_words
                entry.need_options = min(s.short_min_options, len(entry.option_keys))
            elif 0 < n_words < s.short_min_words and \
                    len(entry.option_keys) >= s.tiny_min_options:
                entry.short_len = n_words  # "Vitamin K:" means nothing without its options
                entry.need_options = len(entry.option_keys)
            self.entries.append(entry)
        # All indexed words in one array, so hits are confirmed with one vectorised compare.
        field_base: list[list[int]] = []
        parts, offset = [], 0
        for entry in self.entries:
            bases = []
            for toks in entry.field_tokens:
                bases.append(offset)
                parts.append(toks)
                offset += len(toks)
            field_base.append(bases)
        self.flat_tokens = np.concatenate(parts) if parts else np.zeros(1, _U64)
        self._field_base = field_base
        self._build_ngrams()
        self._build_short()
        self.distinctive: DistinctiveIndex | None = None
        if s.rule == "distinctive":
            kinds = {"question": QUESTION, "context": CONTEXT}
            text_id: dict[tuple[bytes, ...], int] = {}
            self.distinctive = DistinctiveIndex(
                [[(kinds.get(name, OPTION), words) for name, words in
                  zip(entry.field_names, entry.field_words, strict=True)]
                 for entry in self.entries],
                [text_id.setdefault(tuple(entry.field_words[0]), len(text_id))
                 for entry in self.entries], s.distinctive())

    # ------------------------------------------------------------------ building

    def _build_ngrams(self) -> None:
        n = self.settings.ngram_n
        hashes, entry_ids, field_ids, starts = [], [], [], []
        for e_idx, entry in enumerate(self.entries):
            for f_idx, toks in enumerate(entry.field_tokens):
                if len(toks) < n:
                    continue
                p = self.hasher.prefix(toks)
                pos = np.arange(len(toks) - n + 1, dtype=np.int64)
                hashes.append(self.hasher.span(p, pos, n))
                entry_ids.append(np.full(len(pos), e_idx, dtype=np.int32))
                field_ids.append(np.full(len(pos), f_idx, dtype=np.int16))
                starts.append(pos.astype(np.int32))
        h = np.concatenate(hashes) if hashes else np.zeros(0, _U64)
        e = np.concatenate(entry_ids) if hashes else np.zeros(0, np.int32)
        f = np.concatenate(field_ids) if hashes else np.zeros(0, np.int16)
        st = np.concatenate(starts) if hashes else np.zeros(0, np.int32)
        # One row per distinct (hash, entry): the first place the n-gram occurs in the item.
        order = np.lexsort((st, f, e, h))
        h, e, f, st = h[order], e[order], f[order], st[order]
        first = np.ones(len(h), dtype=bool)
        first[1:] = (h[1:] != h[:-1]) | (e[1:] != e[:-1])
        h, e, f, st = h[first], e[first], f[first], st[first]
        # Boilerplate: n-grams shared by many distinct question texts. Counted by question
        # text, not by entry: MMLU-Pro asks some questions several times with different
        # options, and those are one question, not a template.
        text_id: dict[tuple[bytes, ...], int] = {}
        entry_text = np.array([text_id.setdefault(tuple(en.field_words[0]), len(text_id))
                               for en in self.entries] or [0], dtype=np.int64)
        pairs = np.unique(np.stack([h, entry_text[e].astype(_U64)], axis=1), axis=0)
        uniq, counts = np.unique(pairs[:, 0], return_counts=True)
        common = uniq[counts >= self.settings.boilerplate_min_items]
        keep = ~np.isin(h, common)
        self.n_boilerplate_ngrams = len(common)
        self.ng_hash, self.ng_entry = h[keep], e[keep]
        self.ng_field, self.ng_start = f[keep], st[keep]
        self.ng_flat = np.array([self._field_base[ei][fi] for ei, fi in
                                 zip(self.ng_entry.tolist(), self.ng_field.tolist(),
                                     strict=True)], dtype=np.int64) + self.ng_start
        n_e = len(self.entries)
        per_entry = np.bincount(self.ng_entry, minlength=n_e)
        per_q = np.bincount(self.ng_entry[self.ng_field == 0], minlength=n_e)
        is_ctx = self._is_context(self.ng_entry, self.ng_field)
        per_c = np.bincount(self.ng_entry[is_ctx], minlength=n_e)
        for entry, count, q, c in zip(self.entries, per_entry.tolist(), per_q.tolist(),
                                      per_c.tolist(), strict=True):
            entry.n_ngrams = int(count)
            entry.n_text_ngrams = (int(q), int(c))
        self.ng_table = _table(self.ng_hash)

    def _is_context(self, entries: np.ndarray, fields: np.ndarray) -> np.ndarray:
        has_ctx = np.array([len(e.field_names) > 1 and e.field_names[1] == "context"
                            for e in self.entries] or [False], dtype=bool)
        return (fields == 1) & has_ctx[entries]

    def _build_short(self) -> None:
        """Questions matched whole are found through one *anchor* each: for a short question
        its rarest ``short_min_words``-gram (shared by the fewest such questions), for a tiny
        one the whole question; one pass per anchor length finds every question length, and
        each anchor hit is then checked against the whole question."""
        a = self.settings.short_min_words
        whole = [e for e, entry in enumerate(self.entries) if entry.short_len]
        spans: dict[int, list[int]] = {}
        for e in whole:
            toks = self.entries[e].field_tokens[0]
            length = min(a, len(toks))
            p = self.hasher.prefix(toks)
            spans[e] = self.hasher.span(p, np.arange(len(toks) - length + 1), length).tolist()
        freq: dict[int, int] = {}
        for hashes in spans.values():
            for h in set(hashes):
                freq[h] = freq.get(h, 0) + 1
        rows: dict[int, list[tuple[int, int, int]]] = {}
        for e, hashes in spans.items():
            offset = min(range(len(hashes)), key=lambda i: (freq[hashes[i]], i))
            length = min(a, self.entries[e].short_len)
            rows.setdefault(length, []).append((hashes[offset], e, offset))
        # anchor length -> (sorted hashes, entries, offsets)
        self.anchors: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        for length, rr in sorted(rows.items()):
            rr.sort()
            self.anchors[length] = (np.array([h for h, _, _ in rr], dtype=_U64),
                                    np.array([e for _, e, _ in rr], dtype=np.int64),
                                    np.array([o for _, _, o in rr], dtype=np.int64))
        self.anchor_table = _table(np.concatenate([v[0] for v in self.anchors.values()])
                                   if self.anchors else np.zeros(0, _U64))
        self.short_len = np.array([entry.short_len for entry in self.entries] or [0],
                                  dtype=np.int64)
        self.short_hash = np.array([self.hasher.whole(entry.field_tokens[0]) if entry.short_len
                                    else 0 for entry in self.entries] or [0], dtype=_U64)

    # ------------------------------------------------------------------ reporting

    def stats(self) -> dict[str, Any]:
        """What the index covers, for the curation report."""
        if self.distinctive is not None:
            total = self.distinctive.total.sum(axis=1)
            unchecked = [e for i, e in enumerate(self.entries) if total[i] == 0
                         and not e.short_len]
        else:
            unchecked = [e for e in self.entries if e.n_ngrams == 0 and not e.short_len]
        return {
            "rule": self.settings.rule,
            **(self.distinctive.stats() if self.distinctive is not None else {}),
            "items": self.n_items,
            "distinct_questions": len(self.entries),
            "ngram_n": self.settings.ngram_n,
            "indexed_ngrams": len(self.ng_hash),
            "boilerplate_ngrams_dropped": int(self.n_boilerplate_ngrams),
            "short_questions_indexed": sum(1 for e in self.entries if e.short_len),
            "unchecked_questions": len(unchecked),
            "unchecked_examples": [f"{e.refs[0][0]}:{e.refs[0][1]}" for e in unchecked[:20]],
        }

    # ------------------------------------------------------------------ scanning

    def scan(self, batch: TokenBatch, texts: Sequence[str],
             near_misses: list[tuple[int, Match]] | None = None) -> list[Match | None]:
        """The best match (highest coverage) of each text in ``batch`` (None when clean).
        ``texts`` are the batch's texts (for the option check of short questions). With
        ``candidate_score`` set and a ``near_misses`` list, the clean texts whose best
        distinctive score is at least ``candidate_score`` are appended to it as (text index,
        Match) for a second stage."""
        s = self.settings
        prefix = self.hasher.prefix(batch.tokens)
        n_tok = len(batch.tokens)
        # per document: {entry: (distinct n-grams matched, of them in the question, in the
        # context, row of the first match)}
        found: list[dict[int, tuple[int, int, int, int]]] = [{} for _ in range(batch.n_docs)]
        distinct: list[DistinctiveHit | None] = [None] * batch.n_docs
        if self.distinctive is not None:
            distinct = self.distinctive.scan(number_tokenize(texts))
        elif n_tok >= s.ngram_n and len(self.ng_hash):
            pos, rows = self._lookup(prefix, s.ngram_n, self.ng_table, self.ng_hash)
            pos, rows = self._expand(pos, rows)
            pos, rows, docs = self._confirm(batch, pos, self.ng_flat[rows], s.ngram_n, rows)
            if len(pos):
                ent = self.ng_entry[rows].astype(np.int64)
                key = docs * len(self.entries) + ent
                # distinct n-grams per (document, entry), and the first matching row
                order = np.lexsort((pos, self.ng_hash[rows], key))
                key_s, hash_s, rows_s = key[order], self.ng_hash[rows][order], rows[order]
                new_gram = np.ones(len(key_s), dtype=bool)
                new_gram[1:] = (key_s[1:] != key_s[:-1]) | (hash_s[1:] != hash_s[:-1])
                key_u, rows_u = key_s[new_gram], rows_s[new_gram]
                uniq_keys, first_idx, inverse = np.unique(key_u, return_index=True,
                                                          return_inverse=True)
                n_all = np.bincount(inverse)
                field_u = self.ng_field[rows_u]
                n_q = np.bincount(inverse, weights=field_u == 0).astype(np.int64)
                n_c = np.bincount(inverse, weights=self._is_context(
                    self.ng_entry[rows_u], field_u)).astype(np.int64)
                first_rows = rows_u[first_idx]
                for k, c, q, x, r in zip(uniq_keys.tolist(), n_all.tolist(), n_q.tolist(),
                                         n_c.tolist(), first_rows.tolist(), strict=True):
                    d, e = divmod(k, len(self.entries))
                    found[d][e] = (c, q, x, r)
        shorts: list[set[int]] = [set() for _ in range(batch.n_docs)]
        for a, (anchor_hash, anchor_entry, anchor_offset) in self.anchors.items():
            if n_tok < a:
                continue
            pos, rows = self._lookup(prefix, a, self.anchor_table, anchor_hash)
            right = np.searchsorted(anchor_hash, anchor_hash[rows], side="right")
            reps = right - rows
            pos = np.repeat(pos, reps)
            rows = np.repeat(rows, reps) + (np.arange(len(pos))
                                            - np.repeat(np.cumsum(reps) - reps, reps))
            ent = anchor_entry[rows]
            start = pos - anchor_offset[rows]
            length = self.short_len[ent]
            ok = (start >= 0) & (start + length <= n_tok)
            start, ent, length = start[ok], ent[ok], length[ok]
            if len(start):
                full = self.hasher.span(prefix, start, length)
                ok = full == self.short_hash[ent]
                start, ent, length = start[ok], ent[ok], length[ok]
            for st, e, ln in zip(start.tolist(), ent.tolist(), length.tolist(), strict=True):
                d = int(np.searchsorted(batch.starts, st, side="right") - 1)
                if st + ln <= batch.starts[d + 1] and np.array_equal(
                        batch.tokens[st:st + ln], self.entries[e].field_tokens[0]):
                    shorts[d].add(e)
        out = []
        for d in range(batch.n_docs):
            hit = distinct[d]
            near = hit is not None and hit.score < s.min_score
            m = self._decide(found[d], shorts[d], texts[d], None if near else hit)
            if m is None and near and near_misses is not None:
                miss = self._decide({}, set(), texts[d], hit)
                if miss is not None:
                    near_misses.append((d, miss))
            out.append(m)
        return out

    def _lookup(self, prefix: np.ndarray, length: int, table: np.ndarray, hashes: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
        """Window start positions whose hash is in ``hashes`` and the first row with it."""
        # Every window of the concatenation; windows that cross a document border are
        # rejected after the (rare) hits.
        win = self.hasher.all_windows(prefix, length)
        pos = np.flatnonzero(table[win >> _U64(64 - _TABLE_BITS)])
        if not len(pos) or not len(hashes):
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        cand = win[pos]
        rows = np.searchsorted(hashes, cand)
        rows[rows == len(hashes)] = 0
        hit = hashes[rows] == cand
        return pos[hit], rows[hit]

    def _expand(self, pos: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One hit per index row with the hit's hash (an n-gram of two questions has two)."""
        if not len(pos):
            return pos, rows
        right = np.searchsorted(self.ng_hash, self.ng_hash[rows], side="right")
        reps = right - rows
        if np.all(reps == 1):
            return pos, rows
        out_pos = np.repeat(pos, reps)
        offset = np.arange(len(out_pos)) - np.repeat(np.cumsum(reps) - reps, reps)
        return out_pos, np.repeat(rows, reps) + offset

    def _confirm(self, batch: TokenBatch, pos: np.ndarray, flat: np.ndarray, length: int,
                 tag: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Keep hits inside one document whose words equal the indexed words (``flat`` is
        where those start in the index's word store); returns (pos, tag, document)."""
        docs = np.searchsorted(batch.starts, pos, side="right") - 1
        ok = pos + length <= batch.starts[docs + 1]
        if len(pos):
            span = np.arange(length)
            ok &= np.all(batch.tokens[pos[:, None] + span]
                         == self.flat_tokens[flat[:, None] + span], axis=1)
        return pos[ok], tag[ok], docs[ok]

    def item_of(self, m: Match) -> Item | None:
        """The benchmark item a match names."""
        if not hasattr(self, "_by_ref"):
            self._by_ref = {entry.refs[0]: entry.item for entry in self.entries}
        return self._by_ref.get((m.benchmark, m.item_id))

    def _decide(self, ngram_hits: dict[int, tuple[int, int, int, int]], short_hits: set[int],
                text: str, distinct: DistinctiveHit | None = None) -> Match | None:
        s = self.settings
        matches: list[Match] = []
        matched: set[int] = set()
        if distinct is not None:
            entry = self.entries[distinct.entry]
            spans = tuple(span_texts(text, distinct.spans))
            m = self._match(entry, "distinctive", "item", [spans[0].encode()] if spans else [],
                            distinct.n_units, distinct.score)
            matches.append(Match(**{**m.__dict__, "score": distinct.score,
                                    "evidence": distinct.evidence, "spans": spans}))
            matched.add(distinct.entry)
        for e, (n_matched, n_q, n_c, row) in ngram_hits.items():
            entry = self.entries[e]
            # coverage of the whole item, or of its question or its context alone (a PubMedQA
            # question is 6 n-grams beside its abstract's 250); options only count in the
            # whole, since a long option is often a generic statement
            total_q, total_c = entry.n_text_ngrams
            coverage = max(n_matched / max(1, entry.n_ngrams),
                           n_q / total_q if total_q else 0.0,
                           n_c / total_c if total_c else 0.0)
            if coverage < s.min_coverage and n_matched < s.min_ngram_matches:
                continue
            f, st = int(self.ng_field[row]), int(self.ng_start[row])
            words = entry.field_words[f][st:st + s.ngram_n]
            matches.append(self._match(entry, "ngram", entry.field_names[f], words, n_matched,
                                       coverage))
            matched.add(e)
        if short_hits:
            norm = b" " + b" ".join(normalize_words(text)) + b" "
            for e in sorted(short_hits - matched):
                entry = self.entries[e]
                present = sum(1 for key in entry.option_keys if key in norm)
                if present >= entry.need_options:
                    matches.append(self._match(entry, "short_question", "question",
                                               entry.field_words[0], 1, 1.0))
        if not matches:
            return None
        matches.sort(key=lambda m: (-m.coverage, -m.n_matched))
        best = matches[0]
        others = tuple(f"{m.benchmark}:{m.item_id}" for m in matches[1:6])
        return Match(**{**best.__dict__, "n_items": len(matches), "others": others})

    @staticmethod
    def _match(entry: _Entry, kind: str, field_name: str, words: list[bytes], n_matched: int,
               coverage: float) -> Match:
        bench, item_id = entry.refs[0]
        text = b" ".join(words).decode("utf-8", "replace")
        return Match(benchmark=bench, item_id=item_id, kind=kind, field=field_name,
                     text=text, n_matched=n_matched, coverage=coverage, score=coverage,
                     spans=(text,) if text else (),
                     also=tuple(f"{b}:{i}" for b, i in entry.refs[1:]))


def _table(hashes: np.ndarray) -> np.ndarray:
    table = np.zeros(1 << _TABLE_BITS, dtype=bool)
    if len(hashes):
        table[hashes >> _U64(64 - _TABLE_BITS)] = True
    return table
