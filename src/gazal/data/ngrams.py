"""Normalised words, their hashes, and word n-gram hashes over many texts at once (numpy).

Normalisation (the same for training examples and benchmark items): Unicode NFKC, lower case,
and every run of characters that are not letters or digits (punctuation, whitespace,
underscores, markdown) becomes one word break. So ``"A 45-year-old  MAN's"`` and
``"a 45 year old man s"`` are the same six words.

Hashes:

- a word's hash is ``crc32`` of its UTF-8 bytes, spread to 64 bits by the splitmix64
  finaliser. crc32 is deterministic (unlike Python's ``hash``, which changes per process), so
  curation gives the same result on every run, and it runs in C (``map(zlib.crc32, words)``),
  which is what makes 59M words take seconds. Distinct words collide with probability
  2^-32 per pair; a collision can only merge two words, and a reported contamination match
  is confirmed word hash by word hash (see :mod:`gazal.data.decontam`);
- an n-gram's hash is the polynomial ``sum(w[i+k] * B^(n-1-k))`` mod 2^64 over its word
  hashes, computed for every window of every text in a batch with prefix sums (Karp-Rabin
  rolling hash; B odd so it is invertible mod 2^64), so one pass serves any n.
"""

from __future__ import annotations

import unicodedata
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["PolyHasher", "TokenBatch", "mix64", "normalize_words", "tokenize"]

_U64 = np.uint64
# Bytes that belong to words: ASCII lower-case letters and digits, and every byte of a
# non-ASCII character (non-ASCII characters that are not letters or digits are replaced by
# spaces first).
_WORD_BYTES = bytes(c if (48 <= c <= 57 or 97 <= c <= 122 or c >= 128) else 32
                    for c in range(256))
_ASCII = bytes(range(128))


def _normalized_bytes(text: str) -> bytes:
    if text.isascii():
        return text.lower().encode("ascii").translate(_WORD_BYTES)
    low = unicodedata.normalize("NFKC", text).lower()
    # The distinct non-ASCII characters (deleting ASCII bytes keeps whole UTF-8
    # sequences); the few that are not letters or digits (°, –, “, ...) become spaces.
    # All C-speed string operations: a regex over the text is 5x slower.
    for ch in set(low.encode("utf-8").translate(None, _ASCII).decode("utf-8")):
        if not ch.isalnum():
            low = low.replace(ch, " ")
    return low.encode("utf-8").translate(_WORD_BYTES)


def normalize_words(text: str) -> list[bytes]:
    """The normalised words of ``text`` (UTF-8 bytes)."""
    return _normalized_bytes(text).split()


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser (Steele et al. 2014): spreads any uint64 values to random-looking
    64-bit values."""
    z = x.astype(_U64, copy=True)
    z += _U64(0x9E3779B97F4A7C15)
    z ^= z >> _U64(30)
    z *= _U64(0xBF58476D1CE4E5B9)
    z ^= z >> _U64(27)
    z *= _U64(0x94D049BB133111EB)
    z ^= z >> _U64(31)
    return z


@dataclass
class TokenBatch:
    """Word hashes of several texts, concatenated: text ``d`` is
    ``tokens[starts[d]:starts[d + 1]]``."""

    tokens: np.ndarray  # uint64
    starts: np.ndarray  # int64, len(texts) + 1

    @property
    def n_docs(self) -> int:
        return len(self.starts) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.starts)

    def doc(self, d: int) -> np.ndarray:
        return self.tokens[self.starts[d]:self.starts[d + 1]]


def tokenize(texts: Sequence[str], keep_words: bool = False
             ) -> tuple[TokenBatch, list[list[bytes]] | None]:
    """Hash the normalised words of every text. With ``keep_words`` the words are returned
    too (to show a matched n-gram as text)."""
    crc = zlib.crc32
    counts = np.empty(len(texts), dtype=np.int64)
    parts = []
    kept: list[list[bytes]] | None = [] if keep_words else None
    for i, text in enumerate(texts):
        words = _normalized_bytes(text).split()
        counts[i] = len(words)
        parts.append(np.fromiter(map(crc, words), dtype=_U64, count=len(words)))
        if kept is not None:
            kept.append(words)
    starts = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    raw = np.concatenate(parts) if parts else np.zeros(0, dtype=_U64)
    return TokenBatch(tokens=mix64(raw), starts=starts), kept


class PolyHasher:
    """Polynomial hashes of word windows, position independent: the same words give the same
    hash wherever they are. Keeps the power tables (grown as needed)."""

    def __init__(self, base: int = 0x9E3779B97F4A7C15 | 1):
        self.base = _U64(base | 1)
        self.inv = _U64(pow(int(self.base), -1, 2**64))
        self._pow = np.ones(1, dtype=_U64)
        self._inv_pow = np.ones(1, dtype=_U64)

    def _ensure(self, n: int) -> None:
        if len(self._pow) >= n:
            return
        size = max(n, 2 * len(self._pow))
        self._pow = np.cumprod(np.r_[_U64(1), np.full(size - 1, self.base, dtype=_U64)],
                               dtype=_U64)
        self._inv_pow = np.cumprod(np.r_[_U64(1), np.full(size - 1, self.inv, dtype=_U64)],
                                   dtype=_U64)

    def prefix(self, tokens: np.ndarray) -> np.ndarray:
        """``P[k] = sum_{j<k} tokens[j] * B^-j`` (length len(tokens) + 1)."""
        n = len(tokens)
        self._ensure(n + 1)
        out = np.zeros(n + 1, dtype=_U64)
        np.cumsum(tokens * self._inv_pow[:n], out=out[1:])
        return out

    def windows(self, prefix: np.ndarray, starts: np.ndarray, length: int
                ) -> tuple[np.ndarray, np.ndarray]:
        """Hashes of every window of ``length`` words that lies inside one document, and the
        windows' start positions. ``starts`` are the document offsets (TokenBatch.starts)."""
        n_tok = len(prefix) - 1
        if n_tok < length or length < 1:
            return np.zeros(0, dtype=_U64), np.zeros(0, dtype=np.int64)
        # all windows of the concatenation, then drop those that end past the end of the
        # document they start in
        win = self.all_windows(prefix, length)
        doc_end = np.repeat(starts[1:], np.diff(starts))[:n_tok - length + 1]
        pos = np.flatnonzero(np.arange(length, n_tok + 1) <= doc_end)
        return win[pos], pos

    def all_windows(self, prefix: np.ndarray, length: int) -> np.ndarray:
        """Hashes of the windows starting at 0, 1, ..., n - length of the whole concatenation
        (windows across document borders included: callers drop them). Contiguous slices
        only, so this is the fast path."""
        n_tok = len(prefix) - 1
        self._ensure(n_tok + 1)
        return (prefix[length:] - prefix[:-length]) * self._pow[length - 1:n_tok]

    def span(self, prefix: np.ndarray, pos: np.ndarray, length: int | np.ndarray) -> np.ndarray:
        """Hashes of the windows ``[pos, pos + length)``."""
        end = pos + length
        self._ensure(int(end.max()) if len(end) else 1)
        return (prefix[end] - prefix[pos]) * self._pow[end - 1]

    def whole(self, tokens: np.ndarray) -> int:
        """Hash of a whole word sequence (equal to its window hash anywhere)."""
        if len(tokens) == 0:
            return 0
        p = self.prefix(tokens)
        return int(self.span(p, np.array([0]), len(tokens))[0])
