"""Stylometric features of English text, in named families a person can read.

Families (each a block of the feature vector; :meth:`StylometryExtractor.feature_names`
names every column as ``family:feature``):

* ``char``: character 1-4-grams (sublinear tf x idf, L2 per block), the vocabulary
  chosen in :meth:`fit` by chi-squared against the labels among frequent n-grams;
* ``word``: word 1-2-grams, chosen the same way;
* ``function``: rates per 1000 words of ~300 English function words (the classic
  stylometric signal: topic-free, habitual, hard to fake);
* ``punct``: rates per 1000 characters of each punctuation mark;
* ``format``: Markdown and layout habits (bullets, numbered lists, headers, bold,
  code fences, paragraphs, line lengths, colon-led lists);
* ``discourse``: rates of discourse markers ("however", "additionally", "in summary"...)
  and of how the text opens and closes;
* ``length``: word and sentence length statistics, vocabulary richness.

Tokenisation is Unicode-aware (``\\w`` matches letters of any script; curly and
straight apostrophes are one). :class:`FunctionWordsExtractor` keeps just the
function-word rates, the input of Burrows' Delta (``--head delta``).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from provenance.core.validation import Bound, check_array
from provenance.detectors.base import Extractor
from provenance.detectors.progress import progress_bar
from provenance.detectors.text.reading import load_text

FUNCTION_WORDS: tuple[str, ...] = tuple(
    """a about above after again against all almost along already also although always am among an and another
any anyone anything are around as at be because been before being below beneath beside besides between beyond
both but by can cannot could did do does doing down during each either enough even ever every everyone everything
few for from further had has have having he her here hers herself him himself his how however i if in indeed
inside instead into is it its itself just least less like many may me might mine more most much must my myself
near neither never nevertheless no nobody none nor not nothing now of off often on once one only onto or other
others otherwise our ours ourselves out over own per perhaps quite rather same several shall she should since so
some somebody someone something sometimes such than that the their theirs them themselves then there therefore
these they this those though through throughout thus till to too toward towards under unless until up upon us
very via was we well were what whatever when whenever where whereas wherever whether which while who whoever
whole whom whose why will with within without would yet you your yours yourself yourselves""".split()
)

PUNCTUATION: tuple[str, ...] = (*",.;:!?'\"()[]{}-*#`/&%$@_|~<>=+", *"\u2013\u2014\u2026\u2019\u201c\u201d\u2018")

DISCOURSE_MARKERS: tuple[str, ...] = (
    "however", "additionally", "moreover", "furthermore", "therefore", "overall", "ultimately", "importantly",
    "in conclusion", "in summary", "to summarize", "for example", "for instance", "in addition", "as a result",
    "on the other hand", "keep in mind", "note that", "it is important", "it's important", "it is worth",
    "it's worth", "here are", "here is", "here's", "let me", "i hope", "feel free", "let's", "certainly",
    "of course", "sure", "great question", "in other words", "that said", "specifically", "essentially",
    "generally", "typically", "remember", "finally", "first", "second", "third", "lastly",
)  # fmt: skip

_WORD = re.compile(r"\w+(?:['\u2019]\w+)*")
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|\n{2,}")
_BULLET = re.compile(r"^\s*[-*•+]\s+", re.M)
_NUMBERED = re.compile(r"^\s*\d+[.)]\s+", re.M)
_HEADER = re.compile(r"^\s*#{1,6}\s+", re.M)
_BOLD = re.compile(r"\*\*[^*\n]+\*\*|__[^_\n]+__")
_ITALIC = re.compile(r"(?<![*\w])\*[^*\n]+\*(?![*\w])")
_FENCE = re.compile(r"^\s*```", re.M)
_INLINE_CODE = re.compile(r"`[^`\n]+`")
_COLON_LINE = re.compile(r":\s*$", re.M)
_BOLD_LEAD = re.compile(r"^\s*(?:[-*•+]|\d+[.)])?\s*\*\*[^*\n]+\*\*\s*:?", re.M)
_URL = re.compile(r"https?://\S+")
_EMOJI = re.compile("[\U0001f300-\U0001faff\u2600-\u27bf]")

FORMAT_FEATURES: tuple[str, ...] = (
    "lines per 100 words", "blank lines per 100 words", "bullet lines share", "numbered lines share",
    "header lines share", "bold spans per 100 words", "italic spans per 100 words", "code fences per 100 words",
    "inline code per 100 words", "lines ending in colon share", "bold-led list items share", "mean line length",
    "paragraphs per 100 words", "mean paragraph words", "uppercase letter share", "digit share",
    "non-ASCII share", "URLs per 100 words", "emoji per 1000 chars", "starts with markdown", "ends with question",
    "ends with colon", "title-case line share",
)  # fmt: skip

LENGTH_FEATURES: tuple[str, ...] = (
    "log words", "mean word length", "word length std", "long word share (>= 7 letters)",
    "type-token ratio (first 300)", "hapax share (first 300)", "mean sentence words", "sentence words std",
    "long sentence share (> 30 words)", "short sentence share (< 8 words)", "contractions per 100 words",
    "first person I per 100 words", "second person per 100 words", "capitalised word share",
)  # fmt: skip


_LETTER = re.compile(r"[^\W\d_]")
# longest markers first, so "in conclusion" is not also counted as "in"-something shorter
_DISCOURSE = re.compile(
    r"(?<!\w)(" + "|".join(re.escape(m) for m in sorted(DISCOURSE_MARKERS, key=len, reverse=True)) + r")(?!\w)"
)


def _code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


_NON_ASCII_RUNS = re.compile(r"[^\x00-\x7f]+")


def _count_letters(text: str, codes: np.ndarray) -> int:
    """How many characters of ``text`` match ``[^\\W\\d_]`` (letters, any script): ASCII ones counted
    with numpy (there the class is exactly A-Z and a-z), the others by the regex (listing every
    letter with the regex cost a tenth of a millisecond per text)."""
    ascii_codes = codes[codes < 128]
    folded = ascii_codes | 32
    n = int(((folded >= 97) & (folded <= 122)).sum())
    if len(ascii_codes) < len(codes):
        n += sum(len(_LETTER.findall(run)) for run in _NON_ASCII_RUNS.findall(text))
    return n


def tokenize(text: str) -> list[str]:
    """Lower-cased words (any script); curly apostrophes become straight ones."""
    # the same words as replacing in each word: both apostrophes join word parts alike
    return _WORD.findall(text.lower().replace("\u2019", "'"))


def sentences(text: str) -> list[str]:
    """Sentences split at terminal punctuation or blank lines (non-empty, stripped)."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


