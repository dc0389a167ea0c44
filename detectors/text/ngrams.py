"""TF-IDF word and character n-grams: the plain, strong baseline of LLM attribution.

Sun et al. ("Idiosyncrasies in LLMs", 2025) separate chat LLMs with TF-IDF word 1-2-grams
and logistic regression: word choice, opening phrases and Markdown structure carry the signal.
:class:`NgramExtractor` gives the same view in two blocks (each L2-normalised per text):

* ``word``: lower-cased word 1-2-grams, where a token is a word, a run of punctuation
  (``**``, ``###``, ``:``) or a layout mark (``<s>`` start of text, ``</s>`` end, ``⏎`` line
  break, ``¶`` blank line), so "``<s> sure``", "``⏎ 1``" and "``** :``" are features;
* ``char``: character 1-4-grams with case kept (whitespace runs are one space).

Both use sublinear tf (``1 + log tf``) x smoothed idf; the vocabulary (the most frequent
n-grams seen in at least two training texts) is learnt in :meth:`NgramExtractor.fit` and saved in
the model's config, the idf weights in its arrays. Counting is vectorised: character n-grams are
hashed at once with numpy, so extraction runs at thousands of texts per second.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

import numpy as np

from provenance.core.validation import Bound, check_array
from provenance.detectors.base import Extractor
from provenance.detectors.progress import progress_bar
from provenance.detectors.text.reading import load_text
from provenance.detectors.text.stylometry import (
    _WHITESPACE_RUN,
    KeyLookup,
    _code_points,
    _ngram_hashes,
    vocabulary_hashes,
)

#: layout tokens of the word block (chosen so no token of the text itself can equal them)
START, END, LINE, BLANK = "<s>", "</s>", "\u23ce", "\u00b6"
# a blank line (maybe with spaces) first, then a line break, a word (apostrophes inside), a punctuation run
_TOKEN = re.compile(r"\n[^\S\n]*\n\s*|\n|\w+(?:'\w+)*|[^\w\s]+")


def word_tokens(text: str) -> list[str]:
    """Lower-cased tokens with layout marks: ``<s>``, words, punctuation runs, ``⏎``, ``¶``, ``</s>``."""
    low = text.strip().lower().replace("\u2019", "'")
    tokens = [START]
    for tok in _TOKEN.findall(low):
        if tok[0] == "\n":
            tok = BLANK if tok.count("\n") > 1 else LINE
        tokens.append(tok)
    tokens.append(END)
    return tokens


def word_ngrams(tokens: Sequence[str], n_max: int = 2) -> Iterable[str]:
    """Every 1..``n_max``-gram of ``tokens``, joined by single spaces."""
    yield from tokens
    if n_max >= 2:
        yield from map(" ".join, itertools.pairwise(tokens))
    for n in range(3, n_max + 1):
        yield from map(" ".join, zip(*(tokens[k:] for k in range(n)), strict=False))


def smooth_idf(df: np.ndarray, n_docs: int) -> np.ndarray:
    """scikit-learn's smoothed idf: ``log((1 + n) / (1 + df)) + 1``, rounded to float32."""
    idf = np.log((1.0 + n_docs) / (1.0 + np.asarray(df, dtype=np.float64))) + 1.0
    # the weights are saved as float32: rounding them now makes a reloaded model's features identical
    return idf.astype(np.float32).astype(np.float64)


def top_terms(doc_terms: Iterable[Iterable[str]], k: int, min_df: int) -> tuple[list[str], np.ndarray, int]:
    """The ``k`` most frequent terms (total count; ties alphabetical) found in >= ``min_df`` documents.

    Returns the terms (sorted), their document frequencies and the number of documents.
    """
    total: Counter[str] = Counter()
    df: Counter[str] = Counter()
    n_docs = 0
    for terms in doc_terms:
        counts = Counter(terms)
        total.update(counts)
        df.update(counts.keys())
        n_docs += 1
    ranked = sorted((t for t in total if df[t] >= min_df), key=lambda t: (-total[t], t))[:k]
    ranked.sort()
    return ranked, np.array([df[t] for t in ranked], dtype=np.float64), n_docs


