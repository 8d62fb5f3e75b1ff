"""Edit-tolerant decontamination: overlap on the *distinctive* content of a benchmark item.

The 13-gram rule (:mod:`gazal.data.decontam`, ``rule: ngram``) is exact about formatting but
blind to word edits (one word in five changed leaves ~5% of an item's 13-grams) and it
counts template lines (vital signs, lab panels, "a 45-year-old man comes to the emergency
department") as evidence when their numbers make them unique. This scorer (``rule:
distinctive``, the default) fixes both:

1. **Numbers are normalised**: after the usual normalisation (:mod:`gazal.data.ngrams`)
   every run of digits becomes ``0`` and consecutive number words merge, so "37.1°C",
   "38°C" and "pulse is 104/min" vs "pulse is 78/min" are the same words. A vital-signs
   or lab line becomes the same few words in hundreds of MedQA items.
2. **Units**: word ``k``-grams (``edit_ngram_n``, 2) of each text of an item separately
   (question, context, each option), and each text shorter than ``k`` words whole (one-word
   options). Short n-grams survive edits: with one word in five edited about 60% of an
   item's word pairs are intact, with three in ten about 45%.
3. **Rarity weights**: a unit's weight is its inverse document frequency over the benchmark
   pool, ``log((D + 1) / df)`` with ``D`` the distinct question texts and ``df`` those
   containing it; a unit in more than ``max_df`` of them is template text and weighs nothing (the
   number-normalised vitals, lab and demographic lines all are). There is no general
   clinical corpus on these machines, so the benchmark pool (8k items, three exam styles)
   is the rarity reference.
4. **Score** of (example, item): the weight of the item's units found in the example over
   the item's total weight; the largest of the whole item, its context alone (a PubMedQA
   abstract quoted without its question) and its question alone (a question without its
   abstract or options; only when the question weighs at least ``short_question_weight``
   rarest units). Options are units like the question's, so shuffled or relettered options
   still count as evidence.
5. **Locality**: the score is taken on the example's densest window of ``window_factor``
   times the item's length (plus 10 words): a copy is one block, sentences reordered or
   not, while a long text on the same topic scatters the same words.
6. **Decision**: contaminated when the score is at least ``min_score`` and the matched
   weight at least ``min_evidence`` rarest-unit weights (``log(D + 1)`` each); items whose
   question (and context) weigh less than ``short_question_weight`` of them (MedMCQA's "Drug
   of choice for scabies in pregnancy is:") also need ``short_option_coverage`` of their
   option weight found: for them the options tell a copy from a text on the same topic.

Every window of an example is looked up at once (numpy: rolling hashes, a prefilter bitmap,
binary search), so the cost is one pass over the words per unit length. Hash hits are not
confirmed word by word: a 64-bit collision adds one unit's weight, which cannot reach
``min_evidence`` alone. The matched units are reported as word spans of the example.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gazal.data.ngrams import PolyHasher, TokenBatch, _normalized_bytes, mix64, normalize_words

__all__ = ["DistinctiveHit", "DistinctiveIndex", "DistinctiveSettings", "number_tokenize",
           "number_words", "span_texts"]

_U64 = np.uint64
_TABLE_BITS = 24
_DIGITS = bytes.maketrans(b"0123456789", b"0000000000")
_ZERO_HASH = int(mix64(np.array([zlib.crc32(b"0")], dtype=_U64))[0])

QUESTION, CONTEXT, OPTION = 0, 1, 2


@dataclass(frozen=True)
class DistinctiveSettings:
    edit_ngram_n: int = 2
    max_df: int = 10
    min_score: float = 0.46
    min_evidence: float = 2.5
    short_question_weight: float = 6.0
    short_option_coverage: float = 0.6
    window_factor: float = 1.5
    # near misses (for a second, semantic stage): hits from this score up are returned too
    candidate_score: float | None = None


@dataclass(frozen=True)
class DistinctiveHit:
    """The best-scoring item of one example."""

    entry: int
    score: float
    evidence: float  # matched weight / log(D)
    n_units: int  # distinct units of the item found
    spans: tuple[tuple[int, int], ...]  # matched word spans, number-normalised positions


def _zeros(b: bytes) -> bytes:
    b = b.translate(_DIGITS)
    while b"00" in b:
        b = b.replace(b"00", b"0")
    return b


def number_words(words: Sequence[bytes]) -> list[bytes]:
    """Normalised words with every digit run as ``0`` and consecutive numbers merged."""
    out: list[bytes] = []
    for w in words:
        w = _zeros(w)
        if w == b"0" and out and out[-1] == b"0":
            continue
        out.append(w)
    return out


def _hash_words(words: Sequence[bytes]) -> np.ndarray:
    return mix64(np.fromiter(map(zlib.crc32, words), dtype=_U64, count=len(words)))


def number_tokenize(texts: Sequence[str]) -> TokenBatch:
    """:func:`gazal.data.ngrams.tokenize` on number-normalised words (see
    :func:`number_words`; the same words, computed on whole texts at C speed)."""
    crc = zlib.crc32
    parts, counts = [], np.empty(len(texts), dtype=np.int64)
    for i, text in enumerate(texts):
        words = _zeros(_normalized_bytes(text)).split()
        counts[i] = len(words)
        parts.append(np.fromiter(map(crc, words), dtype=_U64, count=len(words)))
    raw = mix64(np.concatenate(parts)) if parts else np.zeros(0, _U64)
    starts = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    # merge consecutive number words ("37 1" of "37.1") inside each text
    if len(raw):
        dup = np.zeros(len(raw), dtype=bool)
        dup[1:] = (raw[1:] == _ZERO_HASH) & (raw[:-1] == _ZERO_HASH)
        dup[starts[:-1][counts > 0]] = False
        if dup.any():
            keep = ~dup
            raw = raw[keep]
            kept = np.concatenate([[0], np.cumsum(keep)])
            starts = kept[starts]
    return TokenBatch(tokens=raw, starts=starts)


class DistinctiveIndex:
    """Rarity-weighted short n-grams of benchmark items (see the module docstring).

    ``fields`` holds, per distinct question (entry), its texts as (kind, normalised words)
    with kind QUESTION, CONTEXT or OPTION; ``text_ids`` gives the distinct question text of
    each entry (document frequencies count question texts, not entries)."""

    def __init__(self, fields: Sequence[Sequence[tuple[int, list[bytes]]]],
                 text_ids: Sequence[int], settings: DistinctiveSettings | None = None):
        self.settings = s = settings or DistinctiveSettings()
        if s.edit_ngram_n < 1:
            raise ValueError("edit_ngram_n must be at least 1")
        k = s.edit_ngram_n
        self.hasher = PolyHasher()
        self.n_entries = len(fields)
        cols: dict[str, list[np.ndarray]] = {c: [] for c in ("h", "len", "e", "g")}
        # every 1..k-gram of every text, for the document frequencies: a one-word option
        # ("a", "none") is as common as the word is anywhere, not only among options
        occ_keys: list[np.ndarray] = []
        occ_text: list[np.ndarray] = []
        for e, entry_fields in enumerate(fields):
            for kind, words in entry_fields:
                words = number_words(words)
                if not words:
                    continue
                toks = _hash_words(words)
                length = min(k, len(toks))
                p = self.hasher.prefix(toks)
                for ln_ in range(1, length + 1):
                    hh = self.hasher.span(p, np.arange(len(toks) - ln_ + 1), ln_)
                    occ_keys.append(hh ^ mix64(np.full(len(hh), ln_, dtype=_U64)))
                    occ_text.append(np.full(len(hh), text_ids[e], dtype=np.int64))
                h = self.hasher.span(p, np.arange(len(toks) - length + 1), length)
                cols["h"].append(h)
                cols["len"].append(np.full(len(h), length, dtype=np.int16))
                cols["e"].append(np.full(len(h), e, dtype=np.int32))
                cols["g"].append(np.full(len(h), kind, dtype=np.int8))
        if cols["h"]:
            h, ln, ent, grp = (np.concatenate(cols[c]) for c in ("h", "len", "e", "g"))
        else:
            h, ln = np.zeros(0, _U64), np.zeros(0, np.int16)
            ent, grp = np.zeros(0, np.int32), np.zeros(0, np.int8)
        # a unit is (hash, length); lengths are looked up separately, so fold the length in
        key = h ^ mix64(ln.astype(_U64))
        # one row per distinct (unit, entry); a unit in the question and an option of one
        # item counts once, for the first kind (question < context < option)
        order = np.lexsort((grp, ent, key))
        key, h, ln, ent, grp = key[order], h[order], ln[order], ent[order], grp[order]
        first = np.ones(len(key), dtype=bool)
        first[1:] = (key[1:] != key[:-1]) | (ent[1:] != ent[:-1])
        key, h, ln, ent, grp = key[first], h[first], ln[first], ent[first], grp[first]
        # document frequency over distinct question texts
        if occ_keys:
            pairs = np.unique(np.stack([np.concatenate(occ_keys),
                                        np.concatenate(occ_text).astype(_U64)], axis=1), axis=0)
        else:
            pairs = np.zeros((0, 2), _U64)
        uniq, df = np.unique(pairs[:, 0], return_counts=True)
        self.n_texts = max(1, len(set(text_ids)))
        # smoothed: log((D + 1) / df), so a unit of a one-item pool still weighs something
        self.log_d = math.log(self.n_texts + 1)
        unit_df = df[np.searchsorted(uniq, key)] if len(key) else np.zeros(0, np.int64)
        weight = np.log((self.n_texts + 1) / unit_df.astype(np.float64)) if len(key) else \
            np.zeros(0)
        keep = (unit_df <= s.max_df) & (weight > 0)
        self.n_template_units = int(np.count_nonzero(unit_df > s.max_df))
        h, ln, ent, grp, weight = h[keep], ln[keep], ent[keep], grp[keep], weight[keep]
        n_e = self.n_entries
        self.n_words = np.array([sum(len(number_words(w)) for _, w in f) for f in fields]
                                or [0], dtype=np.int64)
        self.total = np.zeros((n_e, 3))
        for g in (QUESTION, CONTEXT, OPTION):
            self.total[:, g] = np.bincount(ent[grp == g], weights=weight[grp == g],
                                           minlength=n_e)
        # per unit length: rows sorted by hash
        self.by_len: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}
        for length in sorted(set(ln.tolist())):
            m = ln == length
            o = np.argsort(h[m], kind="stable")
            self.by_len[length] = (h[m][o], ent[m][o], grp[m][o], weight[m][o])
        self._ent_all = np.concatenate([v[1] for v in self.by_len.values()] or
                                       [np.zeros(0, np.int32)]).astype(np.int64)
        self._grp_all = np.concatenate([v[2] for v in self.by_len.values()] or
                                       [np.zeros(0, np.int8)])
        self._w_all = np.concatenate([v[3] for v in self.by_len.values()] or [np.zeros(0)])
        self._by_rank = np.argsort(self._ent_all, kind="stable")  # rank -> row
        self._rank = np.empty_like(self._by_rank)
        self._rank[self._by_rank] = np.arange(len(self._by_rank))  # row -> rank
        self.n_units = len(h)
        self.table = np.zeros(1 << _TABLE_BITS, dtype=bool)
        if len(h):
            self.table[h >> _U64(64 - _TABLE_BITS)] = True

    def scan(self, batch: TokenBatch) -> list[DistinctiveHit | None]:
        """The best contaminating item of each text of ``batch`` (number-normalised tokens,
        :func:`number_tokenize`), or None. With ``candidate_score`` set, hits from that score
        up are returned (near misses have ``score < min_score``)."""
        s = self.settings
        n_docs = batch.n_docs
        out: list[DistinctiveHit | None] = [None] * n_docs
        if not self.n_units or not len(batch.tokens):
            return out
        prefix = self.hasher.prefix(batch.tokens)
        doc_of = np.repeat(np.arange(n_docs, dtype=np.int64), batch.lengths)
        docs_l, rows_l, lens_l, pos_l = [], [], [], []
        offset = 0
        row_base: dict[int, int] = {}
        for length, (hashes, _, _, _) in self.by_len.items():
            row_base[length] = offset
            offset += len(hashes)
        for length, (hashes, _, _, _) in self.by_len.items():
            win, pos = self.hasher.windows(prefix, batch.starts, length)
            if not len(win):
                continue
            sel = np.flatnonzero(self.table[win >> _U64(64 - _TABLE_BITS)])
            cand, pos = win[sel], pos[sel]
            left = np.searchsorted(hashes, cand, side="left")
            right = np.searchsorted(hashes, cand, side="right")
            reps = right - left
            hit = reps > 0
            left, reps, pos = left[hit], reps[hit], pos[hit]
            if not len(pos):
                continue
            rows = np.repeat(left, reps) + (np.arange(int(reps.sum()))
                                            - np.repeat(np.cumsum(reps) - reps, reps))
            pos = np.repeat(pos, reps)
            docs_l.append(doc_of[pos])
            rows_l.append(rows + row_base[length])
            lens_l.append(np.full(len(rows), length, dtype=np.int64))
            pos_l.append(pos)
        if not docs_l:
            return out
        docs, rows = np.concatenate(docs_l), np.concatenate(rows_l)
        lens, pos = np.concatenate(lens_l), np.concatenate(pos_l)
        # each (document, unit row) counts once; ranks order the rows by entry, so one
        # sort of (document, rank) also groups the (document, entry) pairs
        n_rows = offset
        dr = docs * n_rows + self._rank[rows]
        order = np.argsort(dr, kind="stable")
        dr_s = dr[order]
        new = np.r_[True, dr_s[1:] != dr_s[:-1]]
        first = order[new]
        u_docs, u_rows = dr_s[new] // n_rows, self._by_rank[dr_s[new] % n_rows]
        pair = u_docs * self.n_entries + self._ent_all[u_rows]
        starts_ = np.r_[True, pair[1:] != pair[:-1]]
        keys = pair[starts_]
        inv = np.cumsum(starts_) - 1
        w = self._w_all[u_rows]
        g = self._grp_all[u_rows]
        sums = np.zeros((len(keys), 3))
        for k in (QUESTION, CONTEXT, OPTION):
            sums[:, k] = np.bincount(inv, weights=np.where(g == k, w, 0.0), minlength=len(keys))
        k_ent = keys % self.n_entries
        tot = self.total[k_ent]
        matched = sums.sum(axis=1)
        whole = matched / np.maximum(tot.sum(axis=1), 1e-12)
        ctx = np.where(tot[:, CONTEXT] > 0, sums[:, CONTEXT] / np.maximum(tot[:, CONTEXT],
                                                                           1e-12), 0.0)
        score = np.maximum(whole, ctx)
        long_q = tot[:, QUESTION] >= s.short_question_weight * self.log_d
        score = np.maximum(score, np.where(long_q, sums[:, QUESTION]
                                           / np.maximum(tot[:, QUESTION], 1e-12), 0.0))
        floor = min(s.min_score, s.candidate_score if s.candidate_score is not None
                    else s.min_score)
        ok = (score >= floor) & (matched >= s.min_evidence * self.log_d)
        # a short question with no context: its options must be there too
        short = (tot[:, QUESTION] + tot[:, CONTEXT] < s.short_question_weight * self.log_d) \
            & (tot[:, OPTION] > 0)
        opt_cov = sums[:, OPTION] / np.maximum(tot[:, OPTION], 1e-12)
        ok &= ~short | (opt_cov >= s.short_option_coverage)
        if not ok.any():
            return out
        return self._localise(batch, np.flatnonzero(ok), keys, inv, pos[first], lens[first],
                              w, g, out)

    def _localise(self, batch: TokenBatch, good: np.ndarray, keys: np.ndarray,
                  inv: np.ndarray, u_pos: np.ndarray, u_len: np.ndarray, w: np.ndarray,
                  g: np.ndarray, out: list[DistinctiveHit | None]) -> list[DistinctiveHit | None]:
        """Rescore the candidates on their densest window: a copied item is one block of
        about its own length (sentences reordered or not), while a long text on the same
        topic scatters the same words over hundreds of words. The window is
        ``window_factor`` times the item's length (plus 10 words)."""
        s = self.settings
        is_good = np.zeros(len(keys), dtype=bool)
        is_good[good] = True
        sel = is_good[inv]
        c_inv, c_pos, c_len = inv[sel], u_pos[sel], u_len[sel]
        c_w, c_g = w[sel], g[sel]
        order = np.lexsort((c_pos, c_inv))
        c_inv, c_pos, c_len, c_w, c_g = (a[order] for a in (c_inv, c_pos, c_len, c_w, c_g))
        bounds = np.flatnonzero(np.r_[True, c_inv[1:] != c_inv[:-1], True])
        best: dict[int, DistinctiveHit] = {}
        for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
            key = int(keys[c_inv[a]])
            d, e = divmod(key, self.n_entries)
            p, ww, gg = c_pos[a:b], c_w[a:b], c_g[a:b]
            width = s.window_factor * self.n_words[e] + 10
            end = np.searchsorted(p, p + width, side="left")
            cum = np.zeros((len(p) + 1, 3))
            for k in (QUESTION, CONTEXT, OPTION):
                cum[1:, k] = np.cumsum(np.where(gg == k, ww, 0.0))
            sums = cum[end] - cum[:-1]  # per window start: matched weight per kind
            tot = self.total[e]
            matched = sums.sum(axis=1)
            score = matched / max(tot.sum(), 1e-12)
            if tot[CONTEXT] > 0:
                score = np.maximum(score, sums[:, CONTEXT] / tot[CONTEXT])
            if tot[QUESTION] >= s.short_question_weight * self.log_d:
                score = np.maximum(score, sums[:, QUESTION] / tot[QUESTION])
            floor = min(s.min_score, s.candidate_score if s.candidate_score is not None
                        else s.min_score)
            ok = (score >= floor) & (matched >= s.min_evidence * self.log_d)
            if tot[QUESTION] + tot[CONTEXT] < s.short_question_weight * self.log_d and \
                    tot[OPTION] > 0:
                ok &= sums[:, OPTION] / tot[OPTION] >= s.short_option_coverage
            if not ok.any():
                continue
            i = int(np.argmax(np.where(ok, score, -1.0)))
            if d in best and best[d].score >= score[i]:
                continue
            inside = slice(i, int(end[i]))
            start = p[inside] - batch.starts[d]
            best[d] = DistinctiveHit(entry=e, score=float(score[i]),
                                     evidence=float(matched[i] / self.log_d),
                                     n_units=int(end[i] - i),
                                     spans=_merge(start, c_len[a:b][inside]))
        for d, hit in best.items():
            out[d] = hit
        return out

    def stats(self) -> dict[str, float | int]:
        """What the index holds, for the curation report."""
        s = self.settings
        return {"edit_ngram_n": s.edit_ngram_n, "weighted_units": self.n_units,
                "template_units_dropped": self.n_template_units,
                "distinct_question_texts": self.n_texts, "min_score": s.min_score,
                "min_evidence": s.min_evidence}