def _rate(count: float, total: float, per: float = 1.0) -> float:
    return per * count / total if total else 0.0


def function_word_rates(words: Sequence[str]) -> np.ndarray:
    """Rate per 1000 words of each of :data:`FUNCTION_WORDS`."""
    get = Counter(words).get  # get, not [ ]: a Counter's missing key costs a Python-level call
    n = max(len(words), 1)
    return np.array([1000.0 * get(w, 0) / n for w in FUNCTION_WORDS], dtype=np.float64)


def punctuation_rates(text: str) -> np.ndarray:
    """Rate per 1000 characters of each mark in :data:`PUNCTUATION`."""
    get = Counter(text).get
    n = max(len(text), 1)
    return np.array([1000.0 * get(p, 0) / n for p in PUNCTUATION], dtype=np.float64)


def format_stats(text: str, words: Sequence[str]) -> np.ndarray:
    """The :data:`FORMAT_FEATURES` of one text."""
    nw = max(len(words), 1)
    lines = text.splitlines() or [text]
    nonblank = [ln for ln in lines if ln.strip()]
    nl = max(len(nonblank), 1)
    paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    codes = _code_points(text)
    lower = _code_points(text.lower())
    n_letters = _count_letters(text, codes)
    # a letter is upper case when lower-casing changes it (lengths differ only for rare letters like U+0130)
    n_upper = int((codes != lower).sum()) if lower.shape == codes.shape else sum(c.isupper() for c in text)
    stripped = text.strip()
    return np.array(
        [
            _rate(len(lines), nw, 100),
            _rate(len(lines) - len(nonblank), nw, 100),
            _rate(len(_BULLET.findall(text)), nl),
            _rate(len(_NUMBERED.findall(text)), nl),
            _rate(len(_HEADER.findall(text)), nl),
            _rate(len(_BOLD.findall(text)), nw, 100),
            _rate(len(_ITALIC.findall(text)), nw, 100),
            _rate(len(_FENCE.findall(text)), nw, 100),
            _rate(len(_INLINE_CODE.findall(text)), nw, 100),
            _rate(len(_COLON_LINE.findall(text)), nl),
            _rate(len(_BOLD_LEAD.findall(text)), nl),
            float(np.mean([len(ln) for ln in nonblank])) if nonblank else 0.0,
            _rate(len(paragraphs), nw, 100),
            float(np.mean([len(_WORD.findall(p)) for p in paragraphs])) if paragraphs else 0.0,
            _rate(n_upper, n_letters),
            _rate(int(((codes >= 48) & (codes <= 57)).sum()), len(text)),
            _rate(int((codes > 127).sum()), len(text)),
            _rate(len(_URL.findall(text)), nw, 100),
            _rate(len(_EMOJI.findall(text)), len(text), 1000),
            float(bool(re.match(r"\s*(#|\*\*|[-*•]\s|\d+[.)]\s)", text))),
            float(stripped.endswith("?")),
            float(stripped.endswith(":")),
            _rate(sum(ln.strip().istitle() for ln in nonblank), nl),
        ],
        dtype=np.float64,
    )