def _char_codes(text: str) -> np.ndarray:
    return _code_points(_WHITESPACE_RUN.sub(" ", text))


def top_char_ngrams(texts: Sequence[str], sizes: Sequence[int], k: int, min_df: int) -> tuple[list[str], np.ndarray]:
    """The ``k`` most frequent character n-grams (total count) of >= ``min_df`` texts, and their df.

    Every n-gram is hashed (64 bits, as :class:`~provenance.detectors.text.stylometry.CharNgramCounter`
    looks them up), so counting a corpus is a few numpy sorts instead of millions of dict updates.
    """
    normalised = [_WHITESPACE_RUN.sub(" ", t) for t in texts]
    hashes, counts, where = [], [], []
    for doc, text in enumerate(normalised):
        codes = _code_points(text)
        for n in sizes:
            h = _ngram_hashes(codes, n)
            if not h.size:
                continue
            u, first, c = np.unique(h, return_index=True, return_counts=True)
            hashes.append(u)
            counts.append(c)
            # where each n-gram was first seen, to spell it out afterwards: (text, position, size)
            where.append(np.stack([np.full(u.size, doc), first, np.full(u.size, n)], axis=1))
    if not hashes:
        return [], np.zeros(0)
    all_h = np.concatenate(hashes)
    all_c = np.concatenate(counts)
    all_w = np.concatenate(where)
    uniq, first, inv = np.unique(all_h, return_index=True, return_inverse=True)
    df = np.bincount(inv, minlength=uniq.size)
    total = np.bincount(inv, weights=all_c, minlength=uniq.size)
    ok = np.flatnonzero(df >= min_df)
    # most frequent first; ties by hash (deterministic)
    keep = ok[np.lexsort((uniq[ok], -total[ok]))[:k]]
    grams = []
    for j in keep:
        doc, pos, n = all_w[first[j]]
        grams.append(normalised[doc][pos : pos + n])
    order = np.argsort(grams, kind="stable")
    return [grams[i] for i in order], df[keep][order].astype(np.float64)


class HashedCharCounter:
    """Looks up the character n-grams of a text in a fixed vocabulary by their 64-bit hashes."""

    def __init__(self, vocabulary: Sequence[str]) -> None:
        self.size = len(vocabulary)
        self._lookup = KeyLookup(vocabulary_hashes(vocabulary))
        self._sizes = sorted({len(g) for g in vocabulary})

    def ids(self, text: str) -> np.ndarray:
        """Vocabulary index of every n-gram occurrence of ``text`` found in the vocabulary."""
        if not self.size:
            return np.zeros(0, dtype=np.int64)
        codes = _char_codes(text)
        h = np.concatenate([_ngram_hashes(codes, n) for n in self._sizes])
        return self._lookup.find(h)


class TokenNgramCounter:
    """Finds the token 1..``n_max``-grams of a fixed vocabulary (tokens joined by single spaces, as
    :func:`word_ngrams` writes them) in a token sequence, without building the n-gram strings.

    Each token of the vocabulary gets a number from 1; an n-gram is then one integer in base
    (tokens + 1), and a text's n-grams are looked up at once with numpy. A token the
    vocabulary lacks is 0, a digit no vocabulary code has, so the counts equal those of looking
    every joined n-gram up in a dict (tested), at a fraction of the cost. Codes are looked up with
    :class:`~provenance.detectors.text.stylometry.KeyLookup`.
    """

    def __init__(self, vocabulary: Sequence[str], n_max: int = 3) -> None:
        self.size = len(vocabulary)
        index = {g: i for i, g in enumerate(vocabulary)}  # a repeated n-gram counts for its last column
        self._tokens: dict[str, int] = {}
        grams: dict[int, list[tuple[list[int], int]]] = {}
        for gram, col in index.items():
            parts = gram.split(" ")
            if len(parts) <= n_max:
                grams.setdefault(len(parts), []).append(
                    ([self._tokens.setdefault(t, len(self._tokens) + 1) for t in parts], col)
                )
        self._base = len(self._tokens) + 1  # at most 3 x 100,000 tokens: a trigram code stays below 2**63
        self._tables: list[tuple[int, KeyLookup, np.ndarray]] = []
        for n in sorted(grams):
            codes = np.zeros(len(grams[n]), dtype=np.int64)
            for k in range(n):
                codes = codes * self._base + np.array([ids[k] for ids, _ in grams[n]], dtype=np.int64)
            cols = np.array([col for _, col in grams[n]], dtype=np.int64)
            self._tables.append((n, KeyLookup(codes.astype(np.uint64)), cols))

    def ids(self, tokens: Sequence[str]) -> np.ndarray:
        """The vocabulary column of every n-gram occurrence of ``tokens`` found in the vocabulary."""
        lookup = self._tokens.get
        t = np.fromiter((lookup(tok, 0) for tok in tokens), dtype=np.int64, count=len(tokens))
        found = []
        for n, lookup, cols in self._tables:
            m = len(t) - n + 1
            if m <= 0:
                continue
            code = t[:m].copy()
            for k in range(1, n):
                code = code * self._base + t[k : k + m]
            found.append(cols[lookup.find(code.astype(np.uint64))])
        return np.concatenate(found) if found else np.zeros(0, dtype=np.int64)