def _merge(start: np.ndarray, length: np.ndarray) -> tuple[tuple[int, int], ...]:
    """Overlapping or touching windows as (start, end) word spans."""
    order = np.argsort(start, kind="stable")
    spans: list[list[int]] = []
    for st, ln in zip(start[order].tolist(), length[order].tolist(), strict=True):
        if spans and st <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], st + ln)
        else:
            spans.append([st, st + ln])
    return tuple((a, b) for a, b in spans)


def span_texts(text: str, spans: Sequence[tuple[int, int]], limit: int = 20) -> list[str]:
    """The matched spans of ``text`` as normalised words (numbers shown as written), longest
    first."""
    raw = normalize_words(text)
    # number-normalised position -> raw word positions (a merged number covers several)
    starts: list[int] = []
    prev_zero = False
    for i, w in enumerate(raw):
        z = _zeros(w) == b"0"
        if z and prev_zero:
            prev_zero = True
            continue
        starts.append(i)
        prev_zero = z
    starts.append(len(raw))
    out = []
    for a, b in spans:
        if a >= len(starts) - 1:
            continue
        out.append(b" ".join(raw[starts[a]:starts[min(b, len(starts) - 1)]]).decode(
            "utf-8", "replace"))
    out.sort(key=lambda x: -len(x.split()))
    return out[:limit]
