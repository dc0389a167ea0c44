"""The ``code-structure`` extractor: stylometric features of JavaScript, learnt and scaled.

The features are the families of :mod:`~provenance.detectors.code.vocabulary`, computed
per file by :func:`~provenance.detectors.code.analysis.analyse` from one tree-sitter parse.
One feature vector concatenates the families as contiguous blocks
(:meth:`CodeStructureExtractor.family_slices`, :meth:`~CodeStructureExtractor.feature_names`).

Scaling: a learnt-vocabulary family is sublinear tf-idf, ``(1 + log count) * idf``,
L2-normalised per family (so it is a rate, independent of file length); a fixed
family (rates and shares) is standardised with the training mean and standard
deviation, clipped to +-5 and divided by the square root of its size. Every family
therefore weighs about 1 (times ``family_weights``).

Vocabularies (which n-grams are features) are chosen in :meth:`fit` by document
frequency, balanced over labels, capped per family; they live in the config
(``vocabulary``), the idf weights and standardisation arrays in :meth:`state_dict`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from provenance.core.validation import MAX_INT, Bound
from provenance.detectors.base import Extractor
from provenance.detectors.code.analysis import Analysis, analyse
from provenance.detectors.code.grammar import display_name
from provenance.detectors.code.syntax import (
    CodeText,
    extract_code,
    fenced_blocks,
    load_code,
    parse,
    truncate_code,
    validate_code,
)
from provenance.detectors.code.vocabulary import (
    CHAR_FAMILIES,
    DEFAULT_MAX_FEATURES,
    DEFAULT_VIEWS,
    DENSE_FAMILIES,
    DENSE_FEATURES,
    FAMILIES,
    SPARSE_FAMILIES,
    VIEWS,
)
from provenance.detectors.errors import SampleError, describe_sample
from provenance.detectors.progress import progress_bar


def _f32(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float32).astype(np.float64)


class CodeStructureExtractor(Extractor):
    """Stylometric JavaScript features: syntax n-grams, layout, literal and identifier habits, char n-grams.

    Parameters (with the limits a saved model is held to, about 10x the defaults)
    ----------
    views: which groups of families to use, from ``("structure", "lexical", "layout", "chars", "minified")``.
        ``("structure",)`` alone is blind to names, literals, layout and comments; ``"minified"``
        (character n-grams of the code after terser-style minification, off by default: it costs a
        minify of every file) reads a file and its minified copy alike. Default: the first four.
    max_features: vocabulary cap per learnt family (an int for all, or a dict by family), 1 to 100,000.
    min_df: an n-gram must occur in at least this many training files to become a feature (>= 1).
    char_ngrams: 1 to 8 character n-gram lengths, each 1 to 16, for the ``char-ngram`` family.
    max_chars: code longer than this is cut to a prefix before analysis (with a warning), up to 10 million.
    max_bytes: input larger than this is refused by :meth:`load`, up to 1 GiB.
    max_error_ratio: when set, :meth:`load` refuses code with a larger share of unparseable bytes (in [0, 1]).
    family_weights: multiplies a family's block (default 1 for all), each 0 to 1000.
    vocabulary: learnt vocabularies by family (set by :meth:`fit`; saved in the config), at most
        100,000 entries each.
    """

    name = "code-structure"
    modality = "code"
    trainable = True
    # the blocks are already idf-weighted and scaled per family: z-scoring every column again
    # inflates rare n-grams (HumanEval-X 0.593 -> 0.645 without it, C=10; see BENCHMARKS.md)
    head_defaults: ClassVar[dict[str, dict[str, Any]]] = {"linear": {"C": 10.0, "standardize": False}}
    config_bounds: ClassVar[dict[str, Bound]] = {
        "max_features": (1, 100_000),
        "min_df": (1, MAX_INT),
        "char_ngrams": (1, 16),
        "max_chars": (1, 10_000_000),
        "max_bytes": (1, 2**30),
        "max_error_ratio": (0.0, 1.0),
        "family_weights": (0.0, 1000.0),
    }
    config_lengths: ClassVar[dict[str, tuple[int, int]]] = {
        "views": (1, len(VIEWS)),
        "char_ngrams": (1, 8),
        "vocabulary": (0, 100_000),
    }

    def __init__(
        self,
        views: Sequence[str] = DEFAULT_VIEWS,
        max_features: int | dict[str, int] | None = None,
        min_df: int = 2,
        char_ngrams: Sequence[int] = (3,),
        max_chars: int = 200_000,
        max_bytes: int = 10 * 1024 * 1024,
        max_error_ratio: float | None = None,
        family_weights: dict[str, float] | None = None,
        vocabulary: dict[str, list[str]] | None = None,
    ) -> None:
        bad = [v for v in views if v not in VIEWS]
        if bad or not views:
            raise ValueError(f"unknown views {bad}; choose from {list(VIEWS)}")
        self.views = tuple(v for v in VIEWS if v in views)
        caps = dict(DEFAULT_MAX_FEATURES)
        if isinstance(max_features, int):
            caps = dict.fromkeys(caps, max_features)
        elif max_features:
            unknown = set(max_features) - set(caps)
            if unknown:
                raise ValueError(f"max_features for unknown families {sorted(unknown)}; learnt: {list(caps)}")
            caps.update(max_features)
        self.max_features = caps
        self.min_df = int(min_df)
        self.char_ngrams = tuple(int(n) for n in char_ngrams)
        if not self.char_ngrams or min(self.char_ngrams) < 1:
            raise ValueError("char_ngrams must be positive lengths, e.g. (3,) or (2, 3, 4)")
        self.max_chars = int(max_chars)
        self.max_bytes = int(max_bytes)
        self.max_error_ratio = max_error_ratio
        self.family_weights = dict(family_weights or {})
        self.families = [f for f, v, _k in FAMILIES if v in self.views]
        self.vocabulary: dict[str, list[str]] | None = None
        self._idf: dict[str, np.ndarray] = {}
        self._mean: np.ndarray | None = None
        self._std: np.ndarray | None = None
        self._lookup: dict[str, dict[Any, int]] = {}
        if vocabulary is not None:
            self._set_vocabulary(vocabulary)

    # ------------------------------------------------------------------ learned state
    def state_dict(self) -> dict[str, np.ndarray]:
        if not self.is_fitted:
            return {}
        state = {f"idf.{f}": self._idf[f].astype(np.float32) for f in self._sparse}
        if self._mean is not None and self._std is not None:
            state["dense_mean"] = self._mean.astype(np.float32)
            state["dense_std"] = self._std.astype(np.float32)
        return state

    def load_state_dict(self, state: dict[str, np.ndarray], learned: dict[str, Any] | None = None) -> None:
        if self.vocabulary is None:
            if state:
                raise ValueError("code-structure: state given but the config has no vocabulary (not fitted)")
            return
        idf = {}
        for f in self._sparse:
            key = f"idf.{f}"
            if key not in state:
                raise ValueError(f"code-structure: state lacks {key!r}")
            arr = np.asarray(state[key], dtype=np.float64)
            if arr.shape != (len(self.vocabulary[f]),):
                raise ValueError(
                    f"code-structure: {key} has shape {arr.shape}, vocabulary has {len(self.vocabulary[f])}"
                )
            idf[f] = arr
        n_dense = sum(len(DENSE_FEATURES[f]) for f in self._dense)
        mean = np.asarray(state.get("dense_mean", np.zeros(0)), dtype=np.float64)
        std = np.asarray(state.get("dense_std", np.zeros(0)), dtype=np.float64)
        if mean.shape != (n_dense,) or std.shape != (n_dense,):
            raise ValueError(f"code-structure: dense_mean/dense_std must have {n_dense} values, got {mean.shape}")
        self._idf, self._mean, self._std = idf, mean, std

    @property
    def _sparse(self) -> list[str]:
        return [f for f in self.families if f in SPARSE_FAMILIES]

    @property
    def _dense(self) -> list[str]:
        return [f for f in self.families if f in DENSE_FAMILIES]

    @property
    def is_fitted(self) -> bool:
        """True once :meth:`fit` (or a config with vocabulary plus :meth:`load_state_dict`) set everything."""
        return self.vocabulary is not None and self._mean is not None and all(f in self._idf for f in self._sparse)

    def _set_vocabulary(self, vocabulary: dict[str, list[str]]) -> None:
        missing = [f for f in self._sparse if f not in vocabulary]
        if missing:
            raise ValueError(f"vocabulary lacks families {missing}")
        self.vocabulary = {f: [str(x) for x in vocabulary[f]] for f in self._sparse}
        self._lookup = {f: {} for f in self._sparse}
        self._index = {f: {s: i for i, s in enumerate(words)} for f, words in self.vocabulary.items()}
        for fam in CHAR_FAMILIES & set(self.vocabulary):
            self._lookup[fam] = {tuple(s): i for s, i in self._index[fam].items()}

    # ------------------------------------------------------------------ names
    @staticmethod
    def _render(family: str, key: Any) -> str:
        if family in CHAR_FAMILIES:
            return "".join(key)
        if isinstance(key, tuple):
            return ">".join(display_name(k) for k in key)
        return display_name(key)

    def _column(self, family: str, key: Any) -> int:
        table = self._lookup[family]
        if family in CHAR_FAMILIES:
            return table.get(key, -1)
        col = table.get(key)
        if col is None:
            col = self._index[family].get(self._render(family, key), -1)
            table[key] = col
        return col

    def _columns(self, family: str, counts: Counter) -> tuple[np.ndarray, np.ndarray]:
        """Columns and counts of the in-vocabulary keys of ``counts``."""
        table = self._lookup[family]
        miss = -1 if family in CHAR_FAMILIES else -2
        cols = [table.get(k, miss) for k in counts]
        if miss == -2 and -2 in cols:
            cols = [c if c != -2 else self._column(family, k) for c, k in zip(cols, counts, strict=True)]
        col_arr = np.fromiter(cols, dtype=np.int64, count=len(cols))
        val_arr = np.fromiter(counts.values(), dtype=np.float64, count=len(cols))
        keep = col_arr >= 0
        return col_arr[keep], val_arr[keep]

    def family_features(self) -> list[tuple[str, str]]:
        """``(family, feature)`` for every column, in order (the vocabulary must be learnt)."""
        if self.vocabulary is None:
            raise RuntimeError("code-structure is not fitted: fit() learns the n-gram vocabulary")
        out: list[tuple[str, str]] = []
        for f in self.families:
            words = self.vocabulary[f] if f in SPARSE_FAMILIES else DENSE_FEATURES[f]
            out.extend((f, w) for w in words)
        return out

    def feature_names(self) -> list[str]:
        """``"family:feature"`` for every column.

        For example ``"syntax-trigram:call_expression>member_expression>identifier"``.
        """
        return [f"{f}:{w}" for f, w in self.family_features()]

    def family_slices(self) -> dict[str, slice]:
        """The column range of each family."""
        out, pos = {}, 0
        for f in self.families:
            size = (
                len(self.vocabulary[f]) if f in SPARSE_FAMILIES and self.vocabulary else len(DENSE_FEATURES.get(f, ()))
            )
            out[f] = slice(pos, pos + size)
            pos += size
        return out

    @property
    def dim(self) -> int:
        """Feature dimension (after fitting)."""
        return len(self.family_features())

    # ------------------------------------------------------------------ loading
    def load(self, sample: Any) -> CodeText:
        """The JavaScript of one sample (path, bytes or code string; Markdown fences extracted)."""
        name = describe_sample(sample)
        text = load_code(sample, max_bytes=self.max_bytes)
        code = extract_code(text)
        if code is not text:
            validate_code(code, name)
        code = truncate_code(code, self.max_chars, getattr(text, "source", name) or name)
        if not isinstance(code, CodeText):
            code = CodeText(code, source=getattr(text, "source", name))
        if self.max_error_ratio is not None:
            quality = code.parse_quality
            if quality.error_ratio > self.max_error_ratio:
                langs = sorted({lang or "untagged" for lang, _b in fenced_blocks(str(text))})
                hint = f"; its Markdown fences are {', '.join(langs)}" if langs else ""
                raise SampleError(
                    name,
                    f"does not parse as JavaScript: {quality.describe()}, "
                    f"over max_error_ratio={self.max_error_ratio}{hint}",
                )
        return code

    def notes(self, loaded: Any) -> list[str]:
        """Says when only a prefix was analysed, and when the code does not fully parse."""
        out = []
        if getattr(loaded, "truncated", False):
            out.append(f"only the first {len(loaded):,} of {loaded.original_chars:,} characters were analysed")
        if isinstance(loaded, CodeText) and len(loaded) <= self.max_chars:
            quality = loaded.parse_quality  # the parse the features used
        else:
            quality = parse(loaded[: self.max_chars]).quality
        if quality.has_errors:
            out.append(
                f"does not fully parse as JavaScript ({quality.describe()}; TypeScript, prose or a fragment?): "
                "the features come from the parts that parsed"
            )
        return out

    #: The rewrites :meth:`augment` picks from, uniformly (names in
    #: :mod:`~provenance.detectors.code.transforms`); ``minify`` is terser-style compress + mangle.
    augmentations: ClassVar[tuple[str, ...]] = (
        "strip_comments",
        "minify_whitespace",
        "rename_identifiers",
        "mangle",
        "minify",
    )

    def augment(self, loaded: Any, rng: np.random.Generator) -> str | None:
        """A rewritten copy: comments stripped, whitespace minified, names renamed, all three, or minified
        as terser does it (compress + mangle), picked at random from :attr:`augmentations`."""
        from provenance.detectors.code import transforms

        choice = self.augmentations[int(rng.integers(len(self.augmentations)))]
        seed = int(rng.integers(1, 2**31))
        if choice in ("strip_comments", "minify_whitespace"):
            return getattr(transforms, choice)(loaded)
        return getattr(transforms, choice)(loaded, seed=seed)

    # ------------------------------------------------------------------ features
    def _analyse(self, code: str) -> Analysis:
        if len(code) > self.max_chars:
            code = truncate_code(code, self.max_chars)
        analysis = analyse(code, self.families, self.char_ngrams)
        if isinstance(code, CodeText):
            # notes need only the parse quality: a batch must not keep every sample's tree alive
            code.release_tree()
        return analysis

    def fit(
        self, loaded: Sequence[Any], labels: Sequence[str] | None = None, progress: bool = False
    ) -> CodeStructureExtractor:
        """Learn vocabularies (document frequency, balanced over labels), idf weights and dense scaling."""
        if not loaded:
            raise ValueError("code-structure: fit needs at least one sample")
        analyses = [self._analyse(c) for c in progress_bar(loaded, progress, desc="code-structure fit")]
        y = list(labels) if labels is not None else ["_"] * len(analyses)
        if len(y) != len(analyses):
            raise ValueError(f"{len(analyses)} samples but {len(y)} labels")
        classes = sorted(set(y))
        class_n = Counter(y)
        vocab: dict[str, list[str]] = {}
        for f in self._sparse:
            per_class = {cl: Counter() for cl in classes}
            for a, lab in zip(analyses, y, strict=True):
                per_class[lab].update(a.sparse[f].keys())
            total: Counter = Counter()
            for cnt in per_class.values():
                total.update(cnt)
            keep = [k for k, v in total.items() if v >= self.min_df]
            score = {k: max(per_class[cl].get(k, 0) / class_n[cl] for cl in classes) for k in keep}
            rendered = {k: self._render(f, k) for k in keep}
            ranked = sorted(keep, key=lambda k: (-score[k], -total[k], rendered[k]))[: self.max_features[f]]
            vocab[f] = [rendered[k] for k in ranked]
        self._set_vocabulary(vocab)
        n = len(analyses)
        idf = {}
        for f in self._sparse:
            df = np.zeros(len(self.vocabulary[f]))
            for a in analyses:
                for key in a.sparse[f]:
                    col = self._column(f, key)
                    if col >= 0:
                        df[col] += 1
            idf[f] = _f32(np.log((1.0 + n) / (1.0 + df)) + 1.0)
        self._idf = idf
        dense = np.stack([self._dense_raw(a) for a in analyses]) if self._dense else np.zeros((n, 0))
        # rounded to float32 as saved, so a reloaded extractor gives identical features
        self._mean = _f32(dense.mean(axis=0))
        self._std = _f32(dense.std(axis=0))
        return self

    def _dense_raw(self, a: Analysis) -> np.ndarray:
        if not self._dense:
            return np.zeros(0)
        return np.concatenate([a.dense[f] for f in self._dense])

    def _row(self, a: Analysis) -> np.ndarray:
        parts = []
        dense = self._dense_raw(a)
        if self._dense:
            std = np.where(self._std > 1e-9, self._std, 1.0)
            z = np.clip((dense - self._mean) / std, -5.0, 5.0)
            z[self._std <= 1e-9] = 0.0
        dpos = 0
        for f in self.families:
            w = float(self.family_weights.get(f, 1.0))
            if f in SPARSE_FAMILIES:
                vec = np.zeros(len(self.vocabulary[f]))
                counts = a.sparse[f]
                if counts:
                    cols, vals = self._columns(f, counts)
                    vec[cols] = (1.0 + np.log(vals)) * self._idf[f][cols]
                norm = float(np.linalg.norm(vec))
                if norm > 0:
                    vec /= norm
            else:
                d = len(DENSE_FEATURES[f])
                vec = z[dpos : dpos + d] / math.sqrt(d)
                dpos += d
            parts.append(vec * w)
        return np.concatenate(parts).astype(np.float32)

    def features(self, loaded: Sequence[Any], progress: bool = False) -> np.ndarray:
        """``(len(loaded), dim)`` float32 features of loaded code strings."""
        if not self.is_fitted:
            raise RuntimeError("code-structure is not fitted: call fit() first (it learns the n-gram vocabulary)")
        rows = [self._row(self._analyse(c)) for c in progress_bar(loaded, progress, desc="code-structure")]
        return np.stack(rows) if rows else np.zeros((0, self.dim), np.float32)


__all__ = ["CodeStructureExtractor"]