def tfidf_row(ids: np.ndarray | Sequence[int], idf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Columns and L2-normalised sublinear tf-idf values of one text from its n-gram indices."""
    cols, tf = np.unique(np.asarray(ids, dtype=np.int64), return_counts=True)
    vals = (1.0 + np.log(tf)) * idf[cols]
    norm = float(np.sqrt((vals * vals).sum()))
    return cols, (vals / norm if norm > 0 else vals)


class NgramExtractor(Extractor):
    """TF-IDF word 1-2-grams and character 1-4-grams (each block L2-normalised per text).

    Parameters
    ----------
    word_features, char_features
        Vocabulary sizes learnt in :meth:`fit` (the most frequent n-grams of at least
        ``min_df`` training texts); 0 leaves the block out. 0 to 100,000 each, not both 0.
    word_ngrams
        Longest word n-gram (1 to 3).
    char_ngrams
        ``[shortest, longest]`` character n-gram (1 to 8).
    min_df
        An n-gram must occur in this many training texts to be kept (1 to 1000).
    vocabulary
        Learnt in :meth:`fit`; given back when a saved model is loaded.
    """

    name = "ngrams"
    modality = "text"
    trainable = True
    BLOCKS: ClassVar[tuple[str, ...]] = ("word", "char")
    # tf-idf rows are already on one scale: z-scoring would blow rare n-grams up to the size of
    # common ones; C=3 measured best on alpaca-dev (split by instruction) among 1, 3, 10, 30
    head_defaults: ClassVar[dict[str, dict[str, Any]]] = {"linear": {"C": 3.0, "standardize": False}}
    config_bounds: ClassVar[dict[str, Bound]] = {
        "word_features": (0, 100_000),
        "char_features": (0, 100_000),
        "word_ngrams": (1, 3),
        "char_ngrams": (1, 8),
        "min_df": (1, 1000),
    }
    config_lengths: ClassVar[dict[str, tuple[int, int]]] = {"char_ngrams": (2, 2), "vocabulary": (0, 100_000)}

    def __init__(
        self,
        word_features: int = 10_000,
        char_features: int = 10_000,
        word_ngrams: int = 2,
        char_ngrams: Sequence[int] = (1, 4),
        min_df: int = 2,
        vocabulary: dict[str, list[str]] | None = None,
    ) -> None:
        self.word_features = int(word_features)
        self.char_features = int(char_features)
        self.word_ngrams = int(word_ngrams)
        self.char_ngrams = (int(char_ngrams[0]), int(char_ngrams[1]))
        self.min_df = int(min_df)
        if self.word_features < 0 or self.char_features < 0 or self.word_features + self.char_features == 0:
            raise ValueError("word_features and char_features must be >= 0, and not both 0")
        if not 1 <= self.char_ngrams[0] <= self.char_ngrams[1]:
            raise ValueError(f"char_ngrams must be [shortest, longest], 1 <= shortest <= longest, got {char_ngrams}")
        self.vocabulary = {k: list(v) for k, v in (vocabulary or {}).items()}
        unknown = set(self.vocabulary) - set(self.BLOCKS)
        if unknown:
            raise ValueError(f"vocabulary blocks must be among {list(self.BLOCKS)}, got {sorted(unknown)}")
        self.idf_: dict[str, np.ndarray] = {}
        self._word_index: dict[str, int] | None = None
        self._char_counter: HashedCharCounter | None = None

    # ------------------------------------------------------------------ config
    def blocks(self) -> list[str]:
        """The blocks in use, in column order."""
        return [b for b, k in (("word", self.word_features), ("char", self.char_features)) if k > 0]

    def state_dict(self) -> dict[str, np.ndarray]:
        return {f"idf_{k}": v.astype(np.float32) for k, v in self.idf_.items()}

    def load_state_dict(self, state: dict[str, np.ndarray], learned: dict[str, Any] | None = None) -> None:
        idf = {}
        for block in self.blocks():
            # one finite idf weight per n-gram of the block's vocabulary
            idf[block] = check_array(state, f"idf_{block}", (len(self.vocabulary.get(block, [])),)).astype(np.float64)
        self.idf_ = idf
        self._word_index, self._char_counter = None, None

    # ------------------------------------------------------------------ extraction
    def load(self, sample: Any) -> str:
        return load_text(sample)

    def fit(self, loaded: Sequence[str], labels: Sequence[str], progress: bool = False) -> NgramExtractor:
        """Learn each block's vocabulary (most frequent n-grams) and idf weights from the training texts."""
        texts = list(loaded)
        if "word" in self.blocks():
            docs = (word_ngrams(word_tokens(t), self.word_ngrams) for t in texts)
            terms, df, n_docs = top_terms(docs, self.word_features, self.min_df)
            self.vocabulary["word"], self.idf_["word"] = terms, smooth_idf(df, n_docs)
        if "char" in self.blocks():
            sizes = range(self.char_ngrams[0], self.char_ngrams[1] + 1)
            terms, df = top_char_ngrams(texts, sizes, self.char_features, self.min_df)
            self.vocabulary["char"], self.idf_["char"] = terms, smooth_idf(df, len(texts))
        self._word_index, self._char_counter = None, None
        return self

    def _check_fitted(self) -> None:
        if any(b not in self.vocabulary or b not in self.idf_ for b in self.blocks()):
            raise RuntimeError("ngrams extractor is not fitted: call fit() (or load a saved model)")

    def features(self, loaded: Sequence[str], progress: bool = False) -> np.ndarray:
        self._check_fitted()
        blocks = self.blocks()
        widths = [len(self.vocabulary[b]) for b in blocks]
        offsets = dict(zip(blocks, np.cumsum([0, *widths[:-1]]).tolist(), strict=True))
        out = np.zeros((len(loaded), sum(widths)), dtype=np.float32)
        if "word" in blocks and self._word_index is None:
            self._word_index = {g: i for i, g in enumerate(self.vocabulary["word"])}
        if "char" in blocks and self._char_counter is None:
            self._char_counter = HashedCharCounter(self.vocabulary["char"])
        for row, text in enumerate(progress_bar(loaded, enabled=progress, desc="ngrams")):
            if "word" in blocks:
                index = self._word_index or {}
                ids = [index[g] for g in word_ngrams(word_tokens(text), self.word_ngrams) if g in index]
                cols, vals = tfidf_row(ids, self.idf_["word"])
                out[row, offsets["word"] + cols] = vals
            if "char" in blocks and self._char_counter is not None:
                cols, vals = tfidf_row(self._char_counter.ids(text), self.idf_["char"])
                out[row, offsets["char"] + cols] = vals
        return out

    def feature_names(self) -> list[str]:
        """``word:<n-gram>`` and ``char:<n-gram>`` (as Python literals) for every column."""
        return [f"{b}:{g!r}" for b in self.blocks() for g in self.vocabulary.get(b, [])]


__all__ = [
    "NgramExtractor",
    "TokenNgramCounter", "smooth_idf", "tfidf_row", "top_char_ngrams", "top_terms", "word_ngrams", "word_tokens"]