def discourse_rates(text: str, n_words: int) -> np.ndarray:
    """Rate per 1000 words of each of :data:`DISCOURSE_MARKERS` (word-bounded, case-blind)."""
    low = text.lower().replace("\u2019", "'")
    get = Counter(_DISCOURSE.findall(low)).get
    n = max(n_words, 1)
    return np.array([1000.0 * get(m, 0) / n for m in DISCOURSE_MARKERS], dtype=np.float64)


def length_stats(text: str, words: Sequence[str]) -> np.ndarray:
    """The :data:`LENGTH_FEATURES` of one text."""
    nw = max(len(words), 1)
    lengths = np.fromiter(map(len, words), dtype=np.float64, count=len(words)) if words else np.zeros(1)
    head = list(words[:300])
    counts = Counter(head)
    every = Counter(words)
    sent_words = np.array([len(_WORD.findall(s)) for s in sentences(text)] or [0], dtype=np.float64)
    raw_words = _WORD.findall(text)
    return np.array(
        [
            math.log1p(len(words)),
            float(lengths.mean()),
            float(lengths.std()),
            _rate(int((lengths >= 7).sum()), nw),
            _rate(len(counts), len(head)),
            _rate(sum(1 for c in counts.values() if c == 1), len(head)),
            float(sent_words.mean()),
            float(sent_words.std()),
            _rate(int((sent_words > 30).sum()), len(sent_words)),
            _rate(int((sent_words < 8).sum()), len(sent_words)),
            _rate(sum(c for w, c in every.items() if "'" in w), nw, 100),
            _rate(every.get("i", 0), nw, 100),
            _rate(sum(every.get(w, 0) for w in ("you", "your", "yours", "yourself")), nw, 100),
            _rate(sum(map(str.isupper, [w[0] for w in raw_words])), len(raw_words)),
        ],
        dtype=np.float64,
    )


_WHITESPACE_RUN = re.compile(r"\s\s+")  # as scikit-learn's char analyzer
#: word-family tokens: words (case kept) and single punctuation marks, so "Sure!" and "**Note**:" are n-grams too
_WORD_TOKEN_PATTERN = r"(?u)\w+(?:['\u2019]\w+)*|[^\w\s]"
_WORD_TOKEN = re.compile(_WORD_TOKEN_PATTERN)
_MIX = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0x27D4EB2F165667C5], dtype=np.uint64)


def _ngram_hashes(codes: np.ndarray, n: int) -> np.ndarray:
    """64-bit hashes of every character n-gram of a code-point array (wrapping arithmetic)."""
    m = len(codes) - n + 1
    if m <= 0:
        return np.zeros(0, dtype=np.uint64)
    h = np.full(m, n, dtype=np.uint64)
    for k in range(n):
        h = (h * np.uint64(1099511628211)) ^ (codes[k : k + m].astype(np.uint64) * _MIX[k])
    return h


