"""Exact and near-duplicate detection over normalised word sequences (numpy).

- **Exact**: two examples are duplicates when their normalised word sequences are equal
  (64-bit polynomial hash of the whole sequence plus its length).
- **Near**: MinHash over word ``shingle_n``-grams with LSH banding (Broder 1997; Leskovec,
  Rajaraman, Ullman, *Mining of Massive Datasets*, ch. 3). The signature is computed by *one
  permutation hashing* with rotation densification (Li, Owen, Zhang 2012; Shrivastava & Li,
  ICML 2014): one hash per shingle, the top bits pick one of ``num_perm`` bins, the minimum
  per bin is the signature entry, and an empty bin borrows its nearest non-empty neighbour to
  the right (plus an offset per step). This estimates Jaccard similarity like ``num_perm``
  independent MinHashes while hashing each shingle once, which is what lets 107k examples be
  signed in seconds on two cores (datasketch's ``MinHash.update_batch`` hashes every shingle
  ``num_perm`` times; see BENCHMARKS.md). Candidate pairs share all rows of one of ``bands``
  bands; a candidate is a duplicate when the estimated Jaccard similarity (the fraction of
  equal signature entries) is at least ``threshold``.

Within a group of duplicates the earliest example is kept; every removed example names a kept
example whose estimated similarity with it is at least ``threshold``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gazal.data.ngrams import PolyHasher, TokenBatch, mix64

__all__ = ["NearDupSettings", "exact_keys", "minhash_signatures", "near_duplicates"]

_U64 = np.uint64


@dataclass(frozen=True)
class NearDupSettings:
    shingle_n: int = 5
    num_perm: int = 128
    bands: int = 32
    threshold: float = 0.8
    seed: int = 0

    def __post_init__(self) -> None:
        k = self.num_perm
        if k < 2 or k & (k - 1):
            raise ValueError(f"num_perm must be a power of two (one permutation hashing bins), "
                             f"got {k}")
        if self.bands < 1 or k % self.bands:
            raise ValueError(f"bands ({self.bands}) must divide num_perm ({k})")
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold}")
        if self.shingle_n < 1:
            raise ValueError("shingle_n must be at least 1")


def exact_keys(batch: TokenBatch, hasher: PolyHasher, prefix: np.ndarray) -> np.ndarray:
    """(n_docs, 2) uint64: hash of each document's whole word sequence, and its length."""
    starts, ends = batch.starts[:-1], batch.starts[1:]
    lengths = (ends - starts).astype(np.int64)
    keys = np.zeros((batch.n_docs, 2), dtype=_U64)
    nonempty = lengths > 0
    if nonempty.any():
        keys[nonempty, 0] = hasher.span(prefix, starts[nonempty], lengths[nonempty])
    keys[:, 1] = lengths.astype(_U64)
    return keys


def minhash_signatures(batch: TokenBatch, hasher: PolyHasher, prefix: np.ndarray,
                       settings: NearDupSettings) -> np.ndarray:
    """(n_docs, num_perm) uint32 one-permutation MinHash signatures of word shingles.
    A document shorter than ``shingle_n`` words is one shingle; an empty one gets all-zero
    entries (callers exclude empty documents)."""
    k = settings.num_perm
    n = settings.shingle_n
    bits = k.bit_length() - 1
    val_bits = 64 - bits
    n_docs = batch.n_docs
    hashes, pos = hasher.windows(prefix, batch.starts, n)
    docs = np.searchsorted(batch.starts, pos, side="right") - 1
    lengths = batch.lengths
    short = np.flatnonzero((lengths > 0) & (lengths < n))
    if len(short):
        hashes = np.concatenate([hashes, hasher.span(prefix, batch.starts[short],
                                                     lengths[short])])
        docs = np.concatenate([docs, short])
    v = mix64(hashes ^ _U64(settings.seed * 0x9E3779B97F4A7C15 % 2**64))
    bins = (v >> _U64(val_bits)).astype(np.int64)
    vals = v & _U64((1 << val_bits) - 1)
    empty_mark = _U64(2**64 - 1)
    sig = np.full(n_docs * k, empty_mark, dtype=_U64)
    np.minimum.at(sig, docs * k + bins, vals)
    sig = sig.reshape(n_docs, k)
    # Rotation densification: an empty bin takes the next non-empty bin to its right
    # (circularly) plus C per step, C above every bin value so borrowed values stay distinct.
    empty = sig == empty_mark
    if empty.any():
        doubled = np.concatenate([sig, sig], axis=1)
        idx = np.where(np.concatenate([~empty, ~empty], axis=1),
                       np.arange(2 * k, dtype=np.int64), 2 * k)
        nxt = np.minimum.accumulate(idx[:, ::-1], axis=1)[:, ::-1][:, :k]
        rows = np.flatnonzero(empty.any(axis=1) & ~empty.all(axis=1))
        nr = nxt[rows]
        steps = (nr - np.arange(k)).astype(_U64)
        sig[rows] = doubled[rows[:, None], nr] + steps * _U64(1 << val_bits)
        sig[empty.all(axis=1)] = 0
    return (mix64(sig) >> _U64(32)).astype(np.uint32)


def near_duplicates(signatures: np.ndarray, candidates: np.ndarray, settings: NearDupSettings
                    ) -> dict[int, tuple[int, float]]:
    """Near-duplicates among the rows ``candidates`` (indices into ``signatures``, in input
    order): ``{removed_row: (kept_row, estimated_jaccard)}``."""
    cand = np.asarray(candidates, dtype=np.int64)
    if len(cand) < 2:
        return {}
    sig = signatures[cand]
    k = sig.shape[1]
    r = k // settings.bands
    rng = np.random.default_rng(0x5EED + settings.seed)
    mult = rng.integers(1, 2**63, size=r, dtype=np.int64).astype(_U64) | _U64(1)
    pairs = []
    for b in range(settings.bands):
        band = sig[:, b * r:(b + 1) * r].astype(_U64)
        key = mix64((band * mult).sum(axis=1, dtype=_U64))
        order = np.argsort(key, kind="stable")  # stable: members stay in input order
        ks = key[order]
        same = ks[1:] == ks[:-1]
        if not same.any():
            continue
        # pair each member with the previous member and with the first of its bucket
        group_start = np.flatnonzero(np.r_[True, ~same])
        group_of = np.cumsum(np.r_[True, ~same]) - 1
        first = order[group_start[group_of]]
        prev = np.r_[order[0], order[:-1]]
        member = order
        in_group = np.r_[False, same]
        pairs.append(np.stack([first[in_group], member[in_group]], axis=1))
        pairs.append(np.stack([prev[in_group], member[in_group]], axis=1))
    if not pairs:
        return {}
    all_pairs = np.unique(np.sort(np.concatenate(pairs), axis=1), axis=0)
    all_pairs = all_pairs[all_pairs[:, 0] != all_pairs[:, 1]]
    sims = (sig[all_pairs[:, 0]] == sig[all_pairs[:, 1]]).mean(axis=1)
    good = sims >= settings.threshold
    all_pairs, sims = all_pairs[good], sims[good]
    # Greedy in input order: a row is removed when it is similar enough to an earlier row
    # that is kept.
    removed: dict[int, tuple[int, float]] = {}
    for (i, j), s in zip(all_pairs.tolist(), sims.tolist(), strict=True):
        if i in removed or j in removed:
            continue
        removed[j] = (i, s)
    return {int(cand[j]): (int(cand[i]), float(s)) for j, (i, s) in removed.items()}