_FIBONACCI = np.uint64(0x9E3779B97F4A7C15)


class KeyLookup:
    """Which of a fixed set of 64-bit keys each query is, by a direct table on mixed key bits.

    A slot that holds one key answers with one gather and one compare; a slot two keys share
    (a repeated key, or two that mix alike) sends its queries to a binary search over the keys
    sorted as ``np.argsort`` sorts them, which is what every query did before: the same answers
    (for 8,000 queries among 3,000 keys the binary search took 0.45 ms, the table 0.03 ms).
    """

    def __init__(self, keys: np.ndarray) -> None:
        self.keys = np.asarray(keys, dtype=np.uint64)
        self._order = np.argsort(self.keys)
        self._sorted = self.keys[self._order]
        bits = int(min(24, max(10, np.ceil(np.log2(max(len(self.keys), 1))) + 3)))
        self._shift = np.uint64(64 - bits)
        slots = self._slots(self.keys)
        per_slot = np.bincount(slots, minlength=1 << bits)
        self._table = np.full(1 << bits, -1, dtype=np.int64)
        alone = per_slot[slots] == 1
        self._table[slots[alone]] = np.flatnonzero(alone)
        self._table[per_slot > 1] = -2  # shared: binary search

    def _slots(self, keys: np.ndarray) -> np.ndarray:
        return ((keys * _FIBONACCI) >> self._shift).astype(np.intp)

    def find(self, queries: np.ndarray) -> np.ndarray:
        """The position (in ``keys``) of every query that is a key, in no particular order; others dropped."""
        if not len(self.keys) or not len(queries):
            return np.zeros(0, dtype=np.int64)
        queries = np.asarray(queries, dtype=np.uint64)
        where = self._table[self._slots(queries)]
        alone = where >= 0
        cand = where[alone]
        found = cand[self.keys[cand] == queries[alone]]
        shared = where == -2
        if not shared.any():
            return found
        q = queries[shared]
        pos = np.searchsorted(self._sorted, q)
        pos[pos == len(self._sorted)] = 0
        return np.concatenate([found, self._order[pos[self._sorted[pos] == q]]])


def vocabulary_hashes(vocabulary: Sequence[str]) -> np.ndarray:
    """:func:`_ngram_hashes` of each n-gram of ``vocabulary`` (as one n-gram), computed per length at
    once: the same arithmetic row-wise, so building a counter for thousands of n-grams takes
    milliseconds."""
    out = np.zeros(len(vocabulary), dtype=np.uint64)
    by_size: dict[int, list[int]] = {}
    for i, g in enumerate(vocabulary):
        by_size.setdefault(len(g), []).append(i)
    for n, rows in by_size.items():
        if n == 0:
            continue  # the empty n-gram's hash is 0, as _ngram_hashes gives it
        codes = _code_points("".join(vocabulary[i] for i in rows)).reshape(len(rows), n)
        h = np.full(len(rows), n, dtype=np.uint64)
        for k in range(n):
            h = (h * np.uint64(1099511628211)) ^ (codes[:, k].astype(np.uint64) * _MIX[k])
        out[rows] = h
    return out


class CharNgramCounter:
    """Counts a fixed vocabulary of character 1-4-grams, vectorised with numpy.

    Matches scikit-learn's ``CountVectorizer(analyzer="char", lowercase=False)`` on the
    same vocabulary (whitespace runs become one space), at a fraction of its cost:
    every n-gram of a text is hashed at once and looked up by binary search.
    """

    def __init__(self, vocabulary: Sequence[str]) -> None:
        self.vocabulary = list(vocabulary)
        self._lookup = KeyLookup(vocabulary_hashes(self.vocabulary))
        self._sizes = sorted({len(g) for g in self.vocabulary})

    def counts(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), len(self.vocabulary)), dtype=np.float64)
        if not self.vocabulary:
            return out
        for row, text in enumerate(texts):
            codes = _code_points(_WHITESPACE_RUN.sub(" ", text))
            h = np.concatenate([_ngram_hashes(codes, n) for n in self._sizes])
            out[row] = np.bincount(self._lookup.find(h), minlength=len(self.vocabulary))
        return out


class WordNgramCounter:
    """Counts a fixed vocabulary of lower-cased word 1-2-grams (as the ``word`` family's vectoriser)."""

    def __init__(self, vocabulary: Sequence[str]) -> None:
        from provenance.detectors.text.ngrams import TokenNgramCounter  # ngrams imports this module

        self.vocabulary = list(vocabulary)
        self._counter = TokenNgramCounter(self.vocabulary, 3)

    def counts(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), len(self.vocabulary)), dtype=np.float64)
        for row, text in enumerate(texts):
            hits = self._counter.ids(_WORD_TOKEN.findall(text))
            if hits.size:
                out[row] = np.bincount(hits, minlength=len(self.vocabulary))
        return out


def _l2_rows(X: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.maximum(norms, 1e-12)


class StylometryExtractor(Extractor):
    """Character and word n-grams, function words, punctuation, formatting, discourse and length.

    Parameters
    ----------
    char_features, word_features
        How many character 1-4-grams and word 1-2-grams to keep (chosen in :meth:`fit`),
        1 to 50,000 each (fitting counts 20x as many candidates).
    families
        Which families to use (default all; see the module docstring).
    vocabulary, idf
        Learnt in :meth:`fit`; given back when a saved model is loaded (at most 100,000
        n-grams per family).
    """

    name = "stylometry"
    modality = "text"
    trainable = True
    FAMILIES: ClassVar[tuple[str, ...]] = ("char", "word", "function", "punct", "format", "discourse", "length")
    # thousands of standardised n-gram rates: a strong L2 penalty measured best (alpaca-dev 0.577 -> 0.619)
    head_defaults: ClassVar[dict[str, dict[str, Any]]] = {"linear": {"C": 0.001}}
    config_bounds: ClassVar[dict[str, Bound]] = {"char_features": (1, 50_000), "word_features": (1, 50_000)}
    config_lengths: ClassVar[dict[str, tuple[int, int]]] = {"families": (1, 7), "vocabulary": (0, 100_000)}

    def __init__(
        self,
        char_features: int = 3000,
        word_features: int = 1500,
        families: Sequence[str] | None = None,
        vocabulary: dict[str, list[str]] | None = None,
    ) -> None:
        self.char_features = int(char_features)
        self.word_features = int(word_features)
        self.families = tuple(families) if families is not None else self.FAMILIES
        unknown = set(self.families) - set(self.FAMILIES)
        if unknown or not self.families:
            raise ValueError(f"families must be a non-empty subset of {list(self.FAMILIES)}, got {list(self.families)}")
        if self.char_features < 1 or self.word_features < 1:
            raise ValueError("char_features and word_features must be positive")
        self.vocabulary = {k: list(v) for k, v in (vocabulary or {}).items()}
        self.idf_: dict[str, np.ndarray] = {}
        self._counters: dict[str, Any] = {}

    # ------------------------------------------------------------------ learned state
    def state_dict(self) -> dict[str, np.ndarray]:
        return {f"idf_{k}": v.astype(np.float32) for k, v in self.idf_.items()}

    def load_state_dict(self, state: dict[str, np.ndarray], learned: dict[str, Any] | None = None) -> None:
        idf = {}
        for fam in self._ngram_families():
            # one finite idf weight per n-gram of the family's vocabulary
            idf[fam] = check_array(state, f"idf_{fam}", (len(self.vocabulary.get(fam, [])),)).astype(np.float64)
        self.idf_ = idf

    def _ngram_families(self) -> list[str]:
        return [f for f in ("char", "word") if f in self.families]

    @staticmethod
    def _vectorizer(family: str, vocabulary: Sequence[str] | None = None, **kw: Any):
        from sklearn.feature_extraction.text import CountVectorizer

        if family == "char":
            return CountVectorizer(analyzer="char", ngram_range=(1, 4), lowercase=False, vocabulary=vocabulary, **kw)
        return CountVectorizer(
            analyzer="word",
            ngram_range=(1, 3),
            lowercase=False,
            token_pattern=_WORD_TOKEN_PATTERN,
            vocabulary=vocabulary,
            **kw,
        )

    # ------------------------------------------------------------------ extraction
    def load(self, sample: Any) -> str:
        return load_text(sample)

    def fit(self, loaded: Sequence[str], labels: Sequence[str], progress: bool = False) -> StylometryExtractor:
        """Choose the character and word n-grams that best separate the labels (chi-squared)."""
        from sklearn.feature_selection import chi2

        y = np.asarray(labels)
        for fam in self._ngram_families():
            k = self.char_features if fam == "char" else self.word_features
            vec = self._vectorizer(fam, min_df=2, max_features=max(20 * k, 50000))
            counts = vec.fit_transform(loaded)
            terms = vec.get_feature_names_out()
            tf = counts.copy().astype(np.float64)
            tf.data = 1.0 + np.log(tf.data)
            scores, _ = chi2(tf, y)
            scores = np.nan_to_num(scores, nan=0.0)
            keep = np.sort(np.argsort(-scores, kind="stable")[:k])
            self.vocabulary[fam] = [str(t) for t in terms[keep]]
            df = np.asarray((counts[:, keep] > 0).sum(axis=0)).ravel()
            self.idf_[fam] = np.log((1 + len(loaded)) / (1 + df)) + 1.0
            self._counters.pop(fam, None)
        return self

    def _ngrams(self, family: str, texts: Sequence[str]) -> np.ndarray:
        if family not in self.vocabulary or family not in self.idf_:
            raise RuntimeError("stylometry extractor is not fitted: call fit() (or load a saved model)")
        counter = self._counters.get(family)
        if counter is None:
            vocab = self.vocabulary[family]
            counter = CharNgramCounter(vocab) if family == "char" else WordNgramCounter(vocab)
            self._counters[family] = counter
        tf = counter.counts(texts)
        seen = tf > 0
        tf[seen] = 1.0 + np.log(tf[seen])  # sublinear tf
        return _l2_rows(tf * self.idf_[family][None, :])

    def _dense(self, text: str) -> dict[str, np.ndarray]:
        words = tokenize(text)
        out = {}
        if "function" in self.families:
            out["function"] = function_word_rates(words)
        if "punct" in self.families:
            out["punct"] = punctuation_rates(text)
        if "format" in self.families:
            out["format"] = format_stats(text, words)
        if "discourse" in self.families:
            out["discourse"] = discourse_rates(text, len(words))
        if "length" in self.families:
            out["length"] = length_stats(text, words)
        return out

    def features(self, loaded: Sequence[str], progress: bool = False) -> np.ndarray:
        blocks: dict[str, np.ndarray] = {}
        for fam in self._ngram_families():
            blocks[fam] = self._ngrams(fam, loaded)
        dense = [self._dense(t) for t in progress_bar(loaded, enabled=progress, desc="stylometry")]
        for fam in self.families:
            if fam not in blocks:
                blocks[fam] = np.stack([d[fam] for d in dense]) if dense else np.zeros((0, 0))
        return np.concatenate([blocks[f] for f in self.families], axis=1).astype(np.float32)

    def feature_names(self) -> list[str]:
        """``family:feature`` for every column of :meth:`features`."""
        names: dict[str, Sequence[str]] = {
            "char": [repr(g) for g in self.vocabulary.get("char", [])],
            "word": [repr(g) for g in self.vocabulary.get("word", [])],
            "function": [repr(w) for w in FUNCTION_WORDS],
            "punct": [repr(p) for p in PUNCTUATION],
            "format": FORMAT_FEATURES,
            "discourse": [repr(m) for m in DISCOURSE_MARKERS],
            "length": LENGTH_FEATURES,
        }
        return [f"{fam}:{n}" for fam in self.families for n in names[fam]]


class FunctionWordsExtractor(StylometryExtractor):
    """Only the function-word rates per 1000 words: the input of Burrows' Delta."""

    name = "function-words"
    trainable = False
    # its settings are its families alone, as every saved function-words model holds them
    config_fields = ("families",)

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("families", ("function",))
        super().__init__(**kwargs)


__all__ = [
    "DISCOURSE_MARKERS",
    "FORMAT_FEATURES",
    "FUNCTION_WORDS",
    "LENGTH_FEATURES",
    "PUNCTUATION",
    "FunctionWordsExtractor",
    "StylometryExtractor",
    "function_word_rates",
    "sentences",
    "tokenize",
]
